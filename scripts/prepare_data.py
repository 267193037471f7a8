"""Lay out the standard super-resolution sets a user downloaded themselves under the data root.

    export BLINDSR_DATA=~/sr-data
    python scripts/prepare_data.py ~/Downloads/benchmark.zip ~/Downloads/BSR_bsds500.tgz \
        ~/Downloads/DIV2K_train_HR.zip ~/Downloads/Flickr2K.tar --lmdb --workers 8

Each archive (zip, tar, tar.gz/tgz, tar.bz2, tar.xz) is searched for the HR images of the sets below,
wherever they sit in it (``benchmark/Set5/HR/baby.png``, ``Set5/baby.png``, ``BSR/BSDS500/data/images/val/
3096.jpg``, ``DIV2K_train_HR/0001.png``, ``Flickr2K/Flickr2K_HR/000001.png`` ...; LR folders and
``__MACOSX`` copies are ignored). The images of each set found are copied byte for byte, flat, into
``<root>/<folder>`` — the folders the recipes name as ``${BLINDSR_DATA}/<folder>`` — with progress bars;
the number of images must be the set's known count, each file's byte size the archive's, and the image
sizes the known ones where they are known (a copy mod-cropped by fewer than 12 pixels passes, and is
reported). Files already in place with the right size are kept, so an interrupted run can be rerun.

| folder | images | from |
|---|---|---|
| Set5, Set14, Urban100, Manga109 | 5, 14, 100, 109 | ``<Set>/`` or ``<Set>/HR/`` (EDSR's benchmark, SwinIR's testsets) |
| BSD100 | 100 | ``B100``/``BSD100``/``BSDS100`` as above, or BSDS500's val split |
| BSDS500_train | 200 | BSDS500's train split (``BSR_bsds500.tgz``), disjoint from BSD100 |
| DF2K/HR | 800 + 2650 | ``DIV2K_train_HR/`` and ``Flickr2K_HR/`` (names 0001-0800 and 000001-002650) |
| DIV2K_valid | 100 | ``DIV2K_valid_HR/`` |

``--subimages`` then cuts DF2K/HR into 480-px sub-images every 240 px (``DF2K/HR_sub``,
scripts/extract_subimages.py, BasicSR's DIV2K recipe) and ``--lmdb`` packs those into
``DF2K/HR_sub.lmdb`` (scripts/create_lmdb.py; implies ``--subimages``), which ``HRImageDataset`` reads
(``dataroot_gt: ${BLINDSR_DATA}/DF2K/HR_sub.lmdb``). ``--decode`` decodes DF2K/HR into ``DF2K/HR_decoded``,
the ``decoded_cache`` of the DASR/CDSR/KDSR recipes (about 29 GB; else training fills it as it goes).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import re
import shutil
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

import blindsr  # noqa: F401  (compat shim before basicsr)
from blindsr.data.decoded_cache import DecodedCache
from blindsr.data.image_io import IMAGE_EXTENSIONS, image_size, list_images
from blindsr.data_root import DATA_ROOT_VAR, UNSET_HINT

_BSD_SIZES = ((321, 481), (481, 321))
_MOD_CROP = 12  # the largest mod-crop seen in distributed copies (x2, x3, x4 at once)


@dataclass(frozen=True, eq=False)
class Source:
    """One set's HR images inside archives: member paths matching one of ``patterns`` (regular expressions
    on POSIX paths); images of one set from two distributions at once are a count error, not a mix."""
    name: str
    patterns: tuple[str, ...]
    folder: str
    count: int
    sizes: dict[str, tuple[int, int]] | tuple[tuple[int, int], ...] | None = None  # by stem, or any of


def _bench(*names: str) -> str:
    return rf"(?:^|/)(?:{'|'.join(names)})/(?:HR/|original/)?[^/]+$"


SOURCES = [
    Source('Set5', (_bench('Set5'), ), 'Set5', 5, {
        'baby': (512, 512), 'bird': (288, 288), 'butterfly': (256, 256), 'head': (280, 280), 'woman': (344, 228)}),
    Source('Set14', (_bench('Set14'), ), 'Set14', 14, {
        'baboon': (480, 500), 'barbara': (576, 720), 'bridge': (512, 512), 'coastguard': (288, 352),
        'comic': (361, 250), 'face': (276, 276), 'flowers': (362, 500), 'foreman': (288, 352), 'lenna': (512, 512),
        'man': (512, 512), 'monarch': (512, 768), 'pepper': (512, 512), 'ppt3': (656, 529), 'zebra': (391, 586)}),
    Source('BSD100', (_bench('BSD100', 'B100', 'BSDS100'), r'(?:^|/)BSDS500/data/images/val/[^/]+$'), 'BSD100', 100,
           _BSD_SIZES),
    Source('BSDS500_train', (r'(?:^|/)BSDS500/data/images/train/[^/]+$', ), 'BSDS500_train', 200, _BSD_SIZES),
    Source('Urban100', (_bench('Urban100'), ), 'Urban100', 100),
    Source('Manga109', (_bench('Manga109'), ), 'Manga109', 109),
    Source('DIV2K train', (r'(?:^|/)DIV2K_train_HR/[^/]+$', ), 'DF2K/HR', 800),
    Source('Flickr2K', (r'(?:^|/)Flickr2K_HR/[^/]+$', ), 'DF2K/HR', 2650),
    Source('DIV2K valid', (r'(?:^|/)DIV2K_valid_HR/[^/]+$', ), 'DIV2K_valid', 100),
]


@dataclass(frozen=True)
class Member:
    archive: Path
    name: str  # path inside the archive
    size: int  # bytes


def list_members(archive: Path) -> list[Member]:
    """The image files of a zip or tar archive (hidden files and ``__MACOSX`` copies skipped)."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            entries = [(i.filename, i.file_size) for i in zf.infolist() if not i.is_dir()]
    elif tarfile.is_tarfile(archive):
        with _tar(archive, 'listing') as tf:
            entries = [(m.name, m.size) for m in tf if m.isfile()]
    else:
        raise ValueError(f'{archive} is not a zip or tar archive.')
    return [Member(archive, name, size) for name, size in entries
            if Path(name).suffix.lower() in IMAGE_EXTENSIONS and not Path(name).name.startswith('.')
            and '__MACOSX/' not in name]


