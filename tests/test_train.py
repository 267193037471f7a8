"""Training end to end on real photos: run folder contents, exact resume (past damaged states), when run
and results folders are made and archived, signals, DDP and multi-node."""

from __future__ import annotations

import datetime
import json
import os
import re
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml

from blindsr import folders
from blindsr import test as test_entry
from blindsr import train as train_entry
from blindsr.checkpoint import CheckpointError, load_pretrained, read_checkpoint
from blindsr.logging_utils import ProgressMeter
from blindsr.registry import ARCH_REGISTRY
from conftest import REPO, write_photos

NET = {'type': 'BSRNet', 'scale': 2, 'num_feat': 8, 'num_block': 1, 'num_grow_ch': 4}


def tiny_options(tmp_path: Path, photo_dirs: dict, name: str = 'tiny', **train_overrides) -> Path:
    opt = {
        'name': name,
        'model_type': 'BlindSRModel',
        'scale': 2,
        'manual_seed': 7,
        'degradation': {'type': 'bicubic'},
        'datasets': {
            'train': {'type': 'HRImageDataset', 'dataroot_gt': str(photo_dirs['train']), 'gt_size': 32,
                      'use_hflip': True, 'use_rot': True, 'batch_size_per_gpu': 2, 'num_worker_per_gpu': 0},
            'val': {'type': 'HRImageDataset', 'dataroot_gt': str(photo_dirs['val'])},
        },
        'network_g': NET,
        'path': {'experiments_root': str(tmp_path / 'experiments' / name)},
        'train': {'total_iter': 6, 'ema_decay': 0.9, 'optim_g': {'type': 'Adam', 'lr': 1e-3},
                  'scheduler': {'type': 'MultiStepLR', 'milestones': [4], 'gamma': 0.5}, **train_overrides},
        'val': {'val_freq': 3, 'save_img': True, 'save_comparison': True, 'bicubic_baseline': True},
        'logger': {'print_freq': 2, 'save_checkpoint_freq': 3, 'keep_last': 5},
    }
    path = tmp_path / f'{name}.yml'
    path.write_text(yaml.safe_dump(opt))
    return path


def test_progress_line_gives_the_share_of_iteration_time_waiting_for_data():
    meter = ProgressMeter(total_iter=10, start_iter=0)
    for data_time, iter_time in ((0.1, 0.5), (0.2, 0.7)):
        meter.update({'l_pix': torch.tensor(1.0)}, data_time, iter_time)
    text, scalars = meter.line(2, 0, 1e-4)
    assert 'data 0.150 s/it (25%) | eta' in text and scalars['train/data_share'] == pytest.approx(0.25)
    meter.update({'l_pix': torch.tensor(1.0)}, 0.0, 0.4)  # a new window: the share starts over
    assert '(0%)' in meter.line(3, 0, 1e-4)[0]


def final_weights(run: Path) -> dict:
    return torch.load(run / 'models' / 'net_g_final.pth', weights_only=True)


