"""VGG perceptual loss with weights from a local file, never downloaded.

``VGGPerceptualLoss`` compares VGG features of the SR output and the target at named layers
(BasicSR's names: ``conv5_4`` is the 4th conv of block 5, before its ReLU) and sums the weighted
per-layer L1 (or L2) distances. BSRGAN/ESRGAN/KDSR-GAN use VGG19 at conv1_2, conv2_2, conv3_4,
conv4_4, conv5_4 with weights 0.1, 0.1, 1, 1, 1 on ImageNet-normalised input (KAIR's feature indices
2, 7, 16, 25, 34 are these layers).

BasicSR's ``PerceptualLoss`` is not reused: without a file at one fixed relative path it asks
torchvision to download ImageNet weights, which fails here with a network error. This one reads
torchvision's own file (``vgg19-dcbb9e9d.pth``, a state dict with ``features.N.*`` keys) from
``vgg_weights`` or torch's hub cache and, when it is missing, stops with a message saying where to
put it. ``vgg_weights: random`` builds random features on purpose (tests only).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from blindsr.registry import LOSS_REGISTRY

__all__ = ['VGGPerceptualLoss', 'default_vgg_path', 'load_torchvision_features', 'vgg_layer_names']

# torchvision's ImageNet files (the names its model zoo uses); AlexNet is LPIPS's default backbone
VGG_FILES = {'vgg16': 'vgg16-397923af.pth', 'vgg19': 'vgg19-dcbb9e9d.pth'}
TORCHVISION_FILES = {**VGG_FILES, 'alexnet': 'alexnet-owt-7be5be79.pth'}
VGG_URL = 'https://download.pytorch.org/models/{}'
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CRITERIA = {'l1': F.l1_loss, 'l2': F.mse_loss}


def vgg_layer_names(features: nn.Sequential) -> list[str]:
    """BasicSR-style names of the modules of a torchvision VGG ``features`` stack, in order."""
    names, block, index = [], 1, 0
    for module in features:
        if isinstance(module, nn.Conv2d):
            index += 1
            names.append(f'conv{block}_{index}')
        elif isinstance(module, nn.ReLU):
            names.append(f'relu{block}_{index}')
        else:
            names.append(f'pool{block}')
            block, index = block + 1, 0
    return names


def default_vgg_path(vgg_type: str) -> Path:
    """Where torchvision would have cached the file: ``<torch hub dir>/checkpoints/<file>``
    (``vgg_type``: any of :data:`TORCHVISION_FILES`)."""
    return Path(torch.hub.get_dir()) / 'checkpoints' / TORCHVISION_FILES[vgg_type]


def load_torchvision_features(features: nn.Module, arch: str, weights: str | None, user: str, option: str) -> None:
    """Fill ``features`` (modules named as in torchvision's ``features`` stack of ``arch``) from torchvision's
    ImageNet file at ``weights`` (default :func:`default_vgg_path`). A missing file stops with where to get
    it and put it; ``user`` names what needs it, ``option`` where its path is given."""
    path = Path(weights).expanduser() if weights else default_vgg_path(arch)
    if not path.is_file():
        raise FileNotFoundError(
            f'{arch.upper()} weights for {user} not found at {path}. Nothing is downloaded at '
            f'run time: fetch {VGG_URL.format(TORCHVISION_FILES[arch])} (torchvision\'s ImageNet {arch}) and put '
            f'it at {default_vgg_path(arch)}, or give its path as {option}.')
    state = torch.load(path, map_location='cpu', weights_only=True)
    state = state.get('state_dict', state)
    wanted = {k: state.get(f'features.{k}') for k in features.state_dict()}
    missing = sorted(f'features.{k}' for k, v in wanted.items() if v is None)
    if missing:
        raise ValueError(f'{path} is not a torchvision {arch} state dict: no {", ".join(missing[:4])}.')
    features.load_state_dict(wanted)


@LOSS_REGISTRY.register()
class VGGPerceptualLoss(nn.Module):
    """Weighted distance between VGG features of ``sr`` and ``gt`` (both RGB in [0, 1]).

    Args:
        layer_weights: ``{layer name: weight}``, e.g. ``{conv5_4: 1.0}`` (see :func:`vgg_layer_names`).
        vgg_type: ``vgg19`` (default) or ``vgg16``.
        vgg_weights: path of torchvision's ImageNet file; default: torch's hub cache
            (:func:`default_vgg_path`); ``random``: random features (tests only).
        use_input_norm: normalise the input with ImageNet mean/std (as the VGG was trained).
        criterion: ``l1`` or ``l2`` per layer.
        loss_weight: weight of the whole term (BasicSR calls it ``perceptual_weight``).
    """

    def __init__(self, layer_weights: dict[str, float], vgg_type: str = 'vgg19', vgg_weights: str | None = None,
                 use_input_norm: bool = True, criterion: str = 'l1', loss_weight: float = 1.0) -> None:
        super().__init__()
        if vgg_type not in VGG_FILES:
            raise ValueError(f'vgg_type must be one of {sorted(VGG_FILES)}, got {vgg_type!r}.')
        if criterion not in CRITERIA:
            raise ValueError(f'criterion must be one of {sorted(CRITERIA)}, got {criterion!r}.')
        features = getattr(torchvision.models, vgg_type)(weights=None).features
        names = vgg_layer_names(features)
        unknown = sorted(set(layer_weights) - set(names))
        if unknown:
            raise ValueError(f'Unknown {vgg_type} layers {unknown}; layers are {", ".join(names)}.')
        features = features[:max(names.index(n) for n in layer_weights) + 1]
        for module in features:
            if isinstance(module, nn.ReLU):
                module.inplace = False  # an in-place ReLU would overwrite the tapped pre-ReLU features
        if vgg_weights == 'random':
            logging.getLogger('blindsr').warning('VGGPerceptualLoss with random VGG weights (vgg_weights: random): '
                                                 'for tests only, not a perceptual loss.')
        else:
            load_torchvision_features(features, vgg_type, vgg_weights, 'the perceptual loss',
                                      'vgg_weights in this loss term (train.losses)')
        self.features = features.eval().requires_grad_(False)
        self.taps = {names.index(n): (n, float(w)) for n, w in layer_weights.items()}
        self.use_input_norm = use_input_norm
        self.register_buffer('mean', torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer('std', torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.criterion = CRITERIA[criterion]
        self.loss_weight = loss_weight

    def train(self, mode: bool = True) -> VGGPerceptualLoss:
        return super().train(False)  # the VGG stays in eval mode

    def extract(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Features at the weighted layers."""
        if self.use_input_norm:
            x = (x - self.mean) / self.std
        out = {}
        for i, module in enumerate(self.features):
            x = module(x)
            if i in self.taps:
                out[self.taps[i][0]] = x
        return out

    def forward(self, sr: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
        sr_feats = self.extract(sr)
        with torch.no_grad():
            gt_feats = self.extract(gt.detach())
        loss = sum(w * self.criterion(sr_feats[n], gt_feats[n]) for n, w in self.taps.values())
        return loss * self.loss_weight
