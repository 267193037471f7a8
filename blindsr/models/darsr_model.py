"""DARSR (Zhou et al., ICCV 2023): per-image test-time correction in front of any non-blind SR network.

For each test image, from the image alone (:class:`Adaptation`, all of whose state lives in one call of
:meth:`DARSRModel.infer`):

1. **DSEM stage** — a fresh :class:`~blindsr.archs.darsr_arch.DSEM` learns to score crops of the image
   (``lr``) 1 and bicubic downscalings of its crops (``hr_bicubic``) 0: Adam (0.9, 0.999), lr
   ``darsr.lr_dsem`` halved every 100 iterations, ``darsr.dsem_iters`` iterations; then frozen.
2. **Joint stage** — the linear downsampler G, its patch discriminator D and DARM train together on the
   image's crops (:class:`~blindsr.data.internal_crops.InternalCrops`) through the frozen SR network
   ``network_sr`` (eval mode, no parameter gradient, gradients flow through it); see
   :meth:`Adaptation.step` for the losses. DARM's lr halves every 1000 iterations, G's and D's are
   divided by 4 every 750, and KernelGAN's lambda schedule runs (:mod:`blindsr.losses.kernelgan`).
3. The result is ``network_sr(DARM(LR))``; the plain ``network_sr(LR)`` is the baseline.

Selection (``darsr.selection``), named in every results table (:attr:`DARSRModel.results_label`):

- ``final``: the state after the last iteration of one joint run — what a user without ground truth
  gets (the authors' no-GT path).
- ``oracle``: ``darsr.runs`` joint runs, each scored against the ground truth (PSNR on Y, border = scale,
  8-bit) at iteration 0 and every ``darsr.eval_every`` iterations from ``darsr.eval_start`` on; the
  best-PSNR state wins. This is how the authors' reported numbers are selected (2 runs, every 10 from
  200). It needs ground truth and refuses to run without it. The last run's final state is scored too
  (``final_<metric>`` columns), so one oracle run shows what the selection is worth.

Every random number of an image comes from a seed made of ``manual_seed`` and the image's name (run r of
the joint stage adds r), inside :func:`torch.random.fork_rng`: a rerun gives the same outputs and the
caller's random state is untouched. :meth:`DARSRModel.extra_outputs` hands the evaluation the corrected
LR, the baseline SR and the learned kernel (enlarged, as an image) of the last image.

:class:`DARSRAdapter` is the same adaptation (selection ``final``) for ``python -m blindsr.infer``: it adapts
on the whole image once, then :func:`blindsr.tiling.upscale` tiles its SR step ``SR(DARM(x))``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
import torch
import torch.nn.functional as F
from basicsr.metrics import calculate_psnr
from basicsr.utils import tensor2img
from torch import Tensor, nn

from blindsr.archs.darsr_arch import DARM, DSEM, KernelGANDiscriminator, LinearDownsampler
from blindsr.data.internal_crops import InternalCrops
from blindsr.losses.kernelgan import KernelRegularization, LambdaSchedule, crop_like, sobel_magnitude
from blindsr.models.base_model import BaseModel
from blindsr.registry import MODEL_REGISTRY
from blindsr.schema import Section, Value
from blindsr.seeding import name_seed
from blindsr.tiling import _embed_view

__all__ = ['Adaptation', 'DARSRAdapter', 'DARSRModel', 'kernel_image']

SELECTIONS = ('final', 'oracle')

# the darsr: section; the defaults are the published settings (edbca/DARSR options.py, main.py)
OPTIONS = Section({
    'filters': Value(str, 'generated'),  # the 5x5 dictionary: a file (authors' kernel_72_k5.pkl) or 'generated'
    'selection': Value(str, 'final', choices=SELECTIONS),
    'dsem_iters': Value(int, 3000, min=0),
    'iters': Value(int, 3000, min=1),
    'crop_size': Value(int, 128, min=8),
    'batch_size': Value(int, 16, min=1),
    'lr_dsem': Value(float, 1e-4, min=0),
    'lr_darm': Value(float, 1e-3, min=0),
    'lr_g': Value(float, 2e-4, min=0),
    'lr_d': Value(float, 2e-4, min=0),
    'beta1': Value(float, 0.5, min=0, below=1),
    'lambda_cycle': Value(float, 5.0, min=0),
    'lambda_interp': Value(float, 2.0, min=0),
    'lambda_regularization': Value(float, 2.0, min=0),
    'runs': Value(int, 2, min=1),  # oracle: joint runs per image
    'eval_every': Value(int, 10, min=1),  # oracle: scoring interval
    'eval_start': Value(int, 200, min=0),  # oracle: first scored iteration after 0
    'log_every': Value(int, 100, min=1),
}, 'the darsr section')

DSEM_LR_STEP, DARM_LR_STEP = 100, 1000  # StepLR periods (gamma 0.5), stepped every iteration


def image_seed(base: int, name: str) -> int:
    return name_seed(base, name) % 2 ** 31


@contextmanager
def _seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Gradients on, torch's random state seeded with ``seed`` and restored afterwards."""
    devices = [device] if device.type == 'cuda' else []
    with torch.random.fork_rng(devices=devices), torch.enable_grad():
        torch.manual_seed(seed)
        yield


