"""KDSR archs (student ``KDSR``, teacher ``KDSRTeacher``; classic M/L and GAN widths) against the authors'
networks, and the per-sample depthwise conv they share with DASR.

Recorded once outside the repo from Zj-BinXia/KDSR@c7c9e8110654571596c6f04203bd305d84698259 with torch
2.14.1 (CPU, float32). Classic: KDSR-classic/model_ST/blindsr.py and model_TA/blindsr.py with
model/common.py, unpatched, built with option.py's arguments (n_feats, n_blocks, n_resblocks, scale,
rgb_range 1). GAN: KDSR-GAN/kdsrgan/archs/ST_arch.py, TA_arch.py and common.py, ``BlindSR_ST`` /
``BlindSR_TA(n_feats=128, n_encoder_res=6, scale=4, n_sr_blocks=42)``; the only patch: the package
``__init__`` files, which import every kdsrgan module, were empty ones (BasicSR's registry import left as
is). Every state-dict entry was filled by ``conftest.seeded_weights(net, 0.04)`` (0.05 overflows the L
widths) and loaded strictly into theirs and ours; eval mode; ``lq = torch.rand(2, 3, 16, 16)`` with
generator seed 0, ``gt = torch.rand(2, 3, 16 s, 16 s)`` with seed 1. The authors' SR is their eval forward
(classic teacher: ``forward(lq, cat(lq, PixelUnshuffle(gt)))`` as their trainer calls it; GAN teacher:
``forward(lq, gt)``), their IDR the ``mlp`` output of ``E`` / ``E_st``. blindsr's SR and IDR were
bit-identical to theirs (max |diff| 0.0) in all ten cases. Recorded per case: the number of state-dict
keys and the sha256 of their sorted ``key:shape`` lines (shape joined by 'x'; the same keys in both), the
parameter count, then the SR's mean, std, ``sr[0, :, 0, 0]``, ``sr[1, :, 5, 7]``, ``sr[1, 2, -1, -1]``
and the IDR's mean, std, ``idr[0, :4]``, ``idr[1, -2:]``.
"""

from __future__ import annotations

import hashlib

import pytest
import torch
import torch.nn.functional as F

from blindsr.archs.common import per_sample_depthwise_conv
from blindsr.archs.kdsr_arch import VARIANTS, KDSR, KDSRTeacher
from blindsr.checkpoint import CheckpointError, load_pretrained
from blindsr.registry import ARCH_REGISTRY, build
from conftest import seeded_weights

