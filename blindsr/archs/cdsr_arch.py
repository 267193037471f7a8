"""CDSR (Zhou et al., ACM MM 2022): a content- and degradation-aware embedding and an RRDB-SFT generator
fused with it by domain-query attention.

- LPE ("lightweight patch-based encoder", :class:`PatchEncoder`): a pixel branch (six conv + BatchNorm +
  LeakyReLU(0.1) layers, one of stride 2) and a patch branch (a 12x12 stride-12 patchify conv, then three
  3x3 layers), both pooled; an MLP maps the two pooled vectors to ``fea``. CSC ("codebook space
  compress"): ``fea`` attends over a bank of 1024 learned entries (softmax of ``fc_q(fea) . fc_k(bank)``,
  no temperature) and the attention-weighted raw bank is the embedding the generator consumes; an MLP
  head on it is what MoCo contrasts (:mod:`blindsr.archs.moco`).
- Generator: the embedding is compressed once (4 x Linear + PReLU) and conditions each of 10 RRDB_SFT
  blocks: an SFT layer (Linear, PReLU, Linear, Sigmoid -> a per-block vector ``d``) drives a DASR-style DA
  block whose convs are DQA (domain query attention: the pooled feature map queries ``d``; the result
  predicts a per-sample 3x3 depthwise kernel; plus a channel attention from ``d``), then three residual
  dense blocks. No mean shift, no bicubic skip; the upsampler is ONE 3x3 conv to ``3 s^2`` channels and
  PixelShuffle(s), even at x4.

Parameter names follow the authors' checkpoints (``G.*``, ``E.encoder_q.*``; 751 tensors), so their
released ``model_<epoch>_psnr_<psnr>.pt`` files load strictly; a live training state with MoCo's key
encoder and queue loads through the key converter DASR registers (:func:`from_authors_training_state`).

blindsr convention: input RGB in [0, 1], output in [0, 1] units (unclamped). The authors' network works
in 0..1 inside (``BlindSR.forward`` divides the trainer's 0..255 input by 255 and multiplies the SR by 255),
so blindsr runs it unscaled: ``rgb_range`` is 1 (DASR's is 255), and MoCo's key encoder sees [0, 1] too.
The authors' L1 on 0..255 values is ``loss_weight: 255`` on blindsr's images (options/train/cdsr).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from blindsr.archs.bsrnet_arch import RRDB
from blindsr.archs.common import SLOPE, DABlock, DegradationChannelAttention, DynamicDepthwiseConv, lrelu
from blindsr.archs.dasr_arch import from_authors_training_state
from blindsr.checkpoint import register_key_converter
from blindsr.registry import ARCH_REGISTRY

__all__ = ['CDSR', 'CDSRGenerator', 'PatchEncoder']


class _ConvBN(nn.Module):
    """Conv (with bias) + BatchNorm + LeakyReLU(0.1), named as the authors' ``ActConvWithBN``."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, padding: int = 0):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, kernel, stride, padding)
        self.bn1 = nn.BatchNorm2d(cout)

    def forward(self, x: Tensor) -> Tensor:
        return F.leaky_relu(self.bn1(self.conv1(x)), SLOPE)


def _mlp(cin: int, dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(cin, dim), lrelu(), nn.Linear(dim, dim))


