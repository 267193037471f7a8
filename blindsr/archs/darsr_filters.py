"""The fixed 5x5 filter dictionary of DARSR's regression module (DARM): loaded from a file or generated.

DARM (after LAPAR) predicts per-pixel coefficients over a fixed dictionary of 5x5 filters. The authors
ship it as a pickle (``filters/kernel_72_k5.pkl``: a float64 numpy array of N x 25);
:func:`load_filter_dictionary` reads that, or an (N, 5, 5) / (N, 25) tensor saved with ``torch.save`` or
``numpy.save``. :func:`make_filter_dictionary` builds blindsr's own 72- or 24-filter dictionary from the
recipe inferred from the authors' files (see :func:`make_filter_dictionary` for the recipe and how close
it is).
"""

from __future__ import annotations

import math
import pickle
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

__all__ = ['gaussian_filter', 'load_filter_dictionary', 'make_filter_dictionary']

SIZE = 5

# numpy globals a pickled ndarray needs; nothing else may be unpickled
_PICKLE_GLOBALS = {('numpy.core.multiarray', '_reconstruct'), ('numpy._core.multiarray', '_reconstruct'),
                   ('numpy', 'ndarray'), ('numpy', 'dtype')}


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _PICKLE_GLOBALS:
            raise pickle.UnpicklingError(f'refusing to unpickle {module}.{name} (only a numpy array is expected)')
        return super().find_class(module, name)


