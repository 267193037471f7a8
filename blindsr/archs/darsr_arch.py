"""DARSR's per-image networks (Zhou et al., ICCV 2023), in the authors' parameter layout (edbca/DARSR
modules.py): the KernelGAN-style linear downsampler, its spectral-norm patch discriminator, the degradation
score network DSEM and the degradation-adaptive regression module DARM over a fixed filter dictionary.

All four are trained from scratch on each test image by :class:`blindsr.models.darsr_model.DARSRModel`;
each constructor draws the authors' initialisation. Tensors are RGB in [0, 1].
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from blindsr.archs.darsr_filters import load_filter_dictionary, make_filter_dictionary
from blindsr.registry import ARCH_REGISTRY

__all__ = ['DARM', 'DSEM', 'KernelGANDiscriminator', 'LinearDownsampler']


@ARCH_REGISTRY.register()
class LinearDownsampler(nn.Module):
    """KernelGAN's G: a bias-free, activation-free conv stack 7x7, 5x5, 3x3 (stride ``scale``), 1x1, 1x1,
    1x1 with ``features`` channels, run on each RGB channel as its own 1-channel image, no padding (a 128
    crop gives 58 at x2, 29 at x4). Being linear, it is one strided correlation with the 13x13 kernel
    :meth:`effective_kernel`. Init: N(1/n, 1/n), n = fan-in."""

    kernel_size = 13  # 7 + 5 + 3 - 2

    def __init__(self, scale: int = 2, features: int = 64) -> None:
        super().__init__()
        self.scale = scale
        self.first_layer = nn.Conv2d(1, features, 7, bias=False)
        self.feature_block = nn.Sequential(nn.Conv2d(features, features, 5, bias=False),
                                           nn.Conv2d(features, features, 3, stride=scale, bias=False),
                                           nn.Conv2d(features, features, 1, bias=False),
                                           nn.Conv2d(features, features, 1, bias=False))
        self.final_layer = nn.Conv2d(features, 1, 1, bias=False)
        with torch.no_grad():
            for conv in self.modules():
                if isinstance(conv, nn.Conv2d):
                    n = conv.weight[0].numel()
                    conv.weight.normal_(1 / n, 1 / n)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        out = self.final_layer(self.feature_block(self.first_layer(x.reshape(b * c, 1, h, w))))
        return out.reshape(b, c, *out.shape[-2:])

    def effective_kernel(self) -> Tensor:
        """The 13x13 kernel k with ``G(x) == conv2d(x, k, stride=scale)`` per channel (correlation): a delta
        pushed through every layer's weights (full correlation, stride ignored), flipped — KernelGAN's
        ``calc_curr_k``; differentiable in the weights."""
        k = self.first_layer.weight.new_ones(1, 1, 1, 1)
        for w in self.parameters():
            k = F.conv2d(k, w, padding=w.shape[-1] - 1)
        return k.squeeze().flip([0, 1])


@ARCH_REGISTRY.register()
class KernelGANDiscriminator(nn.Module):
    """KernelGAN's patch D: spectral-norm 7x7 conv 3 -> ``features`` (no activation), ``layers - 2`` x
    [spectral-norm 1x1 conv, BatchNorm, ReLU], spectral-norm 1x1 conv -> 1, Sigmoid; the map is 6 px smaller
    than the input. Init as the authors' code has it in effect: PyTorch's default conv weights, zero biases,
    BN weights N(1, 0.02). (Their xavier-normal gain-0.1 init writes into the ``weight`` that spectral norm
    recomputes from ``weight_orig`` at every forward, so it changes nothing.) As the authors' constructor
    does, one forward of a 128x128 ones image comes first (it advances the spectral-norm power iteration
    and the BN running statistics once)."""

    def __init__(self, layers: int = 7, features: int = 64, kernel_size: int = 7) -> None:
        super().__init__()
        sn = nn.utils.spectral_norm
        self.first_layer = sn(nn.Conv2d(3, features, kernel_size))
        block: list[nn.Module] = []
        for _ in range(layers - 2):
            block += [sn(nn.Conv2d(features, features, 1)), nn.BatchNorm2d(features), nn.ReLU(True)]
        self.feature_block = nn.Sequential(*block)
        self.final_layer = nn.Sequential(sn(nn.Conv2d(features, 1, 1)), nn.Sigmoid())
        with torch.no_grad():
            self(torch.ones(1, 3, 128, 128))
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    m.bias.zero_()
                elif isinstance(m, nn.BatchNorm2d):
                    m.weight.normal_(1.0, 0.02)
                    m.bias.zero_()

    def forward(self, x: Tensor) -> Tensor:
        return self.final_layer(self.feature_block(self.first_layer(x)))


class _ResidualBlock(nn.Module):
    """conv3x3-ReLU-conv3x3 plus the input, no BN, PyTorch's default init (BasicSR's block rescales it)."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, 3, 1, 1)
        self.conv2 = nn.Conv2d(features, features, 3, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(F.relu(self.conv1(x)))


@ARCH_REGISTRY.register()
class DSEM(nn.Module):
    """Degradation score estimation: conv 3 -> 64, [2 residual blocks, stride-2 conv] at 64 and 128, 2 blocks
    at 256, global average pool, Linear(256, 256), ReLU, Linear(256, 1), Sigmoid: one score per image
    (0: bicubic-like, 1: this image's degradation). PyTorch's default init."""

    def __init__(self, in_ch: int = 3, features: tuple[int, ...] = (64, 128, 256), blocks: int = 2) -> None:
        super().__init__()
        self.conv_first = nn.Conv2d(in_ch, features[0], 3, 1, 1)
        body: list[nn.Module] = []
        for stage, width in enumerate(features):
            body += [_ResidualBlock(width) for _ in range(blocks)]
            if stage < len(features) - 1:
                body.append(nn.Conv2d(width, features[stage + 1], 3, 2, 1))
        self.body = nn.Sequential(*body)
        self.fc_degree = nn.Sequential(nn.Linear(features[-1], 256), nn.ReLU(True), nn.Linear(256, 1), nn.Sigmoid())

    def forward(self, x: Tensor) -> Tensor:
        return self.fc_degree(self.body(self.conv_first(x)).mean((2, 3))).squeeze(-1)


def _channel_attention(features: int) -> nn.Sequential:
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(features, features // 16, 1), nn.ReLU(True),
                         nn.Conv2d(features // 16, features, 1), nn.Sigmoid())


def _two_convs(features: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(features, features, 3, 1, 1), nn.ReLU(True),
                         nn.Conv2d(features, features, 3, 1, 1), nn.ReLU(True))


@ARCH_REGISTRY.register()
class DARM(nn.Module):
    """Degradation-adaptive regression: a conv trunk (head 3x3 3 -> 128, two [conv, ReLU] pairs, channel
    attention, two more, channel attention, tail 3x3 -> N) predicts N coefficients per pixel, shared by R, G
    and B; the output is, per channel, the coefficient-weighted sum of the N responses of the reflect-padded
    input to the dictionary's 5x5 filters. No residual path, no normalisation of the coefficients.
    Init: kaiming-normal (fan-in, ReLU), zero biases.

    ``filters``: the dictionary — a file (the authors' ``kernel_72_k5.pkl`` or a tensor file, see
    :func:`blindsr.archs.darsr_filters.load_filter_dictionary`), ``'generated'`` (blindsr's own 72 filters,
    :func:`~blindsr.archs.darsr_filters.make_filter_dictionary`) or an (N, 5, 5) tensor. It is a buffer
    outside the state dict, so the authors' DARM weights load strictly.
    """

    def __init__(self, filters: str | Tensor = 'generated', channels: int = 3, features: int = 128) -> None:
        super().__init__()
        if isinstance(filters, Tensor):
            bank = filters
        elif filters == 'generated':
            bank = make_filter_dictionary()
        else:
            bank = load_filter_dictionary(Path(filters))
        bank = bank.float()
        self.register_buffer('filters', bank.reshape(-1, 1, *bank.shape[-2:]), persistent=False)
        self.head = nn.Conv2d(channels, features, 3, 1, 1)
        self.head1 = _two_convs(features)
        self.conv_du = _channel_attention(features)
        self.head2 = _two_convs(features)
        self.conv_du2 = _channel_attention(features)
        self.tail = nn.Conv2d(features, len(bank), 3, 1, 1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, a=0, mode='fan_in', nonlinearity='relu')
                nn.init.zeros_(m.bias)

    def coefficients(self, x: Tensor) -> Tensor:
        """(B, N, H, W): the per-pixel weights of the N filter responses."""
        w = self.head1(self.head(x))
        w = w * self.conv_du(w)
        w = self.head2(w)
        return self.tail(w * self.conv_du2(w))

    def responses(self, x: Tensor) -> Tensor:
        """(B, C, N, H, W): each channel of ``x`` correlated with each filter, reflect padding."""
        b, c, h, w = x.shape
        pad = self.filters.shape[-1] // 2
        x_pad = F.pad(x, (pad, pad, pad, pad), mode='reflect').reshape(b * c, 1, h + 2 * pad, w + 2 * pad)
        return F.conv2d(x_pad, self.filters).reshape(b, c, -1, h, w)

    def combine(self, coefficients: Tensor, responses: Tensor) -> Tensor:
        return (coefficients.unsqueeze(1) * responses).sum(2)

    def forward(self, x: Tensor) -> Tensor:
        return self.combine(self.coefficients(x), self.responses(x))
