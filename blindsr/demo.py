"""The README's demo: ``python -m blindsr.demo``.

Writes the colour photos that scikit-image ships into ``demo_data/{train,val}`` (coffee held out for
validation), trains a small BSRNet x4 with ``options/train/bsrnet/demo_x4.yml``, tests it with
``options/test/bsrnet/demo_x4.yml`` and prints its PSNR/SSIM next to bicubic upsampling.
Extra ``--set`` overrides go to the training run (e.g. ``--set train.total_iter=100``).
``--prepare-only`` writes the photos and stops (the demo recipes name this command in their datasets'
``prepared_by``, so running a recipe before the photos exist says how to get them).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

TRAIN_PHOTOS = ('astronaut', 'chelsea', 'rocket', 'stereo_motorcycle')
VAL_PHOTOS = ('coffee', )


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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog='python -m blindsr.demo', description=__doc__.splitlines()[0])
    parser.add_argument('--train-opt', default='options/train/bsrnet/demo_x4.yml')
    parser.add_argument('--test-opt', default='options/test/bsrnet/demo_x4.yml')
    parser.add_argument('--set', action='append', default=[], metavar='KEY.PATH=VALUE')
    parser.add_argument('--prepare-only', action='store_true',
                        help='write the photos into demo_data/ and stop (no training, no test)')
    args = parser.parse_args(argv)

    from blindsr import test, train

    prepare_photos(Path('demo_data'))
    if args.prepare_only:
        print('Demo photos are in demo_data/train and demo_data/val.')
        return
    train.main(['-opt', args.train_opt, *sum((['--set', s] for s in args.set), [])])
    results = test.main(['-opt', args.test_opt])
    for name, result in results.items():
        mean = result['mean']
        print(f"\nDemo result on held-out photo(s) '{name}' (x4, Y channel, border 4):\n"
              f"  BSRNet  PSNR {mean['psnr']:.2f} dB  SSIM {mean['ssim']:.4f}\n"
              f"  bicubic PSNR {mean['bicubic_psnr']:.2f} dB  SSIM {mean['bicubic_ssim']:.4f}\n"
              f"  gain    {mean['psnr'] - mean['bicubic_psnr']:+.2f} dB")


if __name__ == '__main__':
    from blindsr import cli

    cli.run(main)
