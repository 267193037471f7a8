"""Random crops and dihedral augmentation drawn from a per-sample generator.

The train sampler indexes blindsr datasets with ``(index, epoch)``; each sample's randomness (crop
position, flips, a per-sample degradation) comes from ``numpy.random.default_rng([seed, epoch, index])``.
A sample therefore does not depend on which worker loads it or on what was loaded before, so a
resumed run sees exactly the samples an uninterrupted run would, with any number of workers.
(BasicSR's ``augment``/``paired_random_crop`` draw from the process-global ``random`` module,
which worker scheduling and resuming perturb.)
"""

from __future__ import annotations

import numpy as np
import torch


def sample_rng(item: int | tuple[int, int], seed: int) -> tuple[int, np.random.Generator]:
    """Split a dataset key into the index and its generator (val/test keys are plain indices)."""
    index, epoch = item if isinstance(item, tuple) else (item, -1)
    return index, np.random.default_rng([seed, epoch + 1, index])


def torch_generator(rng: np.random.Generator) -> torch.Generator:
    """A CPU torch generator seeded from ``rng`` (for per-sample degradation pipelines)."""
    return torch.Generator().manual_seed(int(rng.integers(2**62)))


def paired_crop(rng: np.random.Generator, gt: np.ndarray | None, lq: np.ndarray | None, lq_size: int,
                scale: int) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Aligned random patches: ``lq_size`` from ``lq`` and ``lq_size * scale`` from ``gt``.

    Either may be None: HR-only data crops ``gt`` alone (on the LR grid, so positions stay
    aligned with a later ``scale`` downsampling); LR-only data crops ``lq`` alone.
    """
    ref_h, ref_w = lq.shape[:2] if lq is not None else (gt.shape[0] // scale, gt.shape[1] // scale)
    top = int(rng.integers(0, ref_h - lq_size + 1))
    left = int(rng.integers(0, ref_w - lq_size + 1))
    if lq is not None:
        lq = lq[top:top + lq_size, left:left + lq_size]
    if gt is not None:
        size = lq_size * scale
        gt = gt[top * scale:top * scale + size, left * scale:left * scale + size]
    return gt, lq


def augment(rng: np.random.Generator, images: list[np.ndarray], hflip: bool, rot: bool) -> list[np.ndarray]:
    """The same random horizontal flip / vertical flip / transpose (each p=0.5) for all HWC images."""
    flip_h = hflip and rng.random() < 0.5
    flip_v = rot and rng.random() < 0.5
    transpose = rot and rng.random() < 0.5
    out = []
    for img in images:
        if flip_h:
            img = img[:, ::-1]
        if flip_v:
            img = img[::-1]
        if transpose:
            img = img.transpose(1, 0, 2)
        out.append(np.ascontiguousarray(img))
    return out
