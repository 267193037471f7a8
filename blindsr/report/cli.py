"""One benchmark table (markdown + CSV), plots and an HTML page across methods x protocols x sets.

The command line behind ``python scripts/benchmark.py`` (its docstring shows the usage); the demo calls
:func:`main` too.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import blindsr  # noqa: F401  (registrations)
from blindsr.logging_utils import setup_logger
from blindsr.report.html import write_report
from blindsr.report.runner import parse_lr_set, parse_method, run_benchmark


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--methods', nargs='+', required=True, metavar='[LABEL=]RECIPE[@WEIGHTS]',
                        help='test recipes (options/test/...yml), optionally labelled and with other weights')
    parser.add_argument('--protocols', nargs='+', default=[], help='test-set protocols (make_testsets --protocol)')
    parser.add_argument('--sets', nargs='+', default=[], help='test set names, e.g. Set5 Set14')
    parser.add_argument('--lr-sets', nargs='+', default=[], metavar='NAME=FOLDER',
                        help='folders of real LR images (no HR): NIQE of the SR images')
    parser.add_argument('--scale', nargs='+', type=int, help="scales to run (default: every method's own)")
    parser.add_argument('--testsets', default='testsets', help='folder holding the make_testsets folders')
    parser.add_argument('--out', default='results/benchmark', help='report folder')
    parser.add_argument('--cache', help='cache folder (default: <out>/cache)')
    parser.add_argument('--lpips-weights', help="torchvision's ImageNet file of the LPIPS backbone (LPIPS is left "
                                                'out without it; "random": tests only)')
    parser.add_argument('--lpips-net', default='alex', choices=('alex', 'vgg'))
    parser.add_argument('--bicubic', action='store_true', help='add a row of bicubic upsampling per table')
    parser.add_argument('--device', default='auto', choices=('auto', 'cpu', 'cuda'))
    parser.add_argument('--crop-size', type=int, default=96, help='HR pixels of the crops')
    args = parser.parse_args(argv)
    if not (args.sets and args.protocols) and not args.lr_sets:
        parser.error('give --sets with --protocols, or --lr-sets')
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    setup_logger(None, True)
    methods = [parse_method(spec) for spec in args.methods]
    out = Path(args.out)
    lpips = {'net': args.lpips_net, 'backbone_weights': args.lpips_weights} if args.lpips_weights else None
    bench = run_benchmark(methods, args.sets, args.protocols, Path(args.testsets), Path(args.cache or out / 'cache'),
                          args.scale, [parse_lr_set(s) for s in args.lr_sets], lpips, args.device, args.bicubic)
    written = write_report(bench.rows, out, args.crop_size)
    print(f"{written['markdown']}, {written['csv']}, {len(written['plots'])} plots, {len(written['crops'])} crops; "
          f"open {written['html']}")
    return {'benchmark': bench, **written}
