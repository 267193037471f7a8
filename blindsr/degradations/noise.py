"""Batched noise models of Real-ESRGAN and BSRGAN on (B, C, H, W) tensors in [0, 1], on any device.

Each model is a sampler (``sample_*``: per-sample parameters as tensors of length B, drawn with an
optional ``torch.Generator`` on the target device) and an application (``add_*``: the parameters as
1-D tensors of length B or scalars, plus the generator for the noise itself), so that pipelines can
record what they drew. No per-sample Python loops except where each sample draws from its own
generator or draws a shape of its own (BSRGAN's gray noise); nothing waits for the device except
:func:`sample_bsrgan_gaussian_noise`, whose batched 3x3 SVD and eigendecomposition check their results
on the host, and the BSRGAN ``add_*`` functions given ``mix`` / ``gray`` on the device, which read them
on the host (one synchronisation per call on CUDA; the pipelines pass them on the CPU).

Real-ESRGAN (BasicSR ``basicsr/data/degradations.py``, ``*_pt`` functions):

- Gaussian: ``sigma`` in 8-bit units, noise ``N(0, 1) * sigma / 255``; gray samples use one field for
  all channels. BasicSR draws one (H, W) gray field shared by the whole batch (scaled per sample by
  sigma); here every gray sample gets its own field (channel 0 of its colour draw), so a batch holds
  independent samples. With one image, or no gray sample, the output equals BasicSR's bit for bit under
  the same global seed.
- Poisson: the image is rounded to 8-bit levels, ``vals = 2 ** ceil(log2(n))`` with ``n`` the number of
  distinct levels in the image (all channels; BasicSR counts them with ``torch.unique`` per image, here
  with one batched presence table), noise ``(poisson(q * vals) / vals - q) * scale`` added to the
  unrounded image. Gray samples do the same on ``0.2989 R + 0.587 G + 0.114 B`` (torchvision's
  ``rgb_to_grayscale``) and add the result to all channels.

BSRGAN / BSRGAN+ (KAIR ``utils/utils_blindsr.py``):

- ``add_Gaussian_noise`` / ``add_speckle_noise``: level ``randint(2, 25)`` (inclusive); with r ~ U[0, 1)
  colour noise if r > 0.6, gray if r < 0.4, else channel-correlated noise with covariance
  ``|L^2 U^T D U|`` (element-wise absolute value; L = the upper bound / 255, not the drawn level;
  D = diag of 3 draws of U[0, 1); U = the left singular vectors of a 3x3 matrix of U[0, 1) draws, as
  ``scipy.linalg.orth`` gives them). All three branches are one per-pixel product ``mix @ z`` with
  z ~ N(0, I_3): ``mix`` is ``sigma I`` (colour), ``sigma`` in column 0 (gray) or ``Q diag(sqrt|lambda|)``
  from the eigendecomposition of the covariance (what numpy's SVD-based ``multivariate_normal`` samples;
  the covariance was positive semi-definite in 20,000 of 20,000 draws). A gray sample draws only z's
  first field, (1, H, W), as KAIR does. Speckle is multiplicative: ``x + x * noise`` after clipping ``x``.
- ``add_Poisson_noise`` (BSRGAN+): the image is rounded to 8-bit levels, ``vals = 10 ** (2 U + 2)``;
  with probability 0.5 ``poisson(q * vals) / vals`` (colour), else gray noise on
  ``round8(0.299 R + 0.587 G + 0.114 B)`` (drawn over the gray image only, as KAIR does) added to all
  channels of the rounded image; clipped.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = [
    'sample_gaussian_noise', 'add_gaussian_noise', 'sample_poisson_noise', 'add_poisson_noise',
    'sample_bsrgan_gaussian_noise', 'draw_bsrgan_gaussian_noise', 'bsrgan_noise_mix',
    'add_bsrgan_gaussian_noise', 'add_speckle_noise',
    'sample_bsrgan_poisson_noise', 'add_bsrgan_poisson_noise', 'COLOUR', 'GRAY', 'CORRELATED', 'randn', 'poisson',
]

Scalar = Tensor | float | bool
#: One generator for the batch, or one per sample (a sample's noise then does not depend on the rest
#: of the batch: what the pipelines use, so batched and per-sample runs agree).
Generators = torch.Generator | Sequence[torch.Generator] | None

_TORCHVISION_GRAY = (0.2989, 0.587, 0.114)
_KAIR_GRAY = (0.299, 0.587, 0.114)
COLOUR, GRAY, CORRELATED = 0, 1, 2  # values of the ``branch`` parameter of the BSRGAN samplers


def _device(generator: torch.Generator | None, device: torch.device | str | None) -> torch.device:
    return generator.device if generator is not None else torch.device(device or 'cpu')


def _uniform(batch: int, low: float, high: float, generator: torch.Generator | None,
             device: torch.device) -> Tensor:
    return torch.rand(batch, generator=generator, device=device) * (high - low) + low


def _per_sample(value: Scalar, x: Tensor, dtype: torch.dtype | None = None) -> Tensor:
    """A scalar or a length-B tensor as a (1 or B, 1, 1, 1) tensor on ``x``'s device."""
    return torch.as_tensor(value, device=x.device, dtype=dtype or x.dtype).reshape(-1, 1, 1, 1)


