"""``python -m torchsched`` and the ``torchsched`` console script: see :mod:`torchsched.cli`."""

from __future__ import annotations

import sys
from typing import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the ``torchsched`` command line with ``argv`` (default: ``sys.argv[1:]``); returns the exit status."""
    from .cli import main as _main

    return _main(argv)


if __name__ == "__main__":
    sys.exit(main())
