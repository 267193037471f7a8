"""Versioned test sets: byte-identical reruns, exact parameters, and evaluation through the test entry point."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest
import torch
import yaml

from blindsr import test as test_entry
from blindsr.data.image_io import read_image, to_tensor
from blindsr.degradations.bicubic import BicubicDegradation
from blindsr.degradations.bsrgan import BSRGANDegradation
from blindsr.degradations.classic import PRESETS, degrade_classic
from blindsr.degradations.protocols import manet9, manet_kernels
from blindsr.options import OptionsError
from blindsr.registry import ARCH_REGISTRY

REPO = Path(__file__).resolve().parents[1]


def load_script():
    spec = importlib.util.spec_from_file_location('make_testsets', REPO / 'scripts' / 'make_testsets.py')
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_bicubic_testset_is_reproducible_and_exact(tmp_path, photo_dirs):
    make = load_script().make_testset
    first = make(photo_dirs['train'], 'bicubic', 3, tmp_path / 'a')
    second = make(photo_dirs['train'], 'bicubic', 3, tmp_path / 'b')
    assert first['sha256'] == second['sha256'] and len(first['sha256']) == 6
    for rel in first['sha256']:
        assert (tmp_path / 'a' / rel).read_bytes() == (tmp_path / 'b' / rel).read_bytes()
    saved = json.loads((tmp_path / 'a' / 'params.json').read_text())
    assert saved['protocol'] == 'bicubic' and saved['scale'] == 3 and set(saved['images']) == {
        'astronaut', 'chelsea', 'rocket'}
    # the LR files are the on-the-fly bicubic pipeline's output, to 8-bit precision
    hr = to_tensor(read_image(tmp_path / 'a' / 'HR' / 'chelsea.png'))[None]
    assert hr.shape[-2:] == (96, 96)
    lr = to_tensor(read_image(tmp_path / 'a' / 'bicubic' / 'chelsea.png'))[None]
    expected, _ = BicubicDegradation(3)(hr.double(), None)
    assert (lr.double() - expected).abs().max() < 1e-6
    with pytest.raises(FileExistsError, match='not empty'):
        make(photo_dirs['train'], 'bicubic', 3, tmp_path / 'a')
    with pytest.raises(ValueError, match="Unknown test-set protocol 'nope'; known: bicubic, bsrgan, dasr_aniso_noise"):
        make(photo_dirs['train'], 'nope', 3, tmp_path / 'c')


@pytest.mark.parametrize('protocol, scale, settings', [
    ('gaussian8', 4, ['sig1.8', 'sig2.0', 'sig2.2', 'sig2.4', 'sig2.6', 'sig2.8', 'sig3.0', 'sig3.2']),
    ('gaussian8', 2, ['sig0.9', 'sig1.0', 'sig1.1', 'sig1.2', 'sig1.3', 'sig1.4', 'sig1.5', 'sig1.6']),
    ('dasr_iso', 3, ['sig0.0', 'sig0.8', 'sig1.6', 'sig2.4']),
    ('dasr_aniso_noise', 4, [f'l{k}_t{t}_n{n}' for k, t in (('0.2_4', 0), ('3.5_1.5', 30)) for n in (0, 5, 10)]),
    ('kdsr_aniso_noise', 4, ['l0.2_4_t0_n10', 'l3.5_1.5_t30_n10']),
    ('manet9', 4, [f'noise{n}_{k}' for n in (0, 15) for k in (
        '1_1_0.000', '5_1_0.000', '5_1_0.785', '5_5_0.000', '9_1_0.000', '9_1_0.785', '9_5_0.000', '9_5_0.785',
        '9_9_0.000')]),
    ('bsrgan', 4, ['bsrgan']),
])
def test_protocols_are_byte_stable_and_record_their_parameters(tmp_path, photo_dirs, protocol, scale, settings):
    make = load_script().make_testset
    first = make(photo_dirs['train'], protocol, scale, tmp_path / 'a')
    second = make(photo_dirs['train'], protocol, scale, tmp_path / 'b')
    assert first['sha256'] == second['sha256'] and len(first['sha256']) == 3 * (1 + len(settings))
    assert sorted(first['images']['chelsea']) == sorted(settings)
    hr = to_tensor(read_image(tmp_path / 'a' / 'HR' / 'chelsea.png'))[None].double()
    params = first['images']['chelsea'][settings[-1]]
    lr = to_tensor(read_image(tmp_path / 'a' / settings[-1] / 'chelsea.png'))[None].double()
    if protocol == 'bsrgan':  # the recorded seed regenerates the image
        again, _ = BSRGANDegradation(scale).degrade(hr, [params['seed']])
    else:  # the recorded kernel (and, without noise, nothing else) regenerates the image
        variant = PRESETS['cdsr_manet' if protocol == 'manet9' else 'kdsr' if protocol.startswith(('gaussian8', 'kdsr'))
                          else 'dasr']
        assert params['noise'] == 0 or protocol in ('manet9', 'dasr_aniso_noise', 'kdsr_aniso_noise')
        kernel = torch.tensor(params['kernel'], dtype=torch.float64)[None]
        again = degrade_classic(hr, kernel, 0.0, scale, variant)
        if params['noise']:  # noise of the recorded level: the residual's std
            residual = (lr - again) * 255
            assert float(residual.std()) == pytest.approx(params['noise'], rel=0.1)
            again = lr
    assert (lr - again).abs().max() < 1e-6


def test_test_entry_point_reads_a_testset_like_on_the_fly_degradation(tmp_path, photo_dirs):
    load_script().make_testset(photo_dirs['train'], 'bicubic', 2, tmp_path / 'set')
    net = ARCH_REGISTRY.get('BSRNet')(scale=2, num_feat=8, num_block=1, num_grow_ch=4)
    torch.save({'params': net.state_dict()}, tmp_path / 'net.pth')
    common = {'name': 'ts', 'model_type': 'BlindSRModel', 'scale': 2, 'degradation': {'type': 'bicubic'},
              'network_g': {'type': 'BSRNet', 'scale': 2, 'num_feat': 8, 'num_block': 1, 'num_grow_ch': 4},
              'path': {'pretrain_network_g': str(tmp_path / 'net.pth'), 'results_root': str(tmp_path / 'res')},
              'val': {'save_img': False, 'bicubic_baseline': True}}
    common['datasets'] = {
        'from_files': {'type': 'PairedFolderDataset', 'dataroot_gt': str(tmp_path / 'set' / 'HR'),
                       'dataroot_lq': str(tmp_path / 'set' / 'bicubic')},
        'on_the_fly': {'type': 'HRImageDataset', 'dataroot_gt': str(photo_dirs['train'])},
    }
    (tmp_path / 't.yml').write_text(yaml.safe_dump(common))
    results = test_entry.main(['-opt', str(tmp_path / 't.yml')])
    files, fly = results['from_files'], results['on_the_fly']
    assert [r['name'] for r in files['images']] == ['astronaut', 'chelsea', 'rocket']
    for key in ('psnr', 'ssim', 'bicubic_psnr', 'bicubic_ssim'):
        assert files['mean'][key] == pytest.approx(fly['mean'][key], abs=1e-3), key


def test_real_lr_images_without_ground_truth(tmp_path, photo_dirs):
    """Inference on a folder of LR images: SR images written, timing reported, no metrics."""
    net = ARCH_REGISTRY.get('BSRNet')(scale=2, num_feat=8, num_block=1, num_grow_ch=4)
    torch.save(net.state_dict(), tmp_path / 'raw.pth')
    opt = {'name': 'real', 'model_type': 'BlindSRModel', 'scale': 2,
           'network_g': {'type': 'BSRNet', 'scale': 2, 'num_feat': 8, 'num_block': 1, 'num_grow_ch': 4},
           'path': {'pretrain_network_g': str(tmp_path / 'raw.pth'), 'results_root': str(tmp_path / 'res')},
           'datasets': {'real': {'type': 'PairedFolderDataset', 'dataroot_lq': str(photo_dirs['train'])}}}
    (tmp_path / 'r.yml').write_text(yaml.safe_dump(opt))
    result = test_entry.main(['-opt', str(tmp_path / 'r.yml')])['real']
    assert set(result['mean']) == {'time_s'} and len(result['images']) == 3
    assert read_image(tmp_path / 'res' / 'real' / 'rocket.png').shape == (192, 192, 3)


@pytest.mark.parametrize('scale, triples', [  # CDSR/MANet: sig1 in {1, 1+s, 1+2s}, sig2 <= sig1 by steps of s,
    (2, [(1, 1, 0), (3, 1, 0), (3, 1, 1), (3, 3, 0), (5, 1, 0), (5, 1, 1), (5, 3, 0), (5, 3, 1), (5, 5, 0)]),
    (3, [(1, 1, 0), (4, 1, 0), (4, 1, 1), (4, 4, 0), (7, 1, 0), (7, 1, 1), (7, 4, 0), (7, 4, 1), (7, 7, 0)]),
    (4, [(1, 1, 0), (5, 1, 0), (5, 1, 1), (5, 5, 0), (9, 1, 0), (9, 1, 1), (9, 5, 0), (9, 5, 1), (9, 9, 0)]),
])  # theta 0 or pi/4 (written 0 / 1 here), no pi/4 when sig1 == sig2 (values are covariance eigenvalues)
def test_manet9_kernels_are_the_published_nine(scale, triples):
    assert manet_kernels(scale) == [(s1, s2, t * math.pi / 4) for s1, s2, t in triples]
    hr = torch.rand(1, 3, 12 * scale, 12 * scale, dtype=torch.float64)
    settings = manet9(hr, scale, torch.Generator().manual_seed(0))
    noises = [0, 15] if scale == 4 else [0]  # MANet's prepare_testset.py: noise 15 only at x4
    assert [(p['sigma_x'], p['sigma_y'], p['theta'], p['noise']) for _, _, p in settings] == [
        (s1, s2, t * math.pi / 4, n) for n in noises for s1, s2, t in triples]


def tiny_test_options(tmp_path: Path, scale: int, datasets: dict, **val) -> Path:
    """A test-entry option file for a tiny BSRNet (random weights) on ``datasets``."""
    net = {'type': 'BSRNet', 'scale': scale, 'num_feat': 8, 'num_block': 1, 'num_grow_ch': 4}
    torch.save(ARCH_REGISTRY.get('BSRNet')(**{k: v for k, v in net.items() if k != 'type'}).state_dict(),
               tmp_path / 'net.pth')
    opt = {'name': 'ts', 'model_type': 'BlindSRModel', 'scale': scale, 'network_g': net, 'datasets': datasets,
           'path': {'pretrain_network_g': str(tmp_path / 'net.pth'), 'results_root': str(tmp_path / 'res')},
           'val': {'save_img': False, **val}}
    (tmp_path / 't.yml').write_text(yaml.safe_dump(opt, sort_keys=False))
    return tmp_path / 't.yml'


def test_manet_layout_round_trips_through_the_test_entry_point(tmp_path, photo_dirs):
    """``--layout manet`` writes MANet's prepare_testset.py layout with the same LR bytes as the blindsr
    layout; the test entry point reads it (without params.json, as MANet's script leaves it) and its
    Table-2 summary (rows scale / noise, columns sets) equals the blindsr layout's."""
    script = load_script()
    ours = script.make_testset(photo_dirs['train'], 'manet9', 4, tmp_path / 'ours')
    script.main(['--hr', str(photo_dirs['train']), '--protocol', 'manet9', '--scale', '4', '--layout', 'manet',
                 '--out', str(tmp_path / 'manet')])
    root = tmp_path / 'manet' / 'train_x4'
    assert sorted(p.name for p in root.iterdir()) == ['HR_si', 'LR_mode0_noise0', 'LR_mode0_noise15', 'params.json']
    files = sorted(p.name for p in (root / 'HR_si').iterdir())
    assert len(files) == 27 and 'chelsea_9.0_1.0_0.8.png' in files and 'chelsea_5.0_5.0_0.0.png' in files
    for setting, params in ours['images']['chelsea'].items():
        name = f"chelsea_{params['sigma_x']:.1f}_{params['sigma_y']:.1f}_{params['theta']:.1f}.png"
        lr = root / f"LR_mode0_noise{params['noise']:g}" / name
        assert lr.read_bytes() == (tmp_path / 'ours' / setting / 'chelsea.png').read_bytes(), setting
        assert (root / 'HR_si' / name).read_bytes() == (tmp_path / 'ours' / 'HR' / 'chelsea.png').read_bytes()
    (root / 'params.json').unlink()
    datasets = {'ours': {'type': 'TestSetFolder', 'dataroot': str(tmp_path / 'ours')},
                'manet': {'type': 'TestSetFolder', 'dataroot': str(root)}}
    opt = tiny_test_options(tmp_path, 4, datasets, summary_columns='sets', bicubic_baseline=True)
    results = test_entry.main(['-opt', str(opt)])
    assert len(results) == 18 + 2 and len(results['manet_LR_mode0_noise15']['images']) == 27
    for noise in (0, 15):  # each LR paired with its own HR: bicubic upsampling scores as on the blindsr layout
        per_kernel = [r['mean']['bicubic_psnr'] for name, r in results.items() if name.startswith(f'ours_noise{noise}_')]
        pooled = results[f'manet_LR_mode0_noise{noise}']['mean']['bicubic_psnr']
        assert len(per_kernel) == 9 and pooled == pytest.approx(sum(per_kernel) / 9, abs=1e-9)
    assert results['manet_LR_mode0_noise15']['mean']['bicubic_psnr'] < results['manet_LR_mode0_noise0']['mean']['bicubic_psnr'] - 0.3
    table = json.loads((tmp_path / 'res' / 'summary.json').read_text())['Table 2']
    assert list(table) == ['x4 noise 0', 'x4 noise 15'] and all(list(row) == ['ours', 'manet'] for row in table.values())
    for row in table.values():
        assert row['manet'] == pytest.approx(row['ours'], abs=1e-9) and set(row['ours']) == {'psnr', 'ssim'}
    by_noise = [results[f'ours_{s}']['mean']['psnr'] for s in ours['images']['chelsea'] if s.startswith('noise15')]
    assert table['x4 noise 15']['ours']['psnr'] == pytest.approx(sum(by_noise) / 9)
    summary = (tmp_path / 'res' / 'summary.md').read_text()
    assert '| scale / noise | ours | manet |' in summary and '| x4 noise 15 |' in summary
    chosen = test_entry.expand_testsets([{'type': 'TestSetFolder', 'name': 'o', 'dataroot': str(tmp_path / 'ours'),
                                          'scale': 4, 'setting': 'noise15_9_*'}])
    assert [d['name'] for d in chosen] == ['o_noise15_9_1_0.000', 'o_noise15_9_1_0.785', 'o_noise15_9_5_0.000',
                                           'o_noise15_9_5_0.785', 'o_noise15_9_9_0.000']
    with pytest.raises(ValueError, match="train_x4: no setting matches 'noise0'; it holds LR_mode0_noise0, LR_mode0_noise15"):
        test_entry.expand_testsets([{'type': 'TestSetFolder', 'name': 'm', 'dataroot': str(root), 'scale': 4,
                                     'setting': 'noise0'}])
    with pytest.raises(ValueError, match='train_x4 is a MANet test set for scale 4, the options say 2'):
        test_entry.expand_testsets([{'type': 'TestSetFolder', 'name': 'm', 'dataroot': str(root), 'scale': 2}])
    with pytest.raises(ValueError, match="--layout manet is MANet's layout of the manet9 protocol, not of 'bicubic'"):
        script.make_testset(photo_dirs['train'], 'bicubic', 4, tmp_path / 'x', layout='manet')


def test_table2_summary_needs_noise_levels(tmp_path, photo_dirs):
    load_script().make_testset(photo_dirs['val'], 'bsrgan', 4, tmp_path / 'set')
    opt = tiny_test_options(tmp_path, 4, {'s': {'type': 'TestSetFolder', 'dataroot': str(tmp_path / 'set')}},
                            summary_columns='sets')
    with pytest.raises(OptionsError, match="groups settings by noise level, and setting 'bsrgan' of .* records none"):
        test_entry.main(['-opt', str(opt)])
