"""DARSR: its nets and one joint iteration against the authors' code, the properties of DARM, G and the
kernel regularisation, the per-image adaptation (cycle losses fall, reruns are identical, oracle needs
ground truth) and the test recipes.

``data/darsr_authors_step.pt`` was recorded once outside the repo from edbca/DARSR@16b5b00 (modules.py,
network.py, loss.py, util.py, torch_sobel.py, SRFBN/; the one patch: every ``.cuda()`` removed), torch
2.14.1 CPU float32, by a script that fills every state-dict entry of the authors' G (x2 and x4), D, DARM
and DSEM with :func:`test_dasr_arch.fill` (key prefixes ``G.``, ``G4.``, ``D.``, ``DARM.``, ``DSEM.``) and
records: the sha256 of the sorted ``key:shape`` lines; eval-mode outputs on ``rand(2, 3, 24, 24, seed 0)``
(mean, std, sum of |.|, first values) and G's kernel by their ``calc_curr_k``; then, with the SRFBN-S x2
BI weights and filters/kernel_72_k5.pkl, one ``Network.train_G()`` + ``train_D()`` (the object made
without its constructor, which reads image files; Adam as in the constructor; KernelGAN lambdas
centralized 1, sparse 5 so every term counts) on ``HR = rand(2, 3, 32, 32, seed 1)``, ``HR_bicubic =
rand(2, 3, 16, 16, seed 2)``, ``LR = rand(2, 3, 16, 16, seed 3)``, ``LR_up = rand(2, 3, 32, 32, seed 4)``:
every loss term, every regularisation term, the statistics of every gradient of G, DARM and D and of
every updated state-dict entry.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from conftest import REPO, SHARED, write_photos
from test_dasr_arch import fill
from test_testsets import load_script

from blindsr import test as test_entry
from blindsr.archs.darsr_arch import DARM, DSEM, KernelGANDiscriminator, LinearDownsampler
from blindsr.archs.srfbn_arch import SRFBN_S
from blindsr.checkpoint import load_pretrained
from blindsr.data.image_io import read_image
from blindsr.losses.kernelgan import KernelRegularization, LambdaSchedule, bicubic_x2_kernel, crop_like
from blindsr.models.darsr_model import OPTIONS, Adaptation, DARSRAdapter, DARSRModel
from blindsr.options import load_options
from blindsr.schema import Context
from blindsr.tiling import upscale

AUTHORS = REPO / 'tests' / 'data' / 'darsr_authors_step.pt'
WEIGHTS = SHARED / 'weights' / 'darsr'
needs_shared = pytest.mark.skipif(not WEIGHTS.is_dir(), reason=f'{WEIGHTS} (SRFBN-S weights, filters) not here')


def filled(module: torch.nn.Module, prefix: str) -> torch.nn.Module:
    module.load_state_dict({k: fill(prefix + k, v) for k, v in module.state_dict().items()})
    return module


def keys_sha(module: torch.nn.Module) -> tuple:
    lines = '\n'.join(f'{k}:{list(v.shape)}' for k, v in sorted(module.state_dict().items()))
    return (hashlib.sha256(lines.encode()).hexdigest(), len(module.state_dict()))


def assert_stats(t: torch.Tensor, rec: dict, rel: float = 1e-4, where: str = '', floor: float = 1e-12) -> None:
    """``t`` against recorded statistics; ``floor``: an absolute tolerance per element (rounding noise)."""
    t = t.detach().double()
    scale = max(rec['abs_sum'] / t.numel(), floor)
    assert t.abs().sum().item() == pytest.approx(rec['abs_sum'], rel=rel, abs=max(1e-9, floor * t.numel())), where
    assert t.mean().item() == pytest.approx(rec['mean'], abs=rel * scale + floor), where
    np.testing.assert_allclose(t.flatten()[:4].numpy(), rec['head'], rtol=rel, atol=rel * scale + floor,
                               err_msg=where)


def darsr_options(**changes) -> dict:
    return OPTIONS.resolve(changes, 'darsr', Context())


def x24() -> torch.Tensor:
    return torch.rand((2, 3, 24, 24), generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize('name', ['G', 'G4', 'D', 'DARM', 'DSEM'])
def test_nets_match_the_authors(name):
    """Same state-dict keys and shapes as the authors' modules, same eval-mode output for the same weights."""
    rec = torch.load(AUTHORS)
    bank = torch.rand(72, 5, 5, generator=torch.Generator().manual_seed(5))
    net = {'G': lambda: LinearDownsampler(2), 'G4': lambda: LinearDownsampler(4), 'D': KernelGANDiscriminator,
           'DARM': lambda: DARM(bank), 'DSEM': DSEM}[name]()
    net = filled(net, f'{name}.').eval()
    if name != 'G4':
        assert keys_sha(net) == rec[f'{name}_keys']
    if name == 'DARM':  # recorded with the authors' dictionary
        if not WEIGHTS.is_dir():
            pytest.skip('the authors dictionary is in ../shared')
        net.filters.copy_(DARM(str(WEIGHTS / 'kernel_72_k5.pkl')).filters)
    with torch.no_grad():
        assert_stats(net(x24()), rec[f'{name}_out'], where=name)
    if name == 'G':
        assert_stats(net.effective_kernel(), rec['G_kernel'], where='kernel')


