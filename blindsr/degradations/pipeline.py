"""What every random degradation pipeline shares: per-sample random streams and the call interface.

A pipeline turns ``generator`` into one seed per sample (:func:`sample_seeds`) and degrades with
:meth:`Pipeline.degrade` ``(hr, seeds)``. Sample ``i``'s parameters are drawn on the CPU from a
generator seeded with ``seeds[i]`` and its noise fields from a generator on ``hr``'s device seeded
from the same seed, so a sample's LR image and parameters depend on its seed alone, not on the rest
of the batch: ``degrade(hr, seeds)`` equals the per-sample results ``degrade(hr[i:i+1], seeds[i:i+1])``
stacked (up to float rounding of batched vs single kernels). That is what lets the same pipeline run
batched in the model's ``feed_data`` or per sample in DataLoader workers (where each sample's seed
comes from its own (seed, epoch, index) generator). Presets that the authors sampled once per batch
(KDSR's kernel and noise level, Real-ESRGAN's op structure) draw those shared values from the first
sample's seed; run per sample, every sample is its own batch.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ['Draw', 'Pipeline', 'Streams', 'sample_seeds']

_NOISE = 0x6E6F697365  # stream offsets: the noise and batch generators differ from the parameter one
_BATCH = 0x6261746368


def sample_seeds(batch: int, generator: torch.Generator | None = None) -> list[int]:
    """``batch`` seeds in [0, 2^62) from ``generator`` (or the global RNG)."""
    device = generator.device if generator is not None else 'cpu'
    return torch.randint(0, 2 ** 62, (batch,), generator=generator, device=device).tolist()


class Streams:
    """The random streams of one batch, derived from its per-sample seeds.

    ``params[i]``: CPU generator for sample ``i``'s parameter draws; ``noise[i]``: generator on
    ``device`` for its noise fields; ``batch``: CPU generator for values shared by the batch
    (seeded from the first sample's seed).
    """

    def __init__(self, seeds: list[int], device: torch.device):
        if not seeds:
            raise ValueError('a degradation batch needs at least one sample')
        self.seeds = [int(s) for s in seeds]
        self.device = torch.device(device)
        self.params = [torch.Generator().manual_seed(s) for s in self.seeds]
        self.noise = [torch.Generator(self.device).manual_seed(s ^ _NOISE) for s in self.seeds]
        self.batch = torch.Generator().manual_seed(self.seeds[0] ^ _BATCH)

    def __len__(self) -> int:
        return len(self.seeds)

    def draw(self, sampler: Callable[[torch.Generator], dict[str, Tensor]]) -> dict[str, Tensor]:
        """Call ``sampler(generator)`` (one sample's draws, length-1 tensors) with each sample's
        generator; concatenate, on the device."""
        draws = [sampler(g) for g in self.params]
        return {k: torch.cat([d[k] for d in draws]).to(self.device) for k in draws[0]}


class Draw:
    """Python-``random``-style scalar draws from one sample's CPU generator."""

    def __init__(self, generator: torch.Generator):
        self.g = generator

    def uniform(self, low: float = 0.0, high: float = 1.0) -> float:
        return low + (high - low) * torch.rand(1, generator=self.g, dtype=torch.float64).item()

    def randint(self, low: int, high: int) -> int:  # inclusive, as random.randint
        return int(torch.randint(low, high + 1, (1,), generator=self.g).item())

    def choice(self, options: tuple):
        return options[self.randint(0, len(options) - 1)]

    def permutation(self, values: list[int]) -> list[int]:
        return [values[i] for i in torch.randperm(len(values), generator=self.g).tolist()]


class Pipeline:
    """Base of the random pipelines: ``lr, params = pipeline(hr, generator)``.

    Subclasses implement :meth:`degrade`; ``hr`` is (B, C, H, W) float in [0, 1] (or what the
    subclass documents), ``params`` maps names to per-sample tensors of length B. A pipeline that
    changes the target (USM-sharpened HR, a crop aligned with the LR patch, a training-pair pool)
    returns it as ``params['gt']``; the model trains against that. ``training = False`` (set by the
    model while it degrades validation images) turns such crops and pools off.
    """

    training = True

    def __init__(self, scale: int):
        if int(scale) != scale or scale < 1:
            raise ValueError(f'{type(self).__name__} needs a positive integer scale, got {scale}')
        self.scale = int(scale)

    def __call__(self, hr: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, dict]:
        if hr.ndim < 4 or not hr.is_floating_point() or hr.shape[-3] != 3:
            raise ValueError(f'{type(self).__name__} expects a float RGB batch (B, 3, H, W), got '
                             f'{hr.dtype} of shape {tuple(hr.shape)}')
        return self.degrade(hr, sample_seeds(hr.shape[0], generator))

    def degrade(self, hr: Tensor, seeds: list[int]) -> tuple[Tensor, dict]:
        raise NotImplementedError
