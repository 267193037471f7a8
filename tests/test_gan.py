"""GAN training (BlindSRGANModel), the U-Net discriminator, the VGG perceptual loss and train.losses."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import skimage.data
import torch
import torch.nn.functional as F
import torchvision
import yaml

from blindsr import train as train_entry
from blindsr.checkpoint import latest_state, read_checkpoint
from blindsr.losses import LossTerms
from blindsr.losses.perceptual import VGGPerceptualLoss, default_vgg_path, vgg_layer_names
from blindsr.models.gan_model import BlindSRGANModel
from blindsr.models.sr_model import BlindSRModel
from blindsr.options import OptionsError, load_options
from blindsr.registry import ARCH_REGISTRY, build
from conftest import seeded_weights
from test_train import tiny_options, train_two_ranks

GAN_TRAIN = {
    'losses': [{'type': 'L1Loss', 'loss_weight': 1.0},
               {'type': 'VGGPerceptualLoss', 'layer_weights': {'conv1_2': 0.1, 'conv2_2': 1.0},
                'vgg_weights': 'random', 'loss_weight': 1.0},
               {'type': 'GANLoss', 'gan_type': 'lsgan', 'loss_weight': 0.1}],
    'optim_d': {'type': 'Adam', 'lr': 1e-3},
}
TINY_D = {'type': 'UNetDiscriminatorSN', 'num_in_ch': 3, 'num_feat': 4}


def gan_options(tmp_path: Path, photo_dirs: dict, name: str = 'gan', **train) -> Path:
    path = tiny_options(tmp_path, photo_dirs, name, **{**GAN_TRAIN, **train})
    opt = yaml.safe_load(path.read_text())
    opt.update(model_type='BlindSRGANModel', network_d=TINY_D)
    path.write_text(yaml.safe_dump(opt))
    return path


def gan_model(tmp_path: Path, photo_dirs: dict, **train) -> BlindSRGANModel:
    opt = load_options(gan_options(tmp_path, photo_dirs, **train), is_train=True)
    return BlindSRGANModel(opt, torch.device('cpu'))


def hr_batch(size: int = 64) -> dict:
    img = torch.from_numpy(skimage.data.astronaut()[100:100 + size, 180:180 + size].astype(np.float32) / 255)
    return {'gt': img.permute(2, 0, 1)[None].repeat(2, 1, 1, 1)}


# ---------------------------------------------------------------------------------------------------- the GAN step
def test_gan_step_trains_generator_and_discriminator(tmp_path, photo_dirs):
    model = gan_model(tmp_path, photo_dirs)
    g0 = [p.detach().clone() for p in model.net_g.parameters()]
    d0 = [p.detach().clone() for p in model.net_d.parameters()]
    model.feed_data(hr_batch())
    logs = model.optimize_parameters(1)
    assert set(logs) == {'l_pix', 'l_percep', 'l_g_gan', 'l_d_real', 'l_d_fake', 'out_d_real', 'out_d_fake'}
    assert all(torch.isfinite(v) for v in logs.values())
    assert all(not torch.equal(a, b) for a, b in zip(g0, model.net_g.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(d0, model.net_d.parameters()))
    ema = model.ema['net_g']
    assert any(not torch.equal(a, b) for a, b in zip(ema.parameters(), model.net_g.parameters()))


def test_vgg_style_discriminator_trains_too(tmp_path, photo_dirs):
    opt = load_options(gan_options(tmp_path, photo_dirs), ['network_d={type: VGGStyleDiscriminator, num_in_ch: 3, '
                                                           'num_feat: 4, input_size: 128}'])
    model = BlindSRGANModel(opt, torch.device('cpu'))
    d0 = [p.detach().clone() for p in model.net_d.parameters()]
    model.feed_data(hr_batch(128))
    logs = model.optimize_parameters(1)
    assert all(torch.isfinite(v) for v in logs.values())
    assert any(not torch.equal(a, b) for a, b in zip(d0, model.net_d.parameters()))


def test_discriminator_learns_to_separate_real_from_fake(tmp_path, photo_dirs):
    """With G held back (net_d_init_iters), D's outputs for HR and SR move apart and its loss falls."""
    model = gan_model(tmp_path, photo_dirs, net_d_init_iters=100)
    g0 = [p.detach().clone() for p in model.net_g.parameters()]
    model.feed_data(hr_batch())
    first = model.optimize_parameters(1)
    for it in range(2, 30):
        last = model.optimize_parameters(it)
    assert 'l_pix' not in last  # G did not step
    assert all(torch.equal(a, b) for a, b in zip(g0, model.net_g.parameters()))
    assert last['out_d_real'] - last['out_d_fake'] > 0.5
    assert last['l_d_real'] + last['l_d_fake'] < 0.5 * (first['l_d_real'] + first['l_d_fake'])


