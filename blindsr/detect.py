"""Which network a weights file holds: the arch and its constructor arguments, read from keys and shapes.

As spandrel does, each arch has a *signature*: the keys that identify it and a function that reads
its arguments (widths, depths, scale) from the shapes of its tensors. :func:`detect` unwraps whatever
layout a file has (blindsr training states and ``export()`` files, BasicSR's ``params``/``params_ema``,
``state_dict``/``model`` wrappers, raw state dicts, ``module.`` prefixes; see
:func:`blindsr.checkpoint.extract_state_dict`), then asks every signature. A blindsr training state
records its ``network_g`` options, which are used as they are. Exactly one signature must match;
none is an error listing what each arch expects, two an error naming both.

Adding an arch is a few lines anywhere (a plugin too)::

    @signature('MyNet', 'head.weight', 'body.0.conv.weight')
    def _mynet(sd):
        return {'num_feat': sd['head.weight'].shape[0], 'scale': ...}   # or None: not this arch
"""

from __future__ import annotations

import inspect
import os
import re
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import torch
from torch import nn

from blindsr.archs.bsrnet_arch import from_basicsr_rrdbnet
from blindsr.archs.common import DIV2K_MEAN
from blindsr.checkpoint import (
    FORMAT,
    CheckpointError,
    StateDict,
    extract_state_dict,
    load_pretrained,
    read_checkpoint,
)
from blindsr.registry import ARCH_REGISTRY

__all__ = ['SIGNATURES', 'Detected', 'Signature', 'build', 'detect', 'resolved_args', 'signature']


class Detected(NamedTuple):
    arch: str  # registry name
    args: dict[str, Any]  # constructor arguments read from the file
    layout: str  # where the weights were found and in which naming, e.g. "params_ema of x.pth (BasicSR ...)"
    state_dict: StateDict

    @property
    def scale(self) -> int:
        return int(resolved_args(self.arch, self.args)['scale'])


class Signature(NamedTuple):
    arch: str
    keys: tuple[str, ...]  # all present in a state dict of this arch (in the naming ``layout``)
    layout: str  # the naming these keys belong to
    # constructor arguments, or (another arch name, its arguments), or None: not this arch after all
    infer: Callable[[StateDict], dict | tuple[str, dict] | None]


SIGNATURES: list[Signature] = []


def signature(arch: str, *keys: str, layout: str = '') -> Callable:
    """Register ``infer(state_dict) -> args | (arch, args) | None`` for ``arch``, tried on state dicts holding
    all ``keys``."""
    def deco(fn: Callable) -> Callable:
        SIGNATURES.append(Signature(arch, keys, layout or f'{arch} names', fn))
        return fn
    return deco


def resolved_args(arch: str, args: Mapping[str, Any]) -> dict[str, Any]:
    """``args`` with the constructor defaults of ``arch`` (and of its base classes, for ``**kwargs``) filled in."""
    full: dict[str, Any] = {}
    for cls in ARCH_REGISTRY.get(arch).__mro__:
        if '__init__' in vars(cls):
            for name, p in inspect.signature(cls.__init__).parameters.items():
                if p.default is not p.empty:
                    full.setdefault(name, p.default)
    return {**full, **args}


def detect(checkpoint: str | os.PathLike | Mapping, key: str | None = None) -> Detected:
    """Identify the network in a weights file (or loaded dict); see the module docstring.

    Raises:
        CheckpointError: the file is unreadable, or its keys match no arch (or more than one).
    """
    where = str(checkpoint) if isinstance(checkpoint, (str, os.PathLike)) else 'given dict'
    ckpt = read_checkpoint(checkpoint) if isinstance(checkpoint, (str, os.PathLike)) else dict(checkpoint)
    sd, inner = extract_state_dict(ckpt, key)
    source = f'{inner} of {where}'
    if ckpt.get('format') == FORMAT and isinstance((ckpt.get('options') or {}).get('network_g'), Mapping):
        opt = dict(ckpt['options']['network_g'])
        return Detected(opt.pop('type'), opt, f'{source} (blindsr state; arch from its network_g options)', sd)
    found = []
    for sig in SIGNATURES:
        if all(k in sd for k in sig.keys):
            args = sig.infer(sd)
            if args is not None:
                arch, args = args if isinstance(args, tuple) else (sig.arch, args)
                found.append(Detected(arch, args, f'{source} ({sig.layout})', sd))
    if len(found) > 1:
        raise CheckpointError(f'{source} matches several archs: ' + '; '.join(
            f'{d.arch} {d.args} ({d.layout})' for d in found) + '. Signatures overlap: make one of them stricter.')
    if not found:
        expected = '; '.join(f'{s.arch} [{s.layout}]: {", ".join(s.keys)}' for s in SIGNATURES)
        raise CheckpointError(
            f'Cannot tell which network {source} holds: its {len(sd)} keys (first: {list(sd)[:4]}) match no arch '
            f'blindsr knows. Expected the keys of one of: {expected} — as a raw state dict, BasicSR '
            "'params'/'params_ema', a 'state_dict'/'model' wrapper or a blindsr state/export, 'module.' "
            'prefixes allowed.')
    return found[0]


