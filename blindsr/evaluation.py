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
import logging
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from basicsr.utils import tensor2img
from tqdm import tqdm

from blindsr import dist
from blindsr.data.image_io import ImageReadError, image_size, write_raw
from blindsr.degradations.resize import imresize
from blindsr.logging_utils import LOGGER_NAME
from blindsr.registry import METRIC_REGISTRY, lookup


def _path(batch: dict) -> str:
    path = next(batch[key] for key in ('lq_path', 'gt_path', 'path') if key in batch)
    return path[0] if isinstance(path, (list, tuple)) else path


# what a metric needs of an image, said when it fails (BasicSR's NIQE fits a Gaussian to 96x96 blocks;
# SSIM keeps the pixels whose 11x11 window lies inside the image, after cropping crop_border)
METRIC_LIMITS = {'calculate_niqe': ' (NIQE needs at least two 96x96 blocks)',
                 'calculate_ssim': ' (SSIM needs more than 10x10 pixels inside crop_border)',
                 'calculate_psnr': ' (PSNR needs pixels inside crop_border)'}


class _ImageFailure(Exception):
    """One image could not be evaluated; the message is the reason given in the results."""


class ImagesFailed(RuntimeError):
    """Some images of a test run failed (message: how many, where listed); ``results`` holds the rest."""

    def __init__(self, message: str, results: dict) -> None:
        super().__init__(message)
        self.results = results


def needs_reference(fn) -> bool:
    """Whether a metric function compares with a reference image (has BasicSR's ``img2`` argument)."""
    return 'img2' in inspect.signature(fn).parameters


def comparison_image(lq: torch.Tensor, sr: torch.Tensor, gt: torch.Tensor | None = None) -> np.ndarray:
    """Side by side, 8-bit BGR: the LR image enlarged by pixel repetition | SR (| HR when there is one)."""
    up = F.interpolate(lq.float(), size=sr.shape[-2:], mode='nearest-exact')
    return tensor2img(torch.cat([up, sr] + ([gt] if gt is not None else []), dim=-1))


def _file_size(path: str) -> list[int] | None:
    """``[height, width]`` of an image file from its header, or None where there is no readable header."""
    try:
        return list(image_size(path))
    except ImageReadError:
        return None


def _size(size: list[int] | None) -> str:
    return 'x'.join(map(str, size)) if size else 'unknown'


def describe_failure(failure: dict) -> str:
    """One line: file (h x w size): reason."""
    return f"{failure['file']} (h x w {_size(failure['size'])}): {failure['reason']}"


def evaluate(model, loader, metrics: dict, save_dir: str | Path | None = None, save_count: int | None = None,
             suffix: str = '', progress: bool = False, bicubic_baseline: bool = False,
             save_comparison: bool = False) -> dict:
    """Run ``model.infer`` on every image of this rank's shard, then gather all ranks' records.

    Returns ``{'images': [{'name', 'time_s', <metric>: value, ...}, ...], 'failures': [...],
    'mean': {...}}`` on every rank, sorted by name. With ``bicubic_baseline`` the records also hold
    ``bicubic_<metric>``: the metric of MATLAB-bicubic upsampling of the same LR image. With
    ``save_comparison`` (and a ``save_dir``) each saved SR image gets a ``<name>_compare.png`` beside it
    (see :func:`comparison_image`).

    One image's failure never costs the others: whatever goes wrong with an image (reading it, in the
    loader, see :class:`blindsr.data.loader.CatchItemErrors`; degrading, inference, a metric, or a metric
    that gives NaN) is caught here, per image, logged as a warning by the rank that met it, and recorded
    in ``failures`` as ``{'name', 'file', 'size': [h, w] or None, 'reason'}``; the means are over the
    other images. Failures are gathered with the records, so every rank sees all of them and no rank
    waits for another in a collective.
    """
    metric_fns = {}  # name -> (function, its options, whether it compares with the HR image)
    for metric_name, metric_opt in metrics.items():
        metric_opt = dict(metric_opt)
        fn = lookup(METRIC_REGISTRY, metric_opt.pop('type'))
        metric_fns[metric_name] = (fn, metric_opt, needs_reference(fn))
    records, failures = [], []
    saved = 0
    bar = tqdm(loader, desc='evaluate', unit='img', disable=not progress, leave=False)
    for batch in bar:
        path = _path(batch)
        name = Path(path).stem
        save = save_dir is not None and (save_count is None or saved < save_count)
        out = None
        if save:
            out = Path(save_dir) / name / f'{name}{suffix}.png' if suffix else Path(save_dir) / f'{name}.png'
        try:
            records.append(_evaluate_image(model, batch, name, metric_fns, out, bicubic_baseline,
                                           save_comparison))
        except Exception as err:  # whatever it is, it is this image's: the others go on
            reason = str(err) if isinstance(err, _ImageFailure) else f'{type(err).__name__}: {err}'
            failures.append({'name': name, 'file': path, 'size': _file_size(path),
                             'reason': ' '.join(reason.split())})  # one line (OpenCV's end in newlines)
            logging.getLogger(LOGGER_NAME).warning(f'{name} failed, skipped: {describe_failure(failures[-1])}')
        saved += save  # the first save_count images, failed ones included
    parts = dist.all_gather_objects((records, failures))
    images = sorted((r for part, _ in parts for r in part), key=lambda r: r['name'])
    failures = sorted((f for _, part in parts for f in part), key=lambda f: f['name'])
    keys = [k for k in images[0] if k != 'name'] if images else []
    mean = {k: float(np.mean([r[k] for r in images])) for k in keys}
    return {'images': images, 'failures': failures, 'mean': mean}


