"""Methods x protocols x sets through the test entry point, each result cached.

A **method** is a test recipe (``options/test/...yml``: model type, network, scale and weights), named on
the command line as ``[LABEL=]RECIPE[@WEIGHTS]``: LABEL defaults to the recipe's ``name`` (for a published
configuration, its name in the model zoo), WEIGHTS to its ``path.pretrain_network_<x>`` (x: the model's main
network, 'g'; DARSR's 'sr'). An (arch, weights) pair is a recipe with a ``network_g`` and those weights; the recipe's ``datasets`` and ``val`` are replaced.

A **set** with a **protocol** at a **scale** is the folder ``<testsets>/<set>_<protocol>_x<scale>`` written
by ``scripts/make_testsets.py``; every setting in it is evaluated (PSNR/SSIM on Y with a border of the
scale, LPIPS when backbone weights are given). An **LR-only set** (``NAME=FOLDER`` of real LR images) gets
NIQE of the SR images. A method runs at its recipe's scale only.

The **cache**: one folder per (method: its recipe's contents and its weights' sha256; set, protocol, scale,
test set contents, metrics, device kind) under the cache folder (a new label reuses it), holding ``entry.json`` and the run's SR images
(for the crops); a rerun evaluates only the jobs whose key has no entry. Delete the folder to start anew.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from blindsr import dist
from blindsr.data.image_io import list_images
from blindsr.data.paired_dataset import read_record
from blindsr.evaluation import ImagesFailed
from blindsr.logging_utils import LOGGER_NAME
from blindsr.options import load_options
from blindsr.report.tables import slug
from blindsr.test import main_network, main_network_parameters, run_tests
from blindsr.zoo import ZOO, sha256_of

# options that do not change a method's output (or are replaced for each job)
NOT_IN_KEY = ('name', 'path', 'datasets', 'val', 'dist', 'device', 'num_gpu', 'is_train', 'manual_seed')
LR_ONLY = 'real'  # the protocol column of an LR-only set
BICUBIC = 'bicubic_'  # the test entry point's prefix of the bicubic baseline's metrics
MEAN = 'mean'  # the setting of the means over a protocol's settings
METRICS = ('psnr', 'ssim', 'lpips', 'niqe')
SETTING_PARAMS = ('sigma_x', 'sigma_y', 'noise')  # what _setting_params reads from params.json


@dataclass(frozen=True)
class Method:
    """A test recipe with its label and weights (of its ``network_<network>``: 'g', DARSR's 'sr')."""
    name: str
    recipe: Path
    weights: Path
    scale: int
    network: str = 'g'

    def options(self, overrides: list[str]) -> dict:
        return load_options(self.recipe, [f'path.pretrain_network_{self.network}={self.weights}', *overrides],
                            is_train=False)


def parse_method(spec: str) -> Method:
    """``[LABEL=]RECIPE[@WEIGHTS]`` -> :class:`Method` (LABEL: the recipe's name; WEIGHTS: its weights)."""
    label, sep, rest = spec.partition('=')
    if not sep:
        label, rest = '', spec
    recipe, _, weights = rest.partition('@')
    opt = load_options(recipe, is_train=False)
    network = main_network(opt)
    weights = weights or opt['path'].get(f'pretrain_network_{network}')
    if not weights:
        raise ValueError(f'method {spec!r}: {recipe} names no path.pretrain_network_{network}; give one as '
                         f'{recipe}@WEIGHTS')
    if not Path(weights).is_file():
        raise FileNotFoundError(f'method {spec!r}: weights file {weights} not found')
    return Method(label or opt['name'], Path(recipe), Path(weights), int(opt['scale']), network)


def parse_lr_set(spec: str) -> tuple[str, Path]:
    """``NAME=FOLDER`` of real LR images."""
    name, sep, folder = spec.partition('=')
    if not sep or not name or not Path(folder).is_dir():
        raise ValueError(f'LR-only set {spec!r}: expected NAME=FOLDER with an existing folder of LR images')
    return name, Path(folder)


@dataclass
class Job:
    method: Method
    testset: str
    protocol: str
    folder: Path

    @property
    def paired(self) -> bool:
        return self.protocol != LR_ONLY


@dataclass
class Benchmark:
    """What :func:`run_benchmark` gives: one row per (method, set, protocol, setting), and the counts."""
    rows: list[dict] = field(default_factory=list)
    computed: int = 0
    cached: int = 0


def reported_numbers(method: str, testset: str, protocol: str, setting: str, scale: int) -> dict[str, float]:
    """The authors' published numbers for one table cell, e.g. ``{'psnr': 31.99, 'ssim': 0.8926}``; ``{}``
    where none are known. The one place where the benchmark reads reported numbers (the model zoo's
    ``reported`` numbers of the entry named ``method``; label a method with its zoo name to see them)."""
    if method not in ZOO or ZOO[method].scale != scale:
        return {}
    for row in ZOO[method].reported:
        if (row.dataset, row.protocol, row.setting) == (testset, protocol, setting):
            return {k: getattr(row, k) for k in ('psnr', 'ssim', 'lpips') if getattr(row, k) is not None}
    return {}


def testset_folder(root: Path, testset: str, protocol: str, scale: int) -> Path:
    """``<root>/<set>_<protocol>_x<scale>``; a missing one is an error with the command that makes it."""
    folder = Path(root) / f'{testset}_{protocol}_x{scale}'
    if not (folder / 'params.json').is_file():
        raise FileNotFoundError(
            f'test set {folder} not found (no params.json); make it with: python scripts/make_testsets.py '
            f'--hr <folder of {testset} HR images> --protocol {protocol} --scale {scale} --out {folder}')
    return folder


def _set_digest(job: Job) -> str:
    """The test set's contents: its params.json (which lists every PNG's sha256), or each LR image's hash."""
    if job.paired:
        return sha256_of(job.folder / 'params.json')
    return hashlib.sha256(''.join(f'{p.name}:{sha256_of(p)}' for p in list_images(job.folder)).encode()).hexdigest()


def _metrics(job: Job, lpips: dict | None) -> dict:
    if not job.paired:
        return {'niqe': {'type': 'calculate_niqe'}}
    metrics = {'psnr': {'type': 'calculate_psnr', 'test_y_channel': True},
               'ssim': {'type': 'calculate_ssim', 'test_y_channel': True}}
    if lpips:
        metrics['lpips'] = {'type': 'calculate_lpips', **lpips}
    return metrics


def _datasets(job: Job) -> dict:
    if job.paired:  # every setting of the folder (see blindsr.test.expand_testsets)
        return {job.testset: {'type': 'TestSetFolder', 'dataroot': str(job.folder)}}
    return {job.testset: {'type': 'PairedFolderDataset', 'dataroot_lq': str(job.folder)}}


def _device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == 'cuda' else device.type


def _setting_params(job: Job) -> dict[str, dict]:
    """Per setting: the degradation's ``sigma_x``, ``sigma_y``, ``noise`` where the protocol records them."""
    if not job.paired:
        return {}
    images = read_record(job.folder)['images']
    first = images[min(images)]
    return {s: {k: p[k] for k in SETTING_PARAMS if k in p} for s, p in first.items()}


def _compute(job: Job, metrics: dict, entry: Path, device_opt: str, bicubic: bool) -> dict:
    """Evaluate one job with :func:`blindsr.test.run_tests`; its SR images go to ``entry/results``."""
    opt = job.method.options([f'datasets={json.dumps(_datasets(job))}', f'path.results_root={entry / "results"}',
                              'val.save_img=true', f'val.metrics={json.dumps(metrics)}', f'device={device_opt}',
                              f'val.bicubic_baseline={str(bicubic).lower()}',
                              'val.summary_columns=settings'])  # a recipe's Table-2 summary needs noise levels
    dist_info, device = dist.init_dist(opt['device'], opt['dist']['backend'], opt['dist']['timeout_minutes'])
    try:
        results = run_tests(opt, dist_info, device)
    except ImagesFailed as err:  # the other images count; the row says how many failed
        results = err.results
    params = main_network_parameters(opt)
    settings = {}
    for dataset, result in results.items():
        setting = dataset[len(job.testset) + 1:] if job.paired else LR_ONLY
        settings[setting] = {'mean': result['mean'], 'images': len(result['images']),
                             'failures': len(result['failures']), 'results_dir': str(entry / 'results' / dataset)}
    return {'params': params, 'device': _device_name(device), 'settings': settings}


def run_benchmark(methods: list[Method], testsets: list[str], protocols: list[str], testsets_root: Path,
                  cache: Path, scales: list[int] | None = None, lr_sets: list[tuple[str, Path]] = (),
                  lpips: dict | None = None, device: str = 'auto', bicubic: bool = False,
                  progress: bool = True) -> Benchmark:
    """Every method at its scale (those in ``scales``, when given) on every set x protocol and LR-only set.

    ``lpips``: the arguments of ``calculate_lpips`` (``net``, ``backbone_weights``) or None for no LPIPS.
    ``bicubic``: add a ``bicubic`` row per set, protocol and scale (MATLAB-bicubic upsampling of the LR images,
    from the test entry point's ``val.bicubic_baseline``).
    """
    logger = logging.getLogger(LOGGER_NAME)
    twice = sorted({m.name for m in methods if [n.name for n in methods].count(m.name) > 1})
    if twice:
        raise ValueError(f"methods {', '.join(twice)} are given more than once; label them apart (LABEL=RECIPE)")
    chosen = [m for m in methods if scales is None or m.scale in scales]
    for m in methods:
        if m not in chosen:
            logger.warning(f'{m.name}: its recipe is for x{m.scale}, not among --scale {scales}; left out')
    jobs = [Job(m, s, p, testset_folder(testsets_root, s, p, m.scale)) for m in chosen for s in testsets
            for p in protocols]
    jobs += [Job(m, name, LR_ONLY, folder) for m in chosen for name, folder in lr_sets]
    out = Benchmark()
    weights_sha = {m.weights: sha256_of(m.weights) for m in chosen}
    device_kind = dist.pick_device(device, 0).type
    bar = tqdm(jobs, desc='benchmark', unit='job', disable=not progress)
    for job in bar:
        m = job.method
        bar.set_postfix_str(f'{m.name} {job.testset} {job.protocol} x{m.scale}')
        metrics = _metrics(job, lpips)
        recipe = {k: v for k, v in m.options([]).items() if k not in NOT_IN_KEY}
        key_parts = {'recipe': recipe, 'weights_sha256': weights_sha[m.weights],
                     'set': job.testset, 'protocol': job.protocol, 'scale': m.scale, 'set_sha256': _set_digest(job),
                     'metrics': metrics, 'device': device_kind, 'bicubic': bicubic}
        key = hashlib.sha256(json.dumps(key_parts, sort_keys=True, default=str).encode()).hexdigest()
        entry = Path(cache) / slug(m.recipe.stem, job.testset, job.protocol, f'x{m.scale}', key[:16])
        record_file = entry / 'entry.json'
        if record_file.is_file() and json.loads(record_file.read_text())['key'] == key:
            record = json.loads(record_file.read_text())
            out.cached += 1
        else:
            record = {'key': key, 'key_parts': key_parts, **_compute(job, metrics, entry, device, bicubic)}
            if not any(s['failures'] for s in record['settings'].values()):  # a failed image is retried next time
                record_file.write_text(json.dumps(record, indent=1, default=str))
            out.computed += 1
        seen = {(r['method'], r['scale'], r['set'], r['protocol'], r['setting']) for r in out.rows}
        out.rows += [r for r in _rows(job, record)  # the bicubic rows once (the first method's)
                     if (r['method'], r['scale'], r['set'], r['protocol'], r['setting']) not in seen]
    print(f'benchmark: {out.computed} jobs computed, {out.cached} from the cache in {cache}')
    return out


def _rows(job: Job, record: dict) -> list[dict]:
    """The rows of one job: per setting, the bicubic row (when computed) and the method's."""
    m, params = job.method, _setting_params(job)
    rows = []
    for setting, result in record['settings'].items():
        mean = result['mean']
        common = {'scale': m.scale, 'set': job.testset, 'protocol': job.protocol, 'setting': setting,
                  **params.get(setting, {}), 'images': result['images'], 'failures': result['failures'],
                  'testset_dir': str(job.folder)}
        bicubic = {k[len(BICUBIC):]: v for k, v in mean.items() if k.startswith(BICUBIC)}
        if bicubic:
            rows.append({'method': 'bicubic', **common, **bicubic, 'ms_per_image': None, 'params': 0,
                         'device': '–', 'results_dir': None})
        reported = reported_numbers(m.name, job.testset, job.protocol, setting, m.scale)
        rows.append({'method': m.name, **common,
                     **{k: v for k, v in mean.items() if k != 'time_s' and not k.startswith(BICUBIC)},
                     'ms_per_image': 1000 * mean['time_s'] if 'time_s' in mean else None,
                     'params': record['params'], 'device': record['device'], 'results_dir': result['results_dir'],
                     **{f'reported_{k}': v for k, v in reported.items()}})
    if len(record['settings']) > 1:
        rows += _means(job, rows)
    return rows


def _means(job: Job, rows: list[dict]) -> list[dict]:
    """Per method of ``rows``: a ``mean`` setting averaging each metric and the time over the settings (what
    papers give for a protocol such as Gaussian8), with the reported mean where known."""
    out = []
    for method in dict.fromkeys(r['method'] for r in rows):
        own = [r for r in rows if r['method'] == method]
        base = {k: v for k, v in own[0].items() if not k.startswith('reported_') and k not in SETTING_PARAMS}
        times = [r['ms_per_image'] for r in own if r['ms_per_image'] is not None]
        reported = reported_numbers(method, job.testset, job.protocol, MEAN, job.method.scale)
        out.append({**base, 'setting': MEAN, 'results_dir': None, 'failures': sum(r['failures'] for r in own),
                    'ms_per_image': float(np.mean(times)) if times else None,
                    **{k: float(np.mean([r[k] for r in own])) for k in METRICS if all(k in r for r in own)},
                    **{f'reported_{k}': v for k, v in reported.items()}})
    return out
