"""Batched blur kernels of the blind-SR degradation models, built in torch on any device.

Every constructor returns a (B, k, k) stack normalised to sum 1, takes its per-sample parameters as
1-D tensors of length B or scalars (broadcast), computes in float64 on the parameters' device and
returns ``dtype`` (float32 by default). Rows are y (down), columns x (right); the tap at (row i,
column j) weighs the offset ``(x, y) = (j - c, i - c)`` from the centre ``c``. Sampling is kept apart
(``sample_*``: dicts of per-sample tensors drawn with an optional ``torch.Generator``) so pipelines can
draw per image or per batch and record what they drew.

Gaussian family (``q`` = squared Mahalanobis distance of the offset):

- covariance ``R(theta) diag(a, b) R(theta)^T`` with ``R = [[cos, -sin], [sin, cos]]`` acting on
  ``(x, y)``; ``parameterisation='std'`` takes ``(a, b) = (sigma_x^2, sigma_y^2)`` (DASR, KDSR,
  BasicSR/Real-ESRGAN), ``'variance'`` takes ``(a, b) = (sigma_x, sigma_y)``: the eigenvalues are
  variances (CDSR/MANet ``sig1, sig2``, BSRGAN ``l1, l2``). Isotropic means ``sigma_x == sigma_y``.
  ``theta`` is in radians (DASR's test-time ``stable_anisotropic_gaussian_kernel`` takes degrees).
- Gaussian ``exp(-q / 2)``; generalised Gaussian ``exp(-q^beta / 2)``; plateau ``1 / (1 + q^beta)``
  (BasicSR ``bivariate_generalized_Gaussian`` / ``bivariate_plateau``, std parameterisation).
- ``grid='centered'``: centre ``c = (k - 1) / 2`` (half a pixel off the grid for even ``k``, as in
  MANet/KAIR). ``grid='shifted'`` is the IKC/MANet/CDSR placement for scale ``s``: the Gaussian is
  evaluated on a ``(k - s + 1)``-square in the top-left corner of the k x k array (zero elsewhere),
  i.e. centre ``c = (k - 1) / 2 - shift`` with ``shift = (s - 1) / 2``.
- ``support``: per-sample odd window (same parity as ``k``) outside which taps are zero, the kernel
  normalised inside it: Real-ESRGAN's kernel of random size zero-padded to 21.
- Taps below ``eps(float64) * max`` are set to zero before normalising, as MANet and KAIR's
  ``fspecial`` do. Besides matching them, this keeps every float32 tap far above the subnormal range:
  exp-based kernels otherwise carry subnormal taps (DASR: 20 of 64 sampled kernels), which make CPU
  convolutions slow and jittery (shared/reference/perf-baselines.md, section 1c and section 4).
- Zero sigmas give the limit (a delta on odd grids).

:func:`sinc_kernels` is BasicSR's ``circular_lowpass_kernel``; :func:`shift_kernels` is KAIR/BSRGAN's
``shift_pixel`` (bilinear resampling at ``x + shift``, edges clamped) followed by renormalisation.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

__all__ = [
    'KERNEL_KINDS', 'gaussian_kernels', 'generalized_gaussian_kernels', 'mixed_kernels', 'plateau_kernels',
    'sample_gaussian_params', 'sample_kernel_sizes', 'sample_mixed_params', 'shift_kernels', 'sinc_kernels',
]

Param = Tensor | float
Device = torch.device | str | None

#: Kernel kinds of BasicSR's ``random_mixed_kernels``; ``kind`` tensors index this tuple.
KERNEL_KINDS = ('iso', 'aniso', 'generalized_iso', 'generalized_aniso', 'plateau_iso', 'plateau_aniso')
_PLATEAU = 4  # kinds >= this index are plateau kernels
_EPS = torch.finfo(torch.float64).eps
_EXP_FLOOR = -50.0  # exp(-50) < eps: such taps are flushed anyway (see _exp_taps)


def _batched(*values: Param, device: Device = None) -> list[Tensor]:
    """Scalars and 1-D tensors as broadcast (B, 1, 1) float64 tensors on a common device."""
    tensors = [v for v in values if isinstance(v, Tensor)]
    dev = tensors[0].device if tensors else torch.device(device or 'cpu')
    flat = [torch.as_tensor(v, dtype=torch.float64, device=dev).reshape(-1) for v in values]
    return [v.reshape(-1, 1, 1) for v in torch.broadcast_tensors(*flat)]


def _offsets(size: int, centre: float, device: torch.device) -> tuple[Tensor, Tensor]:
    """x offsets (1, 1, size) and y offsets (1, size, 1) of the taps from ``centre``."""
    d = torch.arange(size, dtype=torch.float64, device=device) - centre
    return d.reshape(1, 1, -1), d.reshape(1, -1, 1)


def _quadratic_form(size: int, sigma_x: Tensor, sigma_y: Tensor, theta: Tensor, parameterisation: str,
                    centre: float) -> Tensor:
    """(B, size, size) squared Mahalanobis distances ``v^T Sigma^-1 v`` of the tap offsets ``v``."""
    if parameterisation not in ('std', 'variance'):
        raise ValueError(f"parameterisation must be 'std' or 'variance', got {parameterisation!r}")
    a, b = (sigma_x ** 2, sigma_y ** 2) if parameterisation == 'std' else (sigma_x, sigma_y)
    tiny = torch.finfo(torch.float64).tiny
    a, b = a.clamp_min(tiny), b.clamp_min(tiny)
    dx, dy = _offsets(size, centre, sigma_x.device)
    cos, sin = torch.cos(theta), torch.sin(theta)
    u = cos * dx + sin * dy  # offset in the eigenbasis: R^T v
    w = cos * dy - sin * dx
    return u * u / a + w * w / b


def _support_mask(size: int, support: Param | None, device: torch.device) -> Tensor | None:
    if support is None:
        return None
    (half,) = _batched(support, device=device)
    half = (half - 1) / 2
    dx, dy = _offsets(size, (size - 1) / 2, device)
    return (dx.abs() <= half) & (dy.abs() <= half)


def _exp_taps(arg: Tensor) -> Tensor:
    """``exp(arg)`` scaled so the largest tap is 1 (normalising removes the scale), exponents below
    :data:`_EXP_FLOOR` clamped: those taps fall under the eps * max flush either way, and exp's
    underflow path is ~4x slower on CPU."""
    return torch.exp((arg - arg.amax((-2, -1), keepdim=True)).clamp_min(_EXP_FLOOR))


def _finish(k: Tensor, mask: Tensor | None, dtype: torch.dtype, flush: bool = True) -> Tensor:
    """Zero the taps outside ``mask`` and (``flush``) below eps * max, normalise to sum 1, cast."""
    if mask is not None:
        k = k * mask
    if flush:
        k = torch.where(k < _EPS * k.amax((-2, -1), keepdim=True), 0.0, k)
    return (k / k.sum((-2, -1), keepdim=True)).to(dtype)


def gaussian_kernels(size: int, sigma_x: Param, sigma_y: Param, theta: Param = 0.0,
                     parameterisation: str = 'std', grid: str = 'centered', shift: float = 0.0,
                     support: Param | None = None, dtype: torch.dtype = torch.float32,
                     device: Device = None) -> Tensor:
    """Anisotropic Gaussian kernels (B, size, size); see the module docstring for the conventions.

    ``grid='shifted'`` needs ``shift = (s - 1) / 2`` for scale ``s`` (1.5 for x4); ``support`` only
    applies to the centered grid. ``device`` is used when no parameter is a tensor.
    """
    sigma_x, sigma_y, theta = _batched(sigma_x, sigma_y, theta, device=device)
    centre = (size - 1) / 2
    if grid == 'shifted':
        span = size - 2 * shift
        if support is not None or span != int(span) or not 1 <= span <= size:
            raise ValueError(f'shifted grid needs 2 * shift integer in [0, size - 1] and no support, '
                             f'got shift {shift} for size {size}')
        dx, dy = _offsets(size, 0.0, sigma_x.device)
        support_mask = (dx < span) & (dy < span)
        centre -= shift
    elif grid == 'centered':
        support_mask = _support_mask(size, support, sigma_x.device)
    else:
        raise ValueError(f"grid must be 'centered' or 'shifted', got {grid!r}")
    q = _quadratic_form(size, sigma_x, sigma_y, theta, parameterisation, centre)
    return _finish(_exp_taps(-0.5 * q), support_mask, dtype)


def mixed_kernels(size: int, kind: Tensor, sigma_x: Param, sigma_y: Param, theta: Param, beta: Param,
                  support: Param | None = None, dtype: torch.dtype = torch.float32,
                  device: Device = None) -> Tensor:
    """BasicSR's kernel families in one batch, ``kind`` indexing :data:`KERNEL_KINDS` per sample.

    Gaussians are generalised Gaussians with ``beta = 1``; isotropic kinds expect ``sigma_y ==
    sigma_x`` and ``theta == 0`` (what :func:`sample_mixed_params` draws). Std parameterisation,
    centered grid.
    """
    sigma_x, sigma_y, theta, beta = _batched(sigma_x, sigma_y, theta, beta, device=device)
    q_beta = _quadratic_form(size, sigma_x, sigma_y, theta, 'std', (size - 1) / 2) ** beta
    plateau = kind.to(sigma_x.device).reshape(-1, 1, 1) >= _PLATEAU
    k = torch.where(plateau, 1 / (q_beta + 1), _exp_taps(-0.5 * q_beta))
    return _finish(k, _support_mask(size, support, sigma_x.device), dtype)


def generalized_gaussian_kernels(size: int, sigma_x: Param, sigma_y: Param, theta: Param, beta: Param,
                                 support: Param | None = None, dtype: torch.dtype = torch.float32,
                                 device: Device = None) -> Tensor:
    """BasicSR's ``bivariate_generalized_Gaussian``: ``exp(-q^beta / 2)``, batched."""
    return mixed_kernels(size, torch.tensor(1), sigma_x, sigma_y, theta, beta, support, dtype, device)


