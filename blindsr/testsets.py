"""Versioned benchmark test sets: the LR images of a protocol plus a JSON of the exact parameters, in
blindsr's layout or MANet's (the library behind ``scripts/make_testsets.py``, which documents both layouts)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

import blindsr
from blindsr.data.image_io import list_images, read_image, to_tensor, write_image
from blindsr.degradations.protocols import PROTOCOL_VERSION, get_protocol
from blindsr.seeding import name_seed


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
        generator = torch.Generator().manual_seed(name_seed(seed, path.stem))
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
