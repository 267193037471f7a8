"""The benchmark (scripts/benchmark.py) on a two-image set with two tiny models: the markdown and CSV
tables, the plots, the crops and the HTML page; the cache; and the page in headless Chromium."""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import REPO, write_photos

from blindsr.data.image_io import read_image
from blindsr.registry import ARCH_REGISTRY
from blindsr.report import runner

NETS = {'bsrnet': ('BlindSRModel', {'type': 'BSRNet', 'scale': 2, 'num_feat': 8, 'num_block': 1, 'num_grow_ch': 4}),
        'dasr': ('DASRModel', {'type': 'DASR', 'scale': 2, 'num_feat': 8, 'num_group': 1, 'num_block': 1,
                               'enc_feat': 8})}
PROTOCOLS = {'dasr_iso': ['sig0.0', 'sig0.6', 'sig1.2', 'sig1.8'],
             'dasr_aniso_noise': [f'l{k}_t{t}_n{n}' for k, t in (('0.2_4', 0), ('3.5_1.5', 30)) for n in (0, 5, 10)]}


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / 'scripts' / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def write_method(folder: Path, name: str, seed: int) -> Path:
    """A test recipe of a tiny net with seeded random weights beside it."""
    model_type, net = NETS[name]
    torch.manual_seed(seed)
    torch.save(ARCH_REGISTRY.get(net['type'])(**{k: v for k, v in net.items() if k != 'type'}).state_dict(),
               folder / f'{name}_{seed}.pth')
    recipe = folder / f'{name}.yml'
    recipe.write_text(yaml.safe_dump({'name': f'tiny_{name}', 'model_type': model_type, 'scale': 2, 'network_g': net,
                                      'path': {'pretrain_network_g': str(folder / f'{name}_{seed}.pth')}}))
    return recipe


@pytest.fixture(scope='module')
def bench(tmp_path_factory):
    """One benchmark run (2 methods x 2 protocols x 1 set + 1 LR-only set), its arguments and folder."""
    root = tmp_path_factory.mktemp('bench')
    hr = write_photos(root / 'hr', ['astronaut', 'chelsea'], size=48)
    for protocol in PROTOCOLS:
        load_script('make_testsets').make_testset(hr, protocol, 2, root / 'testsets' / f'Tiny_{protocol}_x2')
    lr_only = write_photos(root / 'real', ['coffee', 'rocket'], size=128)
    methods = [str(write_method(root, 'bsrnet', 1)), f"dasr={write_method(root, 'dasr', 2)}"]
    args = ['--methods', *methods, '--protocols', *PROTOCOLS, '--sets', 'Tiny', '--lr-sets', f'Real={lr_only}',
            '--scale', '2', '--testsets', str(root / 'testsets'), '--out', str(root / 'report'), '--lpips-weights',
            'random', '--device', 'cpu', '--crop-size', '32', '--bicubic']
    script = load_script('benchmark')
    with pytest.MonkeyPatch.context() as patch:  # the zoo's hook: one cell has the authors' numbers
        patch.setattr(runner, 'reported_numbers', lambda m, s, p, setting, scale: {
            ('tiny_bsrnet', 'dasr_iso', 'sig1.2'): {'psnr': 30.5, 'ssim': 0.9},
            ('dasr', 'dasr_iso', 'mean'): {'psnr': 29.0}}.get((m, p, setting), {}))
        first = script.main(args)
    return {'script': script, 'args': args, 'root': root, 'first': first}


