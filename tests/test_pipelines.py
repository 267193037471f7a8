"""Degradation pipelines: determinism, batched == per sample, the authors' sampling rules, statistics."""

from __future__ import annotations

import math
from collections import defaultdict

import pytest
import skimage.data
import torch

from blindsr.degradations.bsrgan import BSRGANDegradation, BSRGANPlusDegradation
from blindsr.degradations.classic import PRESETS, ClassicDegradation
from blindsr.degradations.pipeline import sample_seeds
from blindsr.degradations.realesrgan import RealESRGANDegradation
from blindsr.registry import DEGRADATION_REGISTRY, build

PIPELINES = {
    'dasr_aniso_noise': {'type': 'classic', 'preset': 'dasr', 'kernel': 'aniso', 'noise': 25},
    'kdsr_iso': {'type': 'classic', 'preset': 'kdsr'},
    'cdsr_aniso_noise': {'type': 'classic', 'preset': 'cdsr_manet', 'kernel': 'aniso', 'noise': 15},
    'bsrgan': {'type': 'bsrgan'},
    'bsrgan_plus': {'type': 'bsrgan_plus', 'shuffle_prob': 0.5, 'use_sharp': True},
    'realesrgan': {'type': 'realesrgan'},
}
PER_BATCH = {'kdsr_iso', 'realesrgan'}  # the authors draw these once per batch


def photos(n: int, size: int = 96) -> torch.Tensor:
    """``n`` different real-photo crops (B, 3, size, size) in [0, 1]."""
    img = torch.from_numpy(skimage.data.astronaut()).permute(2, 0, 1).float() / 255
    crops = [img[:, 40 + 37 * i:40 + 37 * i + size, 100 + 23 * i:100 + 23 * i + size] for i in range(n)]
    return torch.stack(crops)


def make(name: str, scale: int = 4):
    return build(DEGRADATION_REGISTRY, dict(PIPELINES[name]), scale=scale)


@pytest.mark.parametrize('name', PIPELINES)
def test_same_seed_same_lr_and_params(name):
    hr = photos(6)
    pipeline = make(name)
    a_lr, a_params = pipeline(hr, torch.Generator().manual_seed(3))
    b_lr, b_params = make(name)(hr, torch.Generator().manual_seed(3))
    c_lr, _ = pipeline(hr, torch.Generator().manual_seed(4))
    assert a_lr.shape == (6, 3, 24, 24) and torch.equal(a_lr, b_lr) and not torch.equal(a_lr, c_lr)
    assert a_params.keys() == b_params.keys()
    for key in a_params:
        assert len(a_params[key]) == 6, key
        assert torch.equal(a_params[key].nan_to_num(-1), b_params[key].nan_to_num(-1)), key
    assert torch.equal(a_lr, (a_lr * 255).round() / 255)  # 8-bit quantised


@pytest.mark.parametrize('name', sorted(set(PIPELINES) - PER_BATCH))
def test_batched_equals_per_sample(name):
    hr, seeds = photos(6), [11, 12, 13, 14, 15, 16]
    pipeline = make(name)
    lr, params = pipeline.degrade(hr, seeds)
    singles = [pipeline.degrade(hr[i:i + 1], seeds[i:i + 1]) for i in range(6)]
    one_by_one = torch.cat([s[0] for s in singles])
    # identical up to float rounding of batched vs single-sample kernels (which can flip an 8-bit level)
    assert (lr - one_by_one).abs().max() <= 1 / 255 + 1e-6
    assert (lr != one_by_one).float().mean() < 1e-3
    for key, value in params.items():
        single = torch.cat([s[1][key] for s in singles])
        assert torch.allclose(value.nan_to_num(-1).float(), single.nan_to_num(-1).float(), atol=1e-6), key


def test_per_batch_presets_share_their_draws():
    hr = photos(4)
    _, kdsr = make('kdsr_iso').degrade(hr, [1, 2, 3, 4])
    assert torch.equal(kdsr['kernel'], kdsr['kernel'][:1].expand(4, -1, -1))
    _, real = make('realesrgan').degrade(hr, [1, 2, 3, 4])
    for key in ('resize1_factor', 'resize2_mode', 'noise1_gaussian', 'blur2', 'final_resize_first'):
        assert torch.equal(real[key], real[key][:1].expand(4)), key
    assert len(set(real['jpeg1_quality'].tolist())) == 4  # per sample


