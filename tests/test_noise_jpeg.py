"""Noise models, JPEG and OpenCV-style resizing, checked against BasicSR, KAIR's formulas and OpenCV."""

from __future__ import annotations

import functools
import math

import cv2
import numpy as np
import pytest
import scipy.linalg
import skimage.data
import torch

import blindsr  # noqa: F401  (compat shim before basicsr)
from basicsr.data import degradations as bsr
from basicsr.utils.diffjpeg import DiffJPEG
from blindsr.degradations import noise
from blindsr.degradations.jpeg import jpeg, jpeg_opencv, sample_jpeg_quality
from blindsr.degradations.resize_modes import quantize, resize

CV_CODES = {'nearest': cv2.INTER_NEAREST, 'bilinear': cv2.INTER_LINEAR, 'bicubic': cv2.INTER_CUBIC,
            'area': cv2.INTER_AREA}


@functools.cache
def _photo(name: str) -> np.ndarray:
    return getattr(skimage.data, name)()[..., :3]


def photo(name: str = 'astronaut', h: int | None = None, w: int | None = None, top: int = 0,
          left: int = 0) -> torch.Tensor:
    """A (1, 3, h, w) float32 crop of a scikit-image photo in [0, 1] (whole photo by default)."""
    img = _photo(name)
    img = img[top:top + h, left:left + w] if h else img
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None].float() / 255


def batch(h: int = 64, w: int = 64) -> torch.Tensor:
    """Four different real crops, one of them posterised to 5 levels (fewer distinct values)."""
    crops = [photo('astronaut', h, w, 100, 200), photo('coffee', h, w, 50, 80),
             photo('chelsea', h, w, 60, 120), (photo('astronaut', h, w, 0, 0) * 4).round() / 4]
    return torch.cat(crops)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return 10 * math.log10(1 / ((a.double() - b.double()) ** 2).mean().item())


# ----------------------------------------------------------------------------- Real-ESRGAN noise


def test_gaussian_colour_equals_basicsr_under_the_same_seed():
    x = batch()
    torch.manual_seed(3)
    ref = bsr.random_add_gaussian_noise_pt(x, sigma_range=(1, 30), gray_prob=0)
    torch.manual_seed(3)
    params = noise.sample_gaussian_noise(4, (1, 30), gray_prob=0)
    assert torch.equal(noise.add_gaussian_noise(x, **params), ref)


def test_gaussian_gray_equals_basicsr_per_image():
    # BasicSR shares one gray field across its batch, so compare image by image (H * W multiple of 16).
    x = batch(32, 32)
    for i in range(4):
        torch.manual_seed(i)
        ref = bsr.random_add_gaussian_noise_pt(x[i:i + 1], sigma_range=(1, 30), gray_prob=1, rounds=True)
        torch.manual_seed(i)
        params = noise.sample_gaussian_noise(1, (1, 30), gray_prob=1)
        assert torch.equal(noise.add_gaussian_noise(x[i:i + 1], **params, rounds=True), ref)


def test_gaussian_per_sample_sigma_and_gray():
    x = torch.full((4, 3, 128, 128), 0.5)
    sigma = torch.tensor([5.0, 10.0, 20.0, 30.0])
    gray = torch.tensor([False, True, False, True])
    n = noise.add_gaussian_noise(x, sigma, gray, torch.Generator().manual_seed(0), clip=False) - x
    assert torch.allclose(n.std((1, 2, 3)) * 255, sigma, rtol=0.03)
    channels_equal = (n[:, 0] == n[:, 1]).all((1, 2)) & (n[:, 0] == n[:, 2]).all((1, 2))
    assert channels_equal.tolist() == gray.tolist()
    assert not torch.equal(n[1, 0] / 10, n[3, 0] / 30)  # independent gray fields per sample


def _fixed_poisson(rate, generator=None):
    return torch.floor(rate + 0.37)


