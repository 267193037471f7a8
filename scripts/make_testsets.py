"""Write a versioned benchmark test set: LR images of a protocol plus a JSON of the exact parameters.

    python scripts/make_testsets.py --hr ../shared/data/Set5 --protocol bicubic --scale 4 --out testsets/Set5_bicubic_x4

Layout of ``--out``: ``HR/<name>.png`` (HR mod-cropped to the scale), ``<setting>/<name>.png`` (LR, one
folder per setting of the protocol, e.g. per kernel width) and ``params.json`` (protocol, version,
scale, seed, per-image per-setting parameters, sha256 of every PNG). Each image's random generator is
seeded by ``seed`` and its file name, so the same inputs and seed give byte-identical PNGs whatever
else is in the folder. Evaluate with a ``PairedFolderDataset`` (``dataroot_gt: <out>/HR``,
``dataroot_lq: <out>/<setting>``) and ``python -m blindsr.test``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import zlib
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

import blindsr  # noqa: F401
from blindsr.data.image_io import list_images, read_image, to_tensor, write_image
from blindsr.degradations.protocols import PROTOCOL_VERSION, PROTOCOLS, get_protocol


def to_image(x: torch.Tensor) -> np.ndarray:
    return x[0].clamp(0, 1).permute(1, 2, 0).numpy()


def make_testset(hr_dir: str | Path, protocol: str, scale: int, out: str | Path, seed: int = 0) -> dict:
    """Degrade every image of ``hr_dir`` with ``protocol``; write PNGs and ``params.json``; return the JSON."""
    make = get_protocol(protocol)
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f'{out} is not empty; choose a new folder for the test set.')
    files = list_images(hr_dir)
    record: dict = {'protocol': protocol, 'protocol_version': PROTOCOL_VERSION, 'blindsr': blindsr.__version__,
                    'scale': scale, 'seed': seed, 'source': str(hr_dir), 'images': {}, 'sha256': {}}
    for path in tqdm(files, desc=f'{protocol} x{scale}', unit='img'):
        img = read_image(path)
        h, w = img.shape[0] - img.shape[0] % scale, img.shape[1] - img.shape[1] % scale
        hr = to_tensor(img[:h, :w])[None].double()
        generator = torch.Generator().manual_seed(seed + zlib.crc32(path.stem.encode()))
        written = [(Path('HR') / f'{path.stem}.png', hr)]
        record['images'][path.stem] = {}
        for setting, lr, params in make(hr, scale, generator):
            written.append((Path(setting) / f'{path.stem}.png', lr))
            record['images'][path.stem][setting] = params
        for rel, tensor in written:
            write_image(out / rel, to_image(tensor))
            record['sha256'][str(rel)] = hashlib.sha256((out / rel).read_bytes()).hexdigest()
    (out / 'params.json').write_text(json.dumps(record, indent=1, sort_keys=True))
    return record


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--hr', required=True, help='folder of HR images')
    parser.add_argument('--protocol', required=True, choices=sorted(PROTOCOLS))
    parser.add_argument('--scale', type=int, required=True)
    parser.add_argument('--out', required=True)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)
    record = make_testset(args.hr, args.protocol, args.scale, args.out, args.seed)
    digest = hashlib.sha256(json.dumps(record['sha256'], sort_keys=True).encode()).hexdigest()
    print(f"{len(record['images'])} images -> {args.out}; sha256 of the set's PNG hashes: {digest}")


if __name__ == '__main__':
    from blindsr import cli

    cli.run(main)