def plateau_kernels(size: int, sigma_x: Param, sigma_y: Param, theta: Param, beta: Param,
                    support: Param | None = None, dtype: torch.dtype = torch.float32,
                    device: Device = None) -> Tensor:
    """BasicSR's ``bivariate_plateau``: ``1 / (1 + q^beta)``, batched."""
    return mixed_kernels(size, torch.tensor(_PLATEAU), sigma_x, sigma_y, theta, beta, support, dtype,
                         device)


def _j1_over_z(z: Tensor, z_max: float) -> Tensor:
    """``J1(z) / z`` (1/2 at 0) for 0 <= z <= z_max, to ~1e-15.

    Midpoint rule on Bessel's integral ``J1(z) = mean over t in [0, 2 pi) of cos(t - z sin t)``,
    exact to float64 rounding once the number of nodes exceeds z by ~40. torch.special.bessel_j1 is
    off by up to 5e-7 near z = 6 even in float64, more than the 1e-6 we want against SciPy.
    """
    nodes = int(z_max) + 48
    t = (torch.arange(nodes, dtype=torch.float64, device=z.device) + 0.5) * (2 * math.pi / nodes)
    j1 = torch.cos(t - z.unsqueeze(-1) * torch.sin(t)).mean(-1)
    return torch.where(z > 0, j1 / z.clamp_min(1e-300), 0.5)


