"""Tiled inference: upscale an image of any size with memory bounded by the tile, not the image.

- :func:`tiled` runs any ``fn(lq_tile) -> sr_tile`` over overlapping tiles and writes each tile's
  kept part into one output buffer preallocated on the output's device (tiles are not held).
- :func:`upscale` is method-aware. A net with a global degradation estimate (it has
  ``embed(lq) -> embedding`` and ``restore(lq, embedding) -> sr``: DASR, the KDSR student) is
  embedded once per image and every tile is restored with that one embedding, so all tiles share
  the estimate the untiled net would use; any other net is a feed-forward net and tiles plainly.
  A per-image adapter (e.g. DARSR) adapts on the whole image itself, then calls :func:`tiled` with
  its SR step as ``fn``.

Blending is crop-the-margins, not a smooth window: tiles overlap, and each output pixel is taken
from exactly one tile, the one whose border is farthest from it (the seam between two tiles is in
the middle of their shared strip), at least ``overlap`` LR pixels from every tile border that is
not an image border. So a pixel whose receptive field fits within ``overlap`` is exactly the
untiled value (not a weighted mean of two predictions, which blurs and only equals it up to
rounding), tiles at an image border see that border as the untiled net does, and no weight buffer
is needed. Windows keep the full tile size at the image borders and are spread evenly over the image.

Nets that need H and W to be multiples of ``m`` declare it as an attribute ``size_multiple = m``;
each tile (and the untiled image) is then padded by reflection at the bottom and right to a
multiple, and the output cropped back.

The embedding of an image larger than :data:`EMBED_SIZE` on a side is computed on its centre crop of
at most ``EMBED_SIZE x EMBED_SIZE`` LR pixels at full resolution: a downscaled view would change the
degradation the encoder sees (downscaling by 2 halves a blur's width in pixels and adds its own
anti-aliasing), while a crop keeps it — and these methods assume one degradation for the whole
image. 512 px bounds the encoder's memory (KDSR's runs 4 x n_feats channels at full resolution) and
is as large as most LR benchmark images (Set5 to Urban100) the authors' encoders are evaluated on,
and many times their training patches. A centre crop misjudges an image whose degradation varies
across it or whose centre is flat; so does any single global estimate.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import pairwise
from typing import Any, Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ['EMBED_SIZE', 'GlobalEstimateSR', 'tiled', 'upscale']

EMBED_SIZE = 512

Progress = Callable[[int, int], None]


@runtime_checkable
class GlobalEstimateSR(Protocol):
    """A net with a global degradation estimate: ``forward(lq) == restore(lq, embed(lq))``."""

    def embed(self, lq: Tensor) -> Any: ...

    def restore(self, lq: Tensor, embedding: Any) -> Tensor: ...


def _spans(n: int, tile: int | None, overlap: int) -> list[tuple[int, int, int, int]]:
    """Windows along one axis of length ``n``: ``(start, end, keep_start, keep_end)``; the kept parts
    partition ``0..n`` and each is at least ``overlap`` from its window's ends that are not 0 or n."""
    if tile is None or n <= tile:
        return [(0, n, 0, n)]
    step = tile - 2 * overlap
    count = 1 + -(-(n - tile) // step)
    starts = [i * (n - tile) // (count - 1) for i in range(count)]  # evenly spread, consecutive <= step apart
    bounds = [0, *((prev + start + tile) // 2 for prev, start in pairwise(starts)), n]
    return [(a, a + tile, bounds[i], bounds[i + 1]) for i, a in enumerate(starts)]


def tiled(fn: Callable[[Tensor], Tensor], lq: Tensor, scale: int, *, tile: int | None, overlap: int,
          progress: Progress | None = None) -> Tensor:
    """``fn`` applied to ``lq`` (B, C, H, W) tile by tile; returns (B, C', scale H, scale W).

    ``tile``: the window size in LR pixels (None: the whole image in one call); ``overlap``: the LR
    pixels of context each tile has beyond its kept part on every side facing another tile (adjacent
    windows share at least ``2 * overlap``), so ``tile > 2 * overlap``. ``fn`` must return
    ``scale`` times its input's size. ``progress(done, total)`` is called after each tile. Runs
    under ``torch.no_grad``; the output lives on ``fn``'s output device, allocated once.
    """
    if lq.dim() != 4:
        raise ValueError(f'tiled: lq must be (B, C, H, W), got shape {tuple(lq.shape)}')
    if overlap < 0:
        raise ValueError(f'tiled: overlap must be >= 0, got {overlap}')
    if tile is not None and tile <= 2 * overlap:
        raise ValueError(f'tiled: tile ({tile}) must exceed 2 * overlap ({2 * overlap})')
    b, _, h, w = lq.shape
    rows, cols = _spans(h, tile, overlap), _spans(w, tile, overlap)
    total, done, out = len(rows) * len(cols), 0, None
    s = scale
    with torch.no_grad():
        for y0, y1, ky0, ky1 in rows:
            for x0, x1, kx0, kx1 in cols:
                sr = fn(lq[:, :, y0:y1, x0:x1])
                if sr.dim() != 4 or sr.shape[0] != b or sr.shape[-2:] != (s * (y1 - y0), s * (x1 - x0)):
                    raise ValueError(f'tiled: a {y1 - y0}x{x1 - x0} tile gave an output of shape {tuple(sr.shape)}, '
                                     f'expected {s * (y1 - y0)}x{s * (x1 - x0)} (scale {s})')
                if out is None:
                    out = sr.new_empty(b, sr.shape[1], s * h, s * w)
                out[:, :, s * ky0:s * ky1, s * kx0:s * kx1] = \
                    sr[:, :, s * (ky0 - y0):s * (ky1 - y0), s * (kx0 - x0):s * (kx1 - x0)]
                del sr
                done += 1
                if progress is not None:
                    progress(done, total)
    assert out is not None
    return out


def _pad_to(x: Tensor, multiple: int) -> Tensor:
    """``x`` padded at the bottom and right to multiples of ``multiple`` (reflection; replication where
    the image is too small to reflect)."""
    ph, pw = -x.shape[-2] % multiple, -x.shape[-1] % multiple
    if not ph and not pw:
        return x
    mode = 'reflect' if ph < x.shape[-2] and pw < x.shape[-1] else 'replicate'
    return F.pad(x, (0, pw, 0, ph), mode=mode)


def _padded(fn: Callable[[Tensor], Tensor], multiple: int, scale: int) -> Callable[[Tensor], Tensor]:
    """``fn`` for any input size: padded to ``multiple``, output cropped back to ``scale`` times the input."""
    if multiple == 1:
        return fn

    def run(x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        return fn(_pad_to(x, multiple))[:, :, :scale * h, :scale * w]
    return run


def _embed_view(lq: Tensor) -> Tensor:
    """The centre crop of ``lq`` at most :data:`EMBED_SIZE` on a side (``lq`` itself if it fits)."""
    h, w = lq.shape[-2:]
    ch, cw = min(h, EMBED_SIZE), min(w, EMBED_SIZE)
    top, left = (h - ch) // 2, (w - cw) // 2
    return lq[:, :, top:top + ch, left:left + cw]


def _restorer(net: GlobalEstimateSR, embedding: Any) -> Callable[[Tensor], Tensor]:
    def run(x: Tensor) -> Tensor:
        return net.restore(x, embedding)
    return run


def upscale(net: nn.Module, lq: Tensor, scale: int, *, tile: int | None = None, overlap: int = 32,
            progress: Progress | None = None) -> Tensor:
    """``net``'s SR image of ``lq`` (1, C, H, W), float in [0, 1] on the net's device -> (1, C, sH, sW).

    ``tile=None`` runs the net on the whole image (its own forward). With a tile size, a net with a
    global degradation estimate (:class:`GlobalEstimateSR`) is embedded once on the image (its centre
    crop of :data:`EMBED_SIZE` if larger) and each tile restored with it; other nets tile plainly.
    ``overlap`` and ``progress`` as in :func:`tiled`. The caller puts the net in eval mode.
    """
    multiple = getattr(net, 'size_multiple', 1)
    if not isinstance(multiple, int) or multiple < 1:
        raise ValueError(f'upscale: {type(net).__name__}.size_multiple must be a positive int, got {multiple!r}')
    with torch.no_grad():
        fn = net
        if tile is not None and isinstance(net, GlobalEstimateSR):
            fn = _restorer(net, net.embed(_pad_to(_embed_view(lq), multiple)))
        return tiled(_padded(fn, multiple, scale), lq, scale, tile=tile, overlap=overlap, progress=progress)
