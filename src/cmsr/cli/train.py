"""``cmsr train``: learn a model once from many pairs of one rig or modality.

The pairs are made from scene folders or a CSV manifest exactly as ``cmsr eval`` makes
them (:func:`cmsr.evaluation.evaluate.load_pair` under the protocol: reduced by the
scale, ``--swap``, ``--reduce-guide``, ``--disparity``, the bands ``--target-band`` and
``--guide-bands``), except that every scene gets
its own disparity field (protocol seed ``--seed`` + 1 + its index) so that the model
does not learn one field. Part of them is held out for validation; the model with the
best validation PSNR is written to ``-o`` (atomically, never over an existing file
without ``--overwrite``). A checkpoint is written every two minutes, on Ctrl-C and at
the end (``MODEL-checkpoint.pt`` beside the model unless ``--checkpoint``); ``--resume
CHECKPOINT`` continues from it until the total time reaches ``--minutes``.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import torch
from tqdm import tqdm

from cmsr.cli.options import add_pair_role_options
from cmsr.cli.rasters import add_pair_band_options
from cmsr.errors import InputError
from cmsr.evaluation.datasets import find_scenes, select_scenes
from cmsr.evaluation.evaluate import load_pair
from cmsr.evaluation.protocols import KINDS, USUAL_SCALES, EvalProtocol
from cmsr.files import same_file
from cmsr.learned.config import LOSSES, SIZES, VARIANTS, ModelConfig, TrainingSettings
from cmsr.learned.model_file import METHODS, load_checkpoint, save_model
from cmsr.learned.network import parameter_count
from cmsr.learned.training import Progress, TrainingPair, train_model

TRAIN_EXAMPLES = """examples:
  cmsr train ../shared/data/nir/epfl -o vis-from-nir.pt --method cspsr --scale 4 \\
      --swap --reduce-guide --disparity 4 --size reduced --minutes 30
  cmsr train frames.csv -o rig.pt --method cspsr --scale 4 --minutes 60   # HR RGB guide
  cmsr train frames.csv -o rig.pt --method cspsr --scale 4 --minutes 90 \\
      --resume rig-checkpoint.pt --overwrite          # 30 more minutes

