"""Option files: overrides, defaults, resolved copy, plugins and validation errors naming file and key."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import torch
import yaml
from conftest import REPO

from blindsr.data.image_io import list_images
from blindsr.data.loader import build_dataloader
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
    # blindsr's Adam defaults, then torch's own defaults of every other Adam argument
    assert opt['train']['optim_g'].items() >= {'type': 'Adam', 'lr': 2e-4, 'betas': [0.9, 0.99], 'weight_decay': 0,
                                               'eps': 1e-8, 'amsgrad': False}.items()
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
    (lambda o: o.update(trian={}), "trian is not a key of the top level. Did you mean 'train'"),
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


@pytest.mark.parametrize('device, overrides, expected', [
    ('cpu', [], {'num_workers': 0, 'prefetch_factor': None, 'persistent_workers': False, 'pin_memory': False}),
    ('cuda', ['datasets.train.num_worker_per_gpu=2'],
     {'num_workers': 2, 'prefetch_factor': 2, 'persistent_workers': True, 'pin_memory': True}),
    ('cuda', ['datasets.train.num_worker_per_gpu=1', 'datasets.train.prefetch_factor=6',
              'datasets.train.persistent_workers=false', 'datasets.train.pin_memory=false'],
     {'num_workers': 1, 'prefetch_factor': 6, 'persistent_workers': False, 'pin_memory': False}),
    ('cpu', ['datasets.train.pin_memory=true'], {'pin_memory': True}),
])
def test_loader_options_reach_the_dataloader(tmp_path, device, overrides, expected):
    """Workers keep persistent by default, pin_memory follows the device unless set; a DataLoader built
    for a CUDA device is only constructed here (nothing is pinned until it is iterated)."""
    opt = load_options(write(tmp_path, BASE), overrides)['datasets']['train']
    dataset = list(range(4))  # any sized dataset: the loader is never iterated
    loader = build_dataloader(dataset, opt, 'train', 0, 0, 1, torch.device(device))
    assert {key: getattr(loader, key) for key in expected} == expected


@pytest.mark.parametrize('override, message', [
    # misspelled or misplaced keys below the top level
    ('datasets.train.batch_size=8', "datasets.train.batch_size is not a key of dataset HRImageDataset. "
                                    "Did you mean 'batch_size_per_gpu'"),
    ('datasets.train.use_flip=true', "datasets.train.use_flip is not a key of dataset HRImageDataset. "
                                     "Did you mean 'use_hflip'"),
    ('train.ema_decy=0.9', "train.ema_decy is not a key of BlindSRModel training. Did you mean 'ema_decay'"),
    ('val.val_frq=5', "val.val_frq is not a key of the val section. Did you mean 'val_freq'"),
    ('logger.save_checkpoint_frq=5', "logger.save_checkpoint_frq is not a key of the logger section. "
                                     "Did you mean 'save_checkpoint_freq'"),
    ('path.experiment_root=/tmp/x', "path.experiment_root is not a key of the path section. "
                                    "Did you mean 'experiments_root'"),
    ('network_g.num_feats=8', "network_g.num_feats is not a key of arch BSRNet. Did you mean 'num_feat'"),
    ('train.optim_g.lrr=0.1', "train.optim_g.lrr is not a key of optimizer Adam. Did you mean 'lr'"),
    ('degradation.sigma=2', 'degradation.sigma is not a key of degradation bicubic'),
    ('train.losses=[{type: L1Loss, loss_wieght: 2}]', "train.losses\\[0\\].loss_wieght is not a key of loss L1Loss. "
                                     "Did you mean 'loss_weight'"),
    ('val.metrics={psnr: {type: calculate_psnr, test_y_chanel: true}}',
     "val.metrics.psnr.test_y_chanel is not a key of metric calculate_psnr. Did you mean 'test_y_channel'"),
    # missing, mistyped, out of range
    ('datasets.train.gt_size=null', 'datasets.train.gt_size is required \\(dataset HRImageDataset\\)'),
    ('val.val_freq=0', 'val.val_freq must be >= 1, got 0'),
    ('logger.print_freq=0', 'logger.print_freq must be >= 1, got 0'),
    ('logger.save_checkpoint_freq=0', 'logger.save_checkpoint_freq must be >= 1, got 0'),
    ('datasets.train.dataroot_gt=123', 'datasets.train.dataroot_gt must be str or list, got int 123'),
    ('datasets.train.gt_size=abc', "datasets.train.gt_size must be int, got str 'abc'"),
    ('datasets.train.num_worker_per_gpu=-1', 'datasets.train.num_worker_per_gpu must be >= 0'),
    ('network_g.num_feat=eight', "network_g.num_feat must be int, got str 'eight'"),
    ('train.use_amp=fp8', "train.use_amp must be one of False, True, 'fp16', 'bf16', 'auto', got 'fp8'"),
    ('train.optim_g={type: SGD, lr: 0.1, betas: [0.9, 0.99]}', 'train.optim_g.betas is not a key of optimizer SGD'),
    ('train.scheduler={type: StepLR}', 'train.scheduler.step_size is required by scheduler StepLR'),
    ('train.scheduler={type: CosineAnnealingLR}', 'train.scheduler.T_max is required by scheduler CosineAnnealingLR'),
    ('train.scheduler={type: CosineAnnealingLR, T_max: 10, milestones: [5]}',
     'train.scheduler.milestones is not a key of scheduler CosineAnnealingLR. Known keys: T_max, eta_min, last_epoch'),
    ('train.optim_g.type=Adamm', "train.optim_g.type: Unknown optimizer 'Adamm'"),
    ('dist.backend=mpi', "dist.backend must be one of 'auto', 'nccl', 'gloo'"),
    ('datasets.train.prefetch_factor=0', 'datasets.train.prefetch_factor must be >= 1, got 0'),
    ('datasets.train.prefetch_factor=4', ('datasets.train.prefetch_factor is the number of batches each '
                                          'DataLoader worker prepares ahead; it needs num_worker_per_gpu > 0')),
    ('datasets.train.persistent_workers=1', 'datasets.train.persistent_workers must be bool, got int 1'),
    ('datasets.train.pin_memory=cuda', "datasets.train.pin_memory must be bool, got str 'cuda'"),
])
def test_every_key_at_every_depth_is_checked(tmp_path, override, message):
    path = write(tmp_path, BASE + 'val: {}\n', 'deep.yml')
    with pytest.raises(OptionsError, match=message) as info:
        load_options(path, [override])
    assert str(info.value).startswith(f'{path}: ') and '\n' not in str(info.value)


@pytest.mark.parametrize('override', ['train.stge=encoder', 'moco.queue_sise=64'])
def test_model_declared_sections_are_checked(tmp_path, override):
    """DASRModel's train.stage and moco: section are declared by the model; typos in them are errors."""
    text = BASE.replace('BlindSRModel', 'DASRModel').replace(
        'network_g: {type: BSRNet, scale: 2, num_feat: 8, num_block: 1, num_grow_ch: 4}', 'network_g: {type: DASR, scale: 2}')
    key, close = override.split('=')[0], {'train.stge': 'stage', 'moco.queue_sise': 'queue_size'}
    with pytest.raises(OptionsError, match=f"{key} is not a key of .*Did you mean '{close[key]}'"):
        load_options(write(tmp_path, text, 'dasr.yml'), [override])
    opt = load_options(write(tmp_path, text, 'dasr.yml'), ['moco.queue_size=64'])
    assert opt['moco'] == {'queue_size': 64, 'momentum': 0.999, 'temperature': 0.07}
    assert opt['train']['stage'] == 'joint' and opt['train']['contrastive_weight'] == 1.0


