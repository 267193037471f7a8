"""``train.stage``: the encoder-only warm-up that DASR and KDSR's aniso+noise student run before
training the whole network.

With ``stage: encoder`` only the degradation encoder trains: the generator ``G`` of the arch is frozen
before DDP wraps the network (so DDP expects gradients for the encoder alone and the optimizer holds
only its parameters) and the reconstruction terms of ``train.losses`` are not computed; the model's
own encoder loss (DASR's InfoNCE, KDSR's distillation term) drives it. ``stage: joint`` (the default)
trains everything. Each stage is its own option file; a joint stage starts from the encoder stage's
weights (``path.pretrain_network_g``).
"""

from __future__ import annotations

from blindsr.schema import Value

STAGES = ('encoder', 'joint')


class EncoderStage:
    """Mixin for a model whose arch holds a degradation encoder beside its generator ``G``;
    ``encoder_stage_frozen``: what does not train in the encoder stage (everything the encoder's loss
    does not reach: DDP expects a gradient for every trainable parameter)."""

    stage_option = {'stage': Value(str, 'joint', choices=STAGES)}
    encoder_stage_frozen: tuple[str, ...] = ('G', )

    @property
    def encoder_stage(self) -> bool:
        return self.is_train and self.opt['train']['stage'] == 'encoder'

    def frozen_parts(self) -> tuple[str, ...]:
        return self.encoder_stage_frozen if self.encoder_stage else ()
