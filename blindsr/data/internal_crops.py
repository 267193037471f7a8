"""Crops of one test image for per-image (internal) learning, as DARSR's KernelGAN-style sampler draws them.

DARSR (``data.py``, after KernelGAN) trains on crops of the very image it corrects. :class:`InternalCrops`
reproduces its sampler:

- shave 10 px from every border (the authors' synthetic-image assumption), then crop H and W down to
  multiples of ``scale``;
- two probability maps from image gradients (KernelGAN's ``create_gradient_map``): |g_row|, |g_col|
  (``np.gradient`` of the 0.299/0.587/0.114 gray image) and the gradient magnitude, each zeroed in a
  5 px border; |g_row| and |g_col| clipped to [v97, v97+] (v97 = the value at the 97th percentile, v97+
  the next larger value) minus v97, the magnitude NOT clipped (the code normalises the unclipped array
  although it computes a clipped one; §7.3 of the seed notes says all three are clipped); each
  normalised to sum 1, summed, box-blurred 5x5 (zero padding) and normalised to mean 1. The
  map for the ``hr`` crops ('G' crops) is made on the MATLAB-bicubic 1/scale downscaled image
  (:func:`blindsr.degradations.resize.imresize`) and nearest-upsampled back (through float32, as PIL's
  mode 'F' does in the authors' code); the map for the ``lr`` crops on the image itself. (The authors'
  KernelGAN ``imresize`` drops, rather than mirrors, the taps beyond the top/left border, since numpy
  wraps the negative indices it casts to uint; that changes only the first two rows/columns of the small
  image, which the map's zeroed 5 px border hides, so the maps are the same.) Each map is
  box-summed over a (crop/2)^2 window (scipy ``convolve2d(..., 'same')`` alignment), zeroed within
  crop/2 of the border and normalised to a probability vector (uniform if it is all zero);
- ``num_iters * batch_size`` crop centres per map, drawn at construction by
  ``np.random.RandomState(seed).choice`` (first all 'G' centres, then all 'D' centres: with seed 0
  these are the authors' centres, who call ``np.random.seed(0)``); top-left ``centre - size // 2``
  clamped into the image and rounded down to even coordinates;
- per sample: ``hr`` = crop_size crop, ``lr`` = crop_size/scale crop from its own centre, ``hr_bicubic``
  = PIL bicubic resize of ``hr`` to crop_size/scale, ``lr_up`` = PIL bicubic resize of ``lr`` to crop_size
  (PIL itself, so the 8-bit results are the authors' exactly); then one random horizontal flip (p 0.5)
  and one random transpose (p 0.5) shared by the four. The authors draw these from the unseeded Python
  ``random`` module (flip, then transpose, per sample); here they come from ``random.Random(seed)`` in
  the same order, so a run is reproducible and ``random.seed(seed)`` makes the authors' run match it.

Batches are float32 CPU tensors in [0, 1] (equal to the authors' float64 uint8 / 255 cast to float32),
built on demand: ``crops[i]`` is batch ``i`` (deterministic, random access) and iterating yields the
``num_iters`` batches in order, so ``DataLoader(crops, batch_size=None, num_workers=k)`` can prefetch
them. A batch of 16 costs ~20-30 ms on one CPU core, most of it PIL's 32 resizes.
"""

from __future__ import annotations

import random

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from blindsr.data.image_io import as_float
from blindsr.degradations.resize import imresize

__all__ = ['InternalCrops', 'gradient_map', 'probability_map']

SHAVE = 10  # px shaved from every border before sampling (authors' synthetic-image assumption)
GRADIENT_WINDOW = 5
CLIP_PERCENT = 0.97


def _box_sum(x: np.ndarray, size: int) -> np.ndarray:
    """``scipy.signal.convolve2d(x, np.ones((size, size)), 'same')``, separably: ``size`` shifted adds
    per dimension (no cancellation, so zero windows stay exactly 0, unlike an integral image).

    Output ``[i, j]`` sums ``x`` over rows ``i - size // 2 .. i + (size - 1) // 2`` (zero outside), and
    likewise for columns: scipy's centring of the 'full' result, also for even sizes.
    """
    before, after = size // 2, (size - 1) // 2
    h, w = x.shape
    padded = np.pad(x, ((before, after), (before, after)))
    rows = sum(padded[k:k + h] for k in range(size))
    return sum(rows[:, k:k + w] for k in range(size))