def test_classic_presets_follow_their_authors():
    b = 400
    hr = torch.full((b, 3, 8, 8), 0.5)
    dasr = ClassicDegradation(4, 'dasr', 'aniso', noise=25)
    _, p = dasr.degrade(hr, list(range(b)))
    assert p['sigma_x'].min() >= 0.2 and p['sigma_x'].max() <= 4.0 and (p['sigma_y'] > p['sigma_x']).any()
    assert p['theta'].min() >= 0 and p['theta'].max() < math.pi and (p['noise'] > 0).all()
    assert ClassicDegradation(2, 'dasr').sigma_range == (0.2, 2.0)  # DASR paper, iso per scale
    cdsr = ClassicDegradation(4, 'cdsr_manet', 'aniso', noise=15)
    _, p = cdsr.degrade(hr, list(range(b)))
    assert cdsr.sigma_range == (0.7, 10.0) and (p['sigma_y'] <= p['sigma_x']).all()
    assert 0.13 < (p['noise'] == 0).float().mean() < 0.27  # rate_cln 0.2
    # the shifted kernel sits in the top-left (21 - 4 + 1)-square, zero elsewhere
    assert p['kernel'][:, 18:].abs().sum() == 0 and p['kernel'][:, :, 18:].abs().sum() == 0
    assert PRESETS['kdsr'].per_batch and not PRESETS['dasr'].per_batch


def test_classic_noise_std_matches_the_sampled_level():
    hr = torch.full((48, 3, 256, 256), 0.5)
    lr, p = ClassicDegradation(4, 'dasr', 'iso', noise=30).degrade(hr, list(range(48)))
    std = ((lr - 0.5) * 255).std(dim=(1, 2, 3))
    expected = (p['noise'] ** 2 + 1 / 12).sqrt()  # + 8-bit rounding
    big = p['noise'] > 3
    assert big.sum() > 30 and torch.allclose(std[big], expected[big], rtol=0.03)


def test_paired_patches_share_kernel_and_level_not_noise():
    hr = photos(4, 48)
    pairs = torch.stack([hr, hr], 1)  # (B, 2, 3, H, W): two identical patches per image
    pipeline = ClassicDegradation(4, 'dasr', 'aniso', noise=25)
    lr, params = pipeline.degrade(pairs, [5, 6, 7, 8])
    assert lr.shape == (4, 2, 3, 12, 12) and params['kernel'].shape == (4, 21, 21)
    assert not torch.equal(lr[:, 0], lr[:, 1])  # independent noise fields
    clean, _ = ClassicDegradation(4, 'dasr', 'aniso').degrade(pairs, [5, 6, 7, 8])
    assert torch.equal(clean[:, 0], clean[:, 1])  # same kernel for both patches
    single, _ = pipeline.degrade(pairs[1:2], [6])
    assert torch.equal(single[0], lr[1])


