"""Test entry point: ``python -m blindsr.test -opt options/test/x.yml [--set k=v ...]``.

Loads ``path.pretrain_network_g`` (any layout :func:`blindsr.load_pretrained` understands), runs
every dataset under ``datasets:`` and writes, per dataset, the SR images and a results table
(``results.md`` and ``results.json``: per-image and mean metrics plus timing) into
``path.results_root`` (default ``results/<name>``), made once the model and datasets are built (an
earlier test's folder is first archived as ``<folder>_archived_<time>``). Datasets without ground
truth (real LR images) give SR images, timing and the no-reference metrics (NIQE).
``val.bicubic_baseline`` adds every metric of bicubic upsampling; ``val.save_comparison`` writes
LR | SR (| HR) images beside the SR images. A ``TestSetFolder`` entry stands for the settings of its
test-set folder that its ``setting`` names (all without one; a name; or a pattern, e.g. ``noise0_*``),
as datasets ``<name>_<setting>``, and ``summary.md`` /
``summary.json`` then tabulate the means as the papers do, cells PSNR / SSIM. ``val.summary_columns``
chooses the layout: ``settings`` (default; a table per set, row: scale, a column per setting and their
mean, as DASR's and KDSR's tables) or ``sets`` (one table, CDSR's Table 2: a row per scale and noise
level, a column per set, each cell the mean over that noise level's settings, e.g. the nine ``manet9``
kernels).
Works under torchrun too (each rank takes a shard).

An image that fails (unreadable, too small for the scale or for a metric, ...) does not stop the run:
the others are evaluated and written, the failures are listed (file, size, reason) in the log and below
the table, and the run ends with :class:`~blindsr.evaluation.ImagesFailed` ("N of M images failed";
exit code 3 from the command line, see :mod:`blindsr.cli`).
"""

from __future__ import annotations

import argparse
import fnmatch
import json
from pathlib import Path

import numpy as np

import blindsr  # noqa: F401  (registers everything)
from blindsr import dist
from blindsr.data.loader import build_dataloader
from blindsr.data.paired_dataset import setting_noise, settings_of
from blindsr.evaluation import ImagesFailed, evaluate, results_markdown
from blindsr.folders import start_output_folder
from blindsr.logging_utils import attach_log_file, setup_logger
from blindsr.options import OptionsError, dump_options, load_options
from blindsr.registry import ARCH_REGISTRY, DATASET_REGISTRY, MODEL_REGISTRY, build, lookup
from blindsr.seeding import seed_everything


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog='python -m blindsr.test', description=__doc__.splitlines()[0])
    parser.add_argument('-opt', '--opt', required=True, help='path to the YAML option file')
    parser.add_argument('--set', action='append', default=[], metavar='KEY.PATH=VALUE',
                        help='override any option (value parsed as YAML); repeatable')
    return parser.parse_args(argv)


def main_network(opt: dict) -> str:
    """``x`` of the network a test of ``opt`` loads and scores (``network_x``, ``path.pretrain_network_x``):
    the model class's ``main_network``, 'g' for most models, DARSR's 'sr'."""
    return lookup(MODEL_REGISTRY, opt['model_type']).main_network


def main_network_parameters(opt: dict) -> int:
    """Parameters of the network :func:`main_network` names (built from ``opt``, without weights)."""
    return sum(p.numel() for p in build(ARCH_REGISTRY, opt[f'network_{main_network(opt)}']).parameters())


def run_tests(opt: dict, dist_info: dist.DistInfo, device) -> dict[str, dict]:
    """Evaluate every dataset; return ``{dataset name: result}`` (see :func:`blindsr.evaluation.evaluate`)."""
    weights = f'pretrain_network_{main_network(opt)}'
    if not opt['path'].get(weights):
        raise OptionsError(f'path.{weights} is required for testing (a checkpoint or weights file).')
    if not opt.get('datasets'):
        raise OptionsError('datasets: none given; a test run needs at least one dataset to test on.')
    logger = setup_logger(None, dist_info.is_main)  # lines are held until the results folder exists
    seed_everything(opt['manual_seed'], dist_info.rank)
    expanded = expand_testsets(opt['datasets'].values())
    no_noise = [ds['summary'] for ds in expanded if 'summary' in ds and ds['summary']['noise'] is None]
    if opt['val']['summary_columns'] == 'sets' and no_noise:
        raise OptionsError(f"val.summary_columns 'sets' groups settings by noise level, and setting "
                           f"{no_noise[0]['setting']!r} of {no_noise[0]['root']} records none (use 'settings').")
    model = lookup(MODEL_REGISTRY, opt['model_type'])(opt, device, dist_info)
    testsets = [(ds_opt, lookup(DATASET_REGISTRY, ds_opt['type'])(ds_opt)) for ds_opt in expanded]
    results_root = start_output_folder(Path(opt['path']['results_root']), dist_info.is_main)
    attach_log_file(results_root / f"test_{opt['name']}.log")
    if dist_info.is_main:
        (results_root / 'options.yml').write_text(dump_options(opt, 'resolved test options'))
    val_opt = opt['val']
    out, summary = {}, []
    for ds_opt, dataset in testsets:
        name = ds_opt['name']
        loader = build_dataloader(dataset, ds_opt, 'test', opt['manual_seed'], dist_info.rank, dist_info.world_size,
                                  device)
        folder = results_root / name
        logger.info(f'Testing {name}: {len(dataset)} images -> {folder}')
        result = evaluate(model, loader, val_opt['metrics'], folder if val_opt['save_img'] else None,
                          progress=dist_info.is_main, bicubic_baseline=val_opt['bicubic_baseline'],
                          save_comparison=val_opt['save_comparison'])
        out[name] = result
        if dist_info.is_main:
            title = f"{opt['name']} on {name}"
            if model.results_label:  # how the outputs were chosen (DARSR's selection), in every table
                result['label'] = model.results_label
                title += f' ({model.results_label})'
            table = results_markdown(title, result)
            (folder).mkdir(parents=True, exist_ok=True)
            (folder / 'results.md').write_text(table)
            (folder / 'results.json').write_text(json.dumps(result, indent=2))
            logger.info('\n' + table)
        if 'summary' in ds_opt:
            summary.append({**ds_opt['summary'], 'mean': result['mean']})
    if summary and dist_info.is_main:
        table = (summary_by_set if val_opt['summary_columns'] == 'sets' else summary_by_setting)(summary, opt['scale'])
        text = summary_markdown(table, 'scale / noise' if val_opt['summary_columns'] == 'sets' else 'scale')
        (results_root / 'summary.md').write_text(text)
        (results_root / 'summary.json').write_text(json.dumps(table, indent=2))
        logger.info('\n' + text)
    failed = sum(len(r['failures']) for r in out.values())
    if failed:
        total = failed + sum(len(r['images']) for r in out.values())
        message = (f'{failed} of {total} images failed (listed in the results.md of '
                   f"{', '.join(n for n, r in out.items() if r['failures'])} under {results_root}); "
                   'the means are over the others')
        if dist_info.is_main:
            logger.error(message)
        raise ImagesFailed(message, out)  # on every rank: each exits 3 (see blindsr.cli)
    return out


