"""DataLoaders for training and validation, single-process or distributed, reproducible from the seed.

Training shuffles with a ``DistributedSampler`` (also for one process), so the order of an epoch
depends only on ``(seed, epoch)``: a resumed run re-creates the loader, calls ``sampler.set_epoch``
(and ``sampler.set_start`` to continue part-way through the epoch) and sees the same order.
Validation shards with :class:`ShardSampler`, which neither pads nor duplicates, so metrics gathered
from all ranks count each image exactly once.
"""

from __future__ import annotations

import atexit
import functools
import itertools
import multiprocessing
import random
import signal
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler, default_collate

from blindsr.data.image_io import ImageReadError, as_float


class ShardSampler(Sampler[int]):
    """Indices ``rank, rank + world_size, ...`` of a dataset of ``length`` items, in order."""

    def __init__(self, length: int, rank: int, world_size: int) -> None:
        self.indices = range(rank, length, world_size)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


class ResumableDistributedSampler(DistributedSampler):
    """A ``DistributedSampler`` whose epoch can begin part-way through its order (``set_start``).

    ``enlarge`` repeats the dataset that many times per epoch (BasicSR's ``dataset_enlarge_ratio``;
    useful for small sets). With ``with_epoch`` it yields ``(index, key)`` pairs, ``key`` being
    ``epoch * enlarge + repeat``, from which blindsr datasets seed each sample's randomness
    (:mod:`blindsr.data.transforms`); other datasets get plain indices.
    """

    def __init__(self, dataset: Dataset, *args: Any, enlarge: int = 1, with_epoch: bool = False,
                 **kwargs: Any) -> None:
        self.base_len = len(dataset)
        self.enlarge = enlarge
        super().__init__(range(self.base_len * enlarge), *args, **kwargs)
        self.start = 0
        self.with_epoch = with_epoch

    def set_start(self, start: int) -> None:
        """Skip the first ``start`` indices of this rank's order in the epochs that follow (0: none)."""
        self.start = start

    def __iter__(self) -> Iterator[int | tuple[int, int]]:
        indices = itertools.islice(super().__iter__(), self.start, None)
        if self.with_epoch:
            return ((i % self.base_len, self.epoch * self.enlarge + i // self.base_len) for i in indices)
        return (i % self.base_len for i in indices)

    def __len__(self) -> int:
        return self.num_samples - self.start


class CatchItemErrors(Dataset):
    """``dataset`` whose items do not raise ``catch``: such an item becomes ``{'error': reason, 'path': file}``.

    Images are loaded in ``__getitem__``, in worker processes when ``num_worker_per_gpu`` > 0, and an
    exception there surfaces from the DataLoader's iterator: it ends an evaluation loop without saying
    which image failed, and in training arrives as the worker's whole traceback. Caught here instead,
    evaluation lists the image as a failure and goes on with the next one (``catch``: any exception), and
    training stops with the reason in one line (``catch``: :class:`ImageReadError`, an unreadable file).
    ``file`` is the dataset's ``item_path(index)`` (blindsr's datasets have one), else ``item <index>``.
    """

    def __init__(self, dataset: Dataset, catch: tuple[type[Exception], ...]) -> None:
        self.dataset = dataset
        self.catch = catch

    def __getitem__(self, item: int | tuple[int, int]) -> dict[str, Any]:
        try:
            return self.dataset[item]
        except self.catch as err:
            index = item[0] if isinstance(item, tuple) else item
            path = self.dataset.item_path(index) if hasattr(self.dataset, 'item_path') else f'item {index}'
            reason = str(err) if isinstance(err, ValueError) else f'{type(err).__name__}: {err}'
            return {'error': reason, 'path': path}

    def __len__(self) -> int:
        return len(self.dataset)


def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    """``default_collate``, except that a batch holding an error record becomes that record alone, and an
    image key whose items mix uint8 and float pixels (8- and 16-bit files in one set) is collated as float."""
    failed = [item for item in items if 'error' in item]
    if failed:
        return default_collate(failed[:1])
    for key in ('gt', 'lq'):
        values = [item[key] for item in items if isinstance(item.get(key), torch.Tensor)]
        if len({v.dtype for v in values}) > 1:
            items = [{**item, key: as_float(item[key])} for item in items]
    return default_collate(items)


def _kill_workers_at_exit() -> None:
    """At interpreter exit, SIGKILL DataLoader workers still alive: multiprocessing's own exit handler
    (which runs after this one) SIGTERMs and joins them, but workers ignore SIGTERM (below), so a loader
    not shut down by then (e.g. one kept alive by a stored traceback) would hang the exit."""
    children = [child for child in multiprocessing.active_children() if child.daemon]
    if children:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # torch's handler would call this a worker failure
        for child in children:
            child.kill()


atexit.register(_kill_workers_at_exit)


def _init_worker(base_seed: int, worker_id: int) -> None:
    # Ctrl+C, a SIGTERM to the process group (torchrun forwards it that way) and SLURM's or systemd's
    # SIGTERM to every process of a job reach the workers too: they ignore both, so that the main
    # process can save a state and stop cleanly (blindsr.train) instead of finding its workers gone.
    # They still end when the loader shuts them down, or when their parent dies (torch's watchdog).
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    random.seed(base_seed + worker_id)
    np.random.seed((base_seed + worker_id) % 2**32)


def build_dataloader(dataset: Dataset, opt: dict[str, Any], phase: str, seed: int, rank: int,
                     world_size: int, device: torch.device | None = None) -> DataLoader:
    """A DataLoader for ``dataset`` on this rank, feeding ``device`` (None: the CPU).

    ``opt`` (the dataset's options) gives ``batch_size_per_gpu`` (required for 'train', default 1
    otherwise), ``num_worker_per_gpu`` (default 0), ``prefetch_factor`` (batches each worker keeps
    ready; None: torch's 2), ``persistent_workers`` (default True: workers outlive an epoch instead of
    being re-spawned, with their dataset copy, at each one), ``pin_memory`` (None: on when ``device`` is
    CUDA, so that ``feed_data``'s ``non_blocking`` copy runs asynchronously) and, for 'train',
    ``dataset_enlarge_ratio`` (default 1). The worker options only apply when ``num_worker_per_gpu`` > 0.
    Workers seed ``random`` and numpy with ``seed + rank * 1000 + worker_id``; train batches are full
    (``drop_last``).
    """
    train = phase == 'train'
    sampler: Sampler[int]
    if train:
        sampler = ResumableDistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=True,
                                              seed=seed, drop_last=True,
                                              enlarge=int(opt.get('dataset_enlarge_ratio', 1)),
                                              with_epoch=getattr(dataset, 'seeded_by_epoch', False))
        batch_size = int(opt['batch_size_per_gpu'])
        if len(sampler) < batch_size:
            raise ValueError(f'{len(dataset)} training images give {len(sampler)} per rank on {world_size} '
                             f'rank(s): fewer than one batch of batch_size_per_gpu {batch_size}.')
    else:
        sampler = ShardSampler(len(dataset), rank, world_size)
        batch_size = int(opt.get('batch_size_per_gpu', 1))
    workers = int(opt.get('num_worker_per_gpu', 0))
    pin = opt.get('pin_memory')
    pin = device is not None and device.type == 'cuda' if pin is None else bool(pin)
    prefetch = opt.get('prefetch_factor')
    dataset = CatchItemErrors(dataset, (ImageReadError, ) if train else (Exception, ))
    return DataLoader(dataset, collate_fn=collate, batch_size=batch_size, sampler=sampler, num_workers=workers,
                      pin_memory=pin, drop_last=train,
                      persistent_workers=workers > 0 and bool(opt.get('persistent_workers', True)),
                      prefetch_factor=int(prefetch) if workers > 0 and prefetch is not None else None,
                      worker_init_fn=functools.partial(_init_worker, seed + rank * 1000),
                      generator=torch.Generator().manual_seed(seed + rank))
