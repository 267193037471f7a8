"""Losses: what BasicSR lacks or gets wrong here (VGG perceptual loss from a local file), and the weighted
list of loss terms every model trains with (``train.losses``), distillation terms among them."""

from blindsr.losses import distillation, perceptual  # noqa: F401  (registration)
from blindsr.losses.terms import LossTerms  # noqa: F401
