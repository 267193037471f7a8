"""The engine every blindsr model stands on: the construction steps, networks, optimizers, schedulers,
EMA, AMP, the run's degradation and the full training state.

A model owns any number of named networks (``net_g``, ``net_d``, a frozen teacher ...), each with
its own optimizer and scheduler or none, an EMA copy for any of them, an AMP grad scaler and a
:class:`~blindsr.degradations.degrader.Degrader` (the pipeline and its per-rank random stream).
:meth:`BaseModel.state_dict` captures all of it plus the RNG states of every rank, so a resumed run
continues bit-identically.

Construction is three overridable steps, called in this order by ``__init__``:
:meth:`~BaseModel.build_networks`, :meth:`~BaseModel.build_degrader` and, when training,
:meth:`~BaseModel.setup_training` (losses, optimizers, EMA). What the engine asks of a model
afterwards — by the training loop, the evaluation and the test entry point — is declared here:
``feed_data``, ``optimize_parameters``, ``infer(lq, *, gt, name)``, ``degrade_for_eval`` and
``export``. A model also declares what it reads of the options (``sections``, ``path_options``,
``train_options``; see :mod:`blindsr.schema`).

BasicSR's own ``BaseModel`` is not reused: it falls back to DataParallel, maps resume states to
``torch.cuda.current_device()`` (GPU only), keeps weights and training state in separate files
written non-atomically and saves no RNG or scaler state.
"""

from __future__ import annotations

import copy
import logging
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from blindsr import dist
from blindsr.checkpoint import FORMAT, key_mismatch, load_pretrained
from blindsr.degradations.degrader import Degrader
from blindsr.dist import DistInfo
from blindsr.registry import ARCH_REGISTRY, build
from blindsr.schema import Component, Value

STATE_VERSION = 1