@needs_shared
def test_one_joint_iteration_matches_the_authors():
    """Every loss term, regularisation term, gradient and updated weight of one G/DARM + D iteration."""
    rec = torch.load(AUTHORS)['step']
    sr_net = SRFBN_S(scale=2)
    load_pretrained(sr_net, WEIGHTS / 'SRFBN-S_x2_BI.pth')
    sr_net.eval().requires_grad_(False)
    ad = Adaptation(sr_net, 2, darsr_options(filters=str(WEIGHTS / 'kernel_72_k5.pkl')), torch.device('cpu'))
    filled(ad.dsem, 'DSEM.')
    ad.freeze_dsem()
    ad.start_joint()
    for net, prefix in [(ad.G, 'G.'), (ad.D, 'D.'), (ad.darm, 'DARM.')]:
        filled(net, prefix)
    ad.regularization.lambda_centralized, ad.regularization.lambda_sparse = 1.0, 5.0

    def rand(shape, seed):
        return torch.rand(shape, generator=torch.Generator().manual_seed(seed))

    batch = {'hr': rand((2, 3, 32, 32), 1), 'hr_bicubic': rand((2, 3, 16, 16), 2), 'lr': rand((2, 3, 16, 16), 3),
             'lr_up': rand((2, 3, 32, 32), 4)}
    terms = ad.step(batch)
    names = {'gan': 'loss_GAN', 'cycle_forward': 'loss_cycle_forward', 'cycle_backward': 'loss_cycle_backward',
             'interp': 'loss_interp', 'regularization': 'loss_regularization', 'zero': 'loss_zero',
             'one': 'loss_one', 'd': 'loss_Discriminator'}
    for ours, theirs in names.items():
        assert float(terms[ours]) == pytest.approx(rec['losses'][theirs], rel=1e-4, abs=1e-7), ours
    for key, value in rec['reg_terms'].items():
        assert float(terms[f'reg_{key}']) == pytest.approx(value, rel=1e-4), key
    nets = {'G': ad.G, 'D': ad.D, 'DARM': ad.darm}
    # a gradient that is zero in exact arithmetic (D's conv biases feed BatchNorm, which removes any constant
    # offset) is rounding noise that depends on the thread count: compared against 1e-6 of the largest
    # mean |gradient| of its network
    largest = {name: max(v['abs_sum'] / nets[name].get_parameter(k.split('.', 1)[1]).numel()
                         for k, v in rec['grads'].items() if k.startswith(name + '.')) for name in nets}
    noise = set()
    for key, value in rec['grads'].items():
        net, param = key.split('.', 1)
        assert_stats(nets[net].get_parameter(param).grad, value, rel=2e-3, where=f'grad {key}',
                     floor=1e-6 * largest[net])
        if value['abs_sum'] / nets[net].get_parameter(param).numel() < 1e-6 * largest[net]:
            noise.add(key)
    assert noise <= {'D.first_layer.bias', *(f'D.feature_block.{3 * i}.bias' for i in range(5))}  # biases before BN
    for key, value in rec['weights'].items():  # Adam turns a noise gradient into a step of +-lr of noise sign
        net, entry = key.split('.', 1)
        if key not in noise:
            assert_stats(nets[net].state_dict()[entry], value, rel=1e-4, where=key)