CASES = {  # case -> (arch, scale, published variant)
    'S-M-x4': ('KDSR', 4, 'M'), 'T-M-x4': ('KDSRTeacher', 4, 'M'), 'S-L-x4': ('KDSR', 4, 'L'),
    'T-L-x4': ('KDSRTeacher', 4, 'L'), 'S-M-x2': ('KDSR', 2, 'M'), 'S-M-x3': ('KDSR', 3, 'M'),
    'S-L-x2': ('KDSR', 2, 'L'), 'S-L-x3': ('KDSR', 3, 'L'), 'GAN-ST': ('KDSR', 4, 'GAN'),
    'GAN-TA': ('KDSRTeacher', 4, 'GAN'),
}
AUTHORS = {  # case -> (keys, key sha256, parameters, SR figures, IDR figures) of the authors' net
    'S-M-x4': (276, '6563ce68e35a2408ca126c09122ba6370ae3005743f1a57f1d592da1d60ca0ed', 5_795_099,
        [-0.00944958255, 0.0269962568, -0.0208985619, -0.0242034085, 0.0214815401, -0.0199861601,
         -0.0252806116, 0.0275680833, 0.0209064577],
        [0.0335341804, 0.0590315461, 0.213335931, 0.0363889746, 0.129355207, -0.00701969489,
         -0.00667193392, -0.00291311974]),
    'T-M-x4': (276, '2eb8ba70f124e2907781409e8207283b8e3c4a87348fad93dbad81b4d49009b4', 5_822_747,
        [-0.00937249232, 0.0271222424, -0.0208702292, -0.0242498666, 0.0213834997, -0.0193309579,
         -0.0240682494, 0.0274001677, 0.0211972613],
        [0.101195835, 0.197878137, -0.0234550834, 0.0397546887, -0.0442285314, 0.431309611, 0.0400631279,
         -0.0313525684]),
    'S-L-x4': (160, 'cbe0f66284b6af8c727b602b480426163a149f1b30716c0a05ca642759845535', 14_191_003,
        [-0.00845164061, 0.0508356504, -0.0298565887, -0.0251218118, 0.0252567288, -0.0095140161,
         -0.023212079, 0.0259572789, 0.0324986316],
        [0.263620913, 0.491884619, 0.410188884, 0.404587924, 1.24130189, -0.0856740996, -0.0455275588,
         0.475139767]),
    'T-L-x4': (160, '6efc18323c9dc0c3b4760c618594cd8518c0b8ea0f2e8755ec7ef602538a8dfa', 14_246_299,
        [-0.0110049816, 0.214303792, -0.0272681527, -0.00183917396, 0.0191569906, 0.266516447,
         -0.0596653409, -0.0754489228, -0.00660218159],
        [0.790220618, 1.3397646, 0.857379317, 5.1015172, 1.18786955, -0.0441200696, 0.548811853,
         -0.0791766122]),
    'S-M-x2': (274, '6861789a6db9b380751117cf355464716efad7e71605388bddaa23bfc7555c9a', 5_647_387,
        [-0.0102282921, 0.0267053992, -0.032015346, -0.0241535883, 0.0255945511, -0.00319919782,
         -0.0334056392, -0.00100572966, 0.0242458899],
        [0.0335341804, 0.0590315461, 0.213335931, 0.0363889746, 0.129355207, -0.00701969489,
         -0.00667193392, -0.00291311974]),
    'S-M-x3': (274, '8466ce8bd000654f6b745b67aca3556752bd94a4e79c267cb9c8c041be93d562', 5_832_027,
        [-0.00832108501, 0.0231804326, -0.0261560641, -0.0164765455, 0.0253580008, -0.0334848538,
         -0.0133746471, 0.0171018373, 0.0177366007],
        [0.0335341804, 0.0590315461, 0.213335931, 0.0363889746, 0.129355207, -0.00701969489,
         -0.00667193392, -0.00291311974]),
    'S-L-x2': (158, '499b627a2fc0e61da533af42f5480505ed9ea4e39674b4fa7bab3d3e5110d9c7', 13_600_667,
        [-0.00743730506, 0.0473926663, -0.0266904347, -0.0250407066, 0.0231266059, -0.0159227792,
         -0.0260670073, 0.0105986111, 0.0153275719],
        [0.263620913, 0.491884619, 0.410188884, 0.404587924, 1.24130189, -0.0856740996, -0.0455275588,
         0.475139767]),
    'S-L-x3': (158, '0803d0888946e565e7666d04b7d06756e252f764abc807c12452a54ac5270d7b', 14_338_587,
        [-0.00936369132, 0.0311948303, -0.0467940122, -0.0225677323, 0.0430099554, 0.00317231589,
         -0.0604152828, -0.00565685006, 0.00521923043],
        [0.263620913, 0.491884619, 0.410188884, 0.404587924, 1.24130189, -0.0856740996, -0.0455275588,
         0.475139767]),
    'GAN-ST': (220, 'b860cb5077631d7f660464ac8a1e0b1e85f623346508d90596674eccf03e78a7', 18_846_107,
        [-0.00766645372, 0.0790651515, -0.0296240896, -0.0276829153, 0.04008542, 0.208947584, -0.128027186,
         -0.103889242, 0.020868605],
        [0.412832379, 0.72173512, 0.00230025314, -0.11429812, 1.26478457, -0.128612146, 2.04666662,
         -0.05320815]),
    'GAN-TA': (220, '46f97dd4ea0265b10b24cc7082fe132a9ac328906dec856af0dc2e6a6b606d25', 18_901_403,
        [0.217359304, 7.74748468, -0.667402327, -0.0974990129, 0.0261818729, 2.86864877, -1.97935319,
         -1.72083712, -1.41759968],
        [1.06841886, 1.8086518, 0.886250854, 2.67169785, 4.45077896, 1.87731028, -0.0432334952,
         0.957953632]),
}
TINY = {'n_feats': 8, 'n_blocks': 2, 'n_encoder_res': 1}


def _inputs(scale: int) -> tuple[torch.Tensor, torch.Tensor]:
    lq = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    gt = torch.rand(2, 3, 16 * scale, 16 * scale, generator=torch.Generator().manual_seed(1))
    return lq, gt


