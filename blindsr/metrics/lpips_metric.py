"""LPIPS (Zhang et al. 2018) as a registered metric, ``calculate_lpips``, from local weights only.

The ``lpips`` package ships its calibrated linear layers (``lpips/weights/v0.1/{alex,vgg}.pth``); its
backbone would be torchvision's ImageNet AlexNet/VGG16, which torchvision downloads. Here the backbone
is built with random weights (``pnet_rand=True``: nothing is fetched) and then filled from torchvision's
own file, read from ``backbone_weights`` or torch's hub cache; a missing file stops with the message the
VGG perceptual loss gives (where to get it, where to put it). ``backbone_weights: random`` keeps the
random backbone on purpose (tests only).

Called like BasicSR's metrics: two 8-bit HWC BGR images (the SR image and the HR one) and
``crop_border``; lower is better. Built nets are kept per (net, weights file) for the process.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
import torch
from torch import nn

from blindsr.losses.perceptual import load_torchvision_features
from blindsr.registry import METRIC_REGISTRY

__all__ = ['build_lpips', 'calculate_lpips']

# LPIPS's net names -> torchvision's
BACKBONES = {'alex': 'alexnet', 'vgg': 'vgg16'}
_NETS: dict[tuple[str, str | None], nn.Module] = {}


def build_lpips(net: str = 'alex', backbone_weights: str | None = None) -> nn.Module:
    """The ``lpips.LPIPS`` net with the package's linear layers and the backbone from a local file."""
    import lpips

    if net not in BACKBONES:
        raise ValueError(f"LPIPS net must be one of {sorted(BACKBONES)}, got {net!r}.")
    with warnings.catch_warnings():  # lpips passes torchvision's deprecated pretrained=False
        warnings.simplefilter('ignore', UserWarning)
        model = lpips.LPIPS(pretrained=True, net=net, pnet_rand=True, verbose=False)
    if backbone_weights == 'random':
        logging.getLogger('blindsr').warning('LPIPS with a random backbone (backbone_weights: random): for tests '
                                             'only, not LPIPS.')
    else:
        features = nn.Module()  # the slices' modules under torchvision's feature indices (shared, not copied)
        for part in model.net.children():
            for index, module in part.named_children():
                features.add_module(index, module)
        load_torchvision_features(features, BACKBONES[net], backbone_weights, 'the LPIPS metric',
                                  'backbone_weights in this metric (val.metrics)')
    return model.eval().requires_grad_(False)


def _tensor(img: np.ndarray) -> torch.Tensor:
    """8-bit HWC BGR -> (1, 3, H, W) RGB in [-1, 1] (LPIPS's input range)."""
    rgb = np.ascontiguousarray(img[..., ::-1], dtype=np.float32) / 255.0
    return torch.from_numpy(rgb).permute(2, 0, 1)[None] * 2 - 1


@METRIC_REGISTRY.register()
def calculate_lpips(img: np.ndarray, img2: np.ndarray, crop_border: int, net: str = 'alex',
                    backbone_weights: str | None = None) -> float:
    """LPIPS distance between ``img`` and ``img2`` (8-bit HWC BGR), ``crop_border`` pixels cut off each side.

    ``net``: ``alex`` (LPIPS's default) or ``vgg``; ``backbone_weights``: torchvision's ImageNet file of
    that backbone (default: torch's hub cache; ``random``: tests only). Computed on the CPU.
    """
    if img.shape != img2.shape:
        raise ValueError(f'LPIPS needs images of one size, got {img.shape} and {img2.shape}.')
    if crop_border:
        img, img2 = (x[crop_border:-crop_border, crop_border:-crop_border] for x in (img, img2))
    key = (net, backbone_weights)
    if key not in _NETS:
        _NETS[key] = build_lpips(net, backbone_weights)
    with torch.inference_mode():
        return float(_NETS[key](_tensor(img), _tensor(img2)).item())
