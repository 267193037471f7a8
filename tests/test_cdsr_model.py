"""CDSR through DASRModel: one training step equals the authors' trainer, each positive-pair setting
builds the pairs it names, the encoder freezes at train.freeze_encoder_iter, the test recipes write
their tables, and the embedding map script reads CDSR runs."""

from __future__ import annotations

import functools
import importlib.util
import json
from pathlib import Path

import pytest
import torch
import yaml
from conftest import REPO
from test_dasr_arch import filled
from test_testsets import load_script

from blindsr import test as test_entry
from blindsr.archs.cdsr_arch import CDSR
from blindsr.degradations.classic import PRESETS, degrade_classic
from blindsr.degradations.degrader import Degrader
from blindsr.degradations.pairs import POSITIVES, contrastive_pairs
from blindsr.options import load_options
from blindsr.registry import MODEL_REGISTRY

TINY = {'num_feat': 8, 'num_grow_ch': 4, 'num_block': 1, 'enc_feat': 8, 'bank_size': 16}


def model_for(tmp_path: Path, net: dict, scale: int = 2, queue: int = 16, **train):
    """A training DASRModel for ``network_g`` ``{type: CDSR, **net}`` (data given by hand)."""
    opt = {'name': 'cdsr', 'model_type': 'DASRModel', 'scale': scale, 'manual_seed': 1,
           'degradation': {'type': 'classic', 'preset': 'cdsr_manet', 'kernel': 'aniso'},
           'datasets': {'train': {'type': 'HRImageDataset', 'dataroot_gt': str(tmp_path), 'gt_size': 16 * scale,
                                  'num_patches': 2}},
           'network_g': {'type': 'CDSR', 'scale': scale, **net}, 'moco': {'queue_size': queue},
           'path': {'experiments_root': str(tmp_path / 'run')},
           'train': {'total_iter': 4, 'optim_g': {'type': 'Adam', 'lr': 1e-4, 'betas': [0.9, 0.999], 'eps': 1e-8},
                     'losses': [{'type': 'L1Loss', 'loss_weight': 255.0}], **train}}
    (tmp_path / 'cdsr.yml').write_text(yaml.safe_dump(opt))
    return MODEL_REGISTRY.get('DASRModel')(load_options(tmp_path / 'cdsr.yml'), torch.device('cpu'))


# One joint step of the authors' trainer, recorded outside the repo (/work/authors/cdsr/step.py):
# ZhouYiiFeng/CDSR@1828e66 BlindSR x2 (moco/builder.py's labels made a CPU tensor), every live state entry
# (with E.encoder_k.* and the queue) filled by test_dasr_arch.fill, train mode, lr = rand(2, 2, 3, 16, 16,
# seed 1) * 255, hr = rand(2, 2, 3, 32, 32, seed 2) * 255; sr, logits, labels = model(lr); loss =
# L1(sr, hr[:, 0]) + 1.0 * CE(logits, labels); Adam(lr 1e-4, (0.9, 0.999), eps 1e-8) one step; torch 2.14.1
# CPU. blindsr's DASRModel on the same weights and batch in that run: the same losses; every entry within
# 1e-5 of theirs except the conv biases in front of BatchNorm (zero true gradient: Adam turns their
# rounding noise into steps of +-lr, 1.9e-4 apart at most). Checked here: the step of whole tensors
# (sums) where gradients are well above float noise (the patchify conv's weights, with many near-zero
# gradients that Adam's first step turns into partial steps, are left out).
AUTHORS_STEP = {'l_pix': 611.054443359375, 'l_contrast': 10.824987411499023,
                'queue': [[-0.08887365460395813, 0.0759151354432106, 0.08213084191083908],
                          [-0.08882234990596771, 0.0772835984826088, 0.08171840757131577]],
                'sums_after': {'G.conv_first.weight': 12.575328327322495, 'G.upsampler.0.bias': -0.540936253964901,
                               'G.RRDB_trunk.3.SFT.dab.da_conv1.sf_attn.gamma': -0.07656105607748032,
                               'E.encoder_q.feature_bank.weight': -17.013351733843592,
                               'E.encoder_q.mlp.2.weight': -1.8135355879567214,
                               'E.encoder_k.conv1.conv1.bias': -0.4292279090732336,
                               'E.encoder_q.conv3.bn1.running_mean': -1.3027252834290266}}