@contextlib.contextmanager
def _tar(archive: Path, what: str) -> Iterator[tarfile.TarFile]:
    """A tar archive opened for one pass, with a progress bar over its bytes (a tar has no index)."""
    with (open(archive, 'rb') as raw,
          tqdm.wrapattr(raw, 'read', total=archive.stat().st_size, unit='B', unit_scale=True,
                        desc=f'{what} {archive.name}') as stream,
          tarfile.open(fileobj=stream, mode='r|*') as tf):
        yield tf


def read_members(archive: Path, names: list[str]) -> Iterator[tuple[str, object]]:
    """``(name, readable file)`` for each wanted member, in the archive's order (one pass over a tar)."""
    wanted = set(names)
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            for name in names:
                with zf.open(name) as f:
                    yield name, f
    else:
        with _tar(archive, 'reading') as tf:
            for member in tf:
                if member.name in wanted:
                    yield member.name, tf.extractfile(member)


def find_sources(archives: list[Path]) -> dict[Source, list[Member]]:
    """The members of every source found in ``archives``; a wrong count is an error naming the set."""
    found: dict[Source, list[Member]] = {}
    for archive in archives:
        if not archive.is_file():
            raise FileNotFoundError(f'Archive {archive} does not exist.')
        members = list_members(archive)
        for source in SOURCES:
            matched = [m for m in members if any(re.search(p, m.name) for p in source.patterns)]
            if matched:
                found.setdefault(source, []).extend(matched)
    for source, members in found.items():
        names = [Path(m.name).name for m in members]
        where = ', '.join(sorted({m.archive.name for m in members}))
        if len(set(names)) != len(names):
            twice = sorted({n for n in names if names.count(n) > 1})
            raise ValueError(f"{source.name}: {', '.join(twice[:5])} found twice in {where}; give one copy.")
        if len(members) != source.count:
            raise ValueError(f'{source.name}: {len(members)} images in {where}, the set has {source.count} '
                             f"(first found: {', '.join(sorted(names)[:5])}); is the archive complete?")
    return found


def size_problem(source: Source, stem: str, size: tuple[int, int]) -> tuple[str | None, bool]:
    """(what is wrong with an image of ``size``, or None; whether it is a mod-cropped copy)."""
    if source.sizes is None:
        return None, False
    if isinstance(source.sizes, dict):
        if stem not in source.sizes:
            return f'{stem} is not an image of {source.name}', False
        known = [source.sizes[stem]]
    else:
        known = list(source.sizes)
    if size in known:
        return None, False
    if any(0 <= h - size[0] < _MOD_CROP and 0 <= w - size[1] < _MOD_CROP for h, w in known):
        return None, True
    return f"{stem} is {size[0]}x{size[1]}, {source.name}'s is {' or '.join(f'{h}x{w}' for h, w in known)}", False


