"""``BlindSRModel``: one SR network trained with its loss terms on HR-only data degraded per batch.

The model degrades HR batches on the device in ``feed_data`` through the degradation registry
(``degradation:`` in the options) unless the dataset already delivers LR images (paired data or
per-sample degradation in DataLoader workers). Any arch in the registry works as ``network_g``:
blindsr's (BSRNet ...) and BasicSR's (EDSR, RCAN, SwinIR, RRDBNet ...).
"""

from __future__ import annotations

import torch

from blindsr.data.image_io import as_float
from blindsr.losses import LossTerms
from blindsr.losses.terms import LOSS_TERM
from blindsr.models.base_model import OPTIMIZER, SCHEDULER, BaseModel
from blindsr.registry import MODEL_REGISTRY
from blindsr.schema import REQUIRED, ListOf, Value


@MODEL_REGISTRY.register()
class BlindSRModel(BaseModel):
    """SR network + the weighted terms of ``train.losses`` (L1 by default) + optional EMA; degradation
    applied per batch."""

    adversarial = False  # whether train.losses may hold a GAN term (a model with a discriminator)

    train_options = {
        **BaseModel.train_options,
        'total_iter': Value(int, REQUIRED, min=1),
        'optim_g': OPTIMIZER,
        'scheduler': SCHEDULER,
        'losses': ListOf(LOSS_TERM, default=[{'type': 'L1Loss', 'loss_weight': 1.0}]),
        'ema_decay': Value(float, 0, min=0, below=1),  # 0: no EMA copy
        'grad_clip': Value(float, None, min=0),  # max gradient norm; null: no clipping
    }

    def build_networks(self) -> None:
        self.net_g = self.add_network('net_g', self.opt['network_g'], trainable=self.is_train,
                                      frozen=self.frozen_parts())
        self.net_g.train(self.is_train)

    def frozen_parts(self) -> tuple[str, ...]:
        """Submodules of ``net_g`` that do not train in this run."""
        return ()

    # an encoder-only training stage (blindsr.models.stages), which this model does not have
    encoder_stage = False

    def build_losses(self, train: dict) -> LossTerms | None:
        return LossTerms(train['losses'], allow_adversarial=self.adversarial).to(self.device)

    def setup_training(self, train: dict) -> None:
        self.losses = self.build_losses(train)
        self.add_optimizer('net_g', self.net_g.parameters(), train['optim_g'], train['scheduler'])
        if train['ema_decay']:
            self.add_ema('net_g', train['ema_decay'])

    def feed_data(self, batch: dict) -> None:
        self.gt = as_float(batch['gt'].to(self.device, non_blocking=True))  # 8-bit crops arrive as uint8
        if 'lq' in batch:
            self.lq = as_float(batch['lq'].to(self.device, non_blocking=True))
            return
        if self.degrader is None:
            raise ValueError("The batch has no 'lq' and the options define no 'degradation' to make one: "
                             "add a top-level 'degradation:' section or use paired data.")
        self.lq, self.degradation_params = self.degrader(self.gt)
        # a pipeline that crops, sharpens or pools returns the target that goes with its LR
        self.gt = self.degradation_params.pop('gt', self.gt)

    def net_inputs(self, lq: torch.Tensor, gt: torch.Tensor | None) -> tuple[torch.Tensor, ...]:
        """What ``net_g`` is called with, in training and inference: the LR batch (a teacher that sees
        the HR image adds it)."""
        return (lq, )

    def generator_forward(self) -> tuple[torch.Tensor | None, dict[str, torch.Tensor]]:
        """The SR batch of the generator step and the loss terms it adds beyond the reconstruction terms
        (none here; a distilled student adds its KD term). No SR batch (None): an encoder-only stage."""
        with self.autocast():
            return self.wrapped['net_g'](*self.net_inputs(self.lq, self.gt)).float(), {}

    def optimize_parameters(self, it: int) -> dict[str, torch.Tensor]:
        sr, terms = self.generator_forward()
        if sr is not None:
            terms = {**self.losses.reconstruction(sr, self.gt), **terms}
        self.step('net_g', sum(terms.values()), clip=self.opt['train']['grad_clip'])
        self.update_ema()
        return {name: value.detach() for name, value in terms.items()}

    @torch.no_grad()
    def infer(self, lq: torch.Tensor, *, gt: torch.Tensor | None = None, name: str | None = None) -> torch.Tensor:
        net = self.ema.get('net_g', self.net_g)
        with self.eval_mode(), self.autocast():
            return net(*self.net_inputs(lq, gt)).float()
