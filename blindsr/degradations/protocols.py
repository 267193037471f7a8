"""Benchmark test-set protocols: fixed, versioned recipes that turn HR images into LR test images.

Evaluation numbers are only comparable when test sets are made exactly as the authors made them, so
each protocol is a named function here, and ``scripts/make_testsets.py`` writes its output as PNGs
plus a JSON of the exact parameters per image. A protocol maps one HR image (1, 3, H, W) in [0, 1],
already mod-cropped to the scale, to a list of ``(setting, lr, params)``: one LR image per setting
(e.g. per kernel width). Same inputs and seed give byte-identical PNGs.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from blindsr.degradations.bicubic import BicubicDegradation
from blindsr.degradations.bsrgan import BSRGANDegradation
from blindsr.degradations.classic import PRESETS, ClassicVariant, classic_kernels, degrade_classic
from blindsr.degradations.pipeline import sample_seeds

PROTOCOL_VERSION = 2  # 2: gaussian8, dasr_iso, dasr_aniso_noise, manet9, bsrgan (+ kdsr_aniso_noise, new)

Setting = tuple[str, torch.Tensor, dict]
Protocol = Callable[[torch.Tensor, int, torch.Generator], list[Setting]]


def bicubic(hr: torch.Tensor, scale: int, generator: torch.Generator) -> list[Setting]:
    """'BI': MATLAB ``imresize(HR, 1/s, 'bicubic')`` with antialiasing, quantised to 8 bits."""
    lr, _ = BicubicDegradation(scale)(hr, generator)
    return [('bicubic', lr, {'downsampler': 'matlab_bicubic', 'antialias': True, 'quantize': 8})]


def _classic(hr: torch.Tensor, scale: int, generator: torch.Generator, variant: ClassicVariant, name: str,
             sigma_x: float, sigma_y: float, theta: float = 0.0, noise: float = 0.0) -> Setting:
    """One fixed classic degradation (``theta`` in radians, ``noise`` in 8-bit units)."""
    kernel = classic_kernels(variant, scale, sigma_x, sigma_y, theta, device=hr.device)
    lr = degrade_classic(hr, kernel, noise, scale, variant, generator)
    return name, lr, {'sigma_x': sigma_x, 'sigma_y': sigma_y, 'theta': theta, 'noise': noise,
                      'kernel': kernel[0].tolist()}


def _scales(table: dict[int, list[float]], protocol: str, scale: int) -> list[float]:
    if scale not in table:
        raise ValueError(f"protocol '{protocol}' is defined for scales {sorted(table)}, not {scale}")
    return table[scale]


GAUSSIAN8 = {2: [0.9 + 0.1 * i for i in range(8)], 4: [1.8 + 0.2 * i for i in range(8)]}
DASR_ISO = {2: [0.0, 0.6, 1.2, 1.8], 3: [0.0, 0.8, 1.6, 2.4], 4: [0.0, 1.2, 2.4, 3.6]}
#: (lambda_1, lambda_2, theta in degrees): DASR's test.sh example and KDSR's shipped aniso test.
DASR_ANISO = [(0.2, 4.0, 0.0), (3.5, 1.5, 30.0)]
DASR_NOISE = [0.0, 5.0, 10.0]


def gaussian8(hr: torch.Tensor, scale: int, generator: torch.Generator) -> list[Setting]:
    """KDSR/IKC 'Gaussian8': eight isotropic widths (x4 1.8..3.2, x2 0.9..1.6), KDSR's degradation
    (reflect pad, MATLAB-bicubic port, no noise)."""
    return [_classic(hr, scale, generator, PRESETS['kdsr'], f'sig{s:.1f}', round(s, 4), round(s, 4))
            for s in _scales(GAUSSIAN8, 'gaussian8', scale)]


def dasr_iso(hr: torch.Tensor, scale: int, generator: torch.Generator) -> list[Setting]:
    """DASR Table 2: noise-free isotropic widths per scale (0 = bicubic only)."""
    return [_classic(hr, scale, generator, PRESETS['dasr'], f'sig{s:.1f}', s, s)
            for s in _scales(DASR_ISO, 'dasr_iso', scale)]


def dasr_aniso_noise(hr: torch.Tensor, scale: int, generator: torch.Generator,
                     kernels: list[tuple[float, float, float]] = DASR_ANISO,
                     noises: list[float] = DASR_NOISE) -> list[Setting]:
    """DASR's general setting on a grid: each (lambda_1, lambda_2, theta in degrees) of ``kernels``
    with each noise level of ``noises`` (standard deviations, DASR preset)."""
    return [_classic(hr, scale, generator, PRESETS['dasr'], f'l{l1:g}_{l2:g}_t{t:g}_n{n:g}', l1, l2,
                     math.radians(t), n) for l1, l2, t in kernels for n in noises]


def kdsr_aniso_noise(hr: torch.Tensor, scale: int, generator: torch.Generator) -> list[Setting]:
    """KDSR's aniso+noise test: each (lambda_1, lambda_2, theta) of ``DASR_ANISO`` (KDSR's shipped script:
    3.5, 1.5, 30) with noise 10, the level its trainer hard-codes (KDSR preset: noise / 255, then 8 bit)."""
    return [_classic(hr, scale, generator, PRESETS['kdsr'], f'l{l1:g}_{l2:g}_t{t:g}_n10', l1, l2, math.radians(t), 10.0)
            for l1, l2, t in DASR_ANISO]


def manet_kernels(scale: int) -> list[tuple[float, float, float]]:
    """MANet's nine test kernels (variances sig1 >= sig2, theta 0 or pi/4; no pi/4 when round)."""
    widths = [1.0, 1.0 + scale, 1.0 + 2 * scale]
    return [(s1, s2, t) for s1 in widths for s2 in widths if s2 <= s1
            for t in ((0.0,) if s1 == s2 else (0.0, math.pi / 4))]


def manet9(hr: torch.Tensor, scale: int, generator: torch.Generator) -> list[Setting]:
    """CDSR/MANet: nine anisotropic kernels (shifted grid, replicate pad, s-fold subsampling), noise 0,
    and at x4 also noise 15."""
    noises = [0.0, 15.0] if scale == 4 else [0.0]
    return [_classic(hr, scale, generator, PRESETS['cdsr_manet'], f'noise{n:g}_{s1:g}_{s2:g}_{t:.3f}', s1, s2, t, n)
            for n in noises for s1, s2, t in manet_kernels(scale)]


def bsrgan(hr: torch.Tensor, scale: int, generator: torch.Generator) -> list[Setting]:
    """One BSRGAN degradation per image, drawn from the image's generator (the protocol's seed)."""
    seeds = sample_seeds(1, generator)
    lr, params = BSRGANDegradation(scale).degrade(hr, seeds)
    record = {k: v[0].tolist() for k, v in params.items()}
    return [('bsrgan', lr, {'seed': seeds[0], **record})]


PROTOCOLS: dict[str, Protocol] = {
    'bicubic': bicubic,
    'gaussian8': gaussian8,
    'dasr_iso': dasr_iso,
    'dasr_aniso_noise': dasr_aniso_noise,
    'kdsr_aniso_noise': kdsr_aniso_noise,
    'manet9': manet9,
    'bsrgan': bsrgan,
}


def get_protocol(name: str) -> Protocol:
    if name not in PROTOCOLS:
        raise ValueError(f"Unknown test-set protocol '{name}'; known: {', '.join(sorted(PROTOCOLS))}.")
    return PROTOCOLS[name]
