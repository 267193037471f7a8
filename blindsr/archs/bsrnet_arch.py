"""BSRNet: the RRDB generator of BSRNet/BSRGAN (Zhang et al., ICCV 2021) in KAIR's parameter layout.

This is ESRGAN's RRDB network as the BSRGAN authors ship it (cszn/BSRGAN ``models/network_rrdbnet.py``):
a 3x3 head conv, ``num_block`` residual-in-residual dense blocks, a trunk conv with a long skip, then
one (x2) or two (x4) nearest-neighbour x2 upsamplings each followed by a 3x3 conv and LeakyReLU(0.2),
a 3x3 conv + LeakyReLU and a 3x3 output conv. Unlike BasicSR's ``RRDBNet`` there is no
pixel-unshuffle for x2. Input is RGB in [0, 1]; the output is not clamped.

Parameter names are KAIR's (``conv_first``, ``RRDB_trunk.N.RDB{1,2,3}.conv{1..5}``, ``trunk_conv``,
``upconv1``, ``upconv2`` (x4 only), ``HRconv``, ``conv_last``), so the released ``BSRGAN.pth``,
``BSRNet.pth`` and ``BSRGANx2.pth`` load strictly. A key converter registered here also loads x4
checkpoints saved with BasicSR's ``RRDBNet`` names; :func:`to_basicsr_rrdbnet` renames the other way.
"""

from __future__ import annotations

import re

import torch
import torch.nn.functional as F
from torch import nn

from blindsr.checkpoint import StateDict, register_key_converter
from blindsr.registry import ARCH_REGISTRY

__all__ = ['BSRNet', 'RRDB', 'from_basicsr_rrdbnet', 'to_basicsr_rrdbnet']

_SLOPE = 0.2  # LeakyReLU negative slope
_RES_SCALE = 0.2  # residual scaling in dense blocks and RRDBs


def _conv3(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, 1, 1, bias=True)


class _DenseBlock(nn.Module):
    """Five densely connected 3x3 convs; the last one's output is scaled and added to the input."""

    def __init__(self, num_feat: int, num_grow_ch: int) -> None:
        super().__init__()
        for i in range(1, 6):
            cout = num_feat if i == 5 else num_grow_ch
            setattr(self, f'conv{i}', _conv3(num_feat + (i - 1) * num_grow_ch, cout))
        # The authors' in-definition init for these convs: Kaiming normal (fan_in) scaled by 0.1, zero bias.
        for i in range(1, 6):
            conv = getattr(self, f'conv{i}')
            nn.init.kaiming_normal_(conv.weight, a=0, mode='fan_in')
            with torch.no_grad():
                conv.weight.mul_(0.1)
                conv.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [x]
        for i in range(1, 5):
            feats.append(F.leaky_relu(getattr(self, f'conv{i}')(torch.cat(feats, 1)), _SLOPE, inplace=True))
        return self.conv5(torch.cat(feats, 1)) * _RES_SCALE + x


