"""``Degrader``: the one place a run's degradation lives — the pipeline, its random stream, the
reproducible degradation of evaluation images, and the state a resumed run needs.

The model degrades training batches with it on the device (``feed_data``), evaluation degrades
each HR image with it seeded by the image's name, and a dataset that degrades per sample in
DataLoader workers calls it with each sample's own generator. What differs between those uses is
only the generator, so none of them builds or probes a pipeline itself.
"""

from __future__ import annotations

import torch
from torch import Tensor

from blindsr.degradations.pipeline import Pipeline
from blindsr.registry import DEGRADATION_REGISTRY, build
from blindsr.seeding import name_seed

__all__ = ['Degrader']


class Degrader:
    """Build the pipeline ``opt`` names (``{type: ..., **arguments}``) for ``scale``.

    ``seed`` and ``rank`` seed the stream of :meth:`__call__` (``seed * 1009 + rank``, one stream
    per rank) and, with the image name, the stream of :meth:`for_image`.
    """

    def __init__(self, opt: dict, scale: int, device: torch.device | str = 'cpu', seed: int = 0, rank: int = 0):
        self.pipeline = build(DEGRADATION_REGISTRY, opt, scale=scale)
        self.device = torch.device(device)
        self.seed = seed
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(seed * 1009 + rank)

    @property
    def batch_only(self) -> bool:
        """Whether the pipeline mixes samples across batches (Real-ESRGAN's training-pair pool), so it
        cannot run per sample in DataLoader workers."""
        return bool(getattr(self.pipeline, 'pool_size', 0))

    def __call__(self, gt: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, dict]:
        """``(lq, params)`` for an HR batch, from ``generator`` (default: this degrader's stream).
        ``params['gt']``, when present, is the target that goes with ``lq`` (a crop, a sharpened HR)."""
        return self.pipeline(gt, self.generator if generator is None else generator)

    def for_image(self, gt: Tensor, name: str) -> Tensor:
        """Degrade one whole evaluation image reproducibly: seeded by its name, without training crops
        or the training-pair pool."""
        generator = torch.Generator(device=gt.device)
        generator.manual_seed(name_seed(self.seed, name))
        training = isinstance(self.pipeline, Pipeline) and self.pipeline.training
        if training:
            self.pipeline.training = False
        try:
            return self.pipeline(gt, generator)[0]
        finally:
            if training:
                self.pipeline.training = True

    def state_dict(self) -> dict:
        """The stream (``generator``) and, for a stateful pipeline (the training-pair pool), its state
        (``degradation``); saved with each rank's random states."""
        pipeline = self.pipeline.state_dict() if hasattr(self.pipeline, 'state_dict') else {}
        return {'generator': self.generator.get_state(), 'degradation': pipeline}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state['generator'])
        if hasattr(self.pipeline, 'load_state_dict'):
            self.pipeline.load_state_dict(state.get('degradation', {}))
