"""BSRGAN's practical degradation model (``bsrgan``) and its BSRGAN+ variant (``bsrgan_plus``).

Every probability, range and ordering rule of KAIR's ``utils/utils_blindsr.py``
(``degradation_bsrgan`` / ``degradation_bsrgan_plus``; shared/reference/seed-implementations.md §6.2),
drawn per sample, run batched in torch on the device:

- ``bsrgan`` (x2, x3, x4): with x4, probability 0.25 of a first halving (cv2 resize with a random
  linear / cubic / area interpolation, or MATLAB bicubic, 1/2 each), after which the remaining factor
  is 2. Seven ops in a uniformly shuffled order, downsample2 always before downsample3: two blurs
  (1/2 anisotropic Gaussian with variances ``(4 + sf) U`` and theta ``pi U``, else isotropic with std
  ``(2 + 0.2 sf) U``; sizes ``2 randint(2, 11) + 3``; true convolution, mirror borders),
  downsample2 (p 0.75 a cv2 resize by ``1 / U[1, 2 sf]``, else a 25 x 25 Gaussian of std
  ``U[0.1, 0.6 sf]`` shifted ``(sf - 1) / 2`` px up-left and ``[0::sf]`` subsampling), downsample3
  (cv2 resize to the size before downsample2 divided by sf: the LR is always HR / scale), Gaussian
  noise (colour / gray / channel-correlated, level ``randint(2, 25)``), JPEG with probability 0.9,
  and the camera-ISP op (never: KAIR passes no ISP model). Then a final JPEG, quality
  ``randint(30, 95)``.
- ``bsrgan_plus``: optional USM sharpening of the input (which becomes the target), 13 ops (blur,
  resize, Gaussian noise, Poisson p 0.1, speckle p 0.1, ISP, JPEG, blur, resize, Gaussian noise,
  Poisson, speckle, ISP) fully shuffled with probability ``shuffle_prob``, else in order with ops 2-5
  and 9-12 shuffled among themselves; a final cv2 resize to HR / scale and a final JPEG.

How blindsr runs it: each sample's plan (op order and every parameter) is drawn from its own seed
(:class:`~blindsr.degradations.pipeline.Streams`); then each sample runs its own ops in its own order,
and samples whose next op and current size agree are processed together as one batch (blur kernels
built once per batch for every plan, blur as a grouped convolution or FFT, resizes as batched matrix
products); :func:`run_plans` picks which such group runs next so that the groups are large (with
``threads`` > 1 on the CPU, within chunks of the samples run on a pool of threads). The cv2 resizes are reproduced
exactly (:mod:`~blindsr.degradations.resize_modes`; on the CPU most run through ``cv2.resize`` itself).
JPEG is OpenCV's own codec by default, as KAIR calls it (``jpeg: opencv``; one image at a time on the
CPU, so on a GPU each JPEG op is a round trip to the host), or the batched on-device ``'libjpeg'`` flavour of
:func:`~blindsr.degradations.jpeg.jpeg` (``jpeg: libjpeg``: on KAIR's fixed-parameter reference chains
it differs from OpenCV by up to 9 levels, 0.5-1.4 on average, after two JPEG passes).

Differences from KAIR, by design: KAIR degrades an H_size crop and then crops an aligned
``lq_patchsize`` patch from the LR; here the dataset crops the HR patch and the whole patch is degraded,
unless ``lq_patchsize`` is given (then the aligned crop is made here and returned as ``params['gt']``).
No ISP model is available, as in KAIR's training.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

import torch
from torch import Tensor

from blindsr.degradations.blur import blur
from blindsr.degradations.jpeg import jpeg, jpeg_opencv
from blindsr.degradations.kernels import gaussian_kernels, shift_kernels
from blindsr.degradations.noise import (add_bsrgan_gaussian_noise, add_bsrgan_poisson_noise, add_speckle_noise,
                                        bsrgan_noise_mix, draw_bsrgan_gaussian_noise, sample_bsrgan_poisson_noise)
from blindsr.degradations.pipeline import Draw, Pipeline, Streams
from blindsr.degradations.resize import imresize
from blindsr.degradations.resize_modes import resize
from blindsr.degradations.sharpen import usm_sharp
from blindsr.degradations.threads import map_chunks
from blindsr.registry import DEGRADATION_REGISTRY

__all__ = ['BSRGANDegradation', 'BSRGANPlusDegradation', 'Step', 'run_plans']

CV2_MODES = ('bilinear', 'bicubic', 'area')  # KAIR's random.choice([1, 2, 3])
_SHIFTED_SIZE = 25  # downsample2's shifted Gaussian (add_blur's kernels are 7..25, each its own size)


@dataclass
class Step:
    """One op of one sample's plan: ``op`` names the function, ``key`` what must agree for samples to
    share a batch (besides the image size), ``values`` the sample's parameters, recorded under
    ``name`` in the returned params."""
    op: str
    name: str
    key: tuple = ()
    values: dict = field(default_factory=dict)


def _blur_step(d: Draw, sf: int, name: str) -> Step:
    """KAIR ``add_blur``: kernel parameters as covariance eigenvalues (variances), size, theta."""
    if d.uniform() < 0.5:
        l1, l2 = (4.0 + sf) * d.uniform(), (4.0 + sf) * d.uniform()
        size = 2 * d.randint(2, 11) + 3
        theta = d.uniform() * torch.pi
        values = {'var_x': l1, 'var_y': l2, 'theta': theta, 'size': size, 'isotropic': 0}
    else:
        size = 2 * d.randint(2, 11) + 3
        sigma = (2.0 + 0.2 * sf) * d.uniform()
        values = {'var_x': sigma ** 2, 'var_y': sigma ** 2, 'theta': 0.0, 'size': size, 'isotropic': 1}
    return Step('blur', name, (), values)


def _resize_step(d: Draw, name: str, size: tuple[int, int], clip: bool = True) -> Step:
    mode = d.choice(CV2_MODES)
    return Step('resize', name, (size, clip), {'mode': CV2_MODES.index(mode), 'out_h': size[0], 'out_w': size[1]})


def _noise_step(d: Draw, name: str, speckle: bool = False) -> Step:
    """The draws only: :func:`_mix_noise` makes the ``mix`` of every noise step of a batch at once."""
    draw = draw_bsrgan_gaussian_noise(1, generator=d.g)
    return Step('speckle' if speckle else 'noise', name, (), {k: v[0] for k, v in draw.items()})


def _mix_noise(plans: list[list[Step]]) -> None:
    """Replace the ``eig`` and ``basis`` draws of the plans' noise steps by their ``mix``, in one batched call
    (the same values as one call per step)."""
    steps = [s for plan in plans for s in plan if 'basis' in s.values]
    if steps:
        draws = {k: torch.stack([s.values.pop(k) for s in steps]) for k in ('eig', 'basis')}
        mixes = bsrgan_noise_mix(torch.stack([s.values['level'] for s in steps]),
                                 torch.stack([s.values['branch'] for s in steps]), **draws)
        for s, mix in zip(steps, mixes):
            s.values['mix'] = mix


def _blur_kernels(plans: list[list[Step]], device: torch.device) -> None:
    """Give every blur and shifted_down step of the plans its ``kernel`` (float64, on ``device``), built once per
    batch instead of per call (~0.1 ms each). Blur kernels come from one batched call on the largest size's grid,
    each zero outside its own size and normalised inside it: the same taps as building each group's kernels
    on its own largest grid (up to the float64 rounding of the sum); shifted_down's per scale factor."""
    steps = [s for plan in plans for s in plan if s.op == 'blur']
    if steps:
        sizes = [s.values['size'] for s in steps]
        kernels = gaussian_kernels(max(sizes), _stack(steps, 'var_x', device), _stack(steps, 'var_y', device),
                                   _stack(steps, 'theta', device), 'variance',
                                   support=torch.tensor(sizes, device=device), dtype=torch.float64)
        for s, kernel in zip(steps, kernels):
            s.values['kernel'] = kernel
    shifted = [s for plan in plans for s in plan if s.op == 'shifted_down']
    for sf in {s.key[0] for s in shifted}:
        steps = [s for s in shifted if s.key[0] == sf]
        sigma = _stack(steps, 'sigma', device)
        kernels = shift_kernels(gaussian_kernels(_SHIFTED_SIZE, sigma, sigma, dtype=torch.float64), (sf - 1) / 2)
        for s, kernel in zip(steps, kernels):
            s.values['kernel'] = kernel


