"""CDSR arch against the authors' network (deterministic weights, fixed input, eval mode, B = 2 and 1).

Recorded once outside the repo (scratch copy /work/authors/cdsr, script equiv.py) from
ZhouYiiFeng/CDSR@1828e66 model/CDSR.py ``BlindSR`` with moco/builder.py (the only patch: the training
forward's ``labels ... .cuda()`` made a CPU tensor; the eval forward is unpatched), torch 2.14.1 CPU float32:
every entry of their live state dict (with ``E.encoder_k.*`` and the queue) filled by
``test_dasr_arch.fill``, input ``rand(B, 3, 20, 20, seed 0) * 255`` for B = 2 and B = 1 (where their
``.squeeze()`` makes the attention output 1-D), eval mode. blindsr's CDSR on the same weights and ``x``
in [0, 1]: max |diff| of the SR 1.3e-3 in 0..255 units (5.3e-6 in [0, 1]; the outputs span about
-3300..2900 with these weights), the embedding and the MoCo head bit-identical, for x2, x3 and x4.
Recorded per scale: the sha256 of the sorted ``key:shape`` lines of the 751 saved entries, the SR's
mean/std and probes (0..255 units), ``sr[0, :, 3, 5]`` for B = 1, the embedding ``fea[0, :4]`` and head
``[1, :4]``. The names themselves: tests/data/cdsr_authors_keys_x4.txt.
"""

from __future__ import annotations

import hashlib

import pytest
import torch
from conftest import REPO
from test_dasr_arch import filled

from blindsr.archs.cdsr_arch import CDSR
from blindsr.checkpoint import load_pretrained

AUTHORS = {  # scale -> recorded values (SR in 0..255)
    2: {'sha256': '63ac90ed65d36c8a317c40002e86bd4455bb3e67cca218b9d27673b353b8faad', 'mean': 66.01278102848678,
        'std': 801.2177759229161, 'p0': [917.8653564453125, -456.4505310058594, 147.1016082763672],
        'p1': [447.7500305175781, -781.3756713867188, -396.7611389160156], 'p2': -167.36810302734375,
        'b1': [393.6042175292969, -881.8797607421875, -583.3231811523438]},
    3: {'sha256': '7d5245e1f0f16e34bb0c2339724c5e9edd2f1cde84a1153afb98a20229229e74', 'mean': 33.613679431736195,
        'std': 714.9986513969544, 'p0': [903.5123291015625, -46.6870002746582, 326.5250244140625],
        'p1': [1110.441162109375, 439.39605712890625, 548.8101806640625], 'p2': 92.6783676147461,
        'b1': [712.0011596679688, -1016.4646606445312, 442.9213562011719]},
    4: {'sha256': '7d58066b00cb33892b1e1ded7a7377f1e8d2b945d8dba6157556aed969fd6de4', 'mean': -44.161690452126784,
        'std': 791.4384735745952, 'p0': [903.5123291015625, 360.6343994140625, 147.75254821777344],
        'p1': [794.7977294921875, -759.7439575195312, -631.4727172851562], 'p2': -64.78321075439453,
        'b1': [468.0634460449219, -288.79974365234375, -88.92391204833984]},
}
FEA0 = [0.0004294492828194052, -0.0014861292438581586, -0.0022152841556817293, 0.001582788536325097]
HEAD1 = [0.11990568041801453, -0.07939634472131729, -0.12042147666215897, -0.14733369648456573]
TOL = 2e-3  # 0..255 units: 8e-6 in [0, 1]


def key_lines(net: torch.nn.Module) -> list[str]:
    return [f"{k}:{'x'.join(map(str, v.shape))}" for k, v in net.state_dict().items()]


def test_keys_are_the_authors_751():
    recorded = [line for line in (REPO / 'tests' / 'data' / 'cdsr_authors_keys_x4.txt').read_text().splitlines()
                if not line.startswith('#')]
    assert len(recorded) == 751 and sorted(key_lines(CDSR(4))) == sorted(recorded)


