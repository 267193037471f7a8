"""Training-step throughput of every shipped method at its published training size, per precision and speed option.

For each method: ms per step, images/s, achieved TFLOPS and that as a share of the device's dense peak, for
fp32 / TF32 / bf16 / fp16 with the speed options (``train.channels_last``, ``train.compile``,
``train.cudnn_benchmark``, fused Adam) off and on, all in one run, as speed-ups against the method's first row;
plus the time of the method's own degradation and its share of a step.

Each method is its recipe under options/train built exactly as ``python -m blindsr.train`` builds it, with no
trained weights: the generator starts from scratch, a distilled student's frozen teacher is randomly initialised,
and the perceptual loss runs VGG19 with random weights (``vgg_weights: random``; no ImageNet file is needed and
the FLOPs are the same). The batch is real-photo HR crops of the recipe's ``datasets.train`` size (no disk I/O),
degraded once by the method's pipeline; the step (forward, backward, optimizer, EMA) is then timed on that batch
and the degradation apart. FLOPs are counted once per method by ``torch.utils.flop_counter`` over one eager fp32
step (matrix products and convolutions, forward and backward; elementwise work is not counted). ``fp32`` is IEEE
fp32 (TF32 off for matrix products and cuDNN convolutions, although PyTorch's default runs cuDNN convolutions in
TF32), ``tf32`` turns TF32 on for both, and ``bf16`` / ``fp16`` are ``train.use_amp`` with TF32 on for what stays
fp32. The share of the peak uses the datasheet's dense figure (no sparsity) of that precision for the device
(``PEAKS``); an unknown device gets none.

    python scripts/bench_train_step.py --out train_step.json                 # every method, on the GPU
    python scripts/bench_train_step.py --methods bsrnet --precisions bf16 --options none,channels_last,all
    python scripts/bench_train_step.py --quick --methods bsrnet,dasr --out smoke.csv   # tiny sizes, CPU
"""

from __future__ import annotations

import argparse
import copy
import csv
import gc
import itertools
import json
import logging
import platform
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode

import blindsr  # noqa: F401
from blindsr import dist
from blindsr.benchmark import median_seconds, photo_batch, synchronize
from blindsr.options import load_options
from blindsr.registry import ARCH_REGISTRY, MODEL_REGISTRY, build, lookup

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Method:
    recipe: str
    sets: tuple[str, ...] = ()  # beyond NO_DATA: what makes the recipe run without trained weights, the batch
    quick: tuple[str, ...] = ()  # --quick: tiny networks and patches


NO_DATA = ('datasets.train.dataroot_gt=unused', 'datasets.val=null')  # batches are made here
QUICK_BATCH = 'datasets.train.batch_size_per_gpu=2'
RRDB_TINY = ('network_g.num_feat=8', 'network_g.num_block=1', 'network_g.num_grow_ch=4',
             'degradation.lq_patchsize=8', 'datasets.train.gt_size=40')
DASR_TINY = ('network_g.num_feat=8', 'network_g.num_group=1', 'network_g.num_block=1', 'moco.queue_size=8')
KDSR_TINY = tuple(f'network_{net}.{key}' for net in ('g', 'teacher')
                  for key in ('n_feats=8', 'n_blocks=1', 'n_encoder_res=1'))

METHODS = {
    # batch 16 (issue 15's reference figure); KAIR ships 4 and lists 16..128, the paper trained with 48
    'bsrnet': Method('options/train/bsrgan/bsrnet_x4.yml', ('datasets.train.batch_size_per_gpu=16', ),
                     RRDB_TINY),
    'bsrgan': Method('options/train/bsrgan/bsrgan_x4.yml',
                     ('datasets.train.batch_size_per_gpu=16', 'path.pretrain_network_g=null'),
                     (*RRDB_TINY, 'network_d.num_feat=8')),
    'dasr': Method('options/train/dasr/dasr_x4_iso_stage2.yml', ('path.pretrain_network_g=null', ),
                   (*DASR_TINY, 'datasets.train.gt_size=32')),
    'kdsr': Method('options/train/kdsr/kdsr_s_m_x4_iso.yml', (), (*KDSR_TINY, 'datasets.train.gt_size=32')),
    'kdsrgan': Method('options/train/kdsr/kdsrgan_s_x4.yml', ('path.pretrain_network_g=null', ),
                      (*KDSR_TINY, 'network_d.num_feat=8', 'degradation.gt_size=32', 'degradation.pool_size=4',
                       'datasets.train.gt_size=40')),
    'cdsr': Method('options/train/cdsr/cdsr_x4_aniso.yml', (),
                   ('network_g.num_feat=8', 'network_g.num_grow_ch=4', 'network_g.num_block=1', 'moco.queue_size=8',
                    'datasets.train.gt_size=64')),
}

