"""KDSR (Xia et al., ICLR 2023): a degradation estimator distilled from a teacher that also sees the HR image.

The estimator (KD-IDE) maps its input to an implicit degradation representation (IDR): convs with
LeakyReLU(0.1), residual blocks, global pooling, then an MLP with LeakyReLU after both layers; the
IDR (``4 * n_feats`` dims) is what distillation compares, and ``compress`` (Linear with bias +
LeakyReLU) turns it into the ``n_feats``-d vector that conditions the SR network. Each block of the
SR network (IDR-DCRB) applies a per-sample depthwise 3x3 conv whose kernels the vector predicts
(IDR-DDC, shared with DASR: :class:`~blindsr.archs.common.DynamicDepthwiseConv`; no 1x1 conv and no
channel attention, unlike DASR's DA conv), LeakyReLU and a 3x3 conv, plus the block input; EDSR
mean shift and upsampler around them.

- :class:`KDSRTeacher` (estimator ``E``) sees the LR image concatenated with PixelUnshuffle(HR)
  (3 + 3 s^2 channels, 51 at x4), so it needs the HR image at test time too.
- :class:`KDSR`, the student (estimator ``E_st``), sees only the LR image; its ``G`` starts as the
  teacher's (same names) and it learns the teacher's IDR.

Both serve KDSR-classic and KDSR-GAN: the GAN repository's ``BlindSR_TA``/``BlindSR_ST`` are the
same networks at other widths (its teacher's hard-coded 51 input channels are the x4 case; the
student's PixelUnshuffle holds no weights). Published widths are in :data:`VARIANTS`; the
constructor defaults are the classic M variant (the authors' option.py defaults). Parameter names
are the authors' (``G.*``, ``E.*`` / ``E_st.*``), so their released files load strictly with
:func:`blindsr.load_pretrained` (classic: raw state dicts; GAN: BasicSR ``params``/``params_ema``).

blindsr convention: inputs and output RGB in [0, 1] (unclamped); inside, everything runs in
0..``rgb_range`` as the authors compute it (1 for every published model).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from blindsr.archs.common import DynamicDepthwiseConv, MeanShift, lrelu, upsampler
from blindsr.registry import ARCH_REGISTRY

__all__ = ['KDSR', 'KDSRTeacher', 'IDREncoder', 'KDSRGenerator', 'VARIANTS']


# Published widths (n_feats, n_blocks, n_encoder_res): classic KDSR_S-M (5.80M parameters at x4) and
# KDSR_S-L (14.19M), both at x2/x3/x4; KDSR-GAN (18.85M), x4 only.
VARIANTS = {
    'M': {'n_feats': 64, 'n_blocks': 53, 'n_encoder_res': 9},
    'L': {'n_feats': 128, 'n_blocks': 28, 'n_encoder_res': 5},
    'GAN': {'n_feats': 128, 'n_blocks': 42, 'n_encoder_res': 6},
}


def _conv(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, 1, 1)


class _ResBlock(nn.Module):
    """``body`` = conv 3x3, LeakyReLU, conv 3x3; plus the input (no BN, no scaling)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(_conv(channels, channels), lrelu(), _conv(channels, channels))

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x) + x


class IDREncoder(nn.Module):
    """KD-IDE: ``forward(x) -> (d, idr)``, the conditioning vector (B, C) and the IDR (B, 4C).

    ``E``: conv in_ch -> C + LReLU, ``n_encoder_res`` residual blocks (Sequential indices
    2 .. 1 + n), convs C -> 2C -> 2C -> 4C each + LReLU, global average pool.
    """

    def __init__(self, in_ch: int, n_feats: int, n_encoder_res: int) -> None:
        super().__init__()
        c = n_feats
        self.E = nn.Sequential(_conv(in_ch, c), lrelu(), *[_ResBlock(c) for _ in range(n_encoder_res)],
                               _conv(c, 2 * c), lrelu(), _conv(2 * c, 2 * c), lrelu(),
                               _conv(2 * c, 4 * c), lrelu(), nn.AdaptiveAvgPool2d(1))
        self.mlp = nn.Sequential(nn.Linear(4 * c, 4 * c), lrelu(), nn.Linear(4 * c, 4 * c), lrelu())
        self.compress = nn.Sequential(nn.Linear(4 * c, c), lrelu())

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        idr = self.mlp(self.E(x).flatten(1))
        return self.compress(idr), idr


class _IDRBlock(nn.Module):
    """IDR-DCRB: IDR-DDC (``da_conv1``), LReLU, 3x3 conv (``conv1``); plus the input."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.da_conv1 = DynamicDepthwiseConv(channels, channels)
        self.conv1 = _conv(channels, channels)

    def forward(self, x: Tensor, d: Tensor) -> Tensor:
        return self.conv1(self.da_conv1(x, d)) + x


class _BlockChain(nn.Module):
    """The authors' ``DAG``: ``body`` = the IDR-DCRBs, applied in turn (no tail conv, no residual)."""

    def __init__(self, channels: int, n_blocks: int) -> None:
        super().__init__()
        self.body = nn.ModuleList([_IDRBlock(channels) for _ in range(n_blocks)])

    def forward(self, x: Tensor, d: Tensor) -> Tensor:
        for block in self.body:
            x = block(x, d)
        return x


