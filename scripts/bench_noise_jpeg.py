"""Throughput of blindsr's batched JPEG, Poisson noise and OpenCV-style resize against the references.

Usage: ``python scripts/bench_noise_jpeg.py [--batch 16] [--size 256] [--repeats 10]``. One run prints
samples/s (median over ``--repeats`` timed calls after warm-up) for a B x 3 x S x S float32 batch of
real photo crops, and each ratio to its reference in the same run:

- JPEG (quality U[30, 95] per sample): ours (both flavours) vs BasicSR's ``DiffJPEG(differentiable=False)``
  vs ``cv2.imencode``/``imdecode`` per image (:func:`blindsr.degradations.jpeg.jpeg_opencv`);
- Poisson noise (per-sample scale, 40 % gray): ours vs BasicSR's ``add_poisson_noise_pt``;
- resize to S/4 and by 1/1.5 (per mode): ours (``backend='opencv'``) vs a ``cv2.resize`` loop over the
  batch (HWC float32 images, the conversion not timed).

CUDA rows are added when a GPU is present.
"""

from __future__ import annotations

import argparse
import cv2
import numpy as np
import torch

import blindsr  # noqa: F401  (compat shim before basicsr)
from blindsr.benchmark import median_seconds, photo_batch
from basicsr.data.degradations import add_poisson_noise_pt
from basicsr.utils.diffjpeg import DiffJPEG
from blindsr.degradations.jpeg import jpeg, jpeg_opencv
from blindsr.degradations.noise import add_poisson_noise
from blindsr.degradations.resize_modes import resize

CV_CODES = {'nearest': cv2.INTER_NEAREST, 'bilinear': cv2.INTER_LINEAR, 'bicubic': cv2.INTER_CUBIC,
            'area': cv2.INTER_AREA}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--batch', type=int, default=16)
    parser.add_argument('--size', type=int, default=256)
    parser.add_argument('--repeats', type=int, default=10)
    args = parser.parse_args()
    b, s, reps = args.batch, args.size, args.repeats

    x_cpu = photo_batch(b, s)
    gen = torch.Generator().manual_seed(0)
    quality = torch.rand(b, generator=gen) * 65 + 30
    scale = torch.rand(b, generator=gen) * 2.95 + 0.05
    gray = torch.rand(b, generator=gen) < 0.4
    print(f'torch {torch.__version__}, {torch.get_num_threads()} CPU threads, opencv {cv2.__version__}; '
          f'batch {b}x3x{s}x{s} float32')
    print(f'{"operation":<46}{"samples/s":>12}{"ratio":>10}')

    def row(name: str, seconds: float, base: float | None = None) -> float:
        rate = b / seconds
        ratio = f'{rate / base:>9.2f}x' if base else f'{"(ref)":>10}'
        print(f'{name:<46}{rate:>12.1f}{ratio}')
        return rate

    print('-- JPEG, quality U[30, 95] per sample')
    diffjpeg = DiffJPEG(differentiable=False)
    with torch.no_grad():
        ref = row('BasicSR DiffJPEG, cpu', median_seconds(lambda: diffjpeg(x_cpu, quality.clone()), reps))
    row('OpenCV imencode/imdecode loop, cpu', median_seconds(lambda: jpeg_opencv(x_cpu, quality), reps), ref)
    devices = ['cpu'] + (['cuda'] if torch.cuda.is_available() else [])
    for dev in devices:
        x, q = x_cpu.to(dev), quality.to(dev)
        if dev == 'cuda':
            dj = DiffJPEG(differentiable=False).to(dev)
            with torch.no_grad():
                row('BasicSR DiffJPEG, cuda', median_seconds(lambda: dj(x, q.clone()), reps, dev), ref)
        for flavour in ('diffjpeg', 'libjpeg'):
            seconds = median_seconds(lambda: jpeg(x, q, flavour), reps, dev)
            row(f'blindsr jpeg {flavour!r}, {dev}', seconds, ref)

    print('-- Poisson noise, per-sample scale, 40% gray')
    ref = row('BasicSR add_poisson_noise_pt, cpu',
              median_seconds(lambda: add_poisson_noise_pt(x_cpu, scale, gray_noise=gray.float()), reps))
    for dev in devices:
        x, sc, gr = x_cpu.to(dev), scale.to(dev), gray.to(dev)
        if dev == 'cuda':
            row('BasicSR add_poisson_noise_pt, cuda',
                median_seconds(lambda: add_poisson_noise_pt(x, sc, gray_noise=gr.float()), reps, dev), ref)
        seconds = median_seconds(lambda: add_poisson_noise(x, sc, gr), reps, dev)
        row(f'blindsr add_poisson_noise, {dev}', seconds, ref)

    images = [np.ascontiguousarray(img) for img in x_cpu.permute(0, 2, 3, 1).numpy()]
    for label, out in ((f'to {s // 4}', (s // 4, s // 4)), ('by 1/1.5', (int(s / 1.5), int(s / 1.5)))):
        print(f'-- resize {s} -> {out[0]} ({label})')
        for mode, code in CV_CODES.items():
            ref = row(f'cv2.resize loop {mode}, cpu', median_seconds(
                lambda: [cv2.resize(img, out[::-1], interpolation=code) for img in images], reps))
            for dev in devices:
                x = x_cpu.to(dev)
                seconds = median_seconds(lambda: resize(x, out, mode), reps, dev)
                row(f'blindsr resize {mode}, {dev}', seconds, ref)


if __name__ == '__main__':
    main()
