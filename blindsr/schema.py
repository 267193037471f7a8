"""What an option section may hold: declared keys, and ``{type: Name, ...}`` sections checked against
the signature of the class or function they build.

Every key of an option file is known to something: the option schema of :mod:`blindsr.options`,
the keys a model declares for ``train:``, the keys a dataset declares, or the constructor a
``type:`` names (an arch, a degradation pipeline, a loss, a metric, a torch optimizer or scheduler).
:func:`resolve` walks a section with its spec, checks every key (unknown keys get a close match,
types and ranges are checked, required keys must be there) and returns it with every default
spelled out. Errors are :class:`OptionsError` naming the file and the key path.

Specs:

- :class:`Value` — one scalar or list key: accepted types, default, bounds, choices.
- :class:`Section` — a mapping with declared keys.
- :class:`Component` — ``{type: Name, **arguments}``: the name is looked up, the arguments are
  checked against the callable's signature (annotations, else the defaults' types) and its
  defaults are filled in where YAML can hold them.
- :class:`ListOf` / :class:`MapOf` — a list / a name-to-item mapping of one spec.
"""

from __future__ import annotations

import difflib
import inspect
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from blindsr.registry import Registry, lookup


class OptionsError(ValueError):
    """A malformed or invalid option file."""


REQUIRED = object()  # a default that says: the key must be given
ANY = None  # Value(ANY): any type


@dataclass
class Context:
    """What every check needs: the file named in errors, and whether the options are for training."""
    path: Any = '<options>'
    is_train: bool = True

    def error(self, where: str, message: str) -> OptionsError:
        return OptionsError(f'{self.path}: {where} {message}' if where else f'{self.path}: {message}')


def _join(where: str, key: Any) -> str:
    return f'{where}.{key}' if where else str(key)


def _type_names(accepted: tuple[type, ...]) -> str:
    return ' or '.join('null' if t is type(None) else t.__name__ for t in accepted)


def check_type(value: Any, accepted: type | tuple[type, ...] | None, where: str, ctx: Context) -> None:
    """``value`` is one of ``accepted`` (ints count as floats; bools count only as bools)."""
    if accepted is None:
        return
    accepted = accepted if isinstance(accepted, tuple) else (accepted, )
    ok = isinstance(value, accepted) and not (isinstance(value, bool) and bool not in accepted)
    if float in accepted and isinstance(value, int) and not isinstance(value, bool):
        ok = True
    if not ok:
        raise ctx.error(where, f'must be {_type_names(accepted)}, got {type(value).__name__} {value!r}.')


def unknown_key(key: str, known: Sequence[str], where: str, owner: str, ctx: Context) -> OptionsError:
    close = difflib.get_close_matches(str(key), list(known), n=1, cutoff=0.6)
    hint = f" Did you mean '{close[0]}'?" if close else ''
    listing = ', '.join(sorted(known)) or 'none'
    return ctx.error(_join(where, key), f'is not a key of {owner}.{hint} Known keys: {listing}.')


@dataclass(frozen=True)
class Value:
    """One key: accepted ``types`` (``ANY``: anything), ``default`` (``REQUIRED``: must be given;
    ``None``: optional and may be null), inclusive ``min``, exclusive ``below``, ``choices``."""
    types: type | tuple[type, ...] | None
    default: Any = None
    min: float | None = None
    below: float | None = None
    choices: tuple | None = None

    def resolve(self, value: Any, where: str, ctx: Context) -> Any:
        if value is None and self.default is None:
            return None
        check_type(value, self.types, where, ctx)
        if self.choices is not None and value not in self.choices:
            raise ctx.error(where, f"must be one of {', '.join(map(repr, self.choices))}, got {value!r}.")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if self.min is not None and value < self.min:
                raise ctx.error(where, f'must be >= {self.min}, got {value}.')
            if self.below is not None and value >= self.below:
                raise ctx.error(where, f'must be in [{self.min}, {self.below}), got {value}.')
        return value