def sinc_kernels(size: Param, omega_c: Param, pad_to: int | None = None,
                 dtype: torch.dtype = torch.float32, device: Device = None) -> Tensor:
    """Circular low-pass kernels ``omega_c J1(omega_c r) / (2 pi r)`` of odd ``size`` (per sample or
    shared), zero-padded to ``pad_to`` (default: ``size``, which must then be an int).

    BasicSR's ``circular_lowpass_kernel``; ``omega_c`` in (0, pi] (radians; pi is the Nyquist limit).
    """
    if pad_to is None:
        if isinstance(size, Tensor):
            raise ValueError('sinc_kernels needs pad_to when size is a tensor')
        pad_to = int(size)
    if pad_to % 2 == 0:
        raise ValueError(f'sinc kernels have odd sizes, got pad_to {pad_to}')
    (omega,) = _batched(omega_c, device=device)
    d = np.arange(pad_to) - (pad_to - 1) // 2
    r2, index = np.unique(d[:, None] ** 2 + d ** 2, return_inverse=True)  # J1 once per distinct radius
    radii = torch.from_numpy(np.sqrt(r2)).to(omega.device)
    table = _j1_over_z(omega.reshape(-1, 1) * radii, math.pi * math.sqrt(r2[-1]))
    k = table[:, torch.from_numpy(index.reshape(-1)).to(omega.device)].reshape(-1, pad_to, pad_to)
    return _finish(k, _support_mask(pad_to, size, omega.device), dtype, flush=False)