def build(detected: Detected, device: torch.device | str = 'cpu') -> nn.Module:
    """The detected arch with the file's weights loaded strictly (key converters applied), in eval mode."""
    net = ARCH_REGISTRY.get(detected.arch)(**detected.args)
    load_pretrained(net, detected.state_dict)
    return net.to(device).eval()


# ---------------------------------------------------------------------------------------------- helpers
def _count(sd: Mapping[str, Any], pattern: str) -> int:
    """How many distinct indices ``(\\d+)`` in ``pattern`` occur among the keys."""
    rx = re.compile(pattern)
    return len({m.group(1) for k in sd if (m := rx.fullmatch(k))})


def _rgb_range(sd: StateDict, key: str) -> float:
    """The value range of an EDSR-style network from its ``add_mean`` bias (rgb_range x the DIV2K mean), to 3
    significant digits (SRFBN's released files trained their mean shift: 254.98 for 255)."""
    return float(f'{float(sd[key][0]) / DIV2K_MEAN[0]:.3g}')


def _edsr_scale(sd: StateDict, prefix: str, num_feat: int) -> int | None:
    """The factor of EDSR's upsampler at ``prefix`` (convs at indices 0, 2, ... each followed by a PixelShuffle)."""
    convs = _count(sd, re.escape(prefix) + r'\.(\d+)\.weight')
    if sd[f'{prefix}.0.weight'].shape[0] == 9 * num_feat:
        return 3 if convs == 1 else None
    return 2 ** convs


# ----------------------------------------------------------------------------------------------- archs
@signature('DASR', 'G.head.0.weight', 'G.body.0.body.0.da_conv1.ca.conv_du.0.weight', 'E.encoder_q.E.0.weight')
def _dasr(sd: StateDict) -> dict | None:
    num_feat = sd['G.head.0.weight'].shape[0]
    scale = _edsr_scale(sd, 'G.tail.0', num_feat)
    return None if scale is None else {
        'scale': scale, 'num_feat': num_feat,
        'num_group': _count(sd, r'G\.body\.(\d+)\.body\.0\.da_conv1\.kernel\.0\.weight'),
        'num_block': _count(sd, r'G\.body\.0\.body\.(\d+)\.da_conv1\.kernel\.0\.weight'),
        'enc_feat': sd['E.encoder_q.E.0.weight'].shape[0],
        'reduction': num_feat // sd['G.body.0.body.0.da_conv1.ca.conv_du.0.weight'].shape[0],
        'rgb_range': _rgb_range(sd, 'G.add_mean.bias')}


def _kdsr(sd: StateDict, enc: str) -> dict | None:
    n_feats = sd['G.head.0.weight'].shape[0]
    scale = _edsr_scale(sd, 'G.tail.0', n_feats)
    return None if scale is None else {
        'scale': scale, 'n_feats': n_feats,
        'n_blocks': _count(sd, r'G\.body\.0\.body\.(\d+)\.da_conv1\.kernel\.0\.weight'),
        'n_encoder_res': _count(sd, re.escape(enc) + r'\.E\.(\d+)\.body\.0\.weight'),
        'rgb_range': _rgb_range(sd, 'G.add_mean.bias')}


_KDSR_G = ('G.head.0.weight', 'G.body.0.body.0.da_conv1.kernel.0.weight')


