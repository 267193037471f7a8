"""Timing helper shared by the benchmark scripts (scripts/bench_*.py): median wall time after warm-up."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch


def synchronize(device: torch.device | str | None) -> None:
    """Wait for queued CUDA work on ``device`` (no-op on CPU or None)."""
    if device is not None and torch.device(device).type == 'cuda':
        torch.cuda.synchronize(device)


def median_seconds(fn: Callable[[], object], repeats: int, device: torch.device | str | None = None,
                   warmup: int = 2) -> float:
    """Median seconds per call of ``fn`` over ``repeats`` timed calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def photo_batch(batch: int, size: int) -> torch.Tensor:
    """``batch`` real-photo crops (astronaut / coffee / rocket, all >= 400 px) as (B, 3, size, size) in [0, 1]."""
    import numpy as np
    import skimage.data

    photos = [getattr(skimage.data, n)()[..., :3] for n in ('astronaut', 'coffee', 'rocket')]
    crops = []
    for i in range(batch):
        img = photos[i % 3]
        top = (i * 37) % (img.shape[0] - size + 1)
        left = (i * 53) % (img.shape[1] - size + 1)
        crops.append(img[top:top + size, left:left + size])
    return torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float().div(255).contiguous()
