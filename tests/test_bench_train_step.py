"""scripts/bench_train_step.py: the training-step throughput table, run here at tiny sizes on the CPU (--quick):
every column filled for every row that runs, CPU-only skips stated, the peak table's lookup by device name."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from test_data import load_script

bench = load_script('bench_train_step')


def test_quick_run_fills_every_column(tmp_path):
    out = tmp_path / 'rows.json'
    result = bench.main(['--quick', '--methods', 'bsrnet,kdsr', '--options', 'none,fast', '--profile', '2',
                         '--out', str(out)])
    assert json.loads(out.read_text()) == json.loads(json.dumps(result))
    assert set(result['methods']) == {'bsrnet', 'kdsr'}
    for info in result['methods'].values():
        assert info['batch'] == 2 and info['gflop_step'] > 0 and info['degradation_ms'] > 0
        assert info['hr_px'] == 4 * info['lr_px']
    rows = {(r['method'], r['precision'], r['options']): r for r in result['rows']}
    assert len(rows) == len(result['rows']) == 2 * 4 * 2  # methods x precisions x option sets
    for method in ('bsrnet', 'kdsr'):
        for options in ('none', 'channels_last+cudnn_benchmark+fused'):  # 'fast'; no cuDNN autotuning on the CPU
            for precision in ('fp32', 'bf16'):
                row = rows[method, precision, options]
                assert row['status'] == 'ok', row
                assert all(row[c] is not None for c in bench.COLUMNS if c not in ('peak_tflops', 'pct_peak', 'mem_gib'))
                info = result['methods'][method]
                assert row['tflops'] == pytest.approx(info['gflop_step'] * row['images_s'] / info['batch'] / 1000)
                assert 0 < row['degradation_share'] < 1 and row['steps'] == 2
                assert len(row['top_ops']) == 2 and all(0 < op['share'] <= 1 for op in row['top_ops'])
            assert ('cudnn_benchmark not applied' in rows[method, 'fp32', options]['note']) == (options != 'none')
        assert rows[method, 'fp32', 'none']['speedup'] == 1.0  # the method's first row
        assert rows[method, 'tf32', 'none']['status'] == 'skipped: TF32 is a mode of CUDA tensor cores'
        assert rows[method, 'fp16', 'none']['status'].startswith('skipped: fp16 autocast')
    assert result['peaks_tflops'] == {}  # a CPU: no share of a peak, not a guess


def test_csv_output_and_budget(tmp_path):
    """A row in the CSV carries its method's sizes; past --budget no method is built: its rows say why."""
    out = tmp_path / 'rows.csv'
    bench.main(['--quick', '--methods', 'bsrgan', '--precisions', 'fp32', '--options', 'none', '--out', str(out)])
    (row, ) = csv.DictReader(out.open())
    assert row['status'] == 'ok' and float(row['ms_step']) > 0 and row['random_vgg'] == 'True'  # no VGG file needed
    assert row['recipe'] == 'options/train/bsrgan/bsrgan_x4.yml' and (row['batch'], row['lr_px']) == ('2', '8')
    bench.main(['--quick', '--methods', 'dasr', '--options', 'none,fused', '--budget', '0', '--out', str(out)])
    assert [r['status'] for r in csv.DictReader(out.open())] == ['skipped: --budget 0 s spent'] * 8


@pytest.mark.parametrize('name, label', [
    ('NVIDIA H200', 'H200 SXM'), ('NVIDIA H100 80GB HBM3', 'H100 SXM'), ('NVIDIA H100 PCIe', 'H100 PCIe'),
    ('NVIDIA H200 NVL', 'H100/H200 NVL'), ('NVIDIA A100-SXM4-80GB', 'A100'), ('Tesla V100-PCIE-32GB', 'V100 PCIe'),
    ('NVIDIA GeForce RTX 4090', 'RTX 4090'), ('NVIDIA B300', None)])
def test_peaks_by_device_name(monkeypatch, name, label):
    monkeypatch.setattr(torch.cuda, 'get_device_name', lambda device: name)
    described, peaks = bench.device_peaks(torch.device('cuda', 0))
    if label is None:
        assert peaks == {} and 'not in the table of peaks' in described
    else:
        assert described == f'{name} (peaks of the {label})' and peaks['fp32'] > 0


def test_unknown_selections_are_named():
    with pytest.raises(ValueError, match="--options: unknown 'compiled'"):
        bench.option_set('channels_last+compiled')
    with pytest.raises(ValueError, match="--methods: unknown 'esrgan'"):
        bench.main(['--quick', '--methods', 'esrgan'])
