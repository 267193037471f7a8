"""Per-sample 2-D filtering of (B, C, H, W) batches, on any device: padding modes, flip, FFT.

``blur(x, kernels)`` filters every channel of sample ``b`` with ``kernels[b]`` (or one kernel for the
whole batch) as a cross-correlation anchored at tap ``(kh // 2, kw // 2)``:
``out[i, j] = sum_ab k[a, b] x[i + a - kh // 2, j + b - kw // 2]`` (torch ``conv2d``, BasicSR
``filter2D``, DASR/MANet ``BatchBlur``, ``scipy.ndimage.correlate``). ``flip=True`` gives the true
convolution of ``scipy.ndimage.convolve`` (KAIR/BSRGAN): ``sum_ab k[a, b] x[i - a + kh // 2, ...]``.

Padding modes (the image is extended as often as needed, so kernels may exceed the image):

- ``reflect`` (``c b | a b c``): SciPy ``mirror``, torch ``reflect``, OpenCV ``REFLECT_101``;
  ``mirror`` is an alias under SciPy's name;
- ``symmetric`` (``b a | a b c``): SciPy ``reflect``, MATLAB ``symmetric``, OpenCV ``REFLECT``;
- ``replicate`` (``a a | a b c``): SciPy ``nearest``; ``circular``: SciPy ``wrap``;
  ``zeros``: SciPy ``constant`` with cval 0.

Formulations, all exact up to float rounding (chosen by ``method='auto'``): a depthwise ``conv2d``
with samples x channels as groups for small kernels, a product of real FFTs (even 7-smooth lengths;
the kernel's spectrum transforms its few rows first) for large ones. Crossovers measured on the 2-core
development CPU (16 x 3 images, quiet machine; the ratio conv time / FFT time): at 256 px the FFT wins
from 15 x 15 (1.1x; 2.1x at 21 x 21), at 128 px from 21 x 21 (1.5x), at 64 px and below the conv is
faster up to at least 21 x 21 (0.7x). Fewer than 16 planes (1-5 samples, as BSRGAN's per-sample plans
group them): oneDNN's depthwise conv computes 16 planes per block (3 cost as much as 16), so the planes
are cut into overlapping horizontal strips stacked as channels (3-5x faster for one sample), and the
FFT wins from 17 x 17 (measured at 1 and 3 samples, 33-512 px). On CPU both run in chunks of samples:
the conv at least 12 channel planes, otherwise ~0.5 M padded elements; the FFT and the 1-D passes
~0.25 M per thread (one 256 px RGB sample per thread: on 1 thread 25-45 % faster than four at once, as
it stays in the L2 cache; on 2 threads two samples are 20 % faster than one). CUDA
gets one call (not measured: no GPU on the development box). One shared kernel takes the grouped path
too: BasicSR's shared-kernel path (a batch of B*C single-channel images) is 5-8x slower on CPU.
``stride`` keeps every ``stride``-th output (``out[..., ::stride, ::stride]``), computed directly (a
strided conv, or 1-D passes that compute only the kept outputs): s-fold subsampling after a blur
costs 1/s^2 of the blur.

``blur_separable`` does a rank-1 kernel as two 1-D passes: on CPU batched matrix products of blocks of
16 outputs with banded blocks of the taps (oneDNN runs 1-D depthwise kernels at ~4 GMAC/s; the products
are 1.5-4x faster, e.g. 0.6 vs 2.4 ms for one 256 px RGB sample and 25 taps). ``blur(...,
separable=mask)`` sends the samples whose kernels are outer products (isotropic Gaussians, BSRGAN's
shifted Gaussian) through it, with the kernel's marginals as factors.

On CPU, float32 images without autograd at stride 1 (the pipelines' case; OpenCV borders, i.e. not
``circular``, and images larger than the kernel) go through OpenCV instead, plane by plane: separable
kernels through ``cv2.sepFilter2D`` (1.6-5x faster than the banded products, 64-512 px, 7-25 taps, one
thread), 2-D kernels of under 130 taps (11 x 11 included) through ``cv2.filter2D``'s direct SIMD path (2-4x
faster than the strip conv at 7 x 7, 2.5x at 11 x 11 on 256 px; from 130 taps OpenCV switches to its DFT for
float32, 7x slower than its direct path and than the FFT here). Within ~4e-7 of
the torch paths in float32.
"""

from __future__ import annotations

import itertools
import math

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ['PADDINGS', 'blur', 'blur_separable', 'pad2d']

