"""The command line: ``cmsr sr``, ``cmsr demo``. Thin: parse, call the API, print.

User mistakes (missing files, bad sizes, an output that exists) end with one line
``cmsr: error: ...`` on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import csv
import io as text_io
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from cmsr import __version__
from cmsr.api import CMSR
from cmsr.config import PRESETS, Config
from cmsr.errors import InputError
from cmsr.figures import error_map, loss_curve, panel_grid, red_green_overlay
from cmsr.io import SUPPORTED_WRITE, describe, read_image, write_image, write_text
from cmsr.metrics import rmse
from cmsr.normalize import array_to_tensor, tensor_to_array
from cmsr.progress import TrainingProgress
from cmsr.resample import upsample_bicubic

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
#: At most this many training steps per stage in ``cmsr demo`` unless --iters is given.
DEMO_MAX_ITERS = 300

DEMO_EXAMPLES = """examples:
  cmsr demo                        # writes cmsr-demo/ (under a minute on 2 CPU cores)
  cmsr demo -o out --overwrite --iters 500 --save-figures out/figures
"""
#: Files ``--save-figures`` writes (plus ``alignment.png`` with ``--align``).
FIGURE_FILES = ("comparison.png", "loss_curve.png", "history.csv")

SR_EXAMPLES = """examples:
  cmsr sr --target thermal_80x60.png --guide rgb_320x240.png -o thermal_sr.png
  cmsr sr --target nir.tif --guide rgb.png -o nir_sr.tif --preset nir --save-figures figs/
  cmsr sr --target depth.png --guide rgb.png -o depth_sr.png --preset depth --invalid 0
