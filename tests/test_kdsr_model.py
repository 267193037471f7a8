"""KDSR's models: the teacher trains and validates with HR, a student finds its teacher's run by name,
starts from the teacher's G, learns the teacher's IDR with the teacher left untouched, and the DDP
student stays identical on two ranks with an unwrapped teacher."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from blindsr import test as test_entry
from blindsr import train as train_entry
from blindsr.archs.kdsr_arch import KDSR
from blindsr.checkpoint import read_checkpoint
from blindsr.data.paired_dataset import settings_of
from blindsr.options import load_options
from blindsr.registry import MODEL_REGISTRY
from conftest import REPO
from test_testsets import load_script
from test_train import train_two_ranks

make_testset = load_script().make_testset

TINY = {'scale': 2, 'n_feats': 8, 'n_blocks': 1, 'n_encoder_res': 1}


def kdsr_options(tmp_path: Path, photo_dirs: dict, name: str, model: str, **train) -> Path:
    student = model != 'KDSRTeacherModel'
    opt = {
        'name': name, 'model_type': model, 'scale': 2, 'manual_seed': 5,
        'degradation': {'type': 'classic', 'preset': 'kdsr', 'kernel': 'iso'},
        'datasets': {
            'train': {'type': 'HRImageDataset', 'dataroot_gt': str(photo_dirs['train']), 'gt_size': 32,
                      'use_hflip': True, 'batch_size_per_gpu': 2},
            'val': {'type': 'HRImageDataset', 'dataroot_gt': str(photo_dirs['val'])},
        },
        'network_g': {'type': 'KDSR' if student else 'KDSRTeacher', **TINY},
        'path': {'experiments_root': str(tmp_path / 'experiments' / name)},
        'train': {'total_iter': 4, 'optim_g': {'type': 'Adam', 'lr': 1e-3},
                  'losses': [{'type': 'L1Loss'}] + ([{'type': 'KDLoss', 'temperature': 0.15}] if student else []),
                  **train},
        'val': {'val_freq': 4, 'save_img': False},
        'logger': {'print_freq': 1, 'save_checkpoint_freq': 4},
    }
    if student:
        opt['network_teacher'] = {'type': 'KDSRTeacher', **TINY}
        opt['path']['teacher'] = 'teacher'
    path = tmp_path / f'{name}.yml'
    path.write_text(yaml.safe_dump(opt))
    return path


@pytest.fixture
def teacher_run(tmp_path, photo_dirs) -> Path:
    """A tiny teacher trained for 4 iterations (validated on Set5-like photos with their HR images)."""
    return train_entry.main(['-opt', str(kdsr_options(tmp_path, photo_dirs, 'teacher', 'KDSRTeacherModel'))])


def test_teacher_trains_and_validates_with_hr(teacher_run):
    log = next(teacher_run.glob('train_teacher_*.log')).read_text()
    assert 'Validation val @ iter 4: psnr' in log and 'failed' not in log
    assert set(torch.load(teacher_run / 'models' / 'net_g_final.pth')['params']) >= {'E.E.0.weight', 'G.head.0.weight'}


def test_teacher_needs_hr_to_be_evaluated(tmp_path, photo_dirs, teacher_run):
    opt = load_options(kdsr_options(tmp_path, photo_dirs, 'teacher', 'KDSRTeacherModel'), is_train=False)
    model = MODEL_REGISTRY.get('KDSRTeacherModel')(opt, torch.device('cpu'))
    with pytest.raises(ValueError, match='evaluated only on data with HR images'):
        model.infer(torch.rand(1, 3, 8, 8))
    assert model.infer(torch.rand(1, 3, 8, 8), gt=torch.rand(1, 3, 16, 16)).shape == (1, 3, 16, 16)


def test_student_finds_its_teacher_by_name_and_leaves_it_untouched(tmp_path, photo_dirs, teacher_run):
    opt_path = kdsr_options(tmp_path, photo_dirs, 'student', 'KDSRStudentModel')
    model = MODEL_REGISTRY.get('KDSRStudentModel')(load_options(opt_path), torch.device('cpu'))
    teacher = torch.load(teacher_run / 'models' / 'net_g_final.pth')['params']
    student = model.net_g.state_dict()
    assert all(torch.equal(student[k], teacher[k]) for k in teacher if k.startswith('G.'))  # G starts as the teacher's
    assert not model.teacher.training and not any(p.requires_grad for p in model.teacher.parameters())
    assert all(model.teacher not in group['params'] for o in model.optimizers.values() for group in o.param_groups)

    run = train_entry.main(['-opt', str(opt_path)])
    log = next(run.glob('train_student_*.log')).read_text()
    assert "(run 'teacher')" in log and 'l_kd' in log and 'Validation val @ iter 4: psnr' in log
    state = read_checkpoint(run / 'training_states' / '4.state')
    after = state['networks']['net_teacher']
    assert all(torch.equal(after[f'{k}'], teacher[k]) for k in teacher)  # the teacher is bit-identical
    assert any(not torch.equal(state['networks']['net_g'][k], teacher[k]) for k in teacher if k.startswith('G.'))


def test_a_missing_teacher_run_says_where_it_looked(tmp_path, photo_dirs, teacher_run):
    opt_path = kdsr_options(tmp_path, photo_dirs, 'student', 'KDSRStudentModel')
    with pytest.raises(FileNotFoundError, match=r"Run 'nope' has left no weights: looked for .*nope/models/net_g_final"):
        train_entry.main(['-opt', str(opt_path), '--set', 'path.teacher=nope'])
    with pytest.raises(ValueError, match='needs its teacher: set path.teacher'):
        train_entry.main(['-opt', str(opt_path), '--set', 'path.teacher=null'])
    with pytest.raises(ValueError, match='needs a distillation term'):
        train_entry.main(['-opt', str(opt_path), '--set', 'train.losses=[{type: L1Loss}]'])


def test_distillation_lowers_the_kl_on_a_fixed_batch(tmp_path, photo_dirs, teacher_run):
    """Encoder stage: only E_st trains (G and E_st's compress frozen), on the KD term alone, and the KL to
    the frozen teacher's IDR falls on a fixed batch."""
    opt_path = kdsr_options(tmp_path, photo_dirs, 'student', 'KDSRStudentModel', stage='encoder',
                            losses=[{'type': 'KDLoss', 'temperature': 0.15}])
    model = MODEL_REGISTRY.get('KDSRStudentModel')(load_options(opt_path), torch.device('cpu'))
    gt = torch.rand(4, 3, 32, 32)
    model.feed_data({'gt': gt})
    g_before = {k: v.clone() for k, v in model.net_g.state_dict().items()}
    kl = [float(model.optimize_parameters(it)['l_kd']) for it in range(1, 9)]
    assert kl[-1] < kl[0] and set(model.optimize_parameters(9)) == {'l_kd'}
    after = model.net_g.state_dict()
    frozen = [k for k in after if k.startswith(('G.', 'E_st.compress'))]
    assert frozen and all(torch.equal(after[k], g_before[k]) for k in frozen)
    assert any(not torch.equal(after[k], g_before[k]) for k in after if k.startswith('E_st.E.'))


def test_ddp_students_stay_identical_with_an_unwrapped_teacher(tmp_path, photo_dirs, teacher_run):
    opt_path = kdsr_options(tmp_path, photo_dirs, 'ddp', 'KDSRStudentModel', total_iter=2)
    _, ranks = train_two_ranks(tmp_path, opt_path, 'datasets.train.dataset_enlarge_ratio=2')
    for name in ('net_g', 'net_teacher'):
        assert all(torch.equal(ranks[0][name][k], ranks[1][name][k]) for k in ranks[0][name]), name
    log = next((tmp_path / 'experiments' / 'ddp').glob('train_ddp_*.log')).read_text()
    assert 'net_teacher (frozen, not wrapped)' in log


@pytest.mark.parametrize('recipe', sorted((REPO / 'options' / 'test' / 'kdsr').glob('*.yml')), ids=lambda p: p.stem)
def test_kdsr_test_recipes_write_the_papers_tables(tmp_path, photo_dirs, recipe):
    """Each KDSR test recipe evaluates every setting of its make_testsets folders with a raw state dict
    (the layout of the authors' KDSRs*_x4.pt files) and writes the per-set summary."""
    opt = yaml.safe_load(recipe.read_text())
    first = next(iter(opt['datasets'].values()))
    protocol = first['dataroot'].split('_', 1)[1].rsplit('_', 1)[0]
    record = make_testset(photo_dirs['train'], protocol, 4, tmp_path / 'testset')
    settings = sorted(record['images']['chelsea'])
    tiny = {k: v for k, v in TINY.items() if k != 'scale'}
    torch.save(KDSR(4, **tiny).state_dict(), tmp_path / 'KDSRs_x4.pt')
    sets = {'path.pretrain_network_g': tmp_path / 'KDSRs_x4.pt', 'path.results_root': tmp_path / 'results',
            **{f'network_g.{k}': v for k, v in tiny.items()},
            **{f'datasets.{name}.dataroot': tmp_path / 'testset' for name in opt['datasets']}}
    args = [item for key, value in sets.items() for item in ('--set', f'{key}={value}')]
    results = test_entry.main(['-opt', str(recipe), *args])
    assert set(results) == {f'{name}_{s}' for name in opt['datasets'] for s in settings}
    summary = (tmp_path / 'results' / 'summary.md').read_text()
    assert f'| scale | {" | ".join(settings)} | mean |' in summary and '| x4 |' in summary
    row = next(line for line in summary.splitlines() if line.startswith('| x4 |'))
    psnr = [float(cell.split('/')[0]) for cell in row.strip('|').split('|')[1:]]
    assert psnr[-1] == pytest.approx(sum(psnr[:-1]) / len(psnr[:-1]), abs=0.01)  # the mean over the kernels
    assert settings_of(tmp_path / 'testset', 4) == settings


# One stage-4 student step recorded from the authors' code (scratch script outside the repo,
# /work/authors/kdsr_step/student_step.py): Zj-BinXia/KDSR@c7c9e81 KDSR-classic model_ST / model_TA
# (unpatched) at n_feats 16, n_blocks 2, n_resblocks 1, x4, rgb_range 1, weights conftest.seeded_weights(net,
# 0.05) for student and teacher, batch lr = rand(4, 3, 12, 12, seed 2), hr = rand(4, 3, 48, 48, seed 3); the step of
# trainer_iso_stage4.train(): T_fea from the teacher's E on cat(lr, PixelUnshuffle(4)(hr)), L1(sr, hr) +
# kl_div(log_softmax(S/0.15), softmax(T/0.15), batchmean), Adam 1e-4 (0.9, 0.999, 1e-8), one step; torch 2.14.1
# CPU. blindsr's KDSRStudentModel gave the same losses and weights (max |dW| 0.0) in that run.
AUTHORS_STEP = {'l_pix': 0.5116364359855652, 'l_kd': 0.03905348479747772,
                'sums_after': {'G.head.0.weight': 0.48215132200857624, 'G.tail.1.bias': -0.15568483900278807,
                               'E_st.E.0.weight': 1.0924939777323743, 'E_st.mlp.2.weight': 2.9920899677672423,
                               'E_st.compress.0.weight': 0.20426384778647844},
                'e_st_e0_after': [-0.05681617558002472, -0.00896213948726654, 0.083587646484375]}


def test_one_student_step_equals_the_authors_trainer(tmp_path):
    from blindsr.archs.kdsr_arch import KDSRTeacher
    from conftest import seeded_weights

    net = {'scale': 4, 'n_feats': 16, 'n_blocks': 2, 'n_encoder_res': 1}
    student = seeded_weights(KDSR(**net), 0.05)
    torch.save(student, tmp_path / 'st.pth')
    torch.save(seeded_weights(KDSRTeacher(**net), 0.05), tmp_path / 'ta.pth')
    opt = {'name': 'step', 'model_type': 'KDSRStudentModel', 'scale': 4,
           'datasets': {'train': {'type': 'HRImageDataset', 'dataroot_gt': str(tmp_path), 'gt_size': 48}},
           'network_g': {'type': 'KDSR', **net}, 'network_teacher': {'type': 'KDSRTeacher', **net},
           'path': {'pretrain_network_g': str(tmp_path / 'st.pth'), 'pretrain_network_teacher': str(tmp_path / 'ta.pth'),
                    'experiments_root': str(tmp_path / 'run')},
           'train': {'total_iter': 1, 'optim_g': {'type': 'Adam', 'lr': 1e-4, 'betas': [0.9, 0.999], 'eps': 1e-8},
                     'losses': [{'type': 'L1Loss'}, {'type': 'KDLoss', 'temperature': 0.15}]}}
    (tmp_path / 'step.yml').write_text(yaml.safe_dump(opt))
    model = MODEL_REGISTRY.get('KDSRStudentModel')(load_options(tmp_path / 'step.yml'), torch.device('cpu'))
    model.feed_data({'lq': torch.rand(4, 3, 12, 12, generator=torch.Generator().manual_seed(2)),
                     'gt': torch.rand(4, 3, 48, 48, generator=torch.Generator().manual_seed(3))})
    logs = model.optimize_parameters(1)
    assert float(logs['l_pix']) == pytest.approx(AUTHORS_STEP['l_pix'], rel=1e-5)
    assert float(logs['l_kd']) == pytest.approx(AUTHORS_STEP['l_kd'], rel=1e-5)
    after = model.net_g.state_dict()
    for key, value in AUTHORS_STEP['sums_after'].items():
        moved = after[key].double().sum().item() - student[key].double().sum().item()
        recorded = value - student[key].double().sum().item()
        assert moved == pytest.approx(recorded, rel=1e-3, abs=1e-7), key  # the step itself, not just the start
    assert after['E_st.E.0.weight'][0, 0, 0].tolist() == pytest.approx(AUTHORS_STEP['e_st_e0_after'], abs=1e-7)


def test_distillation_agreement_script_compares_idrs(tmp_path, photo_dirs):
    import importlib.util

    from blindsr.archs.kdsr_arch import KDSRTeacher

    spec = importlib.util.spec_from_file_location('agreement', REPO / 'scripts' / 'distillation_agreement.py')
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    tiny = {k: v for k, v in TINY.items() if k != 'scale'}
    teacher = KDSRTeacher(4, **tiny)
    student = KDSR(4, **tiny)
    torch.save(teacher.state_dict(), tmp_path / 't.pth')
    torch.save(student.state_dict(), tmp_path / 's.pth')
    results = script.main(['--teacher', str(tmp_path / 't.pth'), '--student', str(tmp_path / 's.pth'),
                           '--net', '{n_feats: 8, n_blocks: 1, n_encoder_res: 1}', '--hr', str(photo_dirs['train']),
                           '--patches', '4', '--size', '32'])
    assert set(results) == {'initial E_st', 'trained student'}
    for kl, cosine in results.values():
        assert kl >= 0 and -1 <= cosine <= 1
