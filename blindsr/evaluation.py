"""Evaluation of a model on a dataset: SR images, per-image metrics and timing, gathered across ranks.

Used by validation during training and by ``python -m blindsr.test``. Each rank evaluates its own
shard (no padding, so every image counts once); the per-image records are then gathered, so no
rank waits in a collective while another one computes. Metrics are BasicSR's functions from the
metric registry, computed on 8-bit BGR images as BasicSR expects (Y channel, crop border = scale
unless configured). A metric whose function takes a second image (``img2``, BasicSR's convention:
``calculate_psnr``, ``calculate_ssim``) compares with the HR image and is skipped for real LR images
without one; the others (``calculate_niqe``) score the SR image alone, so real images get them too.
"""

from __future__ import annotations

import inspect
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from basicsr.utils import tensor2img
from tqdm import tqdm

from blindsr import dist
from blindsr.data.image_io import write_image
from blindsr.degradations.resize import imresize
from blindsr.registry import METRIC_REGISTRY, lookup


def _name(batch: dict) -> str:
    path = batch.get('lq_path', batch.get('gt_path'))
    return Path(path[0] if isinstance(path, (list, tuple)) else path).stem


# what a metric needs of an image, said when it fails (BasicSR's NIQE fits a Gaussian to 96x96 blocks)
METRIC_LIMITS = {'calculate_niqe': ' (NIQE needs at least two 96x96 blocks)'}


def needs_reference(fn) -> bool:
    """Whether a metric function compares with a reference image (has BasicSR's ``img2`` argument)."""
    return 'img2' in inspect.signature(fn).parameters


def comparison_image(lq: torch.Tensor, sr: torch.Tensor, gt: torch.Tensor | None = None) -> np.ndarray:
    """Side by side, 8-bit BGR: the LR image enlarged by pixel repetition | SR (| HR when there is one)."""
    up = F.interpolate(lq.float(), size=sr.shape[-2:], mode='nearest-exact')
    return tensor2img(torch.cat([up, sr] + ([gt.to(sr.device)] if gt is not None else []), dim=-1))


def evaluate(model, loader, metrics: dict, save_dir: str | Path | None = None, save_count: int | None = None,
             suffix: str = '', progress: bool = False, bicubic_baseline: bool = False,
             save_comparison: bool = False) -> dict:
    """Run ``model.infer`` on every image of this rank's shard, then gather all ranks' records.

    Returns ``{'images': [{'name', 'time_s', <metric>: value, ...}, ...], 'mean': {...}}`` on every rank,
    images sorted by name. With ``bicubic_baseline`` the records also hold ``bicubic_<metric>``:
    the metric of MATLAB-bicubic upsampling of the same LR image. With ``save_comparison`` (and a
    ``save_dir``) each saved SR image gets a ``<name>_compare.png`` beside it (see :func:`comparison_image`).
    """
    metric_fns = {}  # name -> (function, its options, whether it compares with the HR image)
    for metric_name, metric_opt in metrics.items():
        metric_opt = dict(metric_opt)
        fn = lookup(METRIC_REGISTRY, metric_opt.pop('type'))
        metric_fns[metric_name] = (fn, metric_opt, needs_reference(fn))
    records = []
    saved = 0
    bar = tqdm(loader, desc='evaluate', unit='img', disable=not progress, leave=False)
    for batch in bar:
        name = _name(batch)
        gt = batch.get('gt')
        lq = batch.get('lq')
        if lq is None:
            lq = model.degrade_for_eval(gt.to(model.device), name)
        lq = lq.to(model.device)
        if model.device.type == 'cuda':
            torch.cuda.synchronize(model.device)
        start = time.perf_counter()
        sr = model.infer(lq, gt=None if gt is None else gt.to(model.device), name=name)
        if model.device.type == 'cuda':
            torch.cuda.synchronize(model.device)
        record = {'name': name, 'time_s': time.perf_counter() - start}
        sr_img = tensor2img(sr)
        gt_img = None if gt is None else tensor2img(gt)
        if gt_img is not None and sr_img.shape != gt_img.shape:
            raise ValueError(f'{name}: SR output {sr_img.shape[:2]} does not match HR {gt_img.shape[:2]}; '
                             'does the network scale match the options scale?')
        # saved before scoring: a metric that fails on this image still leaves its SR image on disk
        if save_dir is not None and (save_count is None or saved < save_count):
            path = Path(save_dir) / name / f'{name}{suffix}.png' if suffix else Path(save_dir) / f'{name}.png'
            write_image(path, sr_img[..., ::-1].astype(np.float32) / 255.0)
            if save_comparison:
                write_image(path.with_name(f'{path.stem}_compare.png'),
                            comparison_image(lq, sr, gt)[..., ::-1].astype(np.float32) / 255.0)
            saved += 1
        candidates = {'': sr_img}
        if bicubic_baseline:
            candidates['bicubic_'] = tensor2img(imresize(lq.float(), size=tuple(sr.shape[-2:])))
        for prefix, img in candidates.items():
            for metric_name, (fn, metric_opt, reference) in metric_fns.items():
                if reference and gt_img is None:
                    continue
                try:
                    value = fn(img, gt_img, **metric_opt) if reference else fn(img, **metric_opt)
                except Exception as err:  # BasicSR's metrics fail with bare numpy errors
                    hint = METRIC_LIMITS.get(fn.__name__, '')
                    raise ValueError(f'{name}: {metric_name} failed on the {img.shape[1]}x{img.shape[0]} '
                                     f'{prefix or "SR "}image: {type(err).__name__}: {err}{hint}') from err
                record[prefix + metric_name] = float(value)
        records.append(record)
    images = sorted((r for part in dist.all_gather_objects(records) for r in part), key=lambda r: r['name'])
    keys = [k for k in images[0] if k != 'name'] if images else []
    mean = {k: float(np.mean([r[k] for r in images])) for k in keys}
    return {'images': images, 'mean': mean}


def results_markdown(title: str, result: dict) -> str:
    """A markdown table: one row per image and a mean row."""
    keys = list(result['mean'])
    lines = [f'## {title}', '', '| image | ' + ' | '.join(keys) + ' |', '|---' * (len(keys) + 1) + '|']
    for rec in result['images'] + [{'name': '**mean**', **result['mean']}]:
        lines.append(f"| {rec['name']} | " + ' | '.join(_fmt(k, rec[k]) for k in keys) + ' |')
    return '\n'.join(lines) + '\n'


def _fmt(key: str, value: float) -> str:
    if 'ssim' in key:
        return f'{value:.4f}'
    if key.startswith('time'):
        return f'{value * 1000:.1f} ms'
    return f'{value:.2f}'
