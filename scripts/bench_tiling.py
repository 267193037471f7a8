"""Peak memory and wall time of :func:`blindsr.tiling.upscale` with and without tiling, in one run.

Usage: ``python scripts/bench_tiling.py [--size 2000] [--scale 2] [--num-feat 32] [--num-block 1]
[--grow 16] [--tile 512] [--overlap 32] [--device cpu|cuda]``. Each mode (untiled, then tiled) runs in
its own subprocess, so each peak is that run's alone: a randomly initialised BSRNet of the given
width (eval mode) upscales one ``size x size`` random image. Printed per mode: the process's peak
RSS (``resource.getrusage``, which includes the interpreter and torch, given separately as the RSS
before the upscale), the output buffer's size, the number of tiles and the wall time; on CUDA the
peak allocated GPU memory too. Run it nice'd (``nice -n 10``) on a shared box.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import torch


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def child(args: argparse.Namespace) -> None:
    from blindsr.archs.bsrnet_arch import BSRNet
    from blindsr.tiling import upscale

    device = torch.device(args.device)
    net = BSRNet(args.scale, num_feat=args.num_feat, num_block=args.num_block, num_grow_ch=args.grow).eval().to(device)
    lq = torch.rand(1, 3, args.size, args.size, generator=torch.Generator().manual_seed(0)).to(device)
    before = _rss_mib()
    if device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats(device)
    tiles = []
    start = time.perf_counter()
    sr = upscale(net, lq, args.scale, tile=args.tile if args.mode == 'tiled' else None, overlap=args.overlap,
                 progress=lambda done, total: tiles.append(total))
    if device.type == 'cuda':
        torch.cuda.synchronize(device)
    row = {'mode': args.mode, 'peak_rss_mib': round(_rss_mib()), 'rss_before_mib': round(before),
           'output_mib': round(sr.numel() * sr.element_size() / 2**20), 'tiles': len(tiles),
           'seconds': round(time.perf_counter() - start, 1)}
    if device.type == 'cuda':
        row['peak_gpu_mib'] = round(torch.cuda.max_memory_allocated(device) / 2**20)
    print(json.dumps(row))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--size', type=int, default=2000)
    parser.add_argument('--scale', type=int, default=2)
    parser.add_argument('--num-feat', type=int, default=32)
    parser.add_argument('--num-block', type=int, default=1)
    parser.add_argument('--grow', type=int, default=16)
    parser.add_argument('--tile', type=int, default=512)
    parser.add_argument('--overlap', type=int, default=32)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--mode', choices=['untiled', 'tiled'], help=argparse.SUPPRESS)  # set for the subprocesses
    args = parser.parse_args()
    if args.mode:
        child(args)
        return
    print(f'BSRNet x{args.scale} (num_feat {args.num_feat}, num_block {args.num_block}, grow {args.grow}), '
          f'{args.size}x{args.size} input, {args.device}, torch threads {torch.get_num_threads()}; '
          f'tiled: tile {args.tile}, overlap {args.overlap}', flush=True)
    for mode in ('untiled', 'tiled'):
        out = subprocess.run([sys.executable, *sys.argv, '--mode', mode], capture_output=True, text=True, check=False)
        if out.returncode:
            print(f'{mode}: failed (exit {out.returncode}): {out.stderr.strip().splitlines()[-1:]}', flush=True)
            continue
        print(out.stdout.strip(), flush=True)


if __name__ == '__main__':
    main()