PADDINGS = ('reflect', 'mirror', 'symmetric', 'replicate', 'circular', 'zeros')
_TORCH_MODES = {'reflect': 'reflect', 'replicate': 'replicate', 'circular': 'circular', 'zeros': 'constant'}
_CHUNK = 2 ** 19  # padded elements per CPU conv chunk (2 MB float32) ...
_PLANES = 12  # ... but at least this many channel planes per conv call
_CACHED = 2 ** 18  # padded elements per thread per CPU FFT / 1-D pass chunk (1 MB: a 256 px RGB sample)
_LANES = 16  # channel planes per block of oneDNN's depthwise conv on AVX-512 (float32)
_SPLIT = 128 * 128  # pixels from which a batch mixing separable and full kernels is split into runs
_BLOCK = 16  # outputs per banded block of the CPU 1-D passes (fastest of 4..24 on the development CPU)
_OPENCV_TAPS = 130  # CPU float32 kernels with fewer taps go through cv2.filter2D (OpenCV's direct path below it)
_OPENCV_BORDERS = {'reflect': cv2.BORDER_REFLECT_101, 'mirror': cv2.BORDER_REFLECT_101, 'symmetric': cv2.BORDER_REFLECT,
                   'replicate': cv2.BORDER_REPLICATE, 'zeros': cv2.BORDER_CONSTANT}


def _indices(n: int, before: int, after: int, mode: str, device: torch.device) -> Tensor:
    """Source index of every padded position along a dimension of length ``n``."""
    i = torch.arange(-before, n + after, device=device)
    if mode == 'replicate':
        return i.clamp(0, n - 1)
    if mode == 'circular':
        return i % n
    if mode == 'symmetric':
        i = i % (2 * n)
        return torch.where(i < n, i, 2 * n - 1 - i)
    if n == 1:  # reflect
        return torch.zeros_like(i)
    i = i % (2 * n - 2)
    return torch.where(i < n, i, 2 * n - 2 - i)


def pad2d(x: Tensor, top: int, bottom: int, left: int, right: int, mode: str = 'reflect') -> Tensor:
    """Pad the last two dimensions of ``x`` with one of :data:`PADDINGS` (any amount)."""
    if mode not in PADDINGS:
        raise ValueError(f'padding must be one of {PADDINGS}, got {mode!r}')
    mode = 'reflect' if mode == 'mirror' else mode
    h, w = x.shape[-2:]
    limit = {'reflect': (h - 1, w - 1), 'circular': (h, w)}.get(mode, (math.inf, math.inf))
    if mode in _TORCH_MODES and max(top, bottom) <= limit[0] and max(left, right) <= limit[1]:
        return F.pad(x, (left, right, top, bottom), mode=_TORCH_MODES[mode])  # 2-3x faster than a gather
    rows = _indices(h, top, bottom, mode, x.device)
    cols = _indices(w, left, right, mode, x.device)
    return x.index_select(-2, rows).index_select(-1, cols)


def _use_fft(taps: int, pixels: int, planes: int, device: torch.device) -> bool:
    """Whether the FFT beats the direct conv (crossovers measured on the development CPU)."""
    if planes < _LANES and device.type == 'cpu':  # the strip-stacked conv (_strips, CPU only): measured at 1
        # and 3 samples, 33-512 px
        return taps >= 17 * 17
    return taps >= (15 * 15 if pixels >= 200 * 200 else 21 * 21 if pixels >= 100 * 100 else 31 * 31)


def _anchor(size: int, flip: bool) -> tuple[int, int]:
    """Padding before/after along one dimension for a (flipped) kernel of ``size`` taps."""
    before = (size - 1) // 2 if flip else size // 2
    return before, size - 1 - before


