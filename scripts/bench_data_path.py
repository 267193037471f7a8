"""Does the DataLoader keep the GPU fed? Loader throughput per method at its published batch and patch size,
and the share of a training step spent waiting for data.

For each method (``METHODS``: its recipe, whose train dataset gives the published batch and GT patch size),
real photos are read from disk (``--images``, default ``$BLINDSR_DATA/BSDS500_train``) through the recipe's
own dataset and blindsr's DataLoader (:func:`blindsr.data.loader.build_dataloader`, as training builds it),
for every ``--workers`` count and ``--pin`` setting:

- ``cpu ms/batch``: the CPU time one batch costs to load (in one process, torch on one thread as in a
  worker, so it does not depend on what else the machine runs), and ``workers needed`` to keep a step of ``--step-ms`` fed:
  ``ceil(cpu_ms_per_batch / step_ms)`` workers on otherwise idle cores.
- ``batches/s``, ``images/s`` and ``ms/batch`` of the loader alone, after its first round of batches
  (worker start-up) is out. With workers, ``ms/batch`` is the shortest step the loader keeps fed: a step
  of S ms waits about ``max(0, 1 - S / ms_per_batch)`` of its time for data (``model %``; without
  workers, loading and step take turns: ``ms_per_batch / (ms_per_batch + S)``).
- ``h2d ms``: the copy of one batch to the device as ``feed_data`` makes it (``non_blocking``; asynchronous
  only from pinned memory), CUDA only.
- ``wait %``: with a stand-in step of ``--step-ms`` per batch, the share of the loop's time spent in
  ``next(loader)``, as the training log's ``data ... s/it (N%)``. The stand-in leaves the CPU to the workers
  as a GPU-bound step does: on CUDA it copies the batch to the device and runs a GPU kernel that spins for
  the step's length, then synchronizes; on the CPU the process sleeps. Step times come from
  ``scripts/bench_train_step.py`` (``--step-ms 120`` for every method, or ``dasr=60 kdsr=150`` per method).

The degradation runs on the device in ``feed_data`` (the recipes' top-level ``degradation``), so the
loader only reads, crops and flips HR images; most of its cost is decoding each whole PNG for one crop
(a 2K DF2K photo costs about 11x a 481x321 BSDS500 one: measure your own set with ``--images``).
A GT size larger than the smallest image is lowered to it (the table says so).
``--decoded-cache DIR`` measures every setting twice, reading the photos directly (``cache off``) and from
a ``decoded_cache`` in DIR (``on``; filled before the rounds): the CPU time of a batch then goes to
cropping and converting, not decoding.

    python scripts/bench_data_path.py --workers 0 1 2 --step-ms 100 --out bench_data_path.json
    python scripts/bench_data_path.py --images $BLINDSR_DATA/DF2K/HR --methods dasr kdsr --workers 4 8 16
    python scripts/bench_data_path.py --images $BLINDSR_DATA/DF2K/HR --methods dasr kdsr --workers 4 \
        --decoded-cache $BLINDSR_DATA/DF2K/HR_decoded
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import platform
import statistics
import time
from pathlib import Path

import torch

import blindsr  # noqa: F401  (registrations)
from blindsr.data.decoded_cache import DecodedCache
from blindsr.data.image_io import image_size, list_images
from blindsr.data.loader import build_dataloader
from blindsr.dist import pick_device
from blindsr.options import load_options
from blindsr.registry import DATASET_REGISTRY, lookup

REPO = Path(__file__).resolve().parents[1]

# one recipe per method, the x4 setting the authors trained; DASR's and CDSR's data paths are alike
# (32 images x 2 patches), listed for both methods' tables
METHODS = {
    'bsrgan': 'options/train/bsrgan/bsrgan_x4.yml',
    'dasr': 'options/train/dasr/dasr_x4_iso_stage2.yml',
    'cdsr': 'options/train/cdsr/cdsr_x4_aniso.yml',
    'kdsr': 'options/train/kdsr/kdsr_s_m_x4_iso.yml',
    'kdsrnet': 'options/train/kdsr/kdsrnet_s_x4.yml',
}
COLUMNS = ('method', 'batch', 'gt', 'cache', 'cpu ms/batch', 'workers', 'pin', 'batches/s', 'images/s', 'ms/batch', 'h2d ms',
           'step ms', 'wait %', 'model %', 'workers needed')


def parse_steps(items: list[str], methods: list[str]) -> dict[str, list[float]]:
    """``--step-ms`` items (``120``: every method; ``dasr=60``: one method) -> step times per method."""
    common, per_method = [], {}
    for item in items:
        name, sep, value = item.rpartition('=')
        if sep and name not in METHODS:
            raise ValueError(f"--step-ms {item}: unknown method {name!r}; methods: {', '.join(METHODS)}")
        try:
            ms = float(value)
        except ValueError:
            raise ValueError(f'--step-ms {item}: not a number of milliseconds') from None
        if ms < 0:
            raise ValueError(f'--step-ms {item}: a step time cannot be negative')
        (per_method.setdefault(name, []) if sep else common).append(ms)
    return {method: common + per_method.get(method, []) for method in methods}


class StandInStep:
    """A training step's shape without its work: copy the batch to the device (as ``feed_data``), then hold
    the device for ``ms`` (a spinning GPU kernel; on the CPU, sleep) and wait for it."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.cycles_per_ms = self._calibrate() if device.type == 'cuda' else 0.0

    def _calibrate(self) -> float:
        """GPU clock cycles per millisecond, from the last of a few spins (the clock ramps up at first);
        each row also records the step time it measured (``step_ms_measured``)."""
        cycles, seconds = 50_000_000, 0.0
        for _ in range(3):
            torch.cuda.synchronize(self.device)
            start = time.perf_counter()
            torch.cuda._sleep(cycles)
            torch.cuda.synchronize(self.device)
            seconds = time.perf_counter() - start
        return cycles / (seconds * 1000)

    def copy(self, batch: dict) -> torch.Tensor:
        return batch['gt'].to(self.device, non_blocking=True)

    def __call__(self, batch: dict, ms: float) -> None:
        if self.device.type == 'cuda':
            self.copy(batch)
            torch.cuda._sleep(int(ms * self.cycles_per_ms))
            torch.cuda.synchronize(self.device)
        else:
            time.sleep(ms / 1000)


