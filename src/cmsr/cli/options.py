"""Options shared by the commands that train (``sr``, ``demo``, ``eval``, ``batch``).

``add_training_options`` declares them; ``config_from_args`` turns the parsed values
into a :class:`cmsr.Config` (the named preset with the overrides).

``add_state_options`` declares the saved-state options (``--save-warp``,
``--load-warp``, ``--freeze-warp``, ``--save-checkpoint``, ``--init``,
``--warm-iters``) for the commands that handle them; ``load_start_states`` reads
the files given (before any work) and ``check_state_outputs`` checks where the
files will be written.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cmsr.errors import InputError
from cmsr.files import same_file
from cmsr.method import checkpoint
from cmsr.method.api import resolve_device
from cmsr.method.config import (
    AFTER_DROP,
    ALIGNMENTS,
    DEVICES,
    PRECISIONS,
    PRESETS,
    Config,
    degradation_problems,
)
from cmsr.method.resample import DEGRADATION_NAMES

CLIPS: dict[str, dict[str, bool]] = {
    "auto": {},
    "none": {"clamp_to_local_range": False, "clip_to_input_range": False},
    "input": {"clamp_to_local_range": False, "clip_to_input_range": True},
    "local": {"clamp_to_local_range": True, "clip_to_input_range": False},
}
"""``--clip``: the config fields each choice sets (``auto``: the preset's)."""


def add_training_options(parser: argparse.ArgumentParser, default_preset: str = "thermal"
                         ) -> None:
    """Options shared by the commands that train."""
    parser.add_argument("--preset", choices=sorted(PRESETS), default=default_preset,
                        help=f"settings per modality (default: {default_preset})")
    parser.add_argument("--iters", type=int, default=None,
                        help="maximum training steps per stage (default: the preset's)")
    parser.add_argument("--seed", type=int, default=0,
                        help="random seed, 0 <= N < 2**63 (default: 0)")
    parser.add_argument("--device", default="auto", metavar="|".join((*DEVICES, "cuda:N")),
                        help="where torch computes; auto: CUDA when this machine has it, "
                             "else the CPU (default: auto)")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for torch, at least 1 (default: torch's choice)")
    parser.add_argument("--precision", choices=PRECISIONS, default=None,
                        help="training precision; auto: bfloat16 autocast where the CPU or GPU "
                             "computes bfloat16 natively, else float32 (default: auto)")
    parser.add_argument("--align", choices=ALIGNMENTS,
                        default=None, help="learnable alignment of the guide (default: "
                                           "the preset's)")
    parser.add_argument("--warp-lr", type=_three_multipliers, default=None,
                        metavar="AFFINE,CPAB,TPS",
                        help="learning-rate multipliers of the three warp layers, larger "
                             "for badly displaced pairs (default: the preset's, 10,5,5)")
    parser.add_argument("--align-levels", type=int, default=None, metavar="N",
                        help="fit the alignment first on the pair reduced by 2**N, ..., 2 "
                             "(more for guides displaced by many pixels; 0: off; default: "
                             "the preset's, 2)")
    parser.add_argument("--align-check-margin", type=float, default=None, metavar="M",
                        help="keep the coarse alignment only if the guide, so warped, "
                             "explains the target locally better than as given by this "
                             "share (negative: always keep; default: the preset's, 0.05)")
    parser.add_argument("--align-when-dropped", choices=AFTER_DROP, default=None,
                        help="after the check dropped the coarse alignment: learn a warp "
                             "from the identity in the stages, or none (the pair is taken "
                             "as aligned; default: the preset's)")
    parser.add_argument("--alternating-scales", type=float, default=None, metavar="P",
                        help="share of up-sampling-scheme training steps (default: the "
                             "preset's); 0 helps the learned alignment")
    parser.add_argument("--kernel", default=None, metavar="NAME|FILE.npy",
                        help="how the target was reduced from the scene: cubic "
                             "(antialiased), box (pixel footprint), cubic-aliased or "
                             "linear-aliased (interpolated without antialiasing, as "
                             "cv2.resize), or a 2-D blur kernel in high-resolution pixels "
                             "saved with numpy.save (default: the preset's)")
    check = parser.add_mutually_exclusive_group()
    check.add_argument("--self-check", dest="self_check", action="store_true", default=None,
                       help="hold out part of the target and use the guide only where it "
                            "rebuilds it better than the guide-free network (default: the "
                            "preset's)")
    check.add_argument("--no-self-check", dest="self_check", action="store_false",
                       help="always use the guide")
    parser.add_argument("--self-check-margin", type=float, default=None, metavar="M",
                        help="use the guide only when it rebuilds the held-out pixels with "
                             "an error smaller by this share than the guide-free "
                             "network's and bicubic's, in [0, 1) (default: the preset's)")
    parser.add_argument("--self-check-margin-warped", type=float, default=None, metavar="M",
                        help="the same margin where the alignment check kept the coarse "
                             "warp (a guide measurably off the target), in [0, 1) "
                             "(default: the preset's: 0.2 for thermal, else as "
                             "--self-check-margin)")
    parser.add_argument("--guide-dropout", type=float, default=None, metavar="P",
                        help="share of training examples without the guide, which also "
                             "trains the guide-free network (default: the preset's)")
    parser.add_argument("--consistency-iters", type=int, default=None, metavar="N",
                        help="fine-tune N steps at the target scale so that the result, "
                             "reduced, gives back the input (default: the preset's, 0)")
    parser.add_argument("--no-ensemble", action="store_true",
                        help="skip the 8-fold geometric self-ensemble")
    parser.add_argument("--back-projection", type=int, default=None, metavar="N",
                        help="iterative back-projection steps (default: the preset's)")
    parser.add_argument("--clip", choices=CLIPS, default="auto",
                        help="keep the result inside what was measured: input clips each "
                             "band to the range of its valid input pixels, local each pixel "
                             "to the range of the 3x3 measured pixels around it, none adds no "
                             "clip (default: auto, the preset's: local for depth, none "
                             "otherwise). Sharpening may otherwise overshoot the input's "
                             "range a little; integer results always stay inside their "
                             "dtype's range (e.g. 0-255 for 8-bit)")
    parser.add_argument("--guided-median", type=int, default=None, metavar="R",
                        help="last, each pixel becomes the median of its (2R+1)x(2R+1) "
                             "neighbours weighted by how alike the aligned guide is there: "
                             "edges move onto the guide's, flat regions stay flat; then "
                             "back-projection and the clip once more. 0 turns it off "
                             "(default: the preset's: 1 for depth, 0 otherwise)")
    parser.add_argument("--guide-shift-search", type=int, default=None, metavar="N",
                        help="with the guided median: first move the guide (for the "
                             "finishes alone) by the whole-pixel offset within N output "
                             "pixels whose edges line up best with the result's, when "
                             "that beats the unmoved guide by 5%% and the median's result, "
                             "reduced, then gives back the input 5%% better too; 0 turns it "
                             "off (default: the preset's: 1 for depth, 0 otherwise)")
    parser.add_argument("--edge-sharpening", type=float, default=None, metavar="S",
                        help="last, each pixel left in between the two sides of a step "
                             "moves this share (0-1) of the way to the nearer side, for "
                             "piecewise-constant targets such as depth; then "
                             "back-projection and the clip once more. 0 turns it off "
                             "(default: the preset's)")
    parser.add_argument("--block-partition", type=float, default=None, metavar="S",
                        help="after that, the output pixels under each measured pixel that "
                             "straddles a step move this share (0-1) of the way to the "
                             "split between its two sides that the measured value implies "
                             "(box degradation, integer scales); then back-projection and "
                             "the clip once more. 0 turns it off (default: the preset's)")
    parser.add_argument("--block-partition-guide", type=float, default=None, metavar="W",
                        help="how much the guide's colours steer which pixels of a block "
                             "take which side (0: the guide is not read; default 0.2)")
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


def _three_multipliers(text: str) -> tuple[float, float, float]:
    """``"10,5,5"`` -> ``(10.0, 5.0, 5.0)``: three finite multipliers >= 0."""
    try:
        values = tuple(float(part) for part in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 3 or not all(0 <= v < float("inf") for v in values):
        raise argparse.ArgumentTypeError(
            f"expected three numbers >= 0 such as 10,5,5, got {text!r}")
    return values  # type: ignore[return-value]


def read_kernel(text: str) -> str | tuple[tuple[float, ...], ...]:
    """``--kernel``: a degradation name, or a ``.npy`` file holding a 2-D blur kernel
    (finite, positive sum; normalised to sum 1 when used)."""
    if text in DEGRADATION_NAMES:
        return text
    path = Path(text)
    if path.suffix.lower() != ".npy":
        raise InputError(f"is neither a kernel name ({', '.join(DEGRADATION_NAMES)}) nor "
                         "a .npy file", source=text)
    try:
        kernel = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise InputError("no such file", source=text) from None
    except (OSError, ValueError) as error:
        raise InputError(f"cannot be read as a numpy array ({error})", source=text) from None
    if kernel.ndim != 2 or kernel.dtype.kind not in "uif" or max(kernel.shape, default=0) > 64:
        raise InputError(f"must be a 2-D array of numbers at most 64 a side (got "
                         f"{kernel.dtype} {kernel.shape})", source=text)
    degradation = tuple(tuple(float(v) for v in row) for row in kernel)
    problems = degradation_problems(degradation)  # the config's own rule for kernels
    if problems:
        raise InputError(problems[0], source=text)
    return degradation


def config_from_args(args: argparse.Namespace, *, device_here: bool = True) -> Config:
    """The preset named by ``--preset`` with the command-line overrides, checked before
    any work: an unusable value (``--seed``, ``--threads``, ...) is a one-line
    :class:`InputError`, and so is a ``--device`` this machine lacks unless
    ``device_here`` is False (the work runs elsewhere, e.g. on a Dask cluster)."""
    changes: dict[str, object] = {"seed": args.seed, "device": args.device}
    if args.iters is not None:
        changes["max_iters"] = args.iters
        changes["min_iters"] = min(args.iters, PRESETS[args.preset].min_iters)
    if args.precision is not None:
        changes["precision"] = args.precision
    if args.align is not None:
        changes["align"] = args.align
    if args.warp_lr is not None:
        changes["warp_lr_affine"], changes["warp_lr_cpab"], changes["warp_lr_tps"] = args.warp_lr
    if args.align_levels is not None:
        changes["align_levels"] = args.align_levels
    if args.align_check_margin is not None:
        changes["align_check_margin"] = args.align_check_margin
    if args.align_when_dropped is not None:
        changes["align_when_dropped"] = args.align_when_dropped
    if args.alternating_scales is not None:
        changes["alternating_scales"] = args.alternating_scales
    for name in ("self_check", "self_check_margin", "self_check_margin_warped",
                 "guide_dropout", "consistency_iters"):
        if getattr(args, name, None) is not None:
            changes[name] = getattr(args, name)
    if getattr(args, "kernel", None) is not None:
        changes["degradation"] = read_kernel(args.kernel)
    if args.no_ensemble:
        changes["self_ensemble"] = False
    if args.back_projection is not None:
        changes["back_projection_iters"] = args.back_projection
    if getattr(args, "guided_median", None) is not None:
        changes["guided_median_radius"] = args.guided_median
    for name in ("guide_shift_search", "edge_sharpening", "block_partition",
                 "block_partition_guide"):
        if getattr(args, name, None) is not None:
            changes[name] = getattr(args, name)
    if args.gradual is not None:
        changes["gradual"] = args.gradual
    if args.threads is not None:
        changes["threads"] = args.threads
    if getattr(args, "freeze_warp", False):
        changes["freeze_warp"] = True
    if getattr(args, "warm_iters", None) is not None:
        changes["warm_start_iters"] = args.warm_iters
    changes.update(CLIPS[getattr(args, "clip", "auto")])
    if device_here:
        resolve_device(args.device, source="--device")
    if getattr(args, "stream_above", None) is not None:
        changes["stream_above"] = args.stream_above
    if getattr(args, "stream_tile", None) is not None:
        changes["stream_tile"] = args.stream_tile
    try:
        return Config.preset(args.preset, **changes)
    except ValueError as error:
        raise InputError(str(error), source="options") from None


def add_state_options(parser: argparse.ArgumentParser) -> None:
    """Options to save a fit's learned state and to start from a saved one."""
    group = parser.add_argument_group(
        "saved state", "Keep what a run learned and start the next one from it (e.g. the "
        "next frame of a fixed camera rig).")
    group.add_argument("--save-warp", type=Path, default=None, metavar="FILE",
                       help="write the learned alignment of the guide (a small .pt file; "
                            "needs --align other than none)")
    group.add_argument("--load-warp", type=Path, default=None, metavar="FILE",
                       help="start the alignment from a --save-warp file (or a checkpoint's "
                            "warp); --align comes from the file unless given. It keeps "
                            "training from there unless --freeze-warp")
    group.add_argument("--freeze-warp", action="store_true",
                       help="apply the loaded warp as it is, without training it")
    group.add_argument("--save-checkpoint", type=Path, default=None, metavar="FILE",
                       help="write the networks and the warp (a .pt file) to warm-start "
                            "other runs with --init")
    group.add_argument("--init", type=Path, default=None, metavar="FILE",
                       help="warm start from a --save-checkpoint file made with the same "
                            "preset, scale and band counts: its networks and warp, fewer "
                            "steps (--warm-iters) from a lower learning rate")
    group.add_argument("--warm-iters", type=int, default=None, metavar="N",
                       help=f"at most N steps per stage when starting from --init "
                            f"(default: {Config().warm_start_iters}; never more than --iters)")


def load_start_states(args: argparse.Namespace, config: Config
                      ) -> tuple[Config, dict[str, Any] | None, dict[str, Any] | None]:
    """Read ``--init`` and ``--load-warp`` (one-line :class:`InputError` if unusable).

    Returns the config (``align``, ``cpab_cells`` and ``tps_points`` taken from the
    warp when ``--align`` was not given), the checkpoint dict and the warp dict.
    """
    init = checkpoint.load_checkpoint(args.init) if args.init is not None else None
    warp = checkpoint.as_warp_state(args.load_warp) if args.load_warp is not None else None
    if warp is None and init is not None:
        warp = init["warp"]
    if warp is not None and args.align is None:
        config = config.replace(**{key: warp[key] for key in checkpoint.warp_structure(config)})
    if init is not None:
        checkpoint.check_network_shape(init, config, source=str(args.init))
    if warp is not None:
        checkpoint.check_warp_fits(warp, config, source=str(args.load_warp or args.init))
    if args.freeze_warp and warp is None:
        raise InputError("needs a warp to apply: give --load-warp (or --init with a warp)",
                         source="--freeze-warp")
    return config, init, warp


def check_state_outputs(args: argparse.Namespace, config: Config, *,
                        inputs: Sequence[Path] = (), output: Path | None = None) -> None:
    """Fail before any work if ``--save-warp`` / ``--save-checkpoint`` cannot be written:
    no warp to save, an input, the result or each other, a folder, or existing without
    ``--overwrite``."""
    if args.save_warp is not None and config.align == "none":
        raise InputError("there is no warp to save with --align none; choose --align affine, "
                         "affine+cpab or full", source="--save-warp")
    taken: list[Path] = [*inputs, *([output] if output is not None else [])]
    for path in (args.save_warp, args.save_checkpoint):
        if path is None:
            continue
        if any(same_file(path, other) for other in taken):
            raise InputError("is also an input or another output", source=str(path))
        if path.is_dir():
            raise InputError("is a directory", source=str(path))
        if path.exists() and not args.overwrite:
            raise InputError("already exists; pass --overwrite to replace it", source=str(path))
        taken.append(path)


def use_threads(config: Config) -> None:
    """Give torch ``config.threads`` CPU threads (``--threads``); None leaves torch's
    choice."""
    if config.threads is not None:
        torch.set_num_threads(config.threads)


def add_pair_role_options(parser: argparse.ArgumentParser) -> None:
    """``--swap``, ``--reduce-guide`` and ``--disparity``: how a scene's files make the
    pair (see :class:`cmsr.evaluation.protocols.EvalProtocol`), for ``eval``, ``batch``
    and ``train``."""
    group = parser.add_argument_group(
        "pair roles", "The setting of learned cross-spectral models (CSPSR): a visible "
        "target with a near-infrared guide from another camera of a rig.")
    group.add_argument("--swap", action="store_true",
                       help="make the scene's guide the target (ground truth) and its "
                            "target the guide, e.g. a visible target with a NIR guide on "
                            "the EPFL folders")
    group.add_argument("--reduce-guide", action="store_true",
                       help="give the guide at the input's low resolution, reduced like "
                            "the target (the paper's setting)")
    group.add_argument("--disparity", type=float, default=0.0, metavar="PX",
                       help="move the guide by a smooth horizontal disparity field with "
                            "this mean, in full-resolution pixels (a stereo rig's other "
                            "view)")
