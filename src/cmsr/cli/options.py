"""Options shared by the commands that train (``sr``, ``demo``, ``eval``, ``batch``).

``add_training_options`` declares them; ``config_from_args`` turns the parsed values
into a :class:`cmsr.Config` (the named preset with the overrides).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cmsr.config import PRESETS, Config
from cmsr.errors import InputError


def add_training_options(parser: argparse.ArgumentParser, default_preset: str = "thermal"
                         ) -> None:
    """Options shared by the commands that train."""
    parser.add_argument("--preset", choices=sorted(PRESETS), default=default_preset,
                        help=f"settings per modality (default: {default_preset})")
    parser.add_argument("--iters", type=int, default=None,
                        help="maximum training steps per stage (default: the preset's)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for torch (default: torch's choice)")
    parser.add_argument("--precision", choices=["bfloat16", "float32"], default=None,
                        help="training precision (default: the preset's)")
    parser.add_argument("--align", choices=["none", "affine", "affine+cpab", "full"],
                        default=None, help="learnable alignment of the guide (default: "
                                           "the preset's)")
    parser.add_argument("--no-ensemble", action="store_true",
                        help="skip the 8-fold geometric self-ensemble")
    parser.add_argument("--back-projection", type=int, default=None, metavar="N",
                        help="iterative back-projection steps (default: the preset's)")
    gradual = parser.add_mutually_exclusive_group()
    gradual.add_argument("--gradual", dest="gradual", action="store_true", default=None,
                         help="enlarge in steps of at most x2 (default for scales above 2)")
    gradual.add_argument("--no-gradual", dest="gradual", action="store_false",
                         help="enlarge in one step")
    parser.add_argument("--save-figures", type=Path, default=None, metavar="DIR",
                        help="write comparison.png, loss_curve.png and history.csv here")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace existing output files")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def config_from_args(args: argparse.Namespace) -> Config:
    """The preset named by ``--preset`` with the command-line overrides."""
    changes: dict[str, object] = {"seed": args.seed, "device": args.device}
    if args.iters is not None:
        changes["max_iters"] = args.iters
        changes["min_iters"] = min(args.iters, PRESETS[args.preset].min_iters)
    if args.precision is not None:
        changes["precision"] = args.precision
    if args.align is not None:
        changes["align"] = args.align
    if args.no_ensemble:
        changes["self_ensemble"] = False
    if args.back_projection is not None:
        changes["back_projection_iters"] = args.back_projection
    if args.gradual is not None:
        changes["gradual"] = args.gradual
    if args.threads is not None:
        changes["threads"] = args.threads
    try:
        return Config.preset(args.preset, **changes)
    except ValueError as error:
        raise InputError(str(error), source="options") from None