PRECISIONS = ('fp32', 'tf32', 'bf16', 'fp16')
USE_AMP = {'fp32': False, 'tf32': False, 'bf16': 'bf16', 'fp16': 'fp16'}
SPEED_OPTIONS = ('channels_last', 'compile', 'cudnn_benchmark', 'fused')
OPTION_SETS = {'none': (), 'fast': ('channels_last', 'cudnn_benchmark', 'fused'), 'all': SPEED_OPTIONS}

# Dense peaks in TFLOPS (NVIDIA datasheets, without structured sparsity): fp32 on the CUDA cores; tf32, bf16 and
# fp16 on the tensor cores with fp32 accumulation (what PyTorch uses; GeForce cards run that at half their
# fp16-accumulate rate). The first pattern that matches torch's device name wins.
PEAKS = [
    (r'H100.*PCIe', 'H100 PCIe', {'fp32': 51.2, 'tf32': 378.0, 'bf16': 756.0, 'fp16': 756.0}),
    (r'H[12]00.*NVL', 'H100/H200 NVL', {'fp32': 60.0, 'tf32': 417.5, 'bf16': 835.5, 'fp16': 835.5}),
    (r'H100', 'H100 SXM', {'fp32': 66.9, 'tf32': 494.7, 'bf16': 989.4, 'fp16': 989.4}),
    (r'H200', 'H200 SXM', {'fp32': 66.9, 'tf32': 494.7, 'bf16': 989.4, 'fp16': 989.4}),
    (r'A100\b', 'A100', {'fp32': 19.5, 'tf32': 156.0, 'bf16': 312.0, 'fp16': 312.0}),
    (r'L40S', 'L40S', {'fp32': 91.6, 'tf32': 183.0, 'bf16': 362.0, 'fp16': 362.0}),
    (r'RTX 4090', 'RTX 4090', {'fp32': 82.6, 'tf32': 82.6, 'bf16': 165.2, 'fp16': 165.2}),
    (r'RTX 3090', 'RTX 3090', {'fp32': 35.6, 'tf32': 35.6, 'bf16': 71.0, 'fp16': 71.0}),
    (r'V100.*PCIE', 'V100 PCIe', {'fp32': 14.0, 'fp16': 112.0}),
    (r'V100', 'V100 SXM2', {'fp32': 15.7, 'fp16': 125.0}),
]

COLUMNS = ('method', 'precision', 'options', 'status', 'ms_step', 'images_s', 'tflops', 'peak_tflops',
           'pct_peak', 'speedup', 'degradation_ms', 'degradation_share', 'mem_gib', 'steps')


def device_peaks(device: torch.device) -> tuple[str, dict[str, float]]:
    """The device's name and its dense peaks by precision (empty for a device not in ``PEAKS`` or a CPU)."""
    if device.type != 'cuda':
        return platform.processor() or platform.machine(), {}
    name = torch.cuda.get_device_name(device)
    for pattern, label, peaks in PEAKS:
        if re.search(pattern, name, re.IGNORECASE):
            return f'{name} (peaks of the {label})', peaks
    return f'{name} (not in the table of peaks)', {}


def option_set(text: str) -> tuple[str, ...]:
    """``none``, ``fast``, ``all`` or options joined by ``+`` (``channels_last+fused``)."""
    if text in OPTION_SETS:
        return OPTION_SETS[text]
    names = tuple(text.split('+'))
    unknown = [n for n in names if n not in SPEED_OPTIONS]
    if unknown:
        raise ValueError(f"--options: unknown '{'+'.join(unknown)}'; use {', '.join(OPTION_SETS)} or "
                         f"'+'-joined names of {', '.join(SPEED_OPTIONS)}")
    return names


def skip_reason(device: torch.device, precision: str) -> str | None:
    """Why ``precision`` cannot run on ``device`` (None: it can)."""
    if device.type != 'cuda':
        return {'tf32': 'TF32 is a mode of CUDA tensor cores',
                'fp16': 'fp16 autocast and its grad scaler are for CUDA devices'}.get(precision)
    major = torch.cuda.get_device_capability(device)[0]
    if precision in ('tf32', 'bf16') and major < 8:
        return f'{precision} tensor cores need compute capability 8.0 (Ampere) or later'
    return None