def _zero_border(x: np.ndarray, edge: int) -> np.ndarray:
    """``x`` with a border of width ``edge`` set to 0 (KernelGAN's ``pad_edges``; all zero if too small)."""
    out = np.zeros_like(x)
    if x.shape[0] > 2 * edge and x.shape[1] > 2 * edge:
        out[edge:-edge, edge:-edge] = x[edge:-edge, edge:-edge]
    return out


def _clip_extreme(x: np.ndarray, percent: float) -> np.ndarray:
    """Clip to [v, v'] and subtract v: v = the sorted value at ``int(percent * n)``, v' the next one (or
    v + 1e-5 when they are equal)."""
    flat = x.ravel()
    pivot = int(percent * flat.size)
    low, high = np.partition(flat, (pivot, pivot + 1))[[pivot, pivot + 1]]
    if high <= low:
        high = low + 10e-6
    return np.clip(x, low, high) - low


def gradient_map(image: np.ndarray) -> np.ndarray:
    """KernelGAN's gradient 'loss map' of an (H, W, 3) image: float64 (H, W) with mean 1."""
    gray = np.dot(image, [0.299, 0.587, 0.114])
    g0, g1 = np.gradient(gray)
    parts = [_clip_extreme(_zero_border(np.abs(g), GRADIENT_WINDOW), CLIP_PERCENT) for g in (g0, g1)]
    parts.append(_zero_border(np.sqrt(g0 ** 2 + g1 ** 2), GRADIENT_WINDOW))  # not clipped (see module doc)
    combined = sum(p / p.sum() for p in parts)
    blurred = _box_sum(combined, GRADIENT_WINDOW) / GRADIENT_WINDOW ** 2
    return blurred / blurred.mean()


def probability_map(loss_map: np.ndarray, crop: int) -> np.ndarray:
    """Flat crop-centre probabilities: the loss map averaged over (crop/2)^2 windows, zero within crop/2
    of the border (uniform if nothing is left)."""
    half = crop // 2
    prob = _zero_border(_box_sum(loss_map, half) / half ** 2, half).ravel()
    total = prob.sum()
    return prob / total if total != 0 else np.full(prob.size, 1.0 / prob.size)


def _pil_bicubic(crops: np.ndarray, size: int) -> np.ndarray:
    """PIL bicubic resize of (B, h, w, 3) uint8 crops to (B, size, size, 3)."""
    return np.stack([np.asarray(Image.fromarray(c).resize((size, size), Image.BICUBIC)) for c in crops])


KEYS = ('hr', 'lr', 'hr_bicubic', 'lr_up')  # what a batch can hold


