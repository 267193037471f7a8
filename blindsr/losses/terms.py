"""``train.losses``: the weighted list of registered loss terms a model trains its generator with.

Each entry is a loss from the registry (BasicSR's ``L1Loss``, ``MSELoss``, ``CharbonnierLoss``,
``GANLoss`` ..., blindsr's ``VGGPerceptualLoss``, a plugin's own) with its ``loss_weight``, and an
optional ``name`` for the logs (default: BasicSR's log names ``l_pix``, ``l_percep``, ``l_g_gan`` for
pixel, perceptual and GAN terms, otherwise ``l_`` + the type without ``Loss``, lower case)::

    losses:
      - {type: L1Loss, loss_weight: 1.0}
      - {type: VGGPerceptualLoss, layer_weights: {conv5_4: 1.0}, loss_weight: 1.0}
      - {type: GANLoss, gan_type: lsgan, loss_weight: 1.0}

Reconstruction terms are called as ``term(sr, gt)``. A term whose class derives from BasicSR's
``GANLoss`` is the adversarial term: a model with a discriminator scores ``D(sr)`` with it and
trains the discriminator with it (``is_disc=True``, where BasicSR ignores ``loss_weight``). A term
derived from :class:`~blindsr.losses.distillation.DistillationLoss` (``KDLoss``) compares a student's
representation with its teacher's; only a model with a teacher takes one.
"""

from __future__ import annotations

import re

import torch
from basicsr.losses.gan_loss import GANLoss
from torch import nn

from blindsr.losses.distillation import DistillationLoss
from blindsr.registry import LOSS_REGISTRY, build
from blindsr.schema import Component, Value, registered

BASICSR_LOG_NAMES = {'L1Loss': 'l_pix', 'MSELoss': 'l_pix', 'CharbonnierLoss': 'l_pix',
                     'VGGPerceptualLoss': 'l_percep', 'GANLoss': 'l_g_gan'}


def default_name(kind: str) -> str:
    return BASICSR_LOG_NAMES.get(kind) or 'l_' + re.sub(r'loss$', '', kind.lower())


# one entry of train.losses: a registered loss with its own arguments, plus the log name
LOSS_TERM = Component(registered(LOSS_REGISTRY), 'loss', own={'name': Value(str, None)})


class LossTerms(nn.Module):
    """The terms of a ``train.losses`` list; ``adversarial`` is the GAN term or ``None``, ``distillation``
    the terms on (student, teacher) representations by name."""

    def __init__(self, specs: list[dict], allow_adversarial: bool = False, allow_distillation: bool = False) -> None:
        super().__init__()
        if not specs:
            raise ValueError('train.losses is empty: list at least one loss term.')
        self.terms = nn.ModuleDict()
        self.adversarial_name: str | None = None
        for spec in specs:
            spec = dict(spec)
            name = spec.pop('name', None) or default_name(spec['type'])
            if name in self.terms:
                raise ValueError(f"train.losses: two terms are named {name!r}; give each a distinct 'name'.")
            term = build(LOSS_REGISTRY, spec)
            if isinstance(term, GANLoss):
                if not allow_adversarial:
                    raise ValueError(f"train.losses: {spec['type']} is an adversarial term, but this model has no "
                                     'discriminator (use model_type: BlindSRGANModel with a network_d).')
                if self.adversarial_name is not None:
                    raise ValueError('train.losses: more than one adversarial (GANLoss) term.')
                self.adversarial_name = name
            if isinstance(term, DistillationLoss) and not allow_distillation:
                raise ValueError(f"train.losses: {spec['type']} compares a student with its teacher, but this model "
                                 'has no teacher (use a distillation model such as KDSRStudentModel).')
            self.terms[name] = term

    @property
    def adversarial(self) -> GANLoss | None:
        return self.terms[self.adversarial_name] if self.adversarial_name else None

    @property
    def distillation(self) -> dict[str, DistillationLoss]:
        return {name: term for name, term in self.terms.items() if isinstance(term, DistillationLoss)}

    def reconstruction(self, sr: torch.Tensor, gt: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every term on (sr, gt) — neither adversarial nor distillation — by name."""
        return {name: term(sr, gt) for name, term in self.terms.items()
                if name != self.adversarial_name and not isinstance(term, DistillationLoss)}