def unsupported(device: torch.device, options: tuple[str, ...]) -> list[str]:
    return ['cudnn_benchmark'] if device.type != 'cuda' and 'cudnn_benchmark' in options else []


def set_tf32(on: bool) -> None:
    """TF32 for fp32 matrix products and cuDNN convolutions. The flags of PyTorch < 2.9, which newer versions
    keep in step with their per-backend ``fp32_precision`` (setting those instead leaves ``allow_tf32`` unreadable,
    which torch.compile's convolution templates read)."""
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = on


def method_options(name: str, method: Method, sets: list[str], quick: bool, scratch: Path) -> dict:
    """The method's resolved options, buildable without data or trained weights."""
    extra = (*method.quick, QUICK_BATCH) if quick else ()
    opt = load_options(REPO / method.recipe, [*NO_DATA, *method.sets, *extra, *sets], is_train=True)
    for term in opt['train'].get('losses', []):
        if term['type'] == 'VGGPerceptualLoss':  # no ImageNet file needed: random weights, the same FLOPs
            term['vgg_weights'] = 'random'
    if 'network_teacher' in opt:  # a randomly initialised teacher, saved where path.pretrain_network_teacher reads it
        weights = scratch / f'{name}_teacher.pth'
        torch.manual_seed(0)
        torch.save({'params': build(ARCH_REGISTRY, opt['network_teacher']).state_dict()}, weights)
        opt['path'].update(teacher=None, pretrain_network_teacher=str(weights))
    return opt


def hr_batch(opt: dict, device: torch.device) -> dict:
    """Real-photo crops of the recipe's training size: (B, 3, S, S), or (B, P, 3, S, S) with P patches per image."""
    data = opt['datasets']['train']
    batch, size, patches = data['batch_size_per_gpu'], data['gt_size'], data.get('num_patches', 1)
    gt = photo_batch(batch * patches, size).to(device)
    return {'gt': gt.view(batch, patches, *gt.shape[1:]) if patches > 1 else gt}


def make_model(opt: dict, device: torch.device, precision: str, options: tuple[str, ...]):
    opt = copy.deepcopy(opt)
    train = opt['train']
    train['use_amp'] = USE_AMP[precision]
    for name in ('channels_last', 'compile', 'cudnn_benchmark'):
        train[name] = name in options
    if 'fused' in options:
        for key, optim in train.items():
            if key.startswith('optim_') and isinstance(optim, dict):
                optim['fused'] = True
    if device.type == 'cuda':
        set_tf32(precision != 'fp32')
        torch.backends.cudnn.benchmark = False  # BaseModel turns it on for train.cudnn_benchmark, never off
    torch._dynamo.reset()  # each compiled row compiles afresh (dynamo's per-function cache would fill up)
    torch.manual_seed(0)
    return lookup(MODEL_REGISTRY, opt['model_type'])(opt, device)


def release(device: torch.device) -> None:
    gc.collect()
    if device.type == 'cuda':
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def profile_method(opt: dict, batch: dict, device: torch.device, steps: int) -> dict:
    """FLOPs of one eager fp32 step, the batch's sizes and the degradation's time."""
    model = make_model(opt, device, 'fp32', ())
    model.feed_data(batch)
    with FlopCounterMode(display=False) as counter:
        model.optimize_parameters(1)
    info = {'batch': int(model.lq.shape[0]), 'lr_px': int(model.lq.shape[-1]),
            'hr_px': int(model.gt.shape[-1]), 'gflop_step': counter.get_total_flops() / 1e9,
            'degradation_ms': None}
    if model.degrader is not None:
        info['degradation_ms'] = 1000 * median_seconds(lambda: model.feed_data(batch), steps, device, warmup=1)
    return info


def time_row(opt: dict, batch: dict, device: torch.device, precision: str, options: tuple[str, ...],
             args: argparse.Namespace) -> tuple[float, dict]:
    """Median seconds per training step, and the row's other measurements: the steps timed (fewer than
    ``--steps`` where the last warm-up step says they would take over ``--row-seconds``), the peak GPU memory in
    GiB (None on CPU) and, with ``--profile K``, the K operations that took the most time over two more steps."""
    model = make_model(opt, device, precision, options)
    model.feed_data(batch)
    it = itertools.count(1)

    def step() -> None:
        model.optimize_parameters(next(it))

    last = None
    for _ in range(args.warmup):  # compilation and autotuning happen here
        last = median_seconds(step, 1, device, warmup=0)
    timed = args.steps if last is None else max(2, min(args.steps, int(args.row_seconds / last)))
    seconds = median_seconds(step, timed, device, warmup=0)
    extra = {'steps': timed, 'mem_gib': torch.cuda.max_memory_allocated(device) / 2 ** 30
             if device.type == 'cuda' else None}
    if args.profile:
        try:
            extra['top_ops'] = top_ops(step, device, args.profile)
        except Exception as err:  # noqa: BLE001 - a profiler that does not run here leaves the timing standing
            extra['top_ops'] = [{'op': failure(err), 'share': 0.0, 'calls': 0.0}]
    return seconds, extra


