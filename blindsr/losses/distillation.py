"""Distillation terms: a student's representation against a frozen teacher's (KDSR).

A term derived from :class:`DistillationLoss` is called as ``term(student, teacher)``, not on the SR
image; :class:`~blindsr.losses.terms.LossTerms` keeps such terms apart from the reconstruction terms,
and a model with a teacher (:class:`~blindsr.models.kdsr_model.Distillation`) computes them.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from blindsr.registry import LOSS_REGISTRY

__all__ = ['DistillationLoss', 'KDLoss']


class DistillationLoss(nn.Module):
    """Base of the terms on (student representation, teacher representation)."""


@LOSS_REGISTRY.register()
class KDLoss(DistillationLoss):
    """``loss_weight * KL(softmax(teacher / T) || softmax(student / T))``, averaged over the batch
    (``kl_div(..., reduction='batchmean')``, no T^2 factor), the teacher detached. KDSR uses T = 0.15
    on its implicit degradation representations (B, D)."""

    def __init__(self, loss_weight: float = 1.0, temperature: float = 0.15):
        super().__init__()
        if temperature <= 0:
            raise ValueError(f'KDLoss temperature must be > 0, got {temperature}')
        self.loss_weight = loss_weight
        self.temperature = temperature

    def forward(self, student: Tensor, teacher: Tensor) -> Tensor:
        log_p = F.log_softmax(student / self.temperature, dim=1)
        target = F.softmax(teacher.detach() / self.temperature, dim=1)
        return self.loss_weight * F.kl_div(log_p, target, reduction='batchmean')