class BaseModel:
    """Base class: subclasses override the construction steps and implement the hooks below."""

    # what a model reads of the options beyond the common sections (see blindsr.schema): its top-level
    # sections, its path keys beyond path.pretrain_network_<x> / strict_load_<x> / param_key_<x>, and
    # the keys of train: (every key there must be declared; the declared defaults fill the rest)
    sections: dict[str, Any] = {}
    path_options: dict[str, Any] = {}
    # how the engine runs any model's networks (speed options; none changes what a network computes
    # beyond floating-point rounding)
    train_options: dict[str, Any] = {
        # mixed precision: True = fp16 (with a grad scaler); auto = bf16 on a CUDA device that has it natively
        # (compute capability 8.0, Ampere, or later), else off
        'use_amp': Value((bool, str), False, choices=(False, True, 'fp16', 'bf16', 'auto')),
        'channels_last': Value(bool, False),  # NHWC weights: the fast convolution layout on tensor cores
        'compile': Value(bool, False),  # torch.compile the training forward (validation runs eager)
        'cudnn_benchmark': Value(bool, False),  # cuDNN autotuning; not bit-reproducible across runs
    }
    # the network every option file of this model must define (network_<x>) and a test loads (pretrain_network_<x>)
    main_network = 'g'

    def __init__(self, opt: dict, device: torch.device, dist_info: DistInfo = DistInfo()):
        self.opt = opt
        self.device = device
        self.dist = dist_info
        self.is_train = opt.get('is_train', False)
        self.networks: dict[str, nn.Module] = {}  # bare modules, the state of record
        self.wrapped: dict[str, nn.Module] = {}  # DDP-wrapped where trained under torchrun
        self.ema: dict[str, nn.Module] = {}  # 'net_g' -> its EMA copy
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.schedulers: dict[str, Any] = {}
        train = opt.get('train') or {}
        self.amp_dtype = amp_dtype(train.get('use_amp', False), device)
        self.channels_last = train.get('channels_last', False)
        self.compile = train.get('compile', False)
        if train.get('cudnn_benchmark'):
            if opt.get('deterministic'):
                raise ValueError('train.cudnn_benchmark: true contradicts deterministic: true (autotuning picks '
                                 'kernels by timing); set one of them to false')
            torch.backends.cudnn.benchmark = True
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.amp_dtype == torch.float16)
        self.build_networks()
        self.degrader = self.build_degrader()
        if self.is_train:
            self.setup_training(opt['train'])

    # ------------------------------------------------------------------ construction steps
    def build_networks(self) -> None:
        """Build and register the networks (:meth:`add_network`), trainable or not."""
        raise NotImplementedError

    def build_degrader(self) -> Degrader | None:
        """The run's degradation (``degradation:`` in the options), or None when the data brings LR images."""
        if not self.opt.get('degradation'):
            return None
        return Degrader(self.opt['degradation'], self.opt['scale'], self.device, self.opt.get('manual_seed', 0),
                        self.dist.rank)

    def setup_training(self, train: dict) -> None:
        """Losses, optimizers, schedulers and EMA copies from the ``train:`` section."""
        raise NotImplementedError

    # ------------------------------------------------------------------ building
    def add_network(self, name: str, net_opt: dict, trainable: bool = True, frozen: tuple[str, ...] = (),
                    **defaults: Any) -> nn.Module:
        """Build a network from its option section, load ``path.pretrain_<name>`` and register it.

        ``frozen`` names submodules that do not train (set before DDP wraps the network, which then
        expects gradients for the rest only).
        """
        net = build(ARCH_REGISTRY, net_opt, **defaults).to(self.device)
        if self.channels_last:
            net.to(memory_format=torch.channels_last)  # a convolution runs NHWC when its weight is NHWC
        # BasicSR's keys: network_g -> path.pretrain_network_g, path.param_key_g, path.strict_load_g
        paths, suffix = self.opt.get('path', {}), name.removeprefix('net_')
        pretrained = paths.get(f'pretrain_network_{suffix}')
        if pretrained:
            result = load_pretrained(net, pretrained, key=paths.get(f'param_key_{suffix}'),
                                     strict=paths.get(f'strict_load_{suffix}', True))
            self.log_info(f'{name}: loaded {result.source}' +
                          (f' (missing {len(result.missing)}, unexpected {len(result.unexpected)})'
                           if result.missing or result.unexpected else ''))
        self.networks[name] = net
        for sub in frozen:
            net.get_submodule(sub).requires_grad_(False)
        if not trainable:
            net.eval().requires_grad_(False)
            self.wrapped[name] = net
            if self.is_train:
                self.log_info(f'{name} (frozen, not wrapped): eval mode, no gradient, in no optimizer')
        else:
            self.wrap(name)
            if self.compile and self.is_train:  # the bare module stays the state of record (no _orig_mod. keys)
                self.log_info(f'{name}: compiled for training (torch.compile; validation runs eager)')
        return net

    def wrap(self, name: str) -> None:
        """What training calls ``networks[name]`` through: DDP under torchrun (over the parameters that train
        now; call again when that set changes), compiled with ``train.compile``."""
        net = self.networks[name]
        if self.dist.enabled and any(p.requires_grad for p in net.parameters()):
            ids = [self.device.index] if self.device.type == 'cuda' else None
            net = DistributedDataParallel(net, device_ids=ids)
        self.wrapped[name] = torch.compile(net) if self.compile and self.is_train else net

    def add_ema(self, name: str, decay: float) -> None:
        """Keep an exponential moving average of ``networks[name]`` (parameters and buffers)."""
        self.ema[name] = copy.deepcopy(self.networks[name]).eval().requires_grad_(False)
        self.ema_decay = decay

    @torch.no_grad()
    def update_ema(self) -> None:
        for name, ema in self.ema.items():
            src = self.networks[name]
            ema_p = list(ema.parameters())
            torch._foreach_lerp_(ema_p, [p.detach() for p in src.parameters()], 1 - self.ema_decay)
            for b_ema, b in zip(ema.buffers(), src.buffers()):
                b_ema.copy_(b)

    def add_optimizer(self, name: str, params: Iterator[nn.Parameter] | list, optim_opt: dict,
                      sched_opt: dict | None = None) -> torch.optim.Optimizer:
        optim_opt = dict(optim_opt)
        cls = optimizer_class(optim_opt.pop('type'))
        optimizer = cls([p for p in params if p.requires_grad], **optim_opt)
        self.optimizers[name] = optimizer
        if sched_opt:
            self.schedulers[name] = make_scheduler(optimizer, sched_opt)
        return optimizer

    # ------------------------------------------------------------------ hooks for subclasses
    def feed_data(self, batch: dict) -> None:
        raise NotImplementedError

    def optimize_parameters(self, it: int) -> dict[str, float]:
        raise NotImplementedError

    @torch.no_grad()
    def infer(self, lq: torch.Tensor, *, gt: torch.Tensor | None = None, name: str | None = None) -> torch.Tensor:
        """Super-resolve an LR batch (test/validation path). ``gt`` is the HR image where the evaluation
        has one (a teacher that sees HR uses it); ``name`` is a stable key of the image (a per-image
        method seeds its optimisation from it)."""
        raise NotImplementedError

    def extra_outputs(self) -> dict[str, torch.Tensor]:
        """Other images of the last :meth:`infer` call (a per-image method's corrected LR, ...): key -> (1, C,
        H, W) in [0, 1]. The evaluation saves each beside the SR image (``<image>_<key>.png``) and scores
        those of the SR image's size like it (columns ``<key>_<metric>``)."""
        return {}

    # what the results tables say about how this model's outputs were chosen ('' : nothing to say)
    results_label = ''

    def degrade_for_eval(self, gt: torch.Tensor, name: str) -> torch.Tensor:
        """The LR image of an HR-only evaluation image, reproducible from its name."""
        if self.degrader is None:
            raise ValueError("The evaluation image has no LR counterpart and the options define no 'degradation' "
                             "to make one: add a top-level 'degradation:' section or use paired data.")
        return self.degrader.for_image(gt, name)

    def export(self) -> dict[str, dict]:
        """What a finished run leaves in its ``models/`` folder: file name -> saved dict. By default the
        generator in BasicSR's layout (``params``, and ``params_ema`` with an EMA)."""
        final = {'params': self.networks['net_g'].state_dict()}
        if 'net_g' in self.ema:
            final['params_ema'] = self.ema['net_g'].state_dict()
        return {'net_g_final.pth': final}

    # ------------------------------------------------------------------ training helpers
    def autocast(self):
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def step(self, name: str, *losses: torch.Tensor | Callable[[], torch.Tensor], clip: float | None = None) -> None:
        """Backward each loss in turn (gradients add up) and step optimizer ``name`` through the AMP scaler,
        with optional clipping. A loss given as a function is computed after the previous backward, so
        a DDP-wrapped network runs each forward right before its own backward."""
        optimizer = self.optimizers[name]
        optimizer.zero_grad(set_to_none=True)
        for loss in losses:
            self.scaler.scale(loss() if callable(loss) else loss).backward()
        if clip:
            self.scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_([p for g in optimizer.param_groups for p in g['params']], clip)
        self.scaler.step(optimizer)
        self.scaler.update()

    def update_learning_rate(self) -> None:
        for scheduler in self.schedulers.values():
            scheduler.step()

    def current_lr(self) -> float:
        optimizer = next(iter(self.optimizers.values()), None)
        return optimizer.param_groups[0]['lr'] if optimizer else 0.0

    @contextmanager
    def eval_mode(self) -> Iterator[None]:
        """Put trained networks in eval mode for validation and restore their modes after."""
        modes = {name: net.training for name, net in self.networks.items()}
        for net in self.networks.values():
            net.eval()
        try:
            yield
        finally:
            for name, net in self.networks.items():
                net.train(modes[name])

    # ------------------------------------------------------------------ state
    def state_dict(self, it: int, epoch: int, extra: dict | None = None) -> dict:
        """Everything needed to continue exactly. Collective under torchrun (gathers RNG states)."""
        rng = dist.all_gather_objects(self._rng_state())
        return {
            'format': FORMAT,
            'version': STATE_VERSION,
            'iter': it,
            'epoch': epoch,
            'networks': {**{n: net.state_dict() for n, net in self.networks.items()},
                         **{f'{n}_ema': ema.state_dict() for n, ema in self.ema.items()}},
            'optimizers': {n: o.state_dict() for n, o in self.optimizers.items()},
            'schedulers': {n: s.state_dict() for n, s in self.schedulers.items()},
            'scaler': self.scaler.state_dict(),
            'rng': rng,
            'options': self.opt,
            'extra': extra or {},
        }

    def load_state_dict(self, state: dict) -> None:
        if state.get('format') != FORMAT:
            raise ValueError('Not a blindsr training state (missing format tag).')
        nets = state['networks']
        for name, net in self.networks.items():
            self._check_fits(name, net, nets.get(name, {}), state.get('options') or {})
            net.load_state_dict(nets[name])
        for name, ema in self.ema.items():
            ema.load_state_dict(nets[f'{name}_ema'])
        for name, optimizer in self.optimizers.items():
            optimizer.load_state_dict(state['optimizers'][name])
        for name, scheduler in self.schedulers.items():
            scheduler.load_state_dict(state['schedulers'][name])
        if state.get('scaler'):
            self.scaler.load_state_dict(state['scaler'])
        rng = state['rng']
        if len(rng) == self.dist.world_size:
            self._set_rng_state(rng[self.dist.rank])
        else:
            self.log_info(f'Resumed with {self.dist.world_size} ranks from a state saved with {len(rng)}: '
                          'random streams restart from the seed (results will not be bit-identical).')

    def _check_fits(self, name: str, net: nn.Module, saved: dict, saved_opt: dict) -> None:
        """A clear error when a state's weights do not fit the network these options build."""
        missing, unexpected, shapes = key_mismatch(net.state_dict(), saved)
        diffs = ([f'{k} {theirs} in the state, {ours} now' for k, theirs, ours in shapes] +
                 [f'{k} missing' for k in missing] + [f'{k} unexpected' for k in unexpected])
        if not diffs:
            return
        sections = [k for k in {**saved_opt, **self.opt} if k.startswith('network_')]
        changed = _differences({k: saved_opt.get(k) for k in sections}, {k: self.opt.get(k) for k in sections})
        raise ValueError(
            f"its {name} does not fit the {type(net).__name__} these options build ({len(diffs)} differences: "
            f"{'; '.join(diffs[:3])}{'; ...' if len(diffs) > 3 else ''}). "
            + (f"The state was saved with other options: {'; '.join(changed)}." if changed else
               "Its network_* options are the same as these: was the architecture's code changed?"))

    def _rng_state(self) -> dict:
        np_state = np.random.get_state()
        state = {
            'python': random.getstate(),
            'numpy': (np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]),
            'torch': torch.get_rng_state(),
            **(self.degrader.state_dict() if self.degrader is not None else {}),
        }
        if self.device.type == 'cuda':
            state['cuda'] = torch.cuda.get_rng_state(self.device)
        return state

    def _set_rng_state(self, state: dict) -> None:
        random.setstate(state['python'])
        kind, key, *rest = state['numpy']
        np.random.set_state((kind, key.numpy().astype(np.uint32), *rest))
        torch.set_rng_state(state['torch'])
        if self.degrader is not None:
            self.degrader.load_state_dict(state)
        if 'cuda' in state and self.device.type == 'cuda':
            torch.cuda.set_rng_state(state['cuda'], self.device)

    # ------------------------------------------------------------------ misc
    def log_info(self, msg: str) -> None:
        if self.dist.is_main:
            logging.getLogger('blindsr').info(msg)


