"""Timing helpers shared by the benchmark scripts (scripts/bench_*.py): median wall time after warm-up,
and the same gated on the CPU being otherwise idle (for a box shared with other jobs)."""

from __future__ import annotations

import os
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


_HZ = os.sysconf('SC_CLK_TCK') if hasattr(os, 'sysconf') else 100


def _others_cpu() -> float:
    """CPU seconds used so far by the whole machine minus this process (Linux /proc/stat)."""
    with open('/proc/stat') as f:
        user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, f.readline().split()[1:9])
    own = os.times()
    return (user + nice + system + irq + softirq + steal) / _HZ - own.user - own.system


def _wait_idle(deadline: float) -> None:
    """Sleep in 0.3 s steps until other processes used < 0.1 core during one, or until ``deadline``."""
    while time.monotonic() < deadline:
        before = _others_cpu()
        time.sleep(0.3)
        if _others_cpu() - before < 0.03:
            return


def _on_cpu(device: torch.device | str | None) -> bool:
    return device is None or torch.device(device).type == 'cpu'


def _timed_call(fn: Callable[[], object], device: torch.device | str | None = None) -> tuple[float, bool]:
    """Seconds of one call after a re-warming call (queued CUDA work on ``device`` included), and whether
    other processes stayed quiet while it ran (used at most 5 % of its time + 30 ms); on a GPU, or without
    /proc/stat, every call counts as quiet."""
    fn()
    gated = _on_cpu(device) and os.path.exists('/proc/stat')
    synchronize(device)
    before, start = _others_cpu() if gated else 0.0, time.perf_counter()
    fn()
    synchronize(device)
    took = time.perf_counter() - start
    return took, not gated or _others_cpu() - before <= 0.05 * took + 0.03


def gated_seconds(fn: Callable[[], object], repeats: int, device: torch.device,
                  warmup: int = 2) -> tuple[float, bool]:
    """Median seconds per call (as :func:`median_seconds`) over calls timed while the CPU was otherwise
    idle, and whether enough such calls were found (else the median of all timed calls)."""
    if device.type != 'cpu' or not os.path.exists('/proc/stat'):
        return median_seconds(fn, repeats, device, warmup), True
    for _ in range(warmup):
        fn()
    clean, busy = [], []
    deadline = time.monotonic() + 30  # total idle-wait budget of this measurement
    while len(clean) < repeats and len(clean) + len(busy) < 3 * repeats:
        _wait_idle(deadline)
        took, quiet = _timed_call(fn)
        (clean if quiet else busy).append(took)
    ok = len(clean) >= repeats
    return statistics.median(clean if ok else clean + busy), ok


def gated_rounds(fns: dict[str, Callable[[], object]], repeats: int, warmup: int = 2,
                 device: torch.device | str | None = None) -> dict[str, tuple[float, bool]]:
    """Alternatives timed in interleaved rounds: each round waits for an otherwise idle CPU (as
    :func:`gated_seconds`; not for a CUDA ``device``, whose calls are timed to the end of their queued
    work), then times every function once, in an order rotated per round, so that drifts of the machine
    or of this process (e.g. the allocator's state) hit all alike. Returns ``name -> (median seconds over its
    undisturbed calls, whether at least half were)`` (else over all calls)."""
    names = list(fns)
    for name in names:
        for _ in range(warmup):
            fns[name]()
    clean: dict[str, list[float]] = {name: [] for name in names}
    busy: dict[str, list[float]] = {name: [] for name in names}
    deadline = time.monotonic() + 30 * repeats  # total idle-wait budget
    for r in range(repeats):
        if _on_cpu(device) and os.path.exists('/proc/stat'):  # a GPU's timings don't hinge on the host being idle
            _wait_idle(deadline)
        for name in names[r % len(names):] + names[:r % len(names)]:
            took, quiet = _timed_call(fns[name], device)
            (clean if quiet else busy)[name].append(took)
    out = {}
    for name in names:
        ok = 2 * len(clean[name]) >= repeats
        out[name] = statistics.median(clean[name] if ok else clean[name] + busy[name]), ok
    return out


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
