"""Command-line wrapper for the entry points: user errors print one clear line instead of a traceback.

Bad options, unknown registry names, missing or unfitting checkpoints, unreadable images and data
that does not fit (too-small images, unmatched pairs) are reported as ``error: ...`` with exit code 2.
Set ``BLINDSR_TRACEBACK=1`` to see the full traceback.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

from blindsr.checkpoint import CheckpointError
from blindsr.registry import RegistryError

USER_ERRORS = (ValueError, RegistryError, CheckpointError, FileNotFoundError, FileExistsError)  # OptionsError, ImageReadError are ValueErrors


def run(main: Callable[[list[str] | None], Any]) -> None:
    try:
        main(None)
    except USER_ERRORS as err:
        if os.environ.get('BLINDSR_TRACEBACK'):
            raise
        print(f'error: {err}\n(set BLINDSR_TRACEBACK=1 for the traceback)', file=sys.stderr)
        raise SystemExit(2) from None
