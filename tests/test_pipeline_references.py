"""Each pipeline against the authors' code, for a fixed HR crop and fixed parameters.

tests/data/authors_degradations.npz was recorded once, outside the repo, by running the authors' code
on ``hr96`` = ../shared/data/Set5/baby.png[100:196, 100:196] (RGB uint8), x4:

- ``dasr_*``: The-Learning-And-Vision-Atelier-LAVA/DASR@51524af utils/util.py ``SRMDPreprocessing``
  (random=False; iso sig 2.0; aniso lambda_1 3.0, lambda_2 1.0, theta 0.5 rad passed as degrees, as
  its non-random path expects; noise 0; input 0..255);
- ``kdsr_*``: Zj-BinXia/KDSR@c7c9e81 KDSR-classic/utils/util2.py, the same settings in 0..1;
- ``cdsr_aniso``: ZhouYiiFeng/CDSR@1828e66 utils/util_ma.py (sig1 6.0, sig2 2.5, theta 0.7, its default
  sample_mode, noise 0) and the kernel it built;
- ``bsrgan_*``: cszn/KAIR@fc1732f utils/utils_blindsr.py, the ops of ``degradation_bsrgan(_plus)``
  called with fixed values in the order given below (add_blur's convolve, the cv2 resizes,
  imresize_np, shift_pixel, add_sharpening, add_JPEG_noise's cv2 codec);
- ``realesrgan_p1``: basicsr 1.4.2 ``RealESRGANModel.feed_data``'s ops with fixed values (no noise):
  filter2D, F.interpolate, DiffJPEG, circular_lowpass_kernel, bivariate_Gaussian.

Patches needed to run that code today (import-time, in the scratch folder only): SciPy's removed
``interp2d`` -> ``RectBivariateSpline(kx=1, ky=1)`` and ``scipy.finfo`` -> ``numpy.finfo`` (KAIR, MANet),
``.cuda()`` -> no-op, matplotlib stubbed, BasicSR's torchvision ``functional_tensor`` import and
``filter2D`` given contiguous input. Noise cannot be compared this way (different random streams); its
statistics are tested in test_pipelines.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from blindsr.degradations.bsrgan import Step, run_plans
from blindsr.degradations.classic import PRESETS, classic_kernels, degrade_classic
from blindsr.degradations.kernels import gaussian_kernels, shift_kernels
from blindsr.degradations.realesrgan import RealESRGANDegradation
from blindsr.degradations.sharpen import usm_sharp

REF = np.load(Path(__file__).parent / 'data' / 'authors_degradations.npz')
HR = torch.from_numpy(REF['hr96']).permute(2, 0, 1)[None].float() / 255


def levels(x: torch.Tensor) -> np.ndarray:
    return (x[0].permute(1, 2, 0).clamp(0, 1) * 255).round().numpy().astype(np.int16)


def assert_matches(ours: torch.Tensor, key: str) -> None:
    """Within 0.5/255 after quantisation: the same 8-bit image."""
    diff = np.abs(levels(ours) - REF[key].astype(np.int16))
    assert diff.max() == 0, f'{key}: {int((diff > 0).sum())} pixels differ, by up to {diff.max()} levels'


@pytest.mark.parametrize('key, preset, sigma_x, sigma_y, theta', [
    ('dasr_iso', 'dasr', 2.0, 2.0, 0.0), ('dasr_aniso', 'dasr', 3.0, 1.0, 0.5),
    ('kdsr_iso', 'kdsr', 2.0, 2.0, 0.0), ('kdsr_aniso', 'kdsr', 3.0, 1.0, 0.5),
    ('cdsr_aniso', 'cdsr_manet', 6.0, 2.5, 0.7),
])
def test_classic_presets(key, preset, sigma_x, sigma_y, theta):
    variant = PRESETS[preset]
    kernel = classic_kernels(variant, 4, sigma_x, sigma_y, theta)
    if f'{key}_kernel' in REF.files:
        assert np.abs(kernel[0].double().numpy() - REF[f'{key}_kernel']).max() < 1e-8
    assert_matches(degrade_classic(HR, kernel, 0.0, 4, variant), key)
    if sigma_x == sigma_y:  # isotropic: what the training pipeline runs, two 1-D passes, is the same 8-bit image
        assert_matches(degrade_classic(HR, kernel, 0.0, 4, variant, separable=True), key)


def blur_step(name, var_x, var_y, theta, size):
    return Step('blur', name, (), {'var_x': var_x, 'var_y': var_y, 'theta': theta, 'size': size})


def resize_step(name, size, mode, clip=True):  # mode: KAIR's interpolation code 1, 2, 3
    return Step('resize', name, (size, clip), {'mode': mode - 1})


def jpeg_step(name, quality):
    return Step('jpeg', name, (), {'quality': quality})


BSRGAN_CHAINS = {
    # blur(aniso 15, theta 0.7, l1 3, l2 1.5) -> down2 cv2 cubic by 1/2.7 -> blur(iso 11, sigma 1.2)
    # -> down3 cv2 area to 96/4 -> JPEG 60 -> final JPEG 80
    'bsrgan_p1': [blur_step('blur0', 3.0, 1.5, 0.7, 15), resize_step('down2', (35, 35), 2),
                  blur_step('blur1', 1.44, 1.44, 0.0, 11), resize_step('down3', (24, 24), 3),
                  jpeg_step('jpeg', 60), jpeg_step('jpeg_final', 80)],
    # MATLAB halving -> down2 shifted 25x25 Gaussian (sigma 0.9, sf 2) + [0::2] -> blur(iso 9, sigma 1)
    # -> down3 cv2 linear to 48/2 -> final JPEG 70
    'bsrgan_p2': [Step('matlab_half', 'down1'), Step('shifted_down', 'down2', (2,), {'sigma': 0.9}),
                  blur_step('blur1', 1.0, 1.0, 0.0, 9), resize_step('down3', (24, 24), 1),
                  jpeg_step('jpeg_final', 70)],
    # (on the USM-sharpened HR) add_resize up 1.5 cubic -> blur(aniso 13, theta 1.2, l1 2, l2 5)
    # -> final cv2 area resize to 96/4 (not clipped) -> final JPEG 90
    'bsrgan_plus_p1': [resize_step('resize_a', (144, 144), 2), blur_step('blur_a', 2.0, 5.0, 1.2, 13),
                       resize_step('resize_final', (24, 24), 3, clip=False), jpeg_step('jpeg_final', 90)],
}


@pytest.mark.parametrize('key', BSRGAN_CHAINS)
def test_bsrgan_ops(key):
    hr = HR
    if key.startswith('bsrgan_plus'):
        hr = usm_sharp(HR)
        assert_matches(hr, 'bsrgan_plus_p1_hq')
    assert_matches(torch.cat(run_plans(hr, [BSRGAN_CHAINS[key]], [torch.Generator()])), key)
    # the batched on-device JPEG instead of OpenCV's codec: close, not equal
    lib = torch.cat(run_plans(hr, [BSRGAN_CHAINS[key]], [torch.Generator()], 'libjpeg'))
    assert np.abs(levels(lib) - REF[key].astype(np.int16)).mean() < 2


def test_bsrgan_kernels():
    ours = gaussian_kernels(25, 3.0, 1.5, 0.7, 'variance', support=15, dtype=torch.float64)[0, 5:20, 5:20]
    assert np.abs(ours.numpy() - REF['bsrgan_p1_kernel1']).max() < 1e-12
    shifted = shift_kernels(gaussian_kernels(25, 0.9, 0.9, dtype=torch.float64), 0.5)[0]  # fspecial std 0.9
    assert np.abs(shifted.numpy() - REF['bsrgan_p2_kshifted']).max() < 1e-12


def test_realesrgan_pipeline(monkeypatch):
    """The pipeline with its draws fixed to the recorded chain (noise of level 0)."""
    pipeline = RealESRGANDegradation(4)
    fixed = {'kernel1_size': 21, 'kernel1_sinc': False, 'kernel1_omega_c': 0.0, 'kernel1_kind': 1,
             'kernel1_sigma_x': 2.0, 'kernel1_sigma_y': 1.0, 'kernel1_theta': 0.3, 'kernel1_beta': 1.0,
             'kernel2_size': 13, 'kernel2_sinc': True, 'kernel2_omega_c': 1.5, 'kernel2_kind': 0,
             'kernel2_sigma_x': 1.0, 'kernel2_sigma_y': 1.0, 'kernel2_theta': 0.0, 'kernel2_beta': 1.0,
             'final_sinc': True, 'final_size': 21, 'final_omega_c': 2.0,
             'noise1_sigma': 0.0, 'noise1_sigma_gray': False, 'noise1_poisson_scale': 0.0,
             'noise1_poisson_gray': False, 'jpeg1_quality': 70.0, 'noise2_sigma': 0.0, 'noise2_sigma_gray': False,
             'noise2_poisson_scale': 0.0, 'noise2_poisson_gray': False, 'jpeg2_quality': 50.0}
    structure = {'resize1_factor': 0.8, 'resize1_mode': 2.0, 'noise1_gaussian': 1.0, 'blur2': 1.0,
                 'resize2_factor': 1.0, 'resize2_mode': 0.0, 'noise2_gaussian': 1.0, 'final_resize_first': 1.0,
                 'final_mode': 0.0}
    monkeypatch.setattr(pipeline, '_sample', lambda g: {k: torch.tensor([v]) for k, v in fixed.items()})
    monkeypatch.setattr(pipeline, '_structure', lambda g: structure)
    lq, params = pipeline.degrade(HR, [0])
    for ours, key in ((params['kernel1'], 'kernel1'), (params['kernel2'], 'kernel2'), (params['sinc_kernel'], 'sinc')):
        assert np.abs(ours[0].double().numpy() - REF[f'realesrgan_p1_{key}']).max() < 1e-7
    assert_matches(lq, 'realesrgan_p1')
