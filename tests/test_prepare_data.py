"""scripts/prepare_data.py on small archives built here from the data root's images: sets found wherever they
sit in zip and tar archives, counts and sizes checked, reruns keep what is in place, DF2K to sub-images and LMDB."""

from __future__ import annotations

import dataclasses
import io
import tarfile
import zipfile
from pathlib import Path

import cv2
import pytest
from conftest import DATA
from test_data import load_script

from blindsr.data.hr_dataset import read_lmdb_meta

pytestmark = pytest.mark.skipif(not (DATA / 'Set5').is_dir() or not (DATA / 'BSD100').is_dir(),
                                reason=f'benchmark sets not found under the data root {DATA} (BLINDSR_DATA)')


def write_zip(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, 'w') as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return path


def write_tar(path: Path, files: dict[str, bytes], mode: str = 'w') -> Path:
    with tarfile.open(path, mode) as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def folder_files(folder: Path, prefix: str, suffix: str = '') -> dict[str, bytes]:
    return {f'{prefix}{p.stem}{suffix}{p.suffix}': p.read_bytes() for p in sorted(folder.iterdir())}


def png(img) -> bytes:
    return cv2.imencode('.png', img)[1].tobytes()


def test_benchmark_sets_from_zip_and_tar(tmp_path):
    """EDSR's benchmark layout in a zip (LR folders and macOS copies ignored), Set14 in a tar.gz, BSD100 as
    BSDS500's val split in a tar: each set lands flat in its folder, byte for byte; a rerun keeps them."""
    bench = write_zip(tmp_path / 'benchmark.zip', {
        **folder_files(DATA / 'Set5', 'benchmark/Set5/HR/'),
        **folder_files(DATA / 'Set5', 'benchmark/Set5/LR_bicubic/X4/', 'x4'),
        '__MACOSX/benchmark/Set5/HR/._baby.png': b'resource fork'})
    set14 = write_tar(tmp_path / 'Set14.tar.gz', folder_files(DATA / 'Set14', 'Set14/'), 'w:gz')
    bsds = write_tar(tmp_path / 'BSR_bsds500.tar', folder_files(DATA / 'BSD100', 'BSR/BSDS500/data/images/val/'))
    script = load_script('prepare_data')
    root = tmp_path / 'root'
    report = script.prepare([bench, set14, bsds], root)
    assert report == [f'Set5: 5 images in {root / "Set5"} (0 already there)',
                      f'Set14: 14 images in {root / "Set14"} (0 already there)',
                      f'BSD100: 100 images in {root / "BSD100"} (0 already there)']
    for name in ('Set5', 'Set14', 'BSD100'):
        assert {p.name: p.read_bytes() for p in (root / name).iterdir()} == {
            p.name: p.read_bytes() for p in (DATA / name).iterdir()}, name
    (root / 'Set5' / 'baby.png').unlink()  # an interrupted run: a file missing, another cut short
    (root / 'Set5' / 'bird.png').write_bytes((DATA / 'Set5' / 'bird.png').read_bytes()[:100])
    assert script.prepare([bench], root) == [f'Set5: 5 images in {root / "Set5"} (3 already there)']
    assert (root / 'Set5' / 'bird.png').read_bytes() == (DATA / 'Set5' / 'bird.png').read_bytes()


