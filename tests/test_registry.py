"""Registries: every blindsr arch (and a few BasicSR ones by name) builds tiny and trains one step."""

from __future__ import annotations

import pytest
import torch

from blindsr.registry import (
    ARCH_REGISTRY,
    DATASET_REGISTRY,
    DEGRADATION_REGISTRY,
    MODEL_REGISTRY,
    RegistryError,
    build,
    lookup,
)

# Tiny constructor arguments for every arch blindsr registers, per scale. A new arch without an
# entry here fails test_every_blindsr_arch_has_a_tiny_config.
TINY = {
    'BSRNet': {s: {'scale': s, 'num_feat': 8, 'num_block': 1, 'num_grow_ch': 4} for s in (2, 4)},
    'SRFBN': {s: {'scale': s, 'num_features': 8, 'num_steps': 2, 'num_groups': 2,
                  'act_type': {2: 'prelu', 3: 'relu', 4: 'lrelu'}[s]} for s in (2, 3, 4)},
    'SRFBN_S': {s: {'scale': s, 'num_features': 8} for s in (2, 3, 4)},
    'DASR': {s: {'scale': s, 'num_feat': 8, 'num_group': 1, 'num_block': 1, 'enc_feat': 8} for s in (2, 3, 4)},
    'KDSR': {s: {'scale': s, 'n_feats': 8, 'n_blocks': 2, 'n_encoder_res': 1} for s in (2, 3, 4)},
    'KDSRTeacher': {s: {'scale': s, 'n_feats': 8, 'n_blocks': 2, 'n_encoder_res': 1} for s in (2, 3, 4)},
}

# DARSR's per-image nets, not SR networks: (tiny kwargs, input size, output shape for a batch of 2)
PER_IMAGE = {
    'LinearDownsampler': ({'scale': 2, 'features': 8}, 32, (2, 3, 10, 10)),
    'KernelGANDiscriminator': ({'features': 8}, 16, (2, 1, 10, 10)),
    'DSEM': ({'features': (8, 16, 32)}, 16, (2, )),
    'DARM': ({'filters': 'generated', 'features': 16}, 16, (2, 3, 16, 16)),
}

# BasicSR archs are usable by name through the same registry.
BASICSR_TINY = {
    'EDSR': {'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 8, 'num_block': 1, 'upscale': 2},
    'RCAN': {'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 16, 'num_group': 1, 'num_block': 1,
             'squeeze_factor': 4, 'upscale': 2},
    'RRDBNet': {'num_in_ch': 3, 'num_out_ch': 3, 'scale': 4, 'num_feat': 8, 'num_block': 1, 'num_grow_ch': 4},
    'SwinIR': {'upscale': 2, 'img_size': 16, 'window_size': 4, 'embed_dim': 12, 'depths': [1], 'num_heads': [2],
               'mlp_ratio': 2, 'upsampler': 'pixelshuffle'},
}


def blindsr_archs() -> list[str]:
    return sorted(name for name, obj in ARCH_REGISTRY if obj.__module__.startswith('blindsr.'))


def cases():
    for name, per_scale in TINY.items():
        for scale, kwargs in per_scale.items():
            yield pytest.param(name, scale, kwargs, id=f'{name}-x{scale}')
    for name, kwargs in BASICSR_TINY.items():
        scale = kwargs.get('upscale', kwargs.get('scale'))
        yield pytest.param(name, scale, kwargs, id=f'basicsr-{name}-x{scale}')


def test_every_blindsr_arch_has_a_tiny_config():
    assert blindsr_archs(), 'blindsr registers no archs?'
    known = set(TINY) | set(PER_IMAGE)
    assert set(blindsr_archs()) <= known, f'add tiny configs for {set(blindsr_archs()) - known}'


@pytest.mark.parametrize('name', sorted(PER_IMAGE))
def test_per_image_arch_forward_backward(name):
    kwargs, size, shape = PER_IMAGE[name]
    net = build(ARCH_REGISTRY, {'type': name, **kwargs})
    out = net(torch.rand(2, 3, size, size))
    assert out.shape == shape
    out.abs().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())


@pytest.mark.parametrize('name, scale, kwargs', list(cases()))
def test_arch_forward_backward(name, scale, kwargs):
    net = build(ARCH_REGISTRY, {'type': name, **kwargs})
    x = torch.rand(2, 3, 16, 16)
    if name == 'DASR':  # the encoder's MLP head only feeds the contrastive loss
        out, _, embedding = net(x, embedding=True)
        loss = out.abs().mean() + embedding.abs().mean()
    elif name == 'KDSRTeacher':  # its estimator also sees the HR image
        out = net(x, torch.rand(2, 3, 16 * scale, 16 * scale))
        loss = out.abs().mean()
    else:
        out = net(x)
        loss = out.abs().mean()
    assert out.shape == (2, 3, 16 * scale, 16 * scale)
    loss.backward()
    grads = [p.grad for p in net.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize('registry, name', [(ARCH_REGISTRY, 'BSRNett'), (MODEL_REGISTRY, 'NoModel'),
                                            (DATASET_REGISTRY, 'NoData'), (DEGRADATION_REGISTRY, 'nope')])
def test_unknown_name_names_registry_and_lists_choices(registry, name):
    with pytest.raises(RegistryError) as info:
        lookup(registry, name)
    text = str(info.value)
    assert f"No '{name}' in the {registry._name} registry" in text
    assert all(known in text for known in registry.keys())


def test_basicsr_suffixed_names_resolve_by_plain_name(capsys):
    assert lookup(ARCH_REGISTRY, 'UNetDiscriminatorSN') is ARCH_REGISTRY.get('UNetDiscriminatorSN_basicsr')
    assert capsys.readouterr().out == ''  # no BasicSR console guess


def test_build_requires_type():
    with pytest.raises(RegistryError, match="need a 'type' key"):
        build(ARCH_REGISTRY, {'scale': 2})
