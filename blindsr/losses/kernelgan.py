"""KernelGAN's regularisation of a linear downsampler's kernel and its lambda schedule (Bell-Kligler et al.,
NeurIPS 2019), as DARSR (and DualSR before it) uses them; plus the two small helpers those losses share
with DARSR's training step: the symmetric crop of a larger tensor to a smaller one's size and the Sobel
gradient magnitude.

:class:`KernelRegularization` sums, with the lambdas it holds: the MSE between G's output and a bicubic
downscaling of G's input (with KernelGAN's fixed 8x8 x2 bicubic kernel at stride ``scale``, as a *dense*
3 -> 3 conv: each output channel is the sum of the three channels' responses, a quirk kept as the authors
have it), ``|sum(k) - 1|``, the mean of ``|k| * mask`` (mask 0 in the centre, growing to 30 at the
border), the squared distance of the kernel's centre of mass from where it should be, and the mean of
``|k| ** 0.2``. :class:`LambdaSchedule` is KernelGAN's Learner: once the bicubic term has been below 0.4
at three checks in a row, the bicubic lambda is divided by 100 every 200 iterations (down to 5e-6); the
first time it is below 5e-3 the centre-of-mass (1) and sparsity (5) terms are switched on; and the
learning rates of G and D are divided by 4 every 750 iterations.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from blindsr.degradations.resize import _cubic

__all__ = ['KernelRegularization', 'LambdaSchedule', 'bicubic_x2_kernel', 'crop_like', 'penalty_mask',
           'sobel_magnitude']


def crop_like(a: Tensor, b: Tensor) -> Tensor:
    """``a`` cropped symmetrically to ``b``'s height and width (an odd excess is cut on the far side)."""
    dh, dw = max(0, a.shape[-2] - b.shape[-2]), max(0, a.shape[-1] - b.shape[-1])
    return a[..., dh // 2:a.shape[-2] - dh // 2 - dh % 2, dw // 2:a.shape[-1] - dw // 2 - dw % 2]


def sobel_magnitude(x: Tensor) -> Tensor:
    """Per channel ``sqrt(gx**2 + gy**2)`` of the 3x3 Sobel correlations, zero padding (Kornia's ``sobel``)."""
    sx = x.new_tensor([[-1., 0., 1.], [-2., 0., 2.], [-1., 0., 1.]])
    kernels = torch.stack([sx, sx.t()]).unsqueeze(1)  # (2, 1, 3, 3)
    b, c, h, w = x.shape
    g = F.conv2d(x.reshape(b * c, 1, h, w), kernels, padding=1).reshape(b, c, 2, h, w)
    return torch.sqrt(g[:, :, 0] ** 2 + g[:, :, 1] ** 2)


def bicubic_x2_kernel() -> Tensor:
    """KernelGAN's fixed 8x8 kernel: MATLAB's antialiased bicubic for a factor 2, separable."""
    taps = _cubic((np.arange(8) - 3.5) / 2) / 2
    return torch.from_numpy(np.outer(taps, taps)).float()


def penalty_mask(size: int, scale: float = 30.0) -> Tensor:
    """KernelGAN's boundary mask: ``scale * (1 - g / max g)`` for a Gaussian g of sigma ``size``, zero on the
    centre (for 13: everything but the outer two rings)."""
    z = np.arange(-size // 2 + 1, size // 2 + 1)
    g = np.exp(-z ** 2 / (2 * size ** 2))
    mask = 1 - np.outer(g, g) / np.outer(g, g).max()
    margin = (size - (size // 2 + size % 2)) // 2 - 1
    mask[margin:-margin, margin:-margin] = 0
    return torch.from_numpy(scale * mask).float()


class KernelRegularization(nn.Module):
    """``forward(kernel, g_input, g_output)``: the weighted sum of the five terms (see the module docstring);
    ``terms`` keeps the last unweighted values. The lambdas are attributes that :class:`LambdaSchedule`
    changes during a run."""

    def __init__(self, scale: int, kernel_size: int = 13) -> None:
        super().__init__()
        self.scale = scale
        self.register_buffer('bicubic', bicubic_x2_kernel(), persistent=False)
        self.register_buffer('mask', penalty_mask(kernel_size), persistent=False)
        wanted = kernel_size // 2 + 0.5 * (scale - kernel_size % 2)
        self.register_buffer('center', torch.tensor([wanted, wanted]), persistent=False)
        self.lambda_bicubic, self.lambda_sum2one, self.lambda_boundaries = 5.0, 0.5, 0.5
        self.lambda_centralized, self.lambda_sparse = 0.0, 0.0
        self.terms: dict[str, Tensor] = {}

    def bicubic_downscale(self, x: Tensor) -> Tensor:
        """The bicubic reference: the 8x8 kernel as a dense C -> C conv (channels summed), stride ``scale``."""
        c = x.shape[1]
        k = self.bicubic.expand(c, c, *self.bicubic.shape)
        return F.conv2d(x, k, stride=self.scale, padding=(k.shape[-1] - 1) // 2)

    def centre_of_mass(self, kernel: Tensor) -> Tensor:
        idx = torch.arange(kernel.shape[0], dtype=kernel.dtype, device=kernel.device)
        total = kernel.sum()
        return torch.stack([kernel.sum(1) @ idx / total, kernel.sum(0) @ idx / total])

    def forward(self, kernel: Tensor, g_input: Tensor, g_output: Tensor) -> Tensor:
        self.terms = {
            'bicubic': F.mse_loss(g_output, crop_like(self.bicubic_downscale(g_input), g_output)),
            'sum2one': (kernel.sum() - 1).abs(),
            'boundaries': (kernel * self.mask).abs().mean(),
            'centralized': F.mse_loss(self.centre_of_mass(kernel), self.center),
            'sparse': (kernel.abs() ** 0.2).mean(),
        }
        return sum(getattr(self, f'lambda_{name}') * value for name, value in self.terms.items())


class LambdaSchedule:
    """KernelGAN's Learner (see the module docstring); ``update(iteration, regularization, optimizers)``
    after each iteration's steps, with the optimizers of G and D."""

    update_every, bicubic_threshold, bicubic_decay, bicubic_min = 200, 0.4, 100.0, 5e-6
    lr_every, lr_divisor, centralized_end, sparse_end = 750, 4.0, 1.0, 5.0

    def __init__(self) -> None:
        self.below_count = 0
        self.similar_to_bicubic = False
        self.constraints_inserted = False

    def update(self, iteration: int, reg: KernelRegularization, optimizers: list[torch.optim.Optimizer]) -> None:
        if iteration == 0:
            return
        if iteration % self.lr_every == 0:
            for optimizer in optimizers:
                for group in optimizer.param_groups:
                    group['lr'] /= self.lr_divisor
        if not self.similar_to_bicubic:
            if reg.terms['bicubic'] < self.bicubic_threshold:
                self.similar_to_bicubic = self.below_count >= 2
                self.below_count += 1
            else:
                self.below_count = 0
        elif iteration % self.update_every == 0 and reg.lambda_bicubic > self.bicubic_min:
            reg.lambda_bicubic = max(reg.lambda_bicubic / self.bicubic_decay, self.bicubic_min)
            if not self.constraints_inserted and reg.lambda_bicubic < 5e-3:
                reg.lambda_centralized, reg.lambda_sparse = self.centralized_end, self.sparse_end
                self.constraints_inserted = True
