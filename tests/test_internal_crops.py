"""DARSR's per-image crop sampler (KernelGAN-style) against the authors' data.py, and its own behaviour.

tests/data/authors_darsr_crops.npz was recorded once, outside the repo, by running edbca/DARSR@16b5b00
data.py (with its util.py and imresize.py) on skimage.data.astronaut() (512x512 RGB uint8, written to a
PNG and read back by its ``imageio.imread``). Only patch: the four ``.cuda()`` calls in ``ToTensor``
removed. Driver: ``create_dataset`` with ``input_crop_size``, ``batch_size``, ``num_iters``,
``scale_factor`` and ``scale_factor_downsampler = 1 / scale``; ``random.seed(0)`` before iterating the
DataLoader (the authors' flips come from the unseeded ``random`` module); numpy 2.4, Pillow 13, SciPy 1.17.

- ``small_x{2,4}_*``: config (scale, crop, batch, iters, batch index) = (2, 64, 2, 10, 3) and
  (4, 64, 2, 4, 1): every crop centre (``crop_indices_for_g/d``), every top-left (``get_top_left``) and
  that batch's four tensors as 8-bit levels (the driver checked that level / 255 gives them exactly);
- ``x{2,4}_centres_{g,d}_*``: the published settings (crop 128, batch 16, 3000 iterations): CRC-32 of
  all 48,000 centres of each map (int64 bytes) and the first 32.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pytest
import skimage.data
import torch

from blindsr.data.internal_crops import InternalCrops, gradient_map

REF = np.load(Path(__file__).parent / 'data' / 'authors_darsr_crops.npz')
ASTRONAUT = np.ascontiguousarray(skimage.data.astronaut()[..., :3])
AUTHORS_KEYS = {'hr': 'HR', 'lr': 'LR', 'hr_bicubic': 'HR_bicubic', 'lr_up': 'LR_up'}


def test_reference_image_is_the_recorded_one():
    assert zlib.crc32(ASTRONAUT.tobytes()) == REF['image_crc32']


@pytest.mark.parametrize('scale', [2, 4])
def test_centres_top_lefts_and_one_batch_equal_the_authors(scale):
    """Exact: the same maps give the same ``RandomState(0).choice`` draws, and the crops, PIL bicubic
    resizes, flips (``random.Random(0)`` = ``random.seed(0)``) and k / 255 conversion are the same
    operations on the same 8-bit values, so no tolerance is needed."""
    tag = f'small_x{scale}'
    _, crop, batch_size, iters, which = REF[f'{tag}_config']
    crops = InternalCrops(ASTRONAUT, scale, crop_size=crop, batch_size=batch_size, num_iters=iters, seed=0)
    np.testing.assert_array_equal(crops.hr_centres, REF[f'{tag}_centres_g'])
    np.testing.assert_array_equal(crops.lr_centres, REF[f'{tag}_centres_d'])
    np.testing.assert_array_equal(crops.hr_top_left, REF[f'{tag}_hr_top_left'])
    np.testing.assert_array_equal(crops.lr_top_left, REF[f'{tag}_lr_top_left'])
    batch = crops[which]
    for key, theirs in AUTHORS_KEYS.items():
        expected = torch.from_numpy((REF[f'{tag}_batch_{theirs}'] / 255.0).astype(np.float32))
        assert torch.equal(batch[key], expected), key


def test_recorded_batches_exercise_both_flips():
    """The recorded samples include a horizontal flip and a transpose (so the test above checks them)."""
    drawn = []
    for scale in (2, 4):
        _, crop, batch_size, iters, which = REF[f'small_x{scale}_config']
        crops = InternalCrops(ASTRONAUT, scale, crop_size=crop, batch_size=batch_size, num_iters=iters, seed=0)
        sel = slice(which * batch_size, (which + 1) * batch_size)
        drawn += list(zip(crops.hflip[sel], crops.transpose[sel]))
    assert any(h for h, _ in drawn) and any(t for _, t in drawn)


@pytest.mark.parametrize('scale', [2, 4])
def test_published_settings_draw_the_authors_48000_centres(scale):
    crops = InternalCrops(ASTRONAUT, scale, seed=0)
    for ours, name in ((crops.hr_centres, 'g'), (crops.lr_centres, 'd')):
        assert ours.shape == (48000,)
        np.testing.assert_array_equal(ours[:32], REF[f'x{scale}_centres_{name}_first'])
        assert zlib.crc32(ours.astype(np.int64).tobytes()) == REF[f'x{scale}_centres_{name}_crc32']


@pytest.mark.parametrize('scale', [2, 4])
def test_batches_have_the_published_shapes_and_range(scale):
    crops = InternalCrops(ASTRONAUT[:200, 100:300], scale, crop_size=64, batch_size=3, num_iters=5, seed=1)
    assert len(crops) == 5 and len(list(crops)) == 5
    lr = 64 // scale
    batch = crops[4]
    assert {k: tuple(v.shape) for k, v in batch.items()} == {
        'hr': (3, 3, 64, 64), 'lr': (3, 3, lr, lr), 'hr_bicubic': (3, 3, lr, lr), 'lr_up': (3, 3, 64, 64)}
    for v in batch.values():
        assert v.dtype == torch.float32 and v.device.type == 'cpu' and v.is_contiguous()
        assert 0 <= v.min() and v.max() <= 1
    with pytest.raises(IndexError, match='batch 5 out of range 0..4'):
        crops[5]


def test_hr_and_hr_bicubic_share_the_flip():
    """``hr_bicubic`` is the PIL resize of the (un-flipped) ``hr`` crop, flipped the same way."""
    from PIL import Image

    crops = InternalCrops(ASTRONAUT, 2, crop_size=64, batch_size=8, num_iters=1, seed=3)
    batch = crops[0]
    assert crops.hflip.any() and crops.transpose.any()
    for n in range(8):
        top, left = crops.hr_top_left[n]
        hr = crops.image[top:top + 64, left:left + 64]
        small = np.asarray(Image.fromarray(hr).resize((32, 32), Image.BICUBIC))
        for x, key in ((hr, 'hr'), (small, 'hr_bicubic')):
            x = x[:, ::-1] if crops.hflip[n] else x
            x = x.transpose(1, 0, 2) if crops.transpose[n] else x
            assert torch.equal(batch[key][n], torch.from_numpy(x.transpose(2, 0, 1) / 255.0).float()), (n, key)


def test_seed_makes_runs_identical_and_different_seeds_differ():
    a = InternalCrops(ASTRONAUT, 4, crop_size=64, batch_size=4, num_iters=3, seed=5)
    b = InternalCrops(ASTRONAUT, 4, crop_size=64, batch_size=4, num_iters=3, seed=5)
    c = InternalCrops(ASTRONAUT, 4, crop_size=64, batch_size=4, num_iters=3, seed=6)
    assert all(torch.equal(a[2][k], b[2][k]) for k in AUTHORS_KEYS)
    assert not np.array_equal(a.hr_centres, c.hr_centres) and not np.array_equal(a.hflip, c.hflip)


def test_centres_are_drawn_only_where_a_crop_fits_and_favour_texture():
    """The image is flat except for a textured square: centres stay crop/2 away from the border and
    (nearly all) near the texture."""
    image = np.full((300, 300, 3), 128, np.uint8)
    image[200:260, 40:100] = np.random.default_rng(0).integers(0, 256, (60, 60, 3), dtype=np.uint8)
    crops = InternalCrops(image, 2, crop_size=64, batch_size=50, num_iters=4, seed=0)
    rows, cols = crops.hr_centres // crops.image.shape[1], crops.hr_centres % crops.image.shape[1]
    assert rows.min() >= 32 and cols.min() >= 32 and rows.max() < 280 - 32 and cols.max() < 280 - 32
    near = (abs(rows - 220) < 64) & (abs(cols - 60) < 64)  # texture centre in shaved coordinates
    assert near.mean() > 0.95
    assert gradient_map(image).mean() == pytest.approx(1.0)


def test_image_smaller_than_the_crop_or_not_uint8_rgb_is_a_clear_error():
    with pytest.raises(ValueError, match=r'image of 140x200 px is 120x180 after shaving 10 px per border, '
                                         r'smaller than the 128x128 crop'):
        InternalCrops(ASTRONAUT[:140, :200], 2)
    with pytest.raises(ValueError, match=r'needs an \(H, W, 3\) uint8 RGB image, got float32 array'):
        InternalCrops(ASTRONAUT.astype(np.float32), 2)
    with pytest.raises(ValueError, match='crop_size 100 must be a multiple of scale 3'):
        InternalCrops(ASTRONAUT, 3, crop_size=100)


def test_keys_select_the_entries_of_the_same_batches():
    """DARSR's DSEM stage asks only for lr and hr_bicubic; those are the full sampler's, value for value."""
    full = InternalCrops(ASTRONAUT, 2, crop_size=64, batch_size=4, num_iters=2, seed=5)
    some = InternalCrops(ASTRONAUT, 2, crop_size=64, batch_size=4, num_iters=2, seed=5, keys=('lr', 'hr_bicubic'))
    for i in range(2):
        assert set(some[i]) == {'lr', 'hr_bicubic'}
        assert all(torch.equal(some[i][k], full[i][k]) for k in some[i])
    with pytest.raises(ValueError, match='keys must be among'):
        InternalCrops(ASTRONAUT, 2, crop_size=64, batch_size=4, num_iters=2, keys=('sr', ))
