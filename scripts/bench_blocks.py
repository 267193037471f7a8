"""Throughput of blindsr's kernel, blur and USM building blocks against BasicSR's, in one run.

Usage: ``python scripts/bench_blocks.py [--batch 16] [--size 400] [--repeats 5] [--sweep]``. Prints
samples/s (median over ``--repeats`` timed calls after warm-up; BasicSR's USM gets at most 3) on a
B x 3 x S x S float32 batch of real photo crops, and each ratio ours / BasicSR:

- per-sample 21 x 21 blur: BasicSR ``filter2D`` with its own Real-ESRGAN kernels (float32 from numpy,
  subnormal taps included) vs :func:`blindsr.degradations.blur.blur` with ours;
- USM sharpening: BasicSR ``USMSharp`` (51 x 51 through the shared-kernel path) vs
  :func:`blindsr.degradations.sharpen.usm_sharp` (separable);
- Real-ESRGAN first-order kernel synthesis for B kernels (size U{7..21} zero-padded to 21; sinc with
  probability 0.1, else ``random_mixed_kernels``): BasicSR's per-kernel numpy loop + ``FloatTensor``
  vs the batched samplers and :func:`mixed_kernels` / :func:`sinc_kernels`.

``--sweep`` adds ``blur(method='conv')`` vs ``'fft'`` over kernel sizes (what ``method='auto'`` is
tuned on). Kernel synthesis runs on one CPU thread (as in a DataLoader worker; BasicSR's loop is
single-threaded numpy). CUDA rows are added when a GPU is present.

The development box is shared with other jobs that ``ps`` does not show; ungated timings there drift
by up to 10x. On Linux CPU every timed call therefore waits (at most 30 s per measurement) until
other processes use < 0.1 core and is redone when they used more than 5 % of its time + 30 ms while
it ran (:func:`blindsr.benchmark.gated_seconds`); a row marked ``*`` kept busy runs because the box
never went quiet.
"""

from __future__ import annotations

import argparse
import math
import random

import numpy as np
import torch

import blindsr  # noqa: F401  (compat shim before basicsr)
from basicsr.data.degradations import circular_lowpass_kernel, random_mixed_kernels
from basicsr.utils.img_process_util import USMSharp, filter2D
from blindsr.benchmark import gated_seconds, photo_batch
from blindsr.degradations import kernels as K
from blindsr.degradations.blur import blur
from blindsr.degradations.sharpen import usm_sharp

KINDS = ['iso', 'aniso', 'generalized_iso', 'generalized_aniso', 'plateau_iso', 'plateau_aniso']
PROBS = [0.45, 0.25, 0.12, 0.03, 0.12, 0.03]


def basicsr_kernels(batch: int) -> torch.Tensor:
    """Real-ESRGAN's dataset code path (realesrgan_dataset.py, first kernel), one kernel at a time."""
    out = []
    for _ in range(batch):
        size = random.choice(range(7, 22, 2))
        if np.random.uniform() < 0.1:
            omega = np.random.uniform(np.pi / 3, np.pi) if size < 13 else np.random.uniform(np.pi / 5, np.pi)
            k = circular_lowpass_kernel(omega, size, pad_to=False)
        else:
            k = random_mixed_kernels(KINDS, PROBS, size, (0.2, 3), (0.2, 3), [-math.pi, math.pi], (0.5, 4), (1, 2),
                                     noise_range=None)
        out.append(torch.FloatTensor(np.pad(k, (21 - size) // 2)))
    return torch.stack(out)


def our_kernels(batch: int, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """The same distribution, batched."""
    sizes = K.sample_kernel_sizes(batch, 7, 21, generator, device)
    params = K.sample_mixed_params(batch, KINDS, PROBS, generator=generator, device=device)
    sinc = torch.rand(batch, generator=generator, device=device) < 0.1
    u = torch.rand(batch, generator=generator, device=device)
    omega = torch.where(sizes < 13, math.pi / 3 + u * 2 * math.pi / 3, math.pi / 5 + u * 4 * math.pi / 5)
    mixed = K.mixed_kernels(21, **params, support=sizes)
    return torch.where(sinc.reshape(-1, 1, 1), K.sinc_kernels(sizes, omega, 21), mixed)


def row(name: str, ref_name: str, ref: tuple[float, bool], ours: tuple[float, bool], batch: int) -> None:
    flag = ' ' if ref[1] and ours[1] else '*'
    print(f'{name:<34}{flag} {ref_name:<20} {batch / ref[0]:9.1f} samples/s   ours {batch / ours[0]:9.1f} samples/s'
          f'   ours/ref {ref[0] / ours[0]:6.1f}x', flush=True)


def bench(device: torch.device, b: int, s: int, reps: int, sweep: bool) -> None:
    name = f'CPU ({torch.get_num_threads()} threads)' if device.type == 'cpu' else torch.cuda.get_device_name(device)
    print(f'\n{name} - batch {b} x 3 x {s} x {s} float32', flush=True)
    x = photo_batch(b, s).to(device)
    np.random.seed(0)
    random.seed(0)
    ref_k = basicsr_kernels(b).to(device)
    gen = torch.Generator(device).manual_seed(0)
    ours_k = our_kernels(b, gen, device)
    few = min(reps, 3)
    row('per-sample 21x21 blur', 'BasicSR filter2D', gated_seconds(lambda: filter2D(x, ref_k), reps, device),
        gated_seconds(lambda: blur(x, ours_k), reps, device), b)
    row('one shared 21x21 kernel', 'BasicSR filter2D', gated_seconds(lambda: filter2D(x, ref_k[:1]), few, device, 1),
        gated_seconds(lambda: blur(x, ours_k[:1]), reps, device), b)
    usm = USMSharp().to(device)
    row('USM (radius 50, 51x51 Gaussian)', 'BasicSR USMSharp', gated_seconds(lambda: usm(x), few, device, 1),
        gated_seconds(lambda: usm_sharp(x), reps, device), b)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    row(f'kernel synthesis ({b} kernels)', 'BasicSR numpy loop',
        gated_seconds(lambda: basicsr_kernels(b).to(device), 10, device),
        gated_seconds(lambda: our_kernels(b, gen, device), 10, device), b)
    torch.set_num_threads(threads)
    if sweep:
        for size in (11, 15, 21, 25, 31, 41, 51):
            k = K.gaussian_kernels(size, torch.rand(b, generator=gen, device=device) * 3 + 1, 2.0, 0.5)
            t_conv, ok_conv = gated_seconds(lambda k=k: blur(x, k, method='conv'), reps, device)
            t_fft, ok_fft = gated_seconds(lambda k=k: blur(x, k, method='fft'), reps, device)
            flag = ' ' if ok_conv and ok_fft else '*'
            print(f'  sweep {size:2d}x{size:<2d}{flag} conv {1e3 * t_conv:7.1f} ms   fft {1e3 * t_fft:7.1f} ms', flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--batch', type=int, default=16)
    parser.add_argument('--size', type=int, default=400)
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--sweep', action='store_true')
    args = parser.parse_args()
    bench(torch.device('cpu'), args.batch, args.size, args.repeats, args.sweep)
    if torch.cuda.is_available():
        bench(torch.device('cuda'), args.batch, args.size, args.repeats, args.sweep)


if __name__ == '__main__':
    main()
