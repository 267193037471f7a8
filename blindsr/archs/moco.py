"""MoCo's momentum key encoder and queue of negatives (He et al., CVPR 2020), as DASR and CDSR use it.

``MoCo(encoder_q)`` keeps a momentum copy of the query encoder (an ``nn.Module`` whose forward returns
``(representation, embedding)``) and a queue of ``queue_size`` L2-normalised key embeddings.
``logits, labels = moco(q, im_k, encoder_q)`` first moves the key encoder towards ``encoder_q``
(``p_k = m p_k + (1 - m) p_q`` over parameters, every training step, before the keys are computed),
embeds ``im_k`` with it (no gradient), and returns InfoNCE logits ``[q . k+, q . queue] / T`` with label
0, then enqueues the keys. Under torchrun the keys of all ranks are gathered before enqueueing, so the
queue holds the whole global batch, identical on every rank.

The authors train with ``nn.DataParallel`` over two GPUs, where the momentum update assigns ``.data``
on a replica (lost) and only the first GPU's keys reach the queue; blindsr does what the paper
describes (the single-GPU behaviour of their code) on any number of ranks.
"""

from __future__ import annotations

import copy

import torch
import torch.distributed as torch_dist
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ['MoCo', 'info_nce_accuracy']


class MoCo(nn.Module):
    """Args: the query encoder (copied), embedding ``dim``, ``queue_size`` (K, a multiple of the global
    batch), ``momentum`` (m) and ``temperature`` (T); published 256, 8192, 0.999, 0.07.

    State (saved with the training state): ``encoder_k.*``, ``queue`` (dim, K), ``queue_ptr``.
    """

    def __init__(self, encoder_q: nn.Module, dim: int = 256, queue_size: int = 8192, momentum: float = 0.999,
                 temperature: float = 0.07):
        super().__init__()
        self.encoder_k = copy.deepcopy(encoder_q).requires_grad_(False)
        self.momentum, self.temperature = momentum, temperature
        self.register_buffer('queue', F.normalize(torch.randn(dim, queue_size), dim=0))
        self.register_buffer('queue_ptr', torch.zeros(1, dtype=torch.long))

    @torch.no_grad()
    def momentum_update(self, encoder_q: nn.Module) -> None:
        for p_k, p_q in zip(self.encoder_k.parameters(), encoder_q.parameters()):
            p_k.mul_(self.momentum).add_(p_q.detach(), alpha=1 - self.momentum)

    @torch.no_grad()
    def _enqueue(self, keys: Tensor) -> None:
        if torch_dist.is_available() and torch_dist.is_initialized() and torch_dist.get_world_size() > 1:
            gathered = [torch.empty_like(keys) for _ in range(torch_dist.get_world_size())]
            torch_dist.all_gather(gathered, keys.contiguous())
            keys = torch.cat(gathered)
        n, size = keys.shape[0], self.queue.shape[1]
        if size % n:
            raise ValueError(f'MoCo queue size {size} must be a multiple of the global batch size {n}')
        ptr = int(self.queue_ptr)
        self.queue[:, ptr:ptr + n] = keys.T.to(self.queue.dtype)
        self.queue_ptr[0] = (ptr + n) % size

    def forward(self, q: Tensor, im_k: Tensor, encoder_q: nn.Module) -> tuple[Tensor, Tensor]:
        """InfoNCE ``(logits (B, 1 + K), labels (B,) zeros)`` for query embeddings ``q`` (B, dim) of
        images whose positives are ``im_k`` (the same degradation)."""
        q = F.normalize(q, dim=1)
        self.momentum_update(encoder_q)
        with torch.no_grad():
            k = F.normalize(self.encoder_k(im_k)[1], dim=1)
        positive = (q * k).sum(1, keepdim=True)
        negative = q @ self.queue.clone().detach().to(q.dtype)
        logits = torch.cat([positive, negative], 1) / self.temperature
        self._enqueue(k)
        return logits, torch.zeros(q.shape[0], dtype=torch.long, device=q.device)


def info_nce_accuracy(logits: Tensor) -> Tensor:
    """Share of queries whose positive key scores above every negative (label 0 is the argmax)."""
    return (logits.argmax(1) == 0).float().mean()