def test_darm_one_hot_coefficients_give_that_filter_and_output_is_linear_in_responses():
    bank = torch.rand(6, 5, 5, generator=torch.Generator().manual_seed(1))
    darm = DARM(bank, features=16)
    x = torch.rand(1, 3, 12, 12)
    responses = darm.responses(x)
    one_hot = torch.zeros(1, 6, 12, 12)
    one_hot[:, 4] = 1
    direct = F.conv2d(F.pad(x, (2, 2, 2, 2), mode='reflect').reshape(3, 1, 16, 16), bank[4][None, None])
    torch.testing.assert_close(darm.combine(one_hot, responses), direct.reshape(1, 3, 12, 12))
    c = darm.coefficients(x)
    r2 = torch.rand_like(responses)
    torch.testing.assert_close(darm.combine(c, 2 * responses - 3 * r2),
                               2 * darm.combine(c, responses) - 3 * darm.combine(c, r2), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(darm(x), darm.combine(c, responses))


@pytest.mark.parametrize('scale', [2, 4])
def test_downsampler_is_a_strided_correlation_with_its_kernel(scale):
    """G(x) = per-channel correlation with the effective kernel at stride ``scale``; a delta's response is
    the kernel read backwards at that stride."""
    g = LinearDownsampler(scale, features=8)
    k = g.effective_kernel()
    assert k.shape == (13, 13)
    x = torch.rand(2, 3, 40, 40, dtype=torch.float64)
    g = g.double()
    want = F.conv2d(x.reshape(6, 1, 40, 40), k.double()[None, None], stride=scale).reshape(2, 3, *g(x).shape[-2:])
    torch.testing.assert_close(g(x), want)
    delta = torch.zeros(1, 3, 25, 25, dtype=torch.float64)
    delta[..., 12, 12] = 1  # output (i, j) = sum over (u, v) of k[u, v] * x[scale * i + u, scale * j + v]
    out = g(delta)[0, 0]
    idx = 12 - scale * torch.arange(out.shape[-1])
    torch.testing.assert_close(out, k.double()[idx[:, None], idx[None, :]])


def test_regularisation_terms_on_hand_made_kernels():
    reg = KernelRegularization(scale=2)
    delta = torch.zeros(13, 13)
    delta[6, 6] = 1
    x = torch.rand(1, 3, 32, 32)
    reg(delta, x, x[..., :13, :13])
    t = reg.terms
    assert float(t['sum2one']) == 0 and float(t['boundaries']) == 0
    assert float(t['centralized']) == pytest.approx(0.25)  # centre 6 vs wanted 6.5 (x2), both axes
    assert float(t['sparse']) == pytest.approx(1 / 169)
    half = delta * 0.5
    reg(half, x, x[..., :13, :13])
    assert float(reg.terms['sum2one']) == pytest.approx(0.5)
    corner = delta.roll((6, 6), (0, 1))  # all mass at (12, 12), on the outer ring
    reg(corner, x, x[..., :13, :13])
    assert float(reg.terms['boundaries']) == pytest.approx(30 * (1 - float(np.exp(-72 / 338))) / 169, rel=1e-5)
    assert float(reg.terms['centralized']) == pytest.approx(5.5 ** 2)
    # the bicubic reference sums the three channels (KernelGAN's quirk): a constant 0.5 gives 1.5 inside
    ref = reg.bicubic_downscale(torch.full((1, 3, 32, 32), 0.5))
    torch.testing.assert_close(ref[..., 4:-4, 4:-4], torch.full_like(ref[..., 4:-4, 4:-4], 1.5))
    assert float(bicubic_x2_kernel().sum()) == pytest.approx(1.0)
    assert float(bicubic_x2_kernel()[3, 3]) == pytest.approx(0.1880035400390630)


def test_lambda_schedule():
    reg = KernelRegularization(scale=2)
    g = torch.nn.Parameter(torch.zeros(1))
    opt_g, opt_d = torch.optim.Adam([g], lr=1.0), torch.optim.Adam([g], lr=2.0)
    schedule = LambdaSchedule()
    reg.terms = {'bicubic': torch.tensor(0.1)}
    for it in range(4):
        schedule.update(it, reg, [opt_g, opt_d])
    assert schedule.similar_to_bicubic and reg.lambda_bicubic == 5  # three checks below 0.4 (it 1, 2, 3)
    schedule.update(200, reg, [opt_g, opt_d])
    assert reg.lambda_bicubic == pytest.approx(0.05) and reg.lambda_sparse == 0
    schedule.update(400, reg, [opt_g, opt_d])
    assert reg.lambda_bicubic == pytest.approx(5e-4) and (reg.lambda_centralized, reg.lambda_sparse) == (1, 5)
    schedule.update(750, reg, [opt_g, opt_d])
    assert (opt_g.param_groups[0]['lr'], opt_d.param_groups[0]['lr']) == (0.25, 0.5)
    for it in (800, 1000, 1200):
        schedule.update(it, reg, [opt_g, opt_d])
    assert reg.lambda_bicubic == 5e-6


def test_crop_like_cuts_an_odd_excess_on_the_far_side():
    a = torch.arange(25.).reshape(1, 1, 5, 5)
    assert crop_like(a, torch.zeros(1, 1, 2, 2)).flatten().tolist() == [6, 7, 11, 12]


# ---------------------------------------------------------------------------------------------- adaptation
TINY = {'dsem_iters': 2, 'iters': 3, 'crop_size': 32, 'batch_size': 2, 'log_every': 2}


@pytest.fixture(scope='module')
def lr_image():
    import skimage.data

    from blindsr.data.image_io import to_tensor
    img = skimage.data.astronaut()[100:180, 150:230].astype(np.float32) / 255  # 80 x 80 LR
    return to_tensor(img)[None]


def make_model(tmp_path, **darsr) -> DARSRModel:
    torch.save(SRFBN_S(scale=2, num_features=8, num_steps=2, num_groups=1).state_dict(), tmp_path / 'sr.pth')
    opt = {'name': 't', 'model_type': 'DARSRModel', 'scale': 2, 'is_train': False,
           'network_sr': {'type': 'SRFBN_S', 'scale': 2, 'num_features': 8, 'num_steps': 2, 'num_groups': 1},
           'path': {'pretrain_network_sr': str(tmp_path / 'sr.pth')},
           'darsr': {'filters': 'generated', **TINY, **darsr}}
    (tmp_path / 'o.yml').write_text(yaml.safe_dump(opt))
    return DARSRModel(load_options(tmp_path / 'o.yml', is_train=False), torch.device('cpu'))


@needs_shared
def test_adaptation_lowers_the_cycle_losses(lr_image):
    """Eight joint iterations on one batch of the image's crops, with the published SRFBN-S x2."""
    from basicsr.utils import tensor2img

    from blindsr.data.internal_crops import InternalCrops

    sr_net = SRFBN_S(scale=2)
    load_pretrained(sr_net, WEIGHTS / 'SRFBN-S_x2_BI.pth')
    ad = Adaptation(sr_net.eval().requires_grad_(False), 2, darsr_options(**TINY), torch.device('cpu'))
    ad.freeze_dsem()
    ad.start_joint()
    batch = InternalCrops(tensor2img(lr_image, rgb2bgr=False), 2, crop_size=32, batch_size=2, num_iters=1)[0]
    history = []
    for it in range(8):
        history.append(ad.step(batch))
        ad.update_schedules(it)
    for key in ('cycle_forward', 'cycle_backward'):
        late = np.mean([float(h[key]) for h in history[-3:]])
        assert late < 0.6 * float(history[0][key]), (key, [float(h[key]) for h in history])


def test_same_name_same_outputs_and_other_name_other_outputs(tmp_path, lr_image):
    model = make_model(tmp_path)
    torch.manual_seed(123)
    a = model.infer(lr_image, name='bird')
    extra_a = {k: v.clone() for k, v in model.extra_outputs().items()}
    state = torch.get_rng_state()
    b = model.infer(lr_image, name='bird')
    assert torch.equal(torch.get_rng_state(), state)  # the caller's random stream is untouched
    assert torch.equal(a, b)
    for key, value in model.extra_outputs().items():
        assert torch.equal(value, extra_a[key]), key
    assert a.shape == (1, 3, 160, 160) and extra_a['corrected'].shape == lr_image.shape
    assert extra_a['kernel'].shape == (1, 3, 208, 208)
    assert not torch.equal(model.infer(lr_image, name='baby'), a)


def test_oracle_needs_ground_truth(tmp_path, lr_image):
    model = make_model(tmp_path, selection='oracle', runs=1)
    with pytest.raises(ValueError, match="selection 'oracle'.*has none"):
        model.infer(lr_image, name='bird')
    assert 'ORACLE' in model.results_label


# ---------------------------------------------------------------------------------------------- recipes
@pytest.mark.parametrize('recipe', sorted((REPO / 'options' / 'test' / 'darsr').glob('*.yml')), ids=lambda p: p.stem)
def test_darsr_recipes(tmp_path, recipe):
    """Each recipe, with a tiny SR net and iteration budget: per image the SR, corrected LR, baseline and
    kernel images; a table with DARSR and baseline columns, seconds per image and the selection label."""
    opt = yaml.safe_load(recipe.read_text())
    scale = opt['scale']
    hr = write_photos(tmp_path / 'hr', ['astronaut', 'coffee'], size=72 * scale)  # LR 72: crops fit
    net_opt = {k: v for k, v in opt['network_sr'].items() if k != 'type'}
    tiny = ({'num_features': 8, 'num_steps': 1, 'num_groups': 1} if opt['network_sr']['type'] == 'SRFBN_S'
            else {'num_feat': 8, 'num_block': 1, 'num_grow_ch': 4})
    from blindsr.registry import ARCH_REGISTRY
    torch.save(ARCH_REGISTRY.get(opt['network_sr']['type'])(**{**net_opt, **tiny}).state_dict(), tmp_path / 'sr.pth')
    (dataset, ) = opt['datasets']
    load_script().make_testset(hr, 'dasr_aniso_noise', scale, tmp_path / 'testset')
    sets = {'path.pretrain_network_sr': tmp_path / 'sr.pth', 'path.results_root': tmp_path / 'results',
            'darsr.filters': 'generated', f'datasets.{dataset}.dataroot': tmp_path / 'testset',
            **{f'darsr.{k}': v for k, v in {**TINY, 'crop_size': 48 if scale == 4 else 32,
                                            'runs': 1, 'eval_start': 4, 'eval_every': 4}.items()},
            **{f'network_sr.{k}': v for k, v in tiny.items()}}
    args = [item for key, value in sets.items() for item in ('--set', f'{key}={value}')]
    run_name = f"{dataset}_{opt['datasets'][dataset]['setting']}"  # a test set's setting names the run
    results = test_entry.main(['-opt', str(recipe), *args])[run_name]
    assert {'psnr', 'ssim', 'baseline_psnr', 'baseline_ssim', 'time_s'} <= set(results['mean'])
    selection = opt.get('darsr', {}).get('selection', 'final')
    assert selection in results['label'].lower()
    folder = tmp_path / 'results' / run_name
    for name in ('astronaut', 'coffee'):
        sr = read_image(folder / f'{name}.png')
        assert sr.shape == (72 * scale,) * 2 + (3, )
        assert read_image(folder / f'{name}_corrected.png').shape == (72, 72, 3)
        assert read_image(folder / f'{name}_baseline.png').shape == sr.shape
        assert read_image(folder / f'{name}_kernel.png').shape == (208, 208, 3)
    table = (folder / 'results.md').read_text()
    assert '| image | time_s | psnr | ssim |' in table and 'baseline_psnr' in table and selection in table.lower()


def test_options_name_the_sr_network_and_its_weights(tmp_path):
    """A DARSR option file needs network_sr (not network_g) and, to test, path.pretrain_network_sr."""
    from blindsr.options import OptionsError

    opt = {'name': 't', 'model_type': 'DARSRModel', 'scale': 2, 'network_g': {'type': 'SRFBN_S', 'scale': 2}}
    (tmp_path / 'o.yml').write_text(yaml.safe_dump(opt))
    with pytest.raises(OptionsError, match="required key 'network_sr' is missing"):
        load_options(tmp_path / 'o.yml', is_train=False)
    opt['network_sr'] = opt.pop('network_g')
    opt['datasets'] = {'x': {'type': 'HRImageDataset', 'dataroot_gt': str(tmp_path)}}
    (tmp_path / 'o.yml').write_text(yaml.safe_dump(opt))
    with pytest.raises(OptionsError, match='path.pretrain_network_sr is required'):
        test_entry.main(['-opt', str(tmp_path / 'o.yml')])


def test_infer_adapter_adapts_once_per_image_then_tiles_its_sr_step(tmp_path, lr_image, monkeypatch):
    """blindsr.infer's DARSR is DARSRModel's adaptation (selection final) on the whole image, run once however
    many tiles; the tiled SR step equals the untiled one (DARM's channel attention is the whole image's)."""
    model = make_model(tmp_path)
    adapter = DARSRAdapter(model.net_sr, 2, model.opt['darsr'], seed=model.opt['manual_seed'])
    runs = []
    real = Adaptation.train_dsem
    monkeypatch.setattr(Adaptation, 'train_dsem', lambda self, *args: (runs.append(1), real(self, *args))[1])
    untiled = upscale(adapter, lr_image, 2)
    assert torch.equal(untiled, model.infer(lr_image)) and len(runs) == 2
    tiles = []
    tiled = upscale(adapter, lr_image, 2, tile=56, overlap=16, progress=lambda done, total: tiles.append(total))
    assert len(runs) == 3 and tiles == [4] * 4
    assert (tiled - untiled).abs().max() <= 1e-5 * untiled.abs().max()  # float rounding only