def test_training_run_writes_states_log_events_and_validation(tmp_path, photo_dirs):
    opt_path = tiny_options(tmp_path, photo_dirs)
    run = train_entry.main(['-opt', str(opt_path)])
    assert sorted(p.name for p in (run / 'training_states').iterdir()) == ['3.state', '6.state']
    state = read_checkpoint(run / 'training_states' / '6.state')
    assert state['iter'] == 6 and set(state['networks']) == {'net_g', 'net_g_ema'}
    assert set(state['optimizers']) == {'net_g'} and set(state['schedulers']) == {'net_g'}
    assert state['options']['train']['total_iter'] == 6 and len(state['rng']) == 1
    log = next(run.glob('train_tiny_*.log')).read_text()
    assert '[iter       6/6 100.0%]' in log and 'l_pix' in log and 'eta' in log and 'it/s' in log
    assert re.search(r'it/s, data \d+\.\d{3} s/it \(\d+%\) \| eta', log)  # the share waiting for data
    assert 'Validation val @ iter 6: psnr' in log and 'ssim' in log
    assert list((run / 'tb_logger').glob('events.out.tfevents.*'))
    assert (run / 'visualization' / 'coffee' / 'coffee_6.png').is_file()
    assert (run / 'visualization' / 'coffee' / 'coffee_6_compare.png').is_file() and 'bicubic_psnr' in log
    assert yaml.safe_load((run / 'options.yml').read_text())['name'] == 'tiny'
    # the final weights load through load_pretrained into a fresh arch (EMA preferred)
    net = ARCH_REGISTRY.get('BSRNet')(**{k: v for k, v in NET.items() if k != 'type'})
    assert 'params_ema' in load_pretrained(net, run / 'models' / 'net_g_final.pth').source
    # and the test entry point evaluates them, writing images and a results table
    test_opt = yaml.safe_load(opt_path.read_text())
    test_opt['path'] = {'pretrain_network_g': str(run / 'models' / 'net_g_final.pth'),
                        'results_root': str(tmp_path / 'results')}
    test_opt['val'] = {'bicubic_baseline': True}
    del test_opt['train'], test_opt['datasets']['train']
    (tmp_path / 'test.yml').write_text(yaml.safe_dump(test_opt))
    results = test_entry.main(['-opt', str(tmp_path / 'test.yml')])
    table = json.loads((tmp_path / 'results' / 'val' / 'results.json').read_text())
    assert table == json.loads(json.dumps(results['val']))
    assert [r['name'] for r in table['images']] == ['coffee']
    assert {'psnr', 'ssim', 'bicubic_psnr', 'bicubic_ssim', 'time_s'} <= set(table['mean'])
    assert '| coffee |' in (tmp_path / 'results' / 'val' / 'results.md').read_text()
    # the tested weights are the trained EMA weights: same PSNR as the last validation
    logged = float(log.split('Validation val @ iter 6: psnr ')[1].split()[0])
    assert table['mean']['psnr'] == pytest.approx(logged, abs=1e-4)
    assert (tmp_path / 'results' / 'val' / 'coffee.png').is_file()


def test_resume_is_bit_identical(tmp_path, photo_dirs):
    """Stopped at iteration 3 and resumed, a run ends with exactly the weights of an uninterrupted run."""
    whole = train_entry.main(['-opt', str(tiny_options(tmp_path, photo_dirs, 'whole'))])
    opt_path = tiny_options(tmp_path, photo_dirs, 'parts')
    train_entry.main(['-opt', str(opt_path), '--set', 'train.total_iter=3'])
    parts = train_entry.main(['-opt', str(opt_path), '--auto_resume'])
    log = sorted(parts.glob('train_parts_*.log'))[-1].read_text()
    assert 'Resumed from' in log and '3.state at iteration 3' in log
    a, b = final_weights(whole), final_weights(parts)
    for key in ('params', 'params_ema'):
        assert a[key].keys() == b[key].keys()
        for name in a[key]:
            assert torch.equal(a[key][name], b[key][name]), (key, name)


@pytest.mark.parametrize('degradation', [
    '{type: classic, preset: dasr, kernel: aniso, noise: 25}',
    '{type: bsrgan}',
    '{type: realesrgan, gt_size: 24, pool_size: 4}',
])
def test_every_family_trains_from_yaml_and_resumes_exactly(tmp_path, photo_dirs, degradation):
    """Each degradation family drives a training run of the SR model (batched in feed_data); a run
    stopped and resumed (Real-ESRGAN: with its training-pair pool) ends with the same weights."""
    setting = ['--set', f'degradation={degradation}']
    whole = train_entry.main(['-opt', str(tiny_options(tmp_path, photo_dirs, 'whole')), *setting])
    opt_path = tiny_options(tmp_path, photo_dirs, 'parts')
    train_entry.main(['-opt', str(opt_path), *setting, '--set', 'train.total_iter=3'])
    parts = train_entry.main(['-opt', str(opt_path), *setting, '--auto_resume'])
    assert 'Validation val @ iter 6: psnr' in sorted(parts.glob('train_parts_*.log'))[-1].read_text()
    a, b = final_weights(whole), final_weights(parts)
    for name in a['params']:
        assert torch.equal(a['params'][name], b['params'][name]), name


def test_per_sample_degradation_in_dataloader_workers(tmp_path, photo_dirs):
    """The same pipeline runs per sample in the workers when it sits under the train dataset."""
    run = train_entry.main(['-opt', str(tiny_options(tmp_path, photo_dirs)),
                            '--set', 'datasets.train.degradation={type: bsrgan_plus, use_sharp: true}',
                            '--set', 'datasets.train.num_worker_per_gpu=1', '--set', 'datasets.val=null',
                            '--set', 'train.total_iter=2'])
    assert (run / 'models' / 'net_g_final.pth').is_file()