def top_ops(step, device: torch.device, k: int, steps: int = 2) -> list[dict]:
    """The ``k`` operations (CUDA kernels on a GPU) with the most self time over ``steps`` steps: name, share of
    all of it, calls per step."""
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == 'cuda' else [])
    with profile(activities=activities) as prof:
        for _ in range(steps):
            step()
        synchronize(device)
    attr = 'self_device_time_total' if device.type == 'cuda' else 'self_cpu_time_total'
    events = sorted((e for e in prof.key_averages() if getattr(e, attr) > 0), key=lambda e: -getattr(e, attr))
    total = sum(getattr(e, attr) for e in events)
    return [{'op': e.key[:120], 'share': getattr(e, attr) / total, 'calls': e.count / steps} for e in events[:k]]


def fill(row: dict, info: dict, seconds: float, first: float, peak: float | None) -> None:
    tflops = info['gflop_step'] / 1000 / seconds
    degrade = info['degradation_ms']
    row.update(status='ok', ms_step=1000 * seconds, images_s=info['batch'] / seconds, tflops=tflops,
               peak_tflops=peak, pct_peak=100 * tflops / peak if peak else None, speedup=first / seconds,
               degradation_ms=degrade,
               degradation_share=degrade / (degrade + 1000 * seconds) if degrade is not None else None)


def failure(err: Exception) -> str:
    return f"failed: {type(err).__name__}: {(str(err).splitlines() or [''])[0][:200]}"


def fmt(value, spec: str) -> str:
    return '-' if value is None else format(value, spec)


def print_row(row: dict) -> None:
    if row['status'] != 'ok':
        print(f"  {row['precision']:>5} {row['options']:<44} {row['status']}", flush=True)
        return
    print(f"  {row['precision']:>5} {row['options']:<44} {row['ms_step']:9.1f} {row['images_s']:8.1f} "
          f"{row['tflops']:7.3g} {fmt(row['pct_peak'], '6.1f'):>6} {row['speedup']:6.2f}x "
          f"{fmt(row['degradation_share'] and 100 * row['degradation_share'], '6.1f'):>6} "
          f"{fmt(row['mem_gib'], '6.1f'):>6} {row['note']}", flush=True)


