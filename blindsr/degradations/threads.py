"""Per-sample CPU work split over threads, each running torch single-threaded.

A pipeline whose samples each run their own chain of ops (BSRGAN's) spends most of its CPU time in ops
on one or two images at a time: torch's intra-op threads have little to split there (its second
thread mostly spins), and OpenCV's and the generators' calls run on one core. Splitting the samples
into contiguous chunks run by a pool of threads, each with one intra-op thread (OpenCV and torch
release the GIL in their kernels), keeps more of the cores busy. On the 2-core development machine
(B16, 256 px photos, x4, new seeds per batch, paired medians over 30-80 batches, five sittings):
``bsrgan_plus`` 1.14-1.25x the samples/s of the unsplit run (its samples' image sizes diverge after
the first resize, so its groups are small anyway); ``bsrgan`` 0.92-1.07x, no reliable gain (its groups are
larger, and what the split gains on the serial parts it gives up on torch's two-thread kernels). Both stay
far from the 2x that two processes reach (1.94x): the Python between the kernels holds the GIL.
Which samples share a group depends on the chunks, and a group's kernels (FFT or conv, its blocking) on its
size, to float rounding that JPEG and 8-bit quantisation can turn into a level: so the split is opt-in
(``threads``), and a run's LR images do not depend on the machine's core count by default.

The pool is made once per process and thread count. ``torch.set_num_threads(1)`` in its threads only
sets their own OpenMP thread count; torch also records the value for threads started later, so the
value of the thread that made the pool is put back once the pool's threads are up. Results do not
depend on the split: each sample draws from its own generators, and the ops compute each sample
alone (checked equal to the unsplit run in tests).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import torch

__all__ = ['map_chunks']

T = TypeVar('T')
_POOLS: dict[tuple[int, int], ThreadPoolExecutor] = {}  # (process id, threads) -> pool; a fork makes its own
_LOCK = threading.Lock()


def _pool(threads: int) -> ThreadPoolExecutor:
    key = (os.getpid(), threads)
    with _LOCK:
        if key not in _POOLS:
            caller = torch.get_num_threads()
            started = threading.Barrier(threads + 1)

            def single_threaded() -> None:
                torch.get_num_threads()  # torch's lazy per-thread set-up first (it would read the shared value)
                torch.set_num_threads(1)
                started.wait()

            pool = ThreadPoolExecutor(threads, thread_name_prefix='blindsr-samples', initializer=single_threaded)
            for _ in range(threads):  # none is idle until the barrier opens: each submit starts a thread
                pool.submit(int)
            started.wait()
            torch.set_num_threads(caller)  # the shared value, for threads started later
            _POOLS[key] = pool
        return _POOLS[key]


def map_chunks(fn: Callable[[slice], Sequence[T]], n: int, threads: int) -> list[T]:
    """``fn(chunk)`` for contiguous chunks of ``range(n)``, their results concatenated in order: in the
    calling thread if ``threads`` is 1 or ``n`` is 1, else 2 chunks per thread on the pool (uneven
    samples balance better than with one chunk per thread)."""
    if threads <= 1 or n <= 1:
        return list(fn(slice(0, n)))
    parts = min(n, 2 * threads)
    cuts = [round(i * n / parts) for i in range(parts + 1)]
    futures = [_pool(threads).submit(fn, slice(a, b)) for a, b in zip(cuts, cuts[1:])]
    return [item for future in futures for item in future.result()]