def place(source: Source, members: list[Member], root: Path) -> str:
    """Copy a source's images into ``root/<folder>`` (keeping files already there whole); check them."""
    folder = root / source.folder
    folder.mkdir(parents=True, exist_ok=True)
    todo: dict[Path, list[str]] = {}
    for m in members:
        target = folder / Path(m.name).name
        if not (target.is_file() and target.stat().st_size == m.size):
            todo.setdefault(m.archive, []).append(m.name)
    with tqdm(total=sum(map(len, todo.values())), desc=source.name, unit='img') as bar:
        for archive, names in todo.items():
            for name, f in read_members(archive, names):
                target = folder / Path(name).name
                partial = target.with_name(target.name + '.part')
                with open(partial, 'wb') as out:
                    shutil.copyfileobj(f, out)
                partial.rename(target)
                bar.update()
    problems, cropped = [], 0
    for m in members:
        target = folder / Path(m.name).name
        if target.stat().st_size != m.size:
            problems.append(f'{target} has {target.stat().st_size} bytes, the archive {m.size}')
            continue
        problem, is_cropped = size_problem(source, target.stem, image_size(target))
        problems += [problem] if problem else []
        cropped += is_cropped
    if problems:
        raise ValueError(f"{source.name} in {folder}: " + '; '.join(problems[:5])
                         + (f' and {len(problems) - 5} more' if len(problems) > 5 else ''))
    note = f', {cropped} of them mod-cropped copies (PSNR differs slightly from the originals)' if cropped else ''
    return f'{source.name}: {len(members)} images in {folder} ({len(members) - bar.n} already there){note}'


def _script(name: str):
    """A sibling script as a module (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location(f'blindsr_script_{name}', Path(__file__).with_name(f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # so that multiprocessing can pickle its functions
    spec.loader.exec_module(module)
    return module


def prepare(archives: list[str | Path], root: str | Path | None = None, subimages: bool = False,
            lmdb: bool = False, workers: int = 1, crop_size: int = 480, step: int = 240,
            decode: bool = False) -> list[str]:
    """Lay out every known set found in ``archives`` under ``root`` (default ``$BLINDSR_DATA``); with
    ``subimages``/``lmdb`` also DF2K's sub-images and their LMDB, with ``decode`` its decoded_cache.
    Returns one report line per step."""
    root = root or os.environ.get(DATA_ROOT_VAR)
    if not root:
        raise ValueError(f'No data root: give --root or {UNSET_HINT}.')
    root = Path(root).expanduser()
    found = find_sources([Path(a).expanduser() for a in archives])
    if not found:
        raise ValueError(f"No known set in {', '.join(map(str, archives))}; known: "
                         + ', '.join(s.name for s in SOURCES) + ' (see scripts/prepare_data.py).')
    report = [place(source, members, root) for source, members in found.items()]
    df2k = root / 'DF2K' / 'HR'
    if subimages or lmdb:
        sub = root / 'DF2K' / 'HR_sub'
        if not df2k.is_dir():
            raise ValueError(f'{df2k} does not exist: give the DIV2K_train_HR / Flickr2K archives to make sub-images.')
        if sub.is_dir() and any(sub.iterdir()):
            report.append(f'{sub} exists, kept (remove it to cut the sub-images again)')
        else:
            count = _script('extract_subimages').extract_subimages(df2k, sub, crop_size, step, 0, workers)
            report.append(f'DF2K sub-images: {count} in {sub}')
        if lmdb:
            target = root / 'DF2K' / 'HR_sub.lmdb'
            if target.exists():
                report.append(f'{target} exists, kept (remove it to pack again)')
            else:
                _script('create_lmdb').create_lmdb(sub, target, workers=workers)
                report.append(f'DF2K LMDB: {target}')
    if decode:
        if not df2k.is_dir():
            raise ValueError(f'{df2k} does not exist: give the DIV2K_train_HR / Flickr2K archives to decode them.')
        cache = DecodedCache(root / 'DF2K' / 'HR_decoded', list_images(df2k))
        decoded, present = cache.fill(workers)
        report.append(f'DF2K decoded: {decoded} images into {cache.folder} ({present} already there)')
    if df2k.is_dir():
        total = len(list_images(df2k))
        if total != 800 + 2650:
            report.append(f'note: {df2k} holds {total} images; DF2K is DIV2K train (800) + Flickr2K (2650) = 3450')
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('archives', nargs='+', help='downloaded zip / tar archives')
    parser.add_argument('--root', help=f'data root (default: ${DATA_ROOT_VAR})')
    parser.add_argument('--subimages', action='store_true', help='cut DF2K/HR into DF2K/HR_sub')
    parser.add_argument('--lmdb', action='store_true', help='pack DF2K/HR_sub into DF2K/HR_sub.lmdb (implies --subimages)')
    parser.add_argument('--decode', action='store_true',
                        help="decode DF2K/HR into DF2K/HR_decoded (the recipes' decoded_cache, about 29 GB)")
    parser.add_argument('--workers', type=int, default=1,
                        help='processes for sub-images, LMDB and decoding (default 1)')
    args = parser.parse_args(argv)
    for line in prepare(args.archives, args.root, args.subimages, args.lmdb, args.workers, decode=args.decode):
        print(line)


if __name__ == '__main__':
    from blindsr import cli

    cli.run(main)
