"""DASR arch and MoCo against the authors' network (deterministic weights, fixed input).

Recorded once outside the repo from The-Learning-And-Vision-Atelier-LAVA/DASR@51524af (model/blindsr.py,
model/common.py, moco/builder.py; no patches for the eval forward, ``Tensor.cuda`` made an identity for
the training forward's labels), torch 2.14.1 CPU float32: every state-dict entry of the authors'
``BlindSR`` filled by :func:`fill` below (then every ``*.kernel.2.weight`` divided by 64: with the plain
fill the generator overflows float32 to inf within three groups), input
``rand(2, 3, 20, 20, seed 0) * 255``, eval mode. Recorded: the sha256 of the sorted ``key:shape``
lines of the saved keys (their trainer drops ``E.encoder_k.*`` and the queue), output mean/std and
probes, the representation and MLP head; for MoCo a training forward on ``rand(2, 2, 3, 20, 20,
seed 1) * 255`` (logits, cross-entropy, enqueued keys, momentum-updated key encoder).
"""

from __future__ import annotations

import hashlib
import math
import zlib

import pytest
import torch
import torch.nn.functional as F

from blindsr.archs.dasr_arch import DASR
from blindsr.archs.moco import MoCo, info_nce_accuracy
from blindsr.checkpoint import load_pretrained

AUTHORS = {  # scale -> recorded values (SR output in 0..255)
    2: {'n_saved': 469, 'sha256': 'a8cc05ac1479176150e7d5b1530f66268d60b080df94a8fd370fd86e904395c7',
        'mean': 143.97388715664545, 'std': 479.5353983074888, 'p0': [187.62371826171875, -120.57427978515625,
        255.40847778320312], 'p1': [407.0645751953125, -103.89559936523438, 575.69775390625], 'p2': 206.66384887695312},
    3: {'n_saved': 469, 'sha256': '80e8ec52640965299c185e38f229e855e9b604649f12170bacf93876ba28e8b6',
        'mean': 109.74151473239615, 'std': 481.154056209919, 'p0': [252.12445068359375, 52.83018493652344,
        128.2588653564453], 'p1': [306.5289306640625, -432.91094970703125, -644.1962280273438], 'p2': -13.6514892578125},
    4: {'n_saved': 471, 'sha256': '03824bedbf62e7262f10e236cfb93a779e6d36c9897e2b6c8ea65addba180c5d',
        'mean': 71.39829187552134, 'std': 484.288502408859, 'p0': [75.01136779785156, 54.06730651855469,
        244.2292938232422], 'p1': [799.1485595703125, -398.9600830078125, 714.4028930664062], 'p2': 141.9764404296875},
}
FEA0 = [5.384603977203369, 0.42421209812164307, 11.856369972229004, 1.738519310951233]  # fea[0, :4]
MLP1 = [4.2285871505737305, -9.433197021484375, -7.055073261260986, -9.233474731445312]  # mlp(fea)[1, :4]


def fill(key: str, t: torch.Tensor) -> torch.Tensor:
    """The deterministic value of state-dict entry ``key`` (authors' key names)."""
    if not t.is_floating_point() or 'sub_mean' in key or 'add_mean' in key:
        return t.clone()
    g = torch.Generator().manual_seed(zlib.crc32(key.encode()))
    if key.endswith('running_var'):
        return torch.rand(t.shape, generator=g, dtype=torch.float64).float() * 0.5 + 0.75
    if key.endswith('running_mean'):
        return torch.randn(t.shape, generator=g, dtype=torch.float64).float() * 0.1
    if t.dim() <= 1:
        return torch.randn(t.shape, generator=g, dtype=torch.float64).float() * 0.1 + key.endswith('.weight')
    value = torch.randn(t.shape, generator=g, dtype=torch.float64).float() / math.sqrt(t[0].numel())
    return value / 64 if key.endswith('kernel.2.weight') else value


def filled(module: torch.nn.Module, prefix: str = '') -> dict:
    return {k: fill(prefix + k, v) for k, v in module.state_dict().items()}


