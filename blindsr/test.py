"""Test entry point: ``python -m blindsr.test -opt options/test/x.yml [--set k=v ...]``.

Loads ``path.pretrain_network_g`` (any layout :func:`blindsr.load_pretrained` understands), runs
every dataset under ``datasets:`` and writes, per dataset, the SR images and a results table
(``results.md`` and ``results.json``: per-image and mean metrics plus timing) into
``path.results_root`` (default ``results/<name>``), made once the model and datasets are built (an
earlier test's folder is first archived as ``<folder>_archived_<time>``). Datasets without ground
truth (real LR images) give SR images, timing and the no-reference metrics (NIQE).
``val.bicubic_baseline`` adds every metric of bicubic upsampling; ``val.save_comparison`` writes
LR | SR (| HR) images beside the SR images. A ``TestSetFolder`` entry without ``setting`` stands for
every setting of its make_testsets folder (datasets ``<name>_<setting>``), and ``summary.md`` /
``summary.json`` then tabulate the means per set as the papers do (rows: scale, columns: setting,
cells PSNR / SSIM).
Works under torchrun too (each rank takes a shard).

An image that fails (unreadable, too small for the scale or for a metric, ...) does not stop the run:
the others are evaluated and written, the failures are listed (file, size, reason) in the log and below
the table, and the run ends with :class:`~blindsr.evaluation.ImagesFailed` ("N of M images failed";
exit code 3 from the command line, see :mod:`blindsr.cli`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

import blindsr  # noqa: F401  (registers everything)
from blindsr import dist
from blindsr.data.loader import build_dataloader
from blindsr.data.paired_dataset import settings_of
from blindsr.evaluation import ImagesFailed, evaluate, results_markdown
from blindsr.folders import start_output_folder
from blindsr.logging_utils import attach_log_file, setup_logger
from blindsr.options import OptionsError, dump_options, load_options
from blindsr.registry import DATASET_REGISTRY, MODEL_REGISTRY, lookup
from blindsr.seeding import seed_everything


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog='python -m blindsr.test', description=__doc__.splitlines()[0])
    parser.add_argument('-opt', '--opt', required=True, help='path to the YAML option file')
    parser.add_argument('--set', action='append', default=[], metavar='KEY.PATH=VALUE',
                        help='override any option (value parsed as YAML); repeatable')
    return parser.parse_args(argv)


def run_tests(opt: dict, dist_info: dist.DistInfo, device) -> dict[str, dict]:
    """Evaluate every dataset; return ``{dataset name: result}`` (see :func:`blindsr.evaluation.evaluate`)."""
    weights = f"pretrain_network_{lookup(MODEL_REGISTRY, opt['model_type']).main_network}"
    if not opt['path'].get(weights):
        raise OptionsError(f'path.{weights} is required for testing (a checkpoint or weights file).')
    if not opt.get('datasets'):
        raise OptionsError('datasets: none given; a test run needs at least one dataset to test on.')
    logger = setup_logger(None, dist_info.is_main)  # lines are held until the results folder exists
    seed_everything(opt['manual_seed'], dist_info.rank)
    model = lookup(MODEL_REGISTRY, opt['model_type'])(opt, device, dist_info)
    testsets = [(ds_opt, lookup(DATASET_REGISTRY, ds_opt['type'])(ds_opt))
                for ds_opt in expand_testsets(opt['datasets'].values())]
    results_root = start_output_folder(Path(opt['path']['results_root']), dist_info.is_main)
    attach_log_file(results_root / f"test_{opt['name']}.log")
    if dist_info.is_main:
        (results_root / 'options.yml').write_text(dump_options(opt, 'resolved test options'))
    val_opt = opt['val']
    out, summary = {}, {}
    for ds_opt, dataset in testsets:
        name = ds_opt['name']
        loader = build_dataloader(dataset, ds_opt, 'test', opt['manual_seed'], dist_info.rank, dist_info.world_size)
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
            table_name, column = ds_opt['summary']
            summary.setdefault(table_name, {})[column] = result['mean']
    if summary and dist_info.is_main:
        text = summary_markdown(summary, f"x{opt['scale']}")
        (results_root / 'summary.md').write_text(text)
        (results_root / 'summary.json').write_text(json.dumps(summary, indent=2))
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
    """Every ``TestSetFolder`` without a ``setting`` becomes one dataset per setting of its folder."""
    out = []
    for ds in datasets:
        if ds['type'] == 'TestSetFolder' and not ds.get('setting'):
            out += [{**ds, 'setting': s, 'name': f"{ds['name']}_{s}", 'summary': (ds['name'], s)}
                    for s in settings_of(ds['dataroot'], int(ds['scale']))]
        else:
            out.append(ds)
    return out


def summary_markdown(summary: dict[str, dict[str, dict]], row: str) -> str:
    """One table per test set: a row for this run's scale, a column per setting, PSNR / SSIM, and with
    several settings their mean (what KDSR's Table 1 reports for Gaussian8)."""
    parts = []
    for name, columns in summary.items():
        columns = dict(columns)
        if len(columns) > 1:
            columns['mean'] = {key: float(np.mean([m[key] for m in columns.values()]))
                               for key in ('psnr', 'ssim') if all(key in m for m in columns.values())}
        cells = [f"{m['psnr']:.2f} / {m['ssim']:.4f}" if 'ssim' in m else f"{m.get('psnr', float('nan')):.2f}"
                 for m in columns.values()]
        parts += [f'## {name} (PSNR / SSIM)', '', '| scale | ' + ' | '.join(columns) + ' |',
                  '|---' * (len(columns) + 1) + '|', f'| {row} | ' + ' | '.join(cells) + ' |', '']
    return '\n'.join(parts)


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
