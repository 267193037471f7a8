"""Benchmark test-set protocols: fixed, versioned recipes that turn HR images into LR test images.

Evaluation numbers are only comparable when test sets are made exactly as the authors made them, so
each protocol is a named function here, and ``scripts/make_testsets.py`` writes its output as PNGs
plus a JSON of the exact parameters per image. A protocol maps one HR image (1, 3, H, W) in [0, 1],
already mod-cropped to the scale, to a list of ``(setting, lr, params)``: one LR image per setting
(e.g. per kernel width). Same inputs and seed give byte-identical PNGs.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from blindsr.degradations.bicubic import BicubicDegradation

PROTOCOL_VERSION = 1

Setting = tuple[str, torch.Tensor, dict]
Protocol = Callable[[torch.Tensor, int, torch.Generator], list[Setting]]


def bicubic(hr: torch.Tensor, scale: int, generator: torch.Generator) -> list[Setting]:
    """'BI': MATLAB ``imresize(HR, 1/s, 'bicubic')`` with antialiasing, quantised to 8 bits."""
    lr, _ = BicubicDegradation(scale)(hr, generator)
    return [('bicubic', lr, {'downsampler': 'matlab_bicubic', 'antialias': True, 'quantize': 8})]


PROTOCOLS: dict[str, Protocol] = {
    'bicubic': bicubic,
}


def get_protocol(name: str) -> Protocol:
    if name not in PROTOCOLS:
        raise ValueError(f"Unknown test-set protocol '{name}'; known: {', '.join(sorted(PROTOCOLS))}.")
    return PROTOCOLS[name]
