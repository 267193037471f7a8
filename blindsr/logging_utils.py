"""Console/text-file logging, TensorBoard, and the training progress line (it/s, data time, ETA)."""

from __future__ import annotations

import datetime
import logging
import logging.handlers
import sys
import time
from pathlib import Path

import torch

LOGGER_NAME = 'blindsr'
LINE_FORMAT = logging.Formatter('%(asctime)s %(levelname)s: %(message)s', '%Y-%m-%d %H:%M:%S')


def setup_logger(log_file: Path | None, is_main: bool) -> logging.Logger:
    """Log INFO to stdout and ``log_file`` on the main rank; only warnings elsewhere.

    With ``log_file=None`` the main rank's lines are held until :func:`attach_log_file` names the file,
    so that what is logged while a run is being built, before its folder exists, still reaches its log.
    """
    logger = logging.getLogger(LOGGER_NAME)
    logger.handlers.clear()
    logger.propagate = False
    logger.setLevel(logging.INFO if is_main else logging.WARNING)
    console = logging.StreamHandler(sys.stdout)
    console.setFormatter(LINE_FORMAT)
    logger.addHandler(console)
    if is_main:
        logger.addHandler(_file_handler(log_file) if log_file is not None else
                          logging.handlers.MemoryHandler(capacity=2**31, flushLevel=logging.CRITICAL + 1))
    return logger


def attach_log_file(log_file: Path) -> None:
    """Write the lines held since ``setup_logger(None, ...)`` and all later ones to ``log_file``."""
    logger = logging.getLogger(LOGGER_NAME)
    for held in [h for h in logger.handlers if isinstance(h, logging.handlers.MemoryHandler)]:
        handler = _file_handler(log_file)
        held.setTarget(handler)
        held.close()  # hands the held lines to the file
        logger.removeHandler(held)
        logger.addHandler(handler)


def _file_handler(log_file: Path) -> logging.FileHandler:
    log_file.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(log_file)
    handler.setFormatter(LINE_FORMAT)
    return handler


def tensorboard_writer(folder: str | Path, enabled: bool):
    if not enabled:
        return None
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(log_dir=str(folder))


class ProgressMeter:
    """Accumulates losses and timings between log lines and formats the console line.

    The line gives the mean time per iteration spent waiting for the next batch and its share of the
    iterations' time (``data 0.008 s/it (2%)``): a share well above a few percent means the DataLoader
    starves the model (more ``num_worker_per_gpu``, or the degradation on the device, help). On CUDA the
    step is timed on the host, which may run ahead of the device, so the share is an upper bound on
    the device's idle time.
    """

    def __init__(self, total_iter: int, start_iter: int):
        self.total_iter = total_iter
        self.start_iter = start_iter
        self.start_time = time.perf_counter()
        self._reset()

    def _reset(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.count = 0
        self.data_time = 0.0
        self.iter_time = 0.0
        self.window_start = time.perf_counter()

    def update(self, losses: dict[str, torch.Tensor], data_time: float, iter_time: float) -> None:
        """Add one iteration: its losses, the seconds it waited for its batch and its seconds in all
        (waiting for the batch included; validation and checkpoints not)."""
        for key, value in losses.items():
            value = value.detach().float()
            self.sums[key] = self.sums[key] + value if key in self.sums else value
        self.count += 1
        self.data_time += data_time
        self.iter_time += iter_time

    def line(self, it: int, epoch: int, lr: float) -> tuple[str, dict[str, float]]:
        """The log line and the averaged scalars; resets the window."""
        now = time.perf_counter()
        its = self.count / max(now - self.window_start, 1e-9)
        done = it - self.start_iter
        rate = done / max(now - self.start_time, 1e-9)
        eta = datetime.timedelta(seconds=int((self.total_iter - it) / max(rate, 1e-9)))
        losses = {k: float(v) / self.count for k, v in self.sums.items()}
        pct = 100.0 * it / self.total_iter
        data_share = self.data_time / max(self.iter_time, 1e-9)
        text = (f'[iter {it:>7d}/{self.total_iter} {pct:5.1f}%] epoch {epoch} lr {lr:.3e} | ' +
                ' '.join(f'{k} {v:.4e}' for k, v in losses.items()) +
                f' | {its:.2f} it/s, data {self.data_time / max(self.count, 1):.3f} s/it ({data_share:.0%})'
                f' | eta {eta}')
        scalars = {**{f'losses/{k}': v for k, v in losses.items()}, 'train/lr': lr, 'train/it_per_s': its,
                   'train/data_share': data_share}
        self._reset()
        return text, scalars
