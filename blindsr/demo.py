"""The README's demo: ``python -m blindsr.demo``, blind SR next to bicubic and a non-blind net.

Writes the colour photos that scikit-image ships into ``demo_data/{train,val}`` (coffee held out) and
the held-out photo's test set ``demo_data/testsets/coffee_dasr_iso_x4`` (``scripts/make_testsets.py``,
protocol ``dasr_iso``: isotropic Gaussian blur of width 0, 1.2, 2.4 and 3.6, then x4 bicubic
downsampling). Then trains, for about the same wall-clock time, a non-blind BSRNet on bicubic LR
(``options/train/bsrnet/demo_x4.yml``) and a blind DASR of about the same size on randomly blurred LR
(``options/train/dasr/demo_x4.yml``, a new blur width per image), tests both on the held-out photo at
each width (``options/test/{bsrnet,dasr}/demo_x4.yml``) and prints one table: a row per blur width,
PSNR / SSIM of bicubic upsampling, the non-blind and the blind net. Last, the same comparison as the HTML
report of ``scripts/benchmark.py`` (``results/demo_report/index.html``: table, PSNR-vs-width plot, crops) and
the blind net upscaling the held-out photo at the widest blur with ``python -m blindsr.infer``
(``results/demo_infer/``), as a user would upscale their own images.
Extra ``--set`` overrides go to every training run (e.g. ``--set train.total_iter=100``).
``--prepare-only`` writes the photos and the test set and stops (the demo recipes name this command in
their datasets' ``prepared_by``, so running a recipe before the photos exist says how to get them).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
TRAIN_PHOTOS = ('astronaut', 'chelsea', 'rocket', 'stereo_motorcycle')
VAL_PHOTOS = ('coffee', )
DATA = Path('demo_data')
TESTSETS = DATA / 'testsets'
PROTOCOL, SCALE = 'dasr_iso', 4
REPORT, INFERRED = Path('results/demo_report'), Path('results/demo_infer')
BLIND_RUN = 'demo_dasr_x4'  # the name in options/train/dasr/demo_x4.yml
#: (column, training recipe, test recipe) under options/, in training order
NETS = (('non-blind BSRNet', 'train/bsrnet/demo_x4.yml', 'test/bsrnet/demo_x4.yml'),
        ('blind DASR', 'train/dasr/demo_x4.yml', 'test/dasr/demo_x4.yml'))


def prepare_photos(root: Path) -> None:
    """Write scikit-image's colour photos as PNG (skipped when already there)."""
    import skimage.data

    from blindsr.data.image_io import write_image

    for split, names in (('train', TRAIN_PHOTOS), ('val', VAL_PHOTOS)):
        for name in names:
            path = root / split / f'{name}.png'
            if not path.exists():
                image = getattr(skimage.data, name)()
                if isinstance(image, tuple):  # stereo_motorcycle: (left, right, disparity)
                    image = image[0]
                write_image(path, image[..., :3].astype(np.float32) / 255.0)


def prepare_testset(val: Path, testsets: Path) -> Path:
    """The held-out photo(s) under ``PROTOCOL`` in make_testsets' layout (skipped when already there)."""
    out = testsets / f'{VAL_PHOTOS[0]}_{PROTOCOL}_x{SCALE}'
    if not (out / 'params.json').is_file():
        from blindsr.testsets import make_testset

        make_testset(val, PROTOCOL, SCALE, out)
    return out


def parameter_count(recipe: Path) -> int:
    from blindsr.options import load_options
    from blindsr.test import main_network_parameters

    return main_network_parameters(load_options(recipe, [], is_train=False))