def _chunks(x: Tensor, padded_hw: int, conv: bool) -> list[slice]:
    """Sample ranges per conv/FFT/1-D pass call: see the module docstring."""
    b, c = x.shape[:2]
    if x.device.type != 'cpu':
        return [slice(0, b)]
    cached = _CACHED * torch.get_num_threads()
    step = max(math.ceil(_PLANES / c), _CHUNK // (c * padded_hw)) if conv else max(1, cached // (c * padded_hw))
    return [slice(i, i + step) for i in range(0, b, step)]


def _per_sample(kernels: Tensor, x: Tensor, dims: int) -> Tensor:
    """Kernels as (B, *taps) in ``x``'s dtype and device (a single kernel is expanded)."""
    k = kernels.to(x.device, x.dtype)
    k = k.reshape(-1, *k.shape[-dims:])
    if k.shape[0] not in (1, x.shape[0]):
        raise ValueError(f'{k.shape[0]} kernels for a batch of {x.shape[0]}')
    return k.expand(x.shape[0], *k.shape[1:])


def _trim(weight: Tensor) -> Tensor:
    """On CPU, the per-sample kernels (B, *taps) without the outer taps that are zero in every sample, as
    many at both ends of each axis (the anchor stays on the same tap): the same filtering with fewer taps.
    Kernels of each sample's own size on a group's shared grid (BSRGAN) get back the size of the run's
    largest. Elsewhere unchanged (this reads the kernels on the host)."""
    if weight.device.type != 'cpu':
        return weight
    used = weight.ne(0).any(0)  # (kh, kw) or (k,)
    for dim, axis in enumerate([used.any(1), used.any(0)] if used.dim() == 2 else [used], 1):
        flags = axis.tolist()
        if True in flags:
            cut = min(flags.index(True), flags[::-1].index(True))
            weight = weight.narrow(dim, cut, len(flags) - 2 * cut)
    return weight


def _strips(planes: int, rows: int, kh: int) -> int:
    """Horizontal strips per plane for the CPU conv: oneDNN's depthwise conv computes channels in blocks
    of :data:`_LANES` (3 planes cost as much as 16), so a few planes are cut into overlapping strips
    stacked as channels; the count minimises blocks x rows computed (halos of ``kh - 1`` included)."""
    return min(range(1, _LANES + 1), key=lambda s: -(-planes * s // _LANES) * (-(-rows // s) + kh - 1))


def _grouped_conv(xp: Tensor, weight: Tensor, stride: int | tuple[int, int] = 1) -> Tensor:
    """Depthwise conv of (b, C, Hp, Wp) with per-sample (b, kh, kw) weights, valid region."""
    b, c, hp, wp = xp.shape
    kh = weight.shape[-2]
    rows = hp - kh + 1
    strips = _strips(b * c, rows, kh) if xp.device.type == 'cpu' and stride == 1 else 1
    if strips > 1:  # (b, C, strips, rows + kh - 1, Wp): strip i holds output rows i * step .. + step
        step = -(-rows // strips)
        xp = F.pad(xp, (0, 0, 0, step * strips - rows)).unfold(-2, step + kh - 1, step).transpose(-1, -2)
    w = weight.repeat_interleave(c * strips, 0).unsqueeze(1)
    out = F.conv2d(xp.reshape(1, b * c * strips, -1, wp), w, stride=stride, groups=b * c * strips)
    return out.reshape(b, c, -1, out.shape[-1])[:, :, :rows] if strips > 1 else out.reshape(b, c, *out.shape[-2:])


def _smooth(n: int) -> int:
    """The smallest even 7-smooth integer >= n (a fast FFT length: odd ones such as 135 or 525 take
    1.5-2x the time of the next even one on the development CPU)."""
    n += n % 2
    while True:
        m = n
        for p in (2, 3, 5, 7):
            while m % p == 0:
                m //= p
        if m == 1:
            return n
        n += 2


def _fft_conv(xp: Tensor, weight: Tensor) -> Tensor:
    """Same result as :func:`_grouped_conv`, through real FFTs (the padding makes wrap-around harmless)."""
    kh, kw = weight.shape[-2:]
    hp, wp = xp.shape[-2:]
    work = torch.float64 if xp.dtype == torch.float64 else torch.float32
    size = (_smooth(hp), _smooth(wp))
    # the kernel's spectrum row transforms first, on its kh rows only (the same values, half the time)
    kernel = torch.fft.fft(torch.fft.rfft(weight.to(work).flip(-2, -1), n=size[1]), n=size[0], dim=-2)
    spec = torch.fft.rfft2(xp.to(work), s=size).mul_(kernel.unsqueeze(1))
    out = torch.fft.irfft2(spec, s=size)[..., kh - 1:hp, kw - 1:wp]
    return out.to(xp.dtype)


def blur(x: Tensor, kernels: Tensor, padding: str = 'reflect', flip: bool = False,
         method: str = 'auto', stride: int = 1, separable: Tensor | list[bool] | bool = False) -> Tensor:
    """Filter (B, C, H, W) ``x`` with per-sample ``kernels`` (B, kh, kw), or one (kh, kw) / (1, kh, kw).

    ``padding`` in :data:`PADDINGS`; ``flip=True`` for SciPy/KAIR convolution; ``method`` 'auto',
    'conv' or 'fft'; ``stride`` keeps every ``stride``-th output pixel (from the first). With odd kernels ``blur(x, k, 'reflect', method='conv')`` equals BasicSR's
    ``filter2D(x, k)`` bit for bit; the float32 FFT differs by ~1e-6 (2e-6 at 51 x 51).
    ``separable`` (a bool, or per sample a (B,) bool tensor or list) marks kernels that are outer
    products (e.g. isotropic Gaussians): those samples go through :func:`blur_separable` with the kernel's marginals
    (row and column sums, its factors when it sums to 1), whatever ``method`` says; in a batch that
    mixes them, only from 128 x 128 px (below, each extra call costs more than the 1-D passes save:
    ~0.1-0.15 ms per call on the development CPU).
    """
    if method not in ('auto', 'conv', 'fft'):
        raise ValueError(f"method must be 'auto', 'conv' or 'fft', got {method!r}")
    weight = _per_sample(kernels, x, 2)
    if isinstance(separable, Tensor | list | tuple):
        flags = torch.as_tensor(separable, dtype=torch.bool).expand(x.shape[0]).tolist()
    else:
        flags = [bool(separable)] * x.shape[0]
    if len(set(flags)) > 1 and x.shape[-2] * x.shape[-1] < _SPLIT:
        flags = [False] * x.shape[0]  # small images: one 2-D call beats a call per run
    if any(flags):
        k = kernels.to(x.device)
        v, h = _per_sample(k.sum(-1), x, 1), _per_sample(k.sum(-2), x, 1)  # before the cast to x's dtype
    x = x.contiguous()
    parts, start = [], 0
    for rank1, run in itertools.groupby(flags):  # runs of samples (views of x) through one formulation
        s = slice(start, start + len(list(run)))
        start = s.stop
        if rank1:
            parts += _separable_parts(x[s], v[s], h[s], padding, flip, stride)
        else:
            parts += _full_parts(x[s], weight[s], padding, flip, method, stride)
    return torch.cat(parts) if len(parts) > 1 else parts[0]


def _full_parts(x: Tensor, weight: Tensor, padding: str, flip: bool, method: str, stride: int) -> list[Tensor]:
    """:func:`blur` by conv or FFT, chunk by chunk."""
    weight = _trim(weight)
    if flip:
        weight = weight.flip(-2, -1)
    kh, kw = weight.shape[-2:]
    (top, bottom), (left, right) = _anchor(kh, flip), _anchor(kw, flip)
    if method == 'auto' and kh * kw < _OPENCV_TAPS and _opencv_applies(x, kh, kw, padding, stride):
        return [_opencv_filter(x, [(k,) for k in weight.contiguous().numpy()], top, left, padding)]
    use_fft = method == 'fft' or (method == 'auto' and stride == 1
                                  and _use_fft(kh * kw, x.shape[-2] * x.shape[-1], x.shape[0] * x.shape[1],
                                               x.device))

    def op(xp: Tensor, w: Tensor) -> Tensor:
        return _fft_conv(xp, w)[..., ::stride, ::stride] if use_fft else _grouped_conv(xp, w, stride)

    hw = (x.shape[-2] + kh - 1) * (x.shape[-1] + kw - 1)
    return [op(pad2d(x[s], top, bottom, left, right, padding), weight[s]) for s in _chunks(x, hw, not use_fft)]


def _opencv_applies(x: Tensor, kh: int, kw: int, padding: str, stride: int) -> bool:
    """Whether OpenCV's filters can filter ``x``: float32 on the CPU without autograd, every output kept, a
    border OpenCV has, the image larger than the kernel."""
    return (stride == 1 and padding in _OPENCV_BORDERS and x.device.type == 'cpu' and x.dtype == torch.float32
            and not x.requires_grad and x.shape[-2] > kh and x.shape[-1] > kw)


def _opencv_filter(x: Tensor, kernels: list[tuple], top: int, left: int, padding: str) -> Tensor:
    """Correlation of each plane of the float32 CPU ``x`` (B, C, H, W) with its sample's kernel, anchored at tap
    (``top``, ``left``), plane by plane into one new array: ``kernels[b]`` is ``(k,)``, a 2-D kernel for
    ``cv2.filter2D`` (its direct SIMD path: under 130 taps; from 130 it uses its DFT), or
    ``(k_h, k_v)``, the horizontal and vertical taps of a separable one for ``cv2.sepFilter2D``."""
    src = x.contiguous().numpy()
    out = np.empty_like(src)
    border = _OPENCV_BORDERS[padding]
    for planes, dsts, k in zip(src, out, kernels):
        for plane, dst in zip(planes, dsts):
            if len(k) == 1:
                cv2.filter2D(plane, -1, k[0], dst, (left, top), 0, border)
            else:
                cv2.sepFilter2D(plane, -1, k[0], k[1], dst, (left, top), 0, border)
    return torch.from_numpy(out)


def _band(taps: Tensor, stride: int) -> Tensor:
    """(B, L, m) banded blocks for :func:`_pass`: ``band[:, j, i] = taps[:, j - i * stride]`` (zero
    outside the taps), a strided view of the zero-padded taps, reversed along ``i``."""
    k = taps.shape[-1]
    lead, span = (_BLOCK - 1) * stride, (_BLOCK - 1) * stride + k
    padded = F.pad(taps, (lead, span - k))
    return padded.as_strided((taps.shape[0], span, _BLOCK), (padded.stride(0), 1, stride)).flip(-1)


def _pass(xp: Tensor, taps: Tensor, n_out: int, stride: int, dim: int) -> Tensor:
    """1-D correlation along ``dim`` (-1 or -2) of the padded (B, C, Hp, Wp) ``xp`` with per-sample
    ``taps`` (B, k), the first ``n_out`` outputs at ``stride``: blocks of :data:`_BLOCK` outputs, each a
    matrix product of its input window with a banded block (exact up to float rounding)."""
    band = _band(taps, stride)
    span, m = band.shape[-2:]
    blocks = -(-n_out // m)
    extra = (blocks * m - 1) * stride + taps.shape[-1] - xp.shape[dim]
    if extra > 0:
        xp = F.pad(xp, (0, extra) if dim == -1 else (0, 0, 0, extra))
    windows = xp.unfold(dim, span, m * stride).narrow(dim - 1, 0, blocks)  # window last: (.., L)
    b, c, h = windows.shape[:3]
    if dim == -1:  # (B, C H blocks, L) @ (B, L, m)
        return torch.bmm(windows.reshape(b, -1, span), band).reshape(b, c, h, -1)[..., :n_out]
    out = band.transpose(-1, -2)[:, None, None] @ windows.transpose(-1, -2)  # (B, C, blocks, m, W)
    return out.flatten(-3, -2)[..., :n_out, :]


def blur_separable(x: Tensor, kernel_v: Tensor, kernel_h: Tensor, padding: str = 'reflect',
                   flip: bool = False, stride: int = 1) -> Tensor:
    """:func:`blur` with the rank-1 kernel ``outer(kernel_v, kernel_h)``, as two 1-D passes.

    Kernels are per sample (B, k) or shared (k,) / (1, k); the result equals the 2-D filtering up to
    float rounding, at ``kv + kh`` instead of ``kv * kh`` multiply-adds per pixel. ``stride`` as in
    :func:`blur`: each pass computes only the kept outputs. On CPU each pass is a batched matrix product
    over blocks of 16 outputs (~(15 stride + k) multiply-adds per output at matrix-product speed:
    1.5-4x faster than oneDNN's depthwise convolutions, which run ~4 GMAC/s on these 1-D kernels);
    elsewhere two depthwise convolutions (not measured: no GPU on the development box).
    """
    parts = _separable_parts(x.contiguous(), _per_sample(kernel_v, x, 1), _per_sample(kernel_h, x, 1), padding,
                             flip, stride)
    return torch.cat(parts) if len(parts) > 1 else parts[0]


def _separable_parts(x: Tensor, kv: Tensor, kh: Tensor, padding: str, flip: bool, stride: int) -> list[Tensor]:
    """:func:`blur_separable` chunk by chunk."""
    kv, kh = _trim(kv), _trim(kh)
    if flip:
        kv, kh = kv.flip(-1), kh.flip(-1)
    (top, bottom), (left, right) = _anchor(kv.shape[-1], flip), _anchor(kh.shape[-1], flip)
    if _opencv_applies(x, kv.shape[-1], kh.shape[-1], padding, stride):
        return [_opencv_filter(x, list(zip(kh.contiguous().numpy(), kv.contiguous().numpy())), top, left, padding)]
    h, w = -(-x.shape[-2] // stride), -(-x.shape[-1] // stride)

    def op(xp: Tensor, v: Tensor, k: Tensor) -> Tensor:
        if xp.device.type == 'cpu':
            return _pass(_pass(xp, v, h, stride, -2), k, w, stride, -1)
        return _grouped_conv(_grouped_conv(xp, k.unsqueeze(1), (1, stride)), v.unsqueeze(2), (stride, 1))

    hw = (x.shape[-2] + kv.shape[-1] - 1) * (x.shape[-1] + kh.shape[-1] - 1)
    return [op(pad2d(x[s], top, bottom, left, right, padding), kv[s], kh[s]) for s in _chunks(x, hw, False)]
