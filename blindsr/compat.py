"""Compatibility shim for basicsr 1.4.2 on current torchvision.

basicsr 1.4.2 (the last PyPI release) does
``from torchvision.transforms.functional_tensor import rgb_to_grayscale``; torchvision removed that
private module in 0.17. This module registers a stand-in exposing the same function from the public
``torchvision.transforms.functional`` before basicsr is imported. It changes nothing when the old
module still exists. ``blindsr/__init__.py`` applies it first, so every ``import blindsr...`` is safe;
code that imports basicsr without blindsr should call :func:`apply` first.
"""

import importlib.util
import sys
import types

_LEGACY = 'torchvision.transforms.functional_tensor'


def apply() -> None:
    """Make ``torchvision.transforms.functional_tensor`` importable (idempotent)."""
    if _LEGACY in sys.modules:
        return
    try:
        if importlib.util.find_spec(_LEGACY) is not None:
            return
    except ModuleNotFoundError:
        pass
    from torchvision.transforms import functional

    shim = types.ModuleType(_LEGACY)
    shim.rgb_to_grayscale = functional.rgb_to_grayscale
    sys.modules[_LEGACY] = shim
