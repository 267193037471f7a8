"""python -m blindsr.infer: every input kind keeps its kind, a corrupt image among good ones fails alone (exit
3), weights files are detected end to end (a blindsr export, a BasicSR params_ema file), fp16 overflow falls
back to fp32, and bad weights or options are clear errors."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import skimage.data
import torch
from PIL import Image

from blindsr import cli, infer
from blindsr.archs.bsrnet_arch import to_basicsr_rrdbnet
from blindsr.checkpoint import CheckpointError
from blindsr.infer import main
from blindsr.registry import ARCH_REGISTRY


def tiny(arch: str, **args) -> torch.nn.Module:
    return ARCH_REGISTRY.get(arch)(**args).eval()


@pytest.fixture
def dasr_export(tmp_path):
    """A tiny DASR x2 saved as a blindsr run exports it (BasicSR layout, params and params_ema)."""
    net = tiny('DASR', scale=2, num_feat=8, num_group=1, num_block=1, enc_feat=8)
    path = tmp_path / 'net_g_final.pth'
    torch.save({'params': net.state_dict(), 'params_ema': net.state_dict()}, path)
    return net, path


def expected(net, img: np.ndarray, maxval: int) -> np.ndarray:
    """What the net gives for an HWC RGB image of integers, as integers of the same range."""
    with torch.no_grad():
        sr = net(torch.from_numpy(img.astype(np.float32) / maxval).permute(2, 0, 1)[None])
    return np.clip(np.rint(sr[0].permute(1, 2, 0).numpy() * maxval), 0, maxval)


def photo(size: int = 24) -> np.ndarray:
    return skimage.data.astronaut()[100:100 + size, 180:180 + size]  # RGB uint8


def test_every_input_kind_keeps_its_kind(tmp_path, dasr_export):
    net, weights = dasr_export
    rgb, src = photo(), tmp_path / 'in'
    src.mkdir()
    rgb16 = rgb.astype(np.uint16) * 257 + np.arange(24, dtype=np.uint16)[:, None, None]  # not 8-bit values
    alpha = np.zeros((24, 24), np.uint8)
    alpha[:, 12:] = 255
    kinds = {'rgb8.png': rgb[..., ::-1], 'rgb.jpg': rgb[..., ::-1], 'rgb.webp': rgb[..., ::-1],
             'rgb16.png': rgb16[..., ::-1], 'rgb16.tif': rgb16[..., ::-1], 'gray8.png': rgb[..., 1],
             'gray16.png': rgb16[..., 1], 'rgba.png': np.dstack([rgb[..., ::-1], alpha]),
             'const_alpha.png': np.dstack([rgb[..., ::-1], alpha * 0 + 77])}
    for name, pixels in kinds.items():
        assert cv2.imwrite(str(src / name), pixels), name
    kinds['gray_alpha.png'] = None  # OpenCV writes no gray+alpha PNG (and reads one as BGRA)
    Image.fromarray(np.dstack([rgb[..., 1], alpha]), 'LA').save(src / 'gray_alpha.png')
    (src / 'notes.txt').write_text('not an image')
    main(['-i', str(src), '-o', str(tmp_path / 'out'), '--weights', str(weights)])
    out = {name: cv2.imread(str(tmp_path / 'out' / name), cv2.IMREAD_UNCHANGED) for name in kinds}
    assert sorted(p.name for p in (tmp_path / 'out').iterdir()) == sorted(kinds)
    for name, pixels in out.items():
        assert pixels.shape[:2] == (48, 48), name
    assert {n: p.dtype for n, p in out.items() if '16' in n} == {'rgb16.png': np.uint16, 'rgb16.tif': np.uint16,
                                                                 'gray16.png': np.uint16}
    assert [n for n, p in out.items() if p.ndim == 2] == ['gray8.png', 'gray16.png']
    assert [n for n, p in out.items() if p.ndim == 3 and p.shape[2] == 4] == ['rgba.png', 'const_alpha.png',
                                                                             'gray_alpha.png']
    # colour: the network's output in RGB order, 8-bit or at full 16-bit precision
    assert np.abs(out['rgb8.png'][..., ::-1] - expected(net, rgb, 255)).max() <= 1
    want16 = expected(net, rgb16.astype(np.float64), 65535)
    assert np.abs(out['rgb16.png'][..., ::-1].astype(np.float64) - want16).max() <= 2
    assert np.abs(out['rgb16.tif'][..., ::-1].astype(np.float64) - want16).max() <= 2
    # alpha: upscaled on its own by the net, as a gray image; a constant alpha stays constant
    want_alpha = expected(net, np.repeat(alpha[..., None], 3, axis=2), 255).mean(axis=2)
    assert np.abs(out['rgba.png'][..., 3] - want_alpha).max() <= 1
    assert (out['const_alpha.png'][..., 3] == 77).all()
    assert np.abs(out['rgba.png'][..., :3].astype(int) - out['rgb8.png']).max() <= 1  # colour unaffected


def test_corrupt_image_among_good_ones_fails_alone_with_exit_code_3(tmp_path, dasr_export, capsys):
    _, weights = dasr_export
    src = tmp_path / 'in'
    src.mkdir()
    for name in ('a.png', 'c.png'):
        cv2.imwrite(str(src / name), photo(16))
    (src / 'b.png').write_bytes(b'\x89PNG\r\n\x1a\n' + bytes(30))  # a truncated PNG
    with pytest.raises(SystemExit) as exit_info:  # what `python -m blindsr.infer` runs
        cli.run(lambda _: main(['-i', str(src), '-o', str(tmp_path / 'out'), '--weights', str(weights),
                                '--tile', '12', '--tile-overlap', '2']))
    err = capsys.readouterr().err
    assert exit_info.value.code == 3, err
    assert sorted(p.name for p in (tmp_path / 'out').iterdir()) == ['a.png', 'c.png']
    assert 'error: 1 of 3 images failed' in err and 'b.png: Cannot decode image' in err
    assert '[3/3] c.png: 16x16 -> 32x32 uint8, 4 tiles' in err  # progress over images and tiles


def test_basicsr_params_ema_file_is_detected_end_to_end(tmp_path):
    """An x4 RRDB net saved with BasicSR's RRDBNet names under params_ema: detected as BSRNet, converted."""
    net = tiny('BSRNet', scale=4, num_feat=8, num_block=1, num_grow_ch=4)
    weights = tmp_path / 'rrdb.pth'
    torch.save({'params_ema': to_basicsr_rrdbnet(net.state_dict())}, weights)
    cv2.imwrite(str(tmp_path / 'x.png'), photo(12)[..., ::-1])
    main(['-i', str(tmp_path / 'x.png'), '-o', str(tmp_path / 'out'), '--weights', str(weights), '--scale', '4'])
    got = cv2.imread(str(tmp_path / 'out' / 'x.png'))[..., ::-1]
    assert np.abs(got - expected(net, photo(12), 255)).max() <= 1


