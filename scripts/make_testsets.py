"""Write a versioned benchmark test set: LR images of a protocol plus a JSON of the exact parameters.

    python scripts/make_testsets.py --hr $BLINDSR_DATA/Set5 --protocol bicubic --scale 4 --out testsets/Set5_bicubic_x4

Layout of ``--out``: ``HR/<name>.png`` (HR mod-cropped to the scale), ``<setting>/<name>.png`` (LR, one
folder per setting of the protocol, e.g. per kernel width) and ``params.json`` (protocol, version,
scale, seed, per-image per-setting parameters, sha256 of every PNG). Each image's random generator is
seeded by ``seed`` and its file name, so the same inputs and seed give byte-identical PNGs whatever
else is in the folder. Evaluate with a ``TestSetFolder`` (``dataroot: <out>``) and ``python -m blindsr.test``.

``--layout manet`` (protocol ``manet9`` only) writes the same LR images the way MANet's
``codes/prepare_testset.py`` lays them out, which CDSR's test.py reads: ``<out>/<Set>_x<s>/HR_si/`` (an
HR copy per kernel) and ``<out>/<Set>_x<s>/LR_mode0_noise<n>/``, files ``<stem>_<sig1>_<sig2>_<theta>.png``
(one decimal each, theta in radians: ``baby_9.0_1.0_0.8.png``), plus ``params.json``. ``<Set>`` is
``--name`` (default: the HR folder's name, or its parent's when it is called ``HR``). ``TestSetFolder``
reads such a folder too, including one MANet's own script wrote.

    python scripts/make_testsets.py --hr $BLINDSR_DATA/Set5 --protocol manet9 --scale 4 --layout manet --out testsets/manet
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


LAYOUTS = ('blindsr', 'manet')


def manet_files(stem: str, params: dict) -> tuple[str, str]:
    """MANet's (LR folder, file name) of one manet9 setting of image ``stem``; the HR copy is ``HR_si/<file name>``."""
    name = f"{stem}_{params['sigma_x']:.1f}_{params['sigma_y']:.1f}_{params['theta']:.1f}.png"
    return f"LR_mode0_noise{params['noise']:g}", name


def set_name(hr_dir: str | Path) -> str:
    """A set's name from its HR folder: the folder's name, or its parent's for MANet's ``<Set>/HR``."""
    hr_dir = Path(hr_dir).resolve()
    return hr_dir.parent.name if hr_dir.name == 'HR' else hr_dir.name


def make_testset(hr_dir: str | Path, protocol: str, scale: int, out: str | Path, seed: int = 0,
                 layout: str = 'blindsr', name: str | None = None) -> dict:
    """Degrade every image of ``hr_dir`` with ``protocol``; write PNGs and ``params.json`` into ``out``
    (``layout='manet'``: into ``out/<name>_x<scale>``, MANet's names); return the JSON and the ``folder``."""
    make = get_protocol(protocol)
    if layout not in LAYOUTS:
        raise ValueError(f"Unknown test-set layout '{layout}'; known: {', '.join(LAYOUTS)}.")
    if layout == 'manet' and protocol != 'manet9':
        raise ValueError(f"--layout manet is MANet's layout of the manet9 protocol, not of '{protocol}'.")
    out = Path(out) / f'{name or set_name(hr_dir)}_x{scale}' if layout == 'manet' else Path(out)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f'{out} is not empty; choose a new folder for the test set.')
    files = list_images(hr_dir)
    record: dict = {'protocol': protocol, 'protocol_version': PROTOCOL_VERSION, 'blindsr': blindsr.__version__,
                    'layout': layout, 'scale': scale, 'seed': seed, 'source': str(hr_dir), 'images': {}, 'sha256': {}}
    for path in tqdm(files, desc=f'{protocol} x{scale}', unit='img'):
        img = read_image(path)
        h, w = img.shape[0] - img.shape[0] % scale, img.shape[1] - img.shape[1] % scale
        hr = to_tensor(img[:h, :w])[None].double()
        generator = torch.Generator().manual_seed(seed + zlib.crc32(path.stem.encode()))
        written = {Path('HR') / f'{path.stem}.png': hr} if layout == 'blindsr' else {}
        record['images'][path.stem] = {}
        for setting, lr, params in make(hr, scale, generator):
            if layout == 'blindsr':
                written[Path(setting) / f'{path.stem}.png'] = lr
            else:  # the HR copy is the same for every noise level of a kernel
                folder, file = manet_files(path.stem, params)
                written.update({Path('HR_si') / file: hr, Path(folder) / file: lr})
            record['images'][path.stem][setting] = params
        for rel, tensor in written.items():
            write_image(out / rel, to_image(tensor))
            record['sha256'][str(rel)] = hashlib.sha256((out / rel).read_bytes()).hexdigest()
    (out / 'params.json').write_text(json.dumps(record, indent=1, sort_keys=True))
    return {**record, 'folder': str(out)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--hr', required=True, help='folder of HR images')
    parser.add_argument('--protocol', required=True, choices=sorted(PROTOCOLS))
    parser.add_argument('--scale', type=int, required=True)
    parser.add_argument('--out', required=True)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--layout', choices=LAYOUTS, default='blindsr',
                        help="'manet': MANet's <Set>_x<s>/HR_si + LR_mode0_noise<n> under --out (manet9 only)")
    parser.add_argument('--name', help="the set's name in the manet layout (default: from --hr)")
    args = parser.parse_args(argv)
    record = make_testset(args.hr, args.protocol, args.scale, args.out, args.seed, args.layout, args.name)
    digest = hashlib.sha256(json.dumps(record['sha256'], sort_keys=True).encode()).hexdigest()
    print(f"{len(record['images'])} images -> {record['folder']}; sha256 of the set's PNG hashes: {digest}")


if __name__ == '__main__':
    from blindsr import cli

    cli.run(main)
