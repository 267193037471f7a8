"""Option files: overrides, defaults, resolved copy, plugins and validation errors naming file and key."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml

from blindsr.options import OptionsError, apply_override, dump_options, load_options
from blindsr.registry import ARCH_REGISTRY

BASE = """
name: opt_test
model_type: BlindSRModel
scale: 2
degradation: {type: bicubic}
datasets:
  train: {type: HRImageDataset, dataroot_gt: /nowhere, gt_size: 32}
network_g: {type: BSRNet, scale: 2, num_feat: 8, num_block: 1, num_grow_ch: 4}
train:
  total_iter: 10
"""


def write(tmp_path: Path, text: str, name: str = 'opt.yml') -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_defaults_and_overrides(tmp_path):
    path = write(tmp_path, BASE)
    opt = load_options(path, ['train.total_iter=25', 'train.optim_g.lr=2e-4', 'datasets.train.use_rot=false',
                              'logger.print_freq=3', 'network_g.num_block=2'])
    assert opt['train']['total_iter'] == 25
    assert opt['train']['optim_g'] == {'type': 'Adam', 'lr': 2e-4, 'betas': [0.9, 0.99], 'weight_decay': 0}
    assert opt['datasets']['train']['use_rot'] is False
    assert opt['logger']['print_freq'] == 3 and opt['logger']['save_checkpoint_freq'] == 1000
    assert opt['network_g']['num_block'] == 2
    assert opt['datasets']['train']['name'] == 'train' and opt['datasets']['train']['phase'] == 'train'
    # the run folder is absolute and BasicSR-like: experiments/<name>
    assert Path(opt['path']['experiments_root']).is_absolute()
    assert opt['path']['experiments_root'].endswith('experiments/opt_test')
    assert opt['path']['training_states'] == opt['path']['experiments_root'] + '/training_states'
    # the resolved options round-trip through YAML
    assert yaml.safe_load(dump_options(opt, 'header\nline')) == opt


def test_override_parsing():
    opt = {'a': {'b': [1, 2, 3]}}
    apply_override(opt, 'a.b.1=null')
    apply_override(opt, 'a.c.d={x: 1}')
    apply_override(opt, 'e=hello world')
    apply_override(opt, 'lr=2e-4')  # plain PyYAML would read a string here
    assert opt == {'a': {'b': [1, None, 3], 'c': {'d': {'x': 1}}}, 'e': 'hello world', 'lr': 2e-4}
    with pytest.raises(OptionsError, match='key.path=value'):
        apply_override(opt, 'novalue')
    with pytest.raises(OptionsError, match="'a.b' indexes a list of 3 items with '7'"):
        apply_override(opt, 'a.b.7=1')
    with pytest.raises(OptionsError, match="'e' is a str"):
        apply_override(opt, 'e.f=1')


@pytest.mark.parametrize('edit, message', [
    (lambda o: o.pop('scale'), "required key 'scale' is missing"),
    (lambda o: o['train'].update(total_iter='10k'), "train.total_iter must be int, got str '10k'"),
    (lambda o: o['train'].update(total_iter=0), 'train.total_iter must be >= 1'),
    (lambda o: o['train'].update(ema_decay=1.5), r'train.ema_decay must be in \[0, 1\)'),
    (lambda o: o['network_g'].update(type='NoSuchNet'), "network_g.type: No 'NoSuchNet' in the arch registry"),
    (lambda o: o.update(model_type='Nope'), "model_type.type: No 'Nope' in the model registry"),
    (lambda o: o['datasets'].pop('train'), 'datasets.train is required'),
    (lambda o: o['datasets']['train'].update(batch_size_per_gpu=2.5), 'datasets.train.batch_size_per_gpu must be int'),
    (lambda o: o.update(trian={}), "unknown top-level key 'trian'"),
    (lambda o: o['degradation'].update(type='blurry'), "degradation.type: No 'blurry' in the degradation registry"),
    (lambda o: o.update(scale=True), 'scale must be int, got bool'),
    (lambda o: o.update(logger={'print_freq': 'often'}), 'logger.print_freq must be int'),
])
def test_validation_errors_name_file_and_key(tmp_path, edit, message):
    opt = yaml.safe_load(BASE)
    edit(opt)
    path = write(tmp_path, yaml.safe_dump(opt), 'broken.yml')
    with pytest.raises(OptionsError, match=message) as info:
        load_options(path)
    assert str(path) in str(info.value)


def test_malformed_yaml_and_missing_file(tmp_path):
    path = write(tmp_path, 'name: x\ntrain: [unclosed\n', 'bad.yml')
    with pytest.raises(OptionsError, match='bad.yml: malformed YAML'):
        load_options(path)
    with pytest.raises(OptionsError, match='Option file not found'):
        load_options(tmp_path / 'absent.yml')
    with pytest.raises(OptionsError, match='top level must be a mapping'):
        load_options(write(tmp_path, '- a\n- b\n', 'list.yml'))


def test_unknown_name_lists_registry_contents(tmp_path):
    opt = yaml.safe_load(BASE)
    opt['network_g']['type'] = 'BSRNett'
    with pytest.raises(OptionsError) as info:
        load_options(write(tmp_path, yaml.safe_dump(opt)))
    text = str(info.value)
    assert "Did you mean 'BSRNet'" in text and 'EDSR' in text and 'SwinIR' in text


def test_plugin_module_registers_an_arch(tmp_path):
    """A user's own file, named under plugins:, registers an arch that the options then use."""
    (tmp_path / 'my_plugin_arch.py').write_text(textwrap.dedent('''
        import torch
        from blindsr.registry import ARCH_REGISTRY

        @ARCH_REGISTRY.register()
        class PluginUpsampler(torch.nn.Module):
            def __init__(self, scale=2):
                super().__init__()
                self.conv = torch.nn.Conv2d(3, 3 * scale * scale, 3, padding=1)
                self.shuffle = torch.nn.PixelShuffle(scale)

            def forward(self, x):
                return self.shuffle(self.conv(x))
        '''))
    opt = yaml.safe_load(BASE)
    opt['plugins'] = ['my_plugin_arch.py']
    opt['network_g'] = {'type': 'PluginUpsampler', 'scale': 2}
    loaded = load_options(write(tmp_path, yaml.safe_dump(opt)))
    assert 'PluginUpsampler' in ARCH_REGISTRY
    assert loaded['network_g']['type'] == 'PluginUpsampler'
    opt['plugins'] = ['no_such_module_xyz']
    with pytest.raises(OptionsError, match="plugins: cannot import 'no_such_module_xyz'"):
        load_options(write(tmp_path, yaml.safe_dump(opt), 'p2.yml'))


def test_every_shipped_option_file_loads():
    """Every YAML under options/ is valid (train files as training, test files as test)."""
    root = Path(__file__).resolve().parents[1] / 'options'
    files = sorted(root.rglob('*.yml'))
    assert files
    for path in files:
        load_options(path, is_train=path.relative_to(root).parts[0] == 'train')
