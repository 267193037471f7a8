"""Real-ESRGAN's second-order degradation (``realesrgan``), with KDSR-GAN's settings as the default.

BasicSR's ``RealESRGANDataset`` (kernels, per sample) + ``RealESRGANModel.feed_data`` (the rest, on the
device), shared/reference/seed-implementations.md §4.3, reproduced with the authors' split of what is
drawn per sample and what once per batch:

- per sample: ``kernel1`` and ``kernel2`` (size odd 7..21; with ``sinc_prob`` a circular low-pass with
  ``omega_c`` ~ U[pi/3, pi] below size 13, else U[pi/5, pi]; otherwise BasicSR's mixed kernels),
  the final ``sinc_kernel`` (probability ``final_sinc_prob``, else a delta), noise levels, gray flags
  and JPEG qualities;
- per batch (drawn from the first sample's seed, as BasicSR draws them once per ``feed_data``): the
  up / down / keep choice, factor and mode of each resize, Gaussian vs Poisson noise, whether the
  second blur runs, which of [resize + sinc, JPEG] comes first at the end, and the crop position.

Ops: blur (``filter2D``: reflect padding, cross-correlation) → resize (``F.interpolate``) → noise →
clamp → JPEG (DiffJPEG, bit-identical) → blur2 (p ``second_blur_prob``) → resize to
``ori / scale * factor`` → noise → the two orders of [resize to ``ori / scale`` + sinc filter] and JPEG
→ 8-bit quantisation. ``sharpen_input`` blurs the USM-sharpened HR first (Real-ESRGAN) instead of the
HR itself (KDSR-GAN, the default). ``gt_size`` crops an aligned patch afterwards (BasicSR crops after
degrading 400 x 400 patches) and ``pool_size`` turns on the training-pair pool (BasicSR's
``_dequeue_and_enqueue``: until full the batch passes through; then each batch is swapped with a random
``B`` pairs of the shuffled pool). Both change the target, which is returned as ``params['gt']``.
The pool is part of the training state (:meth:`state_dict`). With the pool, the returned ``params``
describe the batch that was degraded (and entered the pool), not the pairs that came out of it.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from blindsr.degradations.blur import blur
from blindsr.degradations.jpeg import jpeg
from blindsr.degradations.kernels import mixed_kernels, sample_kernel_sizes, sample_mixed_params, sinc_kernels
from blindsr.degradations.noise import (add_gaussian_noise, add_poisson_noise, sample_gaussian_noise,
                                        sample_poisson_noise)
from blindsr.degradations.pipeline import Draw, Pipeline, Streams
from blindsr.degradations.resize_modes import quantize, resize
from blindsr.degradations.sharpen import usm_sharp
from blindsr.registry import DEGRADATION_REGISTRY

__all__ = ['RealESRGANDegradation']

RESIZE_MODES = ('area', 'bilinear', 'bicubic')
KERNEL_SIZE = 21

#: The options of KDSR-GAN's train_kdsrgan_x4*.yml (identical to Real-ESRGAN x4plus).
DEFAULTS = dict(
    kernel_list=('iso', 'aniso', 'generalized_iso', 'generalized_aniso', 'plateau_iso', 'plateau_aniso'),
    kernel_prob=(0.45, 0.25, 0.12, 0.03, 0.12, 0.03), sinc_prob=0.1, blur_sigma=(0.2, 3.0),
    betag_range=(0.5, 4.0), betap_range=(1.0, 2.0),
    kernel_list2=None, kernel_prob2=None, sinc_prob2=0.1, blur_sigma2=(0.2, 1.5),
    betag_range2=(0.5, 4.0), betap_range2=(1.0, 2.0), final_sinc_prob=0.8,
    resize_prob=(0.2, 0.7, 0.1), resize_range=(0.15, 1.5), gaussian_noise_prob=0.5, noise_range=(1.0, 30.0),
    poisson_scale_range=(0.05, 3.0), gray_noise_prob=0.4, jpeg_range=(30.0, 95.0),
    second_blur_prob=0.8, resize_prob2=(0.3, 0.4, 0.3), resize_range2=(0.3, 1.2), gaussian_noise_prob2=0.5,
    noise_range2=(1.0, 25.0), poisson_scale_range2=(0.05, 2.5), gray_noise_prob2=0.4, jpeg_range2=(30.0, 95.0),
)


class RealESRGANDegradation(Pipeline):
    """Registered as ``realesrgan``; every key of :data:`DEFAULTS` is an option, plus ``sharpen_input``,
    ``gt_size`` and ``pool_size`` (see the module docstring). ``scale`` is the overall factor (4)."""

    def __init__(self, scale: int, sharpen_input: bool = False, gt_size: int | None = None,
                 pool_size: int = 0, **options):
        super().__init__(scale)
        unknown = set(options) - set(DEFAULTS)
        if unknown:
            raise ValueError(f"Unknown realesrgan option(s) {sorted(unknown)}; known: {sorted(DEFAULTS)}")
        self.o = {**DEFAULTS, **options}
        self.o['kernel_list2'] = self.o['kernel_list2'] or self.o['kernel_list']
        self.o['kernel_prob2'] = self.o['kernel_prob2'] or self.o['kernel_prob']
        self.sharpen_input = bool(sharpen_input)
        self.gt_size = gt_size
        self.pool_size = int(pool_size)
        self.pool: dict[str, Tensor] | None = None  # 'lq', 'gt' and the filled count 'ptr'

    # ------------------------------------------------------------------ sampling
    def _kernel(self, g: torch.Generator, second: bool) -> dict[str, Tensor]:
        """One sample's kernel1 (or kernel2) parameters, as RealESRGANDataset draws them."""
        suffix = '2' if second else ''
        o, d = self.o, Draw(g)
        size = sample_kernel_sizes(1, 7, KERNEL_SIZE, generator=g)
        sinc = d.uniform() < o['sinc_prob' + suffix]
        omega = d.uniform(math.pi / 3 if size.item() < 13 else math.pi / 5, math.pi)
        mixed = sample_mixed_params(1, o['kernel_list' + suffix], o['kernel_prob' + suffix],
                                    o['blur_sigma' + suffix], o['blur_sigma' + suffix], (-math.pi, math.pi),
                                    o['betag_range' + suffix], o['betap_range' + suffix], generator=g)
        return {'size': size, 'sinc': torch.tensor([sinc]), 'omega_c': torch.tensor([omega]), **mixed}

    def _sample(self, g: torch.Generator) -> dict[str, Tensor]:
        o, d = self.o, Draw(g)
        k1, k2 = self._kernel(g, False), self._kernel(g, True)
        final = {'final_sinc': torch.tensor([d.uniform() < o['final_sinc_prob']]),
                 'final_size': sample_kernel_sizes(1, 7, KERNEL_SIZE, generator=g),
                 'final_omega_c': torch.tensor([d.uniform(math.pi / 3, math.pi)])}
        noise = {}
        for n, suffix in (('1', ''), ('2', '2')):
            gauss = sample_gaussian_noise(1, o['noise_range' + suffix], o['gray_noise_prob' + suffix], g)
            poisson = sample_poisson_noise(1, o['poisson_scale_range' + suffix], o['gray_noise_prob' + suffix], g)
            noise.update({f'noise{n}_sigma': gauss['sigma'], f'noise{n}_sigma_gray': gauss['gray'],
                          f'noise{n}_poisson_scale': poisson['scale'], f'noise{n}_poisson_gray': poisson['gray'],
                          f'jpeg{n}_quality': torch.tensor([d.uniform(*o['jpeg_range' + suffix])])})
        return {**{f'kernel1_{k}': v for k, v in k1.items()}, **{f'kernel2_{k}': v for k, v in k2.items()},
                **final, **noise}

    def _structure(self, g: torch.Generator) -> dict[str, float]:
        """The per-batch draws, in feed_data's order."""
        o, s, d = self.o, {}, Draw(g)
        for n, suffix in (('1', ''), ('2', '2')):
            if n == '2':
                s['blur2'] = float(d.uniform() < o['second_blur_prob'])
            probs = torch.tensor(o['resize_prob' + suffix], dtype=torch.float64)
            updown = int(torch.multinomial(probs, 1, generator=g))
            low, high = o['resize_range' + suffix]
            s[f'resize{n}_factor'] = d.uniform(1, high) if updown == 0 else d.uniform(low, 1) if updown == 1 else 1.0
            s[f'resize{n}_mode'] = float(torch.randint(3, (1,), generator=g))
            s[f'noise{n}_gaussian'] = float(d.uniform() < o['gaussian_noise_prob' + suffix])
        s['final_resize_first'] = float(d.uniform() < 0.5)
        s['final_mode'] = float(torch.randint(3, (1,), generator=g))
        return s

    @staticmethod
    def _kernels(p: dict[str, Tensor], prefix: str) -> Tensor:
        mixed = mixed_kernels(KERNEL_SIZE, p[prefix + 'kind'], p[prefix + 'sigma_x'], p[prefix + 'sigma_y'],
                              p[prefix + 'theta'], p[prefix + 'beta'], support=p[prefix + 'size'])
        sinc = sinc_kernels(p[prefix + 'size'], p[prefix + 'omega_c'], pad_to=KERNEL_SIZE)
        return torch.where(p[prefix + 'sinc'].reshape(-1, 1, 1), sinc, mixed)

    # ------------------------------------------------------------------ degradation
    def _noise(self, x: Tensor, p: dict, s: dict, n: str, gens: list) -> Tensor:
        if s[f'noise{n}_gaussian']:
            return add_gaussian_noise(x, p[f'noise{n}_sigma'], p[f'noise{n}_sigma_gray'], gens)
        return add_poisson_noise(x, p[f'noise{n}_poisson_scale'], p[f'noise{n}_poisson_gray'], gens)

    def degrade(self, hr: Tensor, seeds: list[int]) -> tuple[Tensor, dict]:
        h, w = hr.shape[-2:]
        sf = self.scale
        if h % sf or w % sf:
            raise ValueError(f'HR size {h}x{w} is not a multiple of scale {sf}; mod-crop the HR images first')
        streams = Streams(seeds, hr.device)
        p = streams.draw(self._sample)
        s = self._structure(streams.batch)
        p['kernel1'], p['kernel2'] = self._kernels(p, 'kernel1_'), self._kernels(p, 'kernel2_')
        delta = torch.zeros(KERNEL_SIZE, KERNEL_SIZE, device=hr.device)
        delta[KERNEL_SIZE // 2, KERNEL_SIZE // 2] = 1
        final = sinc_kernels(p['final_size'], p['final_omega_c'], pad_to=KERNEL_SIZE)
        p['sinc_kernel'] = torch.where(p['final_sinc'].reshape(-1, 1, 1), final, delta)
        gens = streams.noise

        out = blur(usm_sharp(hr) if self.sharpen_input else hr, p['kernel1'])
        out = resize(out, scale_factor=s['resize1_factor'], mode=RESIZE_MODES[int(s['resize1_mode'])],
                     backend='torch')
        out = self._noise(out, p, s, '1', gens)
        out = jpeg(out.clamp(0, 1), p['jpeg1_quality'])
        if s['blur2']:
            out = blur(out, p['kernel2'])
        size = (int(h / sf * s['resize2_factor']), int(w / sf * s['resize2_factor']))
        out = resize(out, size, RESIZE_MODES[int(s['resize2_mode'])], backend='torch')
        out = self._noise(out, p, s, '2', gens)
        final_mode = RESIZE_MODES[int(s['final_mode'])]
        if s['final_resize_first']:
            out = blur(resize(out, (h // sf, w // sf), final_mode, backend='torch'), p['sinc_kernel'])
            out = jpeg(out.clamp(0, 1), p['jpeg2_quality'])
        else:
            out = jpeg(out.clamp(0, 1), p['jpeg2_quality'])
            out = blur(resize(out, (h // sf, w // sf), final_mode, backend='torch'), p['sinc_kernel'])
        lq, gt = quantize(out), hr
        params = {**p, **{k: torch.full((len(streams),), v, device=hr.device) for k, v in s.items()}}
        if self.gt_size and self.training:
            lq, gt = self._crop(lq, gt, streams.batch)
        if self.pool_size and self.training:
            lq, gt = self._pool(lq, gt, streams.batch)
        if gt is not hr:
            params['gt'] = gt
        return lq, params

    def _crop(self, lq: Tensor, gt: Tensor, g: torch.Generator) -> tuple[Tensor, Tensor]:
        """BasicSR ``paired_random_crop``: one position for the whole batch."""
        sf, size = self.scale, self.gt_size // self.scale
        if self.gt_size % sf or lq.shape[-2] < size or lq.shape[-1] < size:
            raise ValueError(f'gt_size {self.gt_size} must be a multiple of scale {sf} and fit the LR '
                             f'{lq.shape[-2]}x{lq.shape[-1]} (x{sf})')
        top = int(torch.randint(lq.shape[-2] - size + 1, (1,), generator=g))
        left = int(torch.randint(lq.shape[-1] - size + 1, (1,), generator=g))
        return (lq[..., top:top + size, left:left + size],
                gt[..., top * sf:(top + size) * sf, left * sf:(left + size) * sf])

    def _pool(self, lq: Tensor, gt: Tensor, g: torch.Generator) -> tuple[Tensor, Tensor]:
        """BasicSR ``_dequeue_and_enqueue`` (training-pair pool)."""
        b = lq.shape[0]
        if self.pool_size % b:
            raise ValueError(f'pool_size {self.pool_size} must be a multiple of the batch size {b}')
        if self.pool is None:
            self.pool = {'lq': lq.new_zeros(self.pool_size, *lq.shape[1:]),
                         'gt': gt.new_zeros(self.pool_size, *gt.shape[1:]), 'ptr': torch.tensor(0)}
        pool, ptr = self.pool, int(self.pool['ptr'])
        pool['lq'], pool['gt'] = pool['lq'].to(lq.device), pool['gt'].to(gt.device)  # after load_state_dict
        if pool['lq'].shape[1:] != lq.shape[1:] or pool['gt'].shape[1:] != gt.shape[1:] or ptr % b:
            raise ValueError('the training-pair pool needs one batch size and one patch size (set gt_size)')
        if ptr < self.pool_size:
            pool['lq'][ptr:ptr + b], pool['gt'][ptr:ptr + b] = lq, gt
            pool['ptr'] = torch.tensor(ptr + b)
            return lq, gt
        order = torch.randperm(self.pool_size, generator=g).to(lq.device)
        pool['lq'], pool['gt'] = pool['lq'][order], pool['gt'][order]
        out_lq, out_gt = pool['lq'][:b].clone(), pool['gt'][:b].clone()
        pool['lq'][:b], pool['gt'][:b] = lq, gt
        return out_lq, out_gt

    def state_dict(self) -> dict:
        return {} if self.pool is None else {k: v.cpu() for k, v in self.pool.items()}

    def load_state_dict(self, state: dict) -> None:
        self.pool = None if not state else dict(state)

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(scale={self.scale}, sharpen_input={self.sharpen_input}, '
                f'gt_size={self.gt_size}, pool_size={self.pool_size})')


DEGRADATION_REGISTRY._do_register('realesrgan', RealESRGANDegradation)