Then: cmsr sr --model rig.pt --target t.png --guide g.png -o out.png (no fitting), or
cmsr batch DATA -o OUT --model rig.pt, or cmsr eval DATA --methods bicubic,cspsr
--option cspsr.model=rig.pt.
"""


def add_train_parser(commands: argparse._SubParsersAction) -> None:
    """Declare ``cmsr train`` and its options."""
    parser = commands.add_parser(
        "train", help="learn a model from many pairs, to apply to new frames without fitting",
        description="Train a learned cross-spectral model (CSPSR) on pairs made from "
                    "ground-truth scenes, then write it as one self-describing file.",
        epilog=TRAIN_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path,
                        help="a folder of scene folders (guide_*, target_*) or a CSV "
                             "manifest (target,guide[,lr,mask,name])")
    parser.add_argument("-o", "--output", required=True, type=Path, metavar="MODEL",
                        help="the model file to write (e.g. rig.pt)")
    parser.add_argument("--method", choices=METHODS, required=True,
                        help="the learned method (cspsr)")
    parser.add_argument("--scale", type=int, choices=USUAL_SCALES, required=True,
                        help="enlargement the model learns")
    parser.add_argument("--protocol", choices=list(KINDS), default="bicubic",
                        help="how the training input is made from the truth (default: "
                             "bicubic)")
    parser.add_argument("--scenes", default=None, metavar="NAMES",
                        help="comma-separated scene names or glob patterns (default: all)")
    parser.add_argument("--input-noise", type=float, default=0.0, metavar="SIGMA",
                        help="Gaussian noise on the training input, fraction of the data "
                             "range (as cmsr eval's; default 0)")
    add_pair_role_options(parser)
    add_pair_band_options(parser)
    model = parser.add_argument_group("model", "The architecture (default: the paper's).")
    model.add_argument("--variant", choices=list(VARIANTS), default="full",
                       help="full (CVM, dynamic convolution, CSFT), with-guide (both "
                            "branches, plain fusion) or baseline (the target alone)")
    model.add_argument("--size", choices=list(SIZES), default="paper",
                       help="paper (T=15, C=64) or reduced (T=4, C=32: trains on 2 cores)")
    model.add_argument("--blocks", type=int, default=None, metavar="T",
                       help="fusion modules (overrides --size)")
    model.add_argument("--features", type=int, default=None, metavar="C",
                       help="feature channels (overrides --size)")
    model.add_argument("--max-disparity", type=int, default=None, metavar="D",
                       help=f"CVM search range in low-resolution pixels (default: "
                            f"{ModelConfig().max_disparity})")
    training = parser.add_argument_group("training")
    defaults = TrainingSettings()
    training.add_argument("--minutes", type=float, default=defaults.minutes,
                          help=f"time budget, summed over resumed runs (default: "
                               f"{defaults.minutes:g})")
    training.add_argument("--max-steps", type=int, default=None, metavar="N",
                          help="stop after N steps as well")
    training.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    training.add_argument("--batch-size", type=int, default=defaults.batch_size)
    training.add_argument("--patch-size", type=int, default=defaults.patch_size,
                          help=f"patch side in low-resolution pixels (default: "
                               f"{defaults.patch_size})")
    training.add_argument("--learning-rate", type=float, default=defaults.learning_rate)
    training.add_argument("--warmup-steps", type=int, default=defaults.warmup_steps,
                          metavar="N", help="steps of linear learning-rate warm-up")
    training.add_argument("--loss", choices=LOSSES, default=defaults.loss)
    training.add_argument("--consistency-weight", type=float,
                          default=defaults.consistency_weight, metavar="LAMBDA1",
                          help="weight of the cross-spectral consistency loss L_CSSC")
    training.add_argument("--matching-weight", type=float, default=defaults.matching_weight,
                          help="weight of the CVM's matching loss")
    training.add_argument("--validation-fraction", type=float,
                          default=defaults.validation_fraction, metavar="F",
                          help=f"share of the pairs held out (default: "
                               f"{defaults.validation_fraction:g})")
    training.add_argument("--validation-every", type=int, default=defaults.validation_every,
                          metavar="N", help="steps between validations")
    training.add_argument("--checkpoint", type=Path, default=None, metavar="FILE",
                          help="where checkpoints go (default: MODEL-checkpoint.pt, or the "
                               "--resume file)")
    training.add_argument("--resume", type=Path, default=None, metavar="CHECKPOINT",
                          help="continue a stopped or finished training")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for torch (default: torch's choice)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing model (and checkpoint)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(run=run_train)


class TrainingBar:
    """A tqdm bar over the time budget (or the steps, with ``--max-steps``), with the step,
    loss, learning rate and validation PSNR in its postfix."""

    def __init__(self, *, enabled: bool) -> None:
        self.enabled = enabled
        self.bar: tqdm | None = None

    def __call__(self, progress: Progress) -> None:
        if not self.enabled:
            return
        by_steps = progress.max_steps is not None
        if self.bar is None:
            total = progress.max_steps if by_steps else round(progress.budget_seconds)
            self.bar = tqdm(total=total, unit="step" if by_steps else "s", desc="cmsr train",
                            dynamic_ncols=True, file=sys.stderr)
        reached = progress.step if by_steps else min(round(progress.seconds), self.bar.total)
        validation = ("" if progress.validation_psnr != progress.validation_psnr
                      else f", val {progress.validation_psnr:.2f} dB (bicubic "
                           f"{progress.bicubic_psnr:.2f})")
        self.bar.set_postfix_str(f"step {progress.step}, loss {progress.loss:.2e}, "
                                 f"lr {progress.learning_rate:.0e}{validation}", refresh=False)
        self.bar.update(reached - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _check_outputs(args: argparse.Namespace, checkpoint: Path) -> None:
    """Fail before any work if the model or checkpoint must not be written."""
    output: Path = args.output
    if same_file(output, checkpoint):
        raise InputError("is both the model and the checkpoint", source=str(output))
    inputs = [args.data] + ([args.resume] if args.resume is not None else [])
    for path, what in ((output, "model"), (checkpoint, "checkpoint")):
        if any(same_file(path, other) for other in inputs) and not (
                what == "checkpoint" and args.resume is not None
                and same_file(path, args.resume)):
            raise InputError(f"the {what} would replace an input", source=str(path))
        if path.is_dir():
            raise InputError("is a directory", source=str(path))
    if output.exists() and not args.overwrite:
        raise InputError("already exists; pass --overwrite to replace it", source=str(output))
    fresh = args.resume is None or not same_file(checkpoint, args.resume)
    if fresh and checkpoint.exists() and not args.overwrite:
        raise InputError("already exists (a checkpoint of an earlier training?); pass "
                         "--resume to continue it or --overwrite to start again",
                         source=str(checkpoint))


def _model_config(args: argparse.Namespace) -> ModelConfig:
    overrides: dict[str, object] = {
        "guide_resolution": "low" if args.reduce_guide else "high"}
    for option, name in (("blocks", "blocks"), ("features", "features"),
                         ("max_disparity", "max_disparity")):
        if getattr(args, option) is not None:
            overrides[name] = getattr(args, option)
    try:
        return ModelConfig.build(variant=args.variant, size=args.size, **overrides)
    except ValueError as error:
        raise InputError(str(error), source="options") from None


def _settings(args: argparse.Namespace) -> TrainingSettings:
    try:
        return TrainingSettings(
            minutes=args.minutes, max_steps=args.max_steps, seed=args.seed,
            batch_size=args.batch_size, patch_size=args.patch_size,
            learning_rate=args.learning_rate, warmup_steps=args.warmup_steps, loss=args.loss,
            consistency_weight=args.consistency_weight,
            matching_weight=args.matching_weight,
            validation_fraction=args.validation_fraction,
            validation_every=args.validation_every)
    except ValueError as error:
        raise InputError(str(error), source="options") from None


def protocol_record(protocol: EvalProtocol) -> dict[str, object]:
    """What a model file keeps of the protocol its pairs were made with."""
    return {"name": protocol.name, "kind": protocol.kind, "scale": protocol.scale,
            "swap": protocol.swap, "reduce_guide": protocol.reduce_guide,
            "disparity": protocol.disparity, "input_noise": protocol.input_noise,
            "target_band": protocol.target_band,
            "guide_bands": None if protocol.guide_bands is None else list(protocol.guide_bands)}


def run_train(args: argparse.Namespace) -> int:
    """``cmsr train``: see the module docstring."""
    output: Path = args.output
    checkpoint: Path = args.checkpoint or args.resume or output.with_name(
        f"{output.stem}-checkpoint.pt")
    _check_outputs(args, checkpoint)
    settings = _settings(args)
    protocol = EvalProtocol(kind=args.protocol, scale=args.scale, seed=args.seed,
                            input_noise=args.input_noise, disparity=args.disparity, swap=args.swap,
                            reduce_guide=args.reduce_guide, target_band=args.target_band,
                            guide_bands=args.guide_bands)
    protocol.validate()
    config = _model_config(args)
    resume = None
    if args.resume is not None:
        resume = load_checkpoint(args.resume)
        info = resume["info"]
        if info.scale != args.scale:
            raise InputError(f"was trained for x{info.scale}, not x{args.scale}",
                             source=str(args.resume))
        if info.protocol.get("name") != protocol.name:
            raise InputError(f"was trained on pairs made with {info.protocol.get('name')}, "
                             f"not {protocol.name}", source=str(args.resume))
        config = info.config
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    scenes = select_scenes(find_scenes(args.data), args.scenes)
    pairs = []
    for index, scene in enumerate(tqdm(scenes, desc="reading pairs", unit="pair",
                                       disable=args.quiet, file=sys.stderr)):
        own = dataclasses.replace(protocol, seed=args.seed + 1 + index)
        pair = load_pair(scene, own)
        guide_truth = pair.guide_full if pair.guide_full is not None else pair.guide
        pairs.append(TrainingPair(scene.name, pair.low, pair.truth, pair.guide, guide_truth))
    bar = TrainingBar(enabled=not args.quiet)
    try:
        result = train_model(pairs, config=config, settings=settings, scale=args.scale,
                             protocol=protocol_record(protocol), checkpoint=checkpoint,
                             resume=resume, on_progress=bar)
    finally:
        bar.close()
    written = save_model(output, result.network, result.info, overwrite=args.overwrite)
    validation = ("no validation pairs" if result.best_psnr != result.best_psnr else
                  f"validation PSNR {result.best_psnr:.2f} dB (bicubic "
                  f"{result.info.training['validation_bicubic_psnr']:.2f}) on "
                  f"{len(result.info.training['validation_pairs'])} pair(s)")
    print(f"cmsr train: wrote {written} ({result.info.describe()}, "
          f"{parameter_count(result.network):,} parameters) after {result.steps} steps in "
          f"{result.seconds / 60:.1f} min on {len(result.info.training['train_pairs'])} "
          f"pair(s); {validation}; checkpoint {checkpoint}", file=sys.stderr)
    return 0