def shift_kernels(kernels: Tensor, shift: float) -> Tensor:
    """KAIR/BSRGAN ``shift_pixel`` + renormalisation: each kernel resampled bilinearly at
    ``(x + shift, y + shift)`` with coordinates clamped to the array (``shift = (sf - 1) / 2``
    moves the kernel up-left, BSRGAN's ``upper_left=True``; negative values move it down-right).

    Works on any (..., h, w) stack; taps below eps * max are zeroed as in the constructors.
    """
    def matrix(n: int) -> Tensor:
        pos = (torch.arange(n, dtype=torch.float64, device=kernels.device) + shift).clamp(0, n - 1)
        lo = pos.floor()
        frac = (pos - lo).unsqueeze(1)
        lo = lo.long().unsqueeze(1)
        hi = (lo + 1).clamp(max=n - 1)
        m = torch.zeros(n, n, dtype=torch.float64, device=kernels.device)
        return m.scatter_add(1, lo, 1 - frac).scatter_add(1, hi, frac)

    h, w = kernels.shape[-2:]
    out = matrix(h) @ kernels.double() @ matrix(w).T
    return _finish(out, None, kernels.dtype)


# ----------------------------------------------------------------------------- samplers


def _device(generator: torch.Generator | None, device: Device) -> torch.device:
    return generator.device if generator is not None else torch.device(device or 'cpu')


def _uniform(batch: int, bounds: tuple[float, float] | tuple[Tensor, Tensor],
             generator: torch.Generator | None, device: torch.device) -> Tensor:
    low, high = bounds
    return torch.rand(batch, generator=generator, device=device) * (high - low) + low


