"""LR/HR pairs from two folders matched by file stem, or LR-only folders of real images without HR.

Named ``PairedFolderDataset`` so as not to clash with BasicSR's ``PairedImageDataset``. Sizes are checked
at construction from the image headers: every HR image must be ``scale`` times its LR image, or larger
by fewer than ``scale`` pixels per side (then it is cropped top-left, as a mod-crop would).
``TestSetFolder`` reads one setting of a benchmark test-set folder (make_testsets.py's layout or MANet's).
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from blindsr.data.image_io import image_size, list_images, read_image, to_tensor
from blindsr.data.transforms import augment, paired_crop, sample_rng
from blindsr.registry import DATASET_REGISTRY
from blindsr.schema import REQUIRED, Value

_MAX_LISTED = 10


def _by_stem(folder: str | Path, prepared_by: str | None) -> dict[str, Path]:
    paths: dict[str, Path] = {}
    for path in list_images(folder, prepared_by):
        if path.stem in paths:
            raise ValueError(f'{paths[path.stem]} and {path} have the same name; pairs are matched by name.')
        paths[path.stem] = path
    return paths


def _listing(names: list[str]) -> str:
    more = f' and {len(names) - _MAX_LISTED} more' if len(names) > _MAX_LISTED else ''
    return ', '.join(names[:_MAX_LISTED]) + more


@DATASET_REGISTRY.register()
class PairedFolderDataset(Dataset):
    """Images of ``dataroot_lq`` paired by name with those of ``dataroot_gt`` (absent: LR only).

    Options: ``scale``, ``phase``, ``filename_tmpl`` (LR name from HR name, default ``'{}'``, e.g.
    ``'{}x4'``), and for 'train' ``gt_size`` (HR patch size; LR-only data is cropped to
    ``gt_size // scale``), ``use_hflip``, ``use_rot`` (default False). Other phases give whole images.
    Items: ``lq``, ``lq_path`` and, when paired, ``gt``, ``gt_path``. ``prepared_by``: the command that
    makes a missing folder (said in its error).
    """

    option_keys = {
        'dataroot_lq': Value(str, REQUIRED),
        'dataroot_gt': Value(str, None),
        'filename_tmpl': Value(str, '{}'),
        'gt_size': Value(int, None, min=1),
        'use_hflip': Value(bool, False),
        'use_rot': Value(bool, False),
        'prepared_by': Value(str, None),
    }
    train_required = ('gt_size', )

    def __init__(self, opt: dict[str, Any]) -> None:
        super().__init__()
        self.opt = opt
        self.train = opt['phase'] == 'train'
        self.scale = int(opt['scale'])
        lq_paths = _by_stem(opt['dataroot_lq'], opt.get('prepared_by'))
        if opt.get('dataroot_gt') is None:
            self.pairs: list[tuple[Path, Path | None]] = [(lq_paths[s], None) for s in sorted(lq_paths)]
        else:
            gt_paths = _by_stem(opt['dataroot_gt'], opt.get('prepared_by'))
            tmpl = opt.get('filename_tmpl', '{}')
            lq_of_gt = {stem: tmpl.format(stem) for stem in sorted(gt_paths)}
            no_lq = [gt_paths[s].name for s, lq in lq_of_gt.items() if lq not in lq_paths]
            wanted = set(lq_of_gt.values())
            no_gt = sorted(p.name for s, p in lq_paths.items() if s not in wanted)
            if no_lq or no_gt:
                gt_msg = f"{len(no_lq)} in {opt['dataroot_gt']} have no LR image: {_listing(no_lq)}. "
                lq_msg = f"{len(no_gt)} in {opt['dataroot_lq']} have no HR image: {_listing(no_gt)}."
                raise ValueError(f'Unmatched images (LR name = filename_tmpl {tmpl!r} of the HR name): '
                                 + (gt_msg if no_lq else '') + (lq_msg if no_gt else ''))
            self.pairs = [(lq_paths[lq], gt_paths[gt]) for gt, lq in lq_of_gt.items()]
        if self.train:
            self.gt_size = int(opt['gt_size'])
            if self.gt_size % self.scale:
                raise ValueError(f'gt_size {self.gt_size} is not a multiple of scale {self.scale}.')
        self._check_sizes()

    def _check_sizes(self) -> None:
        problems = []
        lq_size = self.gt_size // self.scale if self.train else 0
        for lq, gt in self.pairs:
            lh, lw = image_size(lq)
            if lh < lq_size or lw < lq_size:
                problems.append(f'{lq} ({lh}x{lw}) is smaller than the LR patch {lq_size}x{lq_size} '
                                f'(gt_size {self.gt_size} / scale {self.scale})')
            if gt is not None:
                gh, gw = image_size(gt)
                if not (0 <= gh - lh * self.scale < self.scale and 0 <= gw - lw * self.scale < self.scale):
                    problems.append(f'{gt} ({gh}x{gw}) is not {self.scale}x {lq} ({lh}x{lw})')
        if problems:
            raise ValueError('Image sizes (height x width) do not fit:\n  ' + '\n  '.join(problems))

    # the train sampler passes (index, epoch); see blindsr.data.transforms
    seeded_by_epoch = True

    def __getitem__(self, item: int | tuple[int, int]) -> dict[str, Any]:
        index, rng = sample_rng(item, int(self.opt.get('seed', 0)))
        lq_path, gt_path = self.pairs[index]
        lq = read_image(lq_path)
        gt = None if gt_path is None else read_image(gt_path)[:lq.shape[0] * self.scale, :lq.shape[1] * self.scale]
        if self.train:
            gt, lq = paired_crop(rng, gt, lq, self.gt_size // self.scale, self.scale)
            flips = (self.opt.get('use_hflip', False), self.opt.get('use_rot', False))
            if gt is None:
                lq, = augment(rng, [lq], *flips)
            else:
                gt, lq = augment(rng, [gt, lq], *flips)
        out: dict[str, Any] = {'lq': to_tensor(lq), 'lq_path': str(lq_path)}
        if gt is not None:
            out.update(gt=to_tensor(gt), gt_path=str(gt_path))
        return out

    def __len__(self) -> int:
        return len(self.pairs)

    def item_path(self, index: int) -> str:
        """The LR file of item ``index``, for reports of an item that failed."""
        return str(self.pairs[index][0])


@DATASET_REGISTRY.register()
class TestSetFolder(PairedFolderDataset):
    """One setting of a benchmark test set: ``dataroot`` and ``setting``. Two layouts are read:

    - ``scripts/make_testsets.py``'s: ``HR/``, one folder per setting (e.g. ``sig1.2``), ``params.json``;
    - MANet's (``codes/prepare_testset.py``, read by CDSR's test.py; ``make_testsets.py --layout manet``
      writes it): ``dataroot`` = ``<Set>_x<s>`` holding ``HR_si/`` and the settings
      ``LR_mode0_noise<n>/``, each LR file paired with the ``HR_si`` file of the same name. Spatially
      variant folders (``HR_sv``, ``LR_mode1..5_noise<n>``) are not read.

    For ``python -m blindsr.test``, ``setting`` may be absent (every setting of the folder,
    :func:`settings_of`) or a pattern (``noise0_*``): each setting named is evaluated and the means go into
    a summary table (``val.summary_columns``).
    """

    option_keys = {'dataroot': Value(str, REQUIRED), 'setting': Value(str, None)}
    train_required = ()

    def __init__(self, opt: dict[str, Any]) -> None:
        root, setting = Path(opt['dataroot']), opt.get('setting')
        available = settings_of(root, int(opt['scale']))
        if setting not in available:
            raise ValueError(f"{root}: no setting {setting!r}; it holds {', '.join(available)}")
        hr = 'HR_si' if _is_manet(root) else 'HR'
        super().__init__({**opt, 'dataroot_gt': root / hr, 'dataroot_lq': root / setting})


_MANET_LR = re.compile(r'LR_mode0_noise(\d+)')


def _is_manet(root: Path) -> bool:
    return (root / 'HR_si').is_dir()


def read_record(root: str | Path) -> dict:
    """A make_testsets folder's ``params.json``, parsed once per version of the file (a run reads it for
    every setting, the benchmark again; Urban100's lists every image x setting). Read-only: shared."""
    path = Path(root) / 'params.json'
    st = path.stat()
    return _parsed(str(path.resolve()), st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=16)
