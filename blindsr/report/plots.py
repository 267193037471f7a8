"""The benchmark's pictures (matplotlib, Agg backend, PNG): PSNR vs kernel width and PSNR vs noise level
(one figure per scale, a panel per set and protocol, a line per method), and crops of one image per set,
protocol and scale (HR | LR | each method), both as one figure and as separate crops for the HTML page."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt
import numpy as np

from blindsr.data.image_io import list_images, read_image, write_image
from blindsr.report.tables import groups, natural, ordered, slug


def _curves(rows: list[dict], x_of) -> dict[tuple[str, str], dict[str, list[tuple[float, float]]]]:
    """Per (set, protocol): per method, (x, mean PSNR over the settings with that x), sorted by x; only
    panels with at least two x values are kept."""
    panels: dict[tuple[str, str], dict[str, dict[float, list[float]]]] = {}
    for row in rows:
        x = x_of(row)
        if x is not None and 'psnr' in row:
            panels.setdefault((row['set'], row['protocol']), {}).setdefault(row['method'], {}).setdefault(
                x, []).append(row['psnr'])
    return {panel: {m: sorted((x, float(np.mean(v))) for x, v in xs.items()) for m, xs in methods.items()}
            for panel, methods in panels.items() if len({x for xs in methods.values() for x in xs}) > 1}


def _width(row: dict) -> float | None:
    """The kernel width of a noise-free isotropic setting (None otherwise)."""
    if 'sigma_x' in row and row['sigma_x'] == row.get('sigma_y') and not row.get('noise'):
        return float(row['sigma_x'])
    return None


def _noise(row: dict) -> float | None:
    return float(row['noise']) if 'noise' in row else None


def _plot(rows: list[dict], x_of, xlabel: str, name: str, out_dir: Path) -> list[Path]:
    written = []
    for scale in ordered(r['scale'] for r in rows):
        panels = _curves([r for r in rows if r['scale'] == scale], x_of)
        if not panels:
            continue
        fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.6), squeeze=False)
        for ax, ((testset, protocol), methods) in zip(axes[0], panels.items()):
            for method, points in methods.items():
                ax.plot(*zip(*points), marker='o', label=method)
            ax.set(title=f'{testset}, {protocol}, x{scale}', xlabel=xlabel, ylabel='PSNR (dB, Y)')
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
        fig.tight_layout()
        path = Path(out_dir) / f'{name}_x{scale}.png'
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    return written


def plot_psnr_vs_width(rows: list[dict], out_dir: Path) -> list[Path]:
    """``psnr_vs_width_x<scale>.png``: PSNR against the width of noise-free isotropic kernels."""
    return _plot(rows, _width, 'kernel width (sigma)', 'psnr_vs_width', out_dir)


def plot_psnr_vs_noise(rows: list[dict], out_dir: Path) -> list[Path]:
    """``psnr_vs_noise_x<scale>.png``: PSNR (mean over the kernels of each level) against the noise level."""
    return _plot(rows, _noise, 'noise level (8-bit units)', 'psnr_vs_noise', out_dir)


def _window(hr: np.ndarray, size: int, step: int) -> tuple[int, int]:
    """Top-left corner of the ``size`` window (on a grid of ``step``) with the most detail (pixel std)."""
    gray = hr.mean(axis=2)
    corners = [(t, l) for t in range(0, hr.shape[0] - size + 1, step) for l in range(0, hr.shape[1] - size + 1, step)]
    return max(corners, key=lambda c: gray[c[0]:c[0] + size, c[1]:c[1] + size].std())


def _image_psnr(results_dir: Path, image: str) -> float | None:
    record = json.loads((Path(results_dir) / 'results.json').read_text())
    return next((r.get('psnr') for r in record['images'] if r['name'] == image), None)


def write_crops(rows: list[dict], out_dir: Path, size: int = 96) -> list[dict]:
    """For each scale, set and protocol with HR: the middle setting's first image, cropped where it has most
    detail. Writes ``<out_dir>/<slug>/{hr,lr,<method>}.png`` (LR enlarged by pixel repetition) and the
    figure ``<out_dir>/<slug>.png``; returns ``[{'title', 'figure', 'hr', 'lr', 'methods': {name: png}}]``."""
    out_dir = Path(out_dir)
    comparisons = []
    for (scale, testset, protocol), group in groups(rows).items():
        if 'psnr' not in group[0]:
            continue
        settings = sorted(ordered(r['setting'] for r in group if r['results_dir']), key=natural)
        setting = settings[len(settings) // 2]
        folder = Path(group[0]['testset_dir'])
        hr_file = list_images(folder / 'HR')[0]
        hr = read_image(hr_file)
        crop = min(size, hr.shape[0], hr.shape[1]) // scale * scale
        top, left = _window(hr, crop, crop // 2 // scale * scale or scale)
        lr = read_image(folder / setting / hr_file.name)[top // scale:(top + crop) // scale,
                                                        left // scale:(left + crop) // scale]
        panels = [('HR', 'hr.png', hr[top:top + crop, left:left + crop]),
                  (f'LR ({setting})', 'lr.png', lr.repeat(scale, 0).repeat(scale, 1))]
        for row in (r for r in group if r['setting'] == setting and r['results_dir']):
            sr = read_image(Path(row['results_dir']) / hr_file.name)[top:top + crop, left:left + crop]
            psnr = _image_psnr(row['results_dir'], hr_file.stem)
            panels.append((row['method'] + (f' {psnr:.2f} dB' if psnr is not None else ''),
                           f"{slug(row['method'])}.png", sr))
        name = slug(testset, protocol, f'x{scale}', setting, hr_file.stem)
        for _, file, img in panels:
            write_image(out_dir / name / file, img)
        fig, axes = plt.subplots(1, len(panels), figsize=(2.4 * len(panels), 2.8), squeeze=False)
        for ax, (label, _, img) in zip(axes[0], panels):
            ax.imshow(img, interpolation='nearest')
            ax.set_title(label, fontsize=8)
            ax.axis('off')
        what = f'{testset} {hr_file.stem}, {protocol} {setting}, x{scale}'
        fig.suptitle(what, fontsize=9)
        fig.tight_layout()
        fig.savefig(out_dir / f'{name}.png', dpi=100)
        plt.close(fig)
        comparisons.append({'title': what, 'figure': out_dir / f'{name}.png', 'hr': out_dir / name / 'hr.png',
                            'lr': out_dir / name / 'lr.png',
                            'methods': {label: out_dir / name / file for label, file, _ in panels[2:]}})
    return comparisons