def test_net_d_iters_updates_generator_every_other_iteration(tmp_path, photo_dirs):
    model = gan_model(tmp_path, photo_dirs, net_d_iters=2)
    model.feed_data(hr_batch())
    assert 'l_g_gan' not in model.optimize_parameters(1)
    assert 'l_g_gan' in model.optimize_parameters(2)


def test_gan_run_resumes_exactly_with_discriminator_and_ema(tmp_path, photo_dirs):
    """Stopped at iteration 3 and resumed, G, D, G's EMA and both optimizers end as an unbroken run's."""
    whole = train_entry.main(['-opt', str(gan_options(tmp_path, photo_dirs, 'whole'))])
    opt_path = gan_options(tmp_path, photo_dirs, 'parts')
    train_entry.main(['-opt', str(opt_path), '--set', 'train.total_iter=3'])
    parts = train_entry.main(['-opt', str(opt_path), '--auto_resume'])
    a = read_checkpoint(latest_state(whole / 'training_states'))
    b = read_checkpoint(latest_state(parts / 'training_states'))
    assert set(a['networks']) == {'net_g', 'net_d', 'net_g_ema'} and set(a['optimizers']) == {'net_g', 'net_d'}
    for net in a['networks']:
        for key, value in a['networks'][net].items():
            assert torch.equal(value, b['networks'][net][key]), (net, key)
    assert any(not torch.equal(v, a['networks']['net_g_ema'][k]) for k, v in a['networks']['net_g'].items())
    log = sorted(parts.glob('train_parts_*.log'))[-1].read_text()
    assert 'l_d_real' in log and 'out_d_fake' in log


def test_gan_model_needs_a_discriminator_and_an_adversarial_term(tmp_path, photo_dirs):
    path = gan_options(tmp_path, photo_dirs)
    with pytest.raises(ValueError, match='adversarial term'):
        BlindSRGANModel(load_options(path, ['train.losses=[{type: L1Loss}]']), torch.device('cpu'))
    opt = load_options(path)
    del opt['network_d']
    with pytest.raises(ValueError, match='needs a network_d section'):
        BlindSRGANModel(opt, torch.device('cpu'))


def test_ddp_gan_ranks_stay_identical(tmp_path, photo_dirs):
    """Under torchrun (gloo, two ranks with different data) G, D and G's EMA stay identical on both ranks:
    the G step's bare-D forward and D's two backward passes reduce as they should."""
    _, ranks = train_two_ranks(tmp_path, gan_options(tmp_path, photo_dirs, 'ddp', total_iter=3),
                               'datasets.train.batch_size_per_gpu=1')
    assert set(ranks[0]) == {'net_g', 'net_d'}
    for net in ranks[0]:
        for key, value in ranks[0][net].items():
            assert torch.equal(value, ranks[1][net][key]), (net, key)