@pytest.mark.parametrize('section, expected', [
    ('train.optim_g={type: SGD, lr: 0.1}', {'type': 'SGD', 'lr': 0.1, 'momentum': 0}),
    ('train.optim_g={type: AdamW, lr: 0.001}', {'type': 'AdamW', 'lr': 0.001}),
    ('train.scheduler={type: CosineAnnealingLR, T_max: 10}', {'type': 'CosineAnnealingLR', 'T_max': 10}),
    ('train.scheduler={type: CosineAnnealingRestartLR, periods: [5, 5], restart_weights: [1, 0.5]}',
     {'type': 'CosineAnnealingRestartLR', 'periods': [5, 5]}),
])
def test_defaults_belong_to_the_type_not_the_section(tmp_path, section, expected):
    """A user's optimizer/scheduler gets its own defaults, never Adam's betas or MultiStepLR's milestones,
    and builds and steps."""
    import torch

    from blindsr.models.base_model import make_scheduler, optimizer_class

    opt = load_options(write(tmp_path, BASE), [section])
    key = section.split('=')[0].split('.')[1]
    resolved = opt['train'][key]
    assert resolved.items() >= expected.items()
    assert 'betas' not in resolved or resolved['type'] in ('Adam', 'AdamW')
    assert 'milestones' not in resolved or resolved['type'] == 'MultiStepLR'
    args = {k: v for k, v in opt['train']['optim_g'].items() if k != 'type'}
    optimizer = optimizer_class(opt['train']['optim_g']['type'])([torch.nn.Parameter(torch.zeros(1))], **args)
    scheduler = make_scheduler(optimizer, opt['train']['scheduler'])
    optimizer.step()
    scheduler.step()