def test_counts_and_sizes_are_checked(tmp_path, monkeypatch):
    script = load_script('prepare_data')
    files = folder_files(DATA / 'Set5', 'Set5/')
    short = write_zip(tmp_path / 'short.zip', {k: v for k, v in files.items() if 'woman' not in k})
    with pytest.raises(ValueError, match=r'Set5: 4 images in short.zip, the set has 5 \(first found: baby.png, '):
        script.prepare([short], tmp_path / 'root')
    baby = cv2.imread(str(DATA / 'Set5' / 'baby.png'))
    cropped = write_zip(tmp_path / 'cropped.zip', {**files, 'Set5/baby.png': png(baby[:504, :504])})
    assert script.prepare([cropped], tmp_path / 'a') == [
        (f"Set5: 5 images in {tmp_path / 'a' / 'Set5'} (0 already there), 1 of them mod-cropped copies "
         '(PSNR differs slightly from the originals)')]
    resized = write_zip(tmp_path / 'resized.zip', {**files, 'Set5/baby.png': png(baby[:256, :256])})
    with pytest.raises(ValueError, match=r"Set5 in .*: baby is 256x256, Set5's is 512x512"):
        script.prepare([resized], tmp_path / 'b')
    bsd = write_zip(tmp_path / 'B100.zip', folder_files(DATA / 'BSD100', 'B100/HR/'))
    bsds = write_tar(tmp_path / 'bsds.tar', folder_files(DATA / 'BSD100', 'BSR/BSDS500/data/images/val/'))
    with pytest.raises(ValueError, match=r'BSD100: 101085.png, .* found twice in B100.zip, bsds.tar; give one copy'):
        script.prepare([bsd, bsds], tmp_path / 'd')  # one set from two distributions is not mixed
    with pytest.raises(ValueError, match='not a zip or tar archive'):
        script.prepare([DATA / 'Set5' / 'baby.png'], tmp_path / 'c')
    monkeypatch.delenv('BLINDSR_DATA')
    with pytest.raises(ValueError, match='No data root: give --root or set BLINDSR_DATA to the folder'):
        script.prepare([short])


def test_df2k_to_subimages_and_lmdb(tmp_path, monkeypatch):
    """DIV2K train (zip) and Flickr2K (tar, LR folders ignored) fill DF2K/HR, which becomes 32-px sub-images and
    their LMDB (the known counts 800 and 2650 scaled down to 3 and 2 images here)."""
    script = load_script('prepare_data')
    monkeypatch.setattr(script, 'SOURCES', [dataclasses.replace(s, count={'DIV2K train': 3, 'Flickr2K': 2}[s.name])
                                            if s.name in ('DIV2K train', 'Flickr2K') else s for s in script.SOURCES])
    photos = sorted((DATA / 'BSD100').iterdir())[:5]
    crops = [png(cv2.imread(str(p))[:64, :64]) for p in photos]
    div2k = write_zip(tmp_path / 'DIV2K_train_HR.zip', {f'DIV2K_train_HR/{i + 1:04d}.png': c for i, c in enumerate(crops[:3])})
    flickr = write_tar(tmp_path / 'Flickr2K.tar', {
        **{f'Flickr2K/Flickr2K_HR/{i + 1:06d}.png': c for i, c in enumerate(crops[3:])},
        'Flickr2K/Flickr2K_LR_bicubic/X2/000001x2.png': crops[0]})
    monkeypatch.setenv('BLINDSR_DATA', str(tmp_path / 'root'))
    report = script.prepare([div2k, flickr], lmdb=True, crop_size=32, step=32)
    df2k = tmp_path / 'root' / 'DF2K'
    assert sorted(p.name for p in (df2k / 'HR').iterdir()) == ['000001.png', '000002.png', '0001.png', '0002.png',
                                                                '0003.png']
    assert report[2:] == [f"DF2K sub-images: 20 in {df2k / 'HR_sub'}", f"DF2K LMDB: {df2k / 'HR_sub.lmdb'}",
                          f"note: {df2k / 'HR'} holds 5 images; DF2K is DIV2K train (800) + Flickr2K (2650) = 3450"]
    meta = read_lmdb_meta(df2k / 'HR_sub.lmdb')
    assert len(meta) == 20 and ('0001_s004', 32, 32) in meta
    again = script.prepare([div2k], lmdb=True)
    assert again[1:3] == [f"{df2k / 'HR_sub'} exists, kept (remove it to cut the sub-images again)",
                          f"{df2k / 'HR_sub.lmdb'} exists, kept (remove it to pack again)"]
    decoded = script.prepare([div2k], decode=True, workers=2)
    assert decoded[1] == f"DF2K decoded: 5 images into {df2k / 'HR_decoded'} (0 already there)"
    assert len(list((df2k / 'HR_decoded').glob('*.npy'))) == 5
