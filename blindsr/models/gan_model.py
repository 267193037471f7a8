"""``BlindSRGANModel``: a generator trained adversarially against a discriminator (BSRGAN, ESRGAN style).

On top of :class:`~blindsr.models.sr_model.BlindSRModel` (degradation in ``feed_data``, EMA of G,
validation with G's EMA): a ``network_d`` (e.g. BasicSR's ``UNetDiscriminatorSN``, the U-Net
discriminator with spectral norm that KAIR's BSRGAN recipe uses under the name Discriminator_UNet,
or ``VGGStyleDiscriminator``) with its own optimizer ``train.optim_d``; ``train.losses`` holds the
reconstruction terms and exactly one adversarial term (BasicSR's ``GANLoss``: ``vanilla``,
``lsgan``, ``hinge``, ``wgan_softplus``).

One iteration, as KAIR's ``ModelGAN`` and BasicSR's ``SRGANModel`` do it:

1. G step (when ``it % net_d_iters == 0 and it > net_d_init_iters``): loss = reconstruction terms
   on (SR, HR) + the adversarial term on D(SR) with target "real"; D's parameters get no gradient.
2. D step (every iteration): D(HR) against "real", backward; D(SR, detached) against "fake", backward
   (KAIR's order; each DDP forward right before its backward); one optimizer step.
3. G's EMA is updated (every iteration, as KAIR and BasicSR do).

Logged: the G terms, ``l_d_real``, ``l_d_fake`` and the mean D outputs ``out_d_real``/``out_d_fake``.
Under torchrun each D forward must come right before its own backward: with both forwards first,
DDP reduces only the first backward's gradients and the ranks' discriminators drift apart
(tests/test_gan.py checks this). The G step calls the bare discriminator, as D does not train there.
"""

from __future__ import annotations

import torch

from blindsr.models.base_model import optimizer_class
from blindsr.models.sr_model import BlindSRModel
from blindsr.registry import MODEL_REGISTRY
from blindsr.schema import Component, Value


@MODEL_REGISTRY.register()
class BlindSRGANModel(BlindSRModel):
    """Options beyond BlindSRModel's: ``network_d``, ``train.optim_d``, ``train.net_d_iters`` (1: G is
    updated every iteration), ``train.net_d_init_iters`` (0: iterations that train D only)."""

    adversarial = True
    train_options = {**BlindSRModel.train_options,
                     # null: a copy of optim_g's settings
                     'optim_d': Component(optimizer_class, 'optimizer', default=None, supplied=('params', )),
                     'net_d_iters': Value(int, 1, min=1),
                     'net_d_init_iters': Value(int, 0, min=0)}

    def setup_training(self, train: dict) -> None:
        super().setup_training(train)
        if self.losses.adversarial is None:
            raise ValueError('BlindSRGANModel needs an adversarial term in train.losses, e.g. '
                             '{type: GANLoss, gan_type: lsgan, loss_weight: 1.0}.')
        if 'network_d' not in self.opt:
            raise ValueError('BlindSRGANModel needs a network_d section (e.g. {type: UNetDiscriminatorSN, '
                             'num_in_ch: 3, num_feat: 64}).')
        self.net_d = self.add_network('net_d', self.opt['network_d']).train()
        self.add_optimizer('net_d', self.net_d.parameters(), train['optim_d'] or train['optim_g'], train['scheduler'])
        self.net_d_iters = train['net_d_iters']
        self.net_d_init_iters = train['net_d_init_iters']

    def optimize_parameters(self, it: int) -> dict[str, torch.Tensor]:
        adversarial, clip = self.losses.adversarial, self.opt['train']['grad_clip']
        train_g = it % self.net_d_iters == 0 and it > self.net_d_init_iters
        with torch.set_grad_enabled(train_g):
            sr, extra = self.generator_forward()
        logs = {}
        if train_g:
            self.net_d.requires_grad_(False)
            terms = {**self.losses.reconstruction(sr, self.gt), **extra}
            with self.autocast():
                fake_g = self.net_d(sr).float()  # bare D: nothing of D is reduced or stepped here
            terms[self.losses.adversarial_name] = adversarial(fake_g, True, is_disc=False)
            self.step('net_g', sum(terms.values()), clip=clip)
            logs.update({name: value.detach() for name, value in terms.items()})
        self.net_d.requires_grad_(True)
        net_d, real, fake = self.wrapped['net_d'], {}, {}

        def d_loss(target: torch.Tensor, is_real: bool, record: dict) -> torch.Tensor:
            with self.autocast():
                out = net_d(target).float()
            record.update(out=out.detach().mean(), loss=adversarial(out, is_real, is_disc=True))
            return record['loss']

        self.step('net_d', lambda: d_loss(self.gt, True, real), lambda: d_loss(sr.detach(), False, fake), clip=clip)
        logs.update(l_d_real=real['loss'].detach(), l_d_fake=fake['loss'].detach(),
                    out_d_real=real['out'], out_d_fake=fake['out'])
        self.update_ema()  # every iteration, as KAIR and BasicSR do
        return logs
