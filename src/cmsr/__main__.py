"""``python -m cmsr``: the same as the ``cmsr`` command."""

from __future__ import annotations

import sys

from cmsr.cli import main

if __name__ == "__main__":
    sys.exit(main())
