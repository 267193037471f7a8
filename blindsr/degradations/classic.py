"""The classic blind-SR degradation ``y = (x * k)↓s + n`` in the three variants of DASR, KDSR and CDSR.

The authors' batched GPU copies differ in ways that change numbers (shared/reference/
seed-implementations.md §1.2), so each is a named preset, reproduced as is:

============  ==============================  ===================================  ====================
preset        kernel (21 x 21)                blur + downsampler                   sampling
============  ==============================  ===================================  ====================
``dasr``      sigmas are standard deviations, reflect pad, cross-correlation,      per image; noise
              centred grid                    MATLAB bicubic port with replicate   U[0, noise] per image
                                              borders (antialiased)
``kdsr``      as dasr                         as dasr                              ONE kernel and ONE
                                                                                   noise level per batch
``cdsr_manet`` sigmas are covariance          replicate pad, cross-correlation,    per image; sig2 <=
              eigenvalues (variances), the    s-fold subsampling ``[0::s, 0::s]``  sig1; 20 % of images
              Gaussian on a (21 - s + 1)                                           noise-free
              grid in the top-left corner
============  ==============================  ===================================  ====================

Then Gaussian noise ``N(0, sigma / 255)`` on the LR image and 8-bit quantisation (round, clamp).
``kernel: iso`` draws one width (``sigma_x = sigma_y``, ``theta = 0``); ``aniso`` draws
``sigma_x, sigma_y`` from ``sigma_range`` and ``theta`` ~ U[0, pi). Default ranges per scale: DASR
paper iso [0.2, 2 / 3 / 4] for x2 / x3 / x4 and aniso [0.2, 4] (KDSR trains x4 with the same);
CDSR/MANet [0.175 s, 2.5 s] (variances).

Paired-patch mode (DASR/CDSR contrastive training): ``hr`` of shape (B, N, 3, H, W) holds N patches
per image; the N patches of an image share its kernel and noise level, with independent noise fields.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import Tensor

from blindsr.degradations.blur import blur
from blindsr.degradations.kernels import gaussian_kernels, sample_gaussian_params
from blindsr.degradations.noise import Generators, randn
from blindsr.degradations.pipeline import Pipeline, Streams
from blindsr.degradations.resize import imresize
from blindsr.degradations.resize_modes import quantize
from blindsr.registry import DEGRADATION_REGISTRY

__all__ = ['ClassicDegradation', 'ClassicVariant', 'PRESETS', 'classic_kernels', 'degrade_classic']


@dataclass(frozen=True)
class ClassicVariant:
    """How one author's code blurs, downsamples and samples (see the module docstring)."""
    parameterisation: str  # 'std' | 'variance'
    grid: str  # 'centered' | 'shifted'
    padding: str  # blur padding: 'reflect' | 'replicate'
    downsampler: str  # 'bicubic' (MATLAB port, replicate borders) | 'subsample'
    per_batch: bool = False  # one kernel and noise level for the whole batch
    ordered: bool = False  # aniso: sigma_y ~ U[low, sigma_x]
    clean_rate: float = 0.0  # share of images without noise
    kernel_size: int = 21

    def iso_range(self, scale: int) -> tuple[float, float]:
        if self.parameterisation == 'variance':
            return 0.175 * scale, 2.5 * scale
        return 0.2, {2: 2.0, 3: 3.0}.get(scale, 4.0)

    def aniso_range(self, scale: int) -> tuple[float, float]:
        return (0.175 * scale, 2.5 * scale) if self.parameterisation == 'variance' else (0.2, 4.0)


PRESETS = {
    'dasr': ClassicVariant('std', 'centered', 'reflect', 'bicubic'),
    'kdsr': ClassicVariant('std', 'centered', 'reflect', 'bicubic', per_batch=True),
    'cdsr_manet': ClassicVariant('variance', 'shifted', 'replicate', 'subsample', ordered=True, clean_rate=0.2),
}


def classic_kernels(variant: ClassicVariant, scale: int, sigma_x: Tensor | float, sigma_y: Tensor | float,
                    theta: Tensor | float = 0.0, device: torch.device | str | None = None) -> Tensor:
    """The variant's (B, 21, 21) Gaussian kernels for given widths (``theta`` in radians)."""
    shift = (scale - 1) / 2 if variant.grid == 'shifted' else 0.0
    return gaussian_kernels(variant.kernel_size, sigma_x, sigma_y, theta, variant.parameterisation,
                            variant.grid, shift, device=device)


