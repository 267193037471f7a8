"""Blur kernels, per-sample filtering and USM sharpening, checked against BasicSR, SciPy and values
recorded from the authors' code."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.ndimage as ndi
import skimage.data
import torch
import torch.nn.functional as F

import blindsr  # noqa: F401  (compat shim before basicsr)
from basicsr.data import degradations as bsr
from basicsr.utils.img_process_util import USMSharp, filter2D
from blindsr.degradations import kernels as K
from blindsr.degradations.blur import PADDINGS, _strips, _trim, blur, blur_separable
from blindsr.degradations.sharpen import gaussian_taps, usm_sharp

TINY = torch.finfo(torch.float32).tiny


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def photos(size: int = 128) -> torch.Tensor:
    """Four real (4, 3, size, size) crops in [0, 1] (8-bit values)."""
    imgs = [getattr(skimage.data, n)()[..., :3] for n in ('astronaut', 'coffee', 'chelsea', 'rocket')]
    crops = [np.ascontiguousarray(i[100:100 + size, 100:100 + size]) for i in imgs]
    return torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float().div(255).contiguous()


def all_families(b: int = 16, size: int = 21) -> dict[str, torch.Tensor]:
    g = gen(1)
    p = K.sample_mixed_params(b, generator=g)
    sx, sy, th = torch.rand(3, b, generator=g) * 3 + 0.2
    return {
        'std': K.gaussian_kernels(size, sx, sy, th),
        'variance': K.gaussian_kernels(size, sx * 3, sy * 3, th, 'variance'),
        'shifted': K.gaussian_kernels(size, sx * 3, sy * 3, th, 'variance', 'shifted', 1.5),
        'mixed': K.mixed_kernels(size, **p, support=K.sample_kernel_sizes(b, generator=g)),
        'sinc': K.sinc_kernels(K.sample_kernel_sizes(b, generator=g), torch.rand(b, generator=g) * 2 + 1, size),
    }


# ----------------------------------------------------------------------------- kernels


def test_kernels_sum_to_one_and_have_no_subnormal_taps():
    for name, k in all_families().items():
        assert k.shape == (16, 21, 21) and k.dtype == torch.float32, name
        torch.testing.assert_close(k.double().sum((1, 2)), torch.ones(16, dtype=torch.float64), msg=name)
        assert not ((k != 0) & (k.abs() < TINY)).any(), name
    # the naive float32 evaluation of the same narrow Gaussians has subnormal taps; ours does not
    sigma = torch.linspace(0.9, 1.4, 32)
    d = torch.arange(21.0) - 10
    naive = torch.exp(-(d[:, None] ** 2 + d ** 2) / (2 * sigma.reshape(-1, 1, 1) ** 2))
    assert ((naive != 0) & (naive < TINY)).any()
    ours = K.gaussian_kernels(21, sigma, sigma)
    assert not ((ours != 0) & (ours < TINY)).any()
    beta4 = K.generalized_gaussian_kernels(21, sigma, sigma, 0.0, 4.0)
    assert not ((beta4 != 0) & (beta4 < TINY)).any()


@pytest.mark.parametrize('parameterisation', ['std', 'variance'])
def test_second_moments_match_the_covariance(parameterisation):
    g = gen(2)
    b = 32
    if parameterisation == 'std':
        sx, sy = torch.rand(2, b, generator=g, dtype=torch.float64) * 2.2 + 0.8  # std devs
        a, c = sx ** 2, sy ** 2
    else:
        sx, sy = torch.rand(2, b, generator=g, dtype=torch.float64) * 8 + 0.7  # variances
        a, c = sx, sy
    th = torch.rand(b, generator=g, dtype=torch.float64) * 2 * math.pi - math.pi
    k = K.gaussian_kernels(61, sx, sy, th, parameterisation, dtype=torch.float64)
    d = torch.arange(61, dtype=torch.float64) - 30
    x, y = d.reshape(1, 1, -1), d.reshape(1, -1, 1)
    cov = torch.stack([(k * x * x).sum((1, 2)), (k * x * y).sum((1, 2)), (k * y * y).sum((1, 2))], 1)
    cos, sin = th.cos(), th.sin()
    expected = torch.stack([a * cos ** 2 + c * sin ** 2, (a - c) * cos * sin, a * sin ** 2 + c * cos ** 2], 1)
    torch.testing.assert_close(cov, expected, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close((k * x).sum((1, 2)), torch.zeros(b, dtype=torch.float64), atol=1e-12, rtol=0)


def test_isotropic_kernels_are_symmetric():
    sigma = torch.linspace(0.2, 4, 20)
    for k in (K.gaussian_kernels(21, sigma, sigma), K.gaussian_kernels(20, sigma, sigma, 1.0, 'variance'),
              K.generalized_gaussian_kernels(15, sigma, sigma, 0.0, 2.5), K.plateau_kernels(15, sigma, sigma, 0, 1.5),
              K.sinc_kernels(13, sigma / 4 * math.pi)):
        for t in (k.flip(-1), k.flip(-2), k.transpose(-1, -2)):
            torch.testing.assert_close(t, k, atol=1e-9, rtol=1e-6)


def com(k: torch.Tensor) -> tuple[float, float]:
    i = torch.arange(k.shape[-1], dtype=torch.float64)
    k = k.double()
    return float((k.sum(-1) * i).sum() / k.sum()), float((k.sum(-2) * i).sum() / k.sum())


def test_shifted_kernels_match_the_authors():
    # Recorded from JingyunLiang/MANet@34f90ba codes/utils/util.py (the placement CDSR's util_ma.py copies):
    # stable_batch_kernel(1, l=21, sig1=4.0, sig2=1.0, theta=0.5, rate_iso=0.0, scale=4, tensor=False),
    # run with scipy.finfo -> numpy.finfo (removed from SciPy) and matplotlib stubbed.
    k = K.gaussian_kernels(21, 4.0, 1.0, 0.5, 'variance', 'shifted', 1.5, dtype=torch.float64)[0]
    assert com(k) == pytest.approx((8.5, 8.5), abs=1e-12)
    assert k[18:].abs().sum() == 0 and k[:, 18:].abs().sum() == 0
    for (i, j), v in {(8, 8): 0.07365333995244176, (0, 0): 1.552345207633928e-11,
                      (5, 12): 7.887779172616031e-07, (17, 17): 1.552345207633928e-11}.items():
        assert float(k[i, j]) == pytest.approx(v, rel=1e-12)
    # Recorded from cszn/KAIR@fc1732f utils/utils_blindsr.py (degradation_bsrgan, downsample2 branch):
    # k = fspecial('gaussian', 25, 2.4); k = shift_pixel(k, 4); k /= k.sum(), with scipy.finfo ->
    # numpy.finfo and interp2d (removed in SciPy 1.14) -> RectBivariateSpline(kx=1, ky=1, s=0).
    k = K.shift_kernels(K.gaussian_kernels(25, 2.4, 2.4, dtype=torch.float64), 1.5)[0]
    assert com(k) == pytest.approx((10.50004589624646, 10.500045896246462), abs=1e-12)
    for (i, j), v in {(10, 10): 0.025381552905154283, (12, 12): 0.01820732038955538,
                      (24, 24): 3.83740333155624e-13}.items():
        assert float(k[i, j]) == pytest.approx(v, rel=1e-10)


def test_equal_to_basicsr_kernel_functions():
    rng = np.random.default_rng(3)
    for size in (3, 7, 13, 21):
        for _ in range(10):
            sx, sy = rng.uniform(0.2, 4, 2)
            th, beta, omega = rng.uniform(-math.pi, math.pi), rng.uniform(0.5, 4), rng.uniform(0.3, math.pi)
            pairs = [
                (bsr.bivariate_Gaussian(size, sx, sy, th, isotropic=False), K.gaussian_kernels(size, sx, sy, th)),
                (bsr.bivariate_Gaussian(size, sx, sy, th, isotropic=True), K.gaussian_kernels(size, sx, sx)),
                (bsr.bivariate_generalized_Gaussian(size, sx, sy, th, beta, isotropic=False),
                 K.generalized_gaussian_kernels(size, sx, sy, th, beta)),
                (bsr.bivariate_plateau(size, sx, sy, th, beta, isotropic=False), K.plateau_kernels(size, sx, sy, th, beta)),
                (bsr.circular_lowpass_kernel(omega, size, pad_to=21), K.sinc_kernels(size, omega, 21)),
                (np.pad(bsr.bivariate_Gaussian(size, sx, sy, th, isotropic=False), (21 - size) // 2),
                 K.gaussian_kernels(21, sx, sy, th, support=size)),
            ]
            for ref, ours in pairs:
                np.testing.assert_allclose(ours[0].numpy(), ref, rtol=0, atol=1e-7)


def test_mixed_kernels_follow_their_kind():
    p = K.sample_mixed_params(64, generator=gen(4))
    sizes = K.sample_kernel_sizes(64, generator=gen(5))
    k = K.mixed_kernels(21, **p, support=sizes)
    for i in range(64):
        kind = K.KERNEL_KINDS[int(p['kind'][i])]
        args = (int(sizes[i]), float(p['sigma_x'][i]), float(p['sigma_y'][i]), float(p['theta'][i]))
        if kind in ('iso', 'aniso'):
            ref = bsr.bivariate_Gaussian(*args, isotropic=False)
        elif kind.startswith('generalized'):
            ref = bsr.bivariate_generalized_Gaussian(*args, float(p['beta'][i]), isotropic=False)
        else:
            ref = bsr.bivariate_plateau(*args, float(p['beta'][i]), isotropic=False)
        np.testing.assert_allclose(k[i].numpy(), np.pad(ref, (21 - args[0]) // 2), rtol=0, atol=1e-7)


def test_samplers():
    p = K.sample_mixed_params(20000, generator=gen(6))
    freq = torch.bincount(p['kind'], minlength=6).double() / 20000
    torch.testing.assert_close(freq, torch.tensor([0.45, 0.25, 0.12, 0.03, 0.12, 0.03], dtype=torch.float64),
                               atol=0.015, rtol=0)
    iso = p['kind'] % 2 == 0
    assert torch.equal(p['sigma_y'][iso], p['sigma_x'][iso]) and (p['theta'][iso] == 0).all()
    assert (p['beta'][p['kind'] < 2] == 1).all() and p['beta'].min() >= 0.5 and p['beta'].max() <= 4
    q = K.sample_gaussian_params(1000, (0.2, 4.0), isotropic_prob=0.0, ordered=True, generator=gen(7))
    assert (q['sigma_y'] <= q['sigma_x']).all() and q['theta'].min() >= 0 and q['theta'].max() < math.pi
    sizes = K.sample_kernel_sizes(1000, 7, 25, generator=gen(8))
    assert set(sizes.tolist()) == set(range(7, 26, 2))
    again = K.sample_mixed_params(20000, generator=gen(6))
    assert all(torch.equal(p[n], again[n]) for n in p)


def test_shift_kernels_moves_mass_up_left():
    k = K.gaussian_kernels(25, 1.0, 1.0, dtype=torch.float64)
    for sf in (2, 3, 4):
        assert com(K.shift_kernels(k, (sf - 1) / 2)[0]) == pytest.approx((12 - (sf - 1) / 2,) * 2, abs=1e-9)
    assert com(K.shift_kernels(k, -1.0)[0]) == pytest.approx((13.0, 13.0), abs=1e-9)


# ----------------------------------------------------------------------------- blur


_NUMPY_PAD = {'reflect': 'reflect', 'mirror': 'reflect', 'symmetric': 'symmetric', 'replicate': 'edge',
              'circular': 'wrap', 'zeros': 'constant'}


def reference_blur(x: torch.Tensor, kernels: torch.Tensor, padding: str, flip: bool) -> torch.Tensor:
    """One conv2d per sample after numpy padding (anchor k // 2; flip = true convolution)."""
    out = []
    for xb, kb in zip(x, kernels):
        kh, kw = kb.shape
        kb = kb.flip(-2, -1) if flip else kb
        top = (kh - 1) // 2 if flip else kh // 2
        left = (kw - 1) // 2 if flip else kw // 2
        xp = np.pad(xb.numpy(), ((0, 0), (top, kh - 1 - top), (left, kw - 1 - left)), mode=_NUMPY_PAD[padding])
        out.append(F.conv2d(torch.from_numpy(xp)[:, None], kb[None, None])[:, 0])
    return torch.stack(out)


@pytest.mark.parametrize('padding', PADDINGS)
def test_blur_equals_per_sample_conv(padding):
    g = gen(9)
    for size in range(3, 26):
        # small images need repeated reflection (the gather path) for large kernels
        h, w = (11, 13) if size % 2 else (30, 28)
        x = torch.rand(2, 2, h, w, generator=g, dtype=torch.float64)
        shape = (size, size) if size % 3 else (size, size - 2)
        k = torch.rand(2, *shape, generator=g, dtype=torch.float64)
        for flip in (False, True):
            ref = reference_blur(x, k, padding, flip)
            for method in ('conv', 'fft'):
                torch.testing.assert_close(blur(x, k, padding, flip, method), ref, atol=1e-12, rtol=0)
                # s-fold subsampling of the blur, computed directly (a strided conv)
                strided = blur(x, k, padding, flip, method, stride=3)
                torch.testing.assert_close(strided, ref[..., ::3, ::3], atol=1e-12, rtol=0)


def test_blur_matches_scipy_conventions():
    x = torch.rand(1, 1, 20, 24, dtype=torch.float64, generator=gen(10))
    scipy_mode = {'reflect': 'mirror', 'symmetric': 'reflect', 'replicate': 'nearest', 'circular': 'wrap',
                  'zeros': 'constant'}
    for size in (4, 5):
        k = torch.rand(size, size, dtype=torch.float64, generator=gen(size))
        for padding, mode in scipy_mode.items():
            for flip, fn in ((False, ndi.correlate), (True, ndi.convolve)):
                ref = fn(x[0, 0].numpy(), k.numpy(), mode=mode)
                np.testing.assert_allclose(blur(x, k, padding, flip)[0, 0].numpy(), ref, atol=1e-12)


def test_blur_equals_basicsr_filter2d():
    x = photos(96)
    p = K.sample_mixed_params(4, generator=gen(11))
    for size in (3, 7, 21):
        k = K.mixed_kernels(size, **p)
        assert torch.equal(blur(x, k, method='conv'), filter2D(x, k))
        torch.testing.assert_close(blur(x, k[:1], method='conv'), filter2D(x, k[:1]), atol=1e-6, rtol=0)
        torch.testing.assert_close(blur(x, k, method='fft'), filter2D(x, k), atol=2e-6, rtol=0)


def test_blur_chunks_and_separable():
    x = torch.rand(9, 3, 256, 256, generator=gen(12))  # CPU chunks of 4 samples: 4 + 4 + 1
    k = K.gaussian_kernels(5, torch.rand(9, generator=gen(13)) + 0.5, 2.0, 0.3)
    torch.testing.assert_close(blur(x, k), torch.cat([blur(x[i:i + 1], k[i]) for i in range(9)]), atol=1e-6, rtol=0)
    v, h = torch.rand(2, 9, 15, generator=gen(14), dtype=torch.float64)
    xd = x[:, :, :40, :50].double()
    for padding in PADDINGS:
        for flip in (False, True):
            torch.testing.assert_close(blur_separable(xd, v, h, padding, flip),
                                       blur(xd, v[:, :, None] * h[:, None], padding, flip), atol=1e-12, rtol=0)


def test_rank1_kernels_through_1d_passes_equal_the_2d_blur():
    """blur_separable (banded block products on CPU) computes only the kept outputs of a strided blur, and
    blur(separable=...) sends BSRGAN's rank-1 kernels (isotropic of each sample's size on a shared grid,
    downsample2's shifted Gaussian) through it: the 2-D blur within rounding, mixed batches included."""
    g = gen(16)
    x = torch.rand(5, 3, 45, 38, generator=g, dtype=torch.float64)
    v, h = torch.rand(2, 5, 13, generator=g, dtype=torch.float64)
    for padding in PADDINGS:
        for stride in (2, 3, 4):
            ref = reference_blur(x, v[:, :, None] * h[:, None], padding, True)[..., ::stride, ::stride]
            torch.testing.assert_close(blur_separable(x, v, h, padding, True, stride), ref, atol=1e-12, rtol=0)
    sigma = torch.rand(5, generator=g, dtype=torch.float64) * 3 + 0.1
    iso = K.gaussian_kernels(25, sigma ** 2, sigma ** 2, 0.0, 'variance', support=torch.tensor([7, 25, 13, 9, 25]),
                             dtype=torch.float64)
    shifted = K.shift_kernels(K.gaussian_kernels(25, sigma, sigma, dtype=torch.float64), 1.5)
    mask = torch.tensor([True, False, True, False, True])
    mixed = torch.where(mask[:, None, None], iso, K.gaussian_kernels(25, sigma, 2.0, 0.7, 'variance', dtype=torch.float64))
    for k, separable, stride in ((iso, True, 1), (shifted, True, 4), (mixed, mask, 1), (mixed, mask, 3)):
        ref = reference_blur(x, k, 'reflect', True)[..., ::stride, ::stride]
        torch.testing.assert_close(blur(x, k, flip=True, stride=stride, separable=separable), ref, atol=1e-12, rtol=0)
    large = torch.rand(3, 1, 128, 130, generator=g, dtype=torch.float64)  # mixed batches split from 128 x 128 px
    torch.testing.assert_close(blur(large, mixed[:3], flip=True, separable=mask[:3]),
                               reference_blur(large, mixed[:3], 'reflect', True), atol=1e-12, rtol=0)
    photo = photos(96)[:, :, :90]  # float32, as the pipelines run
    torch.testing.assert_close(blur(photo, iso[:4], flip=True, separable=True), blur(photo, iso[:4], flip=True, method='conv'),
                               atol=1e-6, rtol=0)


def test_opencv_filters_equal_the_reference(monkeypatch):
    """On CPU float32, 2-D kernels under 130 taps (OpenCV's direct path) go through cv2.filter2D and separable
    ones through cv2.sepFilter2D (every OpenCV border, odd and even sizes with their anchors, flip or not): the
    reference within float32 rounding. Strided, float64, circular and 130+ tap blurs keep the torch paths."""
    from blindsr.degradations import blur as blur_module
    calls = []
    real = blur_module._opencv_filter
    monkeypatch.setattr(blur_module, '_opencv_filter', lambda *a: calls.append(len(a[1][0])) or real(*a))
    g = gen(19)
    x = torch.rand(2, 3, 37, 41, generator=g)
    for kh, kw in ((5, 5), (6, 4), (3, 9), (11, 11)):
        k = torch.rand(2, kh, kw, generator=g, dtype=torch.float64)
        k /= k.sum((-2, -1), keepdim=True)
        v, h = torch.rand(2, 2, kh, generator=g, dtype=torch.float64)
        v, h = v / v.sum(-1, keepdim=True), h / h.sum(-1, keepdim=True)
        for padding in ('reflect', 'mirror', 'symmetric', 'replicate', 'zeros'):
            for flip in (False, True):
                ref = reference_blur(x.double(), k, padding, flip)
                torch.testing.assert_close(blur(x, k.float(), padding, flip).double(), ref, atol=1e-6, rtol=0)
                ref = reference_blur(x.double(), v[:, :, None] * h[:, None], padding, flip)
                torch.testing.assert_close(blur_separable(x, v.float(), h.float(), padding, flip).double(), ref,
                                           atol=1e-6, rtol=0)
    assert calls.count(1) == calls.count(2) == 40  # 2-D and separable: 4 shapes x 5 borders x 2 flips
    calls.clear()
    blur_separable(x, v, h, stride=2)
    blur(x.double(), k)
    blur(x, k.float(), 'circular')
    blur(x, torch.rand(2, 11, 13, generator=g) / 143)
    assert not calls


def test_conv_of_few_planes_stacks_strips():
    """oneDNN's depthwise conv computes 16 planes per block: one sample's 3 planes are cut into strips
    stacked as channels (many planes are not), with the same result."""
    assert _strips(3, 64, 25) > 1 and _strips(48, 64, 25) == 1
    x = torch.rand(1, 3, 61, 40, generator=gen(17), dtype=torch.float64)
    for size in (3, 8, 25):
        k = torch.rand(1, size, size, generator=gen(size), dtype=torch.float64)
        for padding in ('reflect', 'zeros'):
            ref = reference_blur(x, k, padding, True)
            torch.testing.assert_close(blur(x, k, padding, True, 'conv'), ref, atol=1e-12, rtol=0)


def test_zero_outer_taps_are_trimmed_with_the_same_result():
    """Kernels zero-padded onto a larger grid (BSRGAN builds each group's on its largest size) filter with
    their own size: the same values, anchors kept for odd and even sizes, separable or not."""
    g = gen(18)
    x = torch.rand(2, 3, 40, 33, generator=g, dtype=torch.float64)
    for h, w in ((7, 5), (6, 4)):
        small = torch.rand(2, h, w, generator=g, dtype=torch.float64)
        small[1, 0] = 0  # a zero outer row in one sample only: kept
        big = F.pad(small, (4, 4, 3, 3))
        assert _trim(big).shape == small.shape
        for flip in (False, True):
            ref = reference_blur(x, small, 'reflect', flip)
            torch.testing.assert_close(blur(x, big, flip=flip, method='conv'), ref, atol=1e-12, rtol=0)
            torch.testing.assert_close(blur(x, big, flip=flip, method='fft'), ref, atol=1e-12, rtol=0)
        v, t = small[:, :, 0], small[:, 1]  # v: one zero end in sample 1
        ref = reference_blur(x, v[:, :, None] * t[:, None], 'reflect', True)
        torch.testing.assert_close(blur_separable(x, F.pad(v, (3, 3)), F.pad(t, (4, 4)), flip=True), ref,
                                   atol=1e-12, rtol=0)


# ----------------------------------------------------------------------------- sharpening


def test_usm_equals_basicsr_usmsharp():
    x = photos(128)
    ref, ours = USMSharp()(x), usm_sharp(x)
    # Pixels whose |img - blur| * 255 lies within float rounding of the threshold may flip their mask
    # bit between the 51 x 51 filter2D and the separable blur; such a flip moves the output by up to
    # ~3e-4 within the 51 x 51 window of the soft mask. Everywhere else the two agree to float rounding.
    taps = gaussian_taps(51).float()
    res_ref = (x - filter2D(x, USMSharp().kernel)).abs() * 255
    res_ours = (x - blur_separable(x, taps, taps)).abs() * 255
    flips = (res_ref > 10) ^ (res_ours > 10)
    assert flips.sum() <= 3 and ((res_ref[flips] - 10).abs() < 1e-4).all()
    near = F.max_pool2d(flips.float(), 51, 1, 25) > 0
    assert (ours - ref).abs()[~near].max() < 1e-5
    w = torch.tensor([0.0, 0.5, 1.0, 0.5])
    torch.testing.assert_close(usm_sharp(x, weight=w)[0], x[0])
    torch.testing.assert_close(usm_sharp(x, weight=w)[1:2], usm_sharp(x[1:2]))


# ----------------------------------------------------------------------------- devices


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_cuda_parity():
    x = photos(96)
    p = K.sample_mixed_params(4, generator=gen(15))
    k = K.mixed_kernels(21, **p)
    kc = K.mixed_kernels(21, **{n: v.cuda() for n, v in p.items()})
    torch.testing.assert_close(kc.cpu(), k, atol=1e-7, rtol=0)
    torch.testing.assert_close(K.sinc_kernels(13, p['sigma_x'].cuda(), 21).cpu(), K.sinc_kernels(13, p['sigma_x'], 21))
    for method in ('conv', 'fft'):
        torch.testing.assert_close(blur(x.cuda(), kc, 'reflect', method=method).cpu(), blur(x, k), atol=2e-6, rtol=0)
    iso = K.gaussian_kernels(21, p['sigma_x'], p['sigma_x'])  # rank 1: two depthwise 1-D convs on CUDA
    torch.testing.assert_close(blur(x.cuda(), iso.cuda(), flip=True, stride=2, separable=True).cpu(),
                               blur(x, iso, flip=True, stride=2, separable=True), atol=2e-6, rtol=0)
    torch.testing.assert_close(usm_sharp(x.cuda()).cpu(), usm_sharp(x), atol=1e-4, rtol=0)
    g = torch.Generator('cuda').manual_seed(0)
    assert K.sample_mixed_params(8, generator=g)['kind'].device.type == 'cuda'
