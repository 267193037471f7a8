"""Training-step throughput of a recipe's model: fp32 vs AMP (bf16, fp16), with the degradation share.

Builds the model of an option file exactly as ``python -m blindsr.train`` does, feeds random HR
batches (so no disk I/O is measured) and prints, in one run, steps/s for each precision as ratios
against fp32, plus the time spent in the degradation alone.

    python scripts/bench_train_step.py -opt options/train/bsrnet/demo_x4.yml --set network_g.num_block=23 \
        --batch 16 --gt-size 288 --steps 20
"""

from __future__ import annotations

import argparse
import torch

import blindsr  # noqa: F401
from blindsr import dist
from blindsr.benchmark import median_seconds
from blindsr.options import load_options
from blindsr.registry import MODEL_REGISTRY, lookup


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('-opt', required=True)
    parser.add_argument('--set', action='append', default=[])
    parser.add_argument('--batch', type=int, default=8)
    parser.add_argument('--gt-size', type=int, default=128)
    parser.add_argument('--steps', type=int, default=10)
    parser.add_argument('--amp', nargs='*', default=['none', 'bf16', 'fp16'])
    args = parser.parse_args()

    opt = load_options(args.opt, args.set, is_train=True)
    _, device = dist.init_dist(opt['device'])
    gt = torch.rand(args.batch, 3, args.gt_size, args.gt_size, device=device)
    print(f"{opt['network_g']['type']} x{opt['scale']}, batch {args.batch}, HR {args.gt_size}px, device {device}")
    baseline = None
    for amp in args.amp:
        if amp == 'fp16' and device.type == 'cpu':
            continue  # GradScaler/fp16 autocast are CUDA features
        opt['train']['use_amp'] = False if amp == 'none' else amp
        torch.manual_seed(0)
        model = lookup(MODEL_REGISTRY, opt['model_type'])(opt, device)

        def step() -> None:
            model.feed_data({'gt': gt})
            model.optimize_parameters(1)

        seconds = median_seconds(step, args.steps, device, warmup=3)
        baseline = baseline or seconds
        print(f'  train step, {amp:>4}: {seconds * 1000:8.1f} ms  {1 / seconds:7.2f} steps/s  '
              f'{baseline / seconds:5.2f}x vs fp32')
    if model.degrader is not None:
        degrade = median_seconds(lambda: model.degrader(gt), args.steps, device)
        print(f'  degradation alone: {degrade * 1000:8.1f} ms ({100 * degrade / baseline:.1f}% of an fp32 step)')


if __name__ == '__main__':
    main()
