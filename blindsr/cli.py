"""Command-line wrapper for the entry points: user errors print one clear line instead of a traceback.

Bad options, unknown registry names, missing or unfitting checkpoints, unreadable images and data
that does not fit (too-small images, unmatched pairs) are reported as ``error: ...`` with exit code 2.
Set ``BLINDSR_TRACEBACK=1`` to see the full traceback. A test run that finished but could not evaluate
some images (:class:`~blindsr.evaluation.ImagesFailed`) ends with ``error: N of M images failed ...`` and
exit code 3 (``EXIT_IMAGES_FAILED``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

from blindsr.checkpoint import CheckpointError
from blindsr.evaluation import ImagesFailed
from blindsr.registry import RegistryError

EXIT_IMAGES_FAILED = 3
USER_ERRORS = (ValueError, RegistryError, CheckpointError, FileNotFoundError, FileExistsError)  # OptionsError, ImageReadError are ValueErrors


def run(main: Callable[[list[str] | None], Any]) -> None:
    try:
        main(None)
    except ImagesFailed as err:  # the results are written; the failures are listed in them and in the log
        print(f'error: {err}', file=sys.stderr)
        raise SystemExit(EXIT_IMAGES_FAILED) from None
    except USER_ERRORS as err:
        if os.environ.get('BLINDSR_TRACEBACK'):
            raise
        print(f'error: {err}\n(set BLINDSR_TRACEBACK=1 for the traceback)', file=sys.stderr)
        raise SystemExit(2) from None