def _jpeg_step(d: Draw, name: str) -> Step:
    return Step('jpeg', name, (), {'quality': d.randint(30, 95)})


# ----------------------------------------------------------------------------- execution


def _stack(steps: list[Step], name: str, device: torch.device, dtype=torch.float64) -> Tensor:
    return torch.tensor([s.values[name] for s in steps], dtype=dtype).to(device)


def _apply(op: str, x: Tensor, steps: list[Step], noise_gens: list[torch.Generator], jpeg_flavour: str) -> Tensor:
    """Run one op on a group ``x`` (n, 3, h, w) whose samples have the plans' ``steps``."""
    dev = x.device
    if op == 'blur':  # kernels of each sample's own odd size (built by _blur_kernels), on the group's largest grid
        kernels = torch.stack([s.values['kernel'] for s in steps])
        cut = (kernels.shape[-1] - max(s.values['size'] for s in steps)) // 2
        kernels = kernels[:, cut:kernels.shape[-1] - cut, cut:kernels.shape[-1] - cut]
        isotropic = [s.values['var_x'] == s.values['var_y'] for s in steps]  # separable
        return blur(x, kernels, 'reflect', flip=True, separable=isotropic)
    if op == 'shifted_down':  # an isotropic Gaussian shifted along both axes: separable
        sf = steps[0].key[0]
        kernels = torch.stack([s.values['kernel'] for s in steps])  # built by _blur_kernels
        return blur(x, kernels, 'reflect', flip=True, stride=sf, separable=True).clamp_(0, 1)  # [0::sf] samples
    if op == 'resize':
        size, clip = steps[0].key
        out = resize(x, size, [CV2_MODES[s.values['mode']] for s in steps])
        return out.clamp_(0, 1) if clip else out  # (resize's results are new tensors: clamped in place)
    if op == 'matlab_half':
        return imresize(x, 0.5).clamp_(0, 1)
    if op in ('noise', 'speckle'):
        mix = torch.stack([s.values['mix'] for s in steps])  # on the host: noise.py reads it there
        add = add_speckle_noise if op == 'speckle' else add_bsrgan_gaussian_noise
        return add(x, mix, noise_gens)
    if op == 'poisson':
        gray = [bool(s.values['gray']) for s in steps]
        return add_bsrgan_poisson_noise(x, _stack(steps, 'vals', dev, x.dtype), gray, noise_gens)
    if op == 'jpeg':  # OpenCV's codec reads the qualities on the host: no trip to the device and back
        if jpeg_flavour == 'opencv':
            return jpeg_opencv(x, _stack(steps, 'quality', 'cpu', torch.float32))
        return jpeg(x, _stack(steps, 'quality', dev, torch.float32), jpeg_flavour)
    raise ValueError(f'unknown BSRGAN op {op!r}')