def test_a_scheduler_refusing_its_arguments_is_a_one_line_error(tmp_path):
    import torch

    from blindsr.models.base_model import make_scheduler

    opt = load_options(write(tmp_path, BASE), ['train.scheduler={type: CosineAnnealingRestartLR, periods: [2, 2]}'])
    optimizer = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))])
    with pytest.raises(ValueError, match='train.scheduler: CosineAnnealingRestartLR does not accept .*same length'):
        make_scheduler(optimizer, opt['train']['scheduler'])


def test_resolved_options_round_trip(tmp_path):
    """The resolved options (every default spelled out, as the run folder records them) load again to the
    same options: a user can start a run from experiments/<name>/options.yml."""
    for path in sorted((REPO / 'options').rglob('*.yml')):
        is_train = path.relative_to(REPO / 'options').parts[0] == 'train'
        opt = load_options(path, is_train=is_train)
        again = write(tmp_path, dump_options(opt), 'resolved.yml')
        assert load_options(again, is_train=is_train) == opt, path
    opt = load_options(write(tmp_path, BASE))
    assert opt['logger'] == {'print_freq': 10, 'save_checkpoint_freq': 1000, 'keep_last': 3, 'use_tb_logger': True}
    assert opt['network_g']['num_feat'] == 8 and opt['network_g']['in_ch'] == 3  # the arch's own defaults


def test_data_root_variable_in_paths(tmp_path, photo_dirs, monkeypatch):
    """``${BLINDSR_DATA}`` in any string option (also one given with --set) is the environment's value; unset,
    the option file fails naming the key and the variable; a folder missing under it names the root."""
    monkeypatch.setenv('BLINDSR_DATA', str(photo_dirs['train'].parent))
    opt = yaml.safe_load(BASE)
    opt['datasets'] = {'val': {'type': 'HRImageDataset', 'dataroot_gt': '${BLINDSR_DATA}/val'}}
    path = write(tmp_path, yaml.safe_dump(opt))
    loaded = load_options(path, ['datasets.train={type: HRImageDataset, dataroot_gt: [x, "${BLINDSR_DATA}/train"], gt_size: 32}'])
    assert loaded['datasets']['val']['dataroot_gt'] == str(photo_dirs['val'])
    assert loaded['datasets']['train']['dataroot_gt'] == ['x', str(photo_dirs['train'])]
    with pytest.raises(FileNotFoundError, match=f"Image folder .*nope does not exist \\(under the data root "
                                                f"BLINDSR_DATA={photo_dirs['train'].parent}; scripts/prepare_data.py"):
        list_images(Path(photo_dirs['train'].parent, 'nope'))
    monkeypatch.setenv('BLINDSR_DATA', str(tmp_path / 'absent'))
    with pytest.raises(FileNotFoundError, match='absent does not exist; set BLINDSR_DATA to the folder that holds'):
        list_images(tmp_path / 'absent' / 'Set5')
    monkeypatch.delenv('BLINDSR_DATA')
    with pytest.raises(OptionsError, match=r'opt.yml: datasets.val.dataroot_gt uses \$\{BLINDSR_DATA\}, which is not '
                                           'set; set BLINDSR_DATA to the folder that holds your datasets'):
        load_options(path, is_train=False)
