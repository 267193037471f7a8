"""Models: training and test logic per method, registered in BasicSR's MODEL_REGISTRY."""

from blindsr.models import darsr_model, dasr_model, gan_model, kdsr_model, sr_model  # noqa: F401
from blindsr.models.base_model import BaseModel  # noqa: F401
