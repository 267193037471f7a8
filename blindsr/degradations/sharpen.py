"""Unsharp-mask (USM) sharpening of Real-ESRGAN / BasicSR and KAIR's BSRGAN+, batched, any device.

BasicSR's ``USMSharp`` (torch) and ``usm_sharp`` (numpy/OpenCV) and KAIR's ``add_sharpening``
(utils/utils_blindsr.py, "borrowed from real-ESRGAN") compute the same thing, read from their code:

1. ``blur = G * img`` with G the ``radius`` x ``radius`` Gaussian of ``cv2.getGaussianKernel(radius,
   sigma)`` (radius made odd: 50 -> 51; sigma 0 means OpenCV's ``0.3 ((radius - 1) / 2 - 1) + 0.8``,
   8.0 for 51), reflect-101 borders (``filter2D``'s reflect pad; ``cv2.GaussianBlur``'s default);
2. ``mask = |img - blur| * 255 > threshold``, ``soft = G * mask``;
3. ``sharp = clip(img + weight (img - blur), 0, 1)``; output ``soft sharp + (1 - soft) img``.

They differ only in how G is applied: ``USMSharp`` convolves with the 51 x 51 outer product through
``filter2D``'s shared-kernel path (~6 s per B16 x 400 x 400 call on the 2-core development CPU, most
of Real-ESRGAN's degradation time there); OpenCV filters separably. Here G is applied as two 1-D
passes (:func:`blindsr.degradations.blur.blur_separable`), exact up to float rounding and ~30x faster
than ``USMSharp`` on that CPU (scripts/bench_blocks.py), so one function serves both: :func:`usm_sharp`.
"""

from __future__ import annotations

import cv2
import torch
from torch import Tensor

from blindsr.degradations.blur import blur_separable

__all__ = ['gaussian_taps', 'usm_sharp']


def gaussian_taps(size: int, sigma: float = 0.0) -> Tensor:
    """``cv2.getGaussianKernel(size, sigma)`` as a float64 (size,) tensor (sigma <= 0: OpenCV's rule)."""
    return torch.from_numpy(cv2.getGaussianKernel(size, sigma)).reshape(-1)


def usm_sharp(x: Tensor, weight: Tensor | float = 0.5, radius: int = 50, threshold: Tensor | float = 10,
              sigma: float = 0.0) -> Tensor:
    """USM-sharpen (B, C, H, W) ``x`` in [0, 1]; ``weight`` and ``threshold`` (8-bit units) are scalars
    or per-sample tensors of length B. Equals BasicSR's ``USMSharp(radius, sigma)(x, weight,
    threshold)`` and KAIR's ``add_sharpening`` up to float rounding (a pixel whose ``|img - blur|``
    sits within rounding of the threshold may flip its mask bit; see tests/test_kernels.py).

    Works in place on its intermediates (~25 % faster on CPU), so it is not differentiable.
    """
    size = radius + 1 if radius % 2 == 0 else radius
    taps = gaussian_taps(size, sigma).to(x.device, x.dtype)
    weight = torch.as_tensor(weight, device=x.device, dtype=x.dtype).reshape(-1, 1, 1, 1)
    threshold = torch.as_tensor(threshold, device=x.device, dtype=x.dtype).reshape(-1, 1, 1, 1)
    residual = x - blur_separable(x, taps, taps, 'reflect')
    soft = blur_separable(residual.abs().mul_(255).gt_(threshold), taps, taps, 'reflect')
    sharp = residual.mul_(weight).add_(x).clamp_(0, 1)
    return sharp.sub_(x).mul_(soft).add_(x)  # soft * sharp + (1 - soft) * x
