"""Layers shared by the EDSR-descended archs (SRFBN, DASR, KDSR, CDSR): MeanShift and the upsampler."""

from __future__ import annotations

import math

import torch
from torch import nn

DIV2K_MEAN = (0.4488, 0.4371, 0.4040)


class MeanShift(nn.Conv2d):
    """Frozen 1x1 conv adding (sign +1) or subtracting (-1) the DIV2K mean in 0..rgb_range (std 1).

    Its weight and bias are in the state dict, as in the authors' checkpoints.
    """

    def __init__(self, rgb_range: float, sign: int) -> None:
        super().__init__(3, 3, 1)
        with torch.no_grad():
            self.weight.copy_(torch.eye(3).view(3, 3, 1, 1))
            self.bias.copy_(sign * rgb_range * torch.tensor(DIV2K_MEAN))
        self.requires_grad_(False)


def upsampler(scale: int, num_feat: int) -> nn.Sequential:
    """EDSR's upsampler: per factor 2 a 3x3 conv C -> 4C + PixelShuffle(2); for 3, C -> 9C + PS(3)."""
    layers: list[nn.Module] = []
    if scale & (scale - 1) == 0:
        for _ in range(int(math.log2(scale))):
            layers += [nn.Conv2d(num_feat, 4 * num_feat, 3, 1, 1), nn.PixelShuffle(2)]
    elif scale == 3:
        layers += [nn.Conv2d(num_feat, 9 * num_feat, 3, 1, 1), nn.PixelShuffle(3)]
    else:
        raise ValueError(f'scale must be a power of 2 or 3, got {scale}')
    return nn.Sequential(*layers)