@pytest.mark.parametrize('scale, size', [(2, (50, 64)), (3, (63, 48)), (4, (96, 72))])
def test_bsrgan_lr_size_rule_and_op_order(scale, size):
    hr = torch.rand(1, 3, *size).expand(40, -1, -1, -1)
    for cls in (BSRGANDegradation, BSRGANPlusDegradation):
        lr, params = cls(scale).degrade(hr, list(range(40)))
        assert lr.shape[-2:] == (size[0] // scale, size[1] // scale)
    lr, params = BSRGANDegradation(scale).degrade(hr, list(range(40)))
    order = params['order'].tolist()
    assert all(o.index(2) < o.index(3) for o in order)  # downsample2 before downsample3
    assert len({tuple(o) for o in order}) > 20  # ... in shuffled orders
    assert (scale == 4) == bool((~params['down1_mode'].isnan()).any())  # the first halving exists only at x4


def test_bsrgan_sampling_ranges():
    hr = torch.rand(1, 3, 64, 64).expand(300, -1, -1, -1)
    _, p = BSRGANDegradation(4).degrade(hr, list(range(300)))
    assert 0.15 < (~p['down1_mode'].isnan()).float().mean() < 0.35  # scale2_prob 0.25
    assert 0.3 < (p['down1_mode'] == -1).sum() / (~p['down1_mode'].isnan()).sum() < 0.7  # MATLAB half or cv2
    quality = p['jpeg_quality'][~p['jpeg_quality'].isnan()]
    assert 0.84 < len(quality) / 300 < 0.96 and quality.min() >= 30 and quality.max() <= 95  # jpeg_prob 0.9
    sizes = p['blur0_size']
    assert sizes.min() >= 7 and sizes.max() <= 25 and (sizes % 2 == 1).all()
    resized = ~p['down2_factor'].isnan()
    assert 0.65 < resized.float().mean() < 0.85  # cv2 resize with p 0.75, else the shifted kernel


def test_bsrgan_plus_sharpened_target_and_aligned_crop():
    hr = photos(3)
    lr, params = BSRGANPlusDegradation(4, use_sharp=True, lq_patchsize=16).degrade(hr, [1, 2, 3])
    assert lr.shape == (3, 3, 16, 16) and params['gt'].shape == (3, 3, 64, 64)
    from blindsr.degradations.sharpen import usm_sharp
    sharp = usm_sharp(hr)
    for i in range(3):
        top, left = int(params['crop_top'][i]) * 4, int(params['crop_left'][i]) * 4
        assert torch.equal(params['gt'][i], sharp[i, :, top:top + 64, left:left + 64])
    pipeline = BSRGANDegradation(4, lq_patchsize=16)
    pipeline.training = False  # validation: whole images
    assert pipeline.degrade(hr, [1, 2, 3])[0].shape == (3, 3, 24, 24)


def test_realesrgan_pool_and_crop():
    pipeline = RealESRGANDegradation(4, gt_size=64, pool_size=8)
    seen = []
    for step in range(4):
        hr = photos(4) * (0.5 + 0.1 * step)
        lq, params = pipeline.degrade(hr, sample_seeds(4, torch.Generator().manual_seed(step)))
        assert lq.shape == (4, 3, 16, 16) and params['gt'].shape == (4, 3, 64, 64)
        seen.append(params['gt'])
    assert int(pipeline.pool['ptr']) == 8
    # after the pool is full the batch out is drawn from earlier batches
    assert not torch.equal(seen[3], seen[2])
    state = pipeline.state_dict()
    clone = RealESRGANDegradation(4, gt_size=64, pool_size=8)
    clone.load_state_dict(state)
    hr = photos(4)
    a = pipeline.degrade(hr, [1, 2, 3, 4])
    b = clone.degrade(hr, [1, 2, 3, 4])
    assert torch.equal(a[0], b[0]) and torch.equal(a[1]['gt'], b[1]['gt'])
    with pytest.raises(ValueError, match='must be a multiple of the batch size 3'):
        pipeline.degrade(photos(3), [1, 2, 3])
    uncropped = RealESRGANDegradation(4, pool_size=8)
    uncropped.degrade(photos(4), [1, 2, 3, 4])
    with pytest.raises(ValueError, match='one batch size and one patch size'):
        uncropped.degrade(photos(4, 64), [1, 2, 3, 4])


def test_bad_options_and_inputs_are_reported():
    with pytest.raises(ValueError, match="Unknown classic preset 'dsr'; known: dasr, kdsr, cdsr_manet"):
        ClassicDegradation(4, 'dsr')
    with pytest.raises(ValueError, match='Unknown realesrgan option'):
        RealESRGANDegradation(4, blur_sigmaa=[1, 2])
    with pytest.raises(ValueError, match='not a multiple of scale 4'):
        BSRGANDegradation(4).degrade(torch.rand(1, 3, 50, 50), [0])
    with pytest.raises(ValueError, match='expects a float RGB batch'):
        ClassicDegradation(4)(torch.rand(1, 1, 48, 48))


def test_bsrgan_runs_fewer_larger_groups_than_lockstep(monkeypatch):
    """run_plans keeps each sample's own op order (its results: test_batched_equals_per_sample) but picks
    which group runs next, so it needs fewer calls than advancing every sample one step per round."""
    from blindsr.degradations import bsrgan
    apply, calls, steps = bsrgan._apply, [], defaultdict(list)

    def counted(op, x, plan_steps, gens, flavour):
        calls.append(op)
        for step, g in zip(plan_steps, gens):  # a sample's noise generator identifies it
            steps[id(g)].append((op, step.key, tuple(x.shape[-2:])))
        return apply(op, x, plan_steps, gens, flavour)

    monkeypatch.setattr(bsrgan, '_apply', counted)
    BSRGANDegradation(4, threads=1).degrade(photos(12, 64), list(range(100, 112)))  # one thread: one grouping
    lockstep = sum(len({own[i] for own in steps.values() if i < len(own)}) for i in range(max(map(len, steps.values()))))
    assert len(calls) < 0.95 * lockstep and sum(map(len, steps.values())) > 1.5 * len(calls)


def test_bsrgan_blur_kernels_cut_from_the_batch_grid_equal_the_group_grid():
    """run_plans builds every blur kernel once on the batch's largest grid (_blur_kernels); _apply cuts a
    group's kernels to the group's largest size: the taps of building them on that grid directly."""
    from blindsr.degradations import bsrgan
    from blindsr.degradations.kernels import gaussian_kernels
    g = torch.Generator().manual_seed(3)
    sizes = [7, 25, 13, 11, 19]
    plans = [[bsrgan.Step('blur', 'blur0', (), {'var_x': 8 * torch.rand(1, generator=g).item(), 'size': s,
                                                'var_y': 8 * torch.rand(1, generator=g).item(), 'theta': 3.0 * i})]
             for i, s in enumerate(sizes)]
    bsrgan._blur_kernels(plans, torch.device('cpu'))
    x = torch.rand(3, 3, 40, 40, generator=g)
    group = [p[0] for p in plans[2:]]  # largest size 19 of a 25 grid
    direct = gaussian_kernels(19, *(torch.tensor([s.values[k] for s in group], dtype=torch.float64)
                                    for k in ('var_x', 'var_y', 'theta')), 'variance',
                              support=torch.tensor(sizes[2:]), dtype=torch.float64)
    cut = torch.stack([s.values['kernel'] for s in group])[:, 3:22, 3:22]
    assert torch.equal(cut != 0, direct != 0) and (cut - direct).abs().max() < 1e-15
    from blindsr.degradations.blur import blur
    assert torch.allclose(bsrgan._apply('blur', x, group, [], 'opencv'), blur(x, direct, flip=True), atol=1e-6)


@pytest.mark.parametrize('cls', [BSRGANDegradation, BSRGANPlusDegradation])
def test_bsrgan_samples_split_over_threads_give_the_same_batch(cls):
    """CPU batches split over a pool of single-threaded workers (blindsr.degradations.threads): the same LR,
    parameters and targets as the batch run in the calling thread."""
    hr, seeds = photos(7, 64), list(range(40, 47))
    lr1, p1 = cls(4, lq_patchsize=8, threads=1).degrade(hr, seeds)
    lr3, p3 = cls(4, lq_patchsize=8, threads=3).degrade(hr, seeds)
    assert torch.equal(lr1, lr3)
    torch.testing.assert_close(p3, p1, rtol=0, atol=0, equal_nan=True)


def test_sample_threads_leave_torchs_thread_count_alone():
    """The pool's threads run torch single-threaded; the caller and threads started later keep its count."""
    import threading

    from blindsr.degradations.threads import map_chunks
    seen = map_chunks(lambda s: [(s.start, s.stop, torch.get_num_threads())], 5, 2)
    assert [(a, b) for a, b, _ in seen] == [(0, 1), (1, 2), (2, 4), (4, 5)] and {n for *_, n in seen} == {1}
    assert map_chunks(lambda s: list(range(s.start, s.stop)), 3, 1) == [0, 1, 2]
    later = []
    thread = threading.Thread(target=lambda: later.append(torch.get_num_threads()))
    thread.start()
    thread.join()
    assert later == [torch.get_num_threads()]
    assert BSRGANDegradation(4).threads == 1  # opt-in: by default the LR does not depend on the core count
    with pytest.raises(ValueError, match='threads must be >= 1'):
        BSRGANDegradation(4, threads=0)


def _degrade_in_child(queue, hr: torch.Tensor, expected: torch.Tensor) -> None:
    torch.set_num_threads(1)  # as DataLoader workers run (torch's OpenMP pool does not survive a fork)
    queue.put(torch.equal(BSRGANDegradation(4, threads=2).degrade(hr, [5, 6, 7])[0], expected))


def test_a_forked_process_makes_its_own_sample_threads():
    """The pool is per process: a child forked after the parent used it (a DataLoader worker) starts its own
    instead of waiting on the parent's threads, which a fork does not copy."""
    import multiprocessing
    hr = photos(3, 64)
    parent = BSRGANDegradation(4, threads=2).degrade(hr, [5, 6, 7])[0]
    ctx = multiprocessing.get_context('fork')
    queue = ctx.Queue()
    child = ctx.Process(target=_degrade_in_child, args=(queue, hr, parent))
    child.start()
    try:
        assert queue.get(timeout=60) is True
    finally:
        child.join(timeout=60)
    assert child.exitcode == 0


def test_classic_blurs_isotropic_kernels_as_two_1d_passes(monkeypatch):
    """Isotropic kernels (sigma_x == sigma_y) are outer products: the pipeline marks them separable (1.4x the
    DASR preset's samples/s on CPU; the same 8-bit images as the authors': test_pipeline_references)."""
    from blindsr.degradations import classic
    seen = []
    real = classic.blur
    monkeypatch.setattr(classic, 'blur', lambda *a, separable=False, **k: seen.append(separable) or real(
        *a, separable=separable, **k))
    for kernel, expected in (('iso', True), ('aniso', False)):
        seen.clear()
        ClassicDegradation(4, 'dasr', kernel).degrade(photos(3, 48), [1, 2, 3])
        assert len(seen) == 1 and seen[0].tolist() == [expected] * 3
