"""Degradation pipelines: HR batch in [0, 1] -> LR batch, on any device, seeded.

Every pipeline is a class registered in :data:`blindsr.registry.DEGRADATION_REGISTRY`, built from
YAML (``degradation: {type: bicubic}``; its constructor takes ``scale``, filled from the options'
top-level ``scale`` unless given) and called as
``lr, params = pipeline(hr, generator)`` with ``hr`` of shape (B, 3, H, W) float in [0, 1] on any
device and ``generator`` a ``torch.Generator`` on that device (or None for the global RNG);
``params`` maps names to per-sample tensors of length B (the sampled kernel, sigma, noise ...).
"""

from blindsr.degradations import bicubic, bsrgan, classic, realesrgan, resize  # noqa: F401  (registration)