class PatchEncoder(nn.Module):
    """LPE + CSC codebook: ``forward(x) -> (embedding, head)``, the CSC-compressed embedding (B, dim) the
    generator consumes and the MLP head MoCo contrasts. ``x`` in [0, 1], at least ``patch`` px on each side.

    Args: ``num_feat`` (base width, published 64; ``dim = 4 num_feat``), ``bank_size`` (codebook entries,
    1024), ``patch`` (the patchify window, 12).
    """

    def __init__(self, num_feat: int = 64, bank_size: int = 1024, patch: int = 12):
        super().__init__()
        c1, c2, dim = num_feat, 2 * num_feat, 4 * num_feat
        self.patch, self.dim = patch, dim
        self.conv1 = _ConvBN(3, c1, 7, padding=3)
        self.conv2 = _ConvBN(c1, c1, 1)
        self.conv3 = _ConvBN(c1, c2, 3, stride=2, padding=1)
        self.conv4 = _ConvBN(c2, c2, 1)
        self.conv5 = _ConvBN(c2, dim, 7, padding=3)
        self.conv6 = _ConvBN(dim, dim, 1)
        self.pconv1 = _ConvBN(3, c1, patch, stride=patch)
        self.pconv2 = _ConvBN(c1, c1, 3, padding=1)
        self.pconv3 = _ConvBN(c1, c2, 3, padding=1)
        self.pconv4 = _ConvBN(c2, dim, 3, padding=1)
        self.mlp1 = _mlp(2 * dim, dim)
        self.feature_bank = nn.Embedding(bank_size, dim)
        self.fc_q = nn.Linear(dim, dim)
        self.fc_k = nn.Linear(dim, dim)
        self.mlp = _mlp(dim, dim)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h, w = x.shape[-2:]
        if min(h, w) < self.patch:
            raise ValueError(f"CDSR's patch encoder needs LR inputs of at least {self.patch}x{self.patch} px "
                             f'(its patchify window), got {h}x{w}')
        pixel = x
        for layer in (self.conv1, self.conv2, self.conv3, self.conv4, self.conv5, self.conv6):
            pixel = layer(pixel)
        patches = x
        for layer in (self.pconv1, self.pconv2, self.pconv3, self.pconv4):
            patches = layer(patches)
        fea = self.mlp1(torch.cat([pixel.mean((2, 3)), patches.mean((2, 3))], 1))
        bank = self.feature_bank.weight
        attention = torch.softmax(self.fc_q(fea) @ self.fc_k(bank).T, 1)
        embedding = attention @ bank
        return embedding, self.mlp(embedding)


class _CrossModalAttention(nn.Module):
    """``forward(x, y)``: ``gamma * (softmax(q(x) k(y)^T) v(y)) + y`` over the C channels of the vectors
    ``x``, ``y`` (B, C); ``gamma`` starts at 0."""

    def __init__(self, channels: int):
        super().__init__()
        self.query_conv = nn.Linear(channels, channels)
        self.key_conv = nn.Linear(channels, channels)
        self.value_conv = nn.Linear(channels, channels)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        attention = torch.softmax(self.query_conv(x)[:, :, None] * self.key_conv(y)[:, None, :], -1)
        return self.gamma * (attention @ self.value_conv(y)[:, :, None])[:, :, 0] + y


class _DQA(DynamicDepthwiseConv):
    """Domain query attention: the pooled feature map queries ``d``; the result predicts the per-sample
    depthwise 3x3 kernel (LReLU, 1x1 conv); plus the input scaled by a channel attention from ``d``."""

    def __init__(self, channels: int, deg_dim: int, reduction: int):
        super().__init__(channels, channels)
        self.sf_attn = _CrossModalAttention(channels)
        self.conv = nn.Conv2d(channels, channels, 1)
        self.ca = DegradationChannelAttention(deg_dim, channels, reduction)

    def forward(self, x: Tensor, d: Tensor) -> Tensor:
        query = self.sf_attn(F.adaptive_avg_pool2d(x, 1).flatten(1), d)
        return self.conv(super().forward(x, query)) + self.ca(x, d)


class _SFT(nn.Module):
    """The block's vector ``d = fc(fea_map)`` (Linear, PReLU, Linear, Sigmoid) conditions a DA block of DQAs."""

    def __init__(self, num_feat: int, dim: int, reduction: int):
        super().__init__()
        self.fc = nn.Sequential(nn.Linear(dim, dim), nn.PReLU(), nn.Linear(dim, num_feat), nn.Sigmoid())
        self.dab = DABlock(num_feat, num_feat, reduction, da_conv=_DQA)

    def forward(self, x: Tensor, fea_map: Tensor) -> Tensor:
        return self.dab(x, self.fc(fea_map))