def test_fp16_overflow_is_redone_in_fp32(tmp_path, capsys):
    net = tiny('BSRNet', scale=2, num_feat=8, num_block=1, num_grow_ch=4)
    with torch.no_grad():
        net.conv_first.weight.mul_(1e6)  # weights and features beyond fp16's 65504
        net.conv_last.weight.div_(1e6)
    weights = tmp_path / 'big.pth'
    torch.save(net.state_dict(), weights)
    src = tmp_path / 'in'
    src.mkdir()
    for name in ('a.png', 'b.png'):
        cv2.imwrite(str(src / name), photo(8))
    for dtype in ('fp32', 'fp16'):
        main(['-i', str(src), '-o', str(tmp_path / dtype), '--weights', str(weights), '--dtype', dtype])
    err = capsys.readouterr().err
    assert err.count('warning: a.png: float16 gave values it cannot represent') == 1 and 'b.png: float16' not in err
    for name in ('a.png', 'b.png'):
        assert (tmp_path / 'fp16' / name).read_bytes() == (tmp_path / 'fp32' / name).read_bytes()


def test_bad_weights_and_options_are_clear_errors(tmp_path, monkeypatch):
    cv2.imwrite(str(tmp_path / 'x.png'), photo(8))
    common = ['-i', str(tmp_path / 'x.png'), '-o', str(tmp_path / 'out')]
    unknown = tmp_path / 'unknown.pth'
    torch.save({'encoder.weight': torch.zeros(4, 3, 3, 3)}, unknown)
    with pytest.raises(CheckpointError, match=r"unknown.pth holds: .*match no arch blindsr knows. Expected the keys"):
        main([*common, '--weights', str(unknown)])
    monkeypatch.delenv('BLINDSR_WEIGHTS', raising=False)
    with pytest.raises(FileNotFoundError, match=r"'dasr_x4_iso' needs its weights file; blindsr downloads nothing.*"
                                                r"--weights FILE.*BLINDSR_WEIGHTS"):
        main([*common, '--model', 'dasr_x4_iso'])
    teacher = tmp_path / 'teacher.pth'
    torch.save(tiny('KDSRTeacher', scale=2, n_feats=8, n_blocks=1, n_encoder_res=1).state_dict(), teacher)
    with pytest.raises(ValueError, match='KDSR teacher, which needs the HR image'):
        main([*common, '--weights', str(teacher)])
    student = tmp_path / 'student.pth'
    torch.save(tiny('KDSR', scale=2, n_feats=8, n_blocks=1, n_encoder_res=1).state_dict(), student)
    with pytest.raises(ValueError, match=r'--scale 4 asked, but the network is x2 \(KDSR x2'):
        main([*common, '--weights', str(student), '--scale', '4'])
    with pytest.raises(ValueError, match='would overwrite its input'):
        main(['-i', str(tmp_path / 'x.png'), '-o', str(tmp_path / 'x.png'), '--weights', str(student)])
    with pytest.raises(CheckpointError, match='does not fit SRFBN_S'):  # a zoo entry with a file not of it
        main([*common, '--model', 'srfbn_s_x2', '--weights', str(student)])


