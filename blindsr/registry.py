"""The registries blindsr builds everything from.

Archs, models, datasets, losses and metrics live in BasicSR's own registries, so a BasicSR arch
(EDSR, RCAN, SwinIR, ...) is usable here by name and anything registered here is usable from
BasicSR. BasicSR has no registry of degradation pipelines; :data:`DEGRADATION_REGISTRY` adds one in
the same style. :func:`build` replaces ``Registry.get`` for lookups: an unknown name raises
:class:`RegistryError` naming the registry and listing what it holds (BasicSR's ``get`` prints a
guess and raises a bare ``KeyError``).
"""

from __future__ import annotations

import copy
import difflib
from typing import Any

from blindsr import compat

compat.apply()

from basicsr.utils.registry import (  # noqa: E402
    ARCH_REGISTRY,
    DATASET_REGISTRY,
    LOSS_REGISTRY,
    METRIC_REGISTRY,
    MODEL_REGISTRY,
    Registry,
)

DEGRADATION_REGISTRY = Registry('degradation')

__all__ = [
    'ARCH_REGISTRY', 'DATASET_REGISTRY', 'DEGRADATION_REGISTRY', 'LOSS_REGISTRY', 'METRIC_REGISTRY',
    'MODEL_REGISTRY', 'Registry', 'RegistryError', 'build', 'lookup'
]


class RegistryError(KeyError):
    """An unknown name was asked of a registry."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


def lookup(registry: Registry, name: str) -> Any:
    """Return the object registered as ``name``.

    BasicSR registers some of its objects with a ``_basicsr`` suffix (e.g. ``UNetDiscriminatorSN``);
    those are found under their plain name too, without BasicSR's console message.
    """
    for key in (name, f'{name}_basicsr'):
        if key in registry:
            return registry.get(key)
    known = sorted(registry.keys())
    close = difflib.get_close_matches(name, known, n=3)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ''
    raise RegistryError(f"No '{name}' in the {registry._name} registry.{hint} "
                        f"It holds: {', '.join(known)}. A name of your own must be registered by a "
                        "module listed under 'plugins:' in the options.")


def build(registry: Registry, opt: dict, **defaults: Any) -> Any:
    """Build ``registry[opt['type']](**rest_of_opt)``; ``defaults`` fill keys that ``opt`` lacks."""
    opt = copy.deepcopy(dict(opt))
    if 'type' not in opt:
        raise RegistryError(f"Options for the {registry._name} registry need a 'type' key; got {opt}.")
    cls = lookup(registry, opt.pop('type'))
    return cls(**{**defaults, **opt})