@pytest.mark.parametrize('scale', [2, 3, 4])
def test_keys_and_output_equal_the_authors(scale):
    ref = AUTHORS[scale]
    net = DASR(scale).eval()
    lines = sorted(f"{k}:{'x'.join(map(str, v.shape))}" for k, v in net.state_dict().items())
    assert len(lines) == ref['n_saved'] and hashlib.sha256('\n'.join(lines).encode()).hexdigest() == ref['sha256']
    net.load_state_dict(filled(net))
    x = torch.rand(2, 3, 20, 20, generator=torch.Generator().manual_seed(0), dtype=torch.float64).float()
    with torch.no_grad():
        sr, fea, emb = net(x, embedding=True)
    sr = sr * 255  # blindsr's [0, 1] units -> the authors' 0..255
    assert sr.shape == (2, 3, 20 * scale, 20 * scale)
    assert torch.allclose(fea[0, :4], torch.tensor(FEA0), atol=1e-5) and torch.allclose(emb[1, :4], torch.tensor(MLP1), atol=1e-5)
    # within 1e-5 in [0, 1] units (outputs span about -2000..2400 in 0..255 units with these weights)
    tol = 255e-5
    assert abs(float(sr.mean()) - ref['mean']) < tol and abs(float(sr.std()) - ref['std']) < tol
    assert torch.allclose(sr[0, :, 0, 0], torch.tensor(ref['p0']), atol=tol)
    assert torch.allclose(sr[1, :, 7, 11], torch.tensor(ref['p1']), atol=tol)
    assert abs(float(sr[1, 2, -1, -1]) - ref['p2']) < tol


def test_moco_training_step_equals_the_authors():
    net = DASR(4).train()
    net.load_state_dict(filled(net))
    moco = MoCo(net.encoder).train()
    moco.load_state_dict(filled(moco, 'E.'))  # the authors' MoCo keys: E.encoder_k.*, E.queue, E.queue_ptr
    pair = torch.rand(2, 2, 3, 20, 20, generator=torch.Generator().manual_seed(1), dtype=torch.float64).float()
    with torch.no_grad():
        _, _, q = net(pair[:, 0], embedding=True)
        logits, labels = moco(q, pair[:, 1] * 255, net.encoder)
    assert logits.shape == (2, 8193) and labels.tolist() == [0, 0]
    expected = torch.tensor([[-0.9219042658805847, -0.1297384798526764, 0.13818882405757904, 0.1845075935125351,
                              -0.2690446078777313, 0.024340106174349785],
                             [-0.9248855710029602, -0.12207946926355362, 0.09098225831985474, 0.1500575989484787,
                              -0.1491059958934784, 0.03174525499343872]])
    assert torch.allclose(logits[:, :6], expected, atol=1e-5)
    assert float(F.cross_entropy(logits, labels)) == pytest.approx(9.945511211275635, abs=1e-5)
    assert int(moco.queue_ptr) == 2
    assert torch.allclose(moco.queue[:4, :2].T, torch.tensor([[0.0041043697856366634, -0.040862224996089935,
                          0.039529427886009216, 0.09856536984443665], [0.0046332599595189095, -0.03687378019094467,
                          0.02764747105538845, 0.11508558690547943]]), atol=1e-6)
    assert torch.allclose(moco.encoder_k.E[0].bias[:3], torch.tensor(
        [0.03324424847960472, -0.12932494282722473, 0.16163326799869537]), atol=1e-7)
    assert float(info_nce_accuracy(logits)) == 0.0  # random weights: the positive is not the best match


def test_authors_checkpoints_load_strictly(tmp_path):
    net = DASR(2)
    released = filled(net)  # the layout of model_600.pt: G.* and E.encoder_q.*, a raw state dict
    torch.save(released, tmp_path / 'model_600.pt')
    fresh = DASR(2)
    result = load_pretrained(fresh, tmp_path / 'model_600.pt')
    assert not result.missing and not result.unexpected
    assert torch.equal(fresh.G.tail[1].weight, released['G.tail.1.weight'])
    live = {**released, 'E.queue': torch.zeros(256, 8192), 'E.queue_ptr': torch.zeros(1, dtype=torch.long),
            **{k.replace('encoder_q', 'encoder_k'): v for k, v in released.items() if 'encoder_q' in k}}
    assert 'from_authors_training_state' in load_pretrained(DASR(2), live).source


def test_moco_queue_rules():
    enc = DASR(2, num_feat=8, num_group=1, num_block=1, enc_feat=8).encoder
    moco = MoCo(enc, dim=32, queue_size=6)
    assert torch.allclose(moco.queue.norm(dim=0), torch.ones(6))
    for step in range(4):
        x = torch.rand(2, 3, 16, 16) * 255
        moco(enc(x)[1], x, enc)
    assert int(moco.queue_ptr) == 2  # 4 steps x 2 keys, wrapped around 6
    with pytest.raises(ValueError, match='multiple of the global batch size 4'):
        x = torch.rand(4, 3, 16, 16) * 255
        moco(enc(x)[1], x, enc)


def test_zero_representation_ablation():
    net = DASR(2, num_feat=8, num_group=1, num_block=1, enc_feat=8).eval()
    ablated = DASR(2, num_feat=8, num_group=1, num_block=1, enc_feat=8, zero_representation=True).eval()
    ablated.load_state_dict(net.state_dict())
    x = torch.rand(1, 3, 12, 12)
    with torch.no_grad():
        assert torch.equal(ablated(x), net.G(x * 255, torch.zeros(1, 32)) / 255)
        assert not torch.equal(ablated(x), net(x))
