"""Upscale a user's images: ``python -m blindsr.infer -i IN -o OUT --weights FILE`` (or ``--model NAME``).

IN is an image file or a folder of them (PNG, JPEG, WebP, TIFF, BMP); each result is written to OUT under
the same name and format. The network comes from a weights file in any layout blindsr reads, its arch and
arguments detected from its keys and shapes (:mod:`blindsr.detect`), or from a zoo entry
(:mod:`blindsr.zoo`) whose file is given with ``--weights`` or found in ``$BLINDSR_WEIGHTS``; nothing is
downloaded. ``--tile`` bounds memory (:func:`blindsr.tiling.upscale`: methods with a global degradation
estimate embed the whole image once and share it across tiles). A zoo entry with a per-image adapter
(``--model darsr_srfbn_s_x4``: DARSR around SRFBN-S) adapts to each whole image first (the ``darsr:``
options, the published settings unless ``--darsr KEY=VALUE`` changes them, e.g. ``--darsr iters=60``), then
its SR step is tiled; it runs in fp32.

Pixels keep their kind: 16-bit images are written 16-bit, gray images gray, and an alpha channel is
upscaled separately by the same network, as a gray image (a constant alpha stays constant). One image
that fails (unreadable, too large for the device ...) is reported and the others go on; the exit code is
3 when any failed (2 for a bad option or weights file). With ``--dtype fp16/bf16`` an image whose output
is not finite (the arch overflows in that type) or whose ops the device lacks in that type is redone in
fp32, with a warning, and the remaining images run in fp32.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from blindsr import dist
from blindsr.checkpoint import load_pretrained
from blindsr.data.image_io import IMAGE_EXTENSIONS, list_images, read_raw, to_rgb_float, to_tensor, write_raw
from blindsr.detect import build, detect
from blindsr.evaluation import ImagesFailed
from blindsr.models.darsr_model import OPTIONS as DARSR_OPTIONS
from blindsr.models.darsr_model import DARSRAdapter
from blindsr.options import parse_yaml
from blindsr.registry import ARCH_REGISTRY
from blindsr.schema import Context
from blindsr.tiling import upscale
from blindsr.zoo import get, local_weights

DTYPES = {'fp32': torch.float32, 'fp16': torch.float16, 'bf16': torch.bfloat16}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog='python -m blindsr.infer', description=__doc__.split('\n\n')[0])
    p.add_argument('-i', '--input', required=True, type=Path, help='an image file or a folder of images')
    p.add_argument('-o', '--output', required=True, type=Path,
                   help='output folder (or, for one input file, an output file name with an image suffix)')
    p.add_argument('--weights', type=Path, help='weights file; its arch and arguments are detected unless --model')
    p.add_argument('--model', help='a zoo name (python -m blindsr.zoo); the file comes from --weights or '
                                   '$BLINDSR_WEIGHTS')
    p.add_argument('--scale', type=int, help='the expected scale (checked against the network)')
    p.add_argument('--tile', type=int, help='tile size in input pixels (default: the whole image at once)')
    p.add_argument('--tile-overlap', type=int, default=32, help='context pixels around each tile (default 32)')
    p.add_argument('--dtype', choices=DTYPES, default='fp32')
    p.add_argument('--device', default='auto', help="'auto' (CUDA when available), 'cpu', 'cuda' or 'cuda:N'")
    p.add_argument('--darsr', action='append', default=[], metavar='KEY=VALUE',
                   help="a DARSR model's darsr: option (repeatable), e.g. iters=60 dsem_iters=50 crop_size=48 for a "
                        'short CPU run, filters=kernel_72_k5.pkl for the authors\' dictionary')
    args = p.parse_args(argv)
    if not args.weights and not args.model:
        p.error('give --weights FILE (any blindsr, BasicSR or authors\' file: the arch is detected) '
                'or --model NAME (python -m blindsr.zoo lists them)')
    if args.tile is not None and args.tile <= 2 * args.tile_overlap:
        p.error(f'--tile ({args.tile}) must exceed twice --tile-overlap ({args.tile_overlap})')
    return args


def load_network(weights: Path | None, model: str | None, darsr: Sequence[str] = ()) -> tuple[nn.Module, int, str]:
    """The network in eval mode on the CPU (wrapped in its zoo entry's per-image adapter, if any), its scale
    and a line describing it. ``darsr``: ``KEY=VALUE`` overrides of a DARSR entry's ``darsr:`` options."""
    adapter = None
    if model:
        entry = get(model)
        weights = weights or local_weights(model)
        net = ARCH_REGISTRY.get(entry.arch)(**entry.args)
        loaded = load_pretrained(net, weights)
        arch, args, scale, source = entry.arch, dict(entry.args), entry.scale, f'{model}: {loaded.source}'
        adapter = entry.adapter
    else:
        found = detect(weights)
        net = build(found)
        arch, args, scale, source = found.arch, found.args, found.scale, found.layout
    if arch == 'KDSRTeacher':
        raise ValueError(f'{weights} holds a KDSR teacher, which needs the HR image to estimate the degradation: '
                         'it evaluates, it does not upscale. Use a KDSR student (its E_st estimator sees LR only).')
    what = f'{arch} x{scale} {args} from {source}'
    if darsr and adapter != 'DARSR':
        raise ValueError(f'--darsr sets the options of a DARSR model (--model darsr_srfbn_s_x2/x4), not of {what}')
    if adapter == 'DARSR':
        opt = darsr_options(darsr)
        net = DARSRAdapter(net, scale, opt, log=lambda line: print(f'    {line}', file=sys.stderr))
        what = (f"DARSR ({opt['dsem_iters']} DSEM + {opt['iters']} joint iterations on {opt['crop_size']}-px crops "
                f"per image, filters {opt['filters']}) around {what}")
    return net.eval(), scale, what


def darsr_options(items: Sequence[str]) -> dict:
    """The ``darsr:`` section (published defaults) with ``KEY=VALUE`` items applied, values read as YAML."""
    given = {}
    for item in items:
        key, sep, value = item.partition('=')
        if not sep:
            raise ValueError(f'--darsr expects KEY=VALUE, got {item!r}')
        given[key.strip()] = parse_yaml(value)
    return DARSR_OPTIONS.resolve(given, 'darsr', Context('--darsr', is_train=False))


def inputs_and_outputs(src: Path, dst: Path) -> list[tuple[Path, Path]]:
    """(input, output) pairs: a folder's images to the same names in ``dst``; one file to ``dst`` itself when
    that has an image suffix, else into the folder ``dst``."""
    if src.is_dir():
        pairs = [(p, dst / p.name) for p in list_images(src)]
    elif src.is_file():
        pairs = [(src, dst if dst.suffix.lower() in IMAGE_EXTENSIONS else dst / src.name)]
    else:
        raise FileNotFoundError(f'Input {src} does not exist.')
    for p, out in pairs:
        if out.resolve() == p.resolve():
            raise ValueError(f'Output {out} would overwrite its input; choose another output folder.')
    return pairs


class Upscaler:
    """The network on its device in the asked dtype, falling back to fp32 for good when that fails."""

    def __init__(self, net: nn.Module, scale: int, device: torch.device, dtype: torch.dtype,
                 tile: int | None, overlap: int) -> None:
        self.scale, self.device, self.tile, self.overlap, self.dtype = scale, device, tile, overlap, dtype
        # a reduced-precision copy on the device; the fp32 weights wait on the CPU for the fallback (a round
        # trip through fp16 would lose precision)
        self.low = None if dtype == torch.float32 else copy.deepcopy(net).to(device=device, dtype=dtype)
        self.net = net.to(device) if self.low is None else net
        self.tiles = 0

    def __call__(self, img: np.ndarray, name: str) -> np.ndarray:
        """HWC RGB float32 in [0, 1] -> the upscaled HWC float32 image (unclamped)."""
        lq = to_tensor(img)[None]
        if self.low is not None:
            try:
                out = self._run(self.low, lq.to(self.device, self.dtype))
                if torch.isfinite(out).all():
                    return _hwc(out)
                why = 'gave values it cannot represent (inf/NaN: this arch overflows in it)'
            except torch.OutOfMemoryError:
                raise
            except RuntimeError as err:  # an op without a kernel for this dtype on this device
                why = f'failed ({str(err).splitlines()[0]})'
            print(f'warning: {name}: {str(self.dtype).removeprefix("torch.")} {why}; redoing it in fp32, and the '
                  'remaining images too.', file=sys.stderr)
            self.low, self.dtype, self.net = None, torch.float32, self.net.to(self.device)
        return _hwc(self._run(self.net, lq.to(self.device)))

    def _run(self, net: nn.Module, lq: torch.Tensor) -> torch.Tensor:
        self.tiles = 0
        return upscale(net, lq, self.scale, tile=self.tile, overlap=self.overlap, progress=self._progress)

    def _progress(self, done: int, total: int) -> None:
        self.tiles = total
        if total > 1 and sys.stderr.isatty():
            print(f'\r    tile {done}/{total}', end='' if done < total else '\r', file=sys.stderr, flush=True)


def _hwc(t: torch.Tensor) -> np.ndarray:
    return t[0].float().cpu().numpy().transpose(1, 2, 0)


def upscale_pixels(raw: np.ndarray, run: Upscaler, name: str) -> np.ndarray:
    """Decoded pixels (OpenCV layout) -> upscaled pixels of the same kind: bit depth, gray or colour, alpha."""
    rgb = to_rgb_float(raw, name)  # checks the type (8/16-bit) and channels; gray replicated, alpha dropped
    maxval = float(np.iinfo(raw.dtype).max)
    channels = 1 if raw.ndim == 2 else raw.shape[2]
    sr = run(rgb, name)
    colour = sr.mean(axis=2, keepdims=True) if channels in (1, 2) else sr[..., ::-1]  # gray, or RGB -> BGR
    if channels in (2, 4):
        alpha = raw[..., -1]
        if (alpha == alpha.flat[0]).all():
            up = np.full(sr.shape[:2] + (1,), alpha.flat[0] / maxval, np.float32)
        else:
            up = run(to_rgb_float(alpha, f'{name} (alpha)'), f'{name} (alpha)').mean(axis=2, keepdims=True)
        if channels == 2:  # OpenCV writes no gray+alpha: written as BGRA
            colour = np.repeat(colour, 3, axis=2)
        colour = np.concatenate([colour, up], axis=2)
    pixels = np.clip(np.rint(colour * maxval), 0, maxval).astype(raw.dtype)
    return pixels[..., 0] if pixels.shape[2] == 1 else pixels


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    pairs = inputs_and_outputs(args.input, args.output)
    net, scale, what = load_network(args.weights, args.model, args.darsr)
    if isinstance(net, DARSRAdapter) and args.dtype != 'fp32':
        raise ValueError(f'--dtype {args.dtype}: DARSR trains on each image, in fp32 only (use --dtype fp32).')
    if args.scale is not None and args.scale != scale:
        raise ValueError(f'--scale {args.scale} asked, but the network is x{scale} ({what}).')
    device = dist.pick_device(args.device)
    if device.type == 'cpu' and args.dtype == 'fp16':
        print('warning: fp16 on the CPU has no fast kernels in torch (tens of times slower than fp32); bf16 or '
              'fp32 are the CPU choices.', file=sys.stderr)
    run = Upscaler(net, scale, device, DTYPES[args.dtype], args.tile, args.tile_overlap)
    print(f'{what}\non {device}, {args.dtype}, ' + (f'tiles of {args.tile} px, overlap {args.tile_overlap}'
                                                    if args.tile else 'untiled'), file=sys.stderr)
    failures = []
    for i, (src, dst) in enumerate(pairs, 1):
        start = time.perf_counter()
        try:
            raw = read_raw(src)
            out = upscale_pixels(raw, run, src.name)
            write_raw(dst, out)
        except Exception as err:  # noqa: BLE001  (one image's failure never stops the others)
            reason = str(err) if isinstance(err, ValueError) else f'{type(err).__name__}: {err}'
            reason += ' (try --tile 512)' if 'out of memory' in reason else ''
            failures.append(f'{src}: {reason}')
            print(f'[{i}/{len(pairs)}] {src.name}: FAILED: {reason}', file=sys.stderr)
            continue
        tiles = f', {run.tiles} tiles' if run.tiles > 1 else ''
        print(f'[{i}/{len(pairs)}] {src.name}: {raw.shape[1]}x{raw.shape[0]} -> {out.shape[1]}x{out.shape[0]} '
              f'{out.dtype}{tiles}, {time.perf_counter() - start:.2f} s -> {dst}', file=sys.stderr)
    if failures:
        raise ImagesFailed(f'{len(failures)} of {len(pairs)} images failed:\n  ' + '\n  '.join(failures), {})
    print(f'{len(pairs)} images written to {args.output}', file=sys.stderr)


if __name__ == '__main__':
    from blindsr.cli import run

    run(main)