def demo_table(results: dict[str, dict], sizes: dict[str, int], seconds: dict[str, float]) -> str:
    """Markdown: a row per test dataset (``<photo>_sig<width>``), PSNR / SSIM of bicubic (from the first
    net's run) and of each net of ``results`` (``{column: blindsr.test results}``)."""
    columns = list(results)
    head = ['blur width', 'bicubic', *(f'{c} ({sizes[c] / 1e6:.2f} M params, {seconds[c] / 60:.1f} min)'
                                       for c in columns)]
    lines = ['| ' + ' | '.join(head) + ' |', '|---' * len(head) + '|']
    for dataset in results[columns[0]]:
        means = [results[c][dataset]['mean'] for c in columns]
        cells = [f"{means[0]['bicubic_psnr']:.2f} / {means[0]['bicubic_ssim']:.4f}",
                 *(f"{m['psnr']:.2f} / {m['ssim']:.4f}" for m in means)]
        lines.append(f"| {dataset.rsplit('_sig', 1)[-1]} | " + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def report_and_infer(testset: Path) -> None:
    """The HTML report of both nets on ``testset`` and ``blindsr.infer`` of the blind net on its widest blur."""
    from blindsr import infer
    from blindsr.data.paired_dataset import settings_of
    from blindsr.report.cli import main as benchmark

    benchmark(['--methods', *(f'{column}={REPO / "options" / recipe}' for column, _, recipe in NETS),
               '--protocols', PROTOCOL, '--sets', VAL_PHOTOS[0], '--scale', str(SCALE),
               '--testsets', str(testset.parent), '--out', str(REPORT), '--bicubic'])
    blurred = testset / settings_of(testset, SCALE)[-1]
    infer.main(['-i', str(blurred), '-o', str(INFERRED), '--weights', f'experiments/{BLIND_RUN}/models/net_g_final.pth'])


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(prog='python -m blindsr.demo', description=__doc__.splitlines()[0])
    parser.add_argument('--set', action='append', default=[], metavar='KEY.PATH=VALUE',
                        help='override an option of every training run; repeatable')
    parser.add_argument('--prepare-only', action='store_true',
                        help='write the photos and the test set into demo_data/ and stop (no training, no test)')
    args = parser.parse_args(argv)

    from blindsr import test, train

    steps = 3 + 2 * len(NETS)
    print(f'[demo 1/{steps}] photos -> {DATA}/train, {DATA}/val; held-out test set -> {TESTSETS}', flush=True)
    prepare_photos(DATA)
    testset = prepare_testset(DATA / 'val', TESTSETS)
    if args.prepare_only:
        print(f'Demo photos are in {DATA}/train and {DATA}/val, the test set in {testset}.')
        return ''
    results, sizes, seconds = {}, {}, {}
    for i, (column, train_recipe, _) in enumerate(NETS):
        print(f'[demo {2 + i}/{steps}] training the {column} ({train_recipe})', flush=True)
        start = time.monotonic()
        train.main(['-opt', str(REPO / 'options' / train_recipe), *[x for s in args.set for x in ('--set', s)]])
        seconds[column] = time.monotonic() - start
    for i, (column, _, test_recipe) in enumerate(NETS):
        print(f'[demo {2 + len(NETS) + i}/{steps}] testing the {column} on {testset} ({test_recipe})', flush=True)
        results[column] = test.main(['-opt', str(REPO / 'options' / test_recipe)])
        sizes[column] = parameter_count(REPO / 'options' / test_recipe)
    print(f'[demo {steps - 1}/{steps}] the HTML report -> {REPORT}; the blind net on the widest blur with '
          f'python -m blindsr.infer -> {INFERRED}', flush=True)
    report_and_infer(testset)
    table = demo_table(results, sizes, seconds)
    print(f"\n[demo {steps}/{steps}] held-out photo '{VAL_PHOTOS[0]}' blurred by an isotropic Gaussian of each "
          f'width, then x{SCALE} bicubic-downsampled; PSNR (dB) / SSIM on Y, border {SCALE}:\n\n{table}\n\n'
          f'Open {REPORT / "index.html"} in a browser; the blind net\'s upscaled photo is in {INFERRED}.')
    return table


if __name__ == '__main__':
    from blindsr import cli

    cli.run(main)