def test_one_training_step_equals_the_authors_trainer(tmp_path):
    model = model_for(tmp_path, {}, queue=8192)  # the published CDSR and queue
    model.net_g.load_state_dict(filled(model.net_g))
    model.moco.load_state_dict(filled(model.moco, 'E.'))  # the authors' keys E.encoder_k.*, E.queue, E.queue_ptr
    before = {**model.net_g.state_dict(), **{f'E.{k}': v for k, v in model.moco.state_dict().items()}}
    before = {k: v.clone() for k, v in before.items()}
    model.feed_data({'lq': torch.rand(2, 2, 3, 16, 16, generator=torch.Generator().manual_seed(1), dtype=torch.float64).float(),
                     'gt': torch.rand(2, 2, 3, 32, 32, generator=torch.Generator().manual_seed(2), dtype=torch.float64).float()})
    logs = model.optimize_parameters(1)
    assert float(logs['l_pix']) == pytest.approx(AUTHORS_STEP['l_pix'], rel=1e-6)
    assert float(logs['l_contrast']) == pytest.approx(AUTHORS_STEP['l_contrast'], rel=1e-6)
    after = {**model.net_g.state_dict(), **{f'E.{k}': v for k, v in model.moco.state_dict().items()}}
    assert int(after['E.queue_ptr']) == 2
    assert torch.allclose(after['E.queue'][:3, :2].T, torch.tensor(AUTHORS_STEP['queue']), atol=1e-6)
    for key, value in AUTHORS_STEP['sums_after'].items():
        moved = after[key].double().sum().item() - before[key].double().sum().item()
        recorded = value - before[key].double().sum().item()
        assert moved == pytest.approx(recorded, rel=1e-3, abs=1e-6), key  # the step itself, not just the start


@pytest.mark.parametrize('positives', POSITIVES)
def test_each_positive_setting_builds_its_pairs(positives):
    """On one batch: the query is image i under its own sampled degradation; the key is image
    ``key_image[i]`` under the degradation sampled for item ``key_degradation[i]``, which are i / another
    item as the setting names."""
    degrader = Degrader({'type': 'classic', 'preset': 'cdsr_manet', 'kernel': 'aniso'}, 2, seed=4)
    gt = torch.rand(4, 2, 3, 24, 24)
    lq, pairs_gt, params = contrastive_pairs(degrader, gt, positives)
    variant, items = PRESETS['cdsr_manet'], torch.arange(4)
    image, degradation = params['key_image'], params['key_degradation']
    same_image, same_degradation = {'content_degradation': (True, True), 'degradation': (False, True),
                                    'content': (True, False)}[positives]
    assert torch.equal(image == items, torch.full((4, ), same_image))
    assert torch.equal(degradation == items, torch.full((4, ), same_degradation))
    sigmas = params['sigma_x']
    assert torch.equal(sigmas[degradation] == sigmas, torch.full((4, ), same_degradation))  # drawn per item
    assert torch.equal(lq[:, 0], degrade_classic(gt[:, 0], params['kernel'], 0.0, 2, variant))
    expected_key = degrade_classic(gt[image, 1], params['kernel'][degradation], 0.0, 2, variant)
    assert torch.equal(lq[:, 1], expected_key)
    assert torch.equal(pairs_gt[:, 0], gt[:, 0]) and torch.equal(pairs_gt[:, 1], gt[image, 1])
    if positives != 'content_degradation':
        with pytest.raises(ValueError, match='at least 2 images per batch'):
            contrastive_pairs(degrader, gt[:1], positives)


