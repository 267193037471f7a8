"""Where the DASR encoder puts LR patches: a 2-D map of representations coloured by degradation.

    python scripts/plot_embeddings.py --weights experiments/dasr_x4_iso_stage1/models/net_g_final.pth \\
        --scale 4 --hr $BLINDSR_DATA/BSD100 --out embeddings.png [--sigmas 0.2 1.2 2.4 3.6] [--noise 0]

For each of K isotropic kernel widths (DASR's degradation: ``classic`` preset ``dasr``), LR patches of
``--patch`` pixels are cut from the degraded HR images and encoded; the pooled representations are
projected to 2-D with t-SNE when scikit-learn is installed, else PCA, and drawn as dots coloured by
width (the paper's clustering figure). Also printed: the share of patches whose nearest other patch in
representation space (cosine) has the same degradation, a number to watch rise during stage 1
(chance = 1/K). ``--weights`` is any file ``blindsr.load_pretrained`` reads (a blindsr run, the
authors' ``model_600.pt``); ``--net`` passes DASR constructor options as YAML.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

import blindsr  # noqa: F401
from blindsr.archs.dasr_arch import DASR
from blindsr.checkpoint import load_pretrained
from blindsr.data.image_io import list_images, read_image, to_tensor
from blindsr.degradations.classic import PRESETS, classic_kernels, degrade_classic
from blindsr.options import parse_yaml

COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
           (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]  # RGB


@torch.no_grad()
def representations(net: DASR, hr_images: list[torch.Tensor], scale: int, sigmas: list[float], noise: float,
                    patch: int, per_image: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, D) representations and (N,) degradation indices: ``per_image`` random patches per image and width."""
    generator = torch.Generator().manual_seed(seed)
    feats, labels = [], []
    for k, sigma in enumerate(sigmas):
        kernel = classic_kernels(PRESETS['dasr'], scale, sigma, sigma)
        for hr in hr_images:
            lr = degrade_classic(hr[None], kernel, noise, scale, PRESETS['dasr'], generator)[0]
            h, w = lr.shape[-2:]
            tops = torch.randint(0, h - patch + 1, (per_image,), generator=generator).tolist()
            lefts = torch.randint(0, w - patch + 1, (per_image,), generator=generator).tolist()
            crops = torch.stack([lr[:, t:t + patch, s:s + patch] for t, s in zip(tops, lefts)])
            feats.append(net(crops, sr=False)[0])
            labels += [k] * per_image
    return torch.cat(feats), torch.tensor(labels)


def nearest_neighbour_agreement(feats: torch.Tensor, labels: torch.Tensor) -> float:
    """Share of points whose nearest other point (cosine similarity) has the same label."""
    z = F.normalize(feats, dim=1)
    sim = z @ z.T
    sim.fill_diagonal_(-2)
    return float((labels[sim.argmax(1)] == labels).float().mean())


def project(feats: torch.Tensor, seed: int) -> tuple[np.ndarray, str]:
    try:
        from sklearn.manifold import TSNE
    except ImportError:
        centred = feats - feats.mean(0)
        _, _, v = torch.linalg.svd(centred, full_matrices=False)
        return (centred @ v[:2].T).numpy(), 'PCA'
    return TSNE(2, random_state=seed, init='pca').fit_transform(feats.numpy()), 't-SNE'


def draw(points: np.ndarray, labels: torch.Tensor, names: list[str], title: str, size: int = 640) -> np.ndarray:
    """A white RGB canvas with one dot per point and a legend."""
    canvas = np.full((size, size, 3), 255, np.uint8)
    lo, hi = points.min(0), points.max(0)
    xy = (points - lo) / np.maximum(hi - lo, 1e-12) * (size - 80) + 40
    for (x, y), k in zip(xy, labels.tolist()):
        cv2.circle(canvas, (int(x), int(size - y)), 4, COLOURS[k % len(COLOURS)], -1, cv2.LINE_AA)
    cv2.putText(canvas, title, (10, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
    for k, name in enumerate(names):
        y = 46 + 20 * k
        cv2.circle(canvas, (18, y - 5), 6, COLOURS[k % len(COLOURS)], -1, cv2.LINE_AA)
        cv2.putText(canvas, name, (30, y), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    return canvas


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--weights', required=True)
    parser.add_argument('--scale', type=int, default=4)
    parser.add_argument('--net', default='{}', help='DASR constructor options as YAML (default: published)')
    parser.add_argument('--hr', required=True, help='folder of HR images')
    parser.add_argument('--sigmas', type=float, nargs='+', default=[0.2, 1.2, 2.4, 3.6])
    parser.add_argument('--noise', type=float, default=0.0)
    parser.add_argument('--patch', type=int, default=48, help='LR patch size')
    parser.add_argument('--per-image', type=int, default=4)
    parser.add_argument('--images', type=int, default=30, help='at most this many HR images')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--out', default='embeddings.png')
    args = parser.parse_args(argv)

    net = DASR(args.scale, **parse_yaml(args.net)).eval()
    load_pretrained(net, args.weights)
    size = args.patch * args.scale
    hr_images = []
    for path in list_images(args.hr)[:args.images]:
        img = read_image(path)
        h, w = (d // args.scale * args.scale for d in img.shape[:2])
        if min(h, w) >= size:
            hr_images.append(to_tensor(img[:h, :w]))
    if not hr_images:
        raise ValueError(f'no image in {args.hr} is at least {size} px (--patch {args.patch} x scale {args.scale})')
    feats, labels = representations(net, hr_images, args.scale, args.sigmas, args.noise, args.patch,
                                     args.per_image, args.seed)
    agreement = nearest_neighbour_agreement(feats, labels)
    points, method = project(feats, args.seed)
    names = [f'sigma {s:g}' for s in args.sigmas]
    title = f'{method} of DASR representations; nearest-neighbour agreement {agreement:.2f} (chance {1 / len(names):.2f})'
    image = draw(points, labels, names, title)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(args.out, image[..., ::-1])
    print(f'{len(labels)} patches, {len(names)} degradations: nearest-neighbour agreement {agreement:.3f} '
          f'(chance {1 / len(names):.3f}); {method} map -> {args.out}')
    return agreement


if __name__ == '__main__':
    from blindsr import cli

    cli.run(main)
