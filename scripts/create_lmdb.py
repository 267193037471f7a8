"""Pack an image folder into an LMDB for fast training reads; keys are the file stems.

Usage:
    python scripts/create_lmdb.py --input $BLINDSR_DATA/DF2K/HR_sub --output $BLINDSR_DATA/DF2K/HR_sub.lmdb --workers 8

``HRImageDataset`` reads the result when ``dataroot_gt`` ends in ``.lmdb``. The writing is BasicSR's
``make_lmdb_from_imgs`` (images re-encoded losslessly as PNG, keeping bit depth and alpha, plus a
``meta_info.txt`` of names and shapes); this script checks the inputs first and sizes the map from the
image headers (BasicSR guesses from the first image, which overflows on folders of mixed sizes).
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import blindsr  # noqa: F401  (compat shim before basicsr)
from basicsr.utils.lmdb_util import make_lmdb_from_imgs

from blindsr.data.image_io import image_size, list_images


def create_lmdb(input_dir: str | Path, output: str | Path, compress_level: int = 1, workers: int = 1,
                overwrite: bool = False) -> Path:
    """Write the images of ``input_dir`` into the LMDB folder ``output`` (``*.lmdb``); return its path."""
    output = Path(output)
    if output.suffix != '.lmdb':
        raise ValueError(f'The output {output} must end in .lmdb (that is how datasets recognise an LMDB).')
    paths = list_images(input_dir)
    keys = [path.stem for path in paths]
    duplicates = sorted({key for key in keys if keys.count(key) > 1})
    if duplicates:
        raise ValueError(f"Images in {input_dir} share stems (LMDB keys): {', '.join(duplicates)}.")
    non_ascii = [path.name for path in paths if not path.stem.isascii()]
    if non_ascii:
        raise ValueError(f"LMDB keys must be ASCII; rename: {', '.join(non_ascii)}.")
    sizes = [image_size(path) for path in paths]  # a clear error for an unreadable file, before writing
    if output.exists():
        if not overwrite:
            raise FileExistsError(f'{output} exists; pass --overwrite to replace it.')
        shutil.rmtree(output)
    # Upper bound: raw 16-bit RGBA pixels plus per-image and per-database slack (the map is sparse).
    map_size = sum(h * w * 8 + 2**16 for h, w in sizes) + 2**26
    make_lmdb_from_imgs(str(input_dir), str(output), [path.name for path in paths], keys,
                        compress_level=compress_level, multiprocessing_read=workers > 1, n_thread=workers,
                        map_size=map_size)
    return output


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--input', required=True, help='folder of images')
    parser.add_argument('--output', required=True, help='LMDB folder to create, ending in .lmdb')
    parser.add_argument('--compress-level', type=int, default=1, help='PNG compression level 0-9 (default 1)')
    parser.add_argument('--workers', type=int, default=1, help='processes reading images (default 1)')
    parser.add_argument('--overwrite', action='store_true', help='replace an existing output')
    args = parser.parse_args()
    try:
        create_lmdb(args.input, args.output, args.compress_level, args.workers, args.overwrite)
    except (ValueError, OSError) as err:  # bad inputs: a one-line message, not a traceback
        parser.exit(2, f'{parser.prog}: error: {err}\n')


if __name__ == '__main__':
    main()
