"""Degradation throughput of blindsr's pipelines beside the authors' code, in one process and one run.

Usage::

    python scripts/bench_vs_authors.py --kair PATH/TO/KAIR [--dasr PATH/TO/DASR] [--batch 16] [--size 256]

The authors' code is not a dependency of blindsr: fetch it yourself (``git clone
https://github.com/cszn/KAIR``, ``.../The-Learning-And-Vision-Atelier-LAVA/DASR``); BasicSR's Real-ESRGAN
pipeline comes with the installed ``basicsr``. Each row times the authors' implementation and blindsr's
pipeline in interleaved rounds (:func:`blindsr.benchmark.gated_rounds`: each round waits for an otherwise
idle CPU and rotates the order), so their ratio cannot drift between runs; like the authors' code, blindsr's
pipelines draw new parameters on every call (the next unused seeds); ``*`` marks a figure whose
calls were mostly disturbed by other processes. The last column is the ratio of the median CPU time per call
(this process, all threads; every timed, re-warming and warm-up call): on a loaded machine, where the wall
times mostly measure waiting for a core, it still says how much work each side does. Rows:

- ``bsrgan`` / ``bsrgan_plus``: KAIR ``utils/utils_blindsr.py`` ``degradation_bsrgan(img, sf,
  lq_patchsize)`` / ``degradation_bsrgan_plus(img, sf, shuffle_prob=0.1, use_sharp=False, lq_patchsize)``
  (KAIR's training settings), one numpy HWC sample at a time as its dataset calls it, vs blindsr's
  ``bsrgan`` / ``bsrgan_plus`` on the whole batch;
- ``realesrgan``: BasicSR's ``RealESRGANDataset.__getitem__`` (per-sample kernels; the image decode is
  served from memory) + ``RealESRGANModel.feed_data`` (batched; USM-sharpened GT as shipped) vs blindsr's
  ``realesrgan`` with ``sharpen_input: true``;
- ``dasr``: DASR's ``utils/util.py`` ``SRMDPreprocessing`` (isotropic Gaussian, batched) vs blindsr's
  ``classic`` with ``preset: dasr``.

Patches applied to the authors' code at import time, in this process only (their code no longer runs on
current SciPy / without CUDA): SciPy's removed ``scipy.interpolate.interp2d`` is given as a bilinear
``RectBivariateSpline`` and ``scipy.finfo`` as ``numpy.finfo`` (KAIR); ``Tensor.cuda`` returns the tensor
unchanged (DASR); ``RealESRGANModel.feed_data`` is called on a stand-in holding exactly what it reads
(options, device, DiffJPEG, USMSharp) with the training-pair queue off, and its ``filter2D`` gets a
contiguous input (it ``.view()``s the tensor, which DiffJPEG's output no longer allows).
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

import blindsr  # noqa: F401  (registrations; BasicSR's torchvision shim)
from blindsr.benchmark import gated_rounds, photo_batch
from blindsr.degradations.realesrgan import DEFAULTS
from blindsr.registry import DEGRADATION_REGISTRY, build


def _patch_scipy() -> None:
    import scipy
    import scipy.interpolate
    from scipy.interpolate import RectBivariateSpline

    class Interp2dBilinear:  # interp2d(x, y, z)(xn, yn), the only use KAIR makes of it
        def __init__(self, x, y, z):
            self.spline = RectBivariateSpline(y, x, z, kx=1, ky=1)

        def __call__(self, xn, yn):
            return self.spline(yn, xn)

    scipy.interpolate.interp2d = Interp2dBilinear
    scipy.finfo = np.finfo


def new_draws(pipeline, hr: torch.Tensor):
    """A call of ``pipeline.degrade`` on ``hr`` with the next unused seeds: new parameters on every call, as
    the authors' code draws them (the same seeds every round would time one fixed set of plans)."""
    calls = itertools.count()
    return lambda: pipeline.degrade(hr, [next(calls) for _ in range(len(hr))])


def kair_rows(kair: Path, hr: torch.Tensor, scale: int, patch: int) -> dict:
    _patch_scipy()
    sys.path.insert(0, str(kair))
    from utils import utils_blindsr as kb  # KAIR's module

    images = [np.ascontiguousarray(x.permute(1, 2, 0).numpy()) for x in hr]
    pairs = {}
    for name, fn in (('bsrgan', lambda im: kb.degradation_bsrgan(im, sf=scale, lq_patchsize=patch)),
                     ('bsrgan_plus', lambda im: kb.degradation_bsrgan_plus(im, sf=scale, shuffle_prob=0.1,
                                                                           use_sharp=False, lq_patchsize=patch))):
        ours = build(DEGRADATION_REGISTRY, {'type': name, 'lq_patchsize': patch}, scale=scale)
        pairs[name] = (lambda fn=fn: [fn(im.copy()) for im in images], new_draws(ours, hr))
    return pairs