def amp_dtype(use_amp: bool | str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of ``train.use_amp`` on ``device`` (None: full precision)."""
    if use_amp == 'auto':  # native bf16 only: torch.cuda.is_bf16_supported() also says yes where it is emulated (V100, T4)
        return torch.bfloat16 if device.type == 'cuda' and torch.cuda.get_device_capability(device)[0] >= 8 else None
    return {False: None, None: None, True: torch.float16, 'fp16': torch.float16, 'bf16': torch.bfloat16}[use_amp]


def optimizer_class(name: str) -> type[torch.optim.Optimizer]:
    """A torch optimizer by name (``Adam``, ``AdamW``, ``SGD`` ...)."""
    cls = getattr(torch.optim, name, None)
    if not (isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer)):
        known = [n for n in dir(torch.optim) if isinstance(getattr(torch.optim, n), type)
                 and issubclass(getattr(torch.optim, n), torch.optim.Optimizer) and n != 'Optimizer']
        raise ValueError(f"Unknown optimizer '{name}'; torch.optim has: {', '.join(sorted(known))}.")
    return cls


def scheduler_class(name: str) -> type:
    """A scheduler from ``torch.optim.lr_scheduler`` or BasicSR's (MultiStepRestartLR, ...), by name."""
    from basicsr.models import lr_scheduler as basicsr_sched

    for module in (torch.optim.lr_scheduler, basicsr_sched):
        cls = getattr(module, name, None)
        if isinstance(cls, type) and issubclass(cls, torch.optim.lr_scheduler.LRScheduler):
            return cls
    raise ValueError(f"Unknown scheduler '{name}': not in torch.optim.lr_scheduler nor "
                     'basicsr.models.lr_scheduler (MultiStepRestartLR, CosineAnnealingRestartLR).')


def make_scheduler(optimizer: torch.optim.Optimizer, sched_opt: dict) -> Any:
    sched_opt = dict(sched_opt)
    kind = sched_opt.pop('type')
    try:
        return scheduler_class(kind)(optimizer, **sched_opt)
    except AssertionError as err:  # BasicSR's schedulers check their arguments with assert
        raise ValueError(f'train.scheduler: {kind} does not accept {sched_opt}: {err}') from err


# train.optim_*, train.scheduler: any torch optimizer / torch or BasicSR scheduler with its own arguments;
# the default's arguments apply only to a section of the default's type
OPTIMIZER = Component(optimizer_class, 'optimizer', default={'type': 'Adam', 'lr': 1e-4, 'betas': [0.9, 0.99],
                                                             'weight_decay': 0}, supplied=('params', ))
SCHEDULER = Component(scheduler_class, 'scheduler', default={'type': 'MultiStepLR', 'milestones': [], 'gamma': 0.5},
                      supplied=('optimizer', ))


def _differences(saved: Any, now: Any, prefix: str = '') -> list[str]:
    """``key: <saved> in the state, <now> now`` for each option that differs, nested keys dotted."""
    if isinstance(saved, dict) and isinstance(now, dict):
        return [d for k in {**saved, **now} for d in _differences(saved.get(k), now.get(k), f'{prefix}{k}.')]
    return [] if saved == now else [f'{prefix.rstrip(".")}: {saved!r} in the state, {now!r} now']
