"""HRImageDataset's decoded_cache: the same crops as the direct read, filled once (lazily, by any worker,
atomically), decoded again when the source changes, clear errors for a bad folder or a full disk."""

from __future__ import annotations

import errno
import os
from collections import namedtuple
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from test_data import load_script, photo, save

from blindsr.data import decoded_cache
from blindsr.data.decoded_cache import DecodedCacheError
from blindsr.data.hr_dataset import HRImageDataset
from blindsr.data.image_io import ImageReadError
from blindsr.data.loader import build_dataloader

TRAIN = {'phase': 'train', 'scale': 4, 'gt_size': 32, 'num_patches': 2, 'use_hflip': True, 'use_rot': True}


@pytest.fixture
def images(tmp_path: Path) -> Path:
    """8-bit colour, colour + alpha, gray, gray + alpha, and 16-bit colour and gray images."""
    folder = tmp_path / 'hr'
    rgb = photo('astronaut', (70, 90))
    save(folder / 'rgb.png', rgb)
    save(folder / 'rgba.png', np.dstack([rgb, np.full((70, 90), 9, np.uint8)]))
    save(folder / 'gray.png', photo('camera', (81, 64)))
    gray = photo('camera', (64, 77))
    Image.fromarray(np.dstack([gray, 255 - gray]), 'LA').save(folder / 'gray_alpha.png')
    save(folder / 'deep.png', photo('chelsea', (66, 99)).astype(np.uint16) * 257 + 5)
    save(folder / 'deep_gray.png', photo('camera', (72, 72)).astype(np.uint16) * 250 + 11)
    return folder


def crops(dataset: HRImageDataset, epoch: int) -> list[torch.Tensor]:
    return [dataset[(index, epoch)]['gt'] for index in range(len(dataset))]


def test_cached_crops_are_the_direct_crops_bit_for_bit(images: Path, tmp_path: Path) -> None:
    cache = tmp_path / 'cache'
    direct = HRImageDataset({**TRAIN, 'dataroot_gt': str(images)})
    cached = HRImageDataset({**TRAIN, 'dataroot_gt': str(images), 'decoded_cache': str(cache)})
    assert not list(cache.glob('*.npy'))  # nothing is decoded when the dataset is built
    for epoch in range(3):  # the first epoch decodes into the cache, the others read it back
        for a, b in zip(crops(direct, epoch), crops(cached, epoch), strict=True):
            assert a.dtype == b.dtype and a.dtype in (torch.uint8, torch.float32) and torch.equal(a, b)
    dtypes = sorted(str(np.load(p, mmap_mode='r').dtype) for p in cache.glob('*.npy'))
    assert dtypes == ['uint16'] * 2 + ['uint8'] * 4
    val = {'phase': 'val', 'scale': 4, 'dataroot_gt': str(images)}
    for a, b in zip(HRImageDataset(val), HRImageDataset({**val, 'decoded_cache': str(cache)}), strict=True):
        assert torch.equal(a['gt'], b['gt'])


def test_workers_fill_the_cache_once_and_read_it_back(images: Path, tmp_path: Path) -> None:
    """One epoch through two DataLoader workers decodes each image once; after that the PNGs are not read:
    overwritten with zeros of the same size and modification time, they still give the crops they gave."""
    cache = tmp_path / 'cache'
    dataset = HRImageDataset({**TRAIN, 'dataroot_gt': str(images), 'decoded_cache': str(cache)})
    direct = HRImageDataset({**TRAIN, 'dataroot_gt': str(images)})
    expected = {item['gt_path']: item['gt'] for item in (direct[(i, 1)] for i in range(len(direct)))}

    def epoch() -> dict[str, torch.Tensor]:
        loader = build_dataloader(dataset, {'batch_size_per_gpu': 1, 'num_worker_per_gpu': 2}, 'train', 0, 0, 1)
        loader.sampler.set_epoch(1)
        return {batch['gt_path'][0]: batch['gt'][0] for batch in loader}

    first = epoch()
    files = {p.name: p.stat().st_mtime_ns for p in cache.glob('*.npy')}
    assert len(files) == len(dataset) and not list(cache.glob('*.tmp'))
    for png in images.iterdir():
        st = png.stat()
        png.write_bytes(bytes(st.st_size))
        os.utime(png, ns=(st.st_atime_ns, st.st_mtime_ns))
    second = epoch()
    assert {p.name: p.stat().st_mtime_ns for p in cache.glob('*.npy')} == files
    assert first.keys() == second.keys() == expected.keys()
    assert all(torch.equal(expected[k], first[k]) and torch.equal(expected[k], second[k]) for k in expected)

