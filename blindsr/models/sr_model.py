"""``BlindSRModel``: one SR network trained with its loss terms on HR-only data degraded per batch.

The model degrades HR batches on the device in ``feed_data`` through the degradation registry
(``degradation:`` in the options) unless the dataset already delivers LR images (paired data or
per-sample degradation in DataLoader workers). Any arch in the registry works as ``network_g``:
blindsr's (BSRNet ...) and BasicSR's (EDSR, RCAN, SwinIR, RRDBNet ...).
"""

from __future__ import annotations

import zlib

import torch

from blindsr.dist import DistInfo
from blindsr.losses import LossTerms
from blindsr.losses.terms import LOSS_TERM
from blindsr.models.base_model import OPTIMIZER, SCHEDULER, BaseModel
from blindsr.registry import DEGRADATION_REGISTRY, MODEL_REGISTRY, build
from blindsr.schema import REQUIRED, ListOf, Value


@MODEL_REGISTRY.register()
class BlindSRModel(BaseModel):
    """SR network + the weighted terms of ``train.losses`` (L1 by default) + optional EMA; degradation
    applied per batch."""

    adversarial = False  # whether train.losses may hold a GAN term (a model with a discriminator)

    train_options = {
        'total_iter': Value(int, REQUIRED, min=1),
        'optim_g': OPTIMIZER,
        'scheduler': SCHEDULER,
        'losses': ListOf(LOSS_TERM, default=[{'type': 'L1Loss', 'loss_weight': 1.0}]),
        'ema_decay': Value(float, 0, min=0, below=1),  # 0: no EMA copy
        'use_amp': Value((bool, str), False, choices=(False, True, 'fp16', 'bf16')),  # True: fp16
        'grad_clip': Value(float, None, min=0),  # max gradient norm; null: no clipping
    }

    def __init__(self, opt: dict, device: torch.device, dist_info: DistInfo = DistInfo()):
        super().__init__(opt, device, dist_info)
        self.net_g = self.add_network('net_g', opt['network_g'], trainable=self.is_train)
        self.degradation = (build(DEGRADATION_REGISTRY, opt['degradation'], scale=opt['scale'])
                            if opt.get('degradation') else None)
        if self.is_train:
            train = opt['train']
            self.net_g.train()
            self.losses = LossTerms(train['losses'], allow_adversarial=self.adversarial).to(device)
            self.add_optimizer('net_g', self.net_g.parameters(), train['optim_g'], train.get('scheduler'))
            if train.get('ema_decay'):
                self.add_ema('net_g', train['ema_decay'])
        else:
            self.net_g.eval()

    def degrade(self, gt: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if self.degradation is None:
            raise ValueError("The batch has no 'lq' and the options define no 'degradation' to make one: "
                             "add a top-level 'degradation:' section or use paired data.")
        lq, self.degradation_params = self.degradation(gt, generator if generator is not None else self.generator)
        return lq

    def feed_data(self, batch: dict) -> None:
        self.gt = batch['gt'].to(self.device, non_blocking=True)
        if 'lq' in batch:
            self.lq = batch['lq'].to(self.device, non_blocking=True)
        else:
            self.lq = self.degrade(self.gt)
            # a pipeline that crops, sharpens or pools returns the target that goes with its LR
            self.gt = self.degradation_params.pop('gt', self.gt)

    # a stateful pipeline (Real-ESRGAN's training-pair pool) is saved and restored with the RNG streams
    def _rng_state(self) -> dict:
        state = super()._rng_state()
        if hasattr(self.degradation, 'state_dict'):
            state['degradation'] = self.degradation.state_dict()
        return state

    def _set_rng_state(self, state: dict) -> None:
        super()._set_rng_state(state)
        if hasattr(self.degradation, 'load_state_dict'):
            self.degradation.load_state_dict(state.get('degradation', {}))

    def degrade_for_eval(self, gt: torch.Tensor, name: str) -> torch.Tensor:
        """Degrade a validation image reproducibly: the generator is seeded by the image name."""
        generator = torch.Generator(device=self.device)
        generator.manual_seed(zlib.crc32(name.encode()) + self.opt.get('manual_seed', 0))
        training = getattr(self.degradation, 'training', None)
        if training is not None:
            self.degradation.training = False  # whole images: no training crops, no pair pool
        try:
            return self.degrade(gt, generator)
        finally:
            if training is not None:
                self.degradation.training = training

    def optimize_parameters(self, it: int) -> dict[str, torch.Tensor]:
        with self.autocast():
            output = self.wrapped['net_g'](self.lq)
        terms = self.losses.reconstruction(output.float(), self.gt)
        self.step('net_g', sum(terms.values()), clip=self.opt['train'].get('grad_clip'))
        self.update_ema()
        return {name: value.detach() for name, value in terms.items()}

    @torch.no_grad()
    def infer(self, lq: torch.Tensor) -> torch.Tensor:
        net = self.ema.get('net_g', self.net_g)
        with self.eval_mode(), self.autocast():
            return net(lq).float()
