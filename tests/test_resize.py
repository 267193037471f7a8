"""MATLAB bicubic imresize in torch, checked against BasicSR's port, and the `bicubic` pipeline."""

from __future__ import annotations

import math

import numpy as np
import pytest
import skimage.data
import torch

import blindsr  # noqa: F401  (compat shim before basicsr)
from basicsr.utils import matlab_functions as bsr
from blindsr.degradations import resize, resize_modes
from blindsr.degradations.bicubic import BicubicDegradation
from blindsr.degradations.resize import imresize, resize_matrix
from blindsr.registry import DEGRADATION_REGISTRY, build

SCALES = [1 / 2, 1 / 3, 1 / 4, 2, 3, 4, 0.37]
SIZES = [(96, 96), (101, 77)]
# BasicSR computes its sampling coordinates in float32, which moves its weights by up to ~1e-5 at
# scale 3 on a few hundred pixels (MATLAB uses doubles); test_matrix_* checks the weights exactly.
TOL = 2e-5


def photo(h: int, w: int, top: int = 0, left: int = 0) -> np.ndarray:
    """A float64 HWC crop of skimage's astronaut in [0, 1]."""
    return skimage.data.astronaut()[top:top + h, left:left + w].astype(np.float64) / 255


def to_torch(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))[None]


def to_numpy(x: torch.Tensor) -> np.ndarray:
    return x[0].permute(1, 2, 0).double().numpy()


def basicsr_matrix(in_len: int, out_len: int, scale: float) -> np.ndarray:
    """BasicSR's weights/indices for one dimension, in float64, as a dense (out, in) matrix."""
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # its linspace coordinates, otherwise float32
    try:
        weights, indices, pad_start, _ = bsr.calculate_weights_indices(in_len, out_len, scale, 'cubic', 4,
                                                                       True)
    finally:
        torch.set_default_dtype(default)
    mat = np.zeros((out_len, in_len))
    for row in range(out_len):
        for w, i in zip(weights[row].tolist(), indices[row].tolist()):
            j = int(i) - pad_start  # 0-based index before BasicSR's one-fold mirror padding
            j = -j - 1 if j < 0 else (2 * in_len - 1 - j if j >= in_len else j)
            mat[row, j] += w
    return mat


@pytest.mark.parametrize('scale', SCALES, ids=lambda s: f'{s:.3g}')
@pytest.mark.parametrize('in_len', [96, 101, 256])
def test_matrix_matches_basicsr_weights_exactly(in_len, scale):
    out_len = math.ceil(in_len * scale)
    ours = resize_matrix(in_len, out_len, scale).numpy()
    np.testing.assert_allclose(ours, basicsr_matrix(in_len, out_len, scale), rtol=0, atol=1e-12)
    np.testing.assert_allclose(ours.sum(1), 1, atol=1e-12)


@pytest.mark.parametrize('scale', SCALES, ids=lambda s: f'{s:.3g}')
@pytest.mark.parametrize('size', SIZES, ids=lambda s: f'{s[0]}x{s[1]}')
@pytest.mark.parametrize('dtype', [torch.float64, torch.float32])
def test_matches_basicsr_rgb(size, scale, dtype):
    img = photo(*size, top=100, left=180)
    ref = bsr.imresize(img, scale)
    out = imresize(to_torch(img).to(dtype), scale)
    assert out.dtype == dtype
    assert out.shape == (1, 3, math.ceil(size[0] * scale), math.ceil(size[1] * scale))
    assert ref.shape[:2] == out.shape[2:]
    np.testing.assert_allclose(to_numpy(out), ref, rtol=0, atol=TOL)


@pytest.mark.parametrize('scale', [1 / 3, 0.37, 3], ids=lambda s: f'{s:.3g}')
def test_matches_basicsr_gray_and_batch(scale):
    a, b = photo(101, 77, 40, 200), photo(101, 77, 300, 50)
    gray = a.mean(2)
    out = imresize(torch.from_numpy(gray)[None, None], scale)[0, 0].numpy()
    np.testing.assert_allclose(out, bsr.imresize(gray, scale), rtol=0, atol=TOL)
    batch = imresize(torch.cat([to_torch(a), to_torch(b)]), scale)
    for k, img in enumerate((a, b)):
        np.testing.assert_allclose(to_numpy(batch[k:k + 1]), bsr.imresize(img, scale), rtol=0, atol=TOL)
    chw = imresize(to_torch(a)[0], scale)  # (C, H, W) in, (C, H, W) out
    torch.testing.assert_close(chw, batch[0], rtol=0, atol=1e-12)