class RRDB(nn.Module):
    """Three dense blocks in a row with a scaled residual around them."""

    def __init__(self, num_feat: int, num_grow_ch: int) -> None:
        super().__init__()
        self.RDB1 = _DenseBlock(num_feat, num_grow_ch)
        self.RDB2 = _DenseBlock(num_feat, num_grow_ch)
        self.RDB3 = _DenseBlock(num_feat, num_grow_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.RDB3(self.RDB2(self.RDB1(x))) * _RES_SCALE + x


@ARCH_REGISTRY.register()
class BSRNet(nn.Module):
    """BSRNet/BSRGAN generator (KAIR ``RRDBNet``) for scale 2 or 4.

    Args:
        scale: upscaling factor, 2 or 4 (``sf`` upstream).
        in_ch: input channels (``in_nc``).
        out_ch: output channels (``out_nc``).
        num_feat: trunk features (``nf``).
        num_block: number of RRDBs (``nb``).
        num_grow_ch: growth channels of the dense blocks (``gc``).
    """

    def __init__(self, scale: int = 4, in_ch: int = 3, out_ch: int = 3, num_feat: int = 64,
                 num_block: int = 23, num_grow_ch: int = 32) -> None:
        super().__init__()
        if scale not in (2, 4):
            raise ValueError(f'BSRNet supports scale 2 or 4 (one or two nearest x2 upsampling stages), '
                             f'got scale={scale!r}.')
        self.scale = scale
        self.conv_first = _conv3(in_ch, num_feat)
        self.RRDB_trunk = nn.Sequential(*(RRDB(num_feat, num_grow_ch) for _ in range(num_block)))
        self.trunk_conv = _conv3(num_feat, num_feat)
        self.upconv1 = _conv3(num_feat, num_feat)
        if scale == 4:
            self.upconv2 = _conv3(num_feat, num_feat)
        self.HRconv = _conv3(num_feat, num_feat)
        self.conv_last = _conv3(num_feat, out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.conv_first(x)
        feat = feat + self.trunk_conv(self.RRDB_trunk(feat))
        ups = [self.upconv1] + ([self.upconv2] if self.scale == 4 else [])
        for conv in ups:
            feat = F.leaky_relu(conv(F.interpolate(feat, scale_factor=2, mode='nearest')), _SLOPE, inplace=True)
        return self.conv_last(F.leaky_relu(self.HRconv(feat), _SLOPE, inplace=True))


# BasicSR RRDBNet name <-> KAIR name, for the parts of a key before '.weight'/'.bias'.
_BASICSR_TO_KAIR = [
    (r'conv_first', r'conv_first'),
    (r'body\.(\d+)\.rdb([123])\.conv([1-5])', r'RRDB_trunk.\1.RDB\2.conv\3'),
    (r'conv_body', r'trunk_conv'),
    (r'conv_up1', r'upconv1'),
    (r'conv_up2', r'upconv2'),
    (r'conv_hr', r'HRconv'),
    (r'conv_last', r'conv_last'),
]
_KAIR_TO_BASICSR = [
    (r'conv_first', r'conv_first'),
    (r'RRDB_trunk\.(\d+)\.RDB([123])\.conv([1-5])', r'body.\1.rdb\2.conv\3'),
    (r'trunk_conv', r'conv_body'),
    (r'upconv1', r'conv_up1'),
    (r'upconv2', r'conv_up2'),
    (r'HRconv', r'conv_hr'),
    (r'conv_last', r'conv_last'),
]


def _rename(sd: StateDict, rules: list[tuple[str, str]]) -> StateDict:
    out: StateDict = {}
    for key, value in sd.items():
        new = key
        for pattern, template in rules:
            m = re.fullmatch(rf'{pattern}(\.(?:weight|bias))', key)
            if m:
                new = m.expand(template) + m.group(m.re.groups)
                break
        out[new] = value
    return out


@register_key_converter(BSRNet)
def from_basicsr_rrdbnet(state_dict: StateDict) -> StateDict:
    """Rename a BasicSR ``RRDBNet`` state dict (x4) to BSRNet's KAIR names; unknown keys pass through.

    Raises:
        ValueError: the dict is not a BasicSR RRDBNet one, or it is BasicSR's x2/x1 variant, whose
            ``conv_first`` takes pixel-unshuffled input (12/48 channels for RGB) and so has no BSRNet
            equivalent (BSRNet x2 upsamples a 3-channel input directly).
    """
    if 'conv_body.weight' not in state_dict or 'conv_first.weight' not in state_dict:
        raise ValueError('Not a BasicSR RRDBNet state dict (no conv_body.weight / conv_first.weight).')
    cin = state_dict['conv_first.weight'].shape[1]
    if cin in (12, 48):
        raise ValueError(
            f'BasicSR RRDBNet checkpoint has conv_first with {cin} input channels: it is BasicSR\'s '
            f'pixel-unshuffle x{2 if cin == 12 else 1} variant (RGB x {cin // 3}), which cannot be mapped '
            'to BSRNet (BSRNet x2 takes the 3-channel image and has no pixel-unshuffle). Only BasicSR x4 '
            'RRDBNet checkpoints convert to BSRNet.')
    return _rename(state_dict, _BASICSR_TO_KAIR)


def to_basicsr_rrdbnet(state_dict: StateDict) -> StateDict:
    """Rename a BSRNet (KAIR) x4 state dict to BasicSR ``RRDBNet`` names, e.g. for export.

    Raises:
        ValueError: for x2 weights (no ``upconv2``): BasicSR's x2 RRDBNet pixel-unshuffles its input
            and always has ``conv_up2``, so KAIR x2 weights would not fit it.
    """
    if 'trunk_conv.weight' not in state_dict:
        raise ValueError('Not a BSRNet/KAIR RRDBNet state dict (no trunk_conv.weight).')
    if 'upconv2.weight' not in state_dict:
        raise ValueError('x2 BSRNet weights have no BasicSR RRDBNet equivalent (BasicSR x2 pixel-unshuffles '
                         'to 12 input channels and has two upsampling convs).')
    return _rename(state_dict, _KAIR_TO_BASICSR)
