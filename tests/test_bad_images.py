"""One bad image never costs the others: test runs list failures and go on, training names the file in one
line, validation skips it; a test run without datasets and the demo recipe without its photos say what to do."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from blindsr import cli, demo
from blindsr import test as test_entry
from blindsr import train as train_entry
from blindsr.data.image_io import write_image
from blindsr.options import OptionsError
from blindsr.registry import ARCH_REGISTRY
from conftest import REPO, write_photos
from test_train import free_port, run_cli, tiny_options

NET = {'type': 'BSRNet', 'scale': 4, 'num_feat': 8, 'num_block': 1, 'num_grow_ch': 4}


def truncated(folder: Path) -> str:
    data = (folder / 'coffee.png').read_bytes()
    (folder / 'broken.png').write_bytes(data[:len(data) // 2])
    return 'broken'


def noise(folder: Path, size: int) -> str:
    write_image(folder / f'noise{size}.png', np.random.default_rng(0).random((size, size, 3), dtype=np.float32))
    return f'noise{size}'


# each bad image beside two good ones, as the x4 test run meets it: (name, size, reason)
CASES = {
    'truncated_png': (truncated, [64, 64], 'Cannot decode image .*broken.png: corrupt'),
    'hr_9x9': (lambda f: noise(f, 9), [9, 9], r'psnr is NaN on the 8x8 SR image \(PSNR needs pixels inside'),
    'hr_3x3': (lambda f: noise(f, 3), [3, 3], r'noise3.png \(3x3\) is smaller than the scale 4'),
    'lr_too_small_for_niqe': (lambda f: noise(f, 20), [20, 20],
                              r'niqe failed on the 80x80 SR image: .*\(NIQE needs at least two 96x96 blocks\)'),
}


def write_test_options(tmp_path: Path, dataset: dict, **val) -> Path:
    net = ARCH_REGISTRY.get('BSRNet')(**{k: v for k, v in NET.items() if k != 'type'})
    with torch.no_grad():  # output centred on mid-grey, not clipped flat (NIQE is undefined on a flat image)
        net.conv_last.bias.fill_(0.5)
    torch.save({'params': net.state_dict()}, tmp_path / 'net.pth')
    opt = {'name': 'bad', 'model_type': 'BlindSRModel', 'scale': 4, 'degradation': {'type': 'bicubic'},
           'network_g': NET, 'datasets': {'set': dataset}, 'val': val,
           'path': {'pretrain_network_g': str(tmp_path / 'net.pth'), 'results_root': str(tmp_path / 'res')}}
    (tmp_path / 'test.yml').write_text(yaml.safe_dump(opt))
    return tmp_path / 'test.yml'


def run_cli_in_process(monkeypatch, capsys, main, *args: str) -> tuple[int, str]:
    """``cli.run(main)`` as ``python -m`` runs it: the exit code and stderr."""
    monkeypatch.setattr(sys, 'argv', ['blindsr', *args])
    with pytest.raises(SystemExit) as info:
        cli.run(main)
    return info.value.code, capsys.readouterr().err


@pytest.mark.parametrize('case', CASES)
def test_a_bad_image_is_listed_and_the_good_ones_are_scored(tmp_path, monkeypatch, capsys, case):
    make, size, reason = CASES[case]
    folder = write_photos(tmp_path / 'images', ['astronaut', 'coffee'], size=48 if 'niqe' in case else 64)
    bad = make(folder)
    if 'niqe' in case:  # real LR images: NIQE only (x4 of 48 px: 192 px, four 96x96 blocks)
        dataset = {'type': 'PairedFolderDataset', 'dataroot_lq': str(folder)}
        opt_path = write_test_options(tmp_path, dataset, metrics={'niqe': {'type': 'calculate_niqe', 'crop_border': 0}})
    else:
        opt_path = write_test_options(tmp_path, {'type': 'HRImageDataset', 'dataroot_gt': str(folder)})
    code, err = run_cli_in_process(monkeypatch, capsys, test_entry.main, '-opt', str(opt_path))
    assert code == cli.EXIT_IMAGES_FAILED == 3
    assert err.splitlines()[-1].startswith('error: 1 of 3 images failed (listed in the results.md of set'), err

    out = tmp_path / 'res' / 'set'
    table = json.loads((out / 'results.json').read_text())
    assert [r['name'] for r in table['images']] == ['astronaut', 'coffee']
    metric = 'niqe' if 'niqe' in case else 'psnr'
    assert np.isfinite(table['mean'][metric])
    assert table['mean'][metric] == pytest.approx(np.mean([r[metric] for r in table['images']]))
    failure, = table['failures']
    assert failure['name'] == bad and failure['file'] == str(folder / f'{bad}.png') and failure['size'] == size
    assert re.search(reason, failure['reason']), failure['reason']
    markdown = (out / 'results.md').read_text()
    assert '| **mean** (2 of 3 images) |' in markdown and '**1 of 3 images failed**' in markdown
    assert f"| {bad} | {folder / f'{bad}.png'} | {size[0]}x{size[1]} |" in markdown
    assert (out / 'astronaut.png').is_file() and (out / 'coffee.png').is_file()
    log = (tmp_path / 'res' / 'test_bad.log').read_text()
    assert f'{bad} failed, skipped: {folder / bad}.png' in log
    assert log.rstrip().splitlines()[-1].endswith('the means are over the others')


def test_failures_are_gathered_from_every_rank(tmp_path):
    """Under torchrun each rank records the failures of its shard; rank 0's table lists both ranks'."""
    folder = write_photos(tmp_path / 'images', ['astronaut', 'chelsea', 'coffee'], size=64)
    bad = [truncated(folder), noise(folder, 3)]  # sorted: astronaut broken chelsea coffee noise3 -> one per rank
    opt_path = write_test_options(tmp_path, {'type': 'HRImageDataset', 'dataroot_gt': str(folder)}, save_img=False)
    torchrun = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=2', f'--master_port={free_port()}']
    result = run_cli([*torchrun, '-m', 'blindsr.test', '-opt', str(opt_path)], tmp_path)
    assert result.returncode != 0 and 'exitcode: 3' in result.stderr, result.stderr[-3000:]
    table = json.loads((tmp_path / 'res' / 'set' / 'results.json').read_text())
    assert [r['name'] for r in table['images']] == ['astronaut', 'chelsea', 'coffee']
    assert [f['name'] for f in table['failures']] == bad
    assert 'error: 2 of 5 images failed' in result.stderr


def test_training_names_an_unreadable_image_in_one_line(tmp_path, photo_dirs, monkeypatch, capsys):
    """Read in a DataLoader worker, a truncated training PNG ends the run with one line naming it."""
    data = (photo_dirs['train'] / 'astronaut.png').read_bytes()
    (photo_dirs['train'] / 'broken.png').write_bytes(data[:len(data) // 2])  # its header still says 96x96
    code, err = run_cli_in_process(monkeypatch, capsys, train_entry.main, '-opt', str(tiny_options(tmp_path, photo_dirs)),
                                   '--set', 'datasets.train.num_worker_per_gpu=1', '--set', 'datasets.val=null')
    assert code == 2 and 'Traceback' not in err, err
    first, hint = err.splitlines()
    assert first == (f"error: Cannot decode image {photo_dirs['train'] / 'broken.png'}: corrupt or not an image "
                     'format OpenCV reads. Remove or replace this training image; --auto_resume continues from '
                     'the last saved state.')


def test_validation_skips_a_bad_image_and_training_goes_on(tmp_path, photo_dirs):
    truncated(photo_dirs['val'])
    run = train_entry.main(['-opt', str(tiny_options(tmp_path, photo_dirs)), '--set', 'train.total_iter=3'])
    log = next(run.glob('train_*.log')).read_text()
    assert f"broken failed, skipped: {photo_dirs['val'] / 'broken.png'} (h x w 64x64): Cannot decode" in log
    assert 'Validation val @ iter 3: psnr' in log and '1 of 2 images failed, skipped' in log
    assert (run / 'models' / 'net_g_final.pth').is_file()


def test_a_test_run_without_datasets_is_an_error(tmp_path):
    opt_path = write_test_options(tmp_path, {'type': 'HRImageDataset', 'dataroot_gt': str(tmp_path)})
    with pytest.raises(OptionsError, match='datasets: none given; a test run needs at least one dataset'):
        test_entry.main(['-opt', str(opt_path), '--set', 'datasets.set=null'])


@pytest.mark.parametrize('recipe, small', [
    ('bsrnet/demo_x4.yml', {'network_g.num_feat': 8, 'network_g.num_block': 1, 'network_g.num_grow_ch': 4}),
    ('dasr/demo_x4.yml', {'network_g.num_feat': 8, 'network_g.num_group': 1, 'network_g.num_block': 1,
                          'network_g.enc_feat': 8, 'moco.queue_size': 8})], ids=['non-blind', 'blind'])
def test_demo_recipe_without_its_photos_says_how_to_get_them(tmp_path, monkeypatch, recipe, small):
    """The demo recipes' datasets name the command that makes their folders; that command makes them."""
    monkeypatch.chdir(tmp_path)
    small = {**small, 'train.total_iter': 1, 'datasets.train.gt_size': 32, 'datasets.train.batch_size_per_gpu': 2,
             'datasets.train.num_worker_per_gpu': 0}
    args = ['-opt', str(REPO / 'options' / 'train' / recipe),
            *[item for key, value in small.items() for item in ('--set', f'{key}={value}')]]
    with pytest.raises(FileNotFoundError, match=r'^Image folder demo_data/train does not exist; make it with: '
                                                r'python -m blindsr\.demo --prepare-only$'):
        train_entry.main(args)
    demo.main(['--prepare-only'])
    assert (tmp_path / 'demo_data' / 'val' / 'coffee.png').is_file()
    assert (tmp_path / 'demo_data' / 'testsets' / 'coffee_dasr_iso_x4' / 'params.json').is_file()
    run = train_entry.main(args)
    assert (run / 'models' / 'net_g_final.pth').is_file()
