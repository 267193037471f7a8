"""Tiled inference (blindsr.tiling): tiled equals untiled where each tile's context covers the receptive
field, one embedding per image for nets with a global degradation estimate, odd and small sizes, size
multiples, progress and errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from blindsr import tiling
from blindsr.archs.bsrnet_arch import BSRNet
from blindsr.archs.dasr_arch import DASR
from blindsr.archs.kdsr_arch import KDSR
from blindsr.archs.srfbn_arch import SRFBN
from blindsr.tiling import GlobalEstimateSR, tiled, upscale

# Tiled and untiled runs differ only in float32 rounding (the convolutions sum in another order on
# other input sizes) when every kept pixel's receptive field lies inside its tile: at most 1e-6 in
# [0, 1] units for outputs of magnitude ~1.
ROUNDING = 1e-6


class LocalNet(nn.Module):
    """Three 3x3 convs and a pixel shuffle: each output pixel depends on LR pixels within 3 of it."""

    def __init__(self, scale: int = 2, size_multiple: int = 1) -> None:
        super().__init__()
        self.size_multiple = size_multiple
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, 1, 1), nn.ReLU(), nn.Conv2d(8, 8, 3, 1, 1), nn.ReLU(),
                                  nn.Conv2d(8, 3 * scale * scale, 3, 1, 1), nn.PixelShuffle(scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2] % self.size_multiple or x.shape[-1] % self.size_multiple:
            raise ValueError(f'LocalNet needs multiples of {self.size_multiple}, got {tuple(x.shape)}')
        return self.body(x)


def tiny(kind: str) -> nn.Module:
    """One net of each arch kind at scale 2, narrow and shallow (receptive field radius < 12 LR pixels)."""
    nets = {
        'bsrnet': lambda: BSRNet(2, num_feat=8, num_block=1, num_grow_ch=4),
        'srfbn_s': lambda: SRFBN(2, num_features=8, num_steps=2, num_groups=1),
        'dasr': lambda: DASR(2, num_feat=8, num_group=1, num_block=1, enc_feat=4, reduction=4),
        'kdsr': lambda: KDSR(2, n_feats=8, n_blocks=2, n_encoder_res=1),
    }
    return nets[kind]().eval()


def untiled(net: nn.Module, lq: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return net(lq)


def test_local_net_tiled_is_exact_with_enough_overlap():
    net, lq = LocalNet(), torch.rand(1, 3, 37, 29)
    assert torch.equal(upscale(net, lq, 2, tile=16, overlap=4), untiled(net, lq))
    # too little context for the receptive field: the seams show
    assert not torch.allclose(upscale(net, lq, 2, tile=16, overlap=1), untiled(net, lq), atol=1e-3)


@pytest.mark.parametrize('kind', ['bsrnet', 'srfbn_s', 'dasr', 'kdsr'])
def test_tiled_equals_untiled_for_every_arch_kind(kind):
    net, lq = tiny(kind), torch.rand(1, 3, 45, 38)
    sr = upscale(net, lq, 2, tile=40, overlap=12)
    assert sr.shape == (1, 3, 90, 76)
    assert (sr - untiled(net, lq)).abs().max() <= ROUNDING


@pytest.mark.parametrize('kind', ['dasr', 'kdsr'])
def test_embedding_is_computed_once_per_image(kind, monkeypatch):
    net, lq = tiny(kind), torch.rand(1, 3, 45, 38)
    assert isinstance(net, GlobalEstimateSR)
    calls = {'embed': [], 'restore': []}
    embed, restore = net.embed, net.restore

    def counted_embed(x):
        calls['embed'].append(tuple(x.shape))
        return embed(x)

    def counted_restore(x, e):
        calls['restore'].append(e)
        return restore(x, e)

    monkeypatch.setattr(net, 'embed', counted_embed)
    monkeypatch.setattr(net, 'restore', counted_restore)
    ticks = []
    upscale(net, lq, 2, tile=24, overlap=6, progress=lambda done, total: ticks.append((done, total)))
    assert calls['embed'] == [(1, 3, 45, 38)]  # the whole image, once
    assert ticks == [(i, 9) for i in range(1, 10)]  # 3 x 3 tiles, each restored with the whole image's embedding
    whole = embed(lq)
    assert len(calls['restore']) == 9 and all(torch.equal(e, whole) for e in calls['restore'])


def test_large_image_is_embedded_on_its_full_resolution_centre_crop(monkeypatch):
    net, lq = tiny('dasr'), torch.rand(1, 3, 30, 21)
    monkeypatch.setattr(tiling, 'EMBED_SIZE', 16)
    seen = []
    embed = net.embed
    monkeypatch.setattr(net, 'embed', lambda x: seen.append(x) or embed(x))
    upscale(net, lq, 2, tile=16, overlap=4)
    assert len(seen) == 1 and torch.equal(seen[0], lq[:, :, 7:23, 2:18])


@pytest.mark.parametrize('size', [(1, 1), (5, 7), (16, 16)])
def test_image_smaller_than_a_tile_is_one_call(size):
    net, lq = tiny('dasr'), torch.rand(1, 3, *size)
    ticks = []
    sr = upscale(net, lq, 2, tile=16, overlap=4, progress=lambda d, t: ticks.append((d, t)))
    assert ticks == [(1, 1)] and torch.equal(sr, untiled(net, lq))


def test_size_multiple_pads_by_reflection_and_crops():
    net, lq = LocalNet(size_multiple=8), torch.rand(1, 3, 37, 29)
    with pytest.raises(ValueError, match='multiples of 8'):
        untiled(net, lq)
    ref = untiled(net, torch.nn.functional.pad(lq, (0, 3, 0, 3), mode='reflect'))[:, :, :74, :58]
    assert torch.equal(upscale(net, lq, 2), ref)
    assert torch.equal(upscale(net, lq, 2, tile=20, overlap=4), ref)  # 20 -> 24 per tile
    assert upscale(net, torch.rand(1, 3, 3, 2), 2).shape == (1, 3, 6, 4)  # too small to reflect: replicated


def test_tiled_is_generic_over_fn_and_only_feeds_it_tiles():
    lq, seen = torch.rand(1, 3, 33, 50), []

    def nearest(x):
        seen.append(tuple(x.shape[-2:]))
        return x.repeat_interleave(3, -2).repeat_interleave(3, -1)

    assert torch.equal(tiled(nearest, lq, 3, tile=16, overlap=0), nearest(lq))
    assert set(seen[:-1]) == {(16, 16)} and len(seen) == 3 * 4 + 1  # every window full-size, even at borders
    assert torch.equal(tiled(nearest, lq, 3, tile=None, overlap=0), nearest(lq))


def test_bad_arguments_are_clear_errors():
    lq = torch.rand(1, 3, 40, 40)
    with pytest.raises(ValueError, match=r'tile \(16\) must exceed 2 \* overlap \(16\)'):
        tiled(lambda x: x, lq, 1, tile=16, overlap=8)
    with pytest.raises(ValueError, match='expected 32x32 \\(scale 2\\)'):
        tiled(lambda x: x, lq, 2, tile=16, overlap=4)
    with pytest.raises(ValueError, match='must be \\(B, C, H, W\\)'):
        tiled(lambda x: x, lq[0], 1, tile=16, overlap=4)
    with pytest.raises(ValueError, match='LocalNet.size_multiple must be a positive int, got 0'):
        upscale(LocalNet(size_multiple=0), lq, 2)