def test_benchmark_writes_tables_plots_and_page(bench):
    out, first = bench['root'] / 'report', bench['first']
    assert (first['benchmark'].computed, first['benchmark'].cached) == (6, 0)
    rows = list(csv.DictReader((out / 'benchmark.csv').read_text().splitlines()))
    assert len(rows) == 3 * (4 + 1 + 6 + 1 + 1)  # two methods and bicubic; each setting, the means, the LR set
    cells = {(r['method'], r['protocol'], r['setting']): r for r in rows}
    methods = ('bicubic', 'tiny_bsrnet', 'dasr')
    assert set(cells) == {(m, p, s) for m in methods for p, ss in PROTOCOLS.items() for s in [*ss, 'mean']} | {
        (m, 'real', 'real') for m in methods}
    mean = cells[('dasr', 'dasr_iso', 'mean')]
    assert float(mean['psnr']) == pytest.approx(np.mean([float(cells[('dasr', 'dasr_iso', s)]['psnr'])
                                                         for s in PROTOCOLS['dasr_iso']]))
    # each number is the test entry point's mean over the two images of that setting
    row = cells[('dasr', 'dasr_iso', 'sig1.2')]
    result_dirs = {(r['method'], r['protocol'], r['setting']): r['results_dir'] for r in first['benchmark'].rows}
    saved = json.loads((Path(result_dirs[('dasr', 'dasr_iso', 'sig1.2')]) / 'results.json').read_text())
    assert [i['name'] for i in saved['images']] == ['astronaut', 'chelsea']
    for key in ('psnr', 'ssim', 'lpips'):
        assert float(row[key]) == pytest.approx(saved['mean'][key]) and key in saved['images'][0]
    assert float(row['ms_per_image']) == pytest.approx(1000 * saved['mean']['time_s'])
    for key in ('psnr', 'ssim', 'lpips'):
        assert float(cells[('bicubic', 'dasr_iso', 'sig1.2')][key]) == pytest.approx(saved['mean'][f'bicubic_{key}'])
    assert row['device'] == 'cpu' and row['images'] == '2' and float(row['sigma_x']) == 1.2
    assert int(cells[('tiny_bsrnet', 'dasr_iso', 'sig0.0')]['params']) == sum(
        p.numel() for p in ARCH_REGISTRY.get('BSRNet')(2, num_feat=8, num_block=1, num_grow_ch=4).parameters())
    real = cells[('dasr', 'real', 'real')]
    assert float(real['niqe']) > 0 and real['psnr'] == ''
    assert cells[('tiny_bsrnet', 'dasr_iso', 'sig1.2')]['reported_psnr'] == '30.5'
    markdown = (out / 'benchmark.md').read_text()
    assert "## Tiny, dasr_iso, x2: PSNR / SSIM / LPIPS on Y (authors' numbers in brackets)\n" in markdown
    assert '## Tiny, dasr_aniso_noise, x2: PSNR / SSIM / LPIPS on Y\n' in markdown  # no reported numbers there
    assert '## Real, real, x2: NIQE (lower is better)\n' in markdown
    assert '| method | sig0.0 | sig0.6 | sig1.2 | sig1.8 | mean | params | ms / image | device |\n' \
        '|---|---|---|---|---|---|---|---|---|\n| bicubic |' in markdown
    assert f"| {float(mean['psnr']):.2f} / {float(mean['ssim']):.4f} / {float(mean['lpips']):.4f} (29.00) |" in markdown
    assert '| l0.2_4_t0_n0 | l0.2_4_t0_n5 | l0.2_4_t0_n10 | l3.5_1.5_t30_n0 |' in markdown  # numbers in order
    bsrnet = cells[('tiny_bsrnet', 'dasr_iso', 'sig1.2')]
    numbers = ' / '.join(f'{float(bsrnet[k]):.{d}f}' for k, d in (('psnr', 2), ('ssim', 4), ('lpips', 4)))
    assert f'| {numbers} (30.50 / 0.9000) |' in markdown
    # plots: PSNR vs width (dasr_iso's noise-free widths), vs noise (dasr_aniso_noise's levels); crops per protocol
    assert sorted(p.name for p in first['plots']) == ['psnr_vs_noise_x2.png', 'psnr_vs_width_x2.png']
    assert sorted(p.name for p in first['crops']) == ['Tiny_dasr_aniso_noise_x2_l3.5_1.5_t30_n0_astronaut.png',
                                                     'Tiny_dasr_iso_x2_sig1.2_astronaut.png']
    for png in first['plots'] + first['crops']:
        img = read_image(png)
        assert img.shape[0] > 100 and img.std() > 0.05, png
    crop_dir = out / 'crops' / 'Tiny_dasr_iso_x2_sig1.2_astronaut'
    assert sorted(p.name for p in crop_dir.iterdir()) == ['dasr.png', 'hr.png', 'lr.png', 'tiny_bsrnet.png']
    assert {read_image(p).shape for p in crop_dir.iterdir()} == {(32, 32, 3)}
    page = (out / 'index.html').read_text()
    sources = re.findall(r'<img src="([^"]+)"', page)
    assert len(sources) == 2 + 2 * (3 + 2 + 1) and all((out / s).is_file() and not s.startswith('/') for s in sources)
    assert page.count('<table class="results">') == 3 and page.count('type="range"') == 4


def test_cache_skips_what_did_not_change(bench):
    again = bench['script'].main(bench['args'])
    assert (again['benchmark'].computed, again['benchmark'].cached) == (0, 6)
    def unreported(rows):
        return [{k: v for k, v in r.items() if not k.startswith('reported_')} for r in rows]
    assert unreported(again['benchmark'].rows) == unreported(bench['first']['benchmark'].rows)
    relabelled = bench['script'].main([a.replace('dasr=', 'other=') for a in bench['args']])
    assert (relabelled['benchmark'].computed, relabelled['benchmark'].cached) == (0, 6)
    assert {r['method'] for r in relabelled['benchmark'].rows} == {'bicubic', 'tiny_bsrnet', 'other'}
    write_method(bench['root'], 'bsrnet', 3)  # new weights for one method: only its three jobs run again
    third = bench['script'].main(bench['args'])
    assert (third['benchmark'].computed, third['benchmark'].cached) == (3, 3)


CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
                  '--disable-background-networking', '--disable-component-update', '--disable-sync',
                  '--hide-scrollbars', '--virtual-time-budget=5000']


