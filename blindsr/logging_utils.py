"""Console/text-file logging, TensorBoard, and the training progress line (it/s, data time, ETA)."""

from __future__ import annotations

import datetime
import logging
import sys
import time
from pathlib import Path

import torch

LOGGER_NAME = 'blindsr'


def setup_logger(log_file: Path | None, is_main: bool) -> logging.Logger:
    """Log INFO to stdout and ``log_file`` on the main rank; only warnings elsewhere."""
    logger = logging.getLogger(LOGGER_NAME)
    logger.handlers.clear()
    logger.propagate = False
    logger.setLevel(logging.INFO if is_main else logging.WARNING)
    fmt = logging.Formatter('%(asctime)s %(levelname)s: %(message)s', '%Y-%m-%d %H:%M:%S')
    console = logging.StreamHandler(sys.stdout)
    console.setFormatter(fmt)
    logger.addHandler(console)
    if log_file is not None and is_main:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(log_file)
        handler.setFormatter(fmt)
        logger.addHandler(handler)
    return logger


def tensorboard_writer(folder: str | Path, enabled: bool):
    if not enabled:
        return None
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(log_dir=str(folder))


class ProgressMeter:
    """Accumulates losses and timings between log lines and formats the console line."""

    def __init__(self, total_iter: int, start_iter: int):
        self.total_iter = total_iter
        self.start_iter = start_iter
        self.start_time = time.perf_counter()
        self._reset()

    def _reset(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.count = 0
        self.data_time = 0.0
        self.window_start = time.perf_counter()

    def update(self, losses: dict[str, torch.Tensor], data_time: float) -> None:
        for key, value in losses.items():
            value = value.detach().float()
            self.sums[key] = self.sums[key] + value if key in self.sums else value
        self.count += 1
        self.data_time += data_time

    def line(self, it: int, epoch: int, lr: float) -> tuple[str, dict[str, float]]:
        """The log line and the averaged scalars; resets the window."""
        now = time.perf_counter()
        its = self.count / max(now - self.window_start, 1e-9)
        done = it - self.start_iter
        rate = done / max(now - self.start_time, 1e-9)
        eta = datetime.timedelta(seconds=int((self.total_iter - it) / max(rate, 1e-9)))
        losses = {k: float(v) / self.count for k, v in self.sums.items()}
        pct = 100.0 * it / self.total_iter
        text = (f'[iter {it:>7d}/{self.total_iter} {pct:5.1f}%] epoch {epoch} lr {lr:.3e} | ' +
                ' '.join(f'{k} {v:.4e}' for k, v in losses.items()) +
                f' | {its:.2f} it/s, data {self.data_time / max(self.count, 1):.3f} s/it | eta {eta}')
        scalars = {**{f'losses/{k}': v for k, v in losses.items()}, 'train/lr': lr, 'train/it_per_s': its}
        self._reset()
        return text, scalars
