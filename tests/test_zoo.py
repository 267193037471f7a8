"""The model zoo and arch detection: every zoo configuration is recognised from its recorded keys and shapes
(tests/data/zoo_keys.json.gz, scripts/record_arch_keys.py) in every layout users bring; a layout that matches
nothing, or two archs at once, is a clear error."""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

import pytest
import torch
from conftest import SHARED

from blindsr import detect as detect_mod
from blindsr.archs.bsrnet_arch import to_basicsr_rrdbnet
from blindsr.checkpoint import FORMAT, CheckpointError, save_atomic
from blindsr.degradations.protocols import PROTOCOLS
from blindsr.detect import build, detect, resolved_args, signature
from blindsr.registry import ARCH_REGISTRY
from blindsr.zoo import ZOO, describe, local_weights, main, matching

RECORDED = json.loads(gzip.decompress((Path(__file__).parent / 'data' / 'zoo_keys.json.gz').read_bytes()))
RECORDED.pop('_provenance')

# Parameter counts (nn.Parameters, frozen mean shifts included) of the authors' networks, probed from their code.
AUTHORS_PARAMS = {'dasr_x4_iso': 5_969_307, 'kdsr_s_m_x4_iso': 5_795_099, 'kdsr_s_l_x4_iso': 14_191_003,
                  'kdsr_s_gan_x4': 18_846_107, 'kdsr_t_rec_x4': 18_901_403, 'bsrnet_x4': 16_697_987,
                  'bsrgan_x2': 16_661_059, 'srfbn_s_x2': 282_442, 'srfbn_s_x4': 483_146}
# A few keys/shapes of the authors' files (their layouts as probed), which the recordings must contain.
AUTHORS_SHAPES = {
    'dasr_x4_iso': {'G.compress.0.weight': [64, 256], 'G.tail.0.2.weight': [256, 64, 3, 3],
                    'G.body.4.body.4.da_conv2.kernel.2.weight': [576, 64], 'E.encoder_q.E.15.weight': [256, 256, 3, 3]},
    'dasr_x3_iso': {'G.tail.0.0.weight': [576, 64, 3, 3]},
    'kdsr_s_m_x4_iso': {'G.body.0.body.52.da_conv1.kernel.2.weight': [576, 64], 'E_st.E.11.weight': [128, 64, 3, 3],
                        'E_st.E.10.body.2.weight': [64, 64, 3, 3], 'E_st.compress.0.weight': [64, 256]},
    'kdsr_s_l_x4_iso': {'E_st.E.11.weight': [512, 256, 3, 3], 'E_st.mlp.0.weight': [512, 512]},
    'kdsr_s_gan_x4': {'E_st.E.12.weight': [512, 256, 3, 3], 'G.tail.0.2.weight': [512, 128, 3, 3]},
    'kdsr_t_rec_x4': {'E.E.0.weight': [128, 51, 3, 3]},
    'bsrnet_x4': {'RRDB_trunk.22.RDB3.conv5.weight': [64, 192, 3, 3], 'upconv2.weight': [64, 64, 3, 3]},
}
BUFFERS = ('running_mean', 'running_var', 'num_batches_tracked')


def state_dict(name: str) -> dict[str, torch.Tensor]:
    """The recorded state dict: zero tensors of the recorded shapes (no memory), the recorded mean-shift values."""
    rec = RECORDED[name]
    return {k: torch.tensor(rec['values'][k]) if k in rec['values'] else torch.zeros(()).expand(shape)
            for k, shape in rec['shapes'].items()}


LAYOUTS = {
    'raw': lambda sd: sd,
    'module. prefix': lambda sd: {f'module.{k}': v for k, v in sd.items()},
    'BasicSR params': lambda sd: {'params': sd},
    'BasicSR params_ema (blindsr export)': lambda sd: {'params': {}, 'params_ema': sd},
    'state_dict wrapper, module. prefix': lambda sd: {'state_dict': {f'module.{k}': v for k, v in sd.items()}},
}


def test_recordings_hold_the_authors_layouts_and_sizes():
    for name, count in AUTHORS_PARAMS.items():
        shapes = RECORDED[name]['shapes']
        assert sum(math.prod(s) for k, s in shapes.items() if not k.endswith(BUFFERS)) == count, name
    for name, shapes in AUTHORS_SHAPES.items():
        assert {k: RECORDED[name]['shapes'].get(k) for k in shapes} == shapes, name
    assert len(RECORDED['srfbn_s_x4']['shapes']) == 51  # the released SRFBN-S files hold 51 tensors


@pytest.mark.parametrize('layout', LAYOUTS)
@pytest.mark.parametrize('name', sorted(RECORDED))
def test_detects_arch_and_arguments_in_every_layout(name, layout):
    rec = RECORDED[name]
    found = detect(LAYOUTS[layout](state_dict(name)))
    assert found.arch == rec['arch']
    assert resolved_args(found.arch, found.args) == resolved_args(rec['arch'], rec['args'])
    assert found.scale == rec['args']['scale']


@pytest.mark.parametrize('name', ['bsrnet_x4', 'bsrgan_x2'])
def test_rrdb_kair_and_basicsr_names(name):
    sd = state_dict(name)
    kair = detect(sd)
    assert (kair.arch, kair.scale) == ('BSRNet', RECORDED[name]['args']['scale'])
    assert 'KAIR' in kair.layout
    if name == 'bsrnet_x4':  # BasicSR names (x4) load into BSRNet through its key converter
        basicsr = detect({'params_ema': to_basicsr_rrdbnet(sd)})
        assert (basicsr.arch, basicsr.args) == (kair.arch, kair.args) and 'BasicSR' in basicsr.layout
    # BasicSR's pixel-unshuffle x2 has no BSRNet equivalent: it is BasicSR's own RRDBNet
    unshuffle = detect(state_dict('basicsr_rrdbnet_x2'))
    assert (unshuffle.arch, unshuffle.scale, unshuffle.args['num_in_ch']) == ('RRDBNet', 2, 3)


