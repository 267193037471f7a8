"""Checkpoint files: atomic saving, finding the newest state, and loading weights from any layout.

A blindsr checkpoint is one file per save holding everything needed to continue a run exactly
(see :class:`blindsr.models.base_model.BaseModel.state_dict`); it is a plain dict tagged
``format: blindsr-checkpoint`` and is always loaded with ``weights_only=True``. It also holds a
SHA-256 ``checksum`` of the rest of its payload, checked on reading, so a flipped bit is an error
instead of silently different weights (files saved before checksums existed still load).

:func:`load_pretrained` loads network weights from whatever a user brings: a blindsr checkpoint,
BasicSR's ``{'params', 'params_ema'}`` wrapper, ``state_dict``/``model`` wrappers, raw state dicts
(``module.`` prefixes from DataParallel/DDP removed) and authors' layouts through key converters
registered next to each arch with :func:`register_key_converter`.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

import torch
from torch import nn

FORMAT = 'blindsr-checkpoint'
STATE_SUFFIX = '.state'
CHECKSUM_KEY = 'checksum'  # 'sha256:<hex>' of everything else in a blindsr checkpoint

# what a file that is not a torch checkpoint is, by its first bytes
FILE_SIGNATURES = {b'\x89PNG': 'a PNG image', b'\xff\xd8\xff': 'a JPEG image', b'\x1f\x8b': 'a gzip archive',
                   b'<': 'a text/HTML page (a failed download?)'}

StateDict = dict[str, torch.Tensor]
KeyConverter = Callable[[StateDict], StateDict]

# arch class name -> converters from authors' layouts to the arch's own parameter names.
KEY_CONVERTER_REGISTRY: dict[str, list[KeyConverter]] = {}


class CheckpointError(RuntimeError):
    """A checkpoint cannot be read or does not fit the network."""


class LoadResult(NamedTuple):
    source: str  # what was loaded, e.g. "params_ema of x.pth via from_basicsr_rrdbnet"
    missing: list[str]
    unexpected: list[str]


def register_key_converter(arch: type | str) -> Callable[[KeyConverter], KeyConverter]:
    """Register ``fn(state_dict) -> state_dict`` converting an authors' layout for ``arch``.

    A converter is tried only when the keys of a checkpoint do not match the network's own; it
    should raise ``KeyError``/``ValueError`` (or return a dict that does not match) for layouts it
    does not understand.
    """
    name = arch if isinstance(arch, str) else arch.__name__

    def deco(fn: KeyConverter) -> KeyConverter:
        KEY_CONVERTER_REGISTRY.setdefault(name, []).append(fn)
        return fn

    return deco


def payload_checksum(ckpt: Mapping) -> str:
    """``'sha256:<hex>'`` over everything in ``ckpt`` but its checksum: dict keys in sorted order, each
    tensor's dtype, shape and bytes, every other value's type and ``repr``."""
    digest = hashlib.sha256()

    def feed(obj: Any) -> None:
        if isinstance(obj, torch.Tensor):
            t = obj.detach().cpu().contiguous()
            digest.update(f'tensor {t.dtype} {tuple(t.shape)};'.encode())
            digest.update(t.reshape(-1).view(torch.uint8).numpy())
        elif isinstance(obj, Mapping):
            digest.update(f'map {len(obj)};'.encode())
            for key, value in sorted(obj.items(), key=lambda kv: (type(kv[0]).__name__, repr(kv[0]))):
                feed(key)
                feed(value)
        elif isinstance(obj, (list, tuple)):
            digest.update(f'{type(obj).__name__} {len(obj)};'.encode())
            for value in obj:
                feed(value)
        else:
            digest.update(f'{type(obj).__name__} {obj!r};'.encode())

    feed({k: v for k, v in ckpt.items() if k != CHECKSUM_KEY})
    return f'sha256:{digest.hexdigest()}'


def write_atomic(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> None:
    """``write(file)`` into a temporary file in ``path``'s folder, fsync, then rename it over ``path``: a crash,
    an interruption or a full disk leaves either the old file or the new one, never a truncated file (the
    temporary file is removed, and the error raised)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f'.{path.name}.', suffix='.tmp', dir=path.parent)
    try:
        with os.fdopen(fd, 'wb') as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_atomic(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` through :func:`write_atomic`. A blindsr checkpoint (``format`` tag) is saved with its
    :func:`payload_checksum`."""
    if isinstance(obj, Mapping) and obj.get('format') == FORMAT:
        obj = {**obj, CHECKSUM_KEY: payload_checksum(obj)}
    write_atomic(path, lambda f: torch.save(obj, f))


def read_checkpoint(path: str | os.PathLike) -> dict:
    """Load a checkpoint file on the CPU with ``weights_only=True``; verify a blindsr checkpoint's checksum.

    Raises :class:`CheckpointError` saying what the file is when it cannot be read (empty, an image,
    not a torch file, a truncated archive, a pickle of more than tensors) or was altered after saving.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'Checkpoint not found: {path}')
    try:
        obj = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as err:  # pickle errors, truncated zip files, non-weights payloads ...
        raise CheckpointError(f'Cannot read checkpoint {path}: {_unreadable_reason(path, err)}') from err
    if not isinstance(obj, Mapping):
        raise CheckpointError(f'Checkpoint {path} holds a {type(obj).__name__}, not a dict of tensors.')
    stored = obj.get(CHECKSUM_KEY) if obj.get('format') == FORMAT else None
    if stored is not None and stored != payload_checksum(obj):
        raise CheckpointError(f'Checkpoint {path} is damaged: its contents no longer match the checksum '
                              'stored when it was saved (a disk or copy error, or an edit); use another copy '
                              'or state.')
    return dict(obj)


def _unreadable_reason(path: Path, err: Exception) -> str:
    """What ``path`` is when ``torch.load`` refuses it and what to do (never torch's advice to drop
    ``weights_only``, which would run whatever code a pickle holds)."""
    size = path.stat().st_size
    if size == 0:
        return 'the file is empty (0 bytes: an interrupted copy or a full disk?); copy or save it again.'
    with path.open('rb') as f:
        head = f.read(8)
    if not head.startswith((b'PK\x03\x04', b'\x80')):  # torch's zip format or its legacy pickle format
        kind = next((k for magic, k in FILE_SIGNATURES.items() if head.startswith(magic)), None)
        return f'it is {kind or f"a file starting with {head!r}"}, not a torch checkpoint.'
    refusal = str(err).partition('WeightsUnpickler error:')[2]
    if refusal:  # a pickle of more than tensors and plain containers, or a damaged one
        detail = ' '.join(refusal.split('Check the documentation')[0].split())  # torch's reason, without
        detail = detail.split(' Please use')[0].rstrip('.')  # its advice to allowlist classes
        return (f'not a weights-only pickle ({detail}). blindsr reads only tensors and plain containers: have '
                'the file re-saved as a plain state dict (torch.save(net.state_dict(), path)) by the code that '
                'made it, or copy it again if it was damaged.')
    return f'a truncated or damaged torch file ({size} bytes; {str(err).split(". ")[0]}); copy or save it again.'


def newest_loadable_state(folder: str | os.PathLike) -> tuple[Path | None, dict | None, list[str]]:
    """The newest ``<iter>.state`` in ``folder`` that reads and is a blindsr state, that state, and why
    each newer one was passed over (``(None, None, reasons)`` when none loads)."""
    skipped = []
    for path in reversed(state_files(folder)):
        try:
            state = read_checkpoint(path)
        except CheckpointError as err:
            skipped.append(str(err))
            continue
        if state.get('format') == FORMAT:
            return path, state, skipped
        skipped.append(f'{path} is not a blindsr training state (no format tag).')
    return None, None, skipped


def state_files(folder: str | os.PathLike) -> list[Path]:
    """The ``<iter>.state`` files in ``folder``, oldest iteration first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if re.fullmatch(r'\d+' + re.escape(STATE_SUFFIX), p.name)]
    return sorted(found, key=lambda p: int(p.stem))


def latest_state(folder: str | os.PathLike) -> Path | None:
    """The newest ``<iter>.state`` in ``folder`` or None."""
    files = state_files(folder)
    return files[-1] if files else None


def prune_states(folder: str | os.PathLike, keep: int) -> None:
    """Delete all but the newest ``keep`` state files (``keep <= 0`` keeps all)."""
    if keep > 0:
        for old in state_files(folder)[:-keep]:
            old.unlink(missing_ok=True)


def _unwrap(ckpt: Mapping, key: str | None) -> tuple[Mapping, str]:
    """Find the state dict inside the wrappers people save; return it and a description."""
    if ckpt.get('format') == FORMAT:
        nets = ckpt['networks']
        chosen = key or ('net_g_ema' if 'net_g_ema' in nets else 'net_g')
        if chosen not in nets:
            raise CheckpointError(f"blindsr checkpoint has no network '{chosen}'; it holds {sorted(nets)}.")
        return nets[chosen], f'networks.{chosen}'
    candidates = [key] if key else ['params_ema', 'params', 'state_dict', 'model', 'net', 'generator']
    for name in candidates:
        inner = ckpt.get(name)
        if isinstance(inner, Mapping) and inner and all(isinstance(v, torch.Tensor) for v in inner.values()):
            return inner, name
    if key:
        raise CheckpointError(f"Checkpoint has no state dict under '{key}'; top-level keys: {sorted(ckpt)[:20]}.")
    return ckpt, 'state dict'


def extract_state_dict(ckpt: Mapping, key: str | None = None) -> tuple[StateDict, str]:
    """The network state dict inside a loaded checkpoint (blindsr state: ``net_g``'s EMA, else ``net_g``;
    BasicSR: ``params_ema``, else ``params``; other wrappers; a raw state dict) without ``module.``
    prefixes, and which entry it was (``key`` picks one)."""
    raw, inner = _unwrap(ckpt, key)
    return _strip_module_prefix(raw), inner


def _strip_module_prefix(sd: Mapping[str, torch.Tensor]) -> StateDict:
    if sd and all(k.startswith('module.') for k in sd):
        return {k[len('module.'):]: v for k, v in sd.items()}
    return dict(sd)


def _bare(net: nn.Module) -> nn.Module:
    """The network inside DDP/DataParallel wrappers."""
    while isinstance(net, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
        net = net.module
    return net


def load_pretrained(net: nn.Module, checkpoint: str | os.PathLike | Mapping, key: str | None = None,
                    strict: bool = True) -> LoadResult:
    """Load weights into ``net`` from a path or an already loaded dict.

    Args:
        net: the network (DDP/DataParallel wrappers are looked through).
        checkpoint: a file path or a dict (blindsr checkpoint, BasicSR wrapper, raw state dict ...).
        key: which state dict to take from a wrapper (``params``, ``params_ema``, ``net_g`` ...);
            by default EMA weights are preferred when present, as BasicSR and KAIR users expect.
        strict: require every key to match. With ``strict=False`` missing/unexpected keys are
            allowed and returned; shape mismatches are always an error.

    Returns:
        a :class:`LoadResult` naming what was loaded and the missing/unexpected keys.
    """
    where = str(checkpoint) if isinstance(checkpoint, (str, os.PathLike)) else 'given dict'
    ckpt = read_checkpoint(checkpoint) if isinstance(checkpoint, (str, os.PathLike)) else checkpoint
    sd, inner = extract_state_dict(ckpt, key)
    net = _bare(net)
    own = net.state_dict()
    arch = type(net).__name__

    attempts: list[tuple[str, StateDict]] = [('', sd)]
    refusals: list[str] = []  # why converters declined, shown if nothing fits
    for conv in KEY_CONVERTER_REGISTRY.get(arch, []):
        if set(sd) == set(own):
            break
        try:
            attempts.append((f' via {conv.__name__}', conv(dict(sd))))
        except (KeyError, ValueError) as err:
            refusals.append(f'{conv.__name__}: {err}')
    # the attempt whose keys overlap the network's the most wins; ties go to the fewest extra keys
    via, best = max(attempts, key=lambda a: (len(set(a[1]) & set(own)), -len(set(a[1]) - set(own))))
    missing, unexpected, shapes = (sorted(keys) for keys in key_mismatch(own, best))
    source = f'{inner} of {where}{via}'
    if strict and (missing or unexpected):
        tried = [c.__name__ for c in KEY_CONVERTER_REGISTRY.get(arch, [])]
        raise CheckpointError(
            f'{source} does not fit {arch} (strict): {len(missing)} missing keys {_short(missing)}, '
            f'{len(unexpected)} unexpected keys {_short(unexpected)}. Key converters tried for {arch}: '
            f'{tried or "none registered"}.' + ''.join(f' {r}' for r in refusals))
    if shapes:
        wrong = [f'{k}: checkpoint {theirs} vs network {ours}' for k, theirs, ours in shapes]
        raise CheckpointError(f'{source} has shape mismatches for {arch}: {_short(wrong)}')
    net.load_state_dict(best, strict=False)
    return LoadResult(source, missing, unexpected)


class KeyMismatch(NamedTuple):
    missing: list[str]  # the network's keys the state dict lacks
    unexpected: list[str]  # keys the network does not have
    shapes: list[tuple[str, tuple, tuple]]  # (key, shape in the state dict, shape in the network)


def key_mismatch(own: Mapping[str, torch.Tensor], given: Mapping[str, torch.Tensor]) -> KeyMismatch:
    """How the state dict ``given`` differs from a network's own ``own`` (in the network's key order)."""
    return KeyMismatch([k for k in own if k not in given], [k for k in given if k not in own],
                       [(k, tuple(given[k].shape), tuple(own[k].shape)) for k in own
                        if k in given and given[k].shape != own[k].shape])


def _short(items: list[str], n: int = 8) -> str:
    return str(items[:n])[:-1] + (f', ... {len(items) - n} more]' if len(items) > n else ']')