def smallest_side(folder: Path) -> int:
    return min(min(image_size(path)) for path in list_images(folder))


def build_loader(recipe: str, images: Path, workers: int, pin: bool, batches: int, sets: list[str],
                 max_gt: int, device: torch.device, cache: Path | None = None):
    """The recipe's train DataLoader over ``images`` and its dataset options, with the recipe's own batch and
    GT size (before ``sets``) as ``batch_published`` and ``gt_size_published``; ``cache``: its
    ``decoded_cache`` (None: none, whatever the recipe says).
    Its epoch is made to hold at least ``batches`` batches (``dataset_enlarge_ratio``), so that no epoch
    boundary falls inside a measurement."""
    overrides = [f'datasets.train.dataroot_gt={images}', f'datasets.train.num_worker_per_gpu={workers}',
                 f'datasets.train.pin_memory={str(pin).lower()}', 'datasets.val=null']
    overrides.append(f"datasets.train.decoded_cache={cache or 'null'}")
    published = load_options(REPO / recipe, overrides)['datasets']['train']
    opt = load_options(REPO / recipe, overrides + sets)
    ds = opt['datasets']['train']
    ds['batch_published'], ds['gt_size_published'] = published['batch_size_per_gpu'], published['gt_size']
    if ds['gt_size'] > max_gt:  # the crop must fit the photos; keep it a multiple of the scale
        ds['gt_size'] = max_gt - max_gt % ds['scale']
    count = len(list_images(images))
    ds['dataset_enlarge_ratio'] = max(ds['dataset_enlarge_ratio'],
                                      math.ceil(batches * ds['batch_size_per_gpu'] / count))
    dataset = lookup(DATASET_REGISTRY, ds['type'])(ds)
    return build_dataloader(dataset, ds, 'train', opt['manual_seed'], 0, 1, device), ds


CPU_BATCHES = 5  # timed batches per loader of the cpu ms/batch column (after one)


