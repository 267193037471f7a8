"""Positive pairs for a contrastive degradation encoder (DASR, CDSR): which key patch counts as the
positive of each query patch.

A training batch holds two HR patches per image, ``gt`` (B, 2, 3, H, W); patch 0 is the query, patch 1
the key. ``positives`` chooses what the key shares with its query (the ablation of CDSR, Zhou et al., ACM MM
2022, on what the embedding learns):

- ``content_degradation`` (the default, DASR's and CDSR's training): the same image, the same
  degradation (the pipeline's paired mode);
- ``degradation``: another image (the next one in the batch) with the query's degradation;
- ``content``: the same image with another image's degradation (the next one's).

:func:`contrastive_pairs` degrades the batch once, in the pipeline's paired mode, with the key patches
rearranged before (``degradation``) or after (``content``) degradation, and records in the returned
parameters which image (``key_image``) and whose degradation (``key_degradation``: an index into the
batch's per-image parameters) each key has.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ['POSITIVES', 'contrastive_pairs']

POSITIVES = ('content_degradation', 'degradation', 'content')


def contrastive_pairs(degrade: Callable[[Tensor], tuple[Tensor, dict]], gt: Tensor,
                      positives: str = 'content_degradation') -> tuple[Tensor, Tensor, dict]:
    """``(lq, gt, params)`` for an HR batch ``gt`` (B, 2, 3, H, W) degraded by ``degrade`` (a
    :class:`~blindsr.degradations.degrader.Degrader` or pipeline in paired mode: both patches of an item
    share its degradation). ``lq[:, 1]`` is the key of ``lq[:, 0]`` as ``positives`` says, ``gt[:, 1]`` its
    HR patch; ``params`` holds the per-item degradation parameters (of the query, item ``i``) plus
    ``key_image`` and ``key_degradation`` (B,) — the item whose image and whose parameters the key has."""
    if positives not in POSITIVES:
        raise ValueError(f"positives must be one of {', '.join(POSITIVES)}, got {positives!r}")
    if gt.ndim != 5 or gt.shape[1] != 2:
        raise ValueError(f'contrastive pairs need two patches per image (B, 2, 3, H, W), got {tuple(gt.shape)}')
    b = gt.shape[0]
    if b < 2 and positives != 'content_degradation':
        raise ValueError(f"positives '{positives}' pairs an image with another one: it needs at least 2 images "
                         'per batch (per rank), got 1')
    items = torch.arange(b, device=gt.device)
    following, preceding = items.roll(-1), items.roll(1)
    key_image, key_degradation = items, items
    if positives == 'degradation':  # slot i: item i's query, the next item's key patch; one degradation
        gt = torch.stack([gt[:, 0], gt[following, 1]], 1)
        key_image = following
    elif positives == 'content':  # slot j degrades the preceding item's key patch with j's degradation
        gt = torch.stack([gt[:, 0], gt[preceding, 1]], 1)
        key_degradation = following
    lq, params = degrade(gt)
    gt = params.pop('gt', gt)
    if positives == 'content':  # item i's key: slot i + 1's, i.e. image i with the next item's degradation
        lq = torch.stack([lq[:, 0], lq[following, 1]], 1)
        gt = torch.stack([gt[:, 0], gt[following, 1]], 1)
    return lq, gt, {**params, 'key_image': key_image, 'key_degradation': key_degradation}
