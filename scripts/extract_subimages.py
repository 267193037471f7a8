"""Cut large training images into overlapping square sub-images (BasicSR's DIV2K recipe) for faster loading.

Usage:
    python scripts/extract_subimages.py --input $BLINDSR_DATA/DF2K/HR --output $BLINDSR_DATA/DF2K/HR_sub \
        --crop-size 480 --step 240 --workers 8

Squares of ``crop-size`` start every ``step`` pixels; when the last one leaves more than ``thresh-size``
pixels uncovered at the bottom or right edge, one more square is added flush with that edge. Each image
``<stem>.*`` gives ``<stem>_s001.png``, ``<stem>_s002.png``, ... in row-major order, written losslessly
with the source's bit depth and channels. Images smaller than ``crop-size`` are skipped and listed.
"""

from __future__ import annotations

import argparse
import functools
from multiprocessing import Pool
from pathlib import Path

import blindsr  # noqa: F401  (compat shim before basicsr)
import cv2
import numpy as np
from tqdm import tqdm

from blindsr.data.image_io import list_images, read_raw


def crop_positions(length: int, crop_size: int, step: int, thresh_size: int) -> list[int]:
    """Start offsets of the crops along one side of ``length >= crop_size`` pixels."""
    positions = list(range(0, length - crop_size + 1, step))
    if length - (positions[-1] + crop_size) > thresh_size:
        positions.append(length - crop_size)
    return positions


def _extract_one(path: Path, output: Path, crop_size: int, step: int, thresh_size: int) -> int:
    img = read_raw(path)
    height, width = img.shape[:2]
    if height < crop_size or width < crop_size:
        return 0
    index = 0
    for top in crop_positions(height, crop_size, step, thresh_size):
        for left in crop_positions(width, crop_size, step, thresh_size):
            index += 1
            crop = np.ascontiguousarray(img[top:top + crop_size, left:left + crop_size])
            target = output / f'{path.stem}_s{index:03d}.png'
            if not cv2.imwrite(str(target), crop, [cv2.IMWRITE_PNG_COMPRESSION, 3]):
                raise OSError(f'Cannot write {target}.')
    return index


def extract_subimages(input_dir: str | Path, output: str | Path, crop_size: int = 480, step: int = 240,
                      thresh_size: int = 0, workers: int = 1) -> int:
    """Write the sub-images of every image in ``input_dir`` into ``output``; return how many."""
    paths = list_images(input_dir)
    stems = [path.stem for path in paths]
    if len(set(stems)) < len(stems):
        raise ValueError(f'Images in {input_dir} share stems; their sub-images would overwrite each other.')
    output = Path(output)
    if output.exists() and any(output.iterdir()):
        raise FileExistsError(f'{output} exists and is not empty; remove it or choose another output.')
    output.mkdir(parents=True, exist_ok=True)
    job = functools.partial(_extract_one, output=output, crop_size=crop_size, step=step,
                            thresh_size=thresh_size)
    with Pool(workers) as pool:
        counts = list(tqdm(pool.imap(job, paths), total=len(paths), unit='image', desc='extract'))
    skipped = [path.name for path, count in zip(paths, counts) if count == 0]
    print(f'Wrote {sum(counts)} sub-images of {len(paths) - len(skipped)} images to {output}.')
    if skipped:
        print(f"Skipped {len(skipped)} image(s) smaller than {crop_size}x{crop_size}: {', '.join(skipped)}")
    return sum(counts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--input', required=True, help='folder of images')
    parser.add_argument('--output', required=True, help='folder for the sub-images (new or empty)')
    parser.add_argument('--crop-size', type=int, default=480,
                        help='side of the square sub-images (default 480)')
    parser.add_argument('--step', type=int, default=240, help='distance between sub-images (default 240)')
    parser.add_argument('--thresh-size', type=int, default=0,
                        help='uncovered border above which an edge-flush sub-image is added (default 0)')
    parser.add_argument('--workers', type=int, default=1, help='processes (default 1)')
    args = parser.parse_args()
    try:
        extract_subimages(args.input, args.output, args.crop_size, args.step, args.thresh_size, args.workers)
    except (ValueError, OSError) as err:  # bad inputs: a one-line message, not a traceback
        parser.exit(2, f'{parser.prog}: error: {err}\n')


if __name__ == '__main__':
    main()