def cpu_ms_per_batch(loaders: list, batches: int = CPU_BATCHES) -> list[float]:
    """CPU milliseconds one batch costs to load from each of ``loaders`` (median of ``batches`` after one, the
    loaders taking turns), in this process: loaders without workers, torch on one thread as in a DataLoader
    worker (with two, its idle OpenMP thread spins and counts as CPU time: the figure swung 4x between
    identical runs). Unlike wall times, this does not depend on what else the machine runs."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        its = [iter(loader) for loader in loaders]
        for it in its:
            next(it)
        times = [[] for _ in its]
        for _ in range(batches):
            for it, spent in zip(its, times):
                start = time.process_time()
                next(it)
                spent.append(time.process_time() - start)
    finally:
        torch.set_num_threads(threads)
    return [statistics.median(spent) * 1000 for spent in times]


def measure(loader, step: StandInStep, steps_ms: list[float], rounds: int, workers: int) -> dict:
    """Loader alone, then with each stand-in step; one iterator throughout (workers started once)."""
    per_round = max(workers, 1)  # the workers deliver a round of batches at a time
    batches = iter(loader)
    for _ in range(per_round):  # the first round carries the workers' start-up
        batch = next(batches)
    start = time.perf_counter()
    for _ in range(rounds * per_round):
        batch = next(batches)
    seconds = (time.perf_counter() - start) / (rounds * per_round)
    h2d = None
    if step.device.type == 'cuda':
        times = []
        for _ in range(5):
            torch.cuda.synchronize(step.device)
            t0 = time.perf_counter()
            step.copy(batch)
            torch.cuda.synchronize(step.device)
            times.append(time.perf_counter() - t0)
        h2d = statistics.median(times) * 1000
    waits, step_ms = {}, {}
    for ms in steps_ms:
        for _ in range(per_round):  # settle into this step's rhythm
            step(next(batches), ms)
        waited, start = 0.0, time.perf_counter()
        for _ in range(rounds * per_round):
            t0 = time.perf_counter()
            batch = next(batches)
            waited += time.perf_counter() - t0
            step(batch, ms)
        total = time.perf_counter() - start
        waits[ms], step_ms[ms] = waited / total, (total - waited) / (rounds * per_round) * 1000
    return {'ms_per_batch': seconds * 1000, 'h2d_ms': h2d, 'wait_share': waits, 'step_ms_measured': step_ms}


def modelled_wait(ms_per_batch: float, step_ms: float, workers: int) -> float:
    """The share of a loop's time spent waiting for data, from the loader's speed alone: without workers the
    main process loads each batch between steps; with workers, loading overlaps the step and only what
    it takes beyond the step is waited for."""
    if workers == 0:
        return ms_per_batch / (ms_per_batch + step_ms)
    return max(0.0, 1 - step_ms / ms_per_batch)


def format_row(row: dict) -> str:
    """One table line, in the order of ``COLUMNS``."""
    def num(value, spec: str) -> str:
        return '-' if value is None else format(value, spec)

    def used(key: str) -> str:  # the value measured, and the recipe's where it differs
        return str(row[key]) + (f" ({row[key + '_published']})" if row[key] != row[key + '_published'] else '')

    batch = used('batch') + (f" x{row['patches']}" if row['patches'] > 1 else '')
    gt = used('gt_size')
    return ' | '.join([row['method'], batch, gt, 'on' if row['decoded_cache'] else 'off', num(row['cpu_ms_per_batch'], '.0f'), str(row['workers']),
                       'on' if row['pin_memory'] else 'off',
                       num(row['batches_per_s'], '.2f'), num(row['images_per_s'], '.1f'), num(row['ms_per_batch'], '.1f'),
                       num(row['h2d_ms'], '.2f'), num(row['step_ms'], 'g'), num(row['wait_share'], '.0%'),
                       num(row['model_share'], '.0%'), num(row['workers_needed'], 'd')])


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--methods', nargs='+', default=list(METHODS), choices=list(METHODS))
    parser.add_argument('--images', type=Path, default=None,
                        help='folder of training photos (default: $BLINDSR_DATA/BSDS500_train)')
    parser.add_argument('--workers', nargs='+', type=int, default=[0, 1, 2], help='num_worker_per_gpu values')
    parser.add_argument('--pin', nargs='+', default=None, choices=['off', 'on'],
                        help="pin_memory settings (default: 'off on' on CUDA, 'off' on the CPU)")
    parser.add_argument('--step-ms', nargs='+', default=['100'], metavar='[METHOD=]MS',
                        help='stand-in step times: MS for every method, METHOD=MS for one (bench_train_step.py)')
    parser.add_argument('--rounds', type=int, default=4, help='timed rounds of one batch per worker')
    parser.add_argument('--device', default='auto', help='auto, cuda or cpu')
    parser.add_argument('--set', action='append', default=[], metavar='KEY.PATH=VALUE',
                        help='override an option of every recipe (e.g. datasets.train.prefetch_factor=4)')
    parser.add_argument('--decoded-cache', type=Path, metavar='DIR',
                        help='also measure every setting with this decoded_cache (filled first): cache off and on')
    parser.add_argument('--out', type=Path, help='write the rows as JSON here')
    args = parser.parse_args(argv)

    os.environ.setdefault('BLINDSR_DATA', str(REPO.parent / 'shared' / 'data'))  # the recipes name it
    device = pick_device(args.device)
    images = args.images or Path(os.environ['BLINDSR_DATA']) / 'BSDS500_train'
    steps = parse_steps(args.step_ms, args.methods)
    pins = [p == 'on' for p in (args.pin or (['off', 'on'] if device.type == 'cuda' else ['off']))]
    if any(w < 0 for w in args.workers) or args.rounds < 1:
        raise ValueError('--workers must be >= 0 and --rounds >= 1')
    max_gt = smallest_side(images)
    stand_in = StandInStep(device)
    name = torch.cuda.get_device_name(device) if device.type == 'cuda' else platform.processor() or 'cpu'
    print(f'device {device} ({name}), {os.cpu_count()} CPU cores, images {images} (smallest side {max_gt})')
    caches = [None]
    if args.decoded_cache:
        decoded, present = DecodedCache(args.decoded_cache, list_images(images)).fill(os.cpu_count())
        print(f'decoded cache {args.decoded_cache}: {decoded} images decoded, {present} already there')
        caches.append(args.decoded_cache)
    print(' | '.join(COLUMNS))
    rows = []
    for method in args.methods:
        cpu_ms = dict(zip(caches, cpu_ms_per_batch(
            [build_loader(METHODS[method], images, 0, False, 1 + CPU_BATCHES, args.set, max_gt, device, cache)[0]
             for cache in caches])))
        for workers, pin, cache in itertools.product(args.workers, pins, caches):
            needed = (1 + args.rounds) * (1 + len(steps[method])) * max(workers, 1)
            loader, ds = build_loader(METHODS[method], images, workers, pin, needed, args.set, max_gt, device,
                                      cache)
            result = measure(loader, stand_in, steps[method], args.rounds, workers)
            del loader  # its workers end here
            ms = result['ms_per_batch']
            base = {'method': method, 'recipe': METHODS[method], 'batch': ds['batch_size_per_gpu'],
                    'batch_published': ds['batch_published'], 'patches': ds.get('num_patches', 1), 'gt_size': ds['gt_size'],
                    'gt_size_published': ds['gt_size_published'], 'workers': workers, 'pin_memory': pin,
                    'batches_per_s': 1000 / ms, 'images_per_s': 1000 / ms * ds['batch_size_per_gpu'],
                    'ms_per_batch': ms, 'h2d_ms': result['h2d_ms'], 'cpu_ms_per_batch': cpu_ms[cache],
                    'decoded_cache': cache is not None}
            for step_ms, share in result['wait_share'].items() or [(None, None)]:
                row = {**base, 'step_ms': step_ms, 'step_ms_measured': result['step_ms_measured'].get(step_ms),
                       'wait_share': share,
                       'model_share': None if step_ms is None else modelled_wait(ms, step_ms, workers),
                       'workers_needed': None if not step_ms else math.ceil(cpu_ms[cache] / step_ms)}
                rows.append(row)
                print(format_row(row), flush=True)
    if args.out:
        args.out.write_text(json.dumps({'device': str(device), 'device_name': name, 'cpu_count': os.cpu_count(),
                                        'images': str(images), 'rows': rows}, indent=1))
        print(f'wrote {args.out}')
    return rows


if __name__ == '__main__':
    from blindsr import cli

    cli.run(main)
