"""Per-sample depthwise 3x3 conv (DASR's DA conv, KDSR's IDR-DDC): exact formulations vs the grouped conv.

Usage: ``python scripts/bench_dynamic_conv.py [--device cuda] [--compile] [--channels 64] [--repeats 9]``.
For B x C x S x S
feature maps at DASR/KDSR training sizes (B 8-32, S 48/64), prints milliseconds for the forward
(no grad) and forward + backward (gradients for the input and the kernels) of each formulation,
its ratio against the grouped conv over B * C groups (the authors' formulation) measured in the same
run, and its largest deviation from it (output, input gradient, kernel gradient):

- ``grouped``: ``F.conv2d`` on (1, B * C, H, W) with B * C groups;
- ``grouped_cl``: the same in channels-last memory format;
- ``per_sample``: B depthwise convs (C groups each), concatenated;
- ``unfold_bmm``: ``F.unfold`` into (B * C, 9, H * W) and a batched (1 x 9) @ (9 x HW) product;
- ``taps``: nine shifted multiply-adds over the zero-padded map;
- ``blindsr``: :func:`blindsr.archs.common.per_sample_depthwise_conv`, what the archs use;
- ``compiled`` (with ``--compile``): ``torch.compile`` of the grouped conv (Inductor generates its own
  kernel for the per-sample taps; on a GPU a Triton kernel), compiled once per shape before timing.

On ``--device cuda`` each call is timed to the end of its queued GPU work, in the same interleaved rounds.

Alternatives run in interleaved rounds gated on an otherwise idle CPU
(:func:`blindsr.benchmark.gated_rounds`); ``*`` marks a row where fewer than half the calls ran
undisturbed.

glibc's allocator hands large freed blocks back to the system (mmap threshold, heap trimming), so an
isolated op that allocates tens of MB per call pays fresh page faults on every call; on the
development box that swung the same grouped conv between 2 and 15 ms from call to call. The script
therefore first keeps freed memory in the heap (``mallopt``: trim threshold 1 GiB, mmap threshold
32 MiB) so the figures compare arithmetic; ``--default-malloc`` measures without (in a whole KDSR
training step the heap stays large anyway: 3 % difference).
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
from collections.abc import Callable

import torch
import torch.nn.functional as F

from blindsr.archs.common import per_sample_depthwise_conv
from blindsr.benchmark import gated_rounds

Conv = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def grouped(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    b, c, h, w = x.shape
    out = F.conv2d(x.reshape(1, b * c, h, w), k.reshape(b * c, 1, 3, 3), padding=1, groups=b * c)
    return out.reshape(b, c, h, w)


def grouped_cl(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    b, c, h, w = x.shape
    x = x.reshape(1, b * c, h, w).contiguous(memory_format=torch.channels_last)
    return F.conv2d(x, k.reshape(b * c, 1, 3, 3), padding=1, groups=b * c).reshape(b, c, h, w)


def per_sample(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    c = x.shape[1]
    return torch.cat([F.conv2d(x[i:i + 1], k[i, :, None], padding=1, groups=c) for i in range(len(x))])


def unfold_bmm(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    b, c, h, w = x.shape
    cols = F.unfold(x, 3, padding=1).view(b * c, 9, h * w)
    return torch.bmm(k.reshape(b * c, 1, 9), cols).view(b, c, h, w)


def taps(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    h, w = x.shape[-2:]
    padded = F.pad(x, (1, 1, 1, 1))
    out = padded[..., :h, :w] * k[..., 0, 0, None, None]
    for i in range(3):
        for j in range(3):
            if i or j:
                out = torch.addcmul(out, padded[..., i:i + h, j:j + w], k[..., i, j, None, None])
    return out


FORMULATIONS: dict[str, Conv] = {'grouped': grouped, 'grouped_cl': grouped_cl, 'per_sample': per_sample,
                                 'unfold_bmm': unfold_bmm, 'taps': taps, 'blindsr': per_sample_depthwise_conv}


def results(conv: Conv, x: torch.Tensor, k: torch.Tensor, g: torch.Tensor) -> list[torch.Tensor]:
    x, k = x.detach().requires_grad_(), k.detach().requires_grad_()
    out = conv(x, k)
    out.backward(g)
    return [out.detach(), x.grad, k.grad]


def bench(b: int, c: int, s: int, repeats: int, device: torch.device, formulations: dict[str, Conv]) -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(b, c, s, s, generator=gen).to(device).requires_grad_()
    k = (torch.randn(b, c, 3, 3, generator=gen) / 3).to(device).requires_grad_()
    g = torch.randn(b, c, s, s, generator=gen).to(device)
    ref = results(grouped, x, k, g)
    deviation = {name: [float((a - r).abs().max()) for a, r in zip(results(conv, x, k, g), ref)]
                 for name, conv in formulations.items()}

    def forward(conv: Conv) -> Callable[[], object]:
        def run() -> None:
            with torch.no_grad():
                conv(x, k)
        return run

    def train(conv: Conv) -> Callable[[], object]:
        def run() -> None:
            x.grad = k.grad = None
            conv(x, k).backward(g)
        return run

    fwd = gated_rounds({name: forward(conv) for name, conv in formulations.items()}, repeats, device=device)
    both = gated_rounds({name: train(conv) for name, conv in formulations.items()}, repeats, device=device)
    where = torch.cuda.get_device_name(device) if device.type == 'cuda' else f'{torch.get_num_threads()} threads'
    print(f'\nB {b}, C {c}, {s}x{s} ({where})'.ljust(37) +
          'forward            forward + backward      max |diff| vs grouped (out, dx, dk)')
    for name in formulations:
        (tf, okf), (tb, okb) = fwd[name], both[name]
        flag = ' ' if okf and okb else '*'
        dev = ', '.join(f'{d:.1e}' for d in deviation[name])
        print(f'  {name:<12}{flag} {1e3 * tf:8.2f} ms {fwd["grouped"][0] / tf:5.2f}x   {1e3 * tb:8.2f} ms '
              f'{both["grouped"][0] / tb:5.2f}x      {dev}', flush=True)


def keep_freed_memory() -> bool:
    """glibc ``mallopt(M_TRIM_THRESHOLD, 1 GiB)``, ``mallopt(M_MMAP_THRESHOLD, 32 MiB)``; False elsewhere."""
    name = ctypes.util.find_library('c')
    libc = ctypes.CDLL(name) if name else None
    if libc is None or not hasattr(libc, 'mallopt'):
        return False
    return bool(libc.mallopt(-1, 1 << 30)) and bool(libc.mallopt(-3, 32 << 20))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--channels', type=int, nargs='+', default=[64])
    parser.add_argument('--repeats', type=int, default=9)
    parser.add_argument('--default-malloc', action='store_true', help="don't keep freed memory in the heap")
    parser.add_argument('--device', default='cpu', help="'cpu' or 'cuda[:N]'")
    parser.add_argument('--compile', action='store_true', help='add the torch.compile formulation')
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == 'cuda' and not torch.cuda.is_available():
        parser.error('--device cuda: no CUDA device is visible')
    formulations = dict(FORMULATIONS)
    if args.compile:
        formulations['compiled'] = torch.compile(grouped, dynamic=False)
    kept = not args.default_malloc and keep_freed_memory()
    print(f"allocator: {'freed memory kept in the heap' if kept else 'default'}")
    for c in args.channels:
        for b, s in ((8, 48), (32, 48), (8, 64), (16, 64)):
            bench(b, c, s, args.repeats, device, formulations)


if __name__ == '__main__':
    main()
