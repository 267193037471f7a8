"""LPIPS as a registered metric: the package's linear layers, the backbone from a local torchvision file,
nothing downloaded, and the perceptual loss's clear error for a missing file."""

from __future__ import annotations

from pathlib import Path

import lpips
import numpy as np
import pytest
import torch
import torchvision

from blindsr.losses.perceptual import default_vgg_path
from blindsr.metrics.lpips_metric import build_lpips
from blindsr.options import load_options
from blindsr.registry import METRIC_REGISTRY

PACKAGE_WEIGHTS = Path(lpips.__file__).parent / 'weights' / 'v0.1'


@pytest.fixture(autouse=True)
def no_downloads(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError('LPIPS tried to download weights')
    monkeypatch.setattr(torch.hub, 'load_state_dict_from_url', refuse)
    monkeypatch.setattr(torch.hub, 'download_url_to_file', refuse)


@pytest.mark.parametrize('net, arch', [('alex', 'alexnet'), ('vgg', 'vgg16')])
def test_backbone_from_local_file_and_linear_layers_from_the_package(tmp_path, net, arch):
    state = getattr(torchvision.models, arch)(weights=None).state_dict()
    file = tmp_path / f'{arch}.pth'
    torch.save(state, file)
    model = build_lpips(net, str(file))
    loaded = {k.split('.', 1)[1]: v for k, v in model.net.state_dict().items()}  # slice1.0.weight -> 0.weight
    assert loaded and all(torch.equal(v, state[f'features.{k}']) for k, v in loaded.items())
    shipped = torch.load(PACKAGE_WEIGHTS / f'{net}.pth', map_location='cpu', weights_only=True)
    ours = model.state_dict()
    assert shipped and all(torch.equal(ours[k], v) for k, v in shipped.items())


def test_missing_backbone_file_stops_with_where_to_put_it(tmp_path):
    missing = tmp_path / 'nowhere' / 'alexnet-owt-7be5be79.pth'
    with pytest.raises(FileNotFoundError) as err:
        build_lpips('alex', str(missing))
    text = str(err.value)
    assert str(missing) in text and 'download.pytorch.org/models/alexnet-owt-7be5be79.pth' in text
    assert str(default_vgg_path('alexnet')) in text and 'backbone_weights' in text and 'LPIPS' in text


def test_registered_metric_scores_distortion_and_crops_the_border():
    import skimage.data

    fn = METRIC_REGISTRY.get('calculate_lpips')
    hr = skimage.data.astronaut()[100:196, 150:246, ::-1].copy()
    rng = np.random.default_rng(0)
    noisy = [np.clip(hr + rng.normal(0, s, hr.shape), 0, 255).astype(np.uint8) for s in (5, 40)]
    assert fn(hr, hr, crop_border=0, backbone_weights='random') == 0
    mild, strong = (fn(x, hr, crop_border=4, backbone_weights='random') for x in noisy)
    assert 0 < mild < strong
    framed = hr.copy()
    framed[:4] = 0  # a changed border inside crop_border does not count
    assert fn(framed, hr, crop_border=4, backbone_weights='random') == 0
    assert fn(framed, hr, crop_border=0, backbone_weights='random') > 0


def test_lpips_in_a_test_recipe_is_validated(tmp_path):
    recipe = tmp_path / 'r.yml'
    recipe.write_text('name: r\nmodel_type: BlindSRModel\nscale: 2\nnetwork_g: {type: SRFBN_S, scale: 2}\n'
                      'path: {pretrain_network_g: w.pth}\n'
                      'val: {metrics: {lpips: {type: calculate_lpips, net: vgg, backbone_weights: random}}}\n')
    opt = load_options(recipe, is_train=False)
    assert opt['val']['metrics']['lpips'] == {'type': 'calculate_lpips', 'crop_border': 2, 'net': 'vgg',
                                              'backbone_weights': 'random'}
    with pytest.raises(ValueError, match='lpips'):
        load_options(recipe, ['val.metrics.lpips.nets=vgg'], is_train=False)


def test_metric_feeds_lpips_rgb_images():
    """BasicSR hands metrics BGR images; LPIPS (its per-channel scaling layer) is fed RGB, as the package's
    own [0, 1] input path would be."""
    import skimage.data

    from blindsr.metrics import lpips_metric

    hr = skimage.data.astronaut()[200:264, 200:264]  # RGB
    other = skimage.data.coffee()[100:164, 100:164]
    value = METRIC_REGISTRY.get('calculate_lpips')(hr[..., ::-1], other[..., ::-1], crop_border=0,
                                                   backbone_weights='random')
    net = lpips_metric._NETS[('alex', 'random')]

    def unit(img):
        return torch.from_numpy(img.copy()).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        assert value == pytest.approx(float(net(unit(hr), unit(other), normalize=True)), rel=1e-5)
        assert value != pytest.approx(float(net(unit(hr[..., ::-1]), unit(other[..., ::-1]), normalize=True)),
                                      rel=1e-5)
