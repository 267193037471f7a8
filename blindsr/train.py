"""Training entry point: ``python -m blindsr.train -opt options/train/x.yml [--set k=v ...]``.

Also under ``torchrun --nproc_per_node=N -m blindsr.train -opt ...`` (DDP; nccl on CUDA, gloo on
CPU; multi-node through torchrun's rendezvous). The run folder ``path.experiments_root`` (default
``experiments/<name>``) receives the resolved options, a text log, TensorBoard events,
``training_states/<iter>.state`` (one file with everything to continue exactly) and validation
images; it is made (an earlier run's folder archived) only once options, datasets and model are built.
``--auto_resume`` continues from the newest state there that loads; SIGINT/SIGTERM save a state first.
"""

from __future__ import annotations

import argparse
import datetime
import logging
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import torch

import blindsr  # noqa: F401  (registers everything)
from blindsr import dist
from blindsr.checkpoint import CheckpointError, newest_loadable_state, prune_states, read_checkpoint, save_atomic
from blindsr.data.image_io import ImageReadError
from blindsr.data.loader import build_dataloader
from blindsr.evaluation import evaluate
from blindsr.folders import start_output_folder
from blindsr.logging_utils import ProgressMeter, attach_log_file, setup_logger, tensorboard_writer
from blindsr.options import dump_options, load_options
from blindsr.registry import DATASET_REGISTRY, MODEL_REGISTRY, lookup
from blindsr.seeding import seed_everything


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog='python -m blindsr.train', description=__doc__.splitlines()[0])
    parser.add_argument('-opt', '--opt', required=True, help='path to the YAML option file')
    parser.add_argument('--set', action='append', default=[], metavar='KEY.PATH=VALUE',
                        help='override any option (value parsed as YAML); repeatable')
    parser.add_argument('--auto_resume', action='store_true',
                        help='continue from the newest state in path.experiments_root/training_states')
    parser.add_argument('--resume', metavar='STATE', help='continue from this .state file')
    return parser.parse_args(argv)


class StopFlag:
    """SIGINT/SIGTERM: save a state and stop. A signal never aborts training, the save least of all.

    The loop checks :meth:`agreed` once per iteration (the largest over ranks, so every rank stops at
    the same one). During validation, a first SIGINT lets it finish ("stopping after validation…"); a
    second signal, or a SIGTERM (preemption: SLURM, torchrun and systemd send SIGKILL after a grace
    period), cuts it short (:meth:`until_cut`) and its partial results are not recorded. Only the main
    rank says so.
    """

    def __init__(self, logger: logging.Logger, is_main: bool) -> None:
        self.signum = 0
        self.validating = False
        self.cut = False  # validation cut short
        self.warn = logger.warning if is_main else (lambda message: None)
        self._previous = {sig: signal.signal(sig, self._handle) for sig in (signal.SIGINT, signal.SIGTERM)}

    def _handle(self, signum, frame) -> None:
        name, first = signal.Signals(signum).name, not self.signum
        self.signum = self.signum or signum
        if self.validating and not self.cut:
            if first and signum == signal.SIGINT:
                self.warn(f'Signal {name}: stopping after validation… (a second signal cuts it short)')
            else:
                self.cut = True
                self.warn(f'Signal {name}: cutting validation short to save a state and stop.')
        elif not first:
            self.warn(f'Signal {name} again: already stopping, a state is being saved.')

    def agreed(self, device: torch.device) -> int:
        """The signal to stop for, agreed by all ranks (0: none). A collective."""
        return dist.max_over_ranks(self.signum, device)

    @contextmanager
    def validation(self) -> Iterator[None]:
        self.validating = True
        try:
            yield
        finally:
            self.validating = False

    def until_cut(self, loader) -> Iterator:
        """``loader``'s batches until a signal cuts validation short."""
        for batch in loader:
            if self.cut:
                return
            yield batch

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def prepare_run_folder(opt: dict, resuming: bool, is_main: bool) -> Path:
    """Create the run folder right before the first write; an earlier run's folder is archived unless resuming."""
    subfolders = [opt['path'][key] for key in ('models', 'training_states', 'visualization')]
    return start_output_folder(Path(opt['path']['experiments_root']), is_main, resuming, subfolders)


class Resume(NamedTuple):
    path: Path
    state: dict
    skipped: list[str]  # why newer states were passed over by --auto_resume