def write(path: Path, result: dict) -> None:
    """The rows so far (a run cut short still leaves them): CSV for a .csv path, else JSON."""
    if path.suffix == '.csv':
        with path.open('w', newline='') as f:
            writer = csv.DictWriter(f, [*COLUMNS, 'note', 'batch', 'lr_px', 'hr_px', 'gflop_step', 'random_vgg',
                                        'recipe', 'device'], extrasaction='ignore')  # top_ops: JSON only
            writer.writeheader()
            for row in result['rows']:
                writer.writerow({**row, **result['methods'][row['method']], 'device': result['device']})
    else:
        path.write_text(json.dumps(result, indent=1))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--methods', default=','.join(METHODS), help=f"comma-separated: {', '.join(METHODS)}")
    parser.add_argument('-opt', help='benchmark this recipe instead (its datasets.train batch and gt_size)')
    parser.add_argument('--set', action='append', default=[], help='option override for every method')
    parser.add_argument('--precisions', default=','.join(PRECISIONS), help=f"comma-separated: {', '.join(PRECISIONS)}")
    parser.add_argument('--options', default='none,fast',
                        help=f"comma-separated option sets: none, fast ({'+'.join(OPTION_SETS['fast'])}), all, "
                             f"or '+'-joined names of {', '.join(SPEED_OPTIONS)}")
    parser.add_argument('--steps', type=int, default=10, help='timed steps per row (median)')
    parser.add_argument('--warmup', type=int, default=3, help='untimed steps first (compilation, autotuning)')
    parser.add_argument('--row-seconds', type=float, default=20,
                        help='fewer timed steps (2 at least) where --steps would take longer than this')
    parser.add_argument('--profile', type=int, default=0, metavar='K',
                        help='after each row, the K operations (GPU: kernels) that took the most time (JSON: top_ops)')
    parser.add_argument('--budget', type=float, default=None, help='seconds: rows not started by then are skipped')
    parser.add_argument('--device', default='auto')
    parser.add_argument('--quick', action='store_true', help='tiny networks and patches, batch 2, 2 steps (a CPU check)')
    parser.add_argument('--out', type=Path, help='write the rows here (.csv, else JSON) after each row')
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.warmup = min(args.steps, 2), min(args.warmup, 1)
    methods = {Path(args.opt).stem: Method(str(Path(args.opt).resolve()))} if args.opt else {}
    for name in [] if args.opt else args.methods.split(','):
        if name not in METHODS:
            raise ValueError(f"--methods: unknown '{name}'; known: {', '.join(METHODS)}")
        methods[name] = METHODS[name]
    precisions = args.precisions.split(',')
    if bad := [p for p in precisions if p not in PRECISIONS]:
        raise ValueError(f"--precisions: unknown '{','.join(bad)}'; known: {', '.join(PRECISIONS)}")
    option_sets = [option_set(text) for text in args.options.split(',')]

    _, device = dist.init_dist(args.device)
    logging.getLogger('blindsr').setLevel(logging.ERROR)  # not the random-VGG warning per row: the header says it
    device_name, peaks = device_peaks(device)
    result = {'device': device_name, 'torch': torch.__version__, 'peaks_tflops': peaks, 'methods': {}, 'rows': []}
    print(f'device: {device_name}; torch {torch.__version__}; dense peaks (TFLOPS) used: '
          f"{', '.join(f'{k} {v:g}' for k, v in peaks.items()) or 'none known (no share of the peak)'}")
    print('step = forward + backward + optimizer + EMA on a degraded batch; FLOPs of an eager fp32 step; '
          'speedup vs the method\'s first row; deg % = degradation / (degradation + step)')
    start = time.monotonic()

    def over_budget() -> str | None:
        spent = args.budget is not None and time.monotonic() - start > args.budget
        return f'skipped: --budget {args.budget:g} s spent' if spent else None

    with tempfile.TemporaryDirectory() as scratch:
        for name, method in methods.items():
            result['methods'][name] = info = {'recipe': method.recipe}
            method_status = over_budget()  # set: every row of the method gets it
            if method_status is None:
                try:
                    opt = method_options(name, method, args.set, args.quick, Path(scratch))
                    batch = hr_batch(opt, device)
                    info.update(profile_method(opt, batch, device, args.steps),
                                random_vgg=any(t.get('vgg_weights') == 'random' for t in opt['train']['losses']))
                except Exception as err:  # noqa: BLE001 - a method that cannot run (OOM ...) ends only its rows
                    method_status = failure(err)
                release(device)  # each model is freed before the next is built
            print(f"\n{name} ({method.recipe}): " + (method_status or
                  f"batch {info['batch']}, LR {info['lr_px']} -> HR {info['hr_px']} px, "
                  f"{info['gflop_step'] / 1000:.3g} TFLOP/step, degradation {fmt(info['degradation_ms'], '.1f')} ms"
                  + ('; VGG19 with random weights' if info['random_vgg'] else '')))
            print(f"  {'prec':>5} {'options':<44} {'ms/step':>9} {'img/s':>8} {'TFLOPS':>7} {'%peak':>6} "
                  f"{'speedup':>7} {'deg %':>6} {'GiB':>6}")
            first = None
            for precision, options in itertools.product(precisions, option_sets):
                dropped = unsupported(device, options)
                applied = tuple(o for o in options if o not in dropped)
                row = {'method': name, 'precision': precision, 'options': '+'.join(options) or 'none',
                       'note': f"{'+'.join(dropped)} not applied: cuDNN is CUDA only" if dropped else ''}
                reason = skip_reason(device, precision) or (row['note'] if dropped and not applied else None)
                row['status'] = method_status or (f'skipped: {reason}' if reason else over_budget())
                if row['status'] is None:
                    try:
                        seconds, extra = time_row(opt, batch, device, precision, applied, args)
                        first = first or seconds
                        fill(row, info, seconds, first, peaks.get(precision))
                        row.update(extra)
                    except Exception as err:  # noqa: BLE001 - one row failing (OOM, a compile error) ends only that row
                        row['status'] = failure(err)
                    release(device)
                result['rows'].append(row)
                print_row(row)
                for op in row.get('top_ops', []):
                    print(f"        {100 * op['share']:5.1f}%  {op['calls']:6.1f}/step  {op['op']}")
                if args.out:
                    write(args.out, result)
    print(f'\n{time.monotonic() - start:.0f} s in all')
    return result


if __name__ == '__main__':
    main()
