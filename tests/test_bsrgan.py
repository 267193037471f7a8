"""BSRGAN in use: the test recipes on real LR images (NIQE, comparison images) and on the bsrgan protocol."""

from __future__ import annotations

import re
import shutil

import numpy as np
import pytest
import torch
import yaml

from blindsr import test as test_entry
from blindsr.archs.bsrnet_arch import BSRNet
from blindsr.data.image_io import read_image, write_image
from blindsr.evaluation import ImagesFailed, comparison_image
from conftest import DATA, REPO, write_photos
from test_testsets import load_script

TINY = {'num_feat': 8, 'num_block': 1, 'num_grow_ch': 4}
REAL = ['chip', 'comic1']  # two of RealSRSet's 120x120 real LR images


@pytest.fixture
def real_lr(tmp_path, photo_dirs):
    """Real LR images: two of RealSRSet under the data root when present, else the test photos."""
    folder = tmp_path / 'real'
    folder.mkdir()
    source = DATA / 'RealSRSet'
    if source.is_dir():
        for name in REAL:
            shutil.copy(source / f'{name}.png', folder)
    else:
        for path in sorted(photo_dirs['val'].iterdir()):
            shutil.copy(path, folder)
    return folder


@pytest.mark.parametrize('recipe', sorted((REPO / 'options' / 'test' / 'bsrgan').glob('*.yml')), ids=lambda p: p.stem)
def test_bsrgan_test_recipes_score_real_and_synthetic_images(tmp_path, photo_dirs, real_lr, recipe):
    """Each recipe, with KAIR-layout weights: the real images get SR images, NIQE of SR and of bicubic
    upsampling and LR | SR comparison images, no PSNR; the bsrgan-protocol set gets PSNR/SSIM/NIQE."""
    opt = yaml.safe_load(recipe.read_text())
    scale = opt['scale']
    photos = write_photos(tmp_path / 'hr', ['chelsea', 'rocket'], size=192)  # NIQE needs >= 2 blocks of 96 px
    load_script().make_testset(photos, 'bsrgan', scale, tmp_path / 'testset')
    net = BSRNet(scale, **TINY)  # random weights, output centred on mid-grey: a random net's output hovers
    with torch.no_grad():  # around 0, so clipping can leave a flat image, on which NIQE is undefined
        net.conv_last.bias.fill_(0.5)
        lr = torch.from_numpy(read_image(next(real_lr.iterdir()))).permute(2, 0, 1)[None]
        assert net(lr).clamp(0, 1).std() > 1 / 255  # not flat once saved as 8 bits
    weights = net.state_dict()  # KAIR names: a raw state dict as the authors release, or
    if opt['path'].get('param_key_g'):  # blindsr's own training output for a recipe that picks params/params_ema
        weights = {'params': weights, 'params_ema': weights}
    torch.save(weights, tmp_path / 'BSRGAN.pth')
    sets = {'path.pretrain_network_g': tmp_path / 'BSRGAN.pth', 'path.results_root': tmp_path / 'results',
            'datasets.RealSRSet.dataroot_lq': real_lr, 'datasets.Set5.dataroot': tmp_path / 'testset',
            **{f'network_g.{k}': v for k, v in TINY.items()}}
    args = [item for key, value in sets.items() for item in ('--set', f'{key}={value}')]
    results = test_entry.main(['-opt', str(recipe), *args])
    real, synthetic = results['RealSRSet'], results['Set5_bsrgan']
    assert set(real['mean']) == {'time_s', 'niqe', 'bicubic_niqe'}
    assert all(np.isfinite(r['niqe']) and r['niqe'] > 0 for r in real['images'])
    assert {'psnr', 'ssim', 'niqe', 'bicubic_psnr', 'bicubic_niqe'} <= set(synthetic['mean'])
    for path in sorted(real_lr.iterdir()):
        lr = read_image(path)
        sr = read_image(tmp_path / 'results' / 'RealSRSet' / path.name)
        side = read_image(tmp_path / 'results' / 'RealSRSet' / f'{path.stem}_compare.png')
        assert sr.shape == (lr.shape[0] * scale, lr.shape[1] * scale, 3)
        assert side.shape == (sr.shape[0], 2 * sr.shape[1], 3) and np.array_equal(side[:, sr.shape[1]:], sr)
    side = read_image(tmp_path / 'results' / 'Set5_bsrgan' / 'chelsea_compare.png')  # LR | SR | HR
    assert side.shape == (192, 3 * 192, 3)
    assert '| image | time_s | niqe | bicubic_niqe |' in (tmp_path / 'results' / 'RealSRSet' / 'results.md').read_text()


def test_comparison_image_repeats_lr_pixels_beside_sr():
    lq = torch.rand(1, 3, 5, 7)
    sr = torch.rand(1, 3, 20, 28)
    gt = torch.rand(1, 3, 20, 28)
    side = comparison_image(lq, sr, gt)  # 8-bit BGR
    assert side.shape == (20, 84, 3) and side.dtype == np.uint8
    lq_bgr = np.round(lq[0].permute(1, 2, 0).numpy()[..., ::-1] * 255)
    assert np.array_equal(side[:, :28], np.repeat(np.repeat(lq_bgr, 4, 0), 4, 1).astype(np.uint8))
    assert np.array_equal(side[:, 28:56], np.round(sr[0].permute(1, 2, 0).numpy()[..., ::-1] * 255).astype(np.uint8))


def test_a_failing_metric_names_the_image_and_its_size(tmp_path, real_lr):
    """BasicSR's NIQE on an image with a single 96x96 block dies in numpy; the failure says where and why, and
    the SR image is on disk already."""
    torch.save(BSRNet(2, **TINY).state_dict(), tmp_path / 'w.pth')
    write_image(tmp_path / 'small' / 'one.png', read_image(sorted(real_lr.iterdir())[0])[:60, :60])
    sets = {'path.pretrain_network_g': tmp_path / 'w.pth', 'path.results_root': tmp_path / 'r',
            'datasets.RealSRSet.dataroot_lq': tmp_path / 'small', 'datasets.Set5': 'null',
            **{f'network_g.{k}': v for k, v in TINY.items()}}
    args = [item for key, value in sets.items() for item in ('--set', f'{key}={value}')]
    with pytest.raises(ImagesFailed, match='1 of 1 images failed') as info:
        test_entry.main(['-opt', str(REPO / 'options' / 'test' / 'bsrgan' / 'bsrgan_x2.yml'), *args])
    failure, = info.value.results['RealSRSet']['failures']
    assert failure['name'] == 'one' and failure['size'] == [60, 60]
    assert re.match(r'niqe failed on the 120x120 SR image: .*at least two 96x96 blocks', failure['reason'])
    assert read_image(next((tmp_path / 'r').rglob('one.png'))).shape == (120, 120, 3)