@dataclass(frozen=True)
class Section:
    """A mapping of declared keys; ``owner`` names it in errors (e.g. "the logger section")."""
    keys: dict[str, Any]
    owner: str = 'this section'
    default: Any = field(default_factory=dict)

    def resolve(self, value: Any, where: str, ctx: Context) -> dict:
        check_type(value, dict, where, ctx)
        return resolve_keys(value, self.keys, where, self.owner, ctx)


def resolve_keys(given: dict, keys: dict[str, Any], where: str, owner: str, ctx: Context,
                 required: Sequence[str] = ()) -> dict:
    """Check ``given`` against ``keys`` (name -> spec) and return it with every default filled in.

    ``required`` names keys that must be given here although their spec has a default.
    """
    for key in given:
        if key not in keys:
            raise unknown_key(key, list(keys), where, owner, ctx)
    out = {}
    for key, spec in keys.items():
        if key in required and given.get(key) is None:
            raise ctx.error(_join(where, key), f'is required ({owner}).')
        if key in given:
            out[key] = spec.resolve(given[key], _join(where, key), ctx)
        elif spec.default is REQUIRED:
            raise ctx.error(_join(where, key), f'is required ({owner}).')
        elif spec.default is None or isinstance(spec, Value):
            out[key] = _copy(spec.default)
        else:  # a section, component or list default is resolved like a given one (its defaults filled in)
            out[key] = spec.resolve(_copy(spec.default), _join(where, key), ctx)
    return out


