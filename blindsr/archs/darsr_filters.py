"""The fixed 5x5 filter dictionary of DARSR's regression module (DARM): loaded from a file or generated.

DARM (after LAPAR) predicts per-pixel coefficients over a fixed dictionary of 5x5 filters. The authors
ship it as a pickle (``filters/kernel_72_k5.pkl``: a float64 numpy array of N x 25);
:func:`load_filter_dictionary` reads that, or an (N, 5, 5) / (N, 25) tensor saved with ``torch.save`` or
``numpy.save``. :func:`make_filter_dictionary` builds blindsr's own 72-filter dictionary from the recipe
inferred from the authors' file (see :func:`make_filter_dictionary` for the recipe and how close it is).
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
    try:
        if suffix in ('.pkl', '.pickle'):
            with path.open('rb') as f:
                data = _ArrayUnpickler(f).load()
        elif suffix in ('.pt', '.pth'):
            data = torch.load(path, map_location='cpu', weights_only=True)
        elif suffix == '.npy':
            data = np.load(path, allow_pickle=False)
        else:
            raise ValueError(f'filter dictionary {path}: unknown file type {suffix!r} '
                             f'(expected .pkl, .pickle, .pt, .pth or .npy)')
    except (pickle.UnpicklingError, EOFError, OSError, RuntimeError) as e:
        raise ValueError(f'filter dictionary {path}: cannot read it ({e})') from e
    if isinstance(data, np.ndarray) and data.dtype.kind in 'iuf':
        data = torch.from_numpy(np.asarray(data, dtype=np.float64))
    if not isinstance(data, Tensor) or not (data.is_floating_point() or data.dtype in (torch.int32, torch.int64)):
        raise ValueError(f'filter dictionary {path}: expected a numeric array of N x 25 or N x 5 x 5, '
                         f'got {type(data).__name__}')
    if not ((data.ndim == 2 and data.shape[1] == SIZE * SIZE) or (data.ndim == 3 and data.shape[1:] == (SIZE, SIZE))) \
            or data.shape[0] < 1:
        raise ValueError(f'filter dictionary {path}: expected shape (N, 25) or (N, 5, 5), got {tuple(data.shape)}')
    if not torch.isfinite(data).all():
        raise ValueError(f'filter dictionary {path}: contains NaN or infinite values')
    return data.reshape(-1, SIZE, SIZE).float()


def gaussian_filter(sigma_major: float, sigma_minor: float, angle_deg: float = 0.0, size: int = SIZE) -> np.ndarray:
    """A (size, size) float64 Gaussian with standard deviations ``sigma_major`` along the direction
    ``angle_deg`` (counter-clockwise from the column axis, rows pointing down) and ``sigma_minor`` across
    it, sampled at integer offsets from the centre and normalised to sum 1."""
    half = size // 2
    y, x = np.mgrid[-half:half + 1, -half:half + 1].astype(np.float64)
    t = math.radians(angle_deg)
    along = x * math.cos(t) - y * math.sin(t)
    across = x * math.sin(t) + y * math.cos(t)
    g = np.exp(-0.5 * ((along / sigma_major) ** 2 + (across / sigma_minor) ** 2))
    return g / g.sum()


def _gaussians() -> list[np.ndarray]:
    """Filters 0-50: per major width 2.0 and 1.2 an isotropic Gaussian, then minor/major ratios 0.8, 0.6,
    0.4 at six orientations (0, 30, ..., 150 degrees); for width 2.0 also ratio 0.2 at twelve
    orientations (0, 15, ..., 165); last an isotropic sigma-0.4 Gaussian (nearly a delta)."""
    out = []
    for major, ratios in ((2.0, ((0.8, 6), (0.6, 6), (0.4, 6), (0.2, 12))), (1.2, ((0.8, 6), (0.6, 6), (0.4, 6)))):
        out.append(gaussian_filter(major, major))
        for ratio, turns in ratios:
            out += [gaussian_filter(major, major * ratio, 180.0 * j / turns) for j in range(turns)]
    out.append(gaussian_filter(0.4, 0.4))
    return out


def _ring_filters() -> list[np.ndarray]:
    """Filters 51-71: difference-of-Gaussian filters ``(1 + a) * G_wide - a * G_narrow`` (sum 1,
    negative centre)."""
    out = []
    for wide, narrow, a in ((3.0, 1.0, 1.0), (2.0, 0.6, 1.0), (1.5, 0.6, 1.0)):
        out.append((1 + a) * gaussian_filter(wide, wide) - a * gaussian_filter(narrow, narrow))
    for wide, narrow, a in ((3.0, 1.0, 1.0), (2.5, 0.9, 1.0), (2.0, 0.8, 1.2)):
        out += [(1 + a) * gaussian_filter(wide, wide * 0.7, -30.0 * j) - a * gaussian_filter(narrow, narrow * 0.7,
                                                                                             -30.0 * j)
                for j in range(6)]
    return out


def make_filter_dictionary(num: int = 72) -> Tensor:
    """blindsr's own 72-filter dictionary as a float32 (num, 5, 5) tensor (the first ``num`` filters).

    Filters 0-50 are the Gaussians of :func:`_gaussians`, 51-71 the difference-of-Gaussian filters of
    :func:`_ring_filters`. Every filter sums to 1 and is centred (centre of mass at the middle pixel).
    """
    filters = _gaussians() + _ring_filters()
    if not 1 <= num <= len(filters):
        raise ValueError(f'make_filter_dictionary: num must be in 1..{len(filters)}, got {num}')
    return torch.from_numpy(np.stack(filters[:num])).float()
