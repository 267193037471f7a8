"""``DASRModel``: DASR's two training stages (encoder-only InfoNCE, then L1 + InfoNCE) on paired patches.

Each training sample is two HR patches of one image (``datasets.train.num_patches: 2``), degraded by
the ``classic`` pipeline in paired mode so both share one degradation (B, 2, 3, H, W). The query patch
0 goes through the arch (``DASR``); its MLP embedding is contrasted by :class:`~blindsr.archs.moco.MoCo`
with the key encoder's embedding of patch 1 against the queue. ``train.stage``:

- ``encoder``: only the encoder trains (the generator is frozen), loss = InfoNCE;
- ``joint``: the whole network, loss = ``train.losses`` on (SR(patch 0), HR patch 0) + ``contrastive_weight``
  * InfoNCE, the encoder still trainable (SR gradients reach it through the representation).

The authors' L1 is on 0..255 values: their weight 1 is an L1 term with ``loss_weight: 255`` on blindsr's
[0, 1] images (the recipes in options/train/dasr do that). MoCo's key encoder and queue are saved in
the training state (network ``moco``); a ``joint`` run started from an ``encoder`` run's weights
(``path.pretrain_network_g``) starts a fresh key encoder (a copy of the trained query encoder) and
queue. The logged ``acc_contrast`` is the share of queries whose positive key beats the whole queue.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from blindsr import dist
from blindsr.archs.moco import MoCo, info_nce_accuracy
from blindsr.losses import LossTerms
from blindsr.models.sr_model import BlindSRModel
from blindsr.models.stages import EncoderStage
from blindsr.registry import MODEL_REGISTRY
from blindsr.schema import Arguments, Value


@MODEL_REGISTRY.register()
class DASRModel(EncoderStage, BlindSRModel):
    """Options: ``network_g`` (``type: DASR``), ``degradation`` (paired classic), ``train.stage``,
    ``train.contrastive_weight`` (1), ``moco: {queue_size: 8192, momentum: 0.999, temperature: 0.07}``."""

    sections = {'moco': Arguments(MoCo, 'MoCo', supplied=('encoder_q', 'dim'))}
    train_options = {**BlindSRModel.train_options,
                     **EncoderStage.stage_option,
                     'contrastive_weight': Value(float, 1.0, min=0)}

    def build_networks(self) -> None:
        super().build_networks()
        if not hasattr(self.net_g, 'encoder'):
            raise ValueError(f"DASRModel needs an arch with a degradation encoder (type: DASR), got "
                             f"{type(self.net_g).__name__}")

    def build_losses(self, train: dict) -> LossTerms | None:
        return None if self.encoder_stage else super().build_losses(train)

    def setup_training(self, train: dict) -> None:
        moco = MoCo(self.net_g.encoder, self.net_g.encoder.dim, **self.opt['moco']).to(self.device)
        dist.broadcast_module(moco)  # one queue: rank 0's random initial keys everywhere
        self.networks['moco'] = moco  # its key encoder and queue are part of the training state
        self.moco = moco
        self.contrastive_weight = train['contrastive_weight']
        super().setup_training(train)

    def feed_data(self, batch: dict) -> None:
        super().feed_data(batch)
        if self.net_g.training and (self.lq.ndim != 5 or self.lq.shape[1] < 2):
            raise ValueError('DASR training needs two patches per image: set datasets.train.num_patches: 2 '
                             f'(got a batch of shape {tuple(self.lq.shape)})')

    def optimize_parameters(self, it: int) -> dict[str, torch.Tensor]:
        query, key = self.lq[:, 0], self.lq[:, 1]
        net = self.wrapped['net_g']
        with self.autocast():
            if self.losses is None:
                _, embedding = net(query, sr=False)
            else:
                sr, _, embedding = net(query, embedding=True)
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