@signature('KDSR', *_KDSR_G, 'E_st.E.0.weight', layout='KDSR student, authors\' names')
def _kdsr_student(sd: StateDict) -> dict | None:
    return _kdsr(sd, 'E_st')


@signature('KDSRTeacher', *_KDSR_G, 'E.E.0.weight', layout='KDSR teacher, authors\' names')
def _kdsr_teacher(sd: StateDict) -> dict | None:
    args = _kdsr(sd, 'E')
    # the teacher's estimator sees LR (3) + PixelUnshuffle(HR) (3 s^2) channels
    return args if args and sd['E.E.0.weight'].shape[1] == 3 + 3 * args['scale'] ** 2 else None


def _rrdb(sd: StateDict) -> dict:
    """BSRNet's arguments from KAIR names."""
    return {'scale': 4 if 'upconv2.weight' in sd else 2, 'in_ch': sd['conv_first.weight'].shape[1],
            'out_ch': sd['conv_last.weight'].shape[0], 'num_feat': sd['conv_first.weight'].shape[0],
            'num_block': _count(sd, r'RRDB_trunk\.(\d+)\.RDB1\.conv1\.weight'),
            'num_grow_ch': sd['RRDB_trunk.0.RDB1.conv1.weight'].shape[0]}


_KAIR_RRDB = ('conv_first.weight', 'RRDB_trunk.0.RDB1.conv1.weight', 'trunk_conv.weight', 'conv_last.weight')
_BASICSR_RRDB = ('conv_first.weight', 'body.0.rdb1.conv1.weight', 'conv_body.weight', 'conv_last.weight')


@signature('BSRNet', *_KAIR_RRDB, layout="KAIR/BSRGAN RRDBNet names")
def _bsrnet(sd: StateDict) -> dict:
    return _rrdb(sd)


@signature('BSRNet', *_BASICSR_RRDB, layout="BasicSR RRDBNet names, x4")
def _bsrnet_basicsr(sd: StateDict) -> dict | None:
    if sd['conv_first.weight'].shape[1] not in (1, 3) or 'conv_up2.weight' not in sd:
        return None
    return _rrdb(from_basicsr_rrdbnet(sd))


@signature('RRDBNet', *_BASICSR_RRDB, layout="BasicSR RRDBNet names, pixel-unshuffle x2/x1")
def _rrdbnet_unshuffle(sd: StateDict) -> dict | None:
    cin = sd['conv_first.weight'].shape[1]
    scale = {4: 2, 12: 2, 16: 1, 48: 1}.get(cin)  # BasicSR pixel-unshuffles by 2 for x2, by 4 for x1
    return None if scale is None else {
        'num_in_ch': cin // (4 if scale == 2 else 16), 'num_out_ch': sd['conv_last.weight'].shape[0],
        'scale': scale, 'num_feat': sd['conv_first.weight'].shape[0],
        'num_block': _count(sd, r'body\.(\d+)\.rdb1\.conv1\.weight'),
        'num_grow_ch': sd['body.0.rdb1.conv1.weight'].shape[0]}


_SRFBN_SCALES = {6: 2, 7: 3, 8: 4, 12: 8}  # kernel size of the reconstruction deconv -> scale


@signature('SRFBN', 'conv_in.0.weight', 'conv_in.1.weight', 'block.compress_in.0.weight', 'out.0.weight',
           layout='SRFBN names (PReLU)')
def _srfbn(sd: StateDict) -> tuple[str, dict] | None:
    scale = _SRFBN_SCALES.get(sd['out.0.weight'].shape[-1])
    if scale is None:
        return None
    # num_steps (the feedback iterations) leaves no trace in the weights: the published 4 (the default)
    args = {'scale': scale, 'in_ch': sd['conv_in.0.weight'].shape[1], 'out_ch': sd['conv_out.0.weight'].shape[0],
            'rgb_range': _rgb_range(sd, 'add_mean.bias')}
    widths = {'num_features': sd['feat_in.0.weight'].shape[0],
              'num_groups': _count(sd, r'block\.upBlocks\.(\d+)\.0\.weight')}
    return ('SRFBN_S', args) if widths == {'num_features': 32, 'num_groups': 3} else ('SRFBN', {**args, **widths})
