"""The benchmark's report folder: ``benchmark.md``, ``benchmark.csv``, ``plots/``, ``crops/`` and a static
``index.html`` that shows them with relative links only (open the file in a browser; no server, nothing
fetched). Each crop comparison has a before/after slider per method (LR on the left of the handle, the
method's SR on the right) and the side-by-side figure. When the page has loaded, each image is marked
``data-loaded="yes"`` or ``"no"`` and the page says how many failed to load."""

from __future__ import annotations

import os
from html import escape
from pathlib import Path

from blindsr.report.plots import plot_psnr_vs_noise, plot_psnr_vs_width, write_crops
from blindsr.report.tables import groups, table_grid, title, write_csv, write_markdown

STYLE = """
body { font-family: sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin-bottom: 1.5em; }
th, td { border: 1px solid #bbb; padding: 0.25em 0.6em; text-align: right; white-space: nowrap; }
th:first-child, td:first-child { text-align: left; }
.plots img { max-width: 100%; margin: 0.5em 0; }
.sliders { display: flex; flex-wrap: wrap; gap: 1em; }
.slider { position: relative; display: inline-block; }
.slider img, img.hr { display: block; width: 288px; image-rendering: pixelated; }
.slider img.after { position: absolute; top: 0; left: 0; clip-path: inset(0 0 0 var(--pos, 50%)); }
.slider input { width: 100%; }
figure { margin: 0; }
figcaption { font-size: 0.85em; }
#image-status:empty { display: none; }
#image-status { color: #b00; font-weight: bold; }
"""

SCRIPT = """
document.querySelectorAll('.slider input').forEach(function (input) {
  input.addEventListener('input', function () {
    input.parentElement.style.setProperty('--pos', input.value + '%');
  });
});
window.addEventListener('load', function () {
  var images = Array.prototype.slice.call(document.images), failed = 0;
  images.forEach(function (img) {
    var ok = img.complete && img.naturalWidth > 0;
    img.dataset.loaded = ok ? 'yes' : 'no';
    if (!ok) { failed += 1; }
  });
  document.getElementById('image-status').textContent =
    failed ? failed + ' of ' + images.length + ' images did not load' : '';
  document.body.dataset.imagesChecked = String(images.length);
});
"""


def _html_table(header: list[str], body: list[list[str]]) -> str:
    head = ''.join(f'<th>{escape(h)}</th>' for h in header)
    rows = ''.join('<tr>' + ''.join(f'<td>{escape(c)}</td>' for c in row) + '</tr>' for row in body)
    return f'<table class="results"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>'


def _img(path: Path, root: Path, alt: str, cls: str = '') -> str:
    src = escape(Path(os.path.relpath(path, root)).as_posix())
    return f'<img src="{src}" alt="{escape(alt)}"' + (f' class="{cls}"' if cls else '') + '>'


def write_page(rows: list[dict], out_dir: Path, plots: list[Path], comparisons: list[dict]) -> Path:
    """``<out_dir>/index.html``: the tables, the plots and the crop comparisons."""
    out_dir = Path(out_dir)
    parts = ['<h1>Benchmark</h1>', '<p id="image-status"></p>',
             '<p>Tables as <a href="benchmark.md">markdown</a> and <a href="benchmark.csv">CSV</a>.</p>',
             '<h2>Results</h2>']
    for key, group in groups(rows).items():
        parts += [f'<h3>{escape(title(key, group))}</h3>', _html_table(*table_grid(group))]
    if plots:
        parts += ['<h2>Plots</h2>', '<div class="plots">'] + [
            f'<p>{_img(p, out_dir, p.stem)}</p>' for p in plots] + ['</div>']
    if comparisons:
        parts.append('<h2>Before / after</h2>')
    for comparison in comparisons:
        parts += [f'<h3>{escape(comparison["title"])}</h3>', '<div class="sliders">']
        for label, sr in comparison['methods'].items():
            parts.append(f'<figure><div class="slider">{_img(comparison["lr"], out_dir, "LR", "before")}'
                         f'{_img(sr, out_dir, label, "after")}<input type="range" min="0" max="100" value="50" '
                         f'aria-label="{escape(label)}: LR left, SR right"></div>'
                         f'<figcaption>LR | {escape(label)}</figcaption></figure>')
        hr = _img(comparison['hr'], out_dir, 'HR', 'hr')
        parts += [f'<figure>{hr}<figcaption>HR</figcaption></figure>', '</div>',
                  f'<p>{_img(comparison["figure"], out_dir, comparison["title"])}</p>']
    page = ('<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>blindsr benchmark</title>'
            f'<style>{STYLE}</style></head>\n<body>\n' + '\n'.join(parts) + f'\n<script>{SCRIPT}</script>\n'
            '</body></html>\n')
    path = out_dir / 'index.html'
    path.write_text(page)
    return path


def write_report(rows: list[dict], out_dir: Path, crop_size: int = 96) -> dict[str, Path | list[Path]]:
    """The whole report folder (see the module docstring); returns what was written."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    plots = plot_psnr_vs_width(rows, out_dir / 'plots') + plot_psnr_vs_noise(rows, out_dir / 'plots')
    comparisons = write_crops(rows, out_dir / 'crops', crop_size)
    return {'markdown': write_markdown(rows, out_dir / 'benchmark.md'),
            'csv': write_csv(rows, out_dir / 'benchmark.csv'), 'plots': plots, 'crops': [c['figure'] for c in comparisons],
            'html': write_page(rows, out_dir, plots, comparisons)}