@pytest.mark.parametrize('clip, rounds', [(True, False), (True, True), (False, False)])
def test_poisson_equals_basicsr_with_fixed_draws(monkeypatch, clip, rounds):
    x = batch()
    scale = torch.tensor([0.5, 1.0, 2.0, 3.0])
    gray = torch.tensor([0.0, 1.0, 0.0, 1.0])
    monkeypatch.setattr(torch, 'poisson', _fixed_poisson)
    ref = bsr.add_poisson_noise_pt(x, scale.clone(), clip=clip, rounds=rounds, gray_noise=gray.clone())
    ours = noise.add_poisson_noise(x, scale, gray.bool(), clip=clip, rounds=rounds)
    assert torch.equal(ours, ref)
    solid = torch.cat([x[3:], x[3:].mean(1, keepdim=True).expand(1, 3, 64, 64)])  # 5 and few levels
    ref = bsr.add_poisson_noise_pt(solid, 1.0, clip=clip, rounds=rounds, gray_noise=0)
    assert torch.equal(noise.add_poisson_noise(solid, 1.0, clip=clip, rounds=rounds), ref)


def test_poisson_noise_statistics_match_basicsr():
    x = batch(96, 96)
    gray = torch.tensor([0.0, 1.0, 0.0, 1.0])
    torch.manual_seed(0)
    ref = bsr.generate_poisson_noise_pt(x, scale=1.0, gray_noise=gray)
    ours = noise.add_poisson_noise(x, 1.0, gray.bool(), torch.Generator().manual_seed(0), clip=False) - x
    assert torch.allclose(ours.std((1, 2, 3)), ref.std((1, 2, 3)), rtol=0.05)


# ----------------------------------------------------------------------------- BSRGAN noise


def test_bsrgan_gaussian_sampler_follows_kair_formula():
    gen = torch.Generator().manual_seed(7)
    params = noise.sample_bsrgan_gaussian_noise(4000, (2, 25), generator=gen)
    level, branch, mix = params['level'], params['branch'], params['mix'].double()
    assert level.min() == 2 and level.max() == 25
    freq = torch.bincount(branch, minlength=3) / 4000
    assert torch.allclose(freq, torch.tensor([0.4, 0.4, 0.2]), atol=0.03)
    # Redraw the same numbers and build KAIR's covariance with numpy / scipy.linalg.orth.
    gen.manual_seed(7)
    torch.randint(2, 26, (4000,), generator=gen)
    torch.rand(4000, generator=gen)
    d = torch.rand(4000, 3, generator=gen, dtype=torch.float64).numpy()
    a = torch.rand(4000, 3, 3, generator=gen, dtype=torch.float64).numpy()
    cov = mix @ mix.mT
    sigma2 = (level.double() / 255) ** 2
    for i in range(0, 4000, 37):
        if branch[i] == noise.CORRELATED:
            u = scipy.linalg.orth(a[i])
            expected = torch.from_numpy(np.abs((25 / 255) ** 2 * u.T @ np.diag(d[i]) @ u))
        elif branch[i] == noise.COLOUR:
            expected = sigma2[i] * torch.eye(3, dtype=torch.float64)
        else:
            expected = sigma2[i] * torch.ones(3, 3, dtype=torch.float64)
        assert torch.allclose(cov[i], expected, rtol=1e-5, atol=1e-9), i


def test_bsrgan_gaussian_and_speckle_noise_statistics():
    gen = torch.Generator().manual_seed(1)
    params = noise.sample_bsrgan_gaussian_noise(64, generator=gen)
    branches = (noise.COLOUR, noise.GRAY, noise.CORRELATED)
    pick = [int(torch.nonzero(params['branch'] == b)[0]) for b in branches]
    mix = params['mix'][pick]
    cov = (mix @ mix.mT).double()
    x = torch.full((3, 3, 256, 256), 0.5)
    n = (noise.add_bsrgan_gaussian_noise(x, mix, gen) - x).reshape(3, 3, -1).double()
    speckle = (noise.add_speckle_noise(x, mix, gen) - x).reshape(3, 3, -1).double()
    for i in range(3):
        emp = torch.cov(n[i])
        assert torch.allclose(emp.diagonal().sqrt(), cov[i].diagonal().sqrt(), rtol=0.03)
        speckle_std = torch.cov(speckle[i]).diagonal().sqrt()
        assert torch.allclose(speckle_std, 0.5 * cov[i].diagonal().sqrt(), rtol=0.03)
        std = cov[i].diagonal().sqrt()
        corr = cov[i] / (std[:, None] * std[None])
        assert torch.allclose(torch.corrcoef(n[i]), corr, atol=0.02)
    zero = noise.add_speckle_noise(torch.zeros(3, 3, 8, 8), mix, gen)
    assert torch.equal(zero, torch.zeros_like(zero))