def chromium(page: Path, profile: Path, *args: str) -> str:
    """Run headless Chromium on ``page``; its stdout. Missing Chromium fails in CI (``make install`` installs
    it) and skips elsewhere."""
    binary = shutil.which('chromium') or shutil.which('chromium-browser')
    if binary is None:
        message = "headless Chromium not found: `make test` installs it (Debian: apt-get install -y chromium)"
        if os.environ.get('CI'):
            pytest.fail(message)
        pytest.skip(message)
    done = subprocess.run([binary, *CHROMIUM_FLAGS, f'--user-data-dir={profile}', *args, page.as_uri()],
                          check=False, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f'chromium failed ({done.returncode}): {done.stderr[-2000:]}'
    return done.stdout


def test_page_renders_in_headless_chromium(bench, tmp_path):
    """A screenshot of the page shows something, every image loads, and the tables are there; an image that
    is gone is caught."""
    out = tmp_path / 'report'
    shutil.copytree(bench['root'] / 'report', out, ignore=shutil.ignore_patterns('cache'))
    page = out / 'index.html'
    shot = tmp_path / 'page.png'
    chromium(page, tmp_path / 'profile', '--window-size=1280,2000', f'--screenshot={shot}')
    pixels = read_image(shot)
    assert pixels.shape == (2000, 1280, 3) and pixels.std() > 0.1
    dom = chromium(page, tmp_path / 'profile', '--dump-dom')
    images = re.findall(r'<img [^>]*>', dom)
    assert len(images) == 14 and all('data-loaded="yes"' in img for img in images)
    assert 'data-images-checked="14"' in dom and re.search(r'<p id="image-status"></p>', dom)
    assert len(re.findall(r'<table class="results">', dom)) == 3 and dom.count('<td>bicubic</td>') == 3
    assert re.search(r'<th>sig0\.0</th><th>sig0\.6</th><th>sig1\.2</th><th>sig1\.8</th><th>mean</th>', dom)
    (out / 'plots' / 'psnr_vs_width_x2.png').unlink()
    dom = chromium(page, tmp_path / 'profile', '--dump-dom')
    broken = [img for img in re.findall(r'<img [^>]*>', dom) if 'data-loaded="no"' in img]
    assert len(broken) == 1 and 'psnr_vs_width_x2.png' in broken[0]
    assert '<p id="image-status">1 of 14 images did not load</p>' in dom


def test_wrong_benchmark_inputs_say_what_to_do(tmp_path):
    recipe = write_method(tmp_path, 'bsrnet', 1)
    with pytest.raises(FileNotFoundError, match=r'make it with: python scripts/make_testsets.py --hr <folder of '
                                                r'Set5 HR images> --protocol gaussian8 --scale 2 --out .*Set5_gaussian8_x2'):
        runner.run_benchmark([runner.parse_method(str(recipe))], ['Set5'], ['gaussian8'], tmp_path, tmp_path / 'c')
    with pytest.raises(ValueError, match='methods tiny_bsrnet are given more than once; label them apart'):
        runner.run_benchmark([runner.parse_method(str(recipe))] * 2, [], [], tmp_path, tmp_path / 'c')
    with pytest.raises(FileNotFoundError, match='weights file .*nope.pth not found'):
        runner.parse_method(f'x={recipe}@{tmp_path / "nope.pth"}')
    assert runner.parse_method(f'mine={recipe}@{tmp_path / "bsrnet_1.pth"}').name == 'mine'


def test_a_recipes_own_table2_summary_does_not_stop_its_jobs(tmp_path):
    """A recipe asking for the Table-2 summary (rows by noise level; CDSR's test recipes) still runs on a
    protocol whose settings record no noise level: each job's summary is the benchmark's own."""
    recipe = write_method(tmp_path, 'bsrnet', 1)
    opt = yaml.safe_load(recipe.read_text())
    recipe.write_text(yaml.safe_dump({**opt, 'val': {'summary_columns': 'sets'}}))
    hr = write_photos(tmp_path / 'hr', ['astronaut'], size=48)
    load_script('make_testsets').make_testset(hr, 'bicubic', 2, tmp_path / 'testsets' / 'Tiny_bicubic_x2')
    bench = runner.run_benchmark([runner.parse_method(str(recipe))], ['Tiny'], ['bicubic'], tmp_path / 'testsets',
                                 tmp_path / 'cache')
    assert bench.computed == 1
    assert 'bicubic' in {row['setting'] for row in bench.rows if row['method'] == 'tiny_bsrnet'}


def test_a_darsr_recipe_is_a_method_with_its_sr_network(tmp_path, monkeypatch):
    """DARSR's model scores network_sr (BaseModel.main_network), not network_g: the benchmark names its weights
    path.pretrain_network_sr and counts that network's parameters."""
    monkeypatch.setenv('BLINDSR_WEIGHTS', str(tmp_path))
    weights = tmp_path / 'srfbn.pth'
    weights.write_bytes(b'')
    method = runner.parse_method(f'darsr={REPO}/options/test/darsr/darsr_srfbn_s_x4.yml@{weights}')
    assert (method.name, method.network, method.scale) == ('darsr', 'sr', 4)
    opt = method.options([])
    assert opt['path']['pretrain_network_sr'] == str(weights) and 'pretrain_network_g' not in opt['path']