"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for all subcommands."""
    parser = argparse.ArgumentParser(
        prog="cmsr",
        description="Cross-modality super-resolution from a single pair (CMSR): enlarge a "
                    "thermal, NIR or depth image with the help of an RGB photo of the scene.")
    parser.add_argument("--version", action="version", version=f"cmsr {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sr = commands.add_parser(
        "sr", help="super-resolve one target image with its guide",
        description="Train on the pair, then write the super-resolved target. The output "
                    "keeps the target's units and dtype.",
        epilog=SR_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    sr.add_argument("--target", required=True, type=Path,
                    help="low-resolution target (PNG 8/16-bit, TIFF incl. float, NPY, JPEG)")
    sr.add_argument("--guide", required=True, type=Path,
                    help="high-resolution guide (RGB, grey or multi-band)")
    sr.add_argument("-o", "--output", required=True, type=Path,
                    help=f"result file ({', '.join(SUPPORTED_WRITE)})")
    add_training_options(sr)
    sr.add_argument("--scale", type=float, default=None,
                    help="force this scale (default: guide size / target size)")
    sr.add_argument("--invalid", type=float, default=None, metavar="VALUE",
                    help="target value meaning 'no measurement' (e.g. 0 in depth maps); "
                         "NaN is always invalid")

    demo = commands.add_parser(
        "demo", help="run on a built-in synthetic depth + RGB example",
        description="Generate a built-in depth/RGB pair (with RGB-only texture that must not "
                    "appear in the result), super-resolve it x4 and compare with the truth. "
                    f"Defaults: preset depth, at most {DEMO_MAX_ITERS} steps per stage.",
        epilog=DEMO_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    demo.add_argument("-o", "--output", type=Path, default=Path("cmsr-demo"),
                      help="folder for the example and its results (default: cmsr-demo)")
    add_training_options(demo, default_preset="depth")
    return parser


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


def result_layout(target: np.ndarray) -> tuple[np.dtype, int]:
    """The dtype and channel count of the result for ``target`` (see :meth:`CMSR.predict`)."""
    dtype = np.dtype(np.uint8) if target.dtype == np.bool_ else target.dtype
    if not np.issubdtype(dtype, np.integer) and dtype != np.float64:
        dtype = np.dtype(np.float32)
    return dtype, 1 if target.ndim == 2 else target.shape[2]


def check_output(path: Path, *, overwrite: bool, inputs: Sequence[Path] = (),
                 result: tuple[np.dtype, int] | None = None) -> None:
    """Fail before any work if ``path`` cannot or must not be written.

    ``result``: the dtype and channel count that will be written (PNG takes only
    ``uint8``/``uint16`` with 1, 3 or 4 channels).
    """
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_WRITE:
        raise InputError(f"unsupported output type {suffix or '(none)'}; use one of "
                         f"{', '.join(SUPPORTED_WRITE)}", source=str(path))
    for source in inputs:
        if path.exists() and source.exists() and (
                path.resolve() == source.resolve() or os.path.samefile(path, source)):
            raise InputError("is also an input; refusing to overwrite it", source=str(path))
    if path.is_dir():
        raise InputError("is a directory", source=str(path))
    if path.exists() and not overwrite:
        raise InputError("already exists; pass --overwrite to replace it", source=str(path))
    if result is not None and suffix == ".png":
        dtype, channels = result
        if dtype not in (np.uint8, np.uint16):
            kind = "floating point" if dtype.kind == "f" else str(dtype)
            raise InputError(f"the result will be {kind} like the target ({dtype}) and PNG "
                             "stores only 8- or 16-bit integers; write .tif or .npy",
                             source=str(path))
        if channels not in (1, 3, 4):
            raise InputError(f"the result will have {channels} bands like the target and PNG "
                             "stores 1, 3 or 4; write .tif or .npy", source=str(path))


def check_figures(folder: Path, *, overwrite: bool, alignment: bool,
                  names: Sequence[str] = FIGURE_FILES) -> None:
    """Fail before any work if the figure files in ``folder`` must not be written."""
    if folder.exists() and not folder.is_dir():
        raise InputError("exists and is not a folder", source=str(folder))
    for name in (*names, "alignment.png") if alignment else names:
        path = folder / name
        if path.is_dir():
            raise InputError("is a directory", source=str(path))
        if path.exists() and not overwrite:
            raise InputError("already exists; pass --overwrite to replace it", source=str(path))


def enlarge_for_display(target: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bicubic enlargement of ``(h, w[, c])`` to ``size``, float32, for side-by-side views."""
    tensor = array_to_tensor(np.nan_to_num(np.asarray(target, dtype=np.float32)))
    return tensor_to_array(upsample_bicubic(tensor, size))


def history_rows(model: CMSR) -> list[tuple[int, int, float, float, float, float]]:
    """(stage, step counted over all stages, loss, reconstruction, learning rate, seconds)."""
    rows, offset = [], 0
    for stage, records in enumerate(model.records):
        for record in records:
            rows.append((stage, offset + record.step, record.loss, record.reconstruction,
                         record.learning_rate, record.seconds))
        offset += records[-1].step if records else 0
    return rows


def save_figures(folder: Path, model: CMSR, target: np.ndarray, guide: np.ndarray,
                 result: np.ndarray, *, overwrite: bool, truth: np.ndarray | None = None
                 ) -> list[Path]:
    """Write the comparison grid, the loss curve, the alignment overlays and history.csv."""
    size = result.shape[:2]
    enlarged = enlarge_for_display(target, size)
    shown = guide if guide.shape[:2] == size else enlarge_for_display(guide, size)
    panels: list[tuple[str, np.ndarray]] = [("guide", shown), ("input (bicubic)", enlarged),
                                            ("cmsr", result)]
    if truth is not None:
        scale = float(np.nanpercentile(np.abs(enlarged.astype(np.float64) - truth), 99)) or 1.0
        panels += [("ground truth", truth), ("error bicubic", error_map(enlarged, truth,
                                                                        vmax=scale)),
                   ("error cmsr", error_map(result, truth, vmax=scale))]
    written = [write_image(folder / "comparison.png", panel_grid(panels, columns=3),
                           overwrite=overwrite)]
    rows = history_rows(model)
    if rows:
        curve = loss_curve([r[1] for r in rows], [r[2] for r in rows],
                           learning_rates=[r[4] for r in rows])
        written.append(write_image(folder / "loss_curve.png", curve, overwrite=overwrite))
    if model.warp is not None:
        aligned = model.aligned_guide()[0].permute(1, 2, 0).cpu().numpy()
        before = red_green_overlay(model.pair.guide[0].permute(1, 2, 0).cpu().numpy(),
                                   enlarged)
        after = red_green_overlay(aligned, enlarged)
        grid = panel_grid([("deformed guide", aligned), ("before alignment", before),
                           ("after alignment", after)], columns=3)
        written.append(write_image(folder / "alignment.png", grid, overwrite=overwrite))
    buffer = text_io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["stage", "step", "loss", "reconstruction", "learning_rate", "seconds"])
    writer.writerows(rows)
    written.append(write_text(folder / "history.csv", buffer.getvalue(), overwrite=overwrite))
    return written


def fit_and_predict(config: Config, target: np.ndarray, guide: np.ndarray, *,
                    scale: float | None, invalid: float | None, quiet: bool,
                    target_name: str, guide_name: str) -> tuple[CMSR, np.ndarray, float]:
    """Train with a progress bar, predict; return the model, result and seconds taken."""
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    progress = TrainingProgress(enabled=not quiet)
    start = time.perf_counter()
    try:
        model = CMSR(config).fit(target, guide, scale=scale, invalid_value=invalid,
                                 on_step=progress, target_name=target_name,
                                 guide_name=guide_name)
    except BaseException:
        progress.close(finished=False)
        raise
    progress.close()
    steps = []
    if config.self_ensemble:
        steps.append("8-fold self-ensemble")
    if config.back_projection_iters:
        steps.append(f"{config.back_projection_iters} back-projection steps")
    if not quiet:
        print(f"cmsr: inference ({', '.join(steps) or 'single pass'})...", end="",
              file=sys.stderr, flush=True)
    inference_start = time.perf_counter()
    try:
        result = model.predict()
    finally:
        if not quiet:
            print(f" {time.perf_counter() - inference_start:.1f} s", file=sys.stderr)
    return model, result, time.perf_counter() - start


def run_sr(args: argparse.Namespace) -> int:
    """``cmsr sr``: one pair in, one result out."""
    config = config_from_args(args)
    target = read_image(args.target)
    guide = read_image(args.guide)
    check_output(args.output, overwrite=args.overwrite, inputs=(args.target, args.guide),
                 result=result_layout(target))
    if args.save_figures is not None:
        check_figures(args.save_figures, overwrite=args.overwrite,
                      alignment=config.align != "none")
    model, result, seconds = fit_and_predict(
        config, target, guide, scale=args.scale, invalid=args.invalid, quiet=args.quiet,
        target_name=str(args.target), guide_name=str(args.guide))
    written = write_image(args.output, result, overwrite=args.overwrite)
    if args.save_figures is not None:
        save_figures(args.save_figures, model, target, guide, result, overwrite=args.overwrite)
    steps = sum(stage[-1].step for stage in model.records if stage)
    print(f"cmsr: wrote {written} ({describe(result)}) in {seconds:.1f} s, {steps} steps",
          file=sys.stderr)
    return 0


def run_demo(args: argparse.Namespace) -> int:
    """``cmsr demo``: the built-in example, with figures and RMSE against the truth."""
    from cmsr.demo import make_demo_pair

    if args.iters is None:
        args.iters = min(DEMO_MAX_ITERS, PRESETS[args.preset].max_iters)
    config = config_from_args(args)
    folder: Path = args.output
    pair = make_demo_pair(seed=args.seed)
    names = ("target_lr.png", "guide.png", "ground_truth.png", "result.png")
    for name in names:
        check_output(folder / name, overwrite=args.overwrite)
    check_figures(args.save_figures or folder, overwrite=args.overwrite,
                  alignment=config.align != "none", names=FIGURE_FILES)
    write_image(folder / "target_lr.png", pair.target_lr, overwrite=args.overwrite)
    write_image(folder / "guide.png", pair.guide, overwrite=args.overwrite)
    write_image(folder / "ground_truth.png", pair.ground_truth, overwrite=args.overwrite)
    model, result, seconds = fit_and_predict(
        config, pair.target_lr, pair.guide, scale=None, invalid=None, quiet=args.quiet,
        target_name="demo target", guide_name="demo guide")
    write_image(folder / "result.png", result, overwrite=args.overwrite)
    save_figures(args.save_figures or folder, model, pair.target_lr, pair.guide, result,
                 overwrite=args.overwrite, truth=pair.ground_truth)
    bicubic = np.clip(np.rint(enlarge_for_display(pair.target_lr, result.shape[:2])), 0, 255)
    truth, texture = pair.ground_truth, pair.texture_mask
    print(f"cmsr demo: {pair.target_lr.shape[1]}x{pair.target_lr.shape[0]} -> "
          f"{result.shape[1]}x{result.shape[0]} in {seconds:.1f} s; RMSE against the truth "
          f"(0-255): bicubic {rmse(bicubic, truth):.2f}, cmsr {rmse(result, truth):.2f}\n"
          f"cmsr demo: where the guide has RGB-only texture: bicubic "
          f"{rmse(bicubic, truth, mask=texture):.2f}, cmsr {rmse(result, truth, mask=texture):.2f}"
          f"; see {folder / 'comparison.png'}", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``cmsr`` command; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "sr":
            return run_sr(args)
        return run_demo(args)
    except InputError as error:
        print(f"cmsr: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("cmsr: interrupted; no output was written for the unfinished run",
              file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
