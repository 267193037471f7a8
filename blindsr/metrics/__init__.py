"""Metrics blindsr adds to BasicSR's metric registry (PSNR, SSIM and NIQE are BasicSR's own)."""

from blindsr.metrics import lpips_metric  # noqa: F401  (registers calculate_lpips)
