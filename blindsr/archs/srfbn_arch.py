"""SRFBN (Li et al., CVPR 2019): super-resolution feedback network, and SRFBN-S, its small version.

A feedback block runs ``num_steps`` times; its output at one step is its hidden state at the next.
Each step's image is the bilinear upsampling of the mean-shifted input plus a reconstruction from
the block output. SRFBN-S (32 features, 4 steps, 3 groups, bicubic-trained) is the off-the-shelf SR
network DARSR corrects for; its released weights load here strictly (parameter names as in
Paper99/SRFBN_CVPR19; the ``module.`` prefix of the files is stripped by ``load_pretrained``).

blindsr convention: input RGB in [0, 1], output the last step's image in [0, 1] units (unclamped).
The network itself works in 0..``rgb_range`` (255, as trained); ``forward(x, all_steps=True)``
returns every step's output.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from blindsr.archs.common import MeanShift
from blindsr.registry import ARCH_REGISTRY

# (kernel, stride, padding) of the up/down projection (de)convolutions per scale
_PROJECTION = {2: (6, 2, 2), 3: (7, 3, 2), 4: (8, 4, 2), 8: (12, 8, 2)}


ACTIVATIONS = ('prelu', 'relu', 'lrelu')


def _act(act_type: str) -> nn.Module:
    """PReLU (one shared slope, initialised at 0.2), ReLU or LeakyReLU(0.2), as in the authors' code."""
    if act_type == 'prelu':
        return nn.PReLU(1, 0.2)
    if act_type == 'relu':
        return nn.ReLU(inplace=True)
    if act_type == 'lrelu':
        return nn.LeakyReLU(0.2, inplace=True)
    raise ValueError(f'act_type must be one of {ACTIVATIONS}, got {act_type!r}')


def _conv(cin: int, cout: int, kernel: int, stride: int = 1, padding: int | None = None,
          act_type: str | None = 'prelu') -> nn.Sequential:
    """conv (+ activation), keys ``.0`` and ``.1``."""
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2 if padding is None else padding)]
    if act_type:
        layers.append(_act(act_type))
    return nn.Sequential(*layers)


def _deconv(cin: int, cout: int, kernel: int, stride: int, padding: int, act_type: str = 'prelu') -> nn.Sequential:
    return nn.Sequential(nn.ConvTranspose2d(cin, cout, kernel, stride, padding), _act(act_type))


class _FeedbackBlock(nn.Module):
    """``num_groups`` up/down projection groups with dense 1x1 transitions; hidden state = last output."""

    def __init__(self, num_features: int, num_groups: int, scale: int, act_type: str) -> None:
        super().__init__()
        kernel, stride, padding = _PROJECTION[scale]
        f, a = num_features, act_type
        self.compress_in = _conv(2 * f, f, 1, act_type=a)
        self.upBlocks = nn.ModuleList(_deconv(f, f, kernel, stride, padding, a) for _ in range(num_groups))
        self.downBlocks = nn.ModuleList(_conv(f, f, kernel, stride, padding, a) for _ in range(num_groups))
        self.uptranBlocks = nn.ModuleList(_conv(f * (i + 1), f, 1, act_type=a) for i in range(1, num_groups))
        self.downtranBlocks = nn.ModuleList(_conv(f * (i + 1), f, 1, act_type=a) for i in range(1, num_groups))
        self.compress_out = _conv(num_groups * f, f, 1, act_type=a)

    def forward(self, x: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        low = [self.compress_in(torch.cat((x, hidden), 1))]
        high: list[torch.Tensor] = []
        for i, (up, down) in enumerate(zip(self.upBlocks, self.downBlocks)):
            lr = torch.cat(low, 1)
            high.append(up(self.uptranBlocks[i - 1](lr) if i else lr))
            hr = torch.cat(high, 1)
            low.append(down(self.downtranBlocks[i - 1](hr) if i else hr))
        return self.compress_out(torch.cat(low[1:], 1))


@ARCH_REGISTRY.register()
class SRFBN(nn.Module):
    """SRFBN without normalisation (as released); ``act_type`` 'prelu' (the authors' choice), 'relu', 'lrelu'.

    As in the authors' code, the reconstruction deconvolution ``out`` always uses PReLU.
    """

    def __init__(self, scale: int = 4, in_ch: int = 3, out_ch: int = 3, num_features: int = 64,
                 num_steps: int = 4, num_groups: int = 6, act_type: str = 'prelu',
                 rgb_range: float = 255.0) -> None:
        super().__init__()
        if scale not in _PROJECTION:
            raise ValueError(f'SRFBN supports scales {sorted(_PROJECTION)}, got {scale}.')
        kernel, stride, padding = _PROJECTION[scale]
        self.scale, self.num_steps, self.rgb_range = scale, num_steps, rgb_range
        self.sub_mean = MeanShift(rgb_range, -1)
        self.conv_in = _conv(in_ch, 4 * num_features, 3, act_type=act_type)
        self.feat_in = _conv(4 * num_features, num_features, 1, act_type=act_type)
        self.block = _FeedbackBlock(num_features, num_groups, scale, act_type)
        self.out = _deconv(num_features, num_features, kernel, stride, padding)
        self.conv_out = _conv(num_features, out_ch, 3, act_type=None)
        self.add_mean = MeanShift(rgb_range, 1)

    def forward(self, x: torch.Tensor, all_steps: bool = False) -> torch.Tensor | list[torch.Tensor]:
        x = self.sub_mean(x * self.rgb_range)
        upsampled = F.interpolate(x, scale_factor=self.scale, mode='bilinear', align_corners=False)
        feat = self.feat_in(self.conv_in(x))
        hidden, outs = feat, []
        for _ in range(self.num_steps):
            hidden = self.block(feat, hidden)
            outs.append(self.add_mean(upsampled + self.conv_out(self.out(hidden))) / self.rgb_range)
        return outs if all_steps else outs[-1]


@ARCH_REGISTRY.register()
class SRFBN_S(SRFBN):  # the published name
    """SRFBN-S: 32 features, 4 steps, 3 groups (483K parameters at x4)."""

    def __init__(self, scale: int = 4, num_features: int = 32, num_steps: int = 4, num_groups: int = 3,
                 **kwargs) -> None:
        super().__init__(scale=scale, num_features=num_features, num_steps=num_steps, num_groups=num_groups,
                         **kwargs)
