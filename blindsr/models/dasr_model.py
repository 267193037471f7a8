"""``DASRModel``: a contrastive degradation encoder trained with its SR network on paired patches —
DASR's two stages (encoder-only InfoNCE, then L1 + InfoNCE) and CDSR's joint training, one model.

Each training sample is two HR patches of one image (``datasets.train.num_patches: 2``), degraded in
``feed_data`` in the pipeline's paired mode (the ``classic`` pipeline, preset ``dasr`` or
``cdsr_manet``), so both share one degradation (B, 2, 3, H, W). The query patch 0 goes through the arch
(``DASR`` or ``CDSR``: ``forward(x, embedding=True)`` gives ``(sr, embedding, head)``, ``forward(x,
sr=False)`` ``(embedding, head)``, ``.encoder`` is the query encoder, ``.rgb_range`` the value range it
works in); its MLP head is contrasted by :class:`~blindsr.archs.moco.MoCo` with the key encoder's head of
patch 1 against the queue. ``train.positives`` chooses what the key shares with its query
(:mod:`blindsr.degradations.pairs`: ``content_degradation``, the published training; ``degradation``;
``content``). ``train.stage``:

- ``encoder``: only the encoder trains (the generator is frozen), loss = InfoNCE;
- ``joint``: the whole network, loss = ``train.losses`` on (SR(patch 0), HR patch 0) + ``contrastive_weight``
  * InfoNCE, the encoder still trainable (SR gradients reach it through the representation).

``train.freeze_encoder_iter`` (CDSR's ``freeze_epoch``; default null: never): after that iteration the
query encoder's parameters stop training and the contrastive term is dropped (the MoCo step is skipped;
BatchNorm statistics keep updating, as in the authors' trainer). Under torchrun the network is then
wrapped anew for the parameters that still train.

The authors' L1 is on 0..255 values: their weight 1 is an L1 term with ``loss_weight: 255`` on blindsr's
[0, 1] images (the recipes in options/train/dasr and options/train/cdsr do that). MoCo's key encoder and
queue are saved in the training state (network ``moco``); a ``joint`` run started from an ``encoder``
run's weights (``path.pretrain_network_g``) starts a fresh key encoder (a copy of the trained query
encoder) and queue. The logged ``acc_contrast`` is the share of queries whose positive key beats the
whole queue.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from blindsr import dist
from blindsr.archs.moco import MoCo, info_nce_accuracy
from blindsr.data.image_io import as_float
from blindsr.degradations.pairs import POSITIVES, contrastive_pairs
from blindsr.losses import LossTerms
from blindsr.models.sr_model import BlindSRModel
from blindsr.models.stages import EncoderStage
from blindsr.registry import MODEL_REGISTRY
from blindsr.schema import Arguments, Value


@MODEL_REGISTRY.register()
class DASRModel(EncoderStage, BlindSRModel):
    """Options: ``network_g`` (``type: DASR`` or ``CDSR``), ``degradation`` (paired classic), ``train.stage``,
    ``train.contrastive_weight`` (1), ``train.positives`` (``content_degradation``),
    ``train.freeze_encoder_iter`` (null), ``moco: {queue_size: 8192, momentum: 0.999, temperature: 0.07}``."""

    sections = {'moco': Arguments(MoCo, 'MoCo', supplied=('encoder_q', 'dim'))}
    train_options = {**BlindSRModel.train_options,
                     **EncoderStage.stage_option,
                     'contrastive_weight': Value(float, 1.0, min=0),
                     'positives': Value(str, POSITIVES[0], choices=POSITIVES),
                     'freeze_encoder_iter': Value(int, None, min=0)}

    def build_networks(self) -> None:
        super().build_networks()
        if not hasattr(self.net_g, 'encoder'):
            raise ValueError(f"DASRModel needs an arch with a degradation encoder (type: DASR or CDSR), got "
                             f"{type(self.net_g).__name__}")

    def build_losses(self, train: dict) -> LossTerms | None:
        return None if self.encoder_stage else super().build_losses(train)

    def setup_training(self, train: dict) -> None:
        moco = MoCo(self.net_g.encoder, self.net_g.encoder.dim, **self.opt['moco']).to(self.device)
        dist.broadcast_module(moco)  # one queue: rank 0's random initial keys everywhere
        self.networks['moco'] = moco  # its key encoder and queue are part of the training state
        self.moco = moco
        self.contrastive_weight = train['contrastive_weight']
        self.encoder_frozen = False
        if self.encoder_stage and train['freeze_encoder_iter'] is not None:
            raise ValueError('train.freeze_encoder_iter freezes the encoder of a joint stage; the encoder stage '
                             'trains nothing else: remove it')
        super().setup_training(train)

    def feed_data(self, batch: dict) -> None:
        pairs = batch['lq'] if 'lq' in batch else batch['gt']
        if pairs.ndim != 5 or pairs.shape[1] != 2:
            raise ValueError('contrastive training needs two patches per image: set datasets.train.num_patches: 2 '
                             f'(got a batch of shape {tuple(pairs.shape)})')
        positives = self.opt['train']['positives']
        if 'lq' in batch or self.degrader is None:
            if positives != POSITIVES[0]:
                raise ValueError(f"train.positives: {positives} pairs patches across the batch as it degrades it: "
                                 "move 'degradation' from the dataset to the top level of the options")
            super().feed_data(batch)
        else:
            gt = as_float(batch['gt'].to(self.device, non_blocking=True))
            self.lq, self.gt, self.degradation_params = contrastive_pairs(self.degrader, gt, positives)

    def freeze_encoder(self) -> None:
        """Stop training the query encoder (``train.freeze_encoder_iter``); under torchrun, wrap the network
        anew so DDP expects gradients for the parameters that still train."""
        self.net_g.encoder.requires_grad_(False)
        self.encoder_frozen = True
        self.wrap('net_g')
        self.log_info('the degradation encoder is frozen; the contrastive term is dropped')

    def optimize_parameters(self, it: int) -> dict[str, torch.Tensor]:
        freeze_at = self.opt['train']['freeze_encoder_iter']
        if freeze_at is not None and it > freeze_at and not self.encoder_frozen:
            self.freeze_encoder()
        query, key = self.lq[:, 0], self.lq[:, 1]
        net = self.wrapped['net_g']
        with self.autocast():
            if self.losses is None:
                _, embedding = net(query, sr=False)
            else:
                sr, _, embedding = net(query, embedding=True)
        losses, total = {}, 0.0
        if not self.encoder_frozen:
            logits, labels = self.moco(embedding.float(), key * self.net_g.rgb_range, self.net_g.encoder)
            contrast = F.cross_entropy(logits, labels)
            losses = {'l_contrast': contrast.detach(), 'acc_contrast': info_nce_accuracy(logits.detach())}
            total = self.contrastive_weight * contrast
        if self.losses is not None:
            terms = self.losses.reconstruction(sr.float(), self.gt[:, 0])
            total = total + sum(terms.values())
            losses.update({name: value.detach() for name, value in terms.items()})
        self.step('net_g', total, clip=self.opt['train']['grad_clip'])
        self.update_ema()
        return losses
