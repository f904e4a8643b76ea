"""The ``cmsr`` command line, one module per subcommand.

==========  ==================================================  ===============
command     job                                                 module
==========  ==================================================  ===============
``sr``      one pair in, one super-resolved result out          :mod:`.sr`
``demo``    the built-in synthetic example, with figures        :mod:`.sr`
``batch``   every pair of a dataset: resumable, local or Dask   :mod:`.batch`
``eval``    methods side by side against ground truth           :mod:`.eval`
``train``   learn a model from many pairs (CSPSR), apply later  :mod:`.train`
==========  ==================================================  ===============

Each subcommand module has ``add_<name>_parser(commands)``, which declares the
options and sets ``run`` to the function that does the work. User mistakes (missing
files, bad sizes, an output that exists) end with one line ``cmsr: error: ...`` on
stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from cmsr import __version__
from cmsr.cli.batch import add_batch_parser
from cmsr.cli.eval import add_eval_parser
from cmsr.cli.sr import add_demo_parser, add_sr_parser
from cmsr.cli.train import add_train_parser
from cmsr.errors import InputError

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for all subcommands."""
    parser = argparse.ArgumentParser(
        prog="cmsr",
        description="Cross-modality super-resolution from a single pair (CMSR): enlarge a "
                    "thermal, NIR or depth image with the help of an RGB photo of the scene.")
    parser.add_argument("--version", action="version", version=f"cmsr {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_sr_parser(commands)
    add_demo_parser(commands)
    add_batch_parser(commands)
    add_eval_parser(commands)
    add_train_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``cmsr`` command; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except InputError as error:
        print(f"cmsr: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("cmsr: interrupted; no output was written for the unfinished run",
              file=sys.stderr)
        return EXIT_INTERRUPTED


__all__ = ["EXIT_INTERRUPTED", "EXIT_USAGE", "build_parser", "main"]