def test_zoo_model_from_the_weights_folder(tmp_path, monkeypatch):
    """--model NAME builds the zoo entry's arch and takes its file from $BLINDSR_WEIGHTS/<name>.pth."""
    net = tiny('SRFBN_S', scale=2)
    torch.save({f'module.{k}': v for k, v in net.state_dict().items()}, tmp_path / 'srfbn_s_x2.pth')
    monkeypatch.setenv('BLINDSR_WEIGHTS', str(tmp_path))
    cv2.imwrite(str(tmp_path / 'x.png'), photo(8)[..., ::-1])
    main(['-i', str(tmp_path / 'x.png'), '-o', str(tmp_path / 'out' / 'y.png'), '--model', 'srfbn_s_x2'])
    got = cv2.imread(str(tmp_path / 'out' / 'y.png'))[..., ::-1]
    assert np.abs(got - expected(net, photo(8), 255)).max() <= 1


def test_an_op_missing_in_bf16_is_redone_in_fp32(tmp_path, dasr_export, monkeypatch, capsys):
    net, weights = dasr_export
    real = infer.upscale

    def upscale(net, lq, scale, **kw):
        if lq.dtype == torch.bfloat16:
            raise RuntimeError('"slow_conv2d_cpu" not implemented for \'BFloat16\'\nmore lines')
        return real(net, lq, scale, **kw)
    monkeypatch.setattr(infer, 'upscale', upscale)
    cv2.imwrite(str(tmp_path / 'x.png'), photo(8)[..., ::-1])
    main(['-i', str(tmp_path / 'x.png'), '-o', str(tmp_path / 'out'), '--weights', str(weights), '--dtype', 'bf16'])
    assert 'warning: x.png: bfloat16 failed ("slow_conv2d_cpu" not implemented for \'BFloat16\'); redoing it in fp32' \
        in capsys.readouterr().err
    assert np.abs(cv2.imread(str(tmp_path / 'out' / 'x.png'))[..., ::-1] - expected(net, photo(8), 255)).max() <= 1
