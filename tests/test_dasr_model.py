"""DASRModel: the two stages train what they should, resume exactly, and MoCo gathers keys under DDP."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from blindsr import test as test_entry
from blindsr import train as train_entry
from blindsr.archs.dasr_arch import DASR
from blindsr.checkpoint import read_checkpoint
from blindsr.data.paired_dataset import settings_of
from conftest import REPO
from test_testsets import load_script
from test_train import train_two_ranks

make_testset = load_script().make_testset

NET = {'type': 'DASR', 'scale': 2, 'num_feat': 8, 'num_group': 1, 'num_block': 1, 'enc_feat': 8}


def dasr_options(tmp_path: Path, photo_dirs: dict, name: str, stage: str, **train) -> Path:
    opt = {
        'name': name, 'model_type': 'DASRModel', 'scale': 2, 'manual_seed': 3,
        'degradation': {'type': 'classic', 'preset': 'dasr', 'kernel': 'aniso', 'noise': 25},
        'datasets': {
            'train': {'type': 'HRImageDataset', 'dataroot_gt': str(photo_dirs['train']), 'gt_size': 32,
                      'num_patches': 2, 'use_hflip': True, 'use_rot': True, 'batch_size_per_gpu': 2},
            'val': {'type': 'HRImageDataset', 'dataroot_gt': str(photo_dirs['val'])},
        },
        'network_g': NET,
        'moco': {'queue_size': 16},
        'path': {'experiments_root': str(tmp_path / 'experiments' / name)},
        'train': {'stage': stage, 'total_iter': 4, 'optim_g': {'type': 'Adam', 'lr': 1e-3},
                  'losses': [{'type': 'L1Loss', 'loss_weight': 255.0}], **train},
        'val': {'val_freq': 4, 'save_img': False},
        'logger': {'print_freq': 1, 'save_checkpoint_freq': 2},
    }
    path = tmp_path / f'{name}.yml'
    path.write_text(yaml.safe_dump(opt))
    return path


def initial_and_final(tmp_path, photo_dirs, stage):
    opt_path = dasr_options(tmp_path, photo_dirs, stage, stage)
    start = dasr_options(tmp_path, photo_dirs, f'{stage}0', stage, total_iter=1)
    first = train_entry.main(['-opt', str(start), '--set', 'train.optim_g.lr=0'])  # lr 0: the initial weights
    run = train_entry.main(['-opt', str(opt_path)])
    return read_checkpoint(first / 'training_states' / '1.state'), read_checkpoint(run / 'training_states' / '4.state'), run


def changed(a: dict, b: dict, prefix: str) -> bool:
    return any(not torch.equal(a[k], b[k]) for k in a if k.startswith(prefix) and a[k].is_floating_point())


def test_encoder_stage_trains_only_the_encoder_and_fills_the_queue(tmp_path, photo_dirs):
    before, after, run = initial_and_final(tmp_path, photo_dirs, 'encoder')
    g0, g1 = before['networks']['net_g'], after['networks']['net_g']
    assert changed(g0, g1, 'E.encoder_q.') and not changed(g0, g1, 'G.')
    moco = after['networks']['moco']
    assert int(moco['queue_ptr']) == 8  # 4 iterations x 2 keys
    assert changed(before['networks']['moco'], moco, 'encoder_k.')  # momentum updates
    log = next(run.glob('train_encoder_*.log')).read_text()
    assert 'l_contrast' in log and 'acc_contrast' in log and 'l_pix' not in log


def test_joint_stage_trains_both_and_resumes_exactly(tmp_path, photo_dirs):
    before, after, run = initial_and_final(tmp_path, photo_dirs, 'joint')
    g0, g1 = before['networks']['net_g'], after['networks']['net_g']
    assert changed(g0, g1, 'E.encoder_q.') and changed(g0, g1, 'G.')
    assert 'l_pix' in next(run.glob('train_joint_*.log')).read_text()
    parts = dasr_options(tmp_path, photo_dirs, 'parts', 'joint')
    train_entry.main(['-opt', str(parts), '--set', 'train.total_iter=2'])
    resumed = train_entry.main(['-opt', str(parts), '--auto_resume'])
    whole = read_checkpoint(resumed / 'training_states' / '4.state')['networks']
    for name in ('net_g', 'moco'):
        for key, value in after['networks'][name].items():
            assert torch.equal(value, whole[name][key]), (name, key)


def test_dasr_needs_patch_pairs(tmp_path, photo_dirs):
    opt_path = dasr_options(tmp_path, photo_dirs, 'single', 'joint')
    with pytest.raises(ValueError, match='num_patches: 2'):
        train_entry.main(['-opt', str(opt_path), '--set', 'datasets.train.num_patches=1'])


def test_ddp_gathers_keys_of_both_ranks(tmp_path, photo_dirs):
    opt_path = dasr_options(tmp_path, photo_dirs, 'ddp', 'encoder', total_iter=2)
    _, ranks = train_two_ranks(tmp_path, opt_path, 'datasets.train.dataset_enlarge_ratio=4')
    for name in ('net_g', 'moco'):  # BatchNorm running statistics stay per rank, as usual under DDP
        same = [torch.equal(ranks[0][name][k], ranks[1][name][k]) for k in ranks[0][name] if 'running_' not in k]
        assert all(same), name
    assert int(ranks[0]['moco']['queue_ptr']) == 8  # 2 iterations x 2 ranks x 2 keys


# the demo's recipe (demo_x4.yml) tests on the demo's own photo; tests/test_demo.py runs it
@pytest.mark.parametrize('recipe', sorted(p for p in (REPO / 'options' / 'test' / 'dasr').glob('*.yml')
                                          if p.stem != 'demo_x4'), ids=lambda p: p.stem)
def test_dasr_test_recipes_write_the_papers_tables(tmp_path, photo_dirs, recipe):
    """Each DASR test recipe evaluates every setting of its make_testsets folders with weights in the
    authors' raw layout and writes the per-set summary (rows: scale, columns: kernel setting)."""
    opt = yaml.safe_load(recipe.read_text())
    scale = opt['scale']
    protocol = opt['datasets']['Set5']['dataroot'].split('_', 1)[1].rsplit('_', 1)[0]
    record = make_testset(photo_dirs['train'], protocol, scale, tmp_path / 'testset')
    settings = sorted(record['images']['chelsea'])
    tiny = {k: v for k, v in NET.items() if k not in ('type', 'scale')}
    torch.save(DASR(scale, **tiny).state_dict(), tmp_path / 'model_600.pt')
    sets = {'path.pretrain_network_g': tmp_path / 'model_600.pt', 'path.results_root': tmp_path / 'results',
            **{f'network_g.{k}': v for k, v in tiny.items()},
            **{f'datasets.{name}.dataroot': tmp_path / 'testset' for name in opt['datasets']}}
    args = [item for key, value in sets.items() for item in ('--set', f'{key}={value}')]
    results = test_entry.main(['-opt', str(recipe), *args])
    assert set(results) == {f'{name}_{s}' for name in opt['datasets'] for s in settings}
    summary = (tmp_path / 'results' / 'summary.md').read_text()
    assert f'| scale | {" | ".join(settings)} |' in summary and f'| x{scale} |' in summary
    assert summary.count('## ') == len(opt['datasets'])
    with pytest.raises(ValueError, match=f'made for scale {scale}, the options say 1'):
        settings_of(tmp_path / 'testset', 1)


def test_plot_embeddings_draws_a_map(tmp_path, photo_dirs):
    import importlib.util
    spec = importlib.util.spec_from_file_location('plot_embeddings', REPO / 'scripts' / 'plot_embeddings.py')
    plot = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(plot)
    tiny = {k: v for k, v in NET.items() if k not in ('type', 'scale')}
    torch.save(DASR(2, **tiny).state_dict(), tmp_path / 'w.pt')
    (agreement, ) = plot.main(['--weights', str(tmp_path / 'w.pt'), '--scale', '2', '--net', str(tiny),
                               '--hr', str(photo_dirs['train']), '--patch', '16', '--sigmas', '0.2', '2.0',
                               '--out', str(tmp_path / 'map.png')]).values()
    assert 0 <= agreement <= 1
    from blindsr.data.image_io import read_image
    assert read_image(tmp_path / 'map.png').shape == (640, 640, 3)
    # the agreement measure itself: two well separated clusters agree fully, shuffled labels do not
    feats = torch.cat([torch.randn(20, 8) + 10, torch.randn(20, 8) - 10])
    labels = torch.tensor([0] * 20 + [1] * 20)
    assert plot.nearest_neighbour_agreement(feats, labels) == 1.0