def test_explicit_size():
    img = photo(101, 77, 50, 60)
    # a size that the scale 1/4 also gives on 96x96 is that scale
    sq = photo(96, 96, 50, 60)
    ours = to_numpy(imresize(to_torch(sq), size=(24, 24)))
    np.testing.assert_allclose(ours, bsr.imresize(sq, 1 / 4), rtol=0, atol=TOL)
    # otherwise each dimension has its own scale out/in (MATLAB's rule); the reference applies
    # BasicSR's per-dimension weights separably
    for out_h, out_w in [(40, 30), (33, 100), (202, 50)]:
        ours = to_numpy(imresize(to_torch(img), size=(out_h, out_w)))
        mh, mw = basicsr_matrix(101, out_h, out_h / 101), basicsr_matrix(77, out_w, out_w / 77)
        ref = np.einsum('ij,jkc,lk->ilc', mh, img, mw)
        assert ours.shape == (out_h, out_w, 3)
        np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-10)


def matlab_matrix(in_len: int, out_len: int, scale: float, clamp: bool = False) -> np.ndarray:
    """MATLAB's contributions() for bicubic, one output pixel at a time, mirror table included.

    ``clamp`` clamps out-of-range indices to the edge instead, as the DASR/KDSR torch port does.
    """
    def cubic(d: float) -> float:
        a = abs(d)
        if a <= 1:
            return 1.5 * a**3 - 2.5 * a**2 + 1
        return -0.5 * a**3 + 2.5 * a**2 - 4 * a + 2 if a <= 2 else 0.0

    width = 4 / scale if scale < 1 else 4
    aux = list(range(in_len)) + list(range(in_len - 1, -1, -1))  # MATLAB's [1:n, n:-1:1], 0-based
    mat = np.zeros((out_len, in_len))
    for i in range(1, out_len + 1):
        u = i / scale + 0.5 * (1 - 1 / scale)
        ks = [math.floor(u - width / 2) + j for j in range(math.ceil(width) + 2)]
        ws = [scale * cubic(scale * (u - k)) if scale < 1 else cubic(u - k) for k in ks]
        for k, w in zip(ks, ws):
            j = min(max(k - 1, 0), in_len - 1) if clamp else aux[(k - 1) % (2 * in_len)]
            mat[i - 1, j] += w / sum(ws)
    return mat


@pytest.mark.parametrize('in_len, scale', [(2, 1 / 4), (3, 1 / 2), (5, 1 / 4), (5, 0.37), (4, 3), (1, 2)])
def test_tiny_inputs_mirror_repeatedly_like_matlab(in_len, scale):
    # BasicSR's port mirrors once and fails here ("size of tensor a must match"); MATLAB folds again
    out_len = math.ceil(in_len * scale)
    np.testing.assert_allclose(resize_matrix(in_len, out_len, scale).numpy(),
                               matlab_matrix(in_len, out_len, scale), rtol=0, atol=1e-12)
    flat = torch.full((1, 1, in_len, in_len), 0.7, dtype=torch.float64)
    expected = torch.full((1, 1, out_len, out_len), 0.7, dtype=torch.float64)
    torch.testing.assert_close(imresize(flat, scale), expected)


def test_replicate_border_differs_only_near_borders():
    x = to_torch(photo(96, 96, 200, 200))
    sym, rep = imresize(x, 1 / 4), imresize(x, 1 / 4, border='replicate')
    # the x1/4 kernel reaches 8 HR px = 2 LR px; LR pixel 2 from an edge already stays inside
    inner = (slice(None), slice(None), slice(2, -2), slice(2, -2))
    torch.testing.assert_close(rep[inner], sym[inner], rtol=0, atol=1e-12)
    assert (rep - sym).abs().amax() > 1e-3
    up_sym, up_rep = imresize(x, 4), imresize(x, 4, border='replicate')
    torch.testing.assert_close(up_rep[..., 4:-4, 4:-4], up_sym[..., 4:-4, 4:-4], rtol=0, atol=1e-12)
    assert (up_rep - up_sym).abs().amax() > 1e-4
    flat = torch.full((1, 1, 13, 9), 0.3, dtype=torch.float64)  # weights sum to 1 with any border
    torch.testing.assert_close(imresize(flat, 0.37, border='replicate'), flat[..., :5, :4])
    for in_len, scale in [(96, 1 / 4), (13, 0.37), (5, 3)]:  # the DASR/KDSR port: clamp the index
        out_len = math.ceil(in_len * scale)
        np.testing.assert_allclose(resize_matrix(in_len, out_len, scale, border='replicate').numpy(),
                                   matlab_matrix(in_len, out_len, scale, clamp=True), rtol=0, atol=1e-12)


