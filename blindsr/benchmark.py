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