def _evaluate_image(model, batch: dict, name: str, metric_fns: dict, out: Path | None, bicubic_baseline: bool,
                    save_comparison: bool) -> dict:
    """The record of one image (see :func:`evaluate`); raises :class:`_ImageFailure` with the reason."""
    if 'error' in batch:
        raise _ImageFailure(batch['error'][0])
    gt = None if batch.get('gt') is None else batch['gt'].to(model.device)  # moved once, used thrice
    lq = batch.get('lq')
    lq = _stage('degradation', model.degrade_for_eval, gt, name) if lq is None else lq.to(model.device)
    if model.device.type == 'cuda':
        torch.cuda.synchronize(model.device)
    start = time.perf_counter()
    sr = _stage('inference', lambda: model.infer(lq, gt=gt, name=name))
    if model.device.type == 'cuda':
        torch.cuda.synchronize(model.device)
    record = {'name': name, 'time_s': time.perf_counter() - start}
    # a per-image method's other images (see BaseModel.extra_outputs), as 8-bit BGR like sr_img
    extras = {key: (tensor2img(img), img.shape[-2:]) for key, img in model.extra_outputs().items()}
    sr_img = tensor2img(sr)
    gt_img = None if gt is None else tensor2img(gt)
    if gt_img is not None and sr_img.shape != gt_img.shape:
        raise _ImageFailure(f'SR output {sr_img.shape[:2]} does not match HR {gt_img.shape[:2]}; '
                           'does the network scale match the options scale?')
    # saved before scoring: a metric that fails on this image still leaves its SR image on disk
    if out is not None:
        write_raw(out, sr_img)
        if save_comparison:
            write_raw(out.with_name(f'{out.stem}_compare.png'), comparison_image(lq, sr, gt))
        for key, (img, _) in extras.items():
            write_raw(out.with_name(f'{out.stem}_{key}.png'), img)
    candidates = {'': sr_img, **{f'{key}_': img for key, (img, size) in extras.items() if size == sr.shape[-2:]}}
    if bicubic_baseline:
        candidates['bicubic_'] = tensor2img(imresize(lq.float(), size=tuple(sr.shape[-2:])))
    for prefix, img in candidates.items():
        for metric_name, (fn, metric_opt, reference) in metric_fns.items():
            if reference and gt_img is None:
                continue
            where = f'on the {img.shape[1]}x{img.shape[0]} {prefix.rstrip("_") or "SR"} image'
            hint = METRIC_LIMITS.get(fn.__name__, '')
            try:
                value = float(fn(img, gt_img, **metric_opt) if reference else fn(img, **metric_opt))
            except Exception as err:  # BasicSR's metrics fail with bare numpy errors
                raise _ImageFailure(f'{metric_name} failed {where}: {type(err).__name__}: {err}{hint}') from err
            if np.isnan(value):
                raise _ImageFailure(f'{metric_name} is NaN {where}{hint}')
            record[prefix + metric_name] = value
    return record


def _stage(what: str, fn, *args):
    """``fn(*args)``; an error is this image's failure in ``what``."""
    try:
        return fn(*args)
    except Exception as err:
        raise _ImageFailure(f'{what} failed: {type(err).__name__}: {err}') from err


def results_markdown(title: str, result: dict) -> str:
    """A markdown table: one row per image and a mean row; then one row per image that failed, if any."""
    keys = list(result['mean'])
    good, failures = len(result['images']), result['failures']
    mean = '**mean**' + (f' ({good} of {good + len(failures)} images)' if failures else '')
    lines = [f'## {title}', '']
    if good:
        lines += ['| image | ' + ' | '.join(keys) + ' |', '|---' * (len(keys) + 1) + '|']
        for rec in result['images'] + [{'name': mean, **result['mean']}]:
            lines.append(f"| {rec['name']} | " + ' | '.join(_fmt(k, rec[k]) for k in keys) + ' |')
    if failures:
        lines += ['', f'**{len(failures)} of {good + len(failures)} images failed** (not in the means):', '',
                  '| image | file | size (h x w) | reason |', '|---|---|---|---|']
        lines += [f"| {f['name']} | {f['file']} | {_size(f['size'])} | {f['reason'].replace('|', '/')} |"
                  for f in failures]
    return '\n'.join(lines) + '\n'


def _fmt(key: str, value: float) -> str:
    if 'ssim' in key:
        return f'{value:.4f}'
    if key.startswith('time'):
        return f'{value * 1000:.1f} ms'
    return f'{value:.2f}'
