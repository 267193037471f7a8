"""Resizing as OpenCV's ``cv2.resize`` and torch's ``F.interpolate`` do it, on batched tensors; 8-bit
quantisation. (s-fold subsampling after a blur is :func:`blindsr.degradations.blur.blur`'s ``stride``.)

:func:`resize` with ``backend='opencv'`` reproduces ``cv2.resize`` on float32 images (KAIR's BSRGAN
degradation uses it with interpolation codes 1, 2, 3 = linear, cubic, area) in torch, on any device:
each dimension's taps (input indices and OpenCV's float32 weights) follow OpenCV's own rules
(``modules/imgproc/src/resize.cpp``) and are applied as a band
(:func:`~blindsr.degradations.resize.separable_resize`: one ``embedding_bag`` per dimension, cached per
size, mode, batch size, device and dtype; :func:`resize_matrix_opencv` gives the dense matrix). The
summation order differs from OpenCV's, i.e. float32 rounding, by 1-2 ulp. Where OpenCV itself is faster,
float32 CPU tensors without autograd go through ``cv2.resize`` plane by plane (bilinear, bicubic, nearest and
enlarging area: 1.1-2.5x faster than the bands on 256 px photos; an area shrink stays on its band, 2-3x faster
than OpenCV's), and a resize to the same size is a copy on every device, as in OpenCV (10-20x faster than
applying identity taps). The rules:

- ``'nearest'`` (INTER_NEAREST): source ``min(floor(i * (1 / inv_scale)), in - 1)``, ``inv_scale = out / in``;
- ``'bilinear'`` (INTER_LINEAR): half-pixel mapping ``u = (i + 0.5) * in / out - 0.5`` (in float32), two
  taps, ``u`` clamped to [0, in - 1]; no antialiasing when downscaling;
- ``'bicubic'`` (INTER_CUBIC): the same mapping without clamping, Keys' cubic with a = -0.75, four taps,
  indices clamped to the border (replicate); no antialiasing;
- ``'area'`` (INTER_AREA): when neither dimension is enlarged, the average over the source box
  ``[i * s, (i + 1) * s)``, ``s = in / out``, partial pixels weighted by their covered fraction (exact box
  means for integer factors); when either dimension is enlarged, OpenCV switches both dimensions to a
  bilinear variant: ``j = floor(i * s)``, fraction ``f = (i + 1) - (j + 1) / s`` (0 if negative, else
  its fractional part), taps j and j + 1 (clamped).

``mode`` may also be a sequence of B modes (one per sample, as KAIR draws the interpolation per image):
the samples of each mode are resized together.

Measured against ``cv2.resize`` (opencv-python 5.0, float32 photo crops of 101x77 and 256x256, up,
down, non-integer and mixed factors): max |delta| <= 4e-7 with ``cv2.ipp.setUseIPP(False)``; with
IPP on (the default of the pip build, which sends float32 linear/cubic resizes at non-integer factors
to Intel IPP) <= 7e-6 for 'bilinear'/'bicubic', still <= 2e-7 for 'area' and exact for 'nearest'.

``backend='torch'`` is ``F.interpolate(x, size | scale_factor, mode, antialias=False)`` as Real-ESRGAN
calls it (``align_corners=False``). Where it differs from OpenCV (same images; 8-bit levels):

- ``'bilinear'`` and ``'bicubic'`` follow the same formulas (torch's bicubic also uses a = -0.75 and
  clamps indices) and agree with OpenCV to float32 rounding (max 1.2e-5);
- ``'nearest'`` uses the same floor rule but with a float32 scale: at some sizes a row or column
  takes its neighbour's source (256 -> 94x156: mean 0.08, max 72 levels; exact at 1/2, 1/4, 2x);
- ``'area'`` is ``adaptive_avg_pool2d``: equal to OpenCV for integer downscale factors; for non-integer
  factors it averages whole pixels ``[floor(i * s), ceil((i + 1) * s))`` with equal weights instead of
  fractional ones (mean 0.6-2.3, max 10-95 levels at factors 1/1.3-1/3); when enlarging it
  replicates pixels where OpenCV interpolates (mean 0.8-2.3 levels at non-integer factors, equal at 2x);
- with ``scale_factor`` (Real-ESRGAN's first resize), torch's output is ``floor(in * f)`` and its
  sampling grid uses ``1 / f``; OpenCV's (``cv2.resize(fx=f)``) is ``round(in * f)`` with grid ``1 / f``,
  so the sizes can differ by one pixel.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from blindsr.degradations.resize import dense, separable_resize

__all__ = ['resize', 'resize_matrix_opencv', 'quantize', 'MODES']

MODES = ('nearest', 'bilinear', 'bicubic', 'area')
_A = -0.75  # OpenCV's cubic coefficient
_OPENCV_CODES = {'nearest': cv2.INTER_NEAREST, 'bilinear': cv2.INTER_LINEAR, 'bicubic': cv2.INTER_CUBIC,
                 'area': cv2.INTER_AREA}


def _cubic_weights(t: np.ndarray) -> np.ndarray:
    """OpenCV's ``interpolateCubic``: float32 weights of taps -1, 0, 1, 2 for float32 fractions ``t``."""
    a, one = np.float32(_A), np.float32(1)  # float32 scalars: numpy's float32 math as OpenCV's, and fast
    w = np.empty((t.size, 4), np.float32)
    u = t + one
    w[:, 0] = ((a * u - 5 * a) * u + 8 * a) * u - 4 * a
    for k, d in ((1, t), (2, one - t)):  # taps 0 and 1, at distances t and 1 - t
        w[:, k] = ((a + 2) * d - (a + 3)) * d * d + one
    w[:, 3] = one - w[:, 0] - w[:, 1] - w[:, 2]
    return w


