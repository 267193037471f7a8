"""Output folders of a run (training run folder, test results folder), made only when the run really starts.

The entry points build everything first (options, datasets, model) and call :func:`start_output_folder`
right before their first write, so a start that fails leaves no folder behind and archives nothing.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Iterable
from pathlib import Path

from blindsr import dist
from blindsr.checkpoint import newest_loadable_state


def archive(folder: Path) -> Path:
    """Rename ``folder`` to a sibling ``<name>_archived_<time>`` (``_2``, ``_3`` ... when that name is
    taken, e.g. twice in one second) that did not exist, so one archive never ends up inside another."""
    name = f"{folder.name}_archived_{datetime.datetime.now().strftime('%Y%m%d_%H%M%S')}"
    target, n = folder.with_name(name), 1
    while target.exists():
        n += 1
        target = folder.with_name(f'{name}_{n}')
    return folder.rename(target)


def start_output_folder(folder: Path, is_main: bool, keep_existing: bool = False,
                        subfolders: Iterable[str | Path] = ()) -> Path:
    """Make ``folder`` (and ``subfolders``) on the main rank for a run that starts now; all ranks wait.

    A non-empty ``folder`` left by an earlier run is archived first (see :func:`archive`) unless
    ``keep_existing`` (a resumed run continues in its folder); an empty one is used as it is.
    """
    if is_main:
        if not keep_existing and folder.is_dir() and any(folder.iterdir()):
            logging.getLogger('blindsr').info(f'{folder} held an earlier run: moved it to {archive(folder)}')
        for sub in (folder, *subfolders):
            Path(sub).mkdir(parents=True, exist_ok=True)
    dist.barrier()
    return folder


def run_weights(name: str, experiments: Path, export: str = 'net_g_final.pth') -> Path:
    """The weights the training run ``name`` (a sibling folder in ``experiments``) left: its exported
    ``models/<export>`` when it finished, else its newest training state that loads."""
    run = Path(experiments) / name
    final = run / 'models' / export
    if final.is_file():
        return final
    state, _, _ = newest_loadable_state(run / 'training_states')
    if state is not None:
        return state
    raise FileNotFoundError(f"Run '{name}' has left no weights: looked for {final} and for loadable states in "
                            f"{run / 'training_states'}. Train that run first, or name a file instead.")
