"""SRFBN-S: the released weights load strictly, outputs equal the authors' network, and blindsr's
bicubic protocol + test entry point reproduce the SRFBN paper's numbers.

Recorded values come from the authors' network (Paper99/SRFBN_CVPR19 @046f693, networks/srfbn_arch.py
and blocks.py, patched only to drop a ``.cuda()`` call) with the released SRFBN-S weights, run on
CPU on the top-left 48x40 of Set5 baby's bicubic LR (blindsr's MATLAB bicubic, 8-bit), input x255;
statistics of the last step's output in 0..255. Our network matched it to 1.5e-5 (float32 rounding).
Paper / reference numbers: ../shared/reference/srfbn-reference.md (SRFBN paper Table 3, SRFBN-S).
"""

from __future__ import annotations

import pytest
import torch

import blindsr
from blindsr import test as test_entry
from blindsr.data.image_io import read_image, to_tensor
from blindsr.degradations.bicubic import BicubicDegradation
from blindsr.registry import ARCH_REGISTRY
from conftest import REPO, SHARED

pytestmark = pytest.mark.skipif(not (SHARED / 'weights' / 'darsr').is_dir(),
                                reason=f'shared weights not found at {SHARED} (set BLINDSR_SHARED)')

AUTHORS = {  # scale: (mean, std, values at flat indices 0, 1000, 5000, -1, output shape)
    2: (210.671265, 64.979149, [251.6706, 248.1916, 242.3896, 46.5134], (1, 3, 96, 80)),
    4: (147.756531, 76.777802, [252.0499, 248.4127, 244.5165, 38.6577], (1, 3, 192, 160)),
}
PAPER = {  # (scale, set): (PSNR, SSIM) of SRFBN-S
    (2, 'Set5'): (37.78, 0.9597), (2, 'Set14'): (33.35, 0.9156), (2, 'BSD100'): (32.00, 0.8970),
    (4, 'Set5'): (31.98, 0.8923), (4, 'Set14'): (28.45, 0.7779), (4, 'BSD100'): (27.44, 0.7313),
}
SET5_REFERENCE = {  # per image PSNR of the reference run (srfbn-reference.md §3)
    2: {'baby': 38.830, 'bird': 43.034, 'butterfly': 34.849, 'head': 35.989, 'woman': 36.217},
    4: {'baby': 33.660, 'bird': 34.568, 'butterfly': 28.189, 'head': 32.957, 'woman': 30.539},
}


def weights(scale: int):
    return SHARED / 'weights' / 'darsr' / f'SRFBN-S_x{scale}_BI.pth'


@pytest.mark.parametrize('scale', [2, 4])
def test_released_weights_load_strictly_and_match_the_authors(scale):
    net = ARCH_REGISTRY.get('SRFBN_S')(scale=scale).eval()
    result = blindsr.load_pretrained(net, weights(scale))
    assert not result.missing and not result.unexpected
    assert sum(p.numel() for p in net.parameters()) == {2: 282442, 4: 483146}[scale]
    hr = to_tensor(read_image(SHARED / 'data' / 'Set5' / 'baby.png'))[None]
    lr, _ = BicubicDegradation(scale)(hr, None)
    with torch.no_grad():
        out = net(lr[..., :48, :40]) * 255
    mean, std, values, shape = AUTHORS[scale]
    assert tuple(out.shape) == shape
    assert float(out.mean()) == pytest.approx(mean, abs=1e-4)
    assert float(out.std()) == pytest.approx(std, abs=1e-4)
    assert out.flatten()[[0, 1000, 5000, -1]].tolist() == pytest.approx(values, abs=1e-3)


@pytest.mark.parametrize('scale, sets', [(4, ['Set5', 'Set14']), (2, ['Set5'])])
def test_bicubic_protocol_reproduces_the_paper(scale, sets, tmp_path, monkeypatch):
    """The project's recipe options/test/srfbn/srfbn_s_x{s}_bi.yml, run by the test entry point.

    (All six set/scale pairs are checked by running the recipes; this test keeps CI time down.)
    """
    monkeypatch.chdir(REPO)
    overrides = ['--set', f'path.results_root={tmp_path}']
    for dropped in {'Set5', 'Set14', 'BSD100'} - set(sets):
        overrides += ['--set', f'datasets.{dropped}=null']
    results = test_entry.main(['-opt', f'options/test/srfbn/srfbn_s_x{scale}_bi.yml', *overrides])
    assert sorted(results) == sorted(sets)
    for name in sets:
        psnr, ssim = PAPER[(scale, name)]
        assert results[name]['mean']['psnr'] == pytest.approx(psnr, abs=0.01)
        assert results[name]['mean']['ssim'] == pytest.approx(ssim, abs=0.0002)
    per_image = {r['name']: r['psnr'] for r in results['Set5']['images']}
    assert per_image == pytest.approx(SET5_REFERENCE[scale], abs=0.005)
