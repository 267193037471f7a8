"""blindsr: a config-driven toolbox for blind single-image super-resolution on BasicSR's registries.

``import blindsr`` applies the basicsr/torchvision compatibility shim, then registers every arch,
model, dataset, degradation pipeline, loss and metric blindsr ships through explicit imports.
"""

from blindsr import compat

compat.apply()

from blindsr import archs, data, degradations, losses, metrics, models  # noqa: E402,F401  (registration)
from blindsr.checkpoint import load_pretrained, register_key_converter  # noqa: E402
from blindsr.registry import (  # noqa: E402
    ARCH_REGISTRY,
    DATASET_REGISTRY,
    DEGRADATION_REGISTRY,
    LOSS_REGISTRY,
    METRIC_REGISTRY,
    MODEL_REGISTRY,
)

__version__ = '0.1.0'
__all__ = [
    'ARCH_REGISTRY', 'DATASET_REGISTRY', 'DEGRADATION_REGISTRY', 'LOSS_REGISTRY', 'METRIC_REGISTRY',
    'MODEL_REGISTRY', 'load_pretrained', 'register_key_converter'
]
