"""Test entry point: ``python -m blindsr.test -opt options/test/x.yml [--set k=v ...]``.

Loads ``path.pretrain_network_g`` (any layout :func:`blindsr.load_pretrained` understands), runs
every dataset under ``datasets:`` and writes, per dataset, the SR images and a results table
(``results.md`` and ``results.json``: per-image and mean metrics plus timing) into
``path.results_root`` (default ``results/<name>``). Datasets without ground truth give SR images
and timing only. Works under torchrun too (each rank takes a shard).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import blindsr  # noqa: F401  (registers everything)
from blindsr import dist
from blindsr.data.loader import build_dataloader
from blindsr.evaluation import evaluate, results_markdown
from blindsr.logging_utils import setup_logger
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
    if not opt['path'].get('pretrain_network_g'):
        raise OptionsError('path.pretrain_network_g is required for testing (a checkpoint or weights file).')
    results_root = Path(opt['path']['results_root'])
    logger = setup_logger(results_root / f"test_{opt['name']}.log", dist_info.is_main)
    if dist_info.is_main:
        results_root.mkdir(parents=True, exist_ok=True)
        (results_root / 'options.yml').write_text(dump_options(opt, 'resolved test options'))
    seed_everything(opt['manual_seed'], dist_info.rank)
    model = lookup(MODEL_REGISTRY, opt['model_type'])(opt, device, dist_info)
    val_opt = opt['val']
    out = {}
    for ds_opt in opt['datasets'].values():
        name = ds_opt['name']
        dataset = lookup(DATASET_REGISTRY, ds_opt['type'])(ds_opt)
        loader = build_dataloader(dataset, ds_opt, 'test', opt['manual_seed'], dist_info.rank, dist_info.world_size)
        folder = results_root / name
        logger.info(f'Testing {name}: {len(dataset)} images -> {folder}')
        result = evaluate(model, loader, val_opt['metrics'], folder if val_opt['save_img'] else None,
                          progress=dist_info.is_main, bicubic_baseline=val_opt.get('bicubic_baseline', False))
        out[name] = result
        if dist_info.is_main:
            table = results_markdown(f"{opt['name']} on {name}", result)
            (folder).mkdir(parents=True, exist_ok=True)
            (folder / 'results.md').write_text(table)
            (folder / 'results.json').write_text(json.dumps(result, indent=2))
            logger.info('\n' + table)
    return out


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
