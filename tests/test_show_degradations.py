"""scripts/show_degradations.py: a grid of sampled degradations annotated with their parameters."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import torch

from blindsr.data.image_io import read_image

REPO = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location('show_degradations', REPO / 'scripts' / 'show_degradations.py')
show = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = show
spec.loader.exec_module(show)


class BlurryForTests:
    """Samples a per-image box-blur width, returns it and its kernel as parameters."""

    def __call__(self, hr, generator):
        width = torch.randint(1, 4, (hr.shape[0], ), generator=generator) * 2 + 1
        kernels = torch.zeros(hr.shape[0], 7, 7)
        for i, w in enumerate(width.tolist()):
            kernels[i, 3 - w // 2:4 + w // 2, 3 - w // 2:4 + w // 2] = 1 / w**2
        return torch.nn.functional.avg_pool2d(hr, 2), {'width': width.float(), 'kernel': kernels}


def test_grid_tiles_and_annotations(tmp_path):
    hr = torch.rand(1, 3, 64, 64)
    image, drawn = show.grid(hr, BlurryForTests(), n=5, seed=0, columns=3)
    assert image.shape == (2 * 64, 3 * 64, 3) and image.dtype == np.uint8
    assert len(drawn) == 5 and set(drawn[0]) == {'width', 'kernel'}
    lines, kernel = show.describe({'width': torch.tensor([3.0, 5.0]), 'kernel': torch.ones(2, 7, 7)}, 1)
    assert lines == ['width 5'] and kernel.shape == (7, 7)


def test_script_writes_png(tmp_path):
    show.main(['--pipeline', 'bicubic', '--scale', '2', '-n', '3', '--crop', '64', '--out', str(tmp_path / 'g.png')])
    assert read_image(tmp_path / 'g.png').shape == (64, 4 * 64, 3)


def test_script_shows_a_shuffled_pipeline(tmp_path):
    out = tmp_path / 'bsrgan.png'
    show.main(['--pipeline', 'bsrgan', '-n', '3', '--crop', '128', '--out', str(out)])
    drawn = json.loads(Path(str(out) + '.json').read_text())
    assert read_image(out).shape == (128, 4 * 128, 3) and len(drawn) == 3
    assert len(drawn[0]['order']) == 7 and 30 <= drawn[0]['jpeg_final_quality'] <= 95
    lines, kernel = show.describe({'order': torch.tensor([[2, 0, 1]]), 'skipped': torch.tensor([float('nan')]),
                                   'mix': torch.eye(3)[None]}, 0)
    assert lines == ['order 2 0 1'] and kernel is None
