"""The README's demo (``python -m blindsr.demo``): its whole orchestration, with two training iterations per
net — photos, the held-out test set, both trainings, both tests, the HTML report, blindsr.infer and the table."""

from __future__ import annotations

import re

from blindsr import demo


def test_demo_prints_a_row_per_blur_width_and_a_column_per_method(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    table = demo.main(['--set', 'train.total_iter=2', '--set', 'datasets.train.batch_size_per_gpu=2',
                       '--set', 'datasets.train.num_worker_per_gpu=0'])
    assert table in capsys.readouterr().out
    head, _, *rows = table.splitlines()
    assert re.fullmatch(r'\| blur width \| bicubic \| non-blind BSRNet \(0\.58 M params, \d+\.\d min\) '
                        r'\| blind DASR \(0\.59 M params, \d+\.\d min\) \|', head), head
    assert [row.split(' | ')[0] for row in rows] == ['| 0.0', '| 1.2', '| 2.4', '| 3.6']
    cell = r'\d+\.\d\d / 0\.\d{4}'
    assert all(re.fullmatch(rf'\| \d\.\d \| {cell} \| {cell} \| {cell} \|', row) for row in rows), rows
    for run in ('demo_bsrnet_x4', 'demo_dasr_x4'):
        assert (tmp_path / 'experiments' / run / 'models' / 'net_g_final.pth').is_file()
        assert (tmp_path / 'results' / run / 'coffee_sig2.4' / 'results.json').is_file()
    report = (tmp_path / 'results' / 'demo_report' / 'benchmark.md').read_text()
    assert 'non-blind BSRNet' in report and 'blind DASR' in report
    assert (tmp_path / 'results' / 'demo_report' / 'index.html').is_file()
    assert (tmp_path / 'results' / 'demo_infer' / 'coffee.png').is_file()
