"""Shared fixtures: a fixed random state per test, real photos from scikit-image written as small PNG
folders, and the shared folder. The data root ``BLINDSR_DATA`` (which recipes name as ``${BLINDSR_DATA}``)
is ``<shared>/data`` unless set: CI reads ../shared/data through it."""

from __future__ import annotations

import os
import random
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

import blindsr  # noqa: F401  (compat shim + registrations before any basicsr import)

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get('BLINDSR_SHARED', REPO.parent / 'shared'))
DATA = Path(os.environ.setdefault('BLINDSR_DATA', str(SHARED / 'data')))


@pytest.fixture(autouse=True)
def fixed_random_state():
    """Every test starts from the same torch/NumPy/random seeds, so randomly initialised nets and sampled
    degradations are the same on every run and in any test order (a flat random-net output once failed NIQE
    only in CI)."""
    torch.manual_seed(0)
    np.random.seed(0)
    random.seed(0)


def seeded_weights(net: torch.nn.Module, scale: float) -> dict[str, torch.Tensor]:
    """Deterministic weights for equivalence runs against the authors' code: each state-dict entry is
    ``torch.randn(shape, generator=torch.Generator().manual_seed(zlib.crc32(key.encode()))) * scale``
    (keys in sorted order); spectral-norm vectors ``weight_u``/``weight_v`` are then normalised."""
    out = {}
    for key, value in sorted(net.state_dict().items()):
        t = torch.randn(value.shape, generator=torch.Generator().manual_seed(zlib.crc32(key.encode()))) * scale
        out[key] = t / t.norm() if key.endswith(('weight_u', 'weight_v')) else t
    return out


def write_photos(folder: Path, names: list[str], size: int | None = None) -> Path:
    """Write scikit-image photos (optionally centre-cropped to ``size``) as PNGs into ``folder``."""
    import skimage.data

    from blindsr.data.image_io import write_image

    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        img = getattr(skimage.data, name)()[..., :3]
        if size:
            h, w = img.shape[:2]
            top, left = (h - size) // 2, (w - size) // 2
            img = img[top:top + size, left:left + size]
        write_image(folder / f'{name}.png', img.astype(np.float32) / 255.0)
    return folder


@pytest.fixture
def photo_dirs(tmp_path: Path) -> dict[str, Path]:
    """Small real-photo folders: train (3 photos, 96 px crops) and val (1 photo, 64 px crop)."""
    return {
        'train': write_photos(tmp_path / 'train', ['astronaut', 'chelsea', 'rocket'], size=96),
        'val': write_photos(tmp_path / 'val', ['coffee'], size=64),
    }