def repeated() -> tuple[np.ndarray, np.ndarray]:
    """Hand-made taps: a repeated index (summed), a zero tap in every row (dropped), unordered indices."""
    index = np.array([[0, 0, 5], [7, 3, 6], [2, 4, 4]])
    weight = np.array([[0.25, 0.5, 0.0], [1.0, -0.5, 0.0], [1.5, -0.25, 0.0]])
    return index, weight


@pytest.mark.parametrize('taps, in_len', [
    (resize._matlab_taps(37, 10, 10 / 37, True, 'symmetric'), 37), (resize._matlab_taps(5, 2, 0.4, True, 'symmetric'), 5),
    (resize._matlab_taps(9, 23, 23 / 9, True, 'replicate'), 9),
    (resize_modes._opencv_taps(50, 17, 17 / 50, 'area', False), 50),
    (resize_modes._opencv_taps(20, 47, 47 / 20, 'bicubic', False), 20),
    (resize_modes._opencv_taps(13, 6, 6 / 13, 'nearest', False), 13), (repeated(), 8)],
    ids=['down', 'tiny', 'up', 'area', 'cubic', 'nearest', 'repeated'])
def test_band_product_is_the_dense_product(taps, in_len):
    """A band applied by embedding_bag equals its dense matrix's product along rows and (through the
    transposed copies) columns, for one or several stacked planes and a non-contiguous input."""
    gen = torch.Generator().manual_seed(0)
    mat = torch.from_numpy(resize.dense(*taps, in_len))
    for lead in [(1,), (2, 3)]:
        x = torch.rand(*lead, in_len, 7, dtype=torch.float64, generator=gen)
        bands = resize.band(*taps, in_len, math.prod(lead), dtype=torch.float64)
        assert bands.index.shape == (math.prod(lead) * mat.shape[0], (taps[1] != 0).any(0).sum())
        torch.testing.assert_close(resize.banded_product(bands, x, -2), mat @ x, rtol=0, atol=1e-15)
        torch.testing.assert_close(resize.banded_product(bands, x.mT, -1), x.mT @ mat.mT, rtol=0, atol=1e-15)


def test_band_product_on_wide_columns():
    """Columns of 128 px: both transposed copies go through rows padded off the power of two."""
    taps = resize_modes._opencv_taps(128, 70, 70 / 128, 'bicubic', False)
    x = torch.rand(2, 3, 128, 128, generator=torch.Generator().manual_seed(0))
    out = resize.banded_product(resize.band(*taps, 128, 6), x, -1)
    torch.testing.assert_close(out.double(), x.double() @ torch.from_numpy(resize.dense(*taps, 128)).mT, rtol=0, atol=1e-6)