def test_zoo_entries_build_and_match_their_detection():
    for entry in ZOO.values():
        with torch.device('meta'):
            ARCH_REGISTRY.get(entry.arch)(**entry.args)  # every entry names a registered arch with valid arguments
    found = detect(state_dict('dasr_x4_iso'))
    assert matching(found) == ['dasr_x4_iso', 'dasr_x4_aniso_noise']
    assert matching(detect(state_dict('kdsr_s_gan_x4'))) == ['kdsr_s_gan_x4', 'kdsr_s_ganv2_x4', 'kdsr_s_rec_x4']
    assert matching(detect(state_dict('srfbn_s_x4'))) == ['srfbn_s_x4']


def test_reported_numbers_name_real_protocol_settings():
    """The benchmark joins the authors' numbers with ours by (set, protocol, setting)."""
    hr = torch.rand(1, 3, 48, 48)
    for entry in ZOO.values():
        for protocol in {r.protocol for r in entry.reported} & set(PROTOCOLS):
            names = {s[0] for s in PROTOCOLS[protocol](hr, entry.scale, torch.Generator().manual_seed(0))}
            assert {r.setting for r in entry.reported if r.protocol == protocol} <= names | {'mean'}, entry.name


def test_blindsr_state_uses_its_network_options(tmp_path):
    """A training state records network_g; arguments the weights do not show (SRFBN's num_steps) come from it."""
    net = ARCH_REGISTRY.get('SRFBN')(scale=2, num_features=8, num_groups=2, num_steps=2)
    state = {'format': FORMAT, 'networks': {'net_g': net.state_dict()},
             'options': {'network_g': {'type': 'SRFBN', 'scale': 2, 'num_features': 8, 'num_groups': 2, 'num_steps': 2}}}
    save_atomic(state, tmp_path / '10.state')
    found = detect(tmp_path / '10.state')
    assert (found.arch, found.args['num_steps']) == ('SRFBN', 2) and 'blindsr state' in found.layout
    x = torch.rand(1, 3, 8, 8)
    assert torch.equal(build(found)(x), net.eval()(x))


def test_unknown_layout_and_ambiguous_signatures_are_clear_errors(tmp_path, monkeypatch):
    with pytest.raises(CheckpointError, match=r"match no arch.*DASR \[DASR names\]: G\.head\.0\.weight.*'params_ema'"):
        detect({'encoder.weight': torch.zeros(2), 'decoder.weight': torch.zeros(2)})
    (tmp_path / 'x.pth').write_bytes(b'\x89PNG\r\n\x1a\n' + bytes(20))
    with pytest.raises(CheckpointError, match='it is a PNG image, not a torch checkpoint'):
        detect(tmp_path / 'x.pth')
    monkeypatch.setattr(detect_mod, 'SIGNATURES', list(detect_mod.SIGNATURES))
    signature('SRFBN', 'conv_in.0.weight')(lambda sd: {'scale': 4})
    with pytest.raises(CheckpointError, match='matches several archs: SRFBN_S .* SRFBN'):
        detect(state_dict('srfbn_s_x4'))


def test_local_weights_folder(tmp_path, monkeypatch):
    monkeypatch.delenv('BLINDSR_WEIGHTS', raising=False)
    with pytest.raises(FileNotFoundError, match=r"downloads nothing. Get BSRGAN.pth from https://github.com/cszn/KAIR"):
        local_weights('bsrgan_x4')
    monkeypatch.setenv('BLINDSR_WEIGHTS', str(tmp_path))
    (tmp_path / 'BSRGAN.pth').write_bytes(b'')
    assert local_weights('bsrgan_x4') == tmp_path / 'BSRGAN.pth'
    with pytest.raises(ValueError, match="Unknown zoo model 'bsrgan'; the zoo holds: dasr_x2_iso"):
        local_weights('bsrgan')


def test_zoo_cli_lists_and_detects(capsys):
    main([])
    out = capsys.readouterr().out
    assert all(f'| {name} |' in out for name in ZOO)
    main(['srfbn_s_x4'])
    assert '| Set14 | bicubic | bicubic | 28.45 | 0.7779 | - |' in capsys.readouterr().out
    srfbn = SHARED / 'weights' / 'darsr' / 'SRFBN-S_x4_BI.pth'
    if srfbn.is_file():  # the authors' real file: recognised by its sha256 and its shapes
        text = describe(srfbn)
        assert 'arch:    SRFBN_S' in text and "the authors' file of srfbn_s_x4" in text and 'x4' in text


def test_benchmark_reads_the_reported_numbers_of_a_zoo_label():
    from blindsr.report.runner import reported_numbers

    assert reported_numbers('srfbn_s_x4', 'Set5', 'bicubic', 'bicubic', 4) == {'psnr': 31.98, 'ssim': 0.8923}
    assert reported_numbers('srfbn_s_x4', 'Set5', 'bicubic', 'bicubic', 2) == {}  # another scale
    assert reported_numbers('my_net', 'Set5', 'bicubic', 'bicubic', 4) == {}
