"""The data root: one folder, named by the environment variable ``BLINDSR_DATA``, that holds the benchmark
and training sets (``Set5/``, ``Set14/``, ``BSD100/``, ``Urban100/``, ``Manga109/``, ``BSDS500_train/``,
``DF2K/HR/`` ..., as ``scripts/prepare_data.py`` lays them out from a user's downloads).

Option files refer to it as ``${BLINDSR_DATA}/Set5`` (:func:`blindsr.options.load_options` expands
``${NAME}`` from the environment), shell commands as ``$BLINDSR_DATA/Set5``. Errors about a missing folder
under it name the variable (:func:`missing_hint`).
"""

from __future__ import annotations

import os
from pathlib import Path

DATA_ROOT_VAR = 'BLINDSR_DATA'
UNSET_HINT = (f'set {DATA_ROOT_VAR} to the folder that holds your datasets (scripts/prepare_data.py lays out '
              'the standard sets there from their downloaded archives)')


def missing_hint(folder: str | Path) -> str:
    """What to say about a missing ``folder`` that lies under the data root ('' when it does not)."""
    root = os.environ.get(DATA_ROOT_VAR)
    if not root:
        return ''
    root_path = Path(root).expanduser().resolve()
    if not Path(folder).expanduser().resolve().is_relative_to(root_path):
        return ''
    if not root_path.is_dir():
        return f' (the data root {DATA_ROOT_VAR}={root} does not exist; {UNSET_HINT})'
    return (f' (under the data root {DATA_ROOT_VAR}={root}; scripts/prepare_data.py lays out the standard sets '
            'there, or point the option at your copy)')