# Recorded OUTSIDE this repo from KAIR@fc1732f models/model_gan.py ModelGAN (options as
# train_bsrgan_x4_gan.json: L1 1 + perceptual 1 (VGG19 layers 2/7/16/25/34, weights 0.1/0.1/1/1/1, L1,
# input norm) + lsgan 1, Discriminator_UNet, Adam 5e-5 both, E_decay 0.999) with RRDBNet(nf 8, nb 1, gc 4),
# ndf 8; G, E and D filled as conftest.seeded_weights does (crc32 of the key, x 0.05), VGG19 features filled the same way
# x 0.02 and handed to KAIR by replacing torchvision.models.vgg19 (no ImageNet weights here). Two steps on
# H = torch.rand(2, 3, 64, 64, Generator seed 1) (a new one per step), L = avg_pool2d(H, 4). blindsr's
# BlindSRGANModel with the same weights in the same run: G within 9.5e-8, D identical, EMA within 3e-8,
# every loss equal. Below: KAIR's logged losses per step and parameter figures after step 2.
KAIR_GAN_LOSSES = [  # G_loss (L1), F_loss (perceptual), D_loss (G's lsgan term), D_real, D_fake (mean D outputs)
    (0.5177741050720215, 0.0076063345186412334, 1.0043234825134277, 0.006618031766265631, -0.0019350000657141209),
    (0.5181925296783447, 0.007598077412694693, 1.0030558109283447, 0.005812449846416712, -0.0014354379381984472)]
KAIR_GAN_AFTER = {  # network: (sum of |entries| of its state dict, key, [0, 0, 0, :3] of that key)
    'net_g': (562.045375, 'conv_first.weight', [-0.10047473758459091, -0.00627507409080863, -0.006275429390370846]),
    'net_d': (2856.487900, 'conv9.weight', [-0.011548306792974472, -0.016807230189442635, 0.0043625072576105595]),
    'ema': (562.048703, 'conv_first.weight', [-0.1003749668598175, -0.0061752526089549065, -0.006175611633807421])}


def test_two_gan_steps_match_kair(tmp_path):
    vgg = torchvision.models.vgg19(weights=None).features[:35]
    torch.save({f'features.{k}': v for k, v in seeded_weights(vgg, 0.02).items()}, tmp_path / 'vgg19.pth')
    opt = {'name': 'kair', 'model_type': 'BlindSRGANModel', 'scale': 4,
           'network_g': {'type': 'BSRNet', 'scale': 4, 'num_feat': 8, 'num_block': 1, 'num_grow_ch': 4},
           'network_d': {'type': 'UNetDiscriminatorSN', 'num_in_ch': 3, 'num_feat': 8},
           'datasets': {'train': {'type': 'HRImageDataset', 'dataroot_gt': str(tmp_path), 'gt_size': 64}},
           'train': {'total_iter': 2, 'ema_decay': 0.999, 'optim_g': {'type': 'Adam', 'lr': 5e-5},
                     'optim_d': {'type': 'Adam', 'lr': 5e-5},
                     'losses': [{'type': 'L1Loss'},
                                {'type': 'VGGPerceptualLoss', 'vgg_weights': str(tmp_path / 'vgg19.pth'),
                                 'layer_weights': {'conv1_2': 0.1, 'conv2_2': 0.1, 'conv3_4': 1, 'conv4_4': 1,
                                                   'conv5_4': 1}},
                                {'type': 'GANLoss', 'gan_type': 'lsgan'}]}}
    (tmp_path / 'kair.yml').write_text(yaml.safe_dump(opt))
    model = BlindSRGANModel(load_options(tmp_path / 'kair.yml'), torch.device('cpu'))
    for net in (model.net_g, model.ema['net_g'], model.net_d):
        net.load_state_dict(seeded_weights(net, 0.05))
    g = torch.Generator().manual_seed(1)
    for it, expected in enumerate(KAIR_GAN_LOSSES, 1):
        model.gt = torch.rand(2, 3, 64, 64, generator=g)
        model.lq = F.avg_pool2d(model.gt, 4)
        logs = model.optimize_parameters(it)
        got = [logs[k].item() for k in ('l_pix', 'l_percep', 'l_g_gan', 'out_d_real', 'out_d_fake')]
        assert got == pytest.approx(expected, rel=1e-5, abs=1e-8), it
    for name, net in (('net_g', model.net_g), ('net_d', model.net_d), ('ema', model.ema['net_g'])):
        total, key, probe = KAIR_GAN_AFTER[name]
        state = net.state_dict()
        assert sum(v.abs().sum().item() for v in state.values()) == pytest.approx(total, abs=2e-5), name
        assert state[key][0, 0, 0, :3].tolist() == pytest.approx(probe, abs=1e-7), name