def test_model_builds_the_configured_pairs(tmp_path):
    model = model_for(tmp_path, TINY, positives='degradation')
    model.feed_data({'gt': torch.rand(4, 2, 3, 32, 32)})
    assert model.degradation_params['key_image'].tolist() == [1, 2, 3, 0] and model.lq.shape == (4, 2, 3, 16, 16)
    assert set(model.optimize_parameters(1)) == {'l_contrast', 'acc_contrast', 'l_pix'}
    with pytest.raises(ValueError, match="move 'degradation' from the dataset"):
        model.feed_data({'gt': torch.rand(4, 2, 3, 32, 32), 'lq': torch.rand(4, 2, 3, 16, 16)})


def test_encoder_freezes_after_freeze_encoder_iter(tmp_path):
    model = model_for(tmp_path, TINY, freeze_encoder_iter=2)
    model.feed_data({'gt': torch.rand(2, 2, 3, 32, 32)})
    for it in (1, 2):
        assert 'l_contrast' in model.optimize_parameters(it)
    frozen = {k: v.clone() for k, v in model.net_g.state_dict().items()}
    queue_ptr = int(model.moco.queue_ptr)
    for it in (3, 4):
        assert set(model.optimize_parameters(it)) == {'l_pix'}
    after = model.net_g.state_dict()
    weights = [k for k in after if k.startswith('E.') and 'running' not in k and 'num_batches' not in k]
    assert all(torch.equal(after[k], frozen[k]) for k in weights)
    assert any(not torch.equal(after[k], frozen[k]) for k in after if k.startswith('G.'))
    assert not torch.equal(after['E.encoder_q.conv1.bn1.running_mean'], frozen['E.encoder_q.conv1.bn1.running_mean'])
    assert int(model.moco.queue_ptr) == queue_ptr  # no MoCo step once frozen
    with pytest.raises(ValueError, match='freeze_encoder_iter freezes the encoder of a joint stage'):
        model_for(tmp_path, TINY, freeze_encoder_iter=2, stage='encoder')


@pytest.mark.parametrize('recipe', sorted((REPO / 'options' / 'test' / 'cdsr').glob('*.yml')), ids=lambda p: p.stem)
def test_cdsr_test_recipes_evaluate_every_manet9_setting(tmp_path, photo_dirs, recipe):
    """Each CDSR test recipe evaluates the nine manet9 kernels at its model's noise level with weights in the
    authors' raw layout and writes the paper's Table-2 summary (a row per scale/noise, a column per set)."""
    opt = yaml.safe_load(recipe.read_text())
    scale = opt['scale']
    assert all(ds['dataroot'].endswith(f'_manet9_x{scale}') for ds in opt['datasets'].values())
    record = load_script().make_testset(photo_dirs['train'], 'manet9', scale, tmp_path / 'testset')
    settings = sorted(record['images']['chelsea'])
    assert len(settings) == (18 if scale == 4 else 9)
    torch.save(CDSR(scale, **TINY).state_dict(), tmp_path / 'model_492_psnr_36.17.pt')
    sets = {'path.pretrain_network_g': tmp_path / 'model_492_psnr_36.17.pt', 'path.results_root': tmp_path / 'results',
            **{f'network_g.{k}': v for k, v in TINY.items()},
            **{f'datasets.{name}.dataroot': tmp_path / 'testset' for name in opt['datasets']}}
    args = [item for key, value in sets.items() for item in ('--set', f'{key}={value}')]
    results = test_entry.main(['-opt', str(recipe), *args])
    noise = 15 if 'noise15' in recipe.stem else 0  # the noise level the recipe's model was trained for
    wanted = [s for s in settings if s.startswith(f'noise{noise}_')]
    assert len(wanted) == 9 and set(results) == {f'{name}_{s}' for name in opt['datasets'] for s in wanted}
    table = json.loads((tmp_path / 'results' / 'summary.json').read_text())['Table 2']
    assert list(table) == [f'x{scale} noise {noise}'] and list(table[f'x{scale} noise {noise}']) == list(opt['datasets'])


