"""A PNG grid of one HR image through N sampled degradations of a pipeline, annotated with the parameters.

    python scripts/show_degradations.py --image photo.png --pipeline bicubic --scale 4 -n 8 --out grid.png
    python scripts/show_degradations.py --pipeline NAME --opt '{key: value}' ...   # pipeline options as YAML

Without ``--image`` scikit-image's astronaut is used. Each tile is an LR sample upscaled (nearest) to
the HR crop size; the parameters it drew are written on it (as many lines as fit; the whole record
goes to ``<out>.json``) and its blur kernel, if the pipeline records one, is drawn in the corner.
The first tile is the HR crop.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np
import torch

import blindsr  # noqa: F401
from blindsr.data.image_io import read_image, to_tensor, write_image
from blindsr.options import parse_yaml
from blindsr.registry import DEGRADATION_REGISTRY, build


_LINE = 13  # pixels per text line


def annotate(tile: np.ndarray, lines: list[str]) -> np.ndarray:
    """The float RGB tile as uint8 with ``lines`` written on it (white on a black outline)."""
    tile = np.ascontiguousarray((tile.clip(0, 1) * 255).round().astype(np.uint8))
    fit = (tile.shape[0] - 4) // _LINE
    if len(lines) > fit:
        lines = lines[:fit - 1] + ['...']
    for i, text in enumerate(lines):
        y = _LINE + _LINE * i
        cv2.putText(tile, text, (5, y), cv2.FONT_HERSHEY_SIMPLEX, 0.36, (0, 0, 0), 2, cv2.LINE_AA)
        cv2.putText(tile, text, (5, y), cv2.FONT_HERSHEY_SIMPLEX, 0.36, (255, 255, 255), 1, cv2.LINE_AA)
    return tile


def describe(params: dict, index: int) -> tuple[list[str], np.ndarray | None]:
    """Text lines for what sample ``index`` drew (steps it skipped, recorded as NaN, are left out) and
    the first blur kernel it records (a parameter named ``kernel``/``kernel1``), if any."""
    lines, kernel = [], None
    for name, value in params.items():
        value = value[index] if isinstance(value, torch.Tensor) and value.dim() > 0 else value
        if isinstance(value, torch.Tensor) and value.dim() == 2:
            if kernel is None and name in ('kernel', 'kernel1'):
                kernel = value.float().cpu().numpy()
        elif isinstance(value, torch.Tensor) and value.numel() == 1:
            if not torch.isnan(value.float()):
                lines.append(f'{name} {float(value):.3g}')
        elif isinstance(value, torch.Tensor) and value.dim() == 1:
            lines.append(f"{name} {' '.join(f'{float(v):g}' for v in value)}")
        elif isinstance(value, (int, float, str)):
            lines.append(f'{name} {value}')
    return lines, kernel


def records(params: dict, n: int) -> list[dict]:
    """Per-sample parameters as JSON-ready dicts (NaN = step not drawn -> None)."""
    def plain(v):
        v = v.tolist() if isinstance(v, torch.Tensor) else v
        return None if isinstance(v, float) and v != v else [plain(x) for x in v] if isinstance(v, list) else v
    return [{k: plain(v[i]) for k, v in params.items() if isinstance(v, torch.Tensor) and v.dim() > 0}
            for i in range(n)]


def grid(hr: torch.Tensor, pipeline, n: int, seed: int, columns: int = 4) -> np.ndarray:
    size = hr.shape[-1]
    tiles = [annotate(hr[0].permute(1, 2, 0).numpy(), ['HR'])]
    generator = torch.Generator().manual_seed(seed)
    lr, params = pipeline(hr.repeat(n, 1, 1, 1), generator)
    params.pop('gt', None)
    for i in range(n):
        tile = lr[i].clamp(0, 1).permute(1, 2, 0).numpy()
        tile = cv2.resize(tile, (size, size), interpolation=cv2.INTER_NEAREST)
        lines, kernel = describe(params, i)
        if kernel is not None:
            k = cv2.resize(kernel / max(kernel.max(), 1e-12), (size // 4, size // 4), interpolation=cv2.INTER_NEAREST)
            tile[-k.shape[0]:, -k.shape[1]:] = k[..., None]
        tiles.append(annotate(tile, [f'#{i}', *lines]))
    while len(tiles) % columns:
        tiles.append(np.full_like(tiles[0], 255))
    rows = [np.concatenate(tiles[r:r + columns], axis=1) for r in range(0, len(tiles), columns)]
    return np.concatenate(rows, axis=0), records(params, n)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--image', help='HR image (default: scikit-image astronaut)')
    parser.add_argument('--pipeline', default='bicubic', help='name in the degradation registry')
    parser.add_argument('--opt', default='{}', help='pipeline options as a YAML mapping')
    parser.add_argument('--scale', type=int, default=4)
    parser.add_argument('-n', type=int, default=7, help='number of sampled degradations')
    parser.add_argument('--crop', type=int, default=256, help='HR crop size (centre crop)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--out', default='degradations.png')
    args = parser.parse_args(argv)

    if args.image:
        img = read_image(args.image)
    else:
        import skimage.data

        img = skimage.data.astronaut().astype(np.float32) / 255
    crop = min(args.crop, *img.shape[:2]) // args.scale * args.scale
    top, left = (img.shape[0] - crop) // 2, (img.shape[1] - crop) // 2
    hr = to_tensor(img[top:top + crop, left:left + crop])[None]
    pipeline = build(DEGRADATION_REGISTRY, {'type': args.pipeline, **parse_yaml(args.opt)}, scale=args.scale)
    image, drawn = grid(hr, pipeline, args.n, args.seed)
    write_image(Path(args.out), image.astype(np.float32) / 255)
    Path(args.out + '.json').write_text(json.dumps(drawn, indent=1))
    print(f'wrote {args.out} and {args.out}.json')


if __name__ == '__main__':
    from blindsr import cli

    cli.run(main)