def sample_kernel_sizes(batch: int, low: int = 7, high: int = 21, generator: torch.Generator | None = None,
                        device: Device = None) -> Tensor:
    """Odd sizes uniform in [low, high] (both odd), int64: Real-ESRGAN (7..21), BSRGAN (7..25)."""
    device = _device(generator, device)
    return 2 * torch.randint(low // 2, high // 2 + 1, (batch,), generator=generator, device=device) + 1


def sample_gaussian_params(batch: int, sigma_range: tuple[float, float],
                           sigma_y_range: tuple[float, float] | None = None,
                           rotation_range: tuple[float, float] = (0.0, math.pi), isotropic_prob: float = 1.0,
                           ordered: bool = False, generator: torch.Generator | None = None,
                           device: Device = None) -> dict[str, Tensor]:
    """``sigma_x, sigma_y, theta`` (float32) and ``isotropic`` (bool) for :func:`gaussian_kernels`.

    Isotropic samples (probability ``isotropic_prob``) get ``sigma_y = sigma_x``, ``theta = 0``.
    Anisotropic ones draw ``sigma_x`` ~ U(sigma_range), ``sigma_y`` ~ U(sigma_y_range, default
    sigma_range) independently (DASR/KDSR/BSRGAN), or with ``ordered`` ~ U[low, sigma_x] (CDSR/MANet,
    so sigma_y <= sigma_x), and ``theta`` ~ U(rotation_range).
    """
    device = _device(generator, device)
    isotropic = torch.rand(batch, generator=generator, device=device) < isotropic_prob
    sigma_x = _uniform(batch, sigma_range, generator, device)
    y_range = sigma_y_range or sigma_range
    sigma_y = _uniform(batch, (y_range[0], sigma_x) if ordered else y_range, generator, device)
    theta = _uniform(batch, rotation_range, generator, device)
    return {'sigma_x': sigma_x, 'sigma_y': torch.where(isotropic, sigma_x, sigma_y),
            'theta': torch.where(isotropic, 0.0, theta), 'isotropic': isotropic}


def _beta(batch: int, bounds: tuple[float, float], generator: torch.Generator | None,
          device: torch.device) -> Tensor:
    """BasicSR's shape draw: U[low, 1] or U[1, high] with probability 1/2 each."""
    below = torch.rand(batch, generator=generator, device=device) < 0.5
    u = torch.rand(batch, generator=generator, device=device)
    return torch.where(below, bounds[0] + (1 - bounds[0]) * u, 1 + (bounds[1] - 1) * u)


def sample_mixed_params(batch: int, kernel_list: tuple[str, ...] | list[str] = KERNEL_KINDS,
                        kernel_prob: tuple[float, ...] | list[float] = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03),
                        sigma_x_range: tuple[float, float] = (0.2, 3.0),
                        sigma_y_range: tuple[float, float] = (0.2, 3.0),
                        rotation_range: tuple[float, float] = (-math.pi, math.pi),
                        betag_range: tuple[float, float] = (0.5, 4.0), betap_range: tuple[float, float] = (1.0, 2.0),
                        generator: torch.Generator | None = None, device: Device = None) -> dict[str, Tensor]:
    """BasicSR ``random_mixed_kernels`` draws for :func:`mixed_kernels` (defaults: Real-ESRGAN's
    first-order kernel): ``kind`` (int64 into :data:`KERNEL_KINDS`), ``sigma_x, sigma_y, theta, beta``.

    Per sample as BasicSR: isotropic kinds ``sigma_y = sigma_x``, ``theta = 0``; ``beta = 1`` for
    Gaussians, else U[low, 1] or U[1, high] (probability 1/2 each) from ``betag_range`` /
    ``betap_range``. No multiplicative kernel noise (Real-ESRGAN uses none).
    """
    device = _device(generator, device)
    lookup = torch.tensor([KERNEL_KINDS.index(name) for name in kernel_list], device=device)
    prob = torch.tensor(kernel_prob, dtype=torch.float64, device=device)
    kind = lookup[torch.multinomial(prob, batch, replacement=True, generator=generator)]
    isotropic = kind % 2 == 0
    sigma_x = _uniform(batch, sigma_x_range, generator, device)
    sigma_y = torch.where(isotropic, sigma_x, _uniform(batch, sigma_y_range, generator, device))
    theta = torch.where(isotropic, 0.0, _uniform(batch, rotation_range, generator, device))
    beta = torch.where(kind >= _PLATEAU, _beta(batch, betap_range, generator, device),
                       _beta(batch, betag_range, generator, device))
    beta = torch.where(kind < 2, 1.0, beta)
    return {'kind': kind, 'sigma_x': sigma_x, 'sigma_y': sigma_y, 'theta': theta, 'beta': beta}