def test_bsrgan_poisson_follows_kair_formula(monkeypatch):
    x = batch()
    vals = torch.tensor([100.0, 500.0, 2000.0, 10000.0])
    gray = torch.tensor([False, True, True, False])
    monkeypatch.setattr(torch, 'poisson', lambda rate, generator=None: rate * 1.1)
    ours = noise.add_bsrgan_poisson_noise(x, vals, gray)
    for i in range(4):  # KAIR's add_Poisson_noise in numpy, with the same stand-in for the draw
        img = np.clip((x[i].permute(1, 2, 0).numpy() * 255.0).round(), 0, 255) / 255.0
        if not gray[i]:
            img = (img * float(vals[i]) * 1.1).astype(np.float32) / float(vals[i])
        else:
            g = np.clip((np.dot(img, [0.299, 0.587, 0.114]) * 255.0).round(), 0, 255) / 255.0
            img = img + ((g * float(vals[i]) * 1.1).astype(np.float32) / float(vals[i]) - g)[..., None]
        ref = torch.from_numpy(np.clip(img, 0, 1)).permute(2, 0, 1).float()
        # The gray value is computed in float32 here, in float64 by KAIR: a pixel whose gray level lies
        # on a .5 tie may round the other way (0.1 % of pixels), changing it by 0.1 / 255 here.
        assert ((ours[i] - ref).abs() <= 2e-6).float().mean() > 0.995


def test_bsrgan_poisson_sampler_and_variance():
    params = noise.sample_bsrgan_poisson_noise(4000, torch.Generator().manual_seed(0))
    assert 100 <= params['vals'].min() and params['vals'].max() <= 10000
    assert abs(params['gray'].float().mean().item() - 0.5) < 0.03
    x = torch.full((1, 3, 128, 128), 0.5)
    n = noise.add_bsrgan_poisson_noise(x, 1000.0, False, torch.Generator().manual_seed(0)) - quantize(x)
    assert abs(n.var().item() * 1000 / quantize(x).mean().item() - 1) < 0.05  # var = q / vals


def test_bsrgan_gray_noise_draws_one_field_as_kair():
    """KAIR's gray Gaussian / speckle noise draws one (H, W, 1) field and gray Poisson noise draws over the
    gray image only: a gray sample takes H * W draws from its generator (the next draw shows it), colour
    and correlated samples 3 * H * W."""
    x = batch(16, 16)[:2]
    mix = noise.sample_bsrgan_gaussian_noise(64, generator=torch.Generator().manual_seed(1))
    gray_mix = mix['mix'][mix['branch'] == noise.GRAY][:1]
    colour_mix = mix['mix'][mix['branch'] == noise.COLOUR][:1]
    for add in (noise.add_bsrgan_gaussian_noise, noise.add_speckle_noise):
        gens = [torch.Generator().manual_seed(5), torch.Generator().manual_seed(6)]
        out = add(x, torch.cat([gray_mix, colour_mix]), gens)
        ref = [torch.Generator().manual_seed(5), torch.Generator().manual_seed(6)]
        z = [torch.randn(1, 16, 16, generator=ref[0]), torch.randn(3, 16, 16, generator=ref[1])]
        scale = torch.stack([gray_mix[0, :, 0], colour_mix[0].diagonal()]).reshape(2, 3, 1, 1)
        field = torch.stack([z[0].expand(3, 16, 16), z[1]]) * scale
        expected = x + x.clamp(0, 1) * field if add is noise.add_speckle_noise else x + field
        assert torch.allclose(out, expected.clamp(0, 1), atol=1e-6)
        assert all(torch.equal(torch.rand(4, generator=g), torch.rand(4, generator=r)) for g, r in zip(gens, ref))
    gens = [torch.Generator().manual_seed(5), torch.Generator().manual_seed(6)]
    out = noise.add_bsrgan_poisson_noise(x, torch.tensor([300.0, 300.0]), torch.tensor([True, False]), gens)
    ref = [torch.Generator().manual_seed(5), torch.Generator().manual_seed(6)]
    q = quantize(x)
    gray_q = quantize((0.299 * q[0, 0] + 0.587 * q[0, 1] + 0.114 * q[0, 2])[None])
    expected = [q[0] + torch.poisson(gray_q * 300, generator=ref[0]) / 300 - gray_q,
                torch.poisson(q[1] * 300, generator=ref[1]) / 300]
    assert torch.allclose(out, torch.stack(expected).clamp(0, 1), atol=1e-6)
    assert all(torch.equal(torch.rand(4, generator=g), torch.rand(4, generator=r)) for g, r in zip(gens, ref))


