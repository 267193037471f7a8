"""Throughput of every degradation pipeline, batched (in ``feed_data``) vs per sample (DataLoader mode).

Usage: ``python scripts/bench_degradations.py [--batches 1 16 64] [--size 256] [--scale 4] [--repeats 3]``.
For each pipeline and batch size B, one run prints samples/s of ``pipeline.degrade(hr, seeds)`` on a
B x 3 x S x S batch of real photo crops (``x2p``: B x 2 patches sharing a degradation, DASR/CDSR's
paired mode; samples/s then counts patches) (median of ``--repeats`` timed calls after warm-up), of the same
B samples degraded one at a time (what DataLoader workers do, without their process parallelism), and
the ratio. Rows for CUDA are added when a GPU is present (``--devices cuda``: those alone). The authors'
implementations (KAIR's BSRGAN models, BasicSR's Real-ESRGAN pipeline, DASR's preprocessing) are timed
beside blindsr's in one run by ``scripts/bench_vs_authors.py``.
"""

from __future__ import annotations

import argparse

import torch

import blindsr  # noqa: F401  (registrations)
from blindsr.benchmark import median_seconds, photo_batch
from blindsr.registry import DEGRADATION_REGISTRY, build

PIPELINES = {
    'bicubic': {'type': 'bicubic'},
    'classic dasr aniso+noise': {'type': 'classic', 'preset': 'dasr', 'kernel': 'aniso', 'noise': 25},
    'classic dasr aniso+noise x2p': {'type': 'classic', 'preset': 'dasr', 'kernel': 'aniso', 'noise': 25},
    'classic dasr iso x2p': {'type': 'classic', 'preset': 'dasr'},
    'classic kdsr iso': {'type': 'classic', 'preset': 'kdsr'},
    'classic cdsr_manet aniso': {'type': 'classic', 'preset': 'cdsr_manet', 'kernel': 'aniso'},
    'classic cdsr_manet aniso x2p': {'type': 'classic', 'preset': 'cdsr_manet', 'kernel': 'aniso'},
    'bsrgan': {'type': 'bsrgan'},
    'bsrgan (jpeg: libjpeg)': {'type': 'bsrgan', 'jpeg': 'libjpeg'},
    'bsrgan_plus': {'type': 'bsrgan_plus'},
    'realesrgan': {'type': 'realesrgan'},
}


def run(pipeline, hr: torch.Tensor, seeds: list[int], per_sample: bool) -> None:
    if not hasattr(pipeline, 'degrade'):  # the deterministic bicubic pipeline
        parts = hr.split(1) if per_sample else [hr]
        for x in parts:
            pipeline(x)
    elif per_sample:
        for i, seed in enumerate(seeds):
            pipeline.degrade(hr[i:i + 1], [seed])
    else:
        pipeline.degrade(hr, seeds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--batches', type=int, nargs='+', default=[1, 16, 64])
    parser.add_argument('--size', type=int, default=256)
    parser.add_argument('--scale', type=int, default=4)
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--only', nargs='*', help='pipeline names (default: all)')
    parser.add_argument('--devices', nargs='+', choices=('cpu', 'cuda'),
                        help='default: the CPU, and CUDA when a GPU is present')
    args = parser.parse_args()
    devices = args.devices or ['cpu'] + (['cuda'] if torch.cuda.is_available() else [])
    if 'cuda' in devices and not torch.cuda.is_available():
        parser.error('--devices cuda: no CUDA device is visible')
    print(f'HR {args.size}x{args.size} -> x{args.scale}; samples/s (median of {args.repeats}); '
          f'torch {torch.__version__}, {torch.get_num_threads()} CPU threads')
    print(f"{'device':6} {'pipeline':30} {'B':>4} {'batched':>10} {'per sample':>11} {'ratio':>7}")
    for device in devices:
        for name, opt in PIPELINES.items():
            if args.only and name not in args.only:
                continue
            pipeline = build(DEGRADATION_REGISTRY, dict(opt), scale=args.scale)
            patches = 2 if name.endswith('x2p') else 1
            for b in args.batches:
                hr = photo_batch(b * patches, args.size).to(device)
                if patches > 1:
                    hr = hr.reshape(b, patches, *hr.shape[1:])
                seeds = list(range(b))
                batched = median_seconds(lambda: run(pipeline, hr, seeds, False), args.repeats, device, warmup=1)
                single = median_seconds(lambda: run(pipeline, hr, seeds, True), args.repeats, device, warmup=1)
                n = b * patches
                print(f'{device:6} {name:30} {b:4d} {n / batched:10.1f} {n / single:11.1f} {single / batched:6.2f}x',
                      flush=True)


if __name__ == '__main__':
    main()
