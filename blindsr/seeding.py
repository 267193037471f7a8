"""Seeding of the global random generators, per rank."""

from __future__ import annotations

import random
import zlib

import numpy as np
import torch


def seed_everything(seed: int, rank: int = 0, deterministic: bool = False) -> None:
    """Seed python, numpy and torch with ``seed + rank``; optionally ask torch for deterministic kernels."""
    seed = seed + rank
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def name_seed(seed: int, name: str) -> int:
    """``seed`` plus the CRC-32 of ``name``: a seed per image that depends on its name only (not on its place
    in a folder or batch), so the same image gets the same random draws in every run."""
    return seed + zlib.crc32(name.encode())