def degrade_classic(hr: Tensor, kernels: Tensor, noise: Tensor | float, scale: int, variant: ClassicVariant,
                    generator: Generators = None, separable: Tensor | bool = False) -> Tensor:
    """Blur with per-image ``kernels`` (B, k, k), downsample, add noise of per-image level ``noise``
    (8-bit units; scalar or length B), quantise. ``hr`` (B, 3, H, W) or (B, N, 3, H, W) in [0, 1];
    ``generator``: one, or one per image (each draws its N patches' noise fields in turn); ``separable``
    (one bool or per image): the kernel is an outer product (an isotropic Gaussian), blurred as two 1-D
    passes (:func:`~blindsr.degradations.blur.blur`), equal to the 2-D blur up to float rounding."""
    paired = hr.ndim == 5
    b, n = hr.shape[0], hr.shape[1] if paired else 1
    h, w = hr.shape[-2:]
    if h % scale or w % scale:
        raise ValueError(f'HR size {h}x{w} is not a multiple of scale {scale}; mod-crop the HR images first')
    x = hr.reshape(b * n, *hr.shape[-3:])
    kernels = kernels.to(x.device, x.dtype).repeat_interleave(n, 0)
    separable = torch.as_tensor(separable, dtype=torch.bool).cpu().reshape(-1).expand(b).repeat_interleave(n)
    if variant.downsampler == 'bicubic':
        x = imresize(blur(x, kernels, variant.padding, separable=separable), 1 / scale, border='replicate')
    else:  # blur only where [0::s, 0::s] samples it
        x = blur(x, kernels, variant.padding, stride=scale, separable=separable)
    lr = x.reshape(b, n, *x.shape[-3:])
    noise = torch.as_tensor(noise, dtype=lr.dtype, device=lr.device).reshape(-1, 1, 1, 1, 1)
    if bool((noise > 0).any()):
        lr = lr + randn(lr.shape, generator, lr.device, lr.dtype) * noise / 255
    lr = quantize(lr)
    return lr if paired else lr[:, 0]


class ClassicDegradation(Pipeline):
    """Registered as ``classic``: ``{type: classic, preset: dasr, kernel: aniso, noise: 25}``.

    Args:
        scale: integer factor (2, 3, 4 have per-scale default ranges).
        preset: ``'dasr'``, ``'kdsr'`` or ``'cdsr_manet'`` (:data:`PRESETS`).
        kernel: ``'iso'`` or ``'aniso'``.
        sigma_range: kernel width range (std or variance as the preset); default per preset and scale.
        noise: largest noise level (8-bit units); 0 for noise-free training.
        clean_rate: share of noise-free images (default: the preset's; CDSR 0.2).

    ``params``: ``kernel`` (B, 21, 21), ``sigma_x``, ``sigma_y``, ``theta`` (radians), ``noise``.
    """

    def __init__(self, scale: int, preset: str = 'dasr', kernel: str = 'iso',
                 sigma_range: tuple[float, float] | None = None, noise: float = 0.0,
                 clean_rate: float | None = None):
        super().__init__(scale)
        if preset not in PRESETS:
            raise ValueError(f"Unknown classic preset {preset!r}; known: {', '.join(PRESETS)}")
        if kernel not in ('iso', 'aniso'):
            raise ValueError(f"kernel must be 'iso' or 'aniso', got {kernel!r}")
        variant = PRESETS[preset]
        self.variant = variant if clean_rate is None else replace(variant, clean_rate=float(clean_rate))
        self.preset, self.kernel = preset, kernel
        default = variant.iso_range(self.scale) if kernel == 'iso' else variant.aniso_range(self.scale)
        self.sigma_range = tuple(float(v) for v in (sigma_range or default))
        if len(self.sigma_range) != 2 or not 0 <= self.sigma_range[0] <= self.sigma_range[1]:
            raise ValueError(f'sigma_range must be [low, high] with 0 <= low <= high, got {sigma_range}')
        if noise < 0:
            raise ValueError(f'noise must be >= 0, got {noise}')
        self.noise = float(noise)

    def _draw(self, generator: torch.Generator) -> dict[str, Tensor]:
        widths = sample_gaussian_params(1, self.sigma_range, isotropic_prob=float(self.kernel == 'iso'),
                                        ordered=self.variant.ordered, generator=generator)
        noise = torch.rand(1, generator=generator) * self.noise
        clean = torch.rand(1, generator=generator) < self.variant.clean_rate
        return {'sigma_x': widths['sigma_x'], 'sigma_y': widths['sigma_y'], 'theta': widths['theta'],
                'noise': torch.where(clean, 0.0, noise)}

    def degrade(self, hr: Tensor, seeds: list[int]) -> tuple[Tensor, dict]:
        streams = Streams(seeds, hr.device)
        if self.variant.per_batch:
            shared = self._draw(streams.batch)
            params = {k: v.expand(len(streams)).to(hr.device) for k, v in shared.items()}
        else:
            params = streams.draw(self._draw)
        params['kernel'] = classic_kernels(self.variant, self.scale, params['sigma_x'], params['sigma_y'],
                                           params['theta'])
        noise_gen = streams.noise[:1] * len(streams) if self.variant.per_batch else streams.noise
        lr = degrade_classic(hr, params['kernel'], params['noise'], self.scale, self.variant, noise_gen,
                             separable=params['sigma_x'] == params['sigma_y'])  # isotropic
        return lr, params

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(scale={self.scale}, preset={self.preset!r}, kernel={self.kernel!r}, '
                f'sigma_range={self.sigma_range}, noise={self.noise}, clean_rate={self.variant.clean_rate})')


DEGRADATION_REGISTRY._do_register('classic', ClassicDegradation)
