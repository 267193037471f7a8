"""Distributed set-up for torchrun (single node, multi-node, SLURM through torchrun) and helpers.

A plain ``python -m blindsr.train`` runs as one process with no process group. Under ``torchrun``
the environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR ...) is read, the backend is nccl on CUDA
and gloo on CPU unless ``dist.backend`` says otherwise, and each rank uses the GPU of its local rank.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as td


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def pick_device(name: str, local_rank: int = 0) -> torch.device:
    """'auto' -> this rank's GPU when CUDA is available, else CPU; 'cuda' -> this rank's GPU."""
    if name == 'auto':
        name = 'cuda' if torch.cuda.is_available() else 'cpu'
    if name == 'cuda':
        if not torch.cuda.is_available():
            raise ValueError("device: cuda was asked for but torch sees no CUDA device (use cpu or auto).")
        return torch.device('cuda', local_rank % torch.cuda.device_count())
    return torch.device(name)


def init_dist(device_opt: str, backend: str = 'auto', timeout_minutes: int = 30) -> tuple[DistInfo, torch.device]:
    """Initialise the process group when launched by torchrun; return rank info and this rank's device."""
    world_size = int(os.environ.get('WORLD_SIZE', '1'))
    info = DistInfo(int(os.environ.get('RANK', '0')), world_size, int(os.environ.get('LOCAL_RANK', '0')))
    device = pick_device(device_opt, info.local_rank)
    if device.type == 'cuda':
        torch.cuda.set_device(device)
    if world_size > 1 and not td.is_initialized():
        if backend == 'auto':
            backend = 'nccl' if device.type == 'cuda' else 'gloo'
        td.init_process_group(backend, timeout=datetime.timedelta(minutes=timeout_minutes),
                              device_id=device if device.type == 'cuda' else None)
    return info, device


def barrier() -> None:
    if td.is_initialized():
        td.barrier()


def max_over_ranks(value: int, device: torch.device) -> int:
    """The largest ``value`` of all ranks (``value`` itself without a process group): a collective."""
    if not td.is_initialized():
        return value
    tensor = torch.tensor([value], device=device if td.get_backend() == 'nccl' else 'cpu')
    td.all_reduce(tensor, op=td.ReduceOp.MAX)
    return int(tensor.item())


def all_gather_objects(obj: Any) -> list[Any]:
    """Every rank's ``obj`` in rank order (a one-element list without a process group)."""
    if not td.is_initialized():
        return [obj]
    out: list[Any] = [None] * td.get_world_size()
    td.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any, src: int = 0) -> Any:
    if not td.is_initialized():
        return obj
    box = [obj]
    td.broadcast_object_list(box, src=src)
    return box[0]


def broadcast_module(module: torch.nn.Module, src: int = 0) -> None:
    """Give every rank ``src``'s parameters and buffers (for modules DDP does not wrap)."""
    if td.is_initialized():
        for tensor in module.state_dict().values():
            td.broadcast(tensor, src)


def destroy() -> None:
    if td.is_initialized():
        td.destroy_process_group()
