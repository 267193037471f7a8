"""load_pretrained over every layout users bring; atomic saves; state-file bookkeeping; checksums and
what a file that is not a checkpoint is said to be."""

from __future__ import annotations

import io
import pickle

import numpy as np
import pytest
import torch
from torch import nn

import blindsr
from blindsr.checkpoint import (
    FORMAT,
    CheckpointError,
    latest_state,
    load_pretrained,
    newest_loadable_state,
    prune_states,
    read_checkpoint,
    save_atomic,
)
from blindsr.data.image_io import write_image
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


def blindsr_state(it: int) -> dict:
    return {'format': FORMAT, 'iter': it, 'networks': {'net_g': randomised(tiny_net(), it)},
            'options': {'name': 'x', 'lr': 1e-3, 'milestones': [4, 8]}, 'rng': [{'python': (3, (1, 2), None)}]}


def flip_a_bit(path, tensor: torch.Tensor) -> None:
    """Flip one bit inside ``tensor``'s bytes in the file (torch.load does not notice)."""
    data = bytearray(path.read_bytes())
    at = data.find(tensor.numpy().tobytes())
    assert at > 0
    data[at + 5] ^= 0x10
    path.write_bytes(bytes(data))


def test_states_carry_a_checksum_that_catches_a_flipped_bit(tmp_path):
    state = blindsr_state(3)
    path = tmp_path / '3.state'
    save_atomic(state, path)
    plain = torch.load(path, weights_only=True)  # still a plain weights-only file
    assert plain['checksum'].startswith('sha256:') and plain['iter'] == 3
    assert load_pretrained(tiny_net(), path).source == f'networks.net_g of {path}'
    weight = state['networks']['net_g']['conv_first.weight']
    flip_a_bit(path, weight)
    assert not torch.equal(torch.load(path, weights_only=True)['networks']['net_g']['conv_first.weight'], weight)
    for load in (read_checkpoint, lambda p: load_pretrained(tiny_net(), p)):
        with pytest.raises(CheckpointError, match=r'3\.state is damaged: .* checksum'):
            load(path)
    torch.save(state, tmp_path / 'old.state')  # written before states carried a checksum
    assert read_checkpoint(tmp_path / 'old.state')['iter'] == 3


class Pickled:
    """Not a tensor: a weights-only load refuses it."""


def torch_saved(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def png_bytes(tmp_path) -> bytes:
    write_image(tmp_path / 'photo.png', np.zeros((4, 4, 3), np.float32))
    return (tmp_path / 'photo.png').read_bytes()


@pytest.mark.parametrize('content, says', [
    (lambda tmp: b'', 'the file is empty (0 bytes'),
    (png_bytes, 'it is a PNG image, not a torch checkpoint.'),
    (lambda tmp: b'not a checkpoint', "it is a file starting with b'not a ch', not a torch checkpoint."),
    (lambda tmp: pickle.dumps({'net': Pickled()}), 'not a weights-only pickle (Unsupported operand'),
    (lambda tmp: torch_saved({'net': Pickled()}),
     'not a weights-only pickle (Unsupported global: GLOBAL test_checkpoint.Pickled was not an allowed global'),
    (lambda tmp: torch_saved(blindsr_state(1))[:3000], 'a truncated or damaged torch file (3000 bytes; '),
], ids=['empty', 'png', 'text', 'pickle', 'torch-pickle', 'truncated'])
def test_unreadable_files_are_named_for_what_they_are(tmp_path, content, says):
    """No message passes on torch's advice to load with weights_only=False (which runs a pickle's code)."""
    path = tmp_path / 'net.pth'
    path.write_bytes(content(tmp_path))
    for load in (read_checkpoint, lambda p: load_pretrained(tiny_net(), p)):
        with pytest.raises(CheckpointError) as info:
            load(path)
        text = str(info.value)
        assert text.startswith(f'Cannot read checkpoint {path}: {says}') and 'False' not in text, text


def test_newest_loadable_state_passes_over_damaged_states(tmp_path):
    for it in range(1, 6):
        save_atomic(blindsr_state(it), tmp_path / f'{it}.state')
    whole = (tmp_path / '5.state').read_bytes()
    (tmp_path / '5.state').write_bytes(whole[:len(whole) // 2])
    (tmp_path / '4.state').write_bytes(b'')
    flip_a_bit(tmp_path / '3.state', blindsr_state(3)['networks']['net_g']['conv_last.weight'])
    save_atomic({'params': randomised(tiny_net(), 2)}, tmp_path / '2.state')
    path, state, skipped = newest_loadable_state(tmp_path)
    assert path == tmp_path / '1.state' and state['iter'] == 1
    said = ['5.state: a truncated or damaged torch file', '4.state: the file is empty (0 bytes',
            '3.state is damaged: its contents no longer match', '2.state is not a blindsr training state']
    assert len(skipped) == len(said) and all(f'{tmp_path}/{text}' in r for r, text in zip(skipped, said)), skipped
    assert newest_loadable_state(tmp_path / 'none') == (None, None, [])