class KDSRGenerator(nn.Module):
    """The SR network ``G(x, d)``: ``x`` in 0..rgb_range, ``d`` the (B, C) vector; output in x's units."""

    def __init__(self, scale: int, n_feats: int, n_blocks: int, rgb_range: float) -> None:
        super().__init__()
        self.sub_mean = MeanShift(rgb_range, -1)
        self.add_mean = MeanShift(rgb_range, 1)
        self.head = nn.Sequential(_conv(3, n_feats))
        self.body = nn.ModuleList([_BlockChain(n_feats, n_blocks), _conv(n_feats, n_feats)])
        self.tail = nn.Sequential(upsampler(scale, n_feats), _conv(n_feats, 3))

    def forward(self, x: Tensor, d: Tensor) -> Tensor:
        x = self.head(self.sub_mean(x))
        res = self.body[1](self.body[0](x, d)) + x
        return self.add_mean(self.tail(res))


class _KDSRNet(nn.Module):
    """G plus an estimator (``encoder``, named by the subclass); ``encode(...)`` gives ``(d, idr)``."""

    encoder: IDREncoder

    def __init__(self, scale: int, n_feats: int, n_blocks: int, rgb_range: float) -> None:
        super().__init__()
        if scale not in (2, 3, 4):
            raise ValueError(f'{type(self).__name__} is defined for scales 2, 3 and 4, got {scale}')
        self.scale = scale
        self.rgb_range = rgb_range
        self.G = KDSRGenerator(scale, n_feats, n_blocks, rgb_range)

    def restore(self, lq: Tensor, d: Tensor) -> Tensor:
        """The SR image of ``lq`` conditioned on the vector ``d`` (e.g. a whole image's, for a tile of it)."""
        return self.G(lq * self.rgb_range, d) / self.rgb_range

    def _sr(self, lq: Tensor, code: tuple[Tensor, Tensor], idr: bool) -> Tensor | tuple[Tensor, Tensor]:
        d, rep = code
        sr = self.restore(lq, d)
        return (sr, rep) if idr else sr


@ARCH_REGISTRY.register()
class KDSR(_KDSRNet):
    """The KDSR student: ``forward(lq) -> sr``, ``forward(lq, idr=True) -> (sr, idr)``, ``forward(lq, sr=False)
    -> idr`` ([0, 1] images);
    ``encode(lq) -> (d, idr)`` runs its estimator ``E_st`` alone; ``forward(lq)`` is ``restore(lq, embed(lq))``
    (tiled inference, :mod:`blindsr.tiling`, embeds the whole image once and restores each tile with it).

    Args:
        scale: 2, 3 or 4.
        n_feats, n_blocks, n_encoder_res: width, IDR-DCRB blocks, estimator residual blocks; the
            defaults are the classic M variant, :data:`VARIANTS` has L (128, 28, 5) and GAN (128, 42, 6).
        rgb_range: the value range the network works in (1, as published).
    """

    def __init__(self, scale: int = 4, n_feats: int = 64, n_blocks: int = 53, n_encoder_res: int = 9,
                 rgb_range: float = 1.0) -> None:
        super().__init__(scale, n_feats, n_blocks, rgb_range)
        self.E_st = IDREncoder(3, n_feats, n_encoder_res)

    @property
    def encoder(self) -> IDREncoder:
        return self.E_st

    def encode(self, lq: Tensor) -> tuple[Tensor, Tensor]:
        return self.E_st(lq * self.rgb_range)

    def embed(self, lq: Tensor) -> Tensor:
        """The conditioning vector ``d`` of ``lq`` (what :meth:`restore` takes)."""
        return self.encode(lq)[0]

    def forward(self, lq: Tensor, idr: bool = False, sr: bool = True) -> Tensor | tuple[Tensor, Tensor]:
        """``sr=False``: the IDR alone (the estimator without G, e.g. for an encoder-only training stage)."""
        if not sr:
            return self.encode(lq)[1]
        return self._sr(lq, self.encode(lq), idr)


@ARCH_REGISTRY.register()
class KDSRTeacher(_KDSRNet):
    """The KDSR teacher: ``forward(lq, gt) -> sr``, ``forward(lq, gt, idr=True) -> (sr, idr)`` ([0, 1]
    images, ``gt`` at ``scale`` times the size of ``lq``); ``encode(lq, gt) -> (d, idr)`` runs its
    estimator ``E`` alone on LR ⊕ PixelUnshuffle(HR). Arguments as :class:`KDSR`.
    """

    def __init__(self, scale: int = 4, n_feats: int = 64, n_blocks: int = 53, n_encoder_res: int = 9,
                 rgb_range: float = 1.0) -> None:
        super().__init__(scale, n_feats, n_blocks, rgb_range)
        self.E = IDREncoder(3 + 3 * scale * scale, n_feats, n_encoder_res)

    @property
    def encoder(self) -> IDREncoder:
        return self.E

    def encode(self, lq: Tensor, gt: Tensor) -> tuple[Tensor, Tensor]:
        s = self.scale
        if gt.shape[-2:] != (lq.shape[-2] * s, lq.shape[-1] * s):
            raise ValueError(f'KDSRTeacher x{s} needs gt of {s}x the lq size, got lq {tuple(lq.shape)} '
                             f'and gt {tuple(gt.shape)}')
        return self.E(torch.cat([lq, F.pixel_unshuffle(gt, s)], 1) * self.rgb_range)

    def forward(self, lq: Tensor, gt: Tensor, idr: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        return self._sr(lq, self.encode(lq, gt), idr)