def _as_yaml(value: Any) -> Any:
    """A default as YAML would give it: tuples become lists."""
    if isinstance(value, (list, tuple)):
        return [_as_yaml(v) for v in value]
    if isinstance(value, dict):
        return {k: _as_yaml(v) for k, v in value.items()}
    return value


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def representable(value: Any) -> bool:
    """Whether YAML (and ``torch.load(weights_only=True)``) can hold ``value``."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    if isinstance(value, (list, tuple)):
        return all(representable(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and representable(v) for k, v in value.items())
    return False


@dataclass(frozen=True)
class Arguments:
    """A section that is the keyword arguments of one callable (e.g. ``moco:`` for :class:`MoCo`)."""
    fn: Callable
    owner: str
    supplied: tuple[str, ...] = ()
    default: Any = field(default_factory=dict)

    def resolve(self, value: Any, where: str, ctx: Context) -> dict:
        check_type(value, dict, where, ctx)
        return check_arguments(self.fn, value, where, ctx, self.owner, self.supplied)


_PLAIN = (bool, int, float, str, list, tuple, dict)


def _annotation_types(annotation: Any) -> tuple[type, ...] | None:
    """Python types an annotation admits from YAML, or None when it says nothing usable."""
    if annotation in _PLAIN or annotation is type(None):
        return (list, tuple) if annotation in (list, tuple) else (annotation, )
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        found: list[type] = []
        for member in typing.get_args(annotation):
            member_types = _annotation_types(member)
            if member_types is None:
                if member is typing.Any:
                    return None
                continue  # e.g. Tensor: YAML cannot make one, the other members say what it can
            found += member_types
        return tuple(dict.fromkeys(found)) or None
    if origin in (list, tuple) or (isinstance(origin, type) and issubclass(origin, Sequence)
                                   and origin is not str):
        return (list, tuple)
    if origin is dict:
        return (dict, )
    return None


def _default_types(default: Any) -> tuple[type, ...] | None:
    if isinstance(default, bool):
        return (bool, )
    if isinstance(default, (int, float)):
        return (float, )  # an untyped numeric default admits ints and floats
    if isinstance(default, str):
        return (str, )
    if isinstance(default, (list, tuple)):
        return (list, tuple)
    if isinstance(default, dict):
        return (dict, )
    return None


def _signature(fn: Callable) -> inspect.Signature:
    target = fn.__init__ if inspect.isclass(fn) else fn
    try:
        sig = inspect.signature(target, eval_str=True)
    except Exception:  # an annotation that does not evaluate: use the strings, which say nothing here
        sig = inspect.signature(target)
    params = list(sig.parameters.values())
    if inspect.isclass(fn):
        params = params[1:]  # self
    return sig.replace(parameters=params)


@dataclass(frozen=True)
class Component:
    """``{type: Name, **arguments}``: ``lookup(name)`` gives the callable whose signature the arguments
    are checked against.

    ``supplied``: parameters blindsr passes itself (not options; never filled in). ``own``: extra keys
    the caller reads before building (e.g. a loss term's ``name``). ``closed``: a ``**kwargs``
    parameter accepts nothing (BasicSR's metric functions swallow and ignore unknown keywords).
    ``default``: the section used when none is given; its arguments belong to its type and are merged
    only into a section of the same type. ``kind`` names what the type is in errors.
    """
    lookup: Callable[[str], Callable]
    kind: str
    default: Any = REQUIRED
    supplied: tuple[str, ...] = ()
    own: dict[str, Any] = field(default_factory=dict)
    closed: bool = False

    def resolve(self, value: Any, where: str, ctx: Context) -> dict:
        check_type(value, dict, where, ctx)
        value = dict(value)
        if isinstance(self.default, dict) and value.get('type', self.default['type']) == self.default['type']:
            value = {**self.default, **value}  # defaults belong to the default's type only
        if 'type' not in value:
            raise ctx.error(_join(where, 'type'), 'is required.')
        check_type(value['type'], str, _join(where, 'type'), ctx)
        try:
            fn = self.lookup(value['type'])
        except (KeyError, ValueError) as err:
            raise ctx.error(f"{_join(where, 'type')}:", str(err)) from err
        return {'type': value['type'], **check_arguments(fn, value, where, ctx, f"{self.kind} {value['type']}",
                                                         self.supplied, self.own, self.closed)}


def check_arguments(fn: Callable, given: dict, where: str, ctx: Context, owner: str,
                    supplied: Sequence[str] = (), own: dict[str, Any] | None = None,
                    closed: bool = False) -> dict:
    """Check ``given`` (minus ``type``) against ``fn``'s signature; return it with representable
    defaults filled in (parameters in ``supplied`` are neither accepted nor filled)."""
    own = own or {}
    signature = _signature(fn).parameters.values()
    params = {p.name: p for p in signature
              if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in supplied}
    open_kwargs = not closed and any(p.kind == p.VAR_KEYWORD for p in signature)
    out: dict[str, Any] = {}
    for key, value in given.items():
        if key == 'type':
            continue
        if key in own:
            out[key] = own[key].resolve(value, _join(where, key), ctx)
        elif key in params:
            param = params[key]
            accepted = None
            if param.annotation is not param.empty and not isinstance(param.annotation, str):
                accepted = _annotation_types(param.annotation)
            if accepted is None and param.default is not param.empty:
                accepted = _default_types(param.default)
            if value is None and (param.default is None or (accepted and type(None) in accepted)):
                out[key] = None
                continue
            if accepted is not None:
                check_type(value, tuple(t for t in accepted if t is not type(None)) or accepted,
                           _join(where, key), ctx)
            out[key] = value
        elif not open_kwargs:
            raise unknown_key(key, [*params, *own], where, owner, ctx)
        else:
            out[key] = value
    for name, param in params.items():
        if name in out:
            continue
        if param.default is param.empty:
            raise ctx.error(_join(where, name), f'is required by {owner}.')
        if representable(param.default):
            out[name] = _as_yaml(param.default)
    return out


def registered(registry: Registry) -> Callable[[str], Any]:
    """The ``lookup`` of a :class:`Component` whose types come from ``registry``."""
    return lambda name: lookup(registry, name)


@dataclass(frozen=True)
class ListOf:
    item: Any
    default: Any = REQUIRED

    def resolve(self, value: Any, where: str, ctx: Context) -> list:
        check_type(value, list, where, ctx)
        return [self.item.resolve(v, f'{where}[{i}]', ctx) for i, v in enumerate(value)]


@dataclass(frozen=True)
class MapOf:
    item: Any
    default: Any = REQUIRED

    def resolve(self, value: Any, where: str, ctx: Context) -> dict:
        check_type(value, dict, where, ctx)
        return {k: self.item.resolve(v, _join(where, k), ctx) for k, v in value.items()}
