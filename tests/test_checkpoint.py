"""load_pretrained over every layout users bring; atomic saves; state-file bookkeeping."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import blindsr
from blindsr.checkpoint import (
    FORMAT,
    CheckpointError,
    latest_state,
    load_pretrained,
    prune_states,
    read_checkpoint,
    save_atomic,
)
from blindsr.registry import ARCH_REGISTRY


def tiny_net() -> nn.Module:
    return ARCH_REGISTRY.get('BSRNet')(scale=2, num_feat=8, num_block=1, num_grow_ch=4)


def randomised(net: nn.Module, seed: int) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(v.shape, generator=g) for k, v in net.state_dict().items()}


@pytest.mark.parametrize('wrap', [
    lambda sd: sd,
    lambda sd: {'params': sd},
    lambda sd: {'params_ema': sd, 'params': {k: v * 0 for k, v in sd.items()}},  # EMA preferred
    lambda sd: {'state_dict': sd, 'epoch': 3},
    lambda sd: {'model': sd},
    lambda sd: {f'module.{k}': v for k, v in sd.items()},
    lambda sd: {'params': {f'module.{k}': v for k, v in sd.items()}},
    lambda sd: {'format': FORMAT, 'networks': {'net_g': {k: v * 0 for k, v in sd.items()}, 'net_g_ema': sd}},
], ids=['raw', 'params', 'params_ema', 'state_dict', 'model', 'module', 'params+module', 'blindsr'])
def test_layouts_load_from_path_and_dict(tmp_path, wrap):
    ref = randomised(tiny_net(), 0)
    ckpt = wrap(ref)
    for source in (ckpt, tmp_path / 'w.pth'):
        torch.save(ckpt, tmp_path / 'w.pth')
        net = tiny_net()
        result = blindsr.load_pretrained(net, source)
        assert not result.missing and not result.unexpected
        for k, v in net.state_dict().items():
            assert torch.equal(v, ref[k]), k


def test_explicit_key_and_ddp_wrapper():
    ref = randomised(tiny_net(), 1)
    other = randomised(tiny_net(), 2)
    net = nn.DataParallel(tiny_net())
    load_pretrained(net, {'params': ref, 'params_ema': other}, key='params')
    assert torch.equal(net.module.conv_first.weight, ref['conv_first.weight'])


def test_strict_error_lists_missing_and_unexpected():
    ref = randomised(tiny_net(), 0)
    ref['extra.weight'] = torch.zeros(1)
    del ref['conv_last.bias']
    with pytest.raises(CheckpointError) as info:
        load_pretrained(tiny_net(), ref)
    text = str(info.value)
    assert "1 missing keys ['conv_last.bias']" in text and "1 unexpected keys ['extra.weight']" in text
    result = load_pretrained(tiny_net(), ref, strict=False)
    assert result.missing == ['conv_last.bias'] and result.unexpected == ['extra.weight']


def test_shape_mismatch_and_bad_files(tmp_path):
    wrong = randomised(ARCH_REGISTRY.get('BSRNet')(scale=2, num_feat=16, num_block=1, num_grow_ch=4), 0)
    with pytest.raises(CheckpointError, match='shape mismatches'):
        load_pretrained(tiny_net(), wrong)
    with pytest.raises(FileNotFoundError, match='Checkpoint not found: .*absent.pth'):
        load_pretrained(tiny_net(), tmp_path / 'absent.pth')
    (tmp_path / 'garbage.pth').write_bytes(b'not a checkpoint')
    with pytest.raises(CheckpointError, match='Cannot read checkpoint .*garbage.pth'):
        load_pretrained(tiny_net(), tmp_path / 'garbage.pth')
    with pytest.raises(CheckpointError, match="no network 'net_d'"):
        load_pretrained(tiny_net(), {'format': FORMAT, 'networks': {'net_g': {}}}, key='net_d')


def test_save_atomic_and_state_files(tmp_path):
    folder = tmp_path / 'states'
    for it in (5, 100, 20):
        save_atomic({'iter': it}, folder / f'{it}.state')
    (folder / 'notes.txt').write_text('ignored')
    assert latest_state(folder).name == '100.state'
    assert read_checkpoint(folder / '20.state') == {'iter': 20}
    prune_states(folder, keep=2)
    assert sorted(p.name for p in folder.iterdir()) == ['100.state', '20.state', 'notes.txt']
    assert not list(folder.glob('.*.tmp'))  # no temporary files left behind
    assert latest_state(tmp_path / 'none') is None

    class Boom:
        def __reduce__(self):
            raise RuntimeError('cannot pickle')

    with pytest.raises(RuntimeError):
        save_atomic({'x': Boom()}, folder / '100.state')
    assert read_checkpoint(folder / '100.state') == {'iter': 100}  # the old file survives a failed save
    assert not list(folder.glob('.*.tmp'))