# ----------------------------------------------------------------------------- seeding, devices


def _all_random(x: torch.Tensor, gen: torch.Generator) -> list[torch.Tensor]:
    b = x.shape[0]
    g = noise.sample_gaussian_noise(b, generator=gen)
    p = noise.sample_poisson_noise(b, generator=gen)
    k = noise.sample_bsrgan_gaussian_noise(b, generator=gen)
    kp = noise.sample_bsrgan_poisson_noise(b, generator=gen)
    q = sample_jpeg_quality(b, generator=gen)
    return [noise.add_gaussian_noise(x, **g, generator=gen), noise.add_poisson_noise(x, **p, generator=gen),
            noise.add_bsrgan_gaussian_noise(x, k['mix'], gen), noise.add_speckle_noise(x, k['mix'], gen),
            noise.add_bsrgan_poisson_noise(x, **kp, generator=gen), jpeg(x, q)]


def test_same_seed_same_output_other_seed_differs():
    x = batch(32, 32)
    first = _all_random(x, torch.Generator().manual_seed(5))
    again = _all_random(x, torch.Generator().manual_seed(5))
    other = _all_random(x, torch.Generator().manual_seed(6))
    for a, b, c in zip(first, again, other):
        assert torch.equal(a, b)
        assert not torch.equal(a, c)


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_cuda_parity():
    x = batch(48, 40)
    xc = x.cuda()
    q = torch.tensor([30.0, 47.5, 75.0, 95.0])
    for flavour in ('diffjpeg', 'libjpeg'):
        cpu, gpu = jpeg(x, q, flavour), jpeg(xc, q.cuda(), flavour).cpu()
        assert (cpu - gpu).abs().mean() < 1e-3 / 255
    for mode in CV_CODES:
        assert torch.allclose(resize(x, (37, 55), mode), resize(xc, (37, 55), mode).cpu(), atol=1e-5)
    gen = torch.Generator('cuda').manual_seed(0)
    outs = _all_random(xc, gen)
    assert all(o.is_cuda and o.shape == x.shape for o in outs)
    mix = noise.sample_bsrgan_gaussian_noise(4, generator=gen)['mix']
    n = noise.add_bsrgan_gaussian_noise(torch.full((4, 3, 128, 128), 0.5, device='cuda'), mix, gen) - 0.5
    assert torch.allclose(n.std((2, 3)), (mix @ mix.mT).diagonal(dim1=1, dim2=2).sqrt(), rtol=0.05)


def test_bsrgan_noise_mix_of_a_batch_equals_one_call_per_draw():
    """BSRGAN plans draw one sample's noise at a time and make all mixes in one call: same values."""
    draws = [noise.draw_bsrgan_gaussian_noise(1, generator=torch.Generator().manual_seed(s)) for s in range(64)]
    singles = torch.cat([noise.bsrgan_noise_mix(**d) for d in draws])
    batched = noise.bsrgan_noise_mix(**{k: torch.cat([d[k] for d in draws]) for k in draws[0]})
    assert torch.equal(batched, singles)
    again = noise.sample_bsrgan_gaussian_noise(1, generator=torch.Generator().manual_seed(63))
    assert torch.equal(again['mix'], singles[-1:]) and torch.equal(again['level'], draws[-1]['level'])


# ----------------------------------------------------------------------------- JPEG


