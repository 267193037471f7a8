"""Layers shared by the EDSR-descended archs (SRFBN, DASR, KDSR, CDSR): MeanShift, the upsampler, the
per-sample depthwise conv whose kernels a degradation representation predicts (DASR's DA conv, KDSR's
IDR-DDC, CDSR's DQA), and DASR's channel attention, DA conv and DA block (CDSR reuses them)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

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


SLOPE = 0.1  # the LeakyReLU slope of the DASR family (DASR, KDSR, CDSR)


def lrelu() -> nn.LeakyReLU:
    """LeakyReLU(SLOPE), in place."""
    return nn.LeakyReLU(SLOPE, inplace=True)


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


def per_sample_depthwise_conv(x: Tensor, kernels: Tensor, negative_slope: float | None = None) -> Tensor:
    """Depthwise conv of each sample with its own kernels: ``x`` (B, C, H, W), ``kernels`` (B, C, k, k),
    odd k, zero padding k // 2 (cross-correlation, as ``F.conv2d``); returns (B, C, H, W).

    ``negative_slope``: a LeakyReLU applied in place to the grouped conv's (1, B C, H, W) output before
    it is reshaped back. The same op applied in place to the reshaped view would make autograd rebase
    the view (a CopySlices node: a zero-filled gradient and copies of the whole output in every backward).
    """
    b, c, h, w = x.shape
    size = kernels.shape[-1]
    out = F.conv2d(x.reshape(1, b * c, h, w), kernels.reshape(b * c, 1, size, size), padding=size // 2,
                   groups=b * c)
    if negative_slope is not None:
        F.leaky_relu_(out, negative_slope)
    return out.reshape(b, c, h, w)


class DynamicDepthwiseConv(nn.Module):
    """``forward(x, d)``: a 3x3 depthwise conv of ``x`` (B, C, H, W) with kernels predicted per sample from
    the degradation vector ``d`` (B, deg_dim) by ``kernel`` = Linear(deg_dim, deg_dim, no bias),
    LeakyReLU(0.1), Linear(deg_dim, 9 C, no bias); the conv's output goes through LeakyReLU(0.1) (DASR's
    DA-conv branch and KDSR's IDR-DDC, each with the activation its block applies next)."""

    def __init__(self, channels: int, deg_dim: int) -> None:
        super().__init__()
        self.kernel = nn.Sequential(nn.Linear(deg_dim, deg_dim, bias=False), lrelu(),
                                    nn.Linear(deg_dim, channels * 9, bias=False))

    def forward(self, x: Tensor, d: Tensor) -> Tensor:
        b, c = x.shape[:2]
        return per_sample_depthwise_conv(x, self.kernel(d).reshape(b, c, 3, 3), negative_slope=SLOPE)


class DegradationChannelAttention(nn.Module):
    """Channel weights from the degradation vector alone: 1x1 convs C_d -> C_d / r -> C, sigmoid."""

    def __init__(self, deg_dim: int, channels: int, reduction: int):
        super().__init__()
        self.conv_du = nn.Sequential(nn.Conv2d(deg_dim, deg_dim // reduction, 1, bias=False),
                                     lrelu(),
                                     nn.Conv2d(deg_dim // reduction, channels, 1, bias=False), nn.Sigmoid())

    def forward(self, x: Tensor, d: Tensor) -> Tensor:
        return x * self.conv_du(d[:, :, None, None])


class DAConv(DynamicDepthwiseConv):
    """DASR's DA conv: the per-sample depthwise 3x3 conv (kernels predicted from ``d``), LReLU, a 1x1 conv;
    plus the input scaled by a channel attention."""

    def __init__(self, channels: int, deg_dim: int, reduction: int):
        super().__init__(channels, deg_dim)
        self.conv = nn.Conv2d(channels, channels, 1)
        self.ca = DegradationChannelAttention(deg_dim, channels, reduction)

    def forward(self, x: Tensor, d: Tensor) -> Tensor:
        out = self.conv(super().forward(x, d))
        return out + self.ca(x, d)


class DABlock(nn.Module):
    """DASR's DA block: DA conv, LReLU, 3x3 conv, LReLU, DA conv, LReLU, 3x3 conv; plus the input.
    ``da_conv``: the conditioned conv's class (CDSR's FuseBLK is this block with its domain-query attention
    conv)."""

    def __init__(self, channels: int, deg_dim: int, reduction: int, da_conv: type[nn.Module] = DAConv):
        super().__init__()
        self.da_conv1 = da_conv(channels, deg_dim, reduction)
        self.da_conv2 = da_conv(channels, deg_dim, reduction)
        self.conv1 = nn.Conv2d(channels, channels, 3, 1, 1)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1)

    def forward(self, x: Tensor, d: Tensor) -> Tensor:
        out = F.leaky_relu(self.da_conv1(x, d), SLOPE, inplace=True)
        out = F.leaky_relu(self.conv1(out), SLOPE, inplace=True)
        out = F.leaky_relu(self.da_conv2(out, d), SLOPE, inplace=True)
        return self.conv2(out) + x