def realesrgan_row(hr: torch.Tensor, scale: int, tmp: Path) -> tuple:
    import cv2
    from basicsr.data import realesrgan_dataset
    from basicsr.models import realesrgan_model
    from basicsr.models.realesrgan_model import RealESRGANModel
    from basicsr.utils import DiffJPEG, USMSharp

    size = hr.shape[-1]
    names, decoded = [], {}
    for i, x in enumerate(hr):  # 400 x 400 files: the dataset crops or pads every image to 400
        bgr = (torch.nn.functional.pad(x, (0, 400 - size, 0, 400 - size), mode='reflect').permute(1, 2, 0)
               .numpy()[..., ::-1] * 255).round().astype(np.uint8)
        name = f'{i}.png'
        cv2.imwrite(str(tmp / name), bgr)
        names.append(name)
        decoded[(tmp / name).read_bytes()] = bgr.astype(np.float32) / 255
    (tmp / 'meta.txt').write_text('\n'.join(names))
    realesrgan_dataset.imfrombytes = lambda data, float32=True: decoded[data].copy()  # decode served from memory
    filter2d = realesrgan_model.filter2D  # .view()s its input, which DiffJPEG leaves non-contiguous on current torch
    realesrgan_model.filter2D = lambda img, kernel: filter2d(img.contiguous(), kernel)
    opt = {k: list(v) if isinstance(v, tuple) else v for k, v in DEFAULTS.items()}
    opt['kernel_list2'], opt['kernel_prob2'] = opt['kernel_list'], opt['kernel_prob']
    dataset = realesrgan_dataset.RealESRGANDataset({
        **opt, 'dataroot_gt': str(tmp), 'meta_info': str(tmp / 'meta.txt'), 'io_backend': {'type': 'disk'},
        'use_hflip': False, 'use_rot': False, 'blur_kernel_size': 21, 'blur_kernel_size2': 21})
    model = SimpleNamespace(opt={**opt, 'scale': scale, 'gt_size': size, 'high_order_degradation': True},
                            device=torch.device('cpu'), jpeger=DiffJPEG(differentiable=False),
                            usm_sharpener=USMSharp(), is_train=True, _dequeue_and_enqueue=lambda: None)

    def authors():
        items = [dataset[i] for i in range(len(names))]
        batch = {key: torch.stack([item[key] for item in items]) for key in ('kernel1', 'kernel2', 'sinc_kernel')}
        batch['gt'] = torch.stack([item['gt'][:, :size, :size] for item in items])
        RealESRGANModel.feed_data(model, batch)

    ours = build(DEGRADATION_REGISTRY, {'type': 'realesrgan', 'sharpen_input': True}, scale=scale)
    return authors, new_draws(ours, hr)


def dasr_row(dasr: Path, hr: torch.Tensor, scale: int) -> tuple:
    torch.Tensor.cuda = lambda self, *args, **kwargs: self
    sys.path.insert(0, str(dasr))
    from utils import util as du  # DASR's module

    sys.path.remove(str(dasr))
    degrade = du.SRMDPreprocessing(scale, kernel_size=21, blur_type='iso_gaussian', sig_min=0.2, sig_max=4.0,
                                   noise=0.0)
    ours = build(DEGRADATION_REGISTRY, {'type': 'classic', 'preset': 'dasr'}, scale=scale)
    hr255 = hr[:, None] * 255
    return lambda: degrade(hr255, random=True), new_draws(ours, hr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--kair', type=Path, help='a KAIR checkout (cszn/KAIR)')
    parser.add_argument('--dasr', type=Path, help="a DASR checkout (The-Learning-And-Vision-Atelier-LAVA/DASR)")
    parser.add_argument('--batch', type=int, default=16)
    parser.add_argument('--size', type=int, default=256)
    parser.add_argument('--scale', type=int, default=4)
    parser.add_argument('--lq-patchsize', type=int, default=64)
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--only', nargs='*', help='row names (default: all whose code is given)')
    args = parser.parse_args()
    hr = photo_batch(args.batch, args.size)
    rows = {}
    if args.kair:
        if not (args.kair / 'utils' / 'utils_blindsr.py').is_file():
            parser.error(f'{args.kair} has no utils/utils_blindsr.py: give the root of a KAIR checkout')
        rows.update(kair_rows(args.kair.resolve(), hr, args.scale, args.lq_patchsize))
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        rows['realesrgan'] = realesrgan_row(hr, args.scale, Path(tmp))
        if args.dasr:
            if not (args.dasr / 'utils' / 'util.py').is_file():
                parser.error(f'{args.dasr} has no utils/util.py: give the root of a DASR checkout')
            if 'utils' in sys.modules:  # KAIR's utils package: DASR has its own
                for name in [m for m in sys.modules if m == 'utils' or m.startswith('utils.')]:
                    del sys.modules[name]
            rows['dasr'] = dasr_row(args.dasr.resolve(), hr, args.scale)
        if args.only:
            rows = {k: v for k, v in rows.items() if k in args.only}
        print(f'{args.batch} real-photo crops {args.size}x{args.size}, x{args.scale}; samples/s; '
              f'torch {torch.__version__}, {torch.get_num_threads()} CPU threads')
        print(f"{'pipeline':<12} {'authors':>10} {'blindsr':>10} {'ratio':>7}   {'CPU-time ratio':>14}")
        for name, (authors, ours) in rows.items():
            cpu = {'authors': [], 'ours': []}
            timed = gated_rounds({'authors': _cpu_timed(authors, cpu['authors']),
                                  'ours': _cpu_timed(ours, cpu['ours'])}, args.repeats, warmup=1)
            (ta, qa), (to, qo) = timed['authors'], timed['ours']
            ca, co = statistics.median(cpu['authors']), statistics.median(cpu['ours'])
            print(f"{name:<12} {args.batch / ta:>9.1f}{'' if qa else '*'} {args.batch / to:>9.1f}{'' if qo else '*'} "
                  f'{ta / to:>6.1f}x   {ca / co:>13.1f}x', flush=True)


def _cpu_timed(fn, seconds: list[float]):
    """``fn`` that also appends the CPU time of this process (all its threads) per call to ``seconds``: on a
    machine shared with other jobs the work a call costs, where wall time mostly measures the wait for a core."""
    def call():
        start = time.process_time()
        fn()
        seconds.append(time.process_time() - start)
    return call


if __name__ == '__main__':
    main()
