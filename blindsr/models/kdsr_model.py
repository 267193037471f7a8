"""KDSR (Xia et al., ICLR 2023): a teacher that sees LR and HR, then students that see only the LR and
learn the teacher's implicit degradation representation (IDR) by distillation.

- :class:`KDSRTeacherModel` trains ``KDSRTeacher`` (``network_g``) with ``train.losses`` (L1); the
  teacher's estimator sees LR ⊕ PixelUnshuffle(HR) in training *and* in evaluation, so it is
  evaluated only where HR images exist (``infer`` gets them from the evaluation).
- :class:`KDSRStudentModel` trains the student ``KDSR`` (``network_g``) against a frozen teacher
  (``network_teacher``: eval mode, no gradient, in no optimizer, never wrapped by DDP) with the
  reconstruction terms of ``train.losses`` plus its distillation term (``KDLoss``: KL of the
  temperature-softmaxed IDRs). ``train.stage: encoder`` is the aniso+noise recipe's warm-up (only
  ``E_st`` trains, on the distillation term alone).
- :class:`KDSRGANStudentModel` is the same student on the GAN engine (KDSR-GAN: L1 + KD + perceptual
  + adversarial with a discriminator).

The teacher's weights come from ``path.teacher`` — the *name* of the teacher's training run, found in
the same experiments folder as this run (its exported ``models/net_g_final.pth``, else its newest
training state) — or from a file (``path.pretrain_network_teacher``). Unless ``path.pretrain_network_g``
names other weights, the student's generator ``G`` starts as a copy of the teacher's and its
estimator ``E_st`` from scratch, as the authors' non-strict load does. ``train.teacher_gt_usm``
(KDSR-GAN V2's ``l1_gt_usm``/``percep_gt_usm``) gives the teacher the USM-sharpened HR; the loss
terms still compare with the plain HR.
"""

from __future__ import annotations

from pathlib import Path

import torch

from blindsr.checkpoint import load_pretrained
from blindsr.degradations.sharpen import usm_sharp
from blindsr.folders import run_weights
from blindsr.losses import LossTerms
from blindsr.models.gan_model import BlindSRGANModel
from blindsr.models.sr_model import BlindSRModel
from blindsr.models.stages import EncoderStage
from blindsr.registry import MODEL_REGISTRY
from blindsr.schema import Value

__all__ = ['KDSRGANStudentModel', 'KDSRStudentModel', 'KDSRTeacherModel']


@MODEL_REGISTRY.register()
class KDSRTeacherModel(BlindSRModel):
    """``network_g``: ``KDSRTeacher``; trained and evaluated with the HR image."""

    def net_inputs(self, lq: torch.Tensor, gt: torch.Tensor | None) -> tuple[torch.Tensor, ...]:
        if gt is None:
            raise ValueError('the KDSR teacher estimates the degradation from the LR and the HR image: it is '
                             'evaluated only on data with HR images (test its students on real LR images)')
        return lq, gt


class Distillation:
    """Mixin: a frozen teacher (``network_teacher``) whose IDR the student (``network_g``) learns."""

    path_options = {'teacher': Value(str, None)}  # the teacher's training run, by name
    distillation_options = {'teacher_gt_usm': Value(bool, False)}

    def build_networks(self) -> None:
        super().build_networks()
        if not self.is_train:
            return  # a student is tested alone
        if 'network_teacher' not in self.opt:
            raise ValueError(f'{type(self).__name__} needs network_teacher (e.g. {{type: KDSRTeacher, scale: 4}}).')
        paths = self.opt['path']
        self.teacher = self.add_network('net_teacher', self.opt['network_teacher'], trainable=False)
        if not paths.get('pretrain_network_teacher'):
            if not paths.get('teacher'):
                raise ValueError(f'{type(self).__name__} needs its teacher: set path.teacher to the name of the '
                                 "teacher's training run (or path.pretrain_network_teacher to a weights file).")
            weights = run_weights(paths['teacher'], Path(paths['experiments_root']).parent)
            self.log_info(f"net_teacher: loaded {load_pretrained(self.teacher, weights).source} "
                          f"(run '{paths['teacher']}')")
        if not paths.get('pretrain_network_g'):
            self.net_g.G.load_state_dict(self.teacher.G.state_dict())
            self.log_info("net_g: G copied from the teacher's G; E_st starts from scratch")

    def build_losses(self, train: dict) -> LossTerms:
        losses = LossTerms(train['losses'], allow_adversarial=self.adversarial, allow_distillation=True)
        if not losses.distillation:
            raise ValueError(f'{type(self).__name__} needs a distillation term in train.losses, e.g. '
                             '{type: KDLoss, temperature: 0.15, loss_weight: 1.0}.')
        return losses.to(self.device)

    def generator_forward(self) -> tuple[torch.Tensor | None, dict[str, torch.Tensor]]:
        teacher_gt = usm_sharp(self.gt) if self.opt['train']['teacher_gt_usm'] else self.gt
        with torch.no_grad(), self.autocast():
            teacher_idr = self.teacher.encode(self.lq, teacher_gt)[1].float()
        with self.autocast():  # through the DDP wrapper: the encoder stage runs the estimator alone
            if self.encoder_stage:
                sr, student_idr = None, self.wrapped['net_g'](self.lq, sr=False)
            else:
                sr, student_idr = self.wrapped['net_g'](self.lq, idr=True)
                sr = sr.float()
        terms = {name: term(student_idr.float(), teacher_idr) for name, term in self.losses.distillation.items()}
        return sr, terms


@MODEL_REGISTRY.register()
class KDSRStudentModel(Distillation, EncoderStage, BlindSRModel):
    """``network_g``: ``KDSR`` (the student), ``network_teacher``: ``KDSRTeacher``; ``train.losses`` with a
    ``KDLoss`` term; ``train.stage`` (``encoder``: KD-only warm-up of ``E_st``, ``joint``)."""

    train_options = {**BlindSRModel.train_options, **EncoderStage.stage_option, **Distillation.distillation_options}
    encoder_stage_frozen = ('G', 'E_st.compress')  # the KD term reaches E_st's E and mlp only


@MODEL_REGISTRY.register()
class KDSRGANStudentModel(Distillation, BlindSRGANModel):
    """KDSR-GAN's student: ``KDSRStudentModel``'s distillation on ``BlindSRGANModel``'s G/D steps."""

    train_options = {**BlindSRGANModel.train_options, **Distillation.distillation_options}