TINY_NETS = {'BSRNet': {'num_feat': 8, 'num_block': 1, 'num_grow_ch': 4},
             'CDSR': {'num_feat': 8, 'num_grow_ch': 4, 'num_block': 1, 'enc_feat': 8, 'bank_size': 16},
             'DASR': {'num_feat': 8, 'num_group': 1, 'num_block': 1, 'enc_feat': 8},
             'KDSR': {'n_feats': 8, 'n_blocks': 1, 'n_encoder_res': 1},
             'KDSRTeacher': {'n_feats': 8, 'n_blocks': 1, 'n_encoder_res': 1},
             'UNetDiscriminatorSN': {'num_feat': 4}}


@pytest.mark.parametrize('recipe', sorted((REPO / 'options' / 'train').rglob('*.yml')), ids=lambda p: p.stem)
def test_every_training_recipe_runs(tmp_path, photo_dirs, recipe):
    """Each recipe in options/train runs as written (its model, degradation, losses, schedule) for two
    iterations, with a tiny network and the test photos in place of its data."""
    opt = yaml.safe_load(recipe.read_text())
    sets = {'path.experiments_root': tmp_path / 'run', 'path.pretrain_network_g': 'null',
            'datasets.train.dataroot_gt': photo_dirs['train'], 'datasets.train.gt_size': 48,
            'datasets.train.batch_size_per_gpu': 2, 'datasets.train.num_worker_per_gpu': 0,
            'train.total_iter': 2, 'val.val_freq': 2, 'logger.save_checkpoint_freq': 2}
    for net in ('network_g', 'network_d', 'network_teacher'):
        if net in opt:
            sets.update({f'{net}.{k}': v for k, v in TINY_NETS[opt[net]['type']].items()})
    if 'network_teacher' in opt:  # a student: its teacher's run is not here, a tiny teacher's weights are
        teacher = ARCH_REGISTRY.get(opt['network_teacher']['type'])(
            scale=opt['scale'], **TINY_NETS[opt['network_teacher']['type']])
        torch.save(teacher.state_dict(), tmp_path / 'teacher.pth')
        sets.update({'path.teacher': 'null', 'path.pretrain_network_teacher': tmp_path / 'teacher.pth'})
    for i, term in enumerate(opt['train'].get('losses', [])):
        if term['type'] == 'VGGPerceptualLoss':  # no ImageNet VGG19 here: random features, explicitly
            sets[f'train.losses.{i}.vgg_weights'] = 'random'
    if 'val' in opt['datasets']:
        sets['datasets.val.dataroot_gt'] = photo_dirs['val']
    if 'decoded_cache' in opt['datasets']['train']:  # not the data root's
        sets['datasets.train.decoded_cache'] = tmp_path / 'decoded'
    for key, small in (('lq_patchsize', 12), ('gt_size', 32), ('pool_size', 4)):  # pipeline crops and pool
        if key in opt.get('degradation', {}):
            sets[f'degradation.{key}'] = small
    if 'moco' in opt:
        sets['moco.queue_size'] = 8
    args = [item for key, value in sets.items() for item in ('--set', f'{key}={value}')]
    run = train_entry.main(['-opt', str(recipe), *args])
    assert (run / 'models' / 'net_g_final.pth').is_file() and (run / 'training_states' / '2.state').is_file()
    assert bool(list((tmp_path / 'decoded').glob('*.npy'))) == ('decoded_cache' in opt['datasets']['train'])


def test_auto_resume_without_state_starts_fresh(tmp_path, photo_dirs):
    run = train_entry.main(['-opt', str(tiny_options(tmp_path, photo_dirs)), '--auto_resume',
                            '--set', 'train.total_iter=1'])
    assert 'auto_resume: no state found' in next(run.glob('train_*.log')).read_text()


