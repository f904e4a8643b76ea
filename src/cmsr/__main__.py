"""``python -m cmsr``: the same as the ``cmsr`` command."""

import sys

from cmsr.cli import main

sys.exit(main())