def kernel_image(kernel: Tensor, zoom: int = 16) -> Tensor:
    """(1, 3, k * zoom, k * zoom) in [0, 1]: the kernel divided by its largest value (negatives clipped),
    each tap a zoom x zoom square."""
    k = (kernel / kernel.max().clamp_min(1e-12)).clamp(0, 1)
    return k.repeat_interleave(zoom, 0).repeat_interleave(zoom, 1).repeat(1, 3, 1, 1)


class Adaptation:
    """One image's DARSR state: DSEM, G, D, DARM, their optimizers and schedules. ``sr_net`` is the frozen
    SR network, ``opt`` the ``darsr`` section."""

    def __init__(self, sr_net: nn.Module, scale: int, opt: dict, device: torch.device) -> None:
        self.sr_net, self.scale, self.opt, self.device = sr_net, scale, opt, device
        self.dsem = DSEM().to(device)

    # ------------------------------------------------------------------ DSEM stage
    def dsem_optimizer(self) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.StepLR]:
        optimizer = torch.optim.Adam(self.dsem.parameters(), lr=self.opt['lr_dsem'], betas=(0.9, 0.999))
        return optimizer, torch.optim.lr_scheduler.StepLR(optimizer, DSEM_LR_STEP, 0.5)

    def dsem_step(self, batch: dict[str, Tensor], optimizer: torch.optim.Optimizer) -> Tensor:
        """Scores of bicubic crops -> 0, of the image's own crops -> 1 (MSE each); one Adam step."""
        optimizer.zero_grad(set_to_none=True)
        loss = (self.dsem(batch['hr_bicubic']) ** 2).mean() + ((self.dsem(batch['lr']) - 1) ** 2).mean()
        loss.backward()
        optimizer.step()
        return loss.detach()

    def freeze_dsem(self) -> None:
        self.dsem.eval().requires_grad_(False)

    def train_dsem(self, image: np.ndarray, seed: int, progress: _Progress) -> None:
        """The DSEM stage on crops of ``image`` (HWC uint8 RGB), then DSEM frozen."""
        o = self.opt
        optimizer, schedule = self.dsem_optimizer()
        crops = InternalCrops(image, self.scale, o['crop_size'], o['batch_size'], o['dsem_iters'], seed,
                              keys=('lr', 'hr_bicubic')) if o['dsem_iters'] else []  # what dsem_step reads
        for it, batch in enumerate(crops):
            loss = self.dsem_step(_to(batch, self.device), optimizer)
            schedule.step()
            progress.log(it, {'loss': loss})
        self.freeze_dsem()

    def train_joint(self, image: np.ndarray, seed: int, progress: _Progress,
                    after_step: Callable[[int], None] | None = None) -> None:
        """One joint run from fresh G, D and DARM on crops of ``image``, torch's random state seeded with
        ``seed``; ``after_step(it)`` after each iteration's step, before the schedules move on."""
        o = self.opt
        torch.manual_seed(seed)
        self.start_joint()
        for it, batch in enumerate(InternalCrops(image, self.scale, o['crop_size'], o['batch_size'], o['iters'], seed)):
            losses = self.step(_to(batch, self.device))
            if after_step is not None:
                after_step(it)
            self.update_schedules(it)
            progress.log(it, losses)

    # ------------------------------------------------------------------ joint stage
    def start_joint(self) -> None:
        """Fresh G, D, DARM (in this order, as the authors construct them), optimizers and schedules."""
        o = self.opt
        self.G = LinearDownsampler(self.scale).to(self.device)
        self.D = KernelGANDiscriminator().to(self.device)
        self.darm = DARM(o['filters']).to(self.device)
        betas = (o['beta1'], 0.999)
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=o['lr_g'], betas=betas)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=o['lr_d'], betas=betas)
        self.opt_darm = torch.optim.Adam(self.darm.parameters(), lr=o['lr_darm'], betas=betas)
        self.darm_schedule = torch.optim.lr_scheduler.StepLR(self.opt_darm, DARM_LR_STEP, 0.5)
        self.regularization = KernelRegularization(self.scale, LinearDownsampler.kernel_size).to(self.device)
        self.lambdas = LambdaSchedule()

    def step(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """One joint iteration (the authors' train_G then train_D); returns every loss term, unweighted
        regularisation terms prefixed ``reg_``.

        HR flow: ``fake_lr = G(hr)``, ``rec = DARM(fake_lr)``, ``sr = SR(rec)``; LR flow: ``adapt = DARM(lr)``,
        ``lr_sr = SR(adapt)``, ``rec_lr = G(lr_sr)``. G and DARM minimise: LSGAN ``(D(fake_lr) - 1)^2``;
        cycle ``lambda_cycle * (|rec - hr_bicubic| + |sr - hr| + |rec_lr - lr|)`` (targets cropped to
        size); DSEM score MSEs pulling ``rec`` and ``adapt`` to the score of ``hr_bicubic`` (zero) and
        ``fake_lr`` and ``rec_lr`` to the score of ``lr`` (one); ``lambda_interp * |lr_sr - lr_up|`` where
        the Sobel magnitude of ``lr_up`` is below 1; ``lambda_regularization`` * KernelGAN's regularisation
        of G's kernel. D minimises ``0.5 * ((D(lr) - 1)^2 + D(fake_lr)^2)``.
        """
        o, hr, hr_bic, lr, lr_up = self.opt, batch['hr'], batch['hr_bicubic'], batch['lr'], batch['lr_up']
        self.D.requires_grad_(False)
        self.opt_darm.zero_grad(set_to_none=True)
        self.opt_g.zero_grad(set_to_none=True)
        fake_lr = self.G(hr)
        rec = self.darm(fake_lr)
        sr = self.sr_net(rec)
        adapt = self.darm(lr)
        lr_sr = self.sr_net(adapt)
        rec_lr = self.G(lr_sr)
        score_bicubic = self.dsem(crop_like(hr_bic, rec))
        score_own = self.dsem(crop_like(lr, rec_lr))
        score_fake, score_rec = self.dsem(fake_lr), self.dsem(rec)
        score_adapt, score_rec_lr = self.dsem(crop_like(adapt, fake_lr)), self.dsem(rec_lr)
        mask = 1 - sobel_magnitude(lr_up).clamp(0, 1)
        reg = self.regularization(self.G.effective_kernel(), hr, fake_lr)
        terms = {
            'gan': _lsgan(self.D(fake_lr), True),
            'cycle_forward': o['lambda_cycle'] * (F.l1_loss(rec, crop_like(hr_bic, rec)) +
                                                  F.l1_loss(sr, crop_like(hr, sr))),
            'cycle_backward': o['lambda_cycle'] * F.l1_loss(rec_lr, crop_like(lr, rec_lr)),
            'interp': o['lambda_interp'] * F.l1_loss(lr_sr * mask, lr_up * mask),
            'regularization': o['lambda_regularization'] * reg,
            'zero': ((score_rec - score_bicubic) ** 2).mean() + ((score_adapt - score_bicubic) ** 2).mean(),
            'one': ((score_fake - score_own) ** 2).mean() + ((score_rec_lr - score_own) ** 2).mean(),
        }
        sum(terms.values()).backward()
        self.opt_darm.step()
        self.opt_g.step()
        self.D.requires_grad_(True)
        self.opt_d.zero_grad(set_to_none=True)
        pred_fake = self.D(fake_lr.detach())
        pred_real = self.D(crop_like(lr, fake_lr))
        terms['d'] = 0.5 * (_lsgan(pred_real, True) + _lsgan(pred_fake, False))
        terms['d'].backward()
        self.opt_d.step()
        return {**{k: v.detach() for k, v in terms.items()},
                **{f'reg_{k}': v.detach() for k, v in self.regularization.terms.items()}}

    def update_schedules(self, iteration: int) -> None:
        """After iteration ``iteration``'s step (the authors' Learner.update)."""
        self.darm_schedule.step()
        self.lambdas.update(iteration, self.regularization, [self.opt_g, self.opt_d])

    @torch.no_grad()
    def correct(self, lq: Tensor) -> tuple[Tensor, Tensor]:
        """(corrected LR, its SR) for the whole image."""
        corrected = self.darm(lq)
        return corrected, self.sr_net(corrected)

    def sr_step(self, lq: Tensor) -> Callable[[Tensor], Tensor]:
        """``fn(x) = SR(DARM(x))`` for any part ``x`` of ``lq``, DARM's channel attention taken from ``lq`` (its
        centre crop of :data:`~blindsr.tiling.EMBED_SIZE` if larger), so tiles share it."""
        with torch.no_grad():
            attention = self.darm.attention(_embed_view(lq))

        def run(x: Tensor) -> Tensor:
            return self.sr_net(self.darm(x, attention))
        return run


def _lsgan(pred: Tensor, real: bool) -> Tensor:
    return F.mse_loss(pred, torch.full_like(pred, float(real)))


@MODEL_REGISTRY.register()
class DARSRModel(BaseModel):
    """``network_sr``: any registered non-blind SR network (SRFBN_S by default) with
    ``path.pretrain_network_sr``; ``darsr:`` the per-image adaptation's settings. Test-time only."""

    main_network = 'sr'
    sections = {'darsr': OPTIONS}

    def build_networks(self) -> None:
        if self.is_train:
            raise ValueError('DARSRModel adapts to each test image at test time: run it with python -m blindsr.test')
        self.net_sr = self.add_network('net_sr', self.opt['network_sr'], trainable=False)
        self._extra: dict[str, Tensor] = {}

    @property
    def results_label(self) -> str:
        o = self.opt['darsr']
        if o['selection'] == 'oracle':
            return (f"DARSR selection: ORACLE (best PSNR against the ground truth, every {o['eval_every']} "
                    f"iterations from {o['eval_start']}, over {o['runs']} runs)")
        return 'DARSR selection: final (state after the last iteration, no ground truth used)'

    def extra_outputs(self) -> dict[str, Tensor]:
        return self._extra

    def infer(self, lq: Tensor, *, gt: Tensor | None = None, name: str | None = None) -> Tensor:
        o = self.opt['darsr']
        if lq.shape[0] != 1:
            raise ValueError(f'DARSRModel adapts to one image at a time, got a batch of {lq.shape[0]}')
        if o['selection'] == 'oracle' and gt is None:
            raise ValueError(f"darsr.selection 'oracle' picks the state with the best PSNR against the ground "
                             f"truth, and image {name!r} has none: use selection 'final'")
        name = name or 'image'
        seed = image_seed(self.opt.get('manual_seed', 0), name)
        with _seeded(seed, self.device):
            return self._adapt(lq, gt, name, seed)

    def _adapt(self, lq: Tensor, gt: Tensor | None, name: str, seed: int) -> Tensor:
        o, scale = self.opt['darsr'], self.opt['scale']
        image = tensor2img(lq, rgb2bgr=False)
        adaptation = Adaptation(self.net_sr, scale, o, self.device)
        with torch.no_grad():
            baseline = self.net_sr(lq)
        adaptation.train_dsem(image, seed, _Progress(self.log_info, name, 'DSEM', o['dsem_iters'], o['log_every']))
        oracle = o['selection'] == 'oracle'
        gt_img = tensor2img(gt) if oracle else None
        best: tuple[float, Tensor, Tensor, Tensor, str] | None = None
        runs = o['runs'] if oracle else 1
        for run in range(runs):

            def score(it: int, run: int = run) -> None:  # the oracle's pick, against the ground truth
                nonlocal best
                if it == 0 or (it >= o['eval_start'] and it % o['eval_every'] == 0):
                    corrected, sr = adaptation.correct(lq)
                    psnr = calculate_psnr(tensor2img(sr), gt_img, crop_border=scale, test_y_channel=True)
                    if best is None or psnr > best[0]:
                        best = (psnr, corrected, sr, adaptation.G.effective_kernel().detach(),
                                f'run {run + 1} iteration {it}')

            stage = f'joint run {run + 1}/{runs}' if runs > 1 else 'joint'
            adaptation.train_joint(image, seed + run, _Progress(self.log_info, name, stage, o['iters'], o['log_every']),
                                   score if oracle else None)
        final_corrected, final_sr = adaptation.correct(lq)
        self._extra = {'baseline': baseline}
        if oracle:  # the last run's final state is scored beside the pick, as 'final_<metric>'
            psnr, corrected, sr, kernel, where = best
            self.log_info(f'{name}: oracle picked {where} (PSNR {psnr:.2f} dB against the ground truth)')
            self._extra['final'] = final_sr
        else:
            corrected, sr, kernel = final_corrected, final_sr, adaptation.G.effective_kernel().detach()
        self._extra.update(corrected=corrected, kernel=kernel_image(kernel))
        return sr



class DARSRAdapter(nn.Module):
    """DARSR around a trained SR network, for ``python -m blindsr.infer`` (a per-image adapter, see
    :mod:`blindsr.tiling`): ``adapt(lq)`` runs the per-image adaptation of :class:`DARSRModel` with selection
    ``final`` on the whole image (1, 3, H, W) and returns its SR step ``SR(DARM(x))`` with DARM's channel attention
    fixed to the image's (:meth:`Adaptation.sr_step`), which tiles; ``forward(lq)`` is ``adapt(lq)(lq)``, what
    ``DARSRModel.infer(lq)`` gives for an image up to :data:`~blindsr.tiling.EMBED_SIZE` px on a side.

    ``opt`` is a resolved ``darsr`` section (:data:`OPTIONS`); every image is seeded alike (``seed``, the
    options' ``manual_seed``); ``log`` gets the progress lines.
    """

    def __init__(self, sr_net: nn.Module, scale: int, opt: dict, seed: int = 0,
                 log: Callable[[str], None] | None = None) -> None:
        super().__init__()
        if opt['selection'] != 'final':
            raise ValueError(f"darsr.selection '{opt['selection']}' picks states against the ground truth, which "
                             "an image to upscale has not: use 'final'")
        self.sr_net = sr_net.eval().requires_grad_(False)
        self.scale, self.opt, self.seed, self.log = scale, opt, seed, log or logging.getLogger('blindsr').info

    def adapt(self, lq: Tensor) -> Callable[[Tensor], Tensor]:
        if lq.shape[0] != 1:
            raise ValueError(f'DARSR adapts to one image at a time, got a batch of {lq.shape[0]}')
        o, name = self.opt, 'image'
        seed = image_seed(self.seed, name)
        with _seeded(seed, lq.device):
            adaptation = Adaptation(self.sr_net, self.scale, o, lq.device)
            image = tensor2img(lq, rgb2bgr=False)
            adaptation.train_dsem(image, seed, _Progress(self.log, name, 'DSEM', o['dsem_iters'], o['log_every']))
            adaptation.train_joint(image, seed, _Progress(self.log, name, 'joint', o['iters'], o['log_every']))
        return adaptation.sr_step(lq)

    def forward(self, lq: Tensor) -> Tensor:
        with torch.no_grad():
            return self.adapt(lq)(lq)


def _to(batch: dict[str, Tensor], device: torch.device) -> dict[str, Tensor]:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


class _Progress:
    """Lines ``<image> <stage> it i/n  <losses>  <it/s>  ETA`` to ``log`` every ``every`` iterations and at the end."""

    def __init__(self, log: Callable[[str], None], name: str, stage: str, total: int, every: int) -> None:
        self.log_line, self.name, self.stage, self.total, self.every = log, name, stage, total, every
        self.start = time.perf_counter()

    def log(self, it: int, losses: dict[str, Tensor]) -> None:
        done = it + 1
        if done % self.every and done != self.total:
            return
        elapsed = time.perf_counter() - self.start
        rate = done / max(elapsed, 1e-9)
        values = '  '.join(f'{k} {float(v):.4g}' for k, v in losses.items())
        self.log_line(f'{self.name} {self.stage} it {done}/{self.total}  {values}  '
                            f'{rate:.2f} it/s  ETA {(self.total - done) / rate:.0f} s')