def _finish(out: Tensor, clip: bool, rounds: bool) -> Tensor:
    if rounds:
        out = (out * 255.0).round()
        return out.clamp(0, 255) / 255.0 if clip else out / 255.0
    return out.clamp(0, 1) if clip else out


def randn(shape: torch.Size | tuple[int, ...], generator: Generators, device: torch.device,
          dtype: torch.dtype = torch.float32) -> Tensor:
    """Standard normal noise of ``shape`` (B, ...) from one generator or one per sample."""
    if isinstance(generator, Sequence):  # each row filled in place: the same draws as randn + stack, one pass fewer
        out = torch.empty(shape, device=device, dtype=dtype)
        for row, g in zip(out, generator, strict=True):
            row.normal_(generator=g)
        return out
    return torch.randn(shape, generator=generator, device=device, dtype=dtype)


def poisson(rates: Tensor, generator: Generators) -> Tensor:
    """``torch.poisson(rates)`` from one generator or one per sample."""
    if isinstance(generator, Sequence):
        return torch.stack([torch.poisson(r, generator=g) for r, g in zip(rates, generator)])
    return torch.poisson(rates, generator=generator)


def _round8(x: Tensor) -> Tensor:
    return (x * 255.0).round().clamp(0, 255) / 255.0


def _gray(x: Tensor, weights: tuple[float, float, float]) -> Tensor:
    r, g, b = x.unbind(1)
    return (weights[0] * r + weights[1] * g + weights[2] * b).unsqueeze(1)


# ----------------------------------------------------------------------------- Real-ESRGAN


def sample_gaussian_noise(batch: int, sigma_range: tuple[float, float] = (1.0, 30.0),
                          gray_prob: float = 0.4, generator: torch.Generator | None = None,
                          device: torch.device | str | None = None) -> dict[str, Tensor]:
    """``sigma`` ~ U[sigma_range] (8-bit units) and ``gray`` ~ Bernoulli(gray_prob), drawn in
    BasicSR's order (``random_generate_gaussian_noise_pt``)."""
    device = _device(generator, device)
    sigma = _uniform(batch, *sigma_range, generator, device)
    gray = torch.rand(batch, generator=generator, device=device) < gray_prob
    return {'sigma': sigma, 'gray': gray}


def add_gaussian_noise(x: Tensor, sigma: Scalar, gray: Scalar = False,
                       generator: Generators = None, clip: bool = True,
                       rounds: bool = False) -> Tensor:
    """``x + N(0, 1) * sigma / 255``, one noise field for all channels where ``gray``."""
    z = randn(x.shape, generator, x.device, x.dtype)
    z = torch.where(_per_sample(gray, x, torch.bool), z[:, :1], z)
    return _finish(x + z * _per_sample(sigma, x) / 255.0, clip, rounds)


def sample_poisson_noise(batch: int, scale_range: tuple[float, float] = (0.05, 3.0),
                         gray_prob: float = 0.4, generator: torch.Generator | None = None,
                         device: torch.device | str | None = None) -> dict[str, Tensor]:
    """``scale`` ~ U[scale_range] and ``gray`` ~ Bernoulli(gray_prob), in BasicSR's order."""
    device = _device(generator, device)
    scale = _uniform(batch, *scale_range, generator, device)
    gray = torch.rand(batch, generator=generator, device=device) < gray_prob
    return {'scale': scale, 'gray': gray}


