"""Image reading, datasets, loaders and data scripts, on small real photos from scikit-image."""

from __future__ import annotations

import importlib.util
import json
import pickle
import random
import sys
from pathlib import Path
from types import ModuleType

import cv2
import numpy as np
import pytest
import skimage.data
import torch
import torch.nn.functional as F
from PIL import Image

import blindsr  # noqa: F401  (compat shim + registrations before any basicsr import)
from blindsr.data import image_io
from blindsr.data.hr_dataset import HRImageDataset
from blindsr.data.image_io import ImageReadError, as_float, image_size, list_images, read_image, write_image
from blindsr.data.loader import ShardSampler, build_dataloader, collate
from blindsr.data.paired_dataset import PairedFolderDataset
from blindsr.registry import DATASET_REGISTRY, DEGRADATION_REGISTRY

REPO = Path(__file__).resolve().parents[1]
NOISY_POOL = 'NoisyAvgPool2xForTests'


if NOISY_POOL not in DEGRADATION_REGISTRY:

    @DEGRADATION_REGISTRY.register()
    class NoisyAvgPool2xForTests:
        """Test-only pipeline: average pooling by ``scale`` plus seeded Gaussian noise."""

        def __init__(self, scale: int) -> None:
            self.scale = scale

        def __call__(self, hr: torch.Tensor, generator: torch.Generator | None):
            noise = torch.randn(hr.shape[0], 1, 1, 1, generator=generator)
            return F.avg_pool2d(hr, self.scale) + 0.01 * noise, {'noise': noise.flatten()}


def load_script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f'blindsr_script_{name}', REPO / 'scripts' / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # so that multiprocessing can pickle its functions
    spec.loader.exec_module(module)
    return module


def photo(name: str, size: tuple[int, int] | None = None) -> np.ndarray:
    """A scikit-image photo as uint8 (top-left crop to ``size`` = (h, w) if given)."""
    img = getattr(skimage.data, name)()
    return img[:size[0], :size[1]] if size else img