def load_filter_dictionary(path: str | Path) -> Tensor:
    """Read a filter dictionary as a float32 (N, 5, 5) tensor.

    ``.pkl``/``.pickle``: a pickled numpy array (the authors' format, N x 25 float64; only numpy arrays
    are unpickled); ``.pt``/``.pth``: a tensor saved with ``torch.save``; ``.npy``: a numpy array. The
    array must be (N, 25) or (N, 5, 5), finite, with N >= 1.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'filter dictionary not found: {path}')
    suffix = path.suffix.lower()
    if suffix not in ('.pkl', '.pickle', '.pt', '.pth', '.npy'):
        raise ValueError(f'filter dictionary {path}: unknown file type {suffix!r} '
                         f'(expected .pkl, .pickle, .pt, .pth or .npy)')
    try:
        if suffix in ('.pkl', '.pickle'):
            with path.open('rb') as f:
                data = _ArrayUnpickler(f).load()
        elif suffix == '.npy':
            data = np.load(path, allow_pickle=False)
        else:
            data = torch.load(path, map_location='cpu', weights_only=True)
    except (pickle.UnpicklingError, EOFError, OSError, RuntimeError, ValueError) as e:
        raise ValueError(f'filter dictionary {path}: cannot read it ({e})') from e
    if isinstance(data, np.ndarray) and data.dtype.kind == 'f':
        data = torch.from_numpy(data)
    if not isinstance(data, Tensor) or not data.is_floating_point():
        what = f'{data.dtype} array' if isinstance(data, (np.ndarray, Tensor)) else type(data).__name__
        raise ValueError(f'filter dictionary {path}: expected a floating-point array of N x 25 or N x 5 x 5, '
                         f'got {what}')
    if not ((data.ndim == 2 and data.shape[1] == SIZE * SIZE) or (data.ndim == 3 and data.shape[1:] == (SIZE, SIZE))) \
            or data.shape[0] < 1:
        raise ValueError(f'filter dictionary {path}: expected shape (N, 25) or (N, 5, 5), got {tuple(data.shape)}')
    if not torch.isfinite(data).all():
        raise ValueError(f'filter dictionary {path}: contains NaN or infinite values')
    return data.reshape(-1, SIZE, SIZE).float()


def _quadratic_form(sigma_major: float, sigma_minor: float, angle_deg: float) -> np.ndarray:
    """(5, 5) squared Mahalanobis distances of the pixel offsets from the centre: ``sigma_major`` along
    the direction ``angle_deg`` (counter-clockwise from the column axis, rows pointing down),
    ``sigma_minor`` across it."""
    half = SIZE // 2
    y, x = np.mgrid[-half:half + 1, -half:half + 1].astype(np.float64)
    t = math.radians(angle_deg)
    along = x * math.cos(t) - y * math.sin(t)
    across = x * math.sin(t) + y * math.cos(t)
    return (along / sigma_major) ** 2 + (across / sigma_minor) ** 2


def gaussian_filter(sigma_major: float, sigma_minor: float, angle_deg: float = 0.0) -> np.ndarray:
    """A 5x5 float64 Gaussian (see :func:`_quadratic_form` for the axes), sampled at the pixel offsets
    and normalised to sum 1."""
    g = np.exp(-0.5 * _quadratic_form(sigma_major, sigma_minor, angle_deg))
    return g / g.sum()


def _ring_filter(sigma_major: float, sigma_minor: float, angle_deg: float, strength: float) -> np.ndarray:
    """``G + strength * dG/ds`` at s = 1, G the normalised Gaussian with both widths scaled by s: the
    limit of a difference of two Gaussians of nearly equal width. Closed form
    ``G * (1 + strength * (q - sum(G * q)))``, q the quadratic form; sums to 1, negative centre once
    ``strength * sum(G * q) > 1``."""
    q = _quadratic_form(sigma_major, sigma_minor, angle_deg)
    g = gaussian_filter(sigma_major, sigma_minor, angle_deg)
    return g * (1 + strength * (q - (g * q).sum()))


def _sharpened_dog(sigma_wide: float, sigma_narrow: float = 0.4, centre: float = -0.4) -> np.ndarray:
    """``delta + a * (G_wide - G_narrow)`` with ``a`` such that the centre is ``centre`` (sums to 1)."""
    dog = gaussian_filter(sigma_wide, sigma_wide) - gaussian_filter(sigma_narrow, sigma_narrow)
    out = dog * ((1 - centre) / -dog[SIZE // 2, SIZE // 2])
    out[SIZE // 2, SIZE // 2] += 1
    return out


# (major width, ((minor/major ratio, orientations), ...)): an isotropic Gaussian, then the oriented ones
# at 0, 180/n, ... degrees
_GAUSSIANS = {
    72: ((2.0, ((0.8, 6), (0.6, 6), (0.4, 6), (0.2, 12))), (1.2, ((0.8, 6), (0.6, 6), (0.4, 6)))),
    24: ((2.0, ((0.75, 6), (0.25, 6))), (1.2, ((0.5, 6),))),
}
# ring filters (_ring_filter) of the width-2.0 Gaussians: (minor/major ratio, orientations, strength)
_RINGS = {72: ((1.0, 1, 3.45), (0.8, 6, 2.85), (0.6, 6, 2.25), (0.4, 6, 1.85)), 24: ((1.0, 1, 3.45),)}


def make_filter_dictionary(num: int = 72) -> Tensor:
    """blindsr's own filter dictionary, the structure of the authors' 72- or 24-filter file, as a float32
    (num, 5, 5) tensor; every filter sums to 1 and is centred (centre of mass at the middle pixel).

    Recipe for 72 (inferred from ``kernel_72_k5.pkl``; ``gaussian_filter`` widths in px):
    0-30: width 2.0 isotropic, then minor/major 0.8, 0.6, 0.4 at 0, 30, ..., 150 degrees and 0.2 at
    0, 15, ..., 165 degrees; 31-49: width 1.2 isotropic, then 0.8, 0.6, 0.4 at six orientations;
    50: isotropic width 0.4 (centre 0.845); 51: ring of the width-2.0 isotropic Gaussian; 52, 53:
    ``delta + a (G_w - G_0.4)`` with w = 2.0, 1.2 and centre -0.4; 54-71: rings of the width-2.0 Gaussians
    with ratios 0.8, 0.6, 0.4 at six orientations. For 24 (``kernel_24_k5.pkl``): width 2.0 isotropic,
    ratios 0.75 and 0.25 at six orientations; width 1.2 isotropic, ratio 0.5 at six; width 0.4; then the
    filters 51-53 above.

    Filters 0-50 and 52-53 (24: all but 21) equal the authors' exactly (to float64 rounding). The authors'
    ring filters 51 and 54-71 follow no formula found here; :func:`_ring_filter` with the strengths in
    ``_RINGS`` (least-squares fits, one per group) comes within a max |difference| of 0.012 (51), 0.026
    (54-59), 0.033 (60-65) and 0.035 (66-71) of them (values up to ~0.2).
    """
    if num not in _GAUSSIANS:
        raise ValueError(f'make_filter_dictionary: num must be one of {sorted(_GAUSSIANS)}, got {num}')
    filters = []
    for major, groups in _GAUSSIANS[num]:
        filters.append(gaussian_filter(major, major))
        for ratio, turns in groups:
            filters += [gaussian_filter(major, major * ratio, 180.0 * j / turns) for j in range(turns)]
    filters.append(gaussian_filter(0.4, 0.4))
    rings = [_ring_filter(2.0, 2.0 * ratio, 180.0 * j / turns, strength)
             for ratio, turns, strength in _RINGS[num] for j in range(turns)]
    filters += rings[:1] + [_sharpened_dog(2.0), _sharpened_dog(1.2)] + rings[1:]
    return torch.from_numpy(np.stack(filters)).float()