def test_cached_bands_equal_fresh_matrices_for_each_batch_and_dtype():
    """The bands are cached per size, planes and dtype: repeated and differently batched or typed calls
    give the product of freshly built matrices, and a repeated call rebuilds nothing."""
    x = torch.rand(2, 3, 40, 30, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    mh, mw = resize_matrix(40, 13, 13 / 40), resize_matrix(30, 17, 17 / 30)
    ch, cw = (torch.from_numpy(resize_modes.resize_matrix_opencv(i, o, o / i, 'bicubic')) for i, o in [(40, 13), (30, 17)])
    for dtype, tol in [(torch.float64, 1e-12), (torch.float32, 1e-6), (torch.float64, 1e-12)]:
        for n in (1, 2, 1):
            torch.testing.assert_close(imresize(x[:n].to(dtype), size=(13, 17)).double(), mh @ x[:n] @ mw.mT,
                                       rtol=0, atol=tol)
            opencv = 2 * tol if dtype == torch.float32 else tol  # float32 on the CPU: cv2.resize's own rounding
            torch.testing.assert_close(resize_modes.resize(x[:n].to(dtype), (13, 17)).double(), ch @ x[:n] @ cw.mT,
                                       rtol=0, atol=opencv)
    before = resize._cached_band.cache_info()
    resize_modes.resize(x, (13, 17))
    after = resize._cached_band.cache_info()
    assert (after.hits - before.hits, after.misses - before.misses) == (2, 0)


def test_shape_rules_up_then_down():
    x = torch.rand(2, 3, 101, 77)
    for s in (2, 3, 4):
        up = imresize(x, s)
        assert up.shape == (2, 3, 101 * s, 77 * s)
        assert imresize(up, 1 / s).shape == x.shape
    assert imresize(x, 0.37).shape == (2, 3, 38, 29)  # ceil(101 * 0.37), ceil(77 * 0.37)
    assert imresize(x, 1).allclose(x, atol=1e-6)
    with pytest.raises(ValueError):
        imresize(x)
    with pytest.raises(ValueError):
        imresize(x, 0.5, size=(10, 10))
    with pytest.raises(TypeError):
        imresize(x.to(torch.uint8), 0.5)
    with pytest.raises(ValueError):
        imresize(x, 0.5, border='reflect')


devices = ['cpu'] + (['cuda'] if torch.cuda.is_available() else [])


@pytest.mark.parametrize('device', devices)
@pytest.mark.parametrize('dtype', [torch.float64, torch.float32, torch.float16, torch.bfloat16])
def test_dtype_and_device_preserved(device, dtype):
    x64 = to_torch(photo(64, 48, 10, 10))
    out = imresize(x64.to(device, dtype), 1 / 4)
    assert out.dtype == dtype and out.device.type == device and out.shape == (1, 3, 16, 12)
    tol = {torch.float64: 1e-12, torch.float32: 1e-6, torch.float16: 2e-3, torch.bfloat16: 1e-2}[dtype]
    torch.testing.assert_close(out.cpu().double(), imresize(x64, 1 / 4), rtol=0, atol=tol)


def test_bicubic_pipeline_registered_and_quantised():
    pipeline = build(DEGRADATION_REGISTRY, {'type': 'bicubic', 'scale': 4})
    assert isinstance(pipeline, BicubicDegradation)
    a, b = photo(96, 128, 0, 0), photo(96, 128, 250, 300)
    hr = torch.cat([to_torch(a), to_torch(b)]).float()
    lr, params = pipeline(hr, torch.Generator().manual_seed(0))
    assert params == {} and lr.shape == (2, 3, 24, 32) and lr.dtype == torch.float32
    levels = lr * 255
    assert (levels - levels.round()).abs().max() < 1e-4 and lr.min() >= 0 and lr.max() <= 1
    for k, img in enumerate((a, b)):  # BI protocol: BasicSR's imresize, clip, round to 8 bit
        ref = np.round(np.clip(bsr.imresize(img, 1 / 4), 0, 1) * 255) / 255
        diff = np.abs(to_numpy(lr[k:k + 1]) - ref)
        assert diff.max() <= 1 / 255 + 1e-6 and (diff < 1e-6).mean() > 0.999  # only .5 ties may differ
    raw, _ = BicubicDegradation(4, quantize=False)(hr)
    torch.testing.assert_close(raw, imresize(hr, 1 / 4).clamp(0, 1))
    lr_rep, _ = build(DEGRADATION_REGISTRY, {'type': 'bicubic', 'scale': 4, 'border': 'replicate'})(hr)
    assert torch.equal(lr_rep[..., 2:-2, 2:-2], lr[..., 2:-2, 2:-2])


def test_bicubic_pipeline_rejects_bad_input():
    pipeline = BicubicDegradation(scale=4)
    with pytest.raises(ValueError, match='multiple of scale 4'):
        pipeline(torch.rand(1, 3, 66, 64))
    with pytest.raises(ValueError, match='multiple of scale 4'):
        pipeline(torch.rand(1, 3, 64, 62))
    with pytest.raises(ValueError, match=r'\(B, C, H, W\)'):
        pipeline(torch.rand(3, 64, 64))
    with pytest.raises(ValueError, match='integer scale'):
        BicubicDegradation(scale=2.5)


def test_transposed_copy_equals_torch_transpose():
    """The columns' transposed copies (OpenCV's cv2.transpose per plane on CPU): x.mT, contiguous, for
    4-D and 3-D stacks, power-of-two and odd sizes, float32 and float64, and non-contiguous inputs."""
    g = torch.Generator().manual_seed(0)
    for shape, dtype in [((2, 3, 64, 128), torch.float32), ((3, 37, 300), torch.float64), ((1, 3, 512, 256), torch.float32)]:
        x = torch.rand(shape, generator=g, dtype=dtype)
        for src in (x, x.mT, x[..., 1:-1, ::2]):
            out = resize._transposed(src)
            assert out.is_contiguous() and torch.equal(out, src.mT)
