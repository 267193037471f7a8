"""Throughput of blindsr's torch MATLAB-bicubic ``imresize`` vs BasicSR's port, same run, same images.

Usage: ``python scripts/bench_resize.py [--size 256] [--scale 0.25] [--repeats 20]``. Prints images/s
(median over ``--repeats`` timed calls after warm-up) and the ratio to BasicSR's numpy imresize
called once per HWC float32 image.
"""

from __future__ import annotations

import argparse
import numpy as np
import torch

import blindsr  # noqa: F401  (compat shim before basicsr)
from blindsr.benchmark import median_seconds
from basicsr.utils.matlab_functions import imresize as basicsr_imresize
from blindsr.degradations.resize import imresize


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--size', type=int, default=256)
    parser.add_argument('--scale', type=float, default=0.25)
    parser.add_argument('--repeats', type=int, default=20)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    img = rng.random((args.size, args.size, 3), dtype=np.float32)
    base = 1 / median_seconds(lambda: basicsr_imresize(img, args.scale), args.repeats)
    print(f'torch {torch.__version__}, {torch.get_num_threads()} CPU threads; 3x{args.size}x{args.size} '
          f'float32 -> x{args.scale:g}')
    print(f'{"implementation":<34}{"images/s":>12}{"vs basicsr":>12}')
    print(f'{"basicsr numpy, per image":<34}{base:>12.1f}{1:>11.1f}x')

    devices = ['cpu'] + (['cuda'] if torch.cuda.is_available() else [])
    for device in devices:
        for batch in (1, 16):
            x = torch.from_numpy(img).permute(2, 0, 1)[None].repeat(batch, 1, 1, 1).to(device)
            rate = batch / median_seconds(lambda: imresize(x, args.scale), args.repeats, device)
            print(f'{f"blindsr {device}, batch {batch}":<34}{rate:>12.1f}{rate / base:>11.1f}x')


if __name__ == '__main__':
    main()