def _levels_power_of_two(q: Tensor) -> Tensor:
    """``2 ** ceil(log2(number of distinct 8-bit levels))`` per sample of ``q`` (values k / 255)."""
    levels = (q * 255.0).round().long().flatten(1)
    present = torch.zeros(q.shape[0], 256, dtype=torch.bool, device=q.device)
    count = present.scatter_(1, levels, True).sum(1)
    return torch.exp2(torch.ceil(torch.log2(count.double()))).to(q.dtype).reshape(-1, 1, 1, 1)


def add_poisson_noise(x: Tensor, scale: Scalar, gray: Scalar = False,
                      generator: Generators = None, clip: bool = True,
                      rounds: bool = False) -> Tensor:
    """Real-ESRGAN's Poisson noise (``add_poisson_noise_pt``) with per-sample ``scale`` and ``gray``.

    ``x`` must be RGB (3 channels). One Poisson draw per element of ``x``.
    """
    gray = _per_sample(gray, x, torch.bool).expand(x.shape[0], 1, 1, 1)
    colour_q = _round8(x)
    gray_q = _round8(_gray(x, _TORCHVISION_GRAY))
    q = torch.where(gray, gray_q, colour_q)
    vals = torch.where(gray, _levels_power_of_two(gray_q), _levels_power_of_two(colour_q))
    noise = poisson(q * vals, generator) / vals - q
    noise = torch.where(gray, noise[:, :1], noise)
    return _finish(x + noise * _per_sample(scale, x), clip, rounds)


# ----------------------------------------------------------------------------- BSRGAN / BSRGAN+


def sample_bsrgan_gaussian_noise(batch: int, level_range: tuple[int, int] = (2, 25),
                                 generator: torch.Generator | None = None,
                                 device: torch.device | str | None = None) -> dict[str, Tensor]:
    """KAIR's ``add_Gaussian_noise`` / ``add_speckle_noise`` draws, per sample.

    Returns ``level`` (int64, 8-bit units, inclusive range), ``branch`` (:data:`COLOUR`, :data:`GRAY`
    or :data:`CORRELATED`) and ``mix`` (B, 3, 3): the noise of a pixel is ``mix @ z``, z ~ N(0, I_3),
    so its covariance is ``mix @ mix.T`` (see the module docstring).
    """
    draw = draw_bsrgan_gaussian_noise(batch, level_range, generator, device)
    return {'level': draw['level'], 'branch': draw['branch'], 'mix': bsrgan_noise_mix(**draw, high=level_range[1])}


def draw_bsrgan_gaussian_noise(batch: int, level_range: tuple[int, int] = (2, 25),
                               generator: torch.Generator | None = None,
                               device: torch.device | str | None = None) -> dict[str, Tensor]:
    """The random draws of :func:`sample_bsrgan_gaussian_noise` alone, in its order: ``level``,
    ``branch``, ``eig`` (B, 3) and ``basis`` (B, 3, 3), which :func:`bsrgan_noise_mix` turns into
    ``mix``. A pipeline that draws one sample at a time makes the mixes of a whole batch in one call
    (3x3 SVDs and eigendecompositions cost far more per call than per matrix)."""
    device = _device(generator, device)
    low, high = level_range
    level = torch.randint(low, high + 1, (batch,), generator=generator, device=device)
    r = torch.rand(batch, generator=generator, device=device)
    branch = torch.where(r > 0.6, COLOUR, torch.where(r < 0.4, GRAY, CORRELATED))
    eig = torch.rand(batch, 3, generator=generator, device=device, dtype=torch.float64)
    basis = torch.rand(batch, 3, 3, generator=generator, device=device, dtype=torch.float64)
    return {'level': level, 'branch': branch, 'eig': eig, 'basis': basis}