def test_a_changed_source_is_decoded_again(images: Path, tmp_path: Path) -> None:
    cache = tmp_path / 'cache'
    opt = {**TRAIN, 'dataroot_gt': str(images), 'decoded_cache': str(cache)}
    crops(HRImageDataset(opt), 0)
    png = images / 'rgb.png'
    old = {p for p in cache.glob('rgb.*.npy')}
    save(png, photo('coffee', (70, 90)))
    os.utime(png, ns=(png.stat().st_atime_ns, png.stat().st_mtime_ns + 10**9))
    direct = crops(HRImageDataset({**TRAIN, 'dataroot_gt': str(images)}), 0)
    assert all(torch.equal(a, b) for a, b in zip(direct, crops(HRImageDataset(opt), 0), strict=True))
    new = set(cache.glob('rgb.*.npy'))
    assert len(old) == len(new) == 1 and old != new  # the old version's file is removed


def test_an_interrupted_write_leaves_no_cache_file(images: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / 'cache'
    opt = {**TRAIN, 'dataroot_gt': str(images), 'decoded_cache': str(cache)}

    def save_half(f, img) -> None:
        f.write(b'\x93NUMPY' + bytes(img.nbytes // 2))
        raise KeyboardInterrupt

    monkeypatch.setattr(decoded_cache.np, 'save', save_half)
    with pytest.raises(KeyboardInterrupt):
        HRImageDataset(opt)[(0, 0)]
    assert not any(cache.iterdir())  # neither a partial .npy nor the temporary file
    monkeypatch.undo()
    direct = HRImageDataset({**TRAIN, 'dataroot_gt': str(images)})
    assert torch.equal(HRImageDataset(opt)[(0, 0)]['gt'], direct[(0, 0)]['gt'])


def test_a_missing_source_or_a_damaged_copy_is_an_image_read_error(images: Path, tmp_path: Path) -> None:
    """Training stops on an ImageReadError with one line naming the file (blindsr.data.loader)."""
    dataset = HRImageDataset({**TRAIN, 'dataroot_gt': str(images), 'decoded_cache': str(tmp_path / 'cache')})
    dataset[(0, 0)]
    (copy, ) = (tmp_path / 'cache').glob('deep.*.npy')
    copy.write_bytes(copy.read_bytes()[:1000])
    with pytest.raises(ImageReadError, match=rf'^{copy}, the decoded copy of {images}/deep.png, cannot be read'):
        dataset[(0, 0)]
    (images / 'gray.png').unlink()
    with pytest.raises(ImageReadError, match=rf'^Cannot read image {images}/gray.png: '):
        dataset[(2, 0)]


def test_bad_folder_and_full_disk_are_clear_errors(images: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    opt = {**TRAIN, 'dataroot_gt': str(images)}
    (tmp_path / 'file').write_text('')
    with pytest.raises(DecodedCacheError, match=r'decoded_cache .*file/cache is not a folder blindsr can write to'):
        HRImageDataset({**opt, 'decoded_cache': str(tmp_path / 'file' / 'cache')})
    # the six images need sum(h * w * 3) bytes; a disk with less free space fails when the dataset is built
    need = 3 * (70 * 90 * 2 + 81 * 64 + 64 * 77 + 66 * 99 + 72 * 72)
    assert decoded_cache.decoded_bytes(sorted(images.iterdir())) == need
    usage = namedtuple('usage', 'total used free')
    monkeypatch.setattr(decoded_cache.shutil, 'disk_usage', lambda _: usage(0, 0, need - 1))
    with pytest.raises(DecodedCacheError, match=r'the 6 images not decoded yet need 0\.0 GB .* has 0\.0 GB free'):
        HRImageDataset({**opt, 'decoded_cache': str(tmp_path / 'cache')})
    monkeypatch.undo()
    dataset = HRImageDataset({**opt, 'decoded_cache': str(tmp_path / 'cache')})

    def full(f, img) -> None:
        raise OSError(errno.ENOSPC, 'No space left on device')

    monkeypatch.setattr(decoded_cache.np, 'save', full)
    with pytest.raises(DecodedCacheError, match=r'disk full writing deep\..*\.npy \(0 MB\); the 6 images not '):
        dataset[(0, 0)]
    assert not any((tmp_path / 'cache').iterdir())


def test_fill_script_decodes_what_is_missing(images: Path, tmp_path: Path, capsys) -> None:
    script = load_script('fill_decoded_cache')
    cache = tmp_path / 'cache'
    HRImageDataset({**TRAIN, 'dataroot_gt': str(images), 'decoded_cache': str(cache)})[(0, 0)]  # one decoded lazily
    script.main([str(images), '--cache', str(cache), '--workers', '2'])
    assert capsys.readouterr().out.splitlines()[-1].startswith(f'{cache}: 5 images decoded, 1 already there')
    assert len(list(cache.glob('*.npy'))) == 6
    script.main([str(images), '--cache', str(cache)])
    assert capsys.readouterr().out.splitlines()[-1].startswith(f'{cache}: 0 images decoded, 6 already there')
