"""HR-only training and validation data, from image folders or LMDBs, optionally degraded per sample.

The usual blind-SR setup reads only HR images and lets the model degrade each batch on the device
(``feed_data``). With a ``degradation`` option the dataset instead degrades each sample itself, in the
DataLoader workers, reproducibly: each sample's crop, flips and degradation come from a generator
seeded by ``(seed, epoch, index)`` (see :mod:`blindsr.data.transforms`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import lmdb
import numpy as np
import torch
from basicsr.data.transforms import mod_crop
from torch.utils.data import Dataset

from blindsr.data.decoded_cache import DecodedCache
from blindsr.data.image_io import (ImageReadError, image_size, list_images, read_raw, to_float,
                                   to_pixel_tensor, to_rgb, to_tensor)
from blindsr.data.transforms import augment, paired_crop, sample_rng, torch_generator
from blindsr.data_root import missing_hint
from blindsr.degradations.degrader import Degrader
from blindsr.registry import DATASET_REGISTRY, DEGRADATION_REGISTRY
from blindsr.schema import REQUIRED, Component, Value, registered


def read_lmdb_meta(root: str | Path) -> list[tuple[str, int, int]]:
    """``(key, height, width)`` per image of an LMDB made by ``scripts/create_lmdb.py``.

    Parses ``meta_info.txt`` lines ``<key>.png (h,w,c) <compress level>`` itself: BasicSR's
    ``paths_from_lmdb`` cuts keys at the first dot and has no shapes.
    """
    meta = Path(root) / 'meta_info.txt'
    if not Path(root).is_dir():
        raise FileNotFoundError(f'LMDB folder {root} does not exist{missing_hint(root)}.')
    if not meta.is_file():
        raise FileNotFoundError(f'{root} is not an LMDB made by scripts/create_lmdb.py: '
                                'it has no meta_info.txt.')
    entries = []
    for line in meta.read_text().splitlines():
        if line.strip():
            name, shape, _ = line.rsplit(' ', 2)
            height, width = (int(v) for v in shape.strip('()').split(',')[:2])
            entries.append((Path(name).stem, height, width))
    return entries


@DATASET_REGISTRY.register()
class HRImageDataset(Dataset):
    """HR images from folders and/or ``.lmdb`` folders (``dataroot_gt``: one path or a list).

    Options: ``phase`` ('train' crops ``gt_size`` patches at random and augments with ``use_hflip`` /
    ``use_rot``, both default False; other phases mod-crop whole images to ``scale``), ``scale``,
    ``gt_size``, ``num_patches`` (train: N > 1 crops N patches per image, one augmentation for all,
    ``gt`` then (N, C, H, W): DASR/CDSR's contrastive pairs), and optionally ``degradation`` (options
    for ``DEGRADATION_REGISTRY``) with ``seed``
    (default 0). Items: ``gt`` (CHW), ``gt_path`` and, when degraded, ``lq`` (CHW) and ``params``
    (the pipeline's sampled parameters for this sample). In the train phase every image is checked at
    construction to be at least ``gt_size`` on both sides (header reads for folders, meta_info for LMDBs);
    in other phases an image smaller than ``scale`` fails when read. ``prepared_by``: the command that
    makes a missing folder (said in its error). ``decoded_cache``: a folder where each image file is
    decoded once and read back memory-mapped (:mod:`blindsr.data.decoded_cache`; the same pixels, no
    PNG decode per crop; LMDB entries are decoded as before).
    """

    option_keys = {
        'dataroot_gt': Value((str, list), REQUIRED),
        'gt_size': Value(int, None, min=1),
        'use_hflip': Value(bool, False),
        'use_rot': Value(bool, False),
        'num_patches': Value(int, 1, min=1),
        'prepared_by': Value(str, None),
        'decoded_cache': Value(str, None),
        'degradation': Component(registered(DEGRADATION_REGISTRY), 'degradation', default=None, supplied=('scale', )),
    }
    train_required = ('gt_size', )

    def __init__(self, opt: dict[str, Any]) -> None:
        super().__init__()
        self.opt = opt
        self.train = opt['phase'] == 'train'
        self.scale = int(opt.get('scale', 1))
        roots = opt['dataroot_gt']
        roots = [roots] if isinstance(roots, (str, Path)) else roots
        self.items: list[tuple[str, str | None]] = []  # (gt_path, lmdb root or None for a file)
        sizes: list[tuple[int, int]] = []
        for root in map(Path, roots):
            if root.suffix == '.lmdb':
                meta = read_lmdb_meta(root)
                self.items += [(str(root / f'{key}.png'), str(root)) for key, _, _ in meta]
                sizes += [(h, w) for _, h, w in meta]
            else:
                files = list_images(root, opt.get('prepared_by'))
                self.items += [(str(path), None) for path in files]
                if self.train:
                    sizes += [image_size(path) for path in files]
        if self.train:
            self.gt_size = int(opt['gt_size'])
            self._check_sizes(sizes)
        self.cache = None
        if opt.get('decoded_cache'):
            files = [path for path, db in self.items if db is None]
            if not files:
                raise ValueError(f"decoded_cache {opt['decoded_cache']}: the dataset reads only LMDBs; the cache "
                                 'holds decoded image files (give dataroot_gt the image folder instead).')
            self.cache = DecodedCache(opt['decoded_cache'], files)
        self.num_patches = int(opt.get('num_patches', 1))
        degradation = opt.get('degradation')
        self.degrader = Degrader(degradation, self.scale) if degradation else None
        if self.degrader is not None and self.degrader.batch_only:
            raise ValueError('the training-pair pool (pool_size) mixes samples across batches; it runs in the '
                             "model's feed_data only: move 'degradation' to the top level of the options")
        self.seed = int(opt.get('seed', 0))
        self.envs: dict[str, lmdb.Environment] = {}  # opened lazily by the process that reads
        self.envs_pid = -1

    def _check_sizes(self, sizes: list[tuple[int, int]]) -> None:
        if self.gt_size % self.scale:
            raise ValueError(f'gt_size {self.gt_size} is not a multiple of scale {self.scale}.')
        small = [f'{path} ({h}x{w})' for (path, _), (h, w) in zip(self.items, sizes)
                 if h < self.gt_size or w < self.gt_size]
        if small:
            raise ValueError(f'{len(small)} training image(s) are smaller than gt_size {self.gt_size}x'
                             f'{self.gt_size} (sizes are height x width); remove them or lower gt_size:\n  '
                             + '\n  '.join(small))

    def _read(self, index: int) -> np.ndarray:
        """Image ``index`` as HWC RGB in its stored 8/16-bit type (:func:`~blindsr.data.image_io.to_rgb`):
        training crops it before converting to float (about 13 % less CPU per training item)."""
        path, db = self.items[index]
        if db is None:
            return self.cache.read(path) if self.cache else to_rgb(read_raw(path), path)
        if self.envs_pid != os.getpid():  # LMDB environments must not cross a fork: close, reopen
            for env in self.envs.values():
                env.close()
            self.envs = {d: lmdb.open(d, readonly=True, lock=False, readahead=False)
                         for d in {d for _, d in self.items if d is not None}}
            self.envs_pid = os.getpid()
        key = Path(path).stem
        with self.envs[db].begin() as txn:
            data = txn.get(key.encode('ascii'))
        if data is None:
            raise ImageReadError(f'{path}: key {key!r} is listed in meta_info.txt but missing from the LMDB.')
        return to_rgb(read_raw(data, name=path), path)

    def __getstate__(self) -> dict[str, Any]:  # spawned workers get a pickled copy, without the envs
        return {**self.__dict__, 'envs': {}, 'envs_pid': -1}

    # the train sampler passes (index, epoch); see blindsr.data.transforms
    seeded_by_epoch = True

    def __getitem__(self, item: int | tuple[int, int]) -> dict[str, Any]:
        index, rng = sample_rng(item, self.seed)
        img = self._read(index)
        if self.train:
            crops = [paired_crop(rng, img, None, self.gt_size // self.scale, self.scale)[0]
                     for _ in range(self.num_patches)]
            crops = augment(rng, crops, self.opt.get('use_hflip', False), self.opt.get('use_rot', False))
            # without a degradation here, 8-bit crops cross to the model as uint8 (feed_data converts them)
            crops = [to_pixel_tensor(c) if self.degrader is None else to_tensor(to_float(c)) for c in crops]
            gt = torch.stack(crops) if self.num_patches > 1 else crops[0]
        else:
            if min(img.shape[:2]) < self.scale:
                raise ValueError(f'{self.items[index][0]} ({img.shape[0]}x{img.shape[1]}) is smaller than the '
                                 f'scale {self.scale}: its LR image would be empty.')
            gt = to_tensor(to_float(mod_crop(img, self.scale)))
        item: dict[str, Any] = {'gt': gt, 'gt_path': self.items[index][0]}
        if self.degrader is not None:
            lq, params = self.degrader(gt[None], torch_generator(rng))
            item['lq'] = lq[0]
            if 'gt' in params:  # the pipeline cropped or sharpened the target
                item['gt'] = params.pop('gt')[0]
            item['params'] = {name: value[0] for name, value in params.items()}
        return item

    def __len__(self) -> int:
        return len(self.items)

    def item_path(self, index: int) -> str:
        """The file (or LMDB key path) of item ``index``, for reports of an item that failed."""
        return self.items[index][0]