def _area_taps(in_len: int, out_len: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """OpenCV's ``computeResizeAreaTab`` (scale = in / out >= 1) as taps, all rows at once."""
    start = np.arange(out_len) * scale
    stop = start + scale
    width = np.minimum(scale, in_len - start)[:, None]
    last = np.minimum(np.floor(stop), in_len - 1)
    first = np.minimum(np.minimum(np.ceil(start), in_len - 1), last)
    head = first - start > 1e-3  # a partly covered pixel before the first whole one
    tail = stop - last > 1e-3  # ... and after the last one
    cols = (first - head)[:, None] + np.arange(int((last + tail - first + head).max()))
    first, last = first[:, None], last[:, None]
    weights = np.where((cols >= first) & (cols < last), 1 / width, 0.0)
    weights = np.where(head[:, None] & (cols == first - 1), (first - start[:, None]) / width, weights)
    part = np.minimum(np.minimum(stop[:, None] - last, 1.0), width) / width
    weights = np.where(tail[:, None] & (cols == last), part, weights)
    return np.minimum(cols, in_len - 1).astype(np.int64), weights.astype(np.float32)  # OpenCV's weights are floats


def resize_matrix_opencv(in_len: int, out_len: int, inv_scale: float, mode: str,
                         area_enlarges: bool = False) -> np.ndarray:
    """The (out_len, in_len) float64 matrix of ``cv2.resize`` along one dimension.

    ``inv_scale`` is OpenCV's ``out / in`` (or ``fx``); ``area_enlarges``: for ``'area'``, whether any
    dimension of the resize is enlarged (OpenCV then interpolates instead of averaging boxes).
    """
    return dense(*_opencv_taps(in_len, out_len, inv_scale, mode, area_enlarges), in_len)


def _opencv_taps(in_len: int, out_len: int, inv_scale: float, mode: str,
                 area_enlarges: bool) -> tuple[np.ndarray, np.ndarray]:
    """Input indices (clamped to the image) and weights (float32, as OpenCV's), each (out_len, taps), of
    ``cv2.resize``."""
    scale = 1.0 / inv_scale
    rows = np.arange(out_len)
    if mode == 'nearest':
        return np.minimum(np.floor(rows * scale).astype(np.int64), in_len - 1)[:, None], np.ones((out_len, 1), np.float32)
    if mode == 'area' and not area_enlarges:
        return _area_taps(in_len, out_len, scale)
    if mode == 'area':
        left = np.floor(rows * scale)
        frac = ((rows + 1) - (left + 1) * inv_scale).astype(np.float32)
        frac = np.where(frac <= 0, np.float32(0), frac - np.floor(frac))
    else:
        pos = ((rows + 0.5) * scale - 0.5).astype(np.float32)
        left = np.floor(pos)
        frac = pos - left  # exact in float32
    if mode == 'bicubic':
        taps = np.maximum(np.minimum(left.astype(np.int64)[:, None] + np.arange(-1, 3), in_len - 1), 0)
        return taps, _cubic_weights(frac)
    # bilinear and enlarging area: the source position is clamped to the image
    frac = np.where((left < 0) | (left >= in_len - 1), np.float32(0), frac)
    left = np.maximum(np.minimum(left.astype(np.int64), in_len - 1), 0)
    weights = np.empty((out_len, 2), np.float32)
    weights[:, 0], weights[:, 1] = 1 - frac, frac
    return np.minimum(left[:, None] + np.arange(2), in_len - 1), weights


def _out_size(in_len: int, size: int | None, scale_factor: float | None) -> tuple[int, float]:
    """OpenCV's output length and ``inv_scale`` for one dimension."""
    if size is not None:
        return int(size), int(size) / in_len
    return int(round(in_len * scale_factor)), float(scale_factor)  # cvRound: half to even, as round()


def resize(x: Tensor, size: tuple[int, int] | None = None, mode: str | Sequence[str] = 'bicubic',
           backend: str = 'opencv', scale_factor: float | tuple[float, float] | None = None) -> Tensor:
    """Resize ``x`` (B, C, H, W) to ``size`` (H', W') or by ``scale_factor`` like ``cv2.resize`` or
    ``F.interpolate`` (see the module docstring). The result is not clamped."""
    if (size is None) == (scale_factor is None):
        raise ValueError('resize needs exactly one of size or scale_factor')
    modes = [mode] if isinstance(mode, str) else list(mode)
    if any(m not in MODES for m in modes):
        raise ValueError(f'mode must be one of {MODES}, got {mode!r}')
    if backend == 'torch':
        if not isinstance(mode, str):
            raise ValueError("backend 'torch' takes one mode for the whole batch")
        corners = {'align_corners': False} if mode in ('bilinear', 'bicubic') else {}
        return F.interpolate(x, size=size, scale_factor=scale_factor, mode=mode, **corners)
    if backend != 'opencv':
        raise ValueError(f"backend must be 'opencv' or 'torch', got {backend!r}")
    if len(modes) not in (1, x.shape[0]):
        raise ValueError(f'got {len(modes)} modes for a batch of {x.shape[0]}')
    in_h, in_w = x.shape[-2:]
    sizes = (None, None) if size is None else size
    factors = (None, None) if scale_factor is None else (
        (scale_factor, scale_factor) if isinstance(scale_factor, (int, float)) else scale_factor)
    out_h, inv_h = _out_size(in_h, sizes[0], factors[0])
    out_w, inv_w = _out_size(in_w, sizes[1], factors[1])
    if inv_h == inv_w == 1:  # OpenCV copies (every mode's taps are the identity)
        return x.clone()
    if _opencv_applies(x, modes, inv_h > 1 or inv_w > 1):
        return _opencv_resize(x, (out_h, out_w), (inv_h, inv_w) if scale_factor is not None else None, modes)
    if len(set(modes)) > 1:  # one mode per sample: the samples of each mode resized together
        groups = {m: [i for i, n in enumerate(modes) if n == m] for m in dict.fromkeys(modes)}
        parts = [resize(x[members], size, m, scale_factor=scale_factor) for m, members in groups.items()]
        where = {i: k for k, i in enumerate(i for members in groups.values() for i in members)}
        return torch.cat(parts)[torch.tensor([where[i] for i in range(len(modes))], device=x.device)]
    area_enlarges = modes[0] == 'area' and (inv_h > 1 or inv_w > 1)
    return separable_resize(x, _opencv_taps, (in_h, out_h, inv_h, modes[0], area_enlarges),
                            (in_w, out_w, inv_w, modes[0], area_enlarges),
                            rows_first=out_h <= in_h)  # the columns' transposed copies at the smaller height


def _opencv_applies(x: Tensor, modes: list[str], enlarges: bool) -> bool:
    """Whether ``cv2.resize`` itself runs: float32 on the CPU without autograd, and not an area shrink (the
    one mode whose band beats OpenCV's loop, 2-3x on 256 px photos)."""
    return (x.device.type == 'cpu' and x.dtype == torch.float32 and not x.requires_grad
            and (enlarges or 'area' not in modes))


def _opencv_resize(x: Tensor, size: tuple[int, int], factors: tuple[float, float] | None,
                   modes: list[str]) -> Tensor:
    """``cv2.resize`` of each plane of the float32 CPU ``x`` (B, C, H, W) into one new array, with its
    sample's mode; ``factors`` (fy, fx) when the caller gave a scale factor (OpenCV's grid then uses it)."""
    src = x.contiguous().numpy()
    out = np.empty((*src.shape[:2], *size), np.float32)
    dsize, (fy, fx) = ((0, 0), factors) if factors else ((size[1], size[0]), (0, 0))
    for planes, dsts, mode in zip(src, out, modes * len(src) if len(modes) == 1 else modes):
        for plane, dst in zip(planes, dsts):
            cv2.resize(plane, dsize, dst, fx, fy, _OPENCV_CODES[mode])
    return torch.from_numpy(out)



def quantize(x: Tensor) -> Tensor:
    """Round to 8-bit levels k / 255 and clamp to [0, 1]."""
    return (x * 255.0).round().clamp(0, 255) / 255.0
