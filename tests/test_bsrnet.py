"""BSRNet (BSRGAN's RRDB generator, KAIR layout): equivalence with the authors' code, keys, converters.

Reference figures were produced OUTSIDE this repo from the authors' code: cszn/BSRGAN at commit
5ce1a9c6ae292f30ccfce4b597ecb73c70401733, file models/network_rrdbnet.py, class
RRDBNet(in_nc=3, out_nc=3, nf, nb, gc, sf). The script built that RRDBNet and blindsr's BSRNet with the
same config, filled a state dict as ``conftest.seeded_weights(net, 0.02)`` does (for each key in sorted order,
``torch.Generator().manual_seed(zlib.crc32(key.encode()))`` and ``torch.randn(shape, generator=g) * 0.02``),
loaded it strictly into both, and ran ``torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))``
in eval mode under no_grad. The two outputs were bit-identical (max |diff| 0.0) for x2 and x4 at the full
size (nf=64, nb=23, gc=32) and at the small size (nf=16, nb=2, gc=8); the recorded numbers below are the
authors' model's outputs (small size). The key hashes are sha256 of the authors' state_dict lines
"key:[d0, d1, ...]" (state_dict order, joined by newlines, no trailing newline).
"""

from __future__ import annotations

import hashlib

import pytest
import torch

import blindsr
from blindsr.archs.bsrnet_arch import BSRNet, from_basicsr_rrdbnet, to_basicsr_rrdbnet
from blindsr.checkpoint import CheckpointError
from blindsr.registry import ARCH_REGISTRY, build
from conftest import seeded_weights

SMALL = dict(num_feat=16, num_block=2, num_grow_ch=8)

# scale -> (output shape, mean, std, {index: value}) of the authors' RRDBNet, small config (see above).
RECORDED = {
    2: ([1, 3, 32, 32], -0.004360388498753309, 0.022877385839819908,
        {(0, 0, 0, 0): 0.022762605920433998, (0, 1, 5, 7): -0.00305592967197299,
         (0, 2, 31, 31): -0.03263188153505325, (0, 0, 10, 3): 0.02325689047574997}),
    4: ([1, 3, 64, 64], -0.004812967963516712, 0.022782040759921074,
        {(0, 0, 0, 0): 0.022964468225836754, (0, 1, 5, 7): -0.004639953840523958,
         (0, 2, 31, 31): -0.032697830349206924, (0, 0, 10, 3): 0.0230998732149601}),
}
# scale -> (number of keys, sha256 of the "key:shape" lines) of the authors' full-size RRDBNet.
FULL_KEYS = {
    2: (700, '0a421eaa67696e31e609b584dda4ce0e592e89caef9d29f9293da7eaa855dc69'),
    4: (702, '60c7daf18aa86e4a34a41c4d72951785728a37014cd62b9e93aa3e2dfc8016eb'),
}
FULL_PARAMS = {2: 16_661_059, 4: 16_697_987}


def _input() -> torch.Tensor:
    return torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))


def _kair_key_lines(scale: int, nf: int = 64, nb: int = 23, gc: int = 32) -> list[str]:
    """The KAIR RRDBNet state_dict layout, generated from its rule (in state_dict order)."""
    def conv(name: str, cin: int, cout: int) -> list[str]:
        return [f'{name}.weight:{[cout, cin, 3, 3]}', f'{name}.bias:{[cout]}']

    lines = conv('conv_first', 3, nf)
    for b in range(nb):
        for r in (1, 2, 3):
            for c in range(1, 6):
                lines += conv(f'RRDB_trunk.{b}.RDB{r}.conv{c}', nf + (c - 1) * gc, nf if c == 5 else gc)
    for name in ['trunk_conv', 'upconv1'] + (['upconv2'] if scale == 4 else []) + ['HRconv']:
        lines += conv(name, nf, nf)
    return lines + conv('conv_last', nf, 3)


@pytest.mark.parametrize('scale', [2, 4])
def test_matches_authors_output(scale: int) -> None:
    net = BSRNet(scale=scale, **SMALL).eval()
    net.load_state_dict(seeded_weights(net, 0.02), strict=True)
    with torch.no_grad():
        y = net(_input())
    shape, mean, std, values = RECORDED[scale]
    assert list(y.shape) == shape
    assert y.mean().item() == pytest.approx(mean, abs=1e-5)
    assert y.std().item() == pytest.approx(std, abs=1e-5)
    for idx, v in values.items():
        assert y[idx].item() == pytest.approx(v, abs=1e-5)


@pytest.mark.parametrize('scale', [2, 4])
def test_full_size_keys_and_params(scale: int) -> None:
    net = build(ARCH_REGISTRY, {'type': 'BSRNet', 'scale': scale})
    lines = [f'{k}:{list(v.shape)}' for k, v in net.state_dict().items()]
    assert lines == _kair_key_lines(scale)
    count, digest = FULL_KEYS[scale]
    assert len(lines) == count
    assert hashlib.sha256('\n'.join(lines).encode()).hexdigest() == digest
    assert sum(p.numel() for p in net.parameters()) == FULL_PARAMS[scale]


def test_in_definition_init() -> None:
    net = BSRNet(scale=4, **SMALL)
    rdb = net.RRDB_trunk[0].RDB1
    assert torch.count_nonzero(rdb.conv1.bias) == 0
    # kaiming_normal_(fan_in) * 0.1: std = 0.1 * sqrt(2 / fan_in)
    fan_in = rdb.conv5.weight[0].numel()
    assert rdb.conv5.weight.std().item() == pytest.approx(0.1 * (2 / fan_in) ** 0.5, rel=0.2)


def test_loads_basicsr_rrdbnet_x4() -> None:
    from basicsr.archs.rrdbnet_arch import RRDBNet  # basicsr is importable once blindsr is imported

    theirs = RRDBNet(3, 3, scale=4, **SMALL).eval()
    sd = seeded_weights(theirs, 0.02)
    theirs.load_state_dict(sd, strict=True)
    ours = BSRNet(scale=4, **SMALL).eval()
    result = blindsr.load_pretrained(ours, {'params': sd})
    assert 'via from_basicsr_rrdbnet' in result.source and not result.missing and not result.unexpected
    with torch.no_grad():
        torch.testing.assert_close(ours(_input()), theirs(_input()), rtol=0, atol=1e-6)


def test_round_trip_is_identity() -> None:
    sd = seeded_weights(BSRNet(scale=4, **SMALL), 0.02)
    back = from_basicsr_rrdbnet(to_basicsr_rrdbnet(sd))
    assert list(back) == list(sd)
    assert all(back[k] is sd[k] for k in sd)
    assert 'body.1.rdb3.conv5.weight' in to_basicsr_rrdbnet(sd)


def test_basicsr_x2_gives_clear_error() -> None:
    from basicsr.archs.rrdbnet_arch import RRDBNet

    sd = RRDBNet(3, 3, scale=2, **SMALL).state_dict()
    assert sd['conv_first.weight'].shape[1] == 12
    with pytest.raises(ValueError, match='pixel-unshuffle'):
        from_basicsr_rrdbnet(sd)
    with pytest.raises(CheckpointError):
        blindsr.load_pretrained(BSRNet(scale=2, **SMALL), sd)
    with pytest.raises(ValueError, match='x2'):
        to_basicsr_rrdbnet(BSRNet(scale=2, **SMALL).state_dict())


@pytest.mark.parametrize('scale', [1, 3, 8])
def test_unsupported_scale(scale: int) -> None:
    with pytest.raises(ValueError, match='scale 2 or 4'):
        BSRNet(scale=scale)