def _parsed(path: str, mtime_ns: int, size: int) -> dict:
    return json.loads(Path(path).read_text())


def settings_of(root: str | Path, scale: int) -> list[str]:
    """The settings of a test-set folder (either layout of :class:`TestSetFolder`), checked against the
    run's ``scale`` (a MANet folder's by its name ``<Set>_x<s>``, when it has that form)."""
    root = Path(root)
    if _is_manet(root):
        named = re.fullmatch(r'.*_x(\d+)', root.name)
        if named and int(named.group(1)) != scale:
            raise ValueError(f'{root} is a MANet test set for scale {named.group(1)}, the options say {scale}')
        found = [p.name for p in root.iterdir() if p.is_dir() and _MANET_LR.fullmatch(p.name)]
        if not found:
            raise ValueError(f'{root} holds HR_si/ but no LR_mode0_noise<n>/ folder (MANet layout)')
        return sorted(found, key=lambda name: int(_MANET_LR.fullmatch(name).group(1)))
    record_path = root / 'params.json'
    if not record_path.is_file():
        raise ValueError(f'{root} is not a test set made by scripts/make_testsets.py (no params.json) '
                         'nor a MANet one (no HR_si/)')
    record = read_record(root)
    if record['scale'] != scale:
        raise ValueError(f"{root} was made for scale {record['scale']}, the options say {scale}")
    return sorted({s for per_image in record['images'].values() for s in per_image})


def setting_noise(root: str | Path, setting: str) -> float | None:
    """The noise level (8-bit units) of ``setting`` in a test-set folder, or None when its images record
    none or different ones (e.g. ``bsrgan``)."""
    root = Path(root)
    if _is_manet(root):
        return float(_MANET_LR.fullmatch(setting).group(1))
    record = read_record(root)
    levels = {per_image[setting].get('noise') for per_image in record['images'].values() if setting in per_image}
    level = levels.pop() if len(levels) == 1 else None
    return float(level) if isinstance(level, (int, float)) else None