class _RRDBSFT(RRDB):
    """SFT layer, then three residual dense blocks; scaled residual around all."""

    def __init__(self, num_feat: int, num_grow_ch: int, dim: int, reduction: int):
        super().__init__(num_feat, num_grow_ch)
        self.SFT = _SFT(num_feat, dim, reduction)

    def forward(self, x: Tensor, fea_map: Tensor) -> Tensor:
        return self.RDB3(self.RDB2(self.RDB1(self.SFT(x, fea_map)))) * 0.2 + x


class CDSRGenerator(nn.Module):
    """The SR network ``G(x, embedding)``; ``x`` in [0, 1], output in the same units."""

    def __init__(self, scale: int, num_feat: int = 64, num_grow_ch: int = 32, num_block: int = 10, dim: int = 256,
                 reduction: int = 2):
        super().__init__()
        self.compress = nn.Sequential(*[m for _ in range(4) for m in (nn.Linear(dim, dim), nn.PReLU())])
        self.conv_first = nn.Conv2d(3, num_feat, 3, 1, 1)
        self.RRDB_trunk = nn.ModuleList([_RRDBSFT(num_feat, num_grow_ch, dim, reduction) for _ in range(num_block)])
        self.trunk_conv = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.upsampler = nn.Sequential(nn.Conv2d(num_feat, 3 * scale ** 2, 3, 1, 1), nn.PixelShuffle(scale))

    def forward(self, x: Tensor, embedding: Tensor) -> Tensor:
        fea_map = self.compress(embedding)
        first = self.conv_first(x)
        out = first
        for block in self.RRDB_trunk:
            out = block(out, fea_map)
        return self.upsampler(first + self.trunk_conv(out))


@ARCH_REGISTRY.register()
class CDSR(nn.Module):
    """CDSR: ``forward(lr) -> sr`` (both in [0, 1] units); ``lr`` at least 12 px on each side.

    Args:
        scale: 2, 3 or 4.
        num_feat, num_grow_ch, num_block, reduction: generator width, dense-block growth, RRDB_SFT
            blocks and DQA channel-attention reduction (published: 64, 32, 10, 2).
        enc_feat: encoder base width (published 64; the embedding has ``4 * enc_feat`` dims).
        bank_size: codebook entries (published 1024).

    ``embed(lr)`` is the embedding ``G`` consumes and ``restore(lr, embedding)`` the SR; ``forward`` is
    ``restore(lr, embed(lr))``. ``forward(x, embedding=True)`` returns ``(sr, embedding, head)`` (the
    contrastive MLP head of the embedding), ``forward(x, sr=False)`` only ``(embedding, head)`` (the
    encoder-only stage), as :class:`~blindsr.archs.dasr_arch.DASR` does.
    """

    rgb_range = 1.0  # the value range the network works in (see the module docstring)

    def __init__(self, scale: int = 4, num_feat: int = 64, num_grow_ch: int = 32, num_block: int = 10,
                 enc_feat: int = 64, bank_size: int = 1024, reduction: int = 2):
        super().__init__()
        if scale not in (2, 3, 4):
            raise ValueError(f'CDSR is defined for scales 2, 3 and 4, got {scale}')
        encoder = PatchEncoder(enc_feat, bank_size)
        self.G = CDSRGenerator(scale, num_feat, num_grow_ch, num_block, encoder.dim, reduction)
        self.E = nn.ModuleDict({'encoder_q': encoder})

    @property
    def encoder(self) -> PatchEncoder:
        return self.E['encoder_q']

    def embed(self, lq: Tensor) -> Tensor:
        return self.encoder(lq)[0]

    def restore(self, lq: Tensor, embedding: Tensor) -> Tensor:
        return self.G(lq, embedding)

    def forward(self, x: Tensor, embedding: bool = False, sr: bool = True):
        if sr and not embedding:
            return self.restore(x, self.embed(x))
        fea, head = self.encoder(x)
        if not sr:
            return fea, head
        return self.restore(x, fea), fea, head


register_key_converter(CDSR)(from_authors_training_state)
