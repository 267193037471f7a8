"""The engine's speed options (``train.channels_last``, ``train.compile``, fused/foreach Adam) train the
same network as the plain run, up to floating-point rounding; ``cudnn_benchmark`` cannot be combined
with ``deterministic``."""

from __future__ import annotations

import pytest
import torch
from conftest import write_photos
from test_train import final_weights, tiny_options

from blindsr import train as train_entry
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


def test_amp_auto_is_off_on_the_cpu():
    assert amp_dtype('auto', torch.device('cpu')) is None
    assert amp_dtype('bf16', torch.device('cpu')) is torch.bfloat16