def find_resume_state(args: argparse.Namespace, opt: dict, is_main: bool) -> Resume | None:
    """The state to continue from, read: ``--resume FILE`` (an error if it does not load), or with
    ``--auto_resume`` the newest state of the run that loads (rank 0 picks it, every rank reads that file)."""
    if args.resume:
        return Resume(Path(args.resume), read_checkpoint(args.resume), [])
    if not args.auto_resume:
        return None
    folder = opt['path']['training_states']
    path, state, skipped = newest_loadable_state(folder) if is_main else (None, None, [])
    path, skipped = dist.broadcast_object((path, skipped))
    if path is None:
        if skipped:
            raise CheckpointError(f'--auto_resume: no state in {folder} loads. ' + ' '.join(skipped))
        return None
    return Resume(path, state if is_main else read_checkpoint(path), skipped)


def infinite_batches(loader, epoch: int, skip: int):
    """Yield (epoch, batch) forever, starting ``skip`` batches into ``epoch`` (for exact resume)."""
    while True:
        loader.batch_sampler.sampler.set_epoch(epoch)
        loader.batch_sampler.sampler.set_start(skip * loader.batch_size)
        for batch in loader:
            if 'error' in batch:  # an unreadable image, caught in the loader (blindsr.data.loader.CatchItemErrors)
                raise ImageReadError(f"{batch['error'][0]} Remove or replace this training image; "
                                     '--auto_resume continues from the last saved state.')
            yield epoch, batch
        epoch += 1
        skip = 0


def train(opt: dict, dist_info: dist.DistInfo, device: torch.device, resume: Resume | None,
          auto_resume: bool = False):
    """Train to ``train.total_iter``; returns the model (its networks hold the final weights)."""
    is_main = dist_info.is_main
    stamp = datetime.datetime.now().strftime('%Y%m%d_%H%M%S')
    logger = setup_logger(None, is_main)  # lines are held until the run folder exists
    logger.info(f"run folder {opt['path']['experiments_root']}; device {device}; world size {dist_info.world_size}")
    seed_everything(opt['manual_seed'], dist_info.rank, opt['deterministic'])

    train_opt = opt['datasets']['train']
    train_set = lookup(DATASET_REGISTRY, train_opt['type'])(train_opt)
    train_loader = build_dataloader(train_set, train_opt, 'train', opt['manual_seed'], dist_info.rank,
                                    dist_info.world_size, device)
    val_loaders = []
    for phase, ds_opt in opt['datasets'].items():
        if phase != 'train':
            val_set = lookup(DATASET_REGISTRY, ds_opt['type'])(ds_opt)
            val_loaders.append((ds_opt['name'], build_dataloader(val_set, ds_opt, 'val', opt['manual_seed'],
                                                                  dist_info.rank, dist_info.world_size, device)))
    model = lookup(MODEL_REGISTRY, opt['model_type'])(opt, device, dist_info)
    total_iter = opt['train']['total_iter']
    iters_per_epoch = len(train_loader)
    logger.info(f'train set {len(train_set)} images, {iters_per_epoch} iterations per epoch, '
                f'{total_iter} iterations in all')

    start_iter, best = 0, {}
    if resume is not None:
        for reason in resume.skipped if is_main else []:
            logger.warning(f'auto_resume: skipped a newer state that does not load. {reason}')
        state = resume.state
        try:
            model.load_state_dict(state)
        except ValueError as err:
            raise ValueError(f'Cannot resume from {resume.path}: {err}') from err
        start_iter, best = state['iter'], state['extra'].get('best', {})
        logger.info(f'Resumed from {resume.path} at iteration {start_iter} (epoch {state["epoch"]}).')
        if start_iter >= total_iter and is_main:
            logger.warning(f'The state is at iteration {start_iter}, not below train.total_iter {total_iter}: '
                           f'nothing to train. To train further: --set train.total_iter=N with N > {start_iter}.')
    elif auto_resume:
        logger.info('auto_resume: no state found, starting from scratch.')
    try:
        run = prepare_run_folder(opt, resume is not None, is_main)
        attach_log_file(run / f"train_{opt['name']}_{stamp}.log")
        if is_main:
            header = f'resolved options, {stamp}\ncommand: {" ".join(sys.argv)}'
            (run / 'options.yml').write_text(dump_options(opt, header))
    except OSError as err:  # a read-only or misplaced experiments root
        reason = f'{err.strerror}: {err.filename}' if err.filename else err
        raise ValueError(f"Cannot write the run folder {opt['path']['experiments_root']} (path.experiments_root): "
                         f'{reason}') from err

    writer = tensorboard_writer(opt['path']['tb_logger'], is_main and opt['logger']['use_tb_logger'])
    log_opt, val_opt = opt['logger'], opt.get('val') or {}
    meter = ProgressMeter(total_iter, start_iter)
    stop = StopFlag(logger, is_main)
    epoch = start_iter // iters_per_epoch
    batches = infinite_batches(train_loader, epoch, start_iter % iters_per_epoch)

    def save(it: int, epoch: int) -> None:
        state = model.state_dict(it, epoch, extra={'best': best})  # collective: all ranks
        if is_main:
            save_atomic(state, Path(opt['path']['training_states']) / f'{it}.state')
            prune_states(opt['path']['training_states'], log_opt['keep_last'])
            logger.info(f'Saved training state at iteration {it}.')

    it = start_iter
    try:
        tick = time.perf_counter()
        while it < total_iter:
            epoch, batch = next(batches)
            data_time = time.perf_counter() - tick
            it += 1
            model.feed_data(batch)
            losses = model.optimize_parameters(it)
            model.update_learning_rate()
            meter.update(losses, data_time, time.perf_counter() - tick)
            if it % log_opt['print_freq'] == 0 or it == total_iter:
                text, scalars = meter.line(it, epoch, model.current_lr())
                logger.info(text)
                if writer:
                    for key, value in scalars.items():
                        writer.add_scalar(key, value, it)
            if val_loaders and (it % val_opt['val_freq'] == 0 or it == total_iter):
                with stop.validation():
                    validate(model, val_loaders, val_opt, opt, it, best, writer, logger, stop, device)
            signum = stop.agreed(device) if it < total_iter else 0
            if signum:
                stop.warn(f'Signal {signal.Signals(signum).name}: saving state at iteration {it} and stopping. '
                          'Continue with --auto_resume.')
            if signum or it % log_opt['save_checkpoint_freq'] == 0 or it == total_iter:
                save(it, epoch)
            if signum:
                raise SystemExit(128 + signum)
            tick = time.perf_counter()
    finally:
        stop.restore()
        if writer:
            writer.close()
    if is_main:
        written = []
        for filename, payload in model.export().items():
            written.append(Path(opt['path']['models']) / filename)
            save_atomic(payload, written[-1])
        logger.info(f"Training done: {', '.join(map(str, written))}")
    return model