# ---------------------------------------------------------------------------------------------------- discriminator
# Recorded OUTSIDE this repo from KAIR@fc1732f models/network_discriminator.py Discriminator_UNet(3, ndf=8):
# every state-dict entry filled from torch.Generator().manual_seed(crc32(key)) * randn * 0.05 (weight_u/_v
# then divided by their norm), input torch.rand(2, 3, 32, 32, seed 0), train mode (one power iteration),
# no_grad. BasicSR's UNetDiscriminatorSN, which blindsr builds for `type: UNetDiscriminatorSN`, gave the
# same output to max |diff| 0.0 at ndf 8 and 64, in train and eval mode, with the identical key list.
KAIR_D_KEYS = {8: (28, '0bace7c2e32bbf048909bf494f8a40d6488b740402183d2ad5d36b2bc21d76eb'),
               64: (28, '38823538a011c1d5fe8a80eccb8a9a07fed88b4ec11443e44c2c3cbaac2ca1a2')}
KAIR_D_TRAIN = (0.007688937243074179, 0.005894242320209742,
                {(0, 0, 0, 0): -0.003475041827186942, (1, 0, 5, 7): 0.0023836095351725817,
                 (0, 0, 31, 31): 0.0012018183479085565})


@pytest.mark.parametrize('num_feat', [8, 64])
def test_unet_discriminator_keys_match_kair(num_feat):
    net = build(ARCH_REGISTRY, {'type': 'UNetDiscriminatorSN', 'num_in_ch': 3, 'num_feat': num_feat})
    lines = '\n'.join(f'{k}:{list(v.shape)}' for k, v in net.state_dict().items())
    assert (len(net.state_dict()), hashlib.sha256(lines.encode()).hexdigest()) == KAIR_D_KEYS[num_feat]


def test_unet_discriminator_output_matches_kair():
    net = build(ARCH_REGISTRY, {'type': 'UNetDiscriminatorSN', 'num_in_ch': 3, 'num_feat': 8})
    net.load_state_dict(seeded_weights(net, 0.05))
    with torch.no_grad():
        out = net.train()(torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)))
    mean, std, probes = KAIR_D_TRAIN
    assert out.shape == (2, 1, 32, 32)
    assert out.mean().item() == pytest.approx(mean, rel=1e-4) and out.std().item() == pytest.approx(std, rel=1e-4)
    for index, value in probes.items():
        assert out[index].item() == pytest.approx(value, abs=1e-7)


# ---------------------------------------------------------------------------------------------------- perceptual loss
def test_vgg_layer_names_at_kairs_feature_indices():
    names = vgg_layer_names(torchvision.models.vgg19(weights=None).features)
    assert [names[i] for i in (2, 7, 16, 25, 34)] == ['conv1_2', 'conv2_2', 'conv3_4', 'conv4_4', 'conv5_4']
    assert names[:5] == ['conv1_1', 'relu1_1', 'conv1_2', 'relu1_2', 'pool1'] and len(names) == 37


def test_missing_vgg_weights_stop_with_where_to_put_them(tmp_path):
    missing = tmp_path / 'nowhere' / 'vgg19-dcbb9e9d.pth'
    with pytest.raises(FileNotFoundError) as err:
        VGGPerceptualLoss({'conv5_4': 1.0}, vgg_weights=str(missing))
    text = str(err.value)
    assert str(missing) in text and 'download.pytorch.org/models/vgg19-dcbb9e9d.pth' in text
    assert str(default_vgg_path('vgg19')) in text and 'vgg_weights' in text


def test_default_vgg_path_is_torchs_hub_cache(tmp_path, monkeypatch):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path))
    assert default_vgg_path('vgg19') == tmp_path / 'hub' / 'checkpoints' / 'vgg19-dcbb9e9d.pth'
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        VGGPerceptualLoss({'conv1_2': 1.0})


