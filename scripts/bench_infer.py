"""Inference speed of every network the zoo ships, at its published size: ms per output megapixel.

Random weights (speed does not depend on them), one LR image of ``--size`` px square per call, untiled,
through :func:`blindsr.tiling.upscale` as ``python -m blindsr.infer`` runs it; one warm-up call, then
the median of ``--repeats``. Prints a markdown table (ms per LR and per SR megapixel, parameters).
Run it alone and nice'd; ``OMP_NUM_THREADS`` sets the CPU threads:

    OMP_NUM_THREADS=1 nice -n 10 python scripts/bench_infer.py --size 64
    python scripts/bench_infer.py --device cuda --dtype bf16 --size 256
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import blindsr  # noqa: F401  (registrations)
from blindsr.infer import DTYPES
from blindsr.registry import ARCH_REGISTRY
from blindsr.tiling import upscale
from blindsr.zoo import ZOO


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--size', type=int, default=64, help='LR side in pixels')
    p.add_argument('--repeats', type=int, default=3)
    p.add_argument('--device', default='cpu')
    p.add_argument('--dtype', choices=DTYPES, default='fp32')
    p.add_argument('--only', nargs='*', help='zoo names to run (default: one per distinct configuration)')
    args = p.parse_args()
    device, dtype = torch.device(args.device), DTYPES[args.dtype]
    names, seen = [], []
    for entry in ZOO.values():  # one per distinct (arch, arguments); the KDSR teacher needs HR, it is skipped
        if (entry.arch, dict(entry.args)) not in seen and entry.arch != 'KDSRTeacher':
            seen.append((entry.arch, dict(entry.args)))
            names.append(entry.name)
    names = args.only or names
    print(f'{args.size}x{args.size} LR, {device}, {args.dtype}, {torch.get_num_threads()} thread(s), torch '
          f'{torch.__version__}, median of {args.repeats}\n')
    print('| zoo name (same net as) | arch | params | ms / LR MP | ms / SR MP |\n|---|---|---|---|---|')
    torch.manual_seed(0)
    for name in names:
        entry = ZOO[name]
        net = ARCH_REGISTRY.get(entry.arch)(**entry.args).eval().to(device, dtype)
        lq = torch.rand(1, 3, args.size, args.size, device=device, dtype=dtype)
        times = []
        for i in range(args.repeats + 1):
            if device.type == 'cuda':
                torch.cuda.synchronize()
            start = time.perf_counter()
            upscale(net, lq, entry.scale)
            if device.type == 'cuda':
                torch.cuda.synchronize()
            if i:  # the first call warms up
                times.append(time.perf_counter() - start)
        sec = statistics.median(times)
        lr_mp = args.size ** 2 / 1e6
        same = [n for n, e in ZOO.items() if n != name and (e.arch, dict(e.args)) == (entry.arch, dict(entry.args))]
        label = f'{name} ({", ".join(same)})' if same else name
        params = sum(p.numel() for p in net.parameters()) / 1e6
        print(f'| {label} | {entry.arch} x{entry.scale} | {params:.2f}M | {sec * 1e3 / lr_mp:,.0f} | '
              f'{sec * 1e3 / (lr_mp * entry.scale ** 2):,.0f} |', flush=True)


if __name__ == '__main__':
    main()