@pytest.mark.parametrize('size', [(64, 96), (50, 75)])
def test_jpeg_equals_diffjpeg(size):
    x = batch(*size)
    q = torch.tensor([30.0, 47.5, 75.0, 95.0])
    with torch.no_grad():
        ref = DiffJPEG(differentiable=False)(x.clone(), q.clone())
    ours = jpeg(x, q)
    assert ours.is_contiguous() and ours.shape == x.shape
    # Same float32 operations: equal in practice; allow a rare flipped coefficient.
    assert (ours - ref).abs().mean() < 1e-3 / 255 and (ours - ref).abs().max() < 4 / 255


# Documented bounds vs OpenCV (measured: diffjpeg 34.0-40.5 dB, libjpeg 48.6-51.3 dB, mean 0.16-0.38).
@pytest.mark.parametrize('name', ['astronaut', 'coffee'])
@pytest.mark.parametrize('quality', [30, 50, 75, 95])
def test_jpeg_close_to_opencv(name, quality):
    x = photo(name)
    ref = jpeg_opencv(x, quality)
    assert psnr(jpeg(x, quality), ref) > 33.5
    lib = jpeg(x, quality, 'libjpeg')
    assert psnr(lib, ref) > 48
    assert (lib - ref).abs().mean() * 255 < 0.45