class InternalCrops:
    """DARSR's per-image crop sampler; see the module docstring.

    Args:
        image: (H, W, 3) uint8 RGB, the image to be corrected (the "HR" of internal learning).
        scale: the SR scale (2 or 4 in DARSR); ``lr`` crops are crop_size / scale.
        crop_size: size of the ``hr`` crops (128 in DARSR); a multiple of ``scale``.
        batch_size, num_iters: batches of ``batch_size`` samples; ``len(self) == num_iters``.
        seed: seeds the crop centres (``np.random.RandomState``) and the flips (``random.Random``).
        keys: the entries each batch holds (DARSR's DSEM stage reads only ``lr`` and ``hr_bicubic``);
            the crops and flips do not depend on them.

    Batch ``i`` is a dict of float32 (B, 3, h, w) tensors in [0, 1]: ``hr`` (crop_size), ``lr``
    (crop_size / scale), ``hr_bicubic`` (crop_size / scale) and ``lr_up`` (crop_size), those of ``keys``.
    Attributes, one entry per sample (num_iters * batch_size): ``hr_centres`` and ``lr_centres`` (int64
    flat indices ``row * W + col`` into ``image``, the shaved uint8 image sampled from),
    ``hr_top_left`` and ``lr_top_left`` ((n, 2) int64 row, column), ``hflip`` and ``transpose`` (bool).
    """

    def __init__(self, image: np.ndarray, scale: int, crop_size: int = 128, batch_size: int = 16,
                 num_iters: int = 3000, seed: int = 0, keys: tuple[str, ...] = KEYS):
        if not set(keys) <= set(KEYS):
            raise ValueError(f'InternalCrops: keys must be among {KEYS}, got {keys}')
        self.keys = keys
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 \
                or image.shape[2] != 3:
            got = (f'{image.dtype} array of shape {image.shape}' if isinstance(image, np.ndarray)
                   else type(image).__name__)
            raise ValueError(f'InternalCrops needs an (H, W, 3) uint8 RGB image, got {got}')
        if int(scale) != scale or scale < 1:
            raise ValueError(f'InternalCrops: scale must be a positive integer, got {scale}')
        if crop_size < 2 * scale or crop_size % scale:
            raise ValueError(f'InternalCrops: crop_size {crop_size} must be a multiple of scale {scale} '
                             f'(at least 2 * scale)')
        if batch_size < 1 or num_iters < 1:
            raise ValueError(f'InternalCrops: batch_size and num_iters must be >= 1, '
                             f'got {batch_size} and {num_iters}')
        self.scale, self.crop_size, self.lr_size = int(scale), crop_size, crop_size // scale
        self.batch_size, self.num_iters = batch_size, num_iters

        h, w = image.shape[:2]
        shaved = image[SHAVE:h - SHAVE, SHAVE:w - SHAVE]
        sh, sw = shaved.shape[:2]
        if sh < crop_size or sw < crop_size:
            raise ValueError(f'InternalCrops: image of {h}x{w} px is {max(sh, 0)}x{max(sw, 0)} after '
                             f'shaving {SHAVE} px per border, smaller than the {crop_size}x{crop_size} crop')
        self.image = np.ascontiguousarray(shaved[:sh - sh % self.scale, :sw - sw % self.scale])

        n = num_iters * batch_size
        prob_g, prob_d = self._probability_maps()
        rng = np.random.RandomState(seed)
        self.hr_centres = rng.choice(prob_g.size, size=n, p=prob_g)
        self.lr_centres = rng.choice(prob_d.size, size=n, p=prob_d)
        self.hr_top_left = self._top_left(self.hr_centres, crop_size)
        self.lr_top_left = self._top_left(self.lr_centres, self.lr_size)
        flips = random.Random(seed)
        draws = np.array([flips.random() for _ in range(2 * n)]).reshape(n, 2) > 0.5
        self.hflip, self.transpose = draws[:, 0], draws[:, 1]

    def _probability_maps(self) -> tuple[np.ndarray, np.ndarray]:
        """Centre probabilities for the ``hr`` crops (map of the downscaled image) and the ``lr`` crops."""
        rows, cols = self.image.shape[:2]
        small = imresize(torch.from_numpy(self.image).permute(2, 0, 1)[None].double(),
                         size=(rows // self.scale, cols // self.scale))
        small_map = gradient_map(small[0].permute(1, 2, 0).numpy()).astype(np.float32)
        up = small_map.repeat(self.scale, 0).repeat(self.scale, 1).astype(np.float64)
        return probability_map(up, self.crop_size), probability_map(gradient_map(self.image), self.lr_size)

    def _top_left(self, centres: np.ndarray, size: int) -> np.ndarray:
        rows, cols = self.image.shape[:2]
        top = np.clip(centres // cols - size // 2, 0, rows - size)
        left = np.clip(centres % cols - size // 2, 0, cols - size)
        return np.stack([top - top % 2, left - left % 2], 1)

    def __len__(self) -> int:
        return self.num_iters

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        if not 0 <= i < self.num_iters:
            raise IndexError(f'InternalCrops: batch {i} out of range 0..{self.num_iters - 1}')
        sel = slice(i * self.batch_size, (i + 1) * self.batch_size)
        hr = self._crops(self.hr_top_left[sel], self.crop_size)
        lr = self._crops(self.lr_top_left[sel], self.lr_size)
        arrays = {'hr': hr, 'lr': lr}
        if 'hr_bicubic' in self.keys:
            arrays['hr_bicubic'] = _pil_bicubic(hr, self.lr_size)
        if 'lr_up' in self.keys:
            arrays['lr_up'] = _pil_bicubic(lr, self.crop_size)
        arrays = {key: arrays[key] for key in self.keys}
        hflip, transpose = torch.from_numpy(self.hflip[sel]), torch.from_numpy(self.transpose[sel])
        out = {}
        for key, x in arrays.items():
            x = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()
            x[hflip] = x[hflip].flip(-1)  # flip the width, then swap height and width
            x[transpose] = x[transpose].transpose(-1, -2)
            # float32 k / 255 equals the authors' float32(float64 k / 255) for all 256 levels
            out[key] = as_float(x)
        return out

    def _crops(self, top_left: np.ndarray, size: int) -> np.ndarray:
        """(B, size, size, 3) uint8 crops at the given top-left corners."""
        return np.stack([self.image[top:top + size, left:left + size] for top, left in top_left])

    def __iter__(self):
        for i in range(self.num_iters):
            yield self[i]
