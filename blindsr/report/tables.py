"""The benchmark's tables: ``benchmark.csv`` (one row per method, scale, set, protocol and setting, every
field) and ``benchmark.md`` (one table per scale, set and protocol: a row per method, a column per setting
with PSNR / SSIM (/ LPIPS), or NIQE for LR-only sets, and the authors' reported numbers in brackets
where known; then parameters, ms per image (mean over the settings) and device)."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from pathlib import Path

# the CSV's columns, in order (reported_* columns follow where any row has them)
CSV_FIELDS = ('method', 'scale', 'set', 'protocol', 'setting', 'psnr', 'ssim', 'lpips', 'niqe', 'params',
              'ms_per_image', 'device', 'images', 'failures', 'sigma_x', 'sigma_y', 'noise')


def groups(rows: list[dict]) -> dict[tuple[int, str, str], list[dict]]:
    """Rows by (scale, set, protocol), in first-seen order."""
    out: dict[tuple[int, str, str], list[dict]] = {}
    for row in rows:
        out.setdefault((row['scale'], row['set'], row['protocol']), []).append(row)
    return out


def ordered(values: Iterable[str]) -> list[str]:
    """Unique values in first-seen order."""
    return list(dict.fromkeys(values))


def slug(*parts: object) -> str:
    """A file-name-safe join of ``parts``."""
    return re.sub(r'[^A-Za-z0-9._-]+', '-', '_'.join(map(str, parts)))


def natural(text: str) -> list:
    """Sort key reading digit runs as numbers (``n5`` before ``n10``); ``mean`` comes last."""
    return [(text == 'mean',)] + [(0, float(t), '') if t[:1].isdigit() else (1, 0.0, t)
                                  for t in re.findall(r'\d+(?:\.\d+)?|\D+', text)]


def numbers(row: dict, prefix: str = '') -> str:
    """PSNR / SSIM / LPIPS (those present, with ``prefix``) of one row."""
    return ' / '.join(f'{row[prefix + k]:.{d}f}' for k, d in (('psnr', 2), ('ssim', 4), ('lpips', 4))
                      if row.get(prefix + k) is not None)


def cell(row: dict | None) -> str:
    """PSNR / SSIM (/ LPIPS) or NIQE of one row, the reported numbers (those known) in brackets; '–' for no
    row."""
    if row is None:
        return '–'
    if 'psnr' not in row:
        return f"NIQE {row['niqe']:.3f}" if 'niqe' in row else '–'
    text = numbers(row)
    reported = numbers(row, 'reported_')
    if reported:
        text += f' ({reported})'
    if row.get('failures'):
        text += f" [{row['failures']} failed]"
    return text


def table_grid(rows: list[dict]) -> tuple[list[str], list[list[str]]]:
    """Header and body of one (scale, set, protocol) table."""
    settings = sorted(ordered(r['setting'] for r in rows), key=natural)
    by = {(r['method'], r['setting']): r for r in rows}
    header = ['method', *settings, 'params', 'ms / image', 'device']
    body = []
    for method in ordered(r['method'] for r in rows):
        own = [r for r in rows if r['method'] == method]
        ms = [r['ms_per_image'] for r in own if r['ms_per_image'] is not None]
        body.append([method, *(cell(by.get((method, s))) for s in settings), f"{own[0]['params'] / 1e6:.3f} M" if own[0]['params'] else '–',
                     f'{sum(ms) / len(ms):.1f}' if ms else '–', own[0]['device']])
    return header, body


def title(key: tuple[int, str, str], rows: list[dict]) -> str:
    scale, testset, protocol = key
    what = 'NIQE (lower is better)' if 'psnr' not in rows[0] else (
        'PSNR / SSIM' + (' / LPIPS' if 'lpips' in rows[0] else '') + ' on Y')
    if any(k.startswith('reported_') for r in rows for k in r):
        what += " (authors' numbers in brackets)"
    return f'{testset}, {protocol}, x{scale}: {what}'


def write_markdown(rows: list[dict], path: Path) -> Path:
    lines = ['# Benchmark', '']
    for key, group in groups(rows).items():
        header, body = table_grid(group)
        lines += [f'## {title(key, group)}', '', '| ' + ' | '.join(header) + ' |', '|---' * len(header) + '|']
        lines += ['| ' + ' | '.join(r) + ' |' for r in body] + ['']
    Path(path).write_text('\n'.join(lines))
    return Path(path)


def write_csv(rows: list[dict], path: Path) -> Path:
    reported = ordered(k for r in rows for k in r if k.startswith('reported_'))
    with open(path, 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=[*CSV_FIELDS, *reported], extrasaction='ignore')
        writer.writeheader()
        writer.writerows(rows)
    return Path(path)