def _out_size(step: Step, size: tuple[int, int]) -> tuple[int, int]:
    """The image size after ``step`` (what the scheduler groups by)."""
    if step.op == 'resize':
        return step.key[0]
    if step.op == 'matlab_half':
        return -(-size[0] // 2), -(-size[1] // 2)
    if step.op == 'shifted_down':
        return -(-size[0] // step.key[0]), -(-size[1] // step.key[0])
    return size


def run_plans(hr: Tensor, plans: list[list[Step]], noise_gens: list[torch.Generator],
              jpeg_flavour: str = 'opencv', threads: int = 1) -> list[Tensor]:
    """Execute per-sample plans on ``hr`` (B, 3, H, W). Returns the per-sample results (1, 3, h, w).

    Each sample runs its own steps in its own order; samples whose next step has the same op, key and
    image size run together as one batch. Which such group runs next is chosen to make the groups large:
    first one that holds every step of that kind still to come (no sample would join it later), the
    largest first, else the largest. A sample's result does not depend on that choice (up to the float
    rounding of batched kernels, as any grouping): its noise comes from its own generator. With
    ``threads`` > 1 the samples are split into contiguous chunks, each grouped so, run on that many
    threads (:mod:`~blindsr.degradations.threads`; for CPU batches). The plans' steps get their noise ``mix``
    and blur ``kernel`` values here, in place (built for the whole batch at once)."""
    _mix_noise(plans)
    _blur_kernels(plans, hr.device)
    return map_chunks(lambda s: _run_grouped(hr[s], plans[s], noise_gens[s], jpeg_flavour), len(plans), threads)


def _run_grouped(hr: Tensor, plans: list[list[Step]], noise_gens: list[torch.Generator],
                 jpeg_flavour: str) -> list[Tensor]:
    """:func:`run_plans` in the calling thread, on plans whose blur kernels are built."""
    images = list(hr.split(1))
    rows = [(hr, i) for i in range(len(plans))]  # each image is row k of the batch tensor b: (b, k)
    labels = []  # per sample: (op, key, input size) of each step
    for plan in plans:
        size, own = tuple(hr.shape[-2:]), []
        for step in plan:
            own.append((step.op, step.key, size))
            size = _out_size(step, size)
        labels.append(own)
    remaining = Counter(label for own in labels for label in own)
    cursor = [0] * len(plans)
    ready: dict[tuple, list[int]] = defaultdict(list)  # next step's label -> samples
    for i, own in enumerate(labels):
        if own:
            ready[own[0]].append(i)
    while ready:
        label = max(ready, key=lambda k: (remaining[k] == len(ready[k]), len(ready[k])))
        members = sorted(ready.pop(label))  # the label holds the input size: the images stack
        remaining[label] -= len(members)
        base, first = rows[members[0]]  # consecutive rows of one tensor: passed as a view, no copy
        if all(rows[i][0] is base and rows[i][1] == first + k for k, i in enumerate(members)):
            x = base[first:first + len(members)]
        else:
            x = torch.cat([images[i] for i in members])
        out = _apply(label[0], x, [plans[i][cursor[i]] for i in members], [noise_gens[i] for i in members],
                     jpeg_flavour)
        for k, (i, y) in enumerate(zip(members, out.split(1))):
            images[i], rows[i] = y, (out, k)
        for i in members:
            cursor[i] += 1
            if cursor[i] < len(labels[i]):
                ready[labels[i][cursor[i]]].append(i)
    return images


BLUR = ('var_x', 'var_y', 'theta', 'size', 'isotropic')
RESIZE = ('mode', 'out_h', 'out_w')
NOISE = ('level', 'branch', 'mix')


def _record(plans: list[list[Step]], schema: dict[str, tuple[str, ...]], device: torch.device) -> dict[str, Tensor]:
    """Per-sample tensors ``<step name>_<value>`` for every entry of the pipeline's ``schema`` (the same
    keys whatever was drawn, so per-sample results collate); NaN where a sample's plan has no such step."""
    steps = [{s.name: s.values for s in plan} for plan in plans]
    out = {}
    for name, fields in schema.items():
        for value in fields:
            if value == 'mix':
                rows = [s.get(name, {}).get(value, torch.full((3, 3), float('nan'))) for s in steps]
                out[f'{name}_{value}'] = torch.stack(rows).float().to(device)
            else:
                rows = [float(s.get(name, {}).get(value, float('nan'))) for s in steps]
                out[f'{name}_{value}'] = torch.tensor(rows, dtype=torch.float32, device=device)
    return out


class _KAIRPipeline(Pipeline):
    """Shared by ``bsrgan`` and ``bsrgan_plus``: options, plan execution, the aligned crop."""

    schema: dict[str, tuple[str, ...]] = {}  # recorded step names and their values

    def __init__(self, scale: int, jpeg: str = 'opencv', lq_patchsize: int | None = None, threads: int = 1):
        super().__init__(scale)
        if jpeg not in ('libjpeg', 'diffjpeg', 'opencv'):
            raise ValueError(f"jpeg must be 'libjpeg', 'diffjpeg' or 'opencv', got {jpeg!r}")
        self.jpeg = jpeg
        self.lq_patchsize = lq_patchsize
        if int(threads) < 1:
            raise ValueError(f'threads must be >= 1, got {threads}')
        self.threads = int(threads)

    def plan(self, d: Draw, h: int, w: int) -> tuple[list[int], list[Step]]:
        """The sample's op order and steps for an (h, w) input."""
        raise NotImplementedError

    def target(self, hr: Tensor) -> Tensor:
        """The image the LR is made from and trained against (BSRGAN+ may sharpen it)."""
        return hr

    def degrade(self, hr: Tensor, seeds: list[int]) -> tuple[Tensor, dict]:
        h, w = hr.shape[-2:]
        sf, patch = self.scale, self.lq_patchsize
        if h % sf or w % sf:
            raise ValueError(f'HR size {h}x{w} is not a multiple of scale {sf}; mod-crop the HR images first')
        if patch and (h < patch * sf or w < patch * sf):
            raise ValueError(f'HR size {h}x{w} is smaller than lq_patchsize {patch} x scale {sf}')
        streams = Streams(seeds, hr.device)
        draws = [Draw(g) for g in streams.params]
        orders, plans = zip(*(self.plan(d, h, w) for d in draws))
        gt = self.target(hr)
        threads = self.threads if hr.device.type == 'cpu' else 1
        lr = torch.cat(run_plans(gt, list(plans), streams.noise, self.jpeg, threads))
        params = {'order': torch.tensor(orders, device=hr.device), **_record(list(plans), self.schema, hr.device)}
        if patch and self.training:
            tops = [d.randint(0, lr.shape[-2] - patch) for d in draws]
            lefts = [d.randint(0, lr.shape[-1] - patch) for d in draws]
            if lr.shape[-2:] != (patch, patch):  # else the patch is the whole image (KAIR's H_size crops): no copy
                lr = torch.stack([lr[i, :, t:t + patch, l:l + patch] for i, (t, l) in enumerate(zip(tops, lefts))])
                gt = torch.stack([gt[i, :, t * sf:(t + patch) * sf, l * sf:(l + patch) * sf]
                                  for i, (t, l) in enumerate(zip(tops, lefts))])
            params['crop_top'] = torch.tensor(tops, device=hr.device)
            params['crop_left'] = torch.tensor(lefts, device=hr.device)
        if gt is not hr or (patch and self.training):  # a cropping pipeline always returns its target
            params['gt'] = gt
        return lr, params

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(scale={self.scale}, jpeg={self.jpeg!r}, lq_patchsize={self.lq_patchsize}, '
                f'threads={self.threads})')


class BSRGANDegradation(_KAIRPipeline):
    """Registered as ``bsrgan``: KAIR's ``degradation_bsrgan`` (see the module docstring).

    Args:
        scale: 2, 3 or 4 (the optional first halving only exists for 4).
        jpeg: ``'opencv'`` (default: KAIR's codec, CPU), ``'libjpeg'`` (batched torch, any device) or
            ``'diffjpeg'``.
        lq_patchsize: crop an aligned LR patch of this size after degrading (KAIR's last step).
        threads: CPU batches: threads the samples are split over (:mod:`~blindsr.degradations.threads`;
            faster for ``bsrgan_plus``, not for ``bsrgan``; the LR then depends on the split to float
            rounding); default 1: the whole batch in the caller.
    """

    schema = {'down1': RESIZE, 'blur0': BLUR, 'blur1': BLUR, 'down2': RESIZE + ('factor', 'sigma'), 'down3': RESIZE,
              'noise': NOISE, 'jpeg': ('quality',), 'jpeg_final': ('quality',)}

    def plan(self, d: Draw, h: int, w: int) -> tuple[list[int], list[Step]]:
        sf, steps, size = self.scale, [], (h, w)
        if sf == 4 and d.uniform() < 0.25:  # downsample1
            size = (int(1 / 2 * h), int(1 / 2 * w))
            if d.uniform() < 0.5:
                steps.append(_resize_step(d, 'down1', size))
            else:
                steps.append(Step('matlab_half', 'down1', (), {'mode': -1, 'out_h': size[0], 'out_w': size[1]}))
            sf = 2
        order = d.permutation(list(range(7)))
        i2, i3 = order.index(2), order.index(3)
        if i2 > i3:
            order[i2], order[i3] = 3, 2
        before_down2 = size
        for op in order:
            if op in (0, 1):
                steps.append(_blur_step(d, sf, f'blur{op}'))
            elif op == 2:
                before_down2 = size
                if d.uniform() < 0.75:
                    sf1 = d.uniform(1, 2 * sf)
                    size = (int(1 / sf1 * size[0]), int(1 / sf1 * size[1]))
                    steps.append(_resize_step(d, 'down2', size))
                    steps[-1].values['factor'] = sf1
                else:
                    steps.append(Step('shifted_down', 'down2', (sf,), {'sigma': d.uniform(0.1, 0.6 * sf)}))
                    size = (-(-size[0] // sf), -(-size[1] // sf))
            elif op == 3:
                size = (int(1 / sf * before_down2[0]), int(1 / sf * before_down2[1]))
                steps.append(_resize_step(d, 'down3', size))
            elif op == 4:
                steps.append(_noise_step(d, 'noise'))
            elif op == 5 and d.uniform() < 0.9:
                steps.append(_jpeg_step(d, 'jpeg'))
            # op 6, the camera ISP model: KAIR trains without one, so it never runs
            if min(size) < 1:
                raise ValueError(f'HR {h}x{w} is too small for the BSRGAN model at scale {self.scale}')
        steps.append(_jpeg_step(d, 'jpeg_final'))
        return order, steps


class BSRGANPlusDegradation(_KAIRPipeline):
    """Registered as ``bsrgan_plus``: KAIR's ``degradation_bsrgan_plus`` (see the module docstring).

    Args:
        scale, jpeg, lq_patchsize, threads: as :class:`BSRGANDegradation`.
        shuffle_prob: probability of a full shuffle (KAIR's training JSON 0.1; function default 0.5).
        use_sharp: USM-sharpen the HR first; it becomes the target (``params['gt']``). KAIR's
            training JSON: False.
    """

    schema = {**{f'{op}_{half}': fields for half in 'ab' for op, fields in (
        ('blur', BLUR), ('resize', RESIZE + ('factor',)), ('noise', NOISE), ('poisson', ('vals', 'gray')),
        ('speckle', NOISE))}, 'jpeg': ('quality',), 'resize_final': RESIZE, 'jpeg_final': ('quality',)}

    def __init__(self, scale: int, jpeg: str = 'opencv', lq_patchsize: int | None = None,
                 shuffle_prob: float = 0.1, use_sharp: bool = False, threads: int = 1):
        super().__init__(scale, jpeg, lq_patchsize, threads)
        self.shuffle_prob = float(shuffle_prob)
        self.use_sharp = bool(use_sharp)

    def target(self, hr: Tensor) -> Tensor:
        return usm_sharp(hr) if self.use_sharp else hr

    def plan(self, d: Draw, h: int, w: int) -> tuple[list[int], list[Step]]:
        sf, steps, size = self.scale, [], (h, w)
        if d.uniform() < self.shuffle_prob:
            order = d.permutation(list(range(13)))
        else:
            order = list(range(13))
            order[2:6] = d.permutation(order[2:6])
            order[9:13] = d.permutation(order[9:13])
        for op in order:
            half = 'a' if op < 7 else 'b'
            kind = op if op < 7 else op - 7  # 7..12 repeat 0..5: blur, resize, noise, Poisson, speckle, ISP
            if kind == 0:
                steps.append(_blur_step(d, sf, f'blur_{half}'))
            elif kind == 1:  # add_resize
                r = d.uniform()
                factor = d.uniform(1, 2) if r > 0.8 else d.uniform(0.5 / sf, 1) if r < 0.7 else 1.0
                size = (int(factor * size[0]), int(factor * size[1]))
                steps.append(_resize_step(d, f'resize_{half}', size))
                steps[-1].values['factor'] = factor
            elif kind == 2:
                steps.append(_noise_step(d, f'noise_{half}'))
            elif kind == 3 and d.uniform() < 0.1:
                draw = sample_bsrgan_poisson_noise(1, generator=d.g)
                steps.append(Step('poisson', f'poisson_{half}', (), {k: v[0] for k, v in draw.items()}))
            elif kind == 4 and d.uniform() < 0.1:
                steps.append(_noise_step(d, f'speckle_{half}', speckle=True))
            elif op == 6:
                steps.append(_jpeg_step(d, 'jpeg'))
            # ISP ops (5, 12): no camera model, as in KAIR's training
            if min(size) < 1:
                raise ValueError(f'HR {h}x{w} is too small for the BSRGAN+ model at scale {sf}')
        steps.append(_resize_step(d, 'resize_final', (int(1 / sf * h), int(1 / sf * w)), clip=False))  # KAIR: no clip
        steps.append(_jpeg_step(d, 'jpeg_final'))
        return order, steps

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(scale={self.scale}, jpeg={self.jpeg!r}, lq_patchsize={self.lq_patchsize}, '
                f'shuffle_prob={self.shuffle_prob}, use_sharp={self.use_sharp}, threads={self.threads})')


DEGRADATION_REGISTRY._do_register('bsrgan', BSRGANDegradation)
DEGRADATION_REGISTRY._do_register('bsrgan_plus', BSRGANPlusDegradation)
