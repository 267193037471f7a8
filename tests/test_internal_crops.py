"""DARSR's per-image crop sampler (KernelGAN-style): shapes and ranges, reproducibility, the shared
flips, the probability maps' restriction to valid centres, and the error for too-small images."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.data
import torch

from blindsr.data.internal_crops import InternalCrops


def photo(size: int = 200) -> np.ndarray:
    return np.ascontiguousarray(skimage.data.astronaut()[:size, 100:100 + size])


@pytest.mark.parametrize('scale', [2, 4])
def test_batches_have_the_published_shapes_and_range(scale):
    crops = InternalCrops(photo(), scale, crop_size=64, batch_size=3, num_iters=5, seed=1)
    assert len(crops) == 5 and len(list(crops)) == 5
    batch = crops[4]
    lr = 64 // scale
    assert {k: tuple(v.shape) for k, v in batch.items()} == {
        'hr': (3, 3, 64, 64), 'lr': (3, 3, lr, lr), 'hr_bicubic': (3, 3, lr, lr), 'lr_up': (3, 3, 64, 64)}
    for v in batch.values():
        assert v.dtype == torch.float32 and v.device.type == 'cpu' and 0 <= v.min() and v.max() <= 1


def test_image_smaller_than_the_crop_is_a_clear_error():
    with pytest.raises(ValueError, match=r'image of 140x200 px is 120x180 after shaving 10 px per border, '
                                         r'smaller than the 128x128 crop'):
        InternalCrops(photo()[:140], 2)