def save(path: Path, img: np.ndarray) -> Path:
    """Save an RGB(A) or gray uint8/uint16 array with OpenCV (channels reordered to BGR[A])."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if img.ndim == 3 and img.shape[2] in (3, 4):
        img = img[..., [2, 1, 0, 3][:img.shape[2]]]
    assert cv2.imwrite(str(path), img)
    return path


# ------------------------------------------------------------------ image_io


def test_read_image_colour_gray_alpha_and_16_bit(tmp_path: Path) -> None:
    rgb = photo('astronaut', (64, 80))
    expected = rgb.astype(np.float32) / 255
    img = read_image(save(tmp_path / 'rgb.png', rgb))
    assert img.dtype == np.float32 and img.shape == (64, 80, 3)
    np.testing.assert_array_equal(img, expected)

    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 7, np.uint8)])
    np.testing.assert_array_equal(read_image(save(tmp_path / 'rgba.png', rgba)), expected)

    gray = photo('camera', (50, 40))
    gray_img = read_image(save(tmp_path / 'gray.png', gray))
    assert gray_img.shape == (50, 40, 3)
    for c in range(3):
        np.testing.assert_array_equal(gray_img[..., c], gray.astype(np.float32) / 255)

    Image.fromarray(np.dstack([gray, np.zeros_like(gray)]), 'LA').save(tmp_path / 'gray_alpha.png')
    np.testing.assert_array_equal(read_image(tmp_path / 'gray_alpha.png'), gray_img)

    deep = read_image(save(tmp_path / 'deep.png', rgb.astype(np.uint16) * 257))
    assert deep.dtype == np.float32 and np.abs(deep - expected).max() <= 1 / 255

    data = (tmp_path / 'rgb.png').read_bytes()
    np.testing.assert_array_equal(read_image(data, name='from-bytes'), expected)


def test_read_image_errors_name_the_file(tmp_path: Path) -> None:
    corrupt = tmp_path / 'corrupt.png'
    corrupt.write_bytes(np.random.default_rng(0).bytes(500))
    empty = tmp_path / 'empty.png'
    empty.write_bytes(b'')
    for path in (corrupt, empty, tmp_path / 'missing.png'):
        with pytest.raises(ImageReadError, match=path.name):
            read_image(path)
    with pytest.raises(ImageReadError, match='blob-7'):
        read_image(b'not an image', name='blob-7')


def test_read_image_rejects_five_channels(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tifffile = pytest.importorskip('tifffile')  # OpenCV cannot write a 5-channel TIFF
    path = tmp_path / 'five.tif'
    tifffile.imwrite(path, np.zeros((8, 8, 5), np.uint8), photometric='minisblack', planarconfig='contig')
    with pytest.raises(ImageReadError, match='five.tif'):
        read_image(path)  # this OpenCV build refuses to decode it
    # a decoder that does hand back 5 channels gets the channel count in the message
    monkeypatch.setattr(image_io.cv2, 'imdecode', lambda *_: np.zeros((8, 8, 5), np.uint8))
    with pytest.raises(ImageReadError, match='five.tif has 5 channels'):
        read_image(path)


def test_write_list_and_size(tmp_path: Path) -> None:
    rgb = photo('chelsea', (30, 41)).astype(np.float32) / 255
    write_image(tmp_path / 'a' / 'b' / 'cat.png', rgb)
    np.testing.assert_array_equal(read_image(tmp_path / 'a' / 'b' / 'cat.png'), rgb)
    assert image_size(tmp_path / 'a' / 'b' / 'cat.png') == (30, 41)

    folder = tmp_path / 'mixed'
    for name in ('b.PNG', 'a.jpg', 'c.TIFF', '.hidden.png'):
        write_image(folder / name, rgb)
    (folder / 'notes.txt').write_text('x')
    assert [p.name for p in list_images(folder)] == ['a.jpg', 'b.PNG', 'c.TIFF']
    with pytest.raises(FileNotFoundError, match='does not exist'):
        list_images(tmp_path / 'nope')
    with pytest.raises(FileNotFoundError, match='holds no images'):
        list_images(tmp_path / 'a')
    (tmp_path / 'bad.png').write_bytes(b'garbage')
    with pytest.raises(ImageReadError, match='bad.png'):
        image_size(tmp_path / 'bad.png')


# ------------------------------------------------------------------ HRImageDataset


@pytest.fixture
def hr_folder(tmp_path: Path) -> Path:
    folder = tmp_path / 'hr'
    for name, size in (('astronaut', (120, 100)), ('chelsea', (90, 130)), ('coffee', (101, 99))):
        save(folder / f'{name}.png', photo(name, size))
    save(folder / 'camera.png', photo('camera', (96, 97)))
    return folder


def test_hr_dataset_folder_and_lmdb_give_the_same_crops(hr_folder: Path, tmp_path: Path) -> None:
    lmdb = load_script('create_lmdb').create_lmdb(hr_folder, tmp_path / 'hr.lmdb')
    opt = {'phase': 'train', 'scale': 4, 'gt_size': 64, 'use_hflip': True, 'use_rot': True}
    folder_set = DATASET_REGISTRY.get('HRImageDataset')({**opt, 'dataroot_gt': str(hr_folder)})
    lmdb_set = HRImageDataset({**opt, 'dataroot_gt': str(lmdb)})
    assert len(folder_set) == len(lmdb_set) == 4
    for index in range(4):
        random.seed(index)
        a = folder_set[index]
        random.seed(index)
        b = lmdb_set[index]
        assert a['gt'].shape == (3, 64, 64) and a['gt'].dtype == torch.uint8 and 'lq' not in a  # 8-bit files
        torch.testing.assert_close(a['gt'], b['gt'], rtol=0, atol=0)
        assert Path(a['gt_path']).stem == Path(b['gt_path']).stem
    both = HRImageDataset({**opt, 'dataroot_gt': [str(hr_folder), str(lmdb)]})
    assert len(both) == 8
    # the LMDB opened above in this process is reopened in the forked workers
    loader = build_dataloader(lmdb_set, {'num_worker_per_gpu': 2}, 'val', seed=0, rank=0, world_size=1)
    assert sum(batch['gt'].shape[0] for batch in loader) == 4
    assert lmdb_set.envs and pickle.loads(pickle.dumps(lmdb_set)).envs == {}  # spawned workers open their own


def test_hr_dataset_val_mod_crops_whole_images(hr_folder: Path) -> None:
    dataset = HRImageDataset({'phase': 'val', 'scale': 4, 'dataroot_gt': hr_folder})
    shapes = {Path(item['gt_path']).stem: tuple(item['gt'].shape) for item in dataset}
    assert shapes == {'astronaut': (3, 120, 100), 'camera': (3, 96, 96), 'chelsea': (3, 88, 128),
                      'coffee': (3, 100, 96)}
    expected = photo('chelsea', (88, 128)).astype(np.float32) / 255
    np.testing.assert_array_equal(dataset[2]['gt'].permute(1, 2, 0).numpy(), expected)


def test_hr_dataset_train_crops_convert_as_read_image(tmp_path: Path) -> None:
    """Training crops the stored 8/16-bit pixels: 8-bit crops stay uint8 (feed_data's as_float converts them
    on the device), 16-bit ones become float; either way the values of read_image's float image (here the
    crop is the whole image, flips and rotations off). A batch mixing them is collated as float."""
    rgb = photo('astronaut', (64, 64))
    save(tmp_path / 'rgb.png', rgb)
    save(tmp_path / 'rgba.png', np.dstack([rgb, np.full((64, 64), 7, np.uint8)]))
    save(tmp_path / 'gray.png', photo('camera', (64, 64)))
    save(tmp_path / 'deep.png', rgb.astype(np.uint16) * 257 + 3)
    dataset = HRImageDataset({'phase': 'train', 'scale': 4, 'gt_size': 64, 'num_patches': 2,
                              'dataroot_gt': tmp_path})
    items = [dataset[(index, 0)] for index in range(4)]
    for item in items:
        expected = torch.from_numpy(read_image(item['gt_path']).transpose(2, 0, 1).copy())
        deep = Path(item['gt_path']).stem == 'deep'
        assert item['gt'].dtype == (torch.float32 if deep else torch.uint8)
        assert torch.equal(as_float(item['gt']), torch.stack([expected] * 2))
    batch = collate(items)
    assert batch['gt'].dtype == torch.float32
    assert all(torch.equal(batch['gt'][i], as_float(item['gt'])) for i, item in enumerate(items))
    assert collate([i for i in items if 'deep' not in i['gt_path']])['gt'].dtype == torch.uint8


def test_hr_dataset_lists_every_too_small_image(hr_folder: Path, tmp_path: Path) -> None:
    opt = {'phase': 'train', 'scale': 4, 'gt_size': 100}
    with pytest.raises(ValueError, match='gt_size 100') as info:
        HRImageDataset({**opt, 'dataroot_gt': hr_folder})
    message = str(info.value)
    for listed in ('chelsea.png (90x130)', 'camera.png (96x97)', 'coffee.png (101x99)'):
        assert listed in message
    assert 'astronaut' not in message
    lmdb = load_script('create_lmdb').create_lmdb(hr_folder, tmp_path / 'small.lmdb')
    with pytest.raises(ValueError, match=r'(?s)camera.png \(96x97\).*chelsea.png \(90x130\)'):
        HRImageDataset({**opt, 'dataroot_gt': lmdb})


def test_hr_dataset_unreadable_file_is_named(hr_folder: Path) -> None:
    (hr_folder / 'broken.png').write_bytes(b'\x89PNG broken')
    with pytest.raises(ImageReadError, match='broken.png'):
        HRImageDataset({'phase': 'train', 'scale': 4, 'gt_size': 64, 'dataroot_gt': hr_folder})
    dataset = HRImageDataset({'phase': 'val', 'scale': 4, 'dataroot_gt': hr_folder})
    with pytest.raises(ImageReadError, match='broken.png'):
        dataset[1]


def test_hr_dataset_per_sample_degradation_is_reproducible(hr_folder: Path) -> None:
    opt = {'phase': 'val', 'scale': 2, 'dataroot_gt': hr_folder, 'degradation': {'type': NOISY_POOL},
           'seed': 5}
    first, second = HRImageDataset(opt), HRImageDataset(opt)
    item = first[0]
    assert item['lq'].shape == (3, 60, 50)
    expected = F.avg_pool2d(item['gt'][None], 2)[0] + 0.01 * item['params']['noise']
    torch.testing.assert_close(item['lq'], expected)
    for index in range(len(first)):
        torch.testing.assert_close(first[index]['lq'], second[index]['lq'], rtol=0, atol=0)
    other_seed = HRImageDataset({**opt, 'seed': 6})
    assert not torch.equal(first[0]['lq'], other_seed[0]['lq'])
    assert first[0]['params']['noise'] != first[1]['params']['noise']

    train = HRImageDataset({**opt, 'phase': 'train', 'gt_size': 64})
    loader = build_dataloader(train, {'batch_size_per_gpu': 2}, 'train', seed=0, rank=0, world_size=1)
    batch = next(iter(loader))
    assert batch['gt'].shape == (2, 3, 64, 64) and batch['lq'].shape == (2, 3, 32, 32)
    assert batch['params']['noise'].shape == (2,)


# ------------------------------------------------------------------ PairedFolderDataset


@pytest.fixture
def pairs(tmp_path: Path) -> dict[str, Path]:
    gt, lq = tmp_path / 'gt', tmp_path / 'lq'
    for name, size in (('astronaut', (96, 128)), ('chelsea', (130, 97))):
        hr = photo(name, size)
        save(gt / f'{name}.png', hr)
        h, w = size[0] // 4, size[1] // 4
        save(lq / f'{name}x4.png', cv2.resize(hr[:h * 4, :w * 4], (w, h), interpolation=cv2.INTER_AREA))
    return {'gt': gt, 'lq': lq}


def test_paired_dataset_matches_crops_and_trims(pairs: dict[str, Path]) -> None:
    opt = {'dataroot_gt': pairs['gt'], 'dataroot_lq': pairs['lq'], 'filename_tmpl': '{}x4', 'scale': 4}
    val = DATASET_REGISTRY.get('PairedFolderDataset')({**opt, 'phase': 'val'})
    assert [(Path(i['lq_path']).name, Path(i['gt_path']).name) for i in val] == [
        ('astronautx4.png', 'astronaut.png'), ('chelseax4.png', 'chelsea.png')]
    item = val[1]  # chelsea: HR 130x97 is 2x1 pixels larger than 4x its 32x24 LR -> trimmed top-left
    assert item['lq'].shape == (3, 32, 24) and item['gt'].shape == (3, 128, 96)
    np.testing.assert_array_equal(item['gt'].permute(1, 2, 0).numpy(),
                                  photo('chelsea', (128, 96)).astype(np.float32) / 255)

    train = PairedFolderDataset({**opt, 'phase': 'train', 'gt_size': 64, 'use_hflip': True, 'use_rot': True})
    random.seed(3)
    item = train[0]
    assert item['gt'].shape == (3, 64, 64) and item['lq'].shape == (3, 16, 16)
    # the LR patch is the area-downscaled HR patch: crop and augmentation were applied to both alike
    down = F.avg_pool2d(item['gt'][None], 4)[0]
    assert (down - item['lq']).abs().max() < 2 / 255


def test_paired_dataset_lr_only(pairs: dict[str, Path]) -> None:
    val = PairedFolderDataset({'dataroot_lq': pairs['lq'], 'scale': 4, 'phase': 'test'})
    assert len(val) == 2 and set(val[0]) == {'lq', 'lq_path'} and val[0]['lq'].shape == (3, 24, 32)
    train = PairedFolderDataset({'dataroot_lq': pairs['lq'], 'scale': 4, 'phase': 'train', 'gt_size': 64})
    assert train[1]['lq'].shape == (3, 16, 16)


def test_paired_dataset_unmatched_and_mismatched(pairs: dict[str, Path]) -> None:
    opt = {'dataroot_gt': pairs['gt'], 'dataroot_lq': pairs['lq'], 'scale': 4, 'phase': 'val'}
    with pytest.raises(ValueError, match=r'2 in .*gt have no LR image: astronaut.png, chelsea.png.*'
                                         r'2 in .*lq have no HR image: astronautx4.png, chelseax4.png'):
        PairedFolderDataset(opt)
    save(pairs['gt'] / 'coffee.png', photo('coffee', (40, 40)))
    with pytest.raises(ValueError, match=r"1 in .*gt have no LR image: coffee.png\. $"):
        PairedFolderDataset({**opt, 'filename_tmpl': '{}x4'})
    save(pairs['lq'] / 'coffeex4.png', photo('coffee', (12, 10)))
    with pytest.raises(ValueError, match=r'coffee.png \(40x40\) is not 4x .*coffeex4.png \(12x10\)'):
        PairedFolderDataset({**opt, 'filename_tmpl': '{}x4'})


# ------------------------------------------------------------------ loaders


def test_shard_sampler_covers_each_index_once() -> None:
    for length, world in ((10, 3), (2, 4), (9, 3)):
        shards = [list(ShardSampler(length, rank, world)) for rank in range(world)]
        assert sorted(i for shard in shards for i in shard) == list(range(length))
        assert [len(ShardSampler(length, rank, world)) for rank in range(world)] == [len(s) for s in shards]


def test_loaders_shard_val_and_shuffle_train_by_seed_and_epoch(hr_folder: Path) -> None:
    val = HRImageDataset({'phase': 'val', 'scale': 4, 'dataroot_gt': hr_folder})
    paths = [p for rank in range(3) for batch in build_dataloader(val, {}, 'val', 0, rank, 3)
             for p in batch['gt_path']]
    assert sorted(paths) == sorted(item[0] for item in val.items)

    train = HRImageDataset({'phase': 'train', 'scale': 4, 'gt_size': 32, 'dataroot_gt': hr_folder})
    opt = {'batch_size_per_gpu': 2, 'num_worker_per_gpu': 2}

    def epoch(seed: int, number: int) -> list[torch.Tensor]:
        loader = build_dataloader(train, opt, 'train', seed, rank=0, world_size=1)
        loader.sampler.set_epoch(number)
        return [batch['gt'] for batch in loader]

    random.seed(123)  # the global state must not matter
    first = epoch(7, 1)
    random.seed(456)
    again = epoch(7, 1)
    assert len(first) == 2 and all(torch.equal(a, b) for a, b in zip(first, again))

    def order(seed: int, number: int) -> list[int]:
        sampler = build_dataloader(train, {'batch_size_per_gpu': 2}, 'train', seed, 0, 1).sampler
        sampler.set_epoch(number)
        return list(sampler)

    assert order(7, 3) == order(7, 3)
    assert len({tuple(order(7, number)) for number in range(6)}) > 1
    resumed = build_dataloader(train, {'batch_size_per_gpu': 1}, 'train', 7, 0, 1)
    resumed.sampler.set_epoch(3)
    resumed.sampler.set_start(1)  # continue an epoch after its first sample
    assert list(resumed.sampler) == order(7, 3)[1:] and len(resumed) == 3
    with pytest.raises(ValueError, match='fewer than one batch'):
        build_dataloader(train, {'batch_size_per_gpu': 8}, 'train', 0, 0, 1)


# ------------------------------------------------------------------ scripts


def test_extract_subimages_counts_and_content(tmp_path: Path) -> None:
    script = load_script('extract_subimages')
    save(tmp_path / 'in' / 'astronaut.png', photo('astronaut'))  # 512 x 512
    save(tmp_path / 'in' / 'chelsea.png', photo('chelsea'))  # 300 x 451
    save(tmp_path / 'in' / 'tiny.png', photo('coffee', (50, 50)))  # smaller than a crop: skipped
    count = script.extract_subimages(tmp_path / 'in', tmp_path / 'out', crop_size=200, step=100, workers=2)
    # astronaut: offsets 0, 100, 200, 300 and 312 (flush) on both sides -> 5 x 5;
    # chelsea: rows 0, 100 (nothing left uncovered) x columns 0, 100, 200 and 251 (flush) -> 2 x 4
    assert count == 25 + 2 * 4
    files = sorted(p.name for p in (tmp_path / 'out').iterdir())
    assert len(files) == count and files[0] == 'astronaut_s001.png' and files[-1] == 'chelsea_s008.png'
    flush = cv2.imread(str(tmp_path / 'out' / 'chelsea_s004.png'))[..., ::-1]
    np.testing.assert_array_equal(flush, photo('chelsea')[:200, 251:451])
    assert script.crop_positions(512, 200, 100, thresh_size=20) == [0, 100, 200, 300]
    with pytest.raises(FileExistsError, match='not empty'):
        script.extract_subimages(tmp_path / 'in', tmp_path / 'out', crop_size=200, step=100)


def test_create_lmdb_writes_meta_info(hr_folder: Path, tmp_path: Path) -> None:
    script = load_script('create_lmdb')
    out = script.create_lmdb(hr_folder, tmp_path / 'x.lmdb', workers=2)
    lines = (out / 'meta_info.txt').read_text().splitlines()
    assert lines == ['astronaut.png (120,100,3) 1', 'camera.png (96,97,1) 1', 'chelsea.png (90,130,3) 1',
                     'coffee.png (101,99,3) 1']
    with pytest.raises(FileExistsError, match='--overwrite'):
        script.create_lmdb(hr_folder, out)
    script.create_lmdb(hr_folder, out, overwrite=True)
    with pytest.raises(ValueError, match='must end in .lmdb'):
        script.create_lmdb(hr_folder, tmp_path / 'x.db')


def test_bench_data_path_prints_every_column_and_writes_json(hr_folder: Path, tmp_path: Path, capsys) -> None:
    """The data-path benchmark at a tiny size on the CPU: every column filled, one row per step time, the
    recipe's published batch and GT size beside the ones measured. Its figures are not checked (timings)."""
    script = load_script('bench_data_path')
    out = tmp_path / 'data_path.json'
    script.main(['--methods', 'dasr', '--images', str(hr_folder), '--workers', '0', '1', '--rounds', '1',
                 '--step-ms', '1', 'dasr=2', '--device', 'cpu', '--set', 'datasets.train.batch_size_per_gpu=2',
                 '--set', 'datasets.train.gt_size=32', '--decoded-cache', str(tmp_path / 'cache'), '--out', str(out)])
    lines = capsys.readouterr().out.splitlines()
    assert lines[1] == f"decoded cache {tmp_path / 'cache'}: 4 images decoded, 0 already there"
    assert lines[2].split(' | ') == list(script.COLUMNS)
    table = [dict(zip(script.COLUMNS, line.split(' | '))) for line in lines[3:-1]]
    assert [(row['method'], row['batch'], row['gt'], row['cache'], row['workers'], row['pin'], row['step ms'])
            for row in table] == [('dasr', '2 (32) x2', '32 (192)', cache, workers, 'off', step)
                                  for workers in '01' for cache in ('off', 'on') for step in '12']
    for row in table:  # every column filled, except the copy to a CUDA device
        assert len(row) == len(script.COLUMNS) and row['h2d ms'] == '-'
        assert all(value not in ('', '-') for key, value in row.items() if key != 'h2d ms')
    rows = json.loads(out.read_text())['rows']
    assert len(rows) == 8 and all(0 <= row['wait_share'] <= 1 and row['images_per_s'] > 0 for row in rows)
    with pytest.raises(ValueError, match="unknown method 'dsr'"):
        script.parse_steps(['dsr=5'], ['dasr'])