def damage(states: Path) -> None:
    """The newest of four states truncated, the one before empty, the one before that with a flipped bit."""
    whole = (states / '4.state').read_bytes()
    (states / '4.state').write_bytes(whole[:len(whole) // 2])
    (states / '3.state').write_bytes(b'')
    data = bytearray((states / '2.state').read_bytes())
    weight = read_checkpoint(states / '2.state')['networks']['net_g']['conv_first.weight']
    data[data.find(weight.numpy().tobytes()) + 5] ^= 0x10
    (states / '2.state').write_bytes(bytes(data))


def test_auto_resume_falls_back_past_damaged_states(tmp_path, photo_dirs):
    opt_path = tiny_options(tmp_path, photo_dirs, total_iter=4)
    every_iter = ['--set', 'logger.save_checkpoint_freq=1']
    run = train_entry.main(['-opt', str(opt_path), *every_iter])
    damage(run / 'training_states')
    log_files = set(run.glob('train_tiny_*.log'))
    train_entry.main(['-opt', str(opt_path), *every_iter, '--auto_resume'])
    log = max(run.glob('train_tiny_*.log'), key=lambda p: (p not in log_files, p.name)).read_text()
    resumed = log[log.index('Resumed from'):]  # this run's lines (a log can be shared within a second)
    states = run / 'training_states'
    said = [f'{states}/4.state: a truncated or damaged torch file', f'{states}/3.state: the file is empty',
            f'{states}/2.state is damaged: its contents no longer match the checksum']
    skipped = [line for line in log.splitlines()
               if 'WARNING: auto_resume: skipped a newer state that does not load.' in line]
    assert len(skipped) == 3 and all(text in line for line, text in zip(skipped, said)), skipped
    assert f'Resumed from {states}/1.state at iteration 1' in resumed and '[iter       4/4' in resumed


def test_damaged_explicit_resume_or_all_states_damaged_is_an_error(tmp_path, photo_dirs):
    opt_path = tiny_options(tmp_path, photo_dirs, total_iter=4)
    (tmp_path / '9.state').write_bytes(b'')
    with pytest.raises(CheckpointError, match=r'Cannot read checkpoint .*9\.state: the file is empty'):
        train_entry.main(['-opt', str(opt_path), '--resume', str(tmp_path / '9.state')])  # no fallback
    assert not (tmp_path / 'experiments').exists()
    run = train_entry.main(['-opt', str(opt_path), '--set', 'train.total_iter=1'])
    (run / 'training_states' / '1.state').write_bytes(b'')
    with pytest.raises(CheckpointError, match=r'--auto_resume: no state in .* loads\. Cannot read checkpoint'):
        train_entry.main(['-opt', str(opt_path), '--auto_resume'])


class FrozenClock(datetime.datetime):
    """Every start happens in the same second."""

    @classmethod
    def now(cls, tz=None):
        return cls(2024, 5, 6, 7, 8, 9)


def test_run_folder_is_archived_only_when_a_new_run_really_starts(tmp_path, photo_dirs, monkeypatch):
    """Failed starts (no data, a PNG as pretrained weights, a damaged --resume) leave the previous run
    folder as it was and archive nothing; real starts archive it, under distinct names within one second."""
    monkeypatch.setattr(folders, 'datetime', SimpleNamespace(datetime=FrozenClock))
    opt_path = tiny_options(tmp_path, photo_dirs)
    one = ['--set', 'train.total_iter=1']
    run = train_entry.main(['-opt', str(opt_path), *one])
    before = sorted(run.rglob('*'))
    (tmp_path / 'empty.state').write_bytes(b'')
    for extra, error, says in (
            (['--set', f"datasets.train.dataroot_gt={tmp_path / 'nowhere'}"], FileNotFoundError, 'does not exist'),
            (['--set', f"path.pretrain_network_g={photo_dirs['val'] / 'coffee.png'}"], CheckpointError,
             r'coffee\.png: it is a PNG image, not a torch checkpoint\.$'),
            (['--resume', str(tmp_path / 'empty.state')], CheckpointError, 'the file is empty')):
        with pytest.raises(error, match=says):
            train_entry.main(['-opt', str(opt_path), *one, *extra])
    assert sorted(run.rglob('*')) == before and sorted(p.name for p in run.parent.iterdir()) == ['tiny']
    with pytest.raises(FileNotFoundError):  # a run that never started leaves no folder
        train_entry.main(['-opt', str(tiny_options(tmp_path, {**photo_dirs, 'train': tmp_path / 'nowhere'}, 'new'))])
    assert not (run.parent / 'new').exists()
    for _ in range(2):
        train_entry.main(['-opt', str(opt_path), *one])
    archives = sorted(p.name for p in run.parent.iterdir())
    assert archives == ['tiny', 'tiny_archived_20240506_070809', 'tiny_archived_20240506_070809_2']
    for name in archives:
        assert sorted(p.name for p in (run.parent / name).iterdir() if p.is_dir()) == [
            'models', 'tb_logger', 'training_states', 'visualization']


def test_test_entry_archives_an_earlier_results_folder(tmp_path, photo_dirs):
    net = ARCH_REGISTRY.get('BSRNet')(**{k: v for k, v in NET.items() if k != 'type'})
    torch.save({'params': net.state_dict()}, tmp_path / 'net.pth')
    opt = {'name': 'res', 'model_type': 'BlindSRModel', 'scale': 2, 'degradation': {'type': 'bicubic'},
           'network_g': NET, 'val': {'save_img': False},
           'path': {'pretrain_network_g': str(tmp_path / 'net.pth'), 'results_root': str(tmp_path / 'results')},
           'datasets': {'val': {'type': 'HRImageDataset', 'dataroot_gt': str(photo_dirs['val'])}}}
    (tmp_path / 'test.yml').write_text(yaml.safe_dump(opt))
    test_entry.main(['-opt', str(tmp_path / 'test.yml')])
    first = (tmp_path / 'results' / 'val' / 'results.json').read_text()
    with pytest.raises(FileNotFoundError):  # a test that cannot start archives nothing
        test_entry.main(['-opt', str(tmp_path / 'test.yml'), '--set', 'datasets.val.dataroot_gt=/nowhere'])
    assert sorted(p.name for p in tmp_path.glob('results*')) == ['results']
    test_entry.main(['-opt', str(tmp_path / 'test.yml')])
    archive = next(tmp_path.glob('results_archived_*'))
    assert (archive / 'val' / 'results.json').read_text() == first and (archive / 'test_res.log').is_file()
    assert (tmp_path / 'results' / 'val' / 'results.json').is_file()


def run_cli(args: list[str], cwd: Path, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, 'PYTHONUNBUFFERED': '1', 'OMP_NUM_THREADS': '1'}
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, **kw)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


DDP_SCRIPT = textwrap.dedent('''
    """Runs blindsr.train under torchrun, then saves each rank's own weights for comparison."""
    import sys
    from pathlib import Path

    import torch
    from blindsr import train

    original = train.train

    def train_and_dump(*args, **kwargs):
        model = original(*args, **kwargs)
        run = Path(model.opt['path']['experiments_root'])
        torch.save({name: net.state_dict() for name, net in model.networks.items()},
                   run / f'rank{model.dist.rank}.pth')
        return model

    train.train = train_and_dump
    train.main(sys.argv[1:])
''')


def train_two_ranks(tmp_path: Path, opt_path: Path, *sets: str, flags: tuple[str, ...] = ()
                    ) -> tuple[list[str], list[dict]]:
    """Train ``opt_path`` (run name 'ddp') on two ranks; the torchrun command and each rank's networks."""
    script = tmp_path / 'ddp_train.py'
    script.write_text(DDP_SCRIPT)
    torchrun = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=2', f'--master_port={free_port()}']
    args = [item for value in sets for item in ('--set', value)]
    result = run_cli([*torchrun, str(script), '-opt', str(opt_path), *args, *flags], tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return torchrun, [torch.load(tmp_path / 'experiments' / 'ddp' / f'rank{r}.pth') for r in (0, 1)]


def test_ddp_two_ranks_identical_weights_and_gathered_validation(tmp_path, photo_dirs):
    write_photos(photo_dirs['val'], ['immunohistochemistry', 'astronaut'], size=48)  # 3 images: shards 2 + 1
    opt_path = tiny_options(tmp_path, photo_dirs, 'ddp', total_iter=4)
    torchrun, ranks = train_two_ranks(tmp_path, opt_path, 'datasets.train.batch_size_per_gpu=1')
    run = tmp_path / 'experiments' / 'ddp'
    w0, w1 = ranks[0]['net_g'], ranks[1]['net_g']
    assert all(torch.equal(w0[k], w1[k]) for k in w0)
    state = read_checkpoint(run / 'training_states' / '4.state')
    assert len(state['rng']) == 2 and not torch.equal(state['rng'][0]['generator'], state['rng'][1]['generator'])
    assert 'Validation val @ iter 4' in next(run.glob('train_ddp_*.log')).read_text()

    # validation gathered from two shards equals a single-process evaluation of the whole set
    test_opt = yaml.safe_load(opt_path.read_text())
    del test_opt['train'], test_opt['datasets']['train']
    test_opt['val'] = {'save_img': False}
    for world in (1, 2):
        test_opt['path'] = {'pretrain_network_g': str(run / 'models' / 'net_g_final.pth'),
                            'results_root': str(tmp_path / f'results{world}')}
        (tmp_path / f'test{world}.yml').write_text(yaml.safe_dump(test_opt))
    single = run_cli([sys.executable, '-m', 'blindsr.test', '-opt', str(tmp_path / 'test1.yml')], tmp_path)
    double = run_cli([*torchrun, '-m', 'blindsr.test', '-opt', str(tmp_path / 'test2.yml')], tmp_path)
    assert single.returncode == 0 and double.returncode == 0, single.stderr[-2000:] + double.stderr[-2000:]
    one, two = (json.loads((tmp_path / f'results{w}' / 'val' / 'results.json').read_text()) for w in (1, 2))
    assert [r['name'] for r in two['images']] == ['astronaut', 'coffee', 'immunohistochemistry']
    for a, b in zip(one['images'], two['images']):
        assert a['name'] == b['name'] and a['psnr'] == b['psnr'] and a['ssim'] == b['ssim']


def test_ddp_ranks_resume_from_the_same_state_past_damaged_ones(tmp_path, photo_dirs):
    """Rank 0 picks the newest state that loads and every rank continues from it (same optimizer state,
    so the ranks' weights stay identical)."""
    opt_path = tiny_options(tmp_path, photo_dirs, 'ddp', total_iter=4)
    sets = ('logger.save_checkpoint_freq=1', 'datasets.train.batch_size_per_gpu=1')
    run = train_entry.main(['-opt', str(opt_path), *(item for value in sets for item in ('--set', value))])
    damage(run / 'training_states')
    _, ranks = train_two_ranks(tmp_path, opt_path, *sets, 'train.total_iter=6', flags=('--auto_resume',))
    log = ''.join(p.read_text() for p in run.glob('train_ddp_*.log'))
    assert log.count('auto_resume: skipped a newer state') == 3 and log.count('Resumed from') == 1, log
    assert f"Resumed from {run / 'training_states' / '1.state'} at iteration 1" in log
    w0, w1 = ranks[0]['net_g'], ranks[1]['net_g']
    assert all(torch.equal(w0[k], w1[k]) for k in w0)


def test_multinode_two_agents_c10d_rendezvous(tmp_path, photo_dirs):
    """Two torchrun agents (one process each) meet through a c10d rendezvous on 127.0.0.1 and train."""
    opt_path = tiny_options(tmp_path, photo_dirs, 'nodes', total_iter=2)
    port = free_port()
    env = {**os.environ, 'PYTHONUNBUFFERED': '1', 'OMP_NUM_THREADS': '1'}
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--nnodes=2', '--nproc_per_node=1',
           '--rdzv_backend=c10d', f'--rdzv_endpoint=127.0.0.1:{port}', '--rdzv_id=blindsr-test',
           '-m', 'blindsr.train', '-opt', str(opt_path), '--set', 'datasets.train.batch_size_per_gpu=1']
    procs = [subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outs[0][-3000:] + outs[1][-3000:]
    state = read_checkpoint(tmp_path / 'experiments' / 'nodes' / 'training_states' / '2.state')
    assert state['iter'] == 2 and len(state['rng']) == 2


@pytest.mark.parametrize('extra, message', [
    (['--set', 'path.pretrain_network_g=/nowhere/net.pth'], 'error: Checkpoint not found: /nowhere/net.pth'),
    (['--set', 'network_g.type=NoSuchArch'], "network_g.type: No 'NoSuchArch' in the arch registry"),
    (['--set', 'datasets.train.gt_size=200'], 'training image(s) are smaller than gt_size 200x200'),
])
def test_cli_reports_user_errors_in_one_line(tmp_path, photo_dirs, extra, message):
    result = run_cli([sys.executable, '-m', 'blindsr.train', '-opt', str(tiny_options(tmp_path, photo_dirs)), *extra],
                     tmp_path)
    assert result.returncode == 2 and message in result.stderr and 'Traceback' not in result.stderr, result.stderr