@pytest.mark.parametrize('scale', [2, 3, 4])
def test_output_equals_the_authors(scale):
    ref = AUTHORS[scale]
    net = CDSR(scale).eval()
    assert hashlib.sha256('\n'.join(sorted(key_lines(net))).encode()).hexdigest() == ref['sha256']
    net.load_state_dict(filled(net))
    x = torch.rand(2, 3, 20, 20, generator=torch.Generator().manual_seed(0), dtype=torch.float64).float()
    with torch.no_grad():
        sr, fea, head = net(x, embedding=True)
        single = net(x[:1]) * 255
        assert torch.equal(net(x), sr) and torch.equal(net.restore(x, net.embed(x)), sr)
    sr = sr * 255  # blindsr's [0, 1] units -> the authors' 0..255
    assert sr.shape == (2, 3, 20 * scale, 20 * scale)
    assert torch.allclose(fea[0, :4], torch.tensor(FEA0), atol=1e-7) and torch.allclose(head[1, :4], torch.tensor(HEAD1), atol=1e-6)
    assert abs(float(sr.double().mean()) - ref['mean']) < TOL and abs(float(sr.double().std()) - ref['std']) < TOL
    assert torch.allclose(sr[0, :, 0, 0], torch.tensor(ref['p0']), atol=TOL)
    assert torch.allclose(sr[1, :, 7, 11], torch.tensor(ref['p1']), atol=TOL)
    assert abs(float(sr[1, 2, -1, -1]) - ref['p2']) < TOL
    assert torch.allclose(single[0, :, 3, 5], torch.tensor(ref['b1']), atol=TOL)  # B = 1 (the authors' squeeze)


def test_small_inputs_are_a_clear_error():
    net = CDSR(2, num_feat=8, num_block=1, enc_feat=8, bank_size=16).eval()
    assert net(torch.rand(1, 3, 12, 12)).shape == (1, 3, 24, 24)
    with pytest.raises(ValueError, match=r'at least 12x12 px \(its patchify window\), got 11x30'):
        net(torch.rand(1, 3, 11, 30))
    with pytest.raises(ValueError, match='scales 2, 3 and 4'):
        CDSR(8)


def test_authors_files_load_strictly_and_live_states_convert(tmp_path):
    net = CDSR(2, num_feat=8, num_block=1, enc_feat=8, bank_size=16)
    released = filled(net)  # a released file's layout: G.* and E.encoder_q.*, a raw state dict
    torch.save(released, tmp_path / 'model_492_psnr_36.17.pt')
    fresh = CDSR(2, num_feat=8, num_block=1, enc_feat=8, bank_size=16)
    result = load_pretrained(fresh, tmp_path / 'model_492_psnr_36.17.pt')
    assert not result.missing and not result.unexpected
    assert torch.equal(fresh.encoder.feature_bank.weight, released['E.encoder_q.feature_bank.weight'])
    live = {**released, 'E.queue': torch.zeros(32, 8192), 'E.queue_ptr': torch.zeros(1, dtype=torch.long),
            **{k.replace('encoder_q', 'encoder_k'): v for k, v in released.items() if 'encoder_q' in k}}
    assert 'from_authors_training_state' in load_pretrained(fresh, live).source


def test_dqa_attention_starts_as_the_identity():
    """gamma starts at 0 (the query attention passes ``d`` through), the dense blocks' init is scaled by 0.1."""
    net = CDSR(2, num_feat=8, num_block=1, enc_feat=8, bank_size=16)
    dqa = net.G.RRDB_trunk[0].SFT.dab.da_conv1
    d = torch.rand(2, 8)
    assert dqa.sf_attn.gamma.item() == 0 and torch.equal(dqa.sf_attn(torch.rand(2, 8), d), d)
    conv = net.G.RRDB_trunk[0].RDB1.conv1
    assert float(conv.weight.std()) < 0.1 * (2 / conv.weight[0].numel()) ** 0.5 * 1.5 and not conv.bias.any()
