"""Stopping and resuming training safely: SIGINT/SIGTERM in every launch mode (real subprocesses and job
control, as a terminal, torchrun and SLURM send them), signals during validation, and the errors and
warnings a resumed or misplaced run gives."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
import yaml

from blindsr import train as train_entry
from conftest import write_photos
from test_train import free_port, run_cli, tiny_options

ENV = {**os.environ, 'PYTHONUNBUFFERED': '1', 'OMP_NUM_THREADS': '1'}


def start(cmd: list[str], cwd: Path) -> subprocess.Popen:
    """Start ``cmd`` as the leader of its own process group (as a shell's job or a batch job is)."""
    proc = subprocess.Popen(cmd, cwd=cwd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    proc.folder = cwd  # where ranks write their pid files (see kill_run)
    return proc


def wait_for(proc: subprocess.Popen, *texts: str, timeout: float = 120) -> str:
    """Read ``proc``'s output until each of ``texts`` has shown up (as often as it is listed: two ranks
    may write their lines into one); the output read. After ``timeout`` seconds the run is killed, with
    the ranks torchrun started in sessions of their own (a run held in validation would never end)."""
    seen = ''
    killer = threading.Timer(timeout, kill_run, (proc, ))
    killer.start()
    try:
        for line in proc.stdout:
            seen += line
            if all(seen.count(text) >= texts.count(text) for text in texts):
                return seen
    finally:
        killer.cancel()
    missing = [text for text in dict.fromkeys(texts) if seen.count(text) < texts.count(text)]
    raise AssertionError(f'{missing} never came; output:\n' + seen[-3000:])


def kill_run(proc: subprocess.Popen) -> None:
    """SIGKILL ``proc``'s process group and those of the ranks that wrote ``pid<rank>`` files in its folder."""
    pids = [proc.pid, *(int(p.read_text()) for p in Path(proc.folder).glob('pid[0-9]*'))]
    for pid in pids:
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def states(run: Path) -> list[int]:
    return sorted(int(p.stem) for p in (run / 'training_states').glob('*.state'))


@pytest.mark.parametrize('sig', [signal.SIGINT, signal.SIGTERM], ids=lambda s: s.name)
def test_signal_to_process_group_with_workers_saves_and_auto_resume_continues(tmp_path, photo_dirs, sig):
    """Ctrl+C (SIGINT) and kill/scancel/systemd (SIGTERM) reach the whole process group, DataLoader
    workers included: the run still saves a state, exits 128 + signal, and --auto_resume goes on."""
    opt_path = tiny_options(tmp_path, photo_dirs, 'sig', total_iter=100000)
    proc = start([sys.executable, '-m', 'blindsr.train', '-opt', str(opt_path),
                  '--set', 'datasets.train.num_worker_per_gpu=1'], tmp_path)
    wait_for(proc, '[iter')
    os.killpg(proc.pid, sig)
    out = proc.communicate(timeout=120)[0]
    assert proc.returncode == 128 + sig, out
    assert f'Signal {sig.name}: saving state at iteration' in out and 'Traceback' not in out, out
    stopped = states(tmp_path / 'experiments' / 'sig')[-1]
    result = run_cli([sys.executable, '-m', 'blindsr.train', '-opt', str(opt_path), '--auto_resume',
                      '--set', f'train.total_iter={stopped + 2}'], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f'at iteration {stopped}' in result.stdout and 'Training done' in result.stdout


GATE_PLUGIN = textwrap.dedent('''
    """A validation metric that holds the first image until the file ``path`` exists."""
    import time
    from pathlib import Path

    from blindsr.registry import METRIC_REGISTRY


    @METRIC_REGISTRY.register()
    def calculate_gate(img, path, crop_border=0):
        if not Path(path).exists():
            print('gate: waiting', flush=True)
            while not Path(path).exists():
                time.sleep(0.05)
        return 0.0
''')


def gated_options(tmp_path: Path, photo_dirs: dict, name: str) -> Path:
    """Options whose validation (at iteration 3) holds each rank's first image until the file ``go``
    exists; the checkpoint frequency is out of reach, so a signal's save is the only one."""
    (tmp_path / 'gate_plugin.py').write_text(GATE_PLUGIN)
    opt = yaml.safe_load(tiny_options(tmp_path, photo_dirs, name, total_iter=100000).read_text())
    opt['plugins'] = ['gate_plugin.py']
    opt['val']['metrics'] = {'gate': {'type': 'calculate_gate', 'path': str(tmp_path / 'go')}}
    opt['logger']['save_checkpoint_freq'] = 1000
    path = tmp_path / f'{name}_gated.yml'
    path.write_text(yaml.safe_dump(opt))
    return path


@pytest.mark.parametrize('signals, said, cut', [
    ([signal.SIGINT], ['Signal SIGINT: stopping after validation… (a second signal cuts it short)'], False),
    ([signal.SIGINT, signal.SIGINT], ['Signal SIGINT: stopping after validation…',
                                      'Signal SIGINT: cutting validation short to save a state and stop.'], True),
    ([signal.SIGTERM], ['Signal SIGTERM: cutting validation short to save a state and stop.'], True),
], ids=['sigint-waits-for-validation', 'second-sigint-cuts-it-short', 'sigterm-cuts-it-short'])
def test_signal_during_validation_says_so_at_once_and_saves(tmp_path, photo_dirs, signals, said, cut):
    """A first Ctrl+C during validation says at once that training stops after it; a second one (or a
    SIGTERM, which a grace period follows) cuts it short, leaving its partial results unrecorded. Either
    way the state is saved."""
    write_photos(photo_dirs['val'], ['immunohistochemistry'], size=48)  # evaluated after coffee
    proc = start([sys.executable, '-m', 'blindsr.train', '-opt', str(gated_options(tmp_path, photo_dirs, 'val'))],
                 tmp_path)
    wait_for(proc, 'gate: waiting')  # validation at iteration 3 waits on its first image
    for sig, text in zip(signals, said):
        os.killpg(proc.pid, sig)
        wait_for(proc, text)  # said while validation still waits
    (tmp_path / 'go').touch()
    out = proc.communicate(timeout=120)[0]
    assert proc.returncode == 128 + signals[0], out
    assert 'Saved training state at iteration 3.' in out and 'Traceback' not in out, out
    assert states(tmp_path / 'experiments' / 'val') == [3]
    assert ('Validation val @ iter 3: gate' in out) != cut, out
    assert ('Validation val @ iter 3 cut short by a signal: not recorded.' in out) == cut, out
    assert (tmp_path / 'experiments' / 'val' / 'visualization' / 'immunohistochemistry').exists() != cut


RANK_SCRIPT = textwrap.dedent('''
    """blindsr.train under torchrun, noting this rank's pid at start and its exit code at the end."""
    import os
    from pathlib import Path

    from blindsr import cli, train

    rank = os.environ['RANK']
    Path(f'pid{rank}').write_text(str(os.getpid()))
    try:
        cli.run(train.main)
    except SystemExit as stop:
        Path(f'exit{rank}').write_text(str(stop.code))
        raise
    Path(f'exit{rank}').write_text('0')
''')


def test_sigterm_to_torchrun_and_every_process_saves_on_all_ranks(tmp_path, photo_dirs):
    """SLURM preemption or scancel sends SIGTERM to every process of a job: each rank and its DataLoader
    worker, then torchrun, which forwards it to each rank's process group again. Here it comes during
    validation (3 images: 2 on rank 0, 1 on rank 1), which both ranks cut short together; the state is
    saved once, each rank exits 143 (torchrun itself exits 1: see the README), only rank 0 speaks, and
    --auto_resume goes on."""
    write_photos(photo_dirs['val'], ['immunohistochemistry', 'astronaut'], size=48)
    script = tmp_path / 'rank.py'
    script.write_text(RANK_SCRIPT)
    torchrun = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=2', f'--master_port={free_port()}',
                str(script), '-opt', str(gated_options(tmp_path, photo_dirs, 'ddp')),
                '--set', 'datasets.train.batch_size_per_gpu=1']
    proc = start([*torchrun, '--set', 'datasets.train.num_worker_per_gpu=1'], tmp_path)
    wait_for(proc, 'gate: waiting', 'gate: waiting')  # both ranks wait in validation
    pids = [int((tmp_path / f'pid{rank}').read_text()) for rank in (0, 1)]
    for pid in pids:  # each rank leads its own process group, its worker included (torchrun starts it so)
        os.killpg(pid, signal.SIGTERM)
    os.killpg(proc.pid, signal.SIGTERM)
    # rank 0 has its first signal, torchrun has forwarded it; the second may have merged with the first
    wait_for(proc, 'Signal SIGTERM: cutting validation short', f'Sending process {pids[1]} closing signal SIGTERM')
    (tmp_path / 'go').touch()
    out = proc.communicate(timeout=120)[0]
    assert [(tmp_path / f'exit{rank}').read_text() for rank in (0, 1)] == ['143', '143'], out[-3000:]
    assert out.count('Signal SIGTERM: saving state at iteration 3') == 1, out[-3000:]
    assert out.count('cut short by a signal: not recorded') == 1 and 'DataLoader worker' not in out, out[-3000:]
    assert states(tmp_path / 'experiments' / 'ddp') == [3]
    result = run_cli([*torchrun, '--auto_resume', '--set', 'train.total_iter=4'], tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert 'at iteration 3' in result.stdout and 'Training done' in result.stdout


def test_resumed_state_past_total_iter_warns(tmp_path, photo_dirs):
    opt_path = tiny_options(tmp_path, photo_dirs, total_iter=3)
    train_entry.main(['-opt', str(opt_path)])
    run = train_entry.main(['-opt', str(opt_path), '--auto_resume', '--set', 'train.total_iter=2'])
    log = sorted(run.glob('train_tiny_*.log'))[-1].read_text()
    assert ('The state is at iteration 3, not below train.total_iter 2: nothing to train. '
            'To train further: --set train.total_iter=N with N > 3.') in log


@pytest.mark.parametrize('blocked', [
    'below_a_file',
    pytest.param('read_only', marks=pytest.mark.skipif(os.geteuid() == 0, reason='root writes anywhere')),
])
def test_unwritable_experiments_root_is_one_line_error(tmp_path, photo_dirs, blocked):
    parent = tmp_path / 'blocked'
    if blocked == 'below_a_file':
        parent.write_text('a file, not a folder')
    else:
        parent.mkdir(mode=0o555)
    result = run_cli([sys.executable, '-m', 'blindsr.train', '-opt', str(tiny_options(tmp_path, photo_dirs)),
                      '--set', f'path.experiments_root={parent / "run"}'], tmp_path)
    assert result.returncode == 2 and 'Traceback' not in result.stderr, result.stderr
    assert f'error: Cannot write the run folder {parent / "run"} (path.experiments_root): ' in result.stderr


def test_resume_with_changed_network_shape_names_the_differences(tmp_path, photo_dirs):
    opt_path = tiny_options(tmp_path, photo_dirs, total_iter=3)
    train_entry.main(['-opt', str(opt_path)])
    with pytest.raises(ValueError) as err:
        train_entry.main(['-opt', str(opt_path), '--auto_resume', '--set', 'network_g.num_feat=16'])
    message = str(err.value)
    assert 'Cannot resume from ' in message and '3.state: its net_g does not fit the BSRNet' in message
    assert 'conv_first.weight (8, 3, 3, 3) in the state, (16, 3, 3, 3) now' in message
    assert 'The state was saved with other options: network_g.num_feat: 8 in the state, 16 now.' in message
