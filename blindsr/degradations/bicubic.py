"""The classic "BI" degradation: MATLAB bicubic downscaling by an integer factor, then 8-bit rounding."""

from __future__ import annotations

import torch
from torch import Tensor

from blindsr.degradations.resize import imresize
from blindsr.registry import DEGRADATION_REGISTRY

__all__ = ['BicubicDegradation']


class BicubicDegradation:
    """``lr = round(clamp(imresize(hr, 1 / scale), 0, 1) * 255) / 255``; deterministic.

    Args:
        scale: integer downscaling factor. ``hr``'s H and W must be multiples of it (mod-crop HR
            images before degrading them), so that ``lr`` is exactly ``scale`` times smaller.
        quantize: round to 8-bit levels (k / 255) as saving the LR image as PNG would.
        border: ``'symmetric'`` (MATLAB's mirroring) or ``'replicate'`` (the DASR/KDSR torch port's
            index clamping); see :func:`blindsr.degradations.resize.imresize`.

    Calling it with ``hr`` (B, C, H, W) float in [0, 1] (C = 3 in the pipeline interface; any C
    works) returns ``(lr, params)``; ``params`` is always ``{}`` because nothing is sampled, and the
    ``generator`` argument is accepted for interface compatibility and unused.
    """

    def __init__(self, scale: int, quantize: bool = True, border: str = 'symmetric'):
        if int(scale) != scale or scale < 1:
            raise ValueError(f'bicubic degradation needs a positive integer scale, got {scale}')
        if border not in ('symmetric', 'replicate'):
            raise ValueError(f"border must be 'symmetric' or 'replicate', got {border!r}")
        self.scale = int(scale)
        self.quantize = quantize
        self.border = border

    def __call__(self, hr: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, dict]:
        if hr.ndim != 4 or not hr.is_floating_point():
            raise ValueError(f'bicubic degradation expects a float (B, C, H, W) batch, got '
                             f'{hr.dtype} of shape {tuple(hr.shape)}')
        h, w = hr.shape[-2:]
        if h % self.scale or w % self.scale:
            raise ValueError(f'HR size {h}x{w} is not a multiple of scale {self.scale}; '
                             'mod-crop the HR images first')
        lr = imresize(hr, 1 / self.scale, border=self.border).clamp_(0, 1)
        if self.quantize:
            lr = lr.mul_(255).round_().div_(255)
        return lr, {}

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(scale={self.scale}, quantize={self.quantize}, '
                f'border={self.border!r})')


# Registry.register() would file the class under its __name__; pipelines are looked up by the short
# YAML name (`type: bicubic`), so register that name explicitly.
DEGRADATION_REGISTRY._do_register('bicubic', BicubicDegradation)