def test_plot_embeddings_compares_cdsr_runs(tmp_path, photo_dirs):
    spec = importlib.util.spec_from_file_location('plot_embeddings', REPO / 'scripts' / 'plot_embeddings.py')
    plot = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(plot)
    for seed in (0, 1):
        torch.manual_seed(seed)
        torch.save(CDSR(2, **TINY).state_dict(), tmp_path / f'w{seed}.pt')
    agreement = plot.main(['--arch', 'CDSR', '--weights', str(tmp_path / 'w0.pt'), str(tmp_path / 'w1.pt'),
                           '--labels', 'degradation', 'content', '--scale', '2', '--net', str(TINY),
                           '--hr', str(photo_dirs['train']), '--patch', '16', '--out', str(tmp_path / 'map.png')])
    assert set(agreement) == {'degradation', 'content'} and all(0 <= a <= 1 for a in agreement.values())
    assert (tmp_path / 'map_degradation.png').is_file() and (tmp_path / 'map_content.png').is_file()


def test_ddp_ranks_stay_identical_through_the_freeze(tmp_path, photo_dirs):
    """Under torchrun the network is wrapped anew when the encoder freezes (DDP then expects gradients for G
    only); both ranks keep identical weights, with pairs across each rank's batch (positives: degradation)."""
    from test_dasr_model import dasr_options
    from test_train import train_two_ranks

    opt_path = dasr_options(tmp_path, photo_dirs, 'ddp', 'joint', total_iter=3, freeze_encoder_iter=1,
                            positives='degradation')
    net = yaml.safe_dump({'type': 'CDSR', 'scale': 2, **TINY}, default_flow_style=True).strip()
    _, ranks = train_two_ranks(tmp_path, opt_path, f'network_g={net}', 'datasets.train.dataset_enlarge_ratio=4')
    for name in ('net_g', 'moco'):  # BatchNorm running statistics stay per rank, as usual under DDP
        assert all(torch.equal(ranks[0][name][k], ranks[1][name][k]) for k in ranks[0][name] if 'running_' not in k)
    assert int(ranks[0]['moco']['queue_ptr']) == 4  # one MoCo step (iteration 1) x 2 ranks x 2 keys
    log = next((tmp_path / 'experiments' / 'ddp').glob('train_ddp_*.log')).read_text()
    assert 'the degradation encoder is frozen' in log


def test_encoder_freeze_keeps_train_compile(tmp_path, monkeypatch):
    """The freeze re-wraps the network (BaseModel.wrap): with train.compile it stays compiled and the frozen
    encoder stays put. Dynamo's eager backend stands in for Inductor (minutes of C++ compilation on CPU): the
    wrapping is what is checked, not the generated code."""
    monkeypatch.setattr(torch, 'compile', functools.partial(torch.compile, backend='eager'))
    model = model_for(tmp_path, TINY, freeze_encoder_iter=1, compile=True)
    model.feed_data({'gt': torch.rand(2, 2, 3, 32, 32)})
    assert 'l_contrast' in model.optimize_parameters(1)
    frozen = {k: v.clone() for k, v in model.net_g.state_dict().items()}
    assert set(model.optimize_parameters(2)) == {'l_pix'}
    assert isinstance(model.wrapped['net_g'], torch._dynamo.eval_frame.OptimizedModule)
    assert model.wrapped['net_g']._orig_mod is model.net_g
    after = model.net_g.state_dict()
    assert all(torch.equal(after[k], frozen[k]) for k in after if k.startswith('E.') and 'running' not in k
               and 'num_batches' not in k)
    assert any(not torch.equal(after[k], frozen[k]) for k in after if k.startswith('G.'))