def expand_testsets(datasets) -> list[dict]:
    """Every ``TestSetFolder`` becomes one dataset ``<name>_<setting>`` per setting of its folder that its
    ``setting`` names (absent: all; a name, or a pattern such as ``noise0_*``), each in the summary."""
    out = []
    for ds in datasets:
        if ds['type'] != 'TestSetFolder':
            out.append(ds)
            continue
        available = settings_of(ds['dataroot'], int(ds['scale']))
        chosen = [s for s in available if fnmatch.fnmatchcase(s, ds.get('setting') or '*')]
        if not chosen:
            raise ValueError(f"{ds['dataroot']}: no setting matches {ds['setting']!r}; it holds {', '.join(available)}")
        out += [{**ds, 'setting': s, 'name': f"{ds['name']}_{s}",
                 'summary': {'set': ds['name'], 'setting': s, 'noise': setting_noise(ds['dataroot'], s),
                             'root': ds['dataroot']}}
                for s in chosen]
    return out


def _mean(means: list[dict]) -> dict:
    """The mean of per-setting PSNR / SSIM means (the metrics every one of them has)."""
    return {key: float(np.mean([m[key] for m in means])) for key in ('psnr', 'ssim') if all(key in m for m in means)}


def summary_by_setting(entries: list[dict], scale: int) -> dict[str, dict[str, dict[str, dict]]]:
    """``{set: {'x<scale>': {setting: means, ..., 'mean': their mean}}}`` (the mean with several settings,
    what KDSR's Table 1 reports for Gaussian8)."""
    table: dict[str, dict[str, dict[str, dict]]] = {}
    for entry in entries:
        table.setdefault(entry['set'], {}).setdefault(f'x{scale}', {})[entry['setting']] = entry['mean']
    for rows in table.values():
        for columns in rows.values():
            if len(columns) > 1:
                columns['mean'] = _mean(list(columns.values()))
    return table


def summary_by_set(entries: list[dict], scale: int) -> dict[str, dict[str, dict[str, dict]]]:
    """CDSR's Table 2: ``{'Table 2': {'x<scale> noise <n>': {set: mean over that noise level's settings}}}``."""
    groups: dict[str, dict[str, list[dict]]] = {}
    for entry in sorted(entries, key=lambda e: e['noise']):
        row = f"x{scale} noise {entry['noise']:g}"
        groups.setdefault(row, {}).setdefault(entry['set'], []).append(entry['mean'])
    return {'Table 2': {row: {name: _mean(means) for name, means in sets.items()} for row, sets in groups.items()}}


def summary_markdown(table: dict[str, dict[str, dict[str, dict]]], corner: str) -> str:
    """Markdown of a summary (:func:`summary_by_setting` / :func:`summary_by_set`; ``corner``: the rows'
    heading): PSNR / SSIM cells."""
    parts = []
    for name, rows in table.items():
        header = list(dict.fromkeys(column for cells in rows.values() for column in cells))
        lines = [f"| {row} | " + ' | '.join(_cell(cells.get(column, {})) for column in header) + ' |'
                 for row, cells in rows.items()]
        parts += [f'## {name} (PSNR / SSIM)', '', f'| {corner} | ' + ' | '.join(header) + ' |',
                  '|---' * (len(header) + 1) + '|', *lines, '']
    return '\n'.join(parts)


def _cell(m: dict) -> str:
    return f"{m['psnr']:.2f} / {m['ssim']:.4f}" if 'ssim' in m else f"{m.get('psnr', float('nan')):.2f}"


def main(argv: list[str] | None = None) -> dict[str, dict]:
    args = parse_args(argv)
    opt = load_options(args.opt, args.set, is_train=False)
    dist_info, device = dist.init_dist(opt['device'], opt['dist']['backend'], opt['dist']['timeout_minutes'])
    try:
        return run_tests(opt, dist_info, device)
    finally:
        dist.destroy()


if __name__ == '__main__':
    from blindsr import cli

    cli.run(main)
