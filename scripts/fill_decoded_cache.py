"""Decode training images into a ``decoded_cache`` folder up front (HRImageDataset fills it lazily otherwise).

    python scripts/fill_decoded_cache.py $BLINDSR_DATA/DF2K/HR --cache $BLINDSR_DATA/DF2K/HR_decoded --workers 8

Give the image folders of a dataset's ``dataroot_gt`` and the folder its ``decoded_cache`` option names.
Images already decoded (same file size and modification time) are kept, so an interrupted run can be
rerun; the space needed (height x width x 3 bytes per image, twice for 16-bit images) is checked first.
"""

from __future__ import annotations

import argparse

import blindsr  # noqa: F401  (compat shim before basicsr)
from blindsr.data.decoded_cache import DecodedCache
from blindsr.data.image_io import list_images


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('folders', nargs='+', help='image folders (a dataset\'s dataroot_gt)')
    parser.add_argument('--cache', required=True, help='the decoded_cache folder')
    parser.add_argument('--workers', type=int, default=1, help='decoding processes (default 1)')
    args = parser.parse_args(argv)
    cache = DecodedCache(args.cache, [path for folder in args.folders for path in list_images(folder)])
    decoded, present = cache.fill(args.workers)
    size = sum(path.stat().st_size for path in cache.folder.glob('*.npy'))
    print(f'{cache.folder}: {decoded} images decoded, {present} already there ({size / 1e9:.2f} GB in the folder)')


if __name__ == '__main__':
    from blindsr import cli

    cli.run(main)
