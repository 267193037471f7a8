"""DASR (Wang et al., CVPR 2021): a contrastive degradation encoder and a degradation-aware SR network.

The encoder (six conv + BN + LeakyReLU(0.1), global pooling) maps an LR image to a representation
``fea``; its MLP head gives the embedding the contrastive loss uses (:mod:`blindsr.archs.moco`). The
generator compresses ``fea`` once (Linear, no bias) and conditions every DA block with it: each
DA conv predicts a per-sample 3x3 depthwise kernel from it (applied with zero padding, then
LeakyReLU and a 1x1 conv) and adds the input scaled by a channel attention computed from it alone.
5 groups x 5 blocks, EDSR mean shift and upsampler.

Parameter names follow the authors' checkpoints (``G.*``, ``E.encoder_q.*``), so their released
``model_600.pt`` files load strictly: they hold no momentum encoder or queue, which live in
blindsr's model (:class:`~blindsr.models.dasr_model.DASRModel`), not in the arch.

blindsr convention: input RGB in [0, 1], output in [0, 1] units (unclamped). Inside, as the authors
compute it, everything runs in 0..``rgb_range`` (255): the encoder sees raw 0..255 values (no mean
shift), the generator mean-shifts them.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from blindsr.archs.common import DABlock, MeanShift, lrelu, upsampler
from blindsr.checkpoint import StateDict, register_key_converter
from blindsr.registry import ARCH_REGISTRY

__all__ = ['DASR', 'DegradationEncoder', 'DASRGenerator', 'from_authors_training_state']


class DegradationEncoder(nn.Module):
    """``forward(x) -> (fea, embedding)``: pooled representation (B, 4 * num_feat) and its MLP head.

    ``x`` is in 0..255 as the authors feed it unless ``input_scale`` says otherwise (blindsr's arch
    passes 0..255).
    """

    def __init__(self, num_feat: int = 64):
        super().__init__()
        widths = [(3, num_feat, 1), (num_feat, num_feat, 1), (num_feat, 2 * num_feat, 2),
                  (2 * num_feat, 2 * num_feat, 1), (2 * num_feat, 4 * num_feat, 2), (4 * num_feat, 4 * num_feat, 1)]
        layers: list[nn.Module] = []
        for cin, cout, stride in widths:
            layers += [nn.Conv2d(cin, cout, 3, stride, 1), nn.BatchNorm2d(cout), lrelu()]
        self.E = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1))
        dim = 4 * num_feat
        self.mlp = nn.Sequential(nn.Linear(dim, dim), lrelu(), nn.Linear(dim, dim))
        self.dim = dim

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        fea = self.E(x).flatten(1)
        return fea, self.mlp(fea)


class _Residual(nn.Module):
    """``body[:-1]`` conditioned blocks, then the plain conv ``body[-1]``; plus the input."""

    def __init__(self, blocks: list[nn.Module], channels: int):
        super().__init__()
        self.body = nn.ModuleList([*blocks, nn.Conv2d(channels, channels, 3, 1, 1)])

    def forward(self, x: Tensor, d: Tensor) -> Tensor:
        out = x
        for block in self.body[:-1]:
            out = block(out, d)
        return self.body[-1](out) + x


class DASRGenerator(nn.Module):
    """The SR network ``G(x, fea)``; ``x`` in 0..rgb_range, output in the same units."""

    def __init__(self, scale: int, num_feat: int = 64, num_group: int = 5, num_block: int = 5, rep_dim: int = 256,
                 reduction: int = 8, rgb_range: float = 255.0):
        super().__init__()
        deg_dim = num_feat
        self.compress = nn.Sequential(nn.Linear(rep_dim, deg_dim, bias=False), lrelu())
        self.sub_mean = MeanShift(rgb_range, -1)
        self.add_mean = MeanShift(rgb_range, 1)
        self.head = nn.Sequential(nn.Conv2d(3, num_feat, 3, 1, 1))
        groups = [_Residual([DABlock(num_feat, deg_dim, reduction) for _ in range(num_block)], num_feat)
                  for _ in range(num_group)]
        self.body = nn.ModuleList([*groups, nn.Conv2d(num_feat, num_feat, 3, 1, 1)])
        self.tail = nn.Sequential(upsampler(scale, num_feat), nn.Conv2d(num_feat, 3, 3, 1, 1))

    def forward(self, x: Tensor, fea: Tensor) -> Tensor:
        d = self.compress(fea)
        x = self.head(self.sub_mean(x))
        res = x
        for group in self.body[:-1]:
            res = group(res, d)
        res = self.body[-1](res) + x
        return self.add_mean(self.tail(res))


@ARCH_REGISTRY.register()
class DASR(nn.Module):
    """DASR: ``forward(lr) -> sr`` (both in [0, 1] units).

    Args:
        scale: 2, 3 or 4.
        num_feat, num_group, num_block, reduction: generator width, groups, blocks per group and
            channel-attention reduction (published: 64, 5, 5, 8).
        enc_feat: encoder base width (published 64; the representation has ``4 * enc_feat`` dims).
        rgb_range: the value range the network works in (255, as trained).
        zero_representation: feed the generator a zero representation (an ablation: how much does
            the degradation embedding help a trained network?).

    ``forward(x, embedding=True)`` returns ``(sr, fea, emb)`` (the representation and the contrastive
    embedding of ``x``), ``forward(x, sr=False)`` only ``(fea, emb)`` (the encoder-only stage).
    ``forward(x)`` is ``restore(x, embed(x))``; tiled inference (:mod:`blindsr.tiling`) embeds the
    whole image once and restores each tile with that representation.
    """

    def __init__(self, scale: int = 4, num_feat: int = 64, num_group: int = 5, num_block: int = 5,
                 enc_feat: int = 64, reduction: int = 8, rgb_range: float = 255.0,
                 zero_representation: bool = False):
        super().__init__()
        if scale not in (2, 3, 4):
            raise ValueError(f'DASR is defined for scales 2, 3 and 4, got {scale}')
        self.rgb_range = rgb_range
        self.zero_representation = zero_representation
        encoder = DegradationEncoder(enc_feat)
        self.G = DASRGenerator(scale, num_feat, num_group, num_block, encoder.dim, reduction, rgb_range)
        self.E = nn.ModuleDict({'encoder_q': encoder})

    @property
    def encoder(self) -> DegradationEncoder:
        return self.E['encoder_q']

    def embed(self, x: Tensor) -> Tensor:
        """The representation ``fea`` of ``x`` that conditions the generator (what :meth:`restore` takes)."""
        return self.encoder(x * self.rgb_range)[0]

    def restore(self, x: Tensor, fea: Tensor) -> Tensor:
        """The SR image of ``x`` conditioned on ``fea`` (e.g. the representation of a whole image, for a tile of it)."""
        return self.G(x * self.rgb_range, torch.zeros_like(fea) if self.zero_representation else fea) / self.rgb_range

    def forward(self, x: Tensor, embedding: bool = False, sr: bool = True):
        fea, emb = self.encoder(x * self.rgb_range)
        if not sr:
            return fea, emb
        out = self.restore(x, fea)
        return (out, fea, emb) if embedding else out


@register_key_converter(DASR)
def from_authors_training_state(state_dict: StateDict) -> StateDict:
    """A live authors' ``BlindSR`` state dict (with MoCo's ``E.encoder_k.*``, ``E.queue``,
    ``E.queue_ptr``, which their trainer drops when saving) -> the arch's keys."""
    dropped = [k for k in state_dict if k.startswith('E.encoder_k.') or k in ('E.queue', 'E.queue_ptr')]
    if not dropped:
        raise ValueError('no MoCo key-encoder or queue entries to drop')
    return {k: v for k, v in state_dict.items() if k not in dropped}