@pytest.mark.parametrize('case', list(CASES))
def test_keys_params_and_output_equal_the_authors(case):
    arch, scale, variant = CASES[case]
    n_keys, digest, params, sr_ref, idr_ref = AUTHORS[case]
    net = build(ARCH_REGISTRY, {'type': arch, 'scale': scale, **VARIANTS[variant]}).eval()
    lines = sorted(f"{k}:{'x'.join(map(str, v.shape))}" for k, v in net.state_dict().items())
    assert len(lines) == n_keys and hashlib.sha256('\n'.join(lines).encode()).hexdigest() == digest
    assert sum(p.numel() for p in net.parameters()) == params
    net.load_state_dict(seeded_weights(net, 0.04))
    lq, gt = _inputs(scale)
    with torch.no_grad():
        sr, idr = net(lq, idr=True) if arch == 'KDSR' else net(lq, gt, idr=True)
    assert sr.shape == (2, 3, 16 * scale, 16 * scale) and idr.shape == (2, 4 * VARIANTS[variant]['n_feats'])
    sr_figures = [sr.mean(), sr.std(), *sr[0, :, 0, 0], *sr[1, :, 5, 7], sr[1, 2, -1, -1]]
    idr_figures = [idr.mean(), idr.std(), *idr[0, :4], *idr[1, -2:]]
    # float32 sums in another order (thread count) move a probe by ~1e-5 of the output's spread
    assert [float(v) for v in sr_figures] == pytest.approx(sr_ref, rel=1e-5, abs=1e-5 * max(1.0, sr_ref[1]))
    assert [float(v) for v in idr_figures] == pytest.approx(idr_ref, rel=1e-5, abs=1e-5 * max(1.0, idr_ref[1]))


def test_encode_is_the_estimator_of_forward():
    student, teacher = KDSR(2, **TINY).eval(), KDSRTeacher(2, **TINY).eval()
    lq, gt = _inputs(2)
    with torch.no_grad():
        assert torch.equal(student(lq, idr=True)[1], student.encode(lq)[1])
        assert torch.equal(teacher(lq, gt, idr=True)[1], teacher.encode(lq, gt)[1])
        assert torch.equal(student(lq), student.G(lq, student.encode(lq)[0]))
    assert student.encoder is student.E_st and teacher.encoder is teacher.E


def test_teacher_needs_gt_at_scale_times_lq():
    lq, gt = _inputs(2)
    with pytest.raises(ValueError, match=r'KDSRTeacher x2 needs gt of 2x the lq size, '
                                         r'got lq \(2, 3, 16, 16\) and gt \(2, 3, 30, 32\)'):
        KDSRTeacher(2, **TINY)(lq, gt[..., :30, :])


def test_released_layouts_load_strictly(tmp_path):
    released = seeded_weights(KDSR(4, **TINY), 0.1)  # classic KDSRsM_iso_x4.pt: a raw state dict
    torch.save(released, tmp_path / 'KDSRsM_iso_x4.pt')
    net = KDSR(4, **TINY)
    result = load_pretrained(net, tmp_path / 'KDSRsM_iso_x4.pt')
    assert not result.missing and not result.unexpected
    assert torch.equal(net.E_st.compress[0].weight, released['E_st.compress.0.weight'])
    ema = {k: v + 1 for k, v in released.items()}  # KDSR-GAN: BasicSR's params / params_ema
    torch.save({'params': released, 'params_ema': ema}, tmp_path / 'KDSRS-GAN.pth')
    assert 'params_ema' in load_pretrained(net, tmp_path / 'KDSRS-GAN.pth').source
    assert torch.equal(net.G.tail[1].bias, ema['G.tail.1.bias'])
    teacher = seeded_weights(KDSRTeacher(4, **TINY), 0.1)  # a teacher file is not a student's
    assert load_pretrained(KDSRTeacher(4, **TINY), teacher).missing == []
    with pytest.raises(CheckpointError, match=r"missing keys \['E_st\.E\.0\.bias'"):
        load_pretrained(KDSR(4, **TINY), teacher)


@pytest.mark.parametrize('size', [3, 5])
def test_per_sample_depthwise_conv_is_each_sample_convolved_with_its_kernels(size):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, 4, 9, 7, generator=gen, dtype=torch.float64, requires_grad=True)
    k = torch.randn(3, 4, size, size, generator=gen, dtype=torch.float64, requires_grad=True)
    out = per_sample_depthwise_conv(x, k)
    ref = torch.cat([F.conv2d(x[i:i + 1], k[i, :, None], padding=size // 2, groups=4) for i in range(3)])
    torch.testing.assert_close(out, ref)
    g = torch.randn(ref.shape, generator=gen, dtype=torch.float64)
    grads = torch.autograd.grad(out, (x, k), g)
    torch.testing.assert_close(grads, torch.autograd.grad(ref, (x, k), g))
