"""A folder of decoded training images, so that a random crop from a large PNG costs a file map, not a decode.

The published DASR/CDSR/KDSR recipes crop one or two small patches anywhere in whole 2K photos; decoding
a 2K PNG costs about 39 ms of CPU for a crop that then takes 0.1 ms. The authors' code (EDSR's
``--ext sep``) decodes each image once into a binary file; this is that, for :class:`HRImageDataset`'s
``decoded_cache`` option. Each source image is decoded once (:func:`~blindsr.data.image_io.read_raw`
then :func:`~blindsr.data.image_io.to_rgb`: HWC RGB in its stored 8/16-bit type) into an uncompressed
``.npy`` and read back memory-mapped, so that a crop reads only its own rows and the pixels are those
of the direct read, bit for bit.

- The file is made by whichever process first needs it (DataLoader workers share the folder), written
  to a temporary file and renamed into place: concurrent writers and an interrupted run never leave a
  partial ``.npy`` (only a ``.tmp`` file, which is never read and may be deleted).
- Its name holds the source's stem, a hash of its absolute path and the source's byte size and
  modification time: a changed source is decoded again (and its old file removed).
- ``scripts/fill_decoded_cache.py`` fills the folder up front, with a progress bar.
"""

from __future__ import annotations

import errno
import hashlib
import multiprocessing
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from tqdm import tqdm

from blindsr.checkpoint import write_atomic
from blindsr.data.image_io import ImageReadError, image_size, read_raw, to_rgb

_GB = 1e9


class DecodedCacheError(ValueError):
    """The cache folder cannot be made or written, or lacks the space the decoded images need."""


def _prefix(source: str | Path) -> str:
    """``<stem>.<hash of the absolute path>.``: every version of one source's cache file starts so."""
    path = os.path.abspath(source)
    return f'{Path(path).stem}.{hashlib.sha1(path.encode()).hexdigest()[:12]}.'


def decoded_bytes(sources: list[str | Path]) -> int:
    """Bytes the decoded images of ``sources`` take if 8-bit: H * W * 3 each, from the headers (which do not
    tell the bit depth here: a 16-bit image takes twice that, as the space errors say)."""
    return sum(h * w * 3 for h, w in map(image_size, sources))


def _need(missing: list[str]) -> str:
    """What the images not decoded yet need, for errors."""
    return (f'the {len(missing)} images not decoded yet need {decoded_bytes(missing) / _GB:.1f} GB '
            '(height x width x 3 bytes each, twice for 16-bit images)')


class DecodedCache:
    """Decoded copies of ``sources`` (image files) in ``folder``; :meth:`read` gives one, decoding it on a miss.

    The folder is made and checked for writing here, and for space: the images not yet in it must fit
    on its disk (a :class:`DecodedCacheError` says how much they need).
    """

    def __init__(self, folder: str | Path, sources: list[str | Path]) -> None:
        self.folder = Path(folder).expanduser()
        self.sources = [str(s) for s in sources]
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.folder, prefix='.write-check.', suffix='.tmp'):
                pass
        except OSError as err:
            raise DecodedCacheError(f'decoded_cache {self.folder} is not a folder blindsr can write to: {err}') from err
        missing = [s for s in self.sources if not self.path(s).is_file()]
        free = shutil.disk_usage(self.folder).free
        if decoded_bytes(missing) > free:
            raise DecodedCacheError(f'decoded_cache {self.folder}: {_need(missing)}, its disk has {free / _GB:.1f} GB '
                                    'free; free space, point decoded_cache at a larger disk, or remove the option.')

    def path(self, source: str | Path) -> Path:
        """The cache file of ``source`` as it is now (its size and modification time are in the name)."""
        try:
            st = os.stat(source)
        except OSError as err:
            raise ImageReadError(f'Cannot read image {source}: {err}') from err
        return self.folder / f'{_prefix(source)}{st.st_size}-{st.st_mtime_ns}.npy'

    def read(self, source: str | Path) -> np.ndarray:
        """``to_rgb(read_raw(source))``, memory-mapped read-only from the cache (decoded and stored first if absent)."""
        target = self.path(source)
        if not target.is_file():
            self._decode(source, target)
        try:
            return np.load(target, mmap_mode='r')
        except (OSError, ValueError) as err:
            raise ImageReadError(f'{target}, the decoded copy of {source}, cannot be read ({err}); delete it '
                                 'and it is decoded again.') from err

    def fill(self, workers: int = 1) -> tuple[int, int]:
        """Decode every source not in the cache yet (``workers`` processes, a progress bar);
        returns (images decoded now, images already there)."""
        todo = [s for s in self.sources if not self.path(s).is_file()]
        with tqdm(total=len(todo), unit='img', desc=f'decoding into {self.folder}') as bar:
            if workers > 1 and len(todo) > 1:
                with multiprocessing.Pool(min(workers, len(todo)), _set_fill_cache, (self, )) as pool:
                    for _ in pool.imap_unordered(_fill_one, todo):
                        bar.update()
            else:
                for source in todo:
                    self._decode(source, self.path(source))
                    bar.update()
        return len(todo), len(self.sources) - len(todo)

    def _decode(self, source: str | Path, target: Path) -> None:
        """Decode ``source`` into ``target``, then remove the files of its earlier versions."""
        self._write(target, to_rgb(read_raw(source), str(source)))
        for old in self.folder.glob(f'{_prefix(source)}*.npy'):
            if old != target:
                old.unlink(missing_ok=True)

    def _write(self, target: Path, img: np.ndarray) -> None:
        """Store ``img`` as ``target`` atomically (:func:`~blindsr.checkpoint.write_atomic`)."""
        try:
            write_atomic(target, lambda f: np.save(f, img))
        except OSError as err:
            if err.errno != errno.ENOSPC:
                raise
            missing = [s for s in self.sources if not self.path(s).is_file()]
            raise DecodedCacheError(f'decoded_cache {self.folder}: disk full writing {target.name} '
                                    f'({img.nbytes / 1e6:.0f} MB); {_need(missing)}.') from err


_fill_cache: DecodedCache | None = None  # the cache a fill's worker processes decode into


def _set_fill_cache(cache: DecodedCache) -> None:
    global _fill_cache
    _fill_cache = cache


def _fill_one(source: str) -> None:
    _fill_cache._decode(source, _fill_cache.path(source))
