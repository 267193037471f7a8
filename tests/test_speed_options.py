"""The engine's speed options (``train.channels_last``, ``train.compile``, fused/foreach Adam) train the
same network as the plain run, up to floating-point rounding; fused/foreach Adam resume bit-exactly;
``cudnn_benchmark`` cannot be combined with ``deterministic``; ``use_amp: auto`` is bf16 where it is native."""

from __future__ import annotations

import pytest
import torch
from conftest import write_photos
from test_train import final_weights, tiny_options

from blindsr import train as train_entry
from blindsr.checkpoint import read_checkpoint
from blindsr.models.base_model import amp_dtype

SPEED_OPTIONS = {
    'channels_last': ['--set', 'train.channels_last=true'],
    'compile': ['--set', 'train.compile=true'],
    'fused_adam': ['--set', 'train.optim_g.fused=true'],
    'foreach_adam': ['--set', 'train.optim_g.foreach=true'],
}


@pytest.fixture(scope='module')
def photos(tmp_path_factory):
    root = tmp_path_factory.mktemp('photos')
    return {'train': write_photos(root / 'train', ['astronaut', 'chelsea'], size=64),
            'val': write_photos(root / 'val', ['coffee'], size=32)}


@pytest.fixture(scope='module')
def plain_run(tmp_path_factory, photos):
    tmp_path = tmp_path_factory.mktemp('plain')
    return final_weights(train_entry.main(['-opt', str(tiny_options(tmp_path, photos, 'plain', total_iter=3)),
                                           '--set', 'val.val_freq=100']))


@pytest.mark.parametrize('option', SPEED_OPTIONS)
def test_speed_option_trains_the_same_network(tmp_path, photos, plain_run, option):
    run = train_entry.main(['-opt', str(tiny_options(tmp_path, photos, option, total_iter=3)),
                            '--set', 'val.val_freq=100', *SPEED_OPTIONS[option]])
    weights = final_weights(run)
    assert weights['params'].keys() == plain_run['params'].keys()  # no _orig_mod. prefix from compile
    conv = weights['params']['conv_first.weight']
    assert conv.is_contiguous(memory_format=torch.channels_last) == (option == 'channels_last')
    log = next(run.glob('train_*.log')).read_text()
    assert ('net_g: compiled for training' in log) == (option == 'compile')
    for key, value in plain_run['params'].items():
        torch.testing.assert_close(weights['params'][key].contiguous(), value, rtol=1e-4, atol=1e-5, msg=key)


def test_cudnn_benchmark_contradicts_deterministic(tmp_path, photos):
    with pytest.raises(ValueError, match='cudnn_benchmark: true contradicts deterministic: true'):
        train_entry.main(['-opt', str(tiny_options(tmp_path, photos, 'cudnn', total_iter=1)),
                          '--set', 'train.cudnn_benchmark=true', '--set', 'deterministic=true'])


@pytest.mark.parametrize('optimizer', ['fused', 'foreach'])
def test_resume_with_a_fused_optimizer_is_bit_identical(tmp_path, photos, optimizer):
    """Stopped at iteration 3 and resumed, a run with fused (foreach) Adam ends with the uninterrupted run's weights."""
    setting = ['--set', 'val.val_freq=100', '--set', f'train.optim_g.{optimizer}=true']
    whole = train_entry.main(['-opt', str(tiny_options(tmp_path, photos, 'whole')), *setting])
    opt_path = tiny_options(tmp_path, photos, 'parts')
    train_entry.main(['-opt', str(opt_path), *setting, '--set', 'train.total_iter=3'])
    parts = train_entry.main(['-opt', str(opt_path), *setting, '--auto_resume'])
    assert 'Resumed from' in max(parts.glob('train_parts_*.log')).read_text()
    assert read_checkpoint(parts / 'training_states' / '6.state')['optimizers']['net_g']['param_groups'][0][optimizer]
    a, b = final_weights(whole), final_weights(parts)
    for key in ('params', 'params_ema'):
        for name in a[key]:
            assert torch.equal(a[key][name], b[key][name]), (key, name)


def test_amp_auto_is_native_bf16_only(monkeypatch):
    assert amp_dtype('auto', torch.device('cpu')) is None
    assert amp_dtype('bf16', torch.device('cpu')) is torch.bfloat16
    for capability, dtype in (((7, 0), None), ((7, 5), None), ((8, 0), torch.bfloat16), ((9, 0), torch.bfloat16)):
        # V100 and T4 (7.x) emulate bf16, which torch.cuda.is_bf16_supported() counts as support
        monkeypatch.setattr(torch.cuda, 'get_device_capability', lambda device, c=capability: c)
        assert amp_dtype('auto', torch.device('cuda', 0)) is dtype, capability