def validate(model, val_loaders, val_opt, opt, it, best, writer, logger, stop: StopFlag, device) -> None:
    for name, loader in val_loaders:
        save_dir = Path(opt['path']['visualization']) if val_opt['save_img'] else None
        result = evaluate(model, stop.until_cut(loader), val_opt['metrics'], save_dir, val_opt['save_img_count'],
                          suffix=f'_{it}', bicubic_baseline=val_opt['bicubic_baseline'],
                          save_comparison=val_opt['save_comparison'])
        if dist.max_over_ranks(int(stop.cut), device):  # every rank gathered its part, cut short or not
            stop.warn(f'Validation {name} @ iter {it} cut short by a signal: not recorded.')
            return
        parts = []
        for metric, value in result['mean'].items():
            if metric == 'time_s':
                continue
            key = f'{name}/{metric}'
            better_high = 'lpips' not in metric and 'niqe' not in metric
            prev = best.get(key)
            if prev is None or (value > prev['value'] if better_high else value < prev['value']):
                best[key] = {'value': value, 'iter': it}
            parts.append(f"{metric} {value:.4f} (best {best[key]['value']:.4f} @ {best[key]['iter']})")
            if writer:
                writer.add_scalar(f'metrics/{key}', value, it)
        if result['failures']:  # each one logged as a warning by evaluate
            count = len(result['failures'])
            parts.append(f"{count} of {count + len(result['images'])} images failed, skipped")
        logger.info(f'Validation {name} @ iter {it}: ' + ', '.join(parts))


def main(argv: list[str] | None = None) -> Path:
    """Run training from command-line arguments; returns the run folder."""
    args = parse_args(argv)
    opt = load_options(args.opt, args.set, is_train=True)
    dist_info, device = dist.init_dist(opt['device'], opt['dist']['backend'], opt['dist']['timeout_minutes'])
    try:
        # auto_resume looks in the configured run folder, never a cwd-relative one
        resume = find_resume_state(args, opt, dist_info.is_main)
        train(opt, dist_info, device, resume, args.auto_resume)
        return Path(opt['path']['experiments_root'])
    finally:
        dist.destroy()


if __name__ == '__main__':
    from blindsr import cli

    cli.run(main)