def test_jpeg_opencv_is_kairs_codec():
    x = batch(40, 56)
    ours = jpeg_opencv(x, torch.tensor([30, 50, 75, 95]))
    for i, q in enumerate([30, 50, 75, 95]):
        img = np.uint8((x[i].permute(1, 2, 0).numpy().clip(0, 1) * 255.0).round())
        bgr = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
        _, code = cv2.imencode('.jpg', bgr, [int(cv2.IMWRITE_JPEG_QUALITY), q])
        ref = cv2.cvtColor(cv2.imdecode(code, 1), cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
        assert torch.equal(ours[i], torch.from_numpy(ref).permute(2, 0, 1))


def test_jpeg_opencv_rounds_to_levels_as_kair():
    """The 8-bit levels (OpenCV's scale-round-saturate on CPU float32) are KAIR's clip * 255 rounded, at the
    half levels and their float32 neighbours too (and out-of-range values), seen through a quality-100 JPEG."""
    half = (torch.arange(256.0) + 0.5) / 255
    x = torch.stack([half, torch.nextafter(half, torch.tensor(2.0)), torch.nextafter(half, torch.tensor(-2.0))])
    x = x.reshape(1, 3, 16, 16)
    x[0, :, 0, :2] = torch.tensor([-0.2, 1.3])
    img = np.uint8((x[0].permute(1, 2, 0).numpy().clip(0, 1) * 255.0).round())
    _, code = cv2.imencode('.jpg', cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [int(cv2.IMWRITE_JPEG_QUALITY), 100])
    ref = cv2.cvtColor(cv2.imdecode(code, 1), cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
    assert torch.equal(jpeg_opencv(x, 100)[0], torch.from_numpy(ref).permute(2, 0, 1))


@pytest.mark.parametrize('flavour', ['diffjpeg', 'libjpeg'])
def test_jpeg_quality_is_per_sample(flavour):
    x = photo('astronaut', 64, 64, 100, 200).expand(4, 3, 64, 64)
    qualities = [30, 50, 75, 95]
    out = jpeg(x, torch.tensor(qualities, dtype=torch.float32), flavour)
    for i, q in enumerate(qualities):
        assert torch.equal(out[i], jpeg(x[:1], q, flavour)[0])
    errors = [(o - x[0]).abs().mean().item() for o in out]
    assert errors == sorted(errors, reverse=True) and len(set(errors)) == 4


def test_sample_jpeg_quality():
    gen = torch.Generator().manual_seed(0)
    ints = sample_jpeg_quality(2000, (30, 95), integer=True, generator=gen)
    assert ints.min() == 30 and ints.max() == 95 and torch.equal(ints, ints.round())
    floats = sample_jpeg_quality(2000, (30, 95), generator=gen)
    assert 30 <= floats.min() and floats.max() < 95 and not torch.equal(floats, floats.round())


# ----------------------------------------------------------------------------- resizing

SIZES = [(64, 64), (128, 128), (170, 170), (94, 156), (85, 85), (512, 512), (332, 435), (179, 358),
         (256, 256)]


@pytest.mark.parametrize('dtype', [torch.float32, torch.float64], ids=['opencv', 'bands'])
@pytest.mark.parametrize('mode', list(CV_CODES))
@pytest.mark.parametrize('out', SIZES, ids=lambda s: f'{s[0]}x{s[1]}')
def test_resize_matches_cv2(mode, out, dtype):
    """float32 on the CPU runs cv2.resize itself (but area shrinks); float64 (like any CUDA tensor) the bands."""
    x = photo('astronaut', 256, 256, 100, 50)
    ref = cv2.resize(x[0].permute(1, 2, 0).numpy(), out[::-1], interpolation=CV_CODES[mode])
    ours = resize(x.to(dtype), out, mode)[0].permute(1, 2, 0).numpy()
    assert ours.dtype == ref.dtype if dtype == torch.float32 else ours.dtype == np.float64
    assert np.abs(ours - ref).max() <= 1e-5


@pytest.mark.parametrize('dtype', [torch.float32, torch.float64], ids=['opencv', 'bands'])
@pytest.mark.parametrize('mode', list(CV_CODES))
@pytest.mark.parametrize('factor', [0.37, 0.5, 1.3, 0.8123])
def test_resize_scale_factor_matches_cv2_fx(mode, factor, dtype):
    x = photo('coffee', 101, 77)
    ref = cv2.resize(x[0].permute(1, 2, 0).numpy(), None, fx=factor, fy=factor, interpolation=CV_CODES[mode])
    ours = resize(x.to(dtype), mode=mode, scale_factor=factor)[0].permute(1, 2, 0).numpy()
    assert ours.shape == ref.shape and np.abs(ours - ref).max() <= 1e-5


@pytest.mark.parametrize('dtype', [torch.float32, torch.float64], ids=['opencv', 'bands'])
def test_resize_per_sample_modes(dtype):
    x = batch(60, 52).to(dtype)
    for size in [(23, 31), (90, 40)]:  # down (area on its band), enlarging (area through OpenCV)
        modes = ['bilinear', 'bicubic', 'area', 'nearest']
        out = resize(x, size, modes)
        for i, m in enumerate(modes):
            assert torch.equal(out[i], resize(x[i:i + 1], size, m)[0])


@pytest.mark.parametrize('mode', list(CV_CODES))
def test_resize_to_the_same_size_is_a_copy(mode):
    """As OpenCV: every mode's taps are then the identity."""
    x = batch(60, 52)
    out = resize(x, (60, 52), mode)
    assert torch.equal(out, x) and out.data_ptr() != x.data_ptr()
    assert np.array_equal(cv2.resize(x[0, 0].numpy(), (52, 60), interpolation=CV_CODES[mode]), x[0, 0].numpy())


def test_torch_backend_and_its_documented_differences():
    x = photo('astronaut', 256, 256, 100, 50)
    for mode in CV_CODES:
        ref = torch.nn.functional.interpolate(x, size=(94, 156), mode=mode)
        assert torch.equal(resize(x, (94, 156), mode, backend='torch'), ref)
    for out in [(64, 64), (170, 170), (512, 512)]:
        for mode in ('bilinear', 'bicubic', 'nearest'):
            assert torch.allclose(resize(x, out, mode, backend='torch'), resize(x, out, mode), atol=2e-5)
    area = resize(x, (64, 64), 'area', backend='torch')
    assert torch.allclose(area, resize(x, (64, 64), 'area'), atol=1e-6)  # integer factor: same boxes
    delta = (resize(x, (170, 170), 'area', backend='torch') - resize(x, (170, 170), 'area')).abs() * 255
    assert 0.5 < delta.mean() < 4  # whole-pixel vs fractional boxes at a non-integer factor


def test_quantize():
    y = quantize(torch.tensor([-0.1, 0.0, 0.5, 1 / 255 * 0.49, 1.2]))
    assert torch.equal(y, torch.tensor([0.0, 0.0, 128 / 255, 0.0, 1.0]))