def test_local_vgg_file_is_used(tmp_path):
    """A file in torchvision's layout (here the first two convs of a random VGG19) gives exactly the
    L1 distance of its own conv1_1 -> ReLU -> conv1_2 features on ImageNet-normalised input."""
    g = torch.Generator().manual_seed(3)
    weights = {'features.0.weight': torch.randn(64, 3, 3, 3, generator=g) * 0.1,
               'features.0.bias': torch.randn(64, generator=g) * 0.1,
               'features.2.weight': torch.randn(64, 64, 3, 3, generator=g) * 0.05,
               'features.2.bias': torch.randn(64, generator=g) * 0.1}
    torch.save(weights, tmp_path / 'vgg19.pth')
    loss = VGGPerceptualLoss({'conv1_2': 0.5}, vgg_weights=str(tmp_path / 'vgg19.pth'), loss_weight=2.0)
    sr, gt = torch.rand(2, 1, 3, 16, 16, generator=g)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)

    def conv1_2(x):
        x = F.relu(F.conv2d((x - mean) / std, weights['features.0.weight'], weights['features.0.bias'], padding=1))
        return F.conv2d(x, weights['features.2.weight'], weights['features.2.bias'], padding=1)

    expected = 2.0 * 0.5 * F.l1_loss(conv1_2(sr), conv1_2(gt))
    assert loss(sr, gt).item() == pytest.approx(expected.item(), rel=1e-5)
    with pytest.raises(ValueError, match='not a torchvision vgg19 state dict: no features.5.bias, features.5.weight'):  # conv2_1 needs more of the file
        VGGPerceptualLoss({'conv2_1': 1.0}, vgg_weights=str(tmp_path / 'vgg19.pth'))


def test_perceptual_loss_gradient_reaches_sr_only():
    loss = VGGPerceptualLoss({'conv1_2': 1.0, 'conv2_2': 1.0}, vgg_weights='random')
    sr = torch.rand(1, 3, 16, 16, requires_grad=True)
    gt = torch.rand(1, 3, 16, 16, requires_grad=True)
    loss(sr, gt).backward()
    assert sr.grad.abs().sum() > 0 and gt.grad is None
    assert all(p.grad is None for p in loss.parameters())
    assert not loss.train().features.training  # the VGG never leaves eval mode


def test_unknown_vgg_layer_is_named():
    with pytest.raises(ValueError, match="Unknown vgg19 layers \\['conv6_1'\\]"):
        VGGPerceptualLoss({'conv6_1': 1.0}, vgg_weights='random')


# ---------------------------------------------------------------------------------------------------- train.losses
def test_loss_terms_names_and_adversarial_term():
    terms = LossTerms([{'type': 'L1Loss'}, {'type': 'MSELoss', 'name': 'l_mse', 'loss_weight': 2.0},
                       {'type': 'GANLoss', 'gan_type': 'hinge'}], allow_adversarial=True)
    assert list(terms.terms) == ['l_pix', 'l_mse', 'l_g_gan'] and terms.adversarial_name == 'l_g_gan'
    sr, gt = torch.zeros(1, 3, 4, 4), torch.ones(1, 3, 4, 4)
    assert {k: v.item() for k, v in terms.reconstruction(sr, gt).items()} == {'l_pix': 1.0, 'l_mse': 2.0}
    with pytest.raises(ValueError, match="two terms are named 'l_pix'"):
        LossTerms([{'type': 'L1Loss'}, {'type': 'MSELoss'}])
    with pytest.raises(ValueError, match='no discriminator'):
        LossTerms([{'type': 'GANLoss', 'gan_type': 'lsgan'}])


def test_basicsr_loss_sections_get_a_pointer_to_train_losses(tmp_path, photo_dirs):
    path = tiny_options(tmp_path, photo_dirs, pixel_opt={'type': 'L1Loss'})
    with pytest.raises(OptionsError, match="train.pixel_opt is BasicSR's layout; blindsr lists loss terms"):
        load_options(path)
    with pytest.raises(OptionsError, match=r"train.losses\[1\].type: No 'L2Loss'"):
        load_options(tiny_options(tmp_path, photo_dirs, losses=[{'type': 'L1Loss'}, {'type': 'L2Loss'}]))


def test_plain_model_refuses_an_adversarial_term(tmp_path, photo_dirs):
    path = tiny_options(tmp_path, photo_dirs, losses=[{'type': 'GANLoss', 'gan_type': 'vanilla'}])
    with pytest.raises(ValueError, match='BlindSRGANModel'):
        BlindSRModel(load_options(path), torch.device('cpu'))