def bsrgan_noise_mix(level: Tensor, branch: Tensor, eig: Tensor, basis: Tensor, high: int = 25) -> Tensor:
    """(B, 3, 3) float32 ``mix`` of :func:`sample_bsrgan_gaussian_noise` from its draws (``high``: the
    upper end of the level range, KAIR's ``noise_level2``)."""
    u = torch.linalg.svd(basis).U
    cov = ((high / 255.0) ** 2 * u.mT @ torch.diag_embed(eig) @ u).abs()
    lam, q = torch.linalg.eigh(cov)
    correlated = q * lam.abs().sqrt().unsqueeze(-2)
    sigma = (level.double() / 255.0).reshape(-1, 1, 1)
    colour = sigma * torch.eye(3, dtype=torch.float64, device=basis.device)
    gray = sigma * torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64, device=basis.device)
    pick = branch.reshape(-1, 1, 1)
    mix = torch.where(pick == COLOUR, colour, torch.where(pick == GRAY, gray, correlated))
    return mix.float()


def _generators(generator: Generators, batch: int) -> Sequence[torch.Generator | None]:
    return generator if isinstance(generator, Sequence) else [generator] * batch


def _mixed_normal(x: Tensor, mix: Tensor, generator: Generators) -> Tensor:
    """``mix @ z`` per pixel, z ~ N(0, I_3). A sample whose ``mix`` has zero columns 1 and 2 (gray) draws
    only z's first field, (1, H, W), as KAIR does; the others draw (3, H, W). Reads ``mix`` on the host
    (pass it on the CPU to avoid a synchronisation on CUDA)."""
    b, c, h, w = x.shape
    one_field = (mix[:, :, 1:] == 0).flatten(1).all(1).tolist()
    z = torch.empty(b, c, h * w, device=x.device, dtype=x.dtype)
    for row, g, gray in zip(z, _generators(generator, b), one_field, strict=True):
        if gray:
            row[0].normal_(generator=g)
            row[1:].zero_()
        else:
            row.normal_(generator=g)
    return (mix.to(x.device, x.dtype) @ z).reshape(b, c, h, w)


def add_bsrgan_gaussian_noise(x: Tensor, mix: Tensor, generator: Generators = None) -> Tensor:
    """KAIR's ``add_Gaussian_noise`` for a 3-channel batch: ``clip(x + mix @ z)``, ``mix`` (B, 3, 3)."""
    return _mixed_normal(x, mix, generator).add_(x).clamp_(0, 1)


def add_speckle_noise(x: Tensor, mix: Tensor, generator: Generators = None) -> Tensor:
    """KAIR's ``add_speckle_noise``: ``clip(x + x * (mix @ z))`` with ``x`` clipped first."""
    x = x.clamp(0, 1)
    return _mixed_normal(x, mix, generator).mul_(x).add_(x).clamp_(0, 1)


def sample_bsrgan_poisson_noise(batch: int, generator: torch.Generator | None = None,
                                device: torch.device | str | None = None) -> dict[str, Tensor]:
    """KAIR's ``add_Poisson_noise`` draws: ``vals = 10 ** (2 U + 2)``, ``gray`` with probability 0.5."""
    device = _device(generator, device)
    vals = torch.pow(10.0, 2 * torch.rand(batch, generator=generator, device=device) + 2)
    gray = torch.rand(batch, generator=generator, device=device) >= 0.5
    return {'vals': vals, 'gray': gray}


def add_bsrgan_poisson_noise(x: Tensor, vals: Scalar, gray: Scalar = False,
                             generator: Generators = None) -> Tensor:
    """KAIR's ``add_Poisson_noise`` for a 3-channel batch, per-sample ``vals`` and ``gray``: a gray sample
    draws Poisson only over its gray image (H * W draws), as KAIR does. Reads ``gray`` on the host (pass it
    on the CPU to avoid a synchronisation on CUDA)."""
    b = x.shape[0]
    gray = torch.as_tensor(gray).reshape(-1).expand(b).tolist()
    vals = _per_sample(vals, x).expand(b, 1, 1, 1)
    q = _round8(x)
    gray_q = _round8(_gray(q, _KAIR_GRAY)) if any(gray) else None  # the batch's gray images, in one pass
    out = torch.empty_like(q)
    for i, g in enumerate(_generators(generator, b)):
        if gray[i]:
            torch.add(q[i], torch.poisson(gray_q[i] * vals[i], generator=g) / vals[i] - gray_q[i], out=out[i])
        else:
            torch.div(torch.poisson(q[i] * vals[i], generator=g), vals[i], out=out[i])
    return out.clamp_(0, 1)
