"""``cmsr sr`` (one pair in, one result out) and ``cmsr demo`` (the built-in example).

Thin: parse, call the API, print. Figures (``--save-figures``) are written here too.
"""

from __future__ import annotations

import argparse
import csv
import io as text_io
import sys
import time
from pathlib import Path

import numpy as np

from cmsr.cli.options import (
    add_state_options,
    add_training_options,
    check_state_outputs,
    config_from_args,
    load_start_states,
    use_threads,
)
from cmsr.cli.outputs import FIGURE_FILES, check_figures, check_output
from cmsr.cli.rasters import (
    LoadedPair,
    add_raster_options,
    read_pair,
    streaming_pair,
    write_result,
)
from cmsr.errors import InputError, describe_shape
from cmsr.evaluation.metrics import rmse
from cmsr.evaluation.protocols import KINDS, reduced_guide
from cmsr.files import SUPPORTED_WRITE, describe, write_image, write_text
from cmsr.files.geotiff import SCALE_TOLERANCE, GeoPair
from cmsr.learned.inference import SIZE_SLACK, LearnedModel
from cmsr.method.api import CMSR, resolve_device
from cmsr.method.checkpoint import StateSource
from cmsr.method.config import PRESETS, Config
from cmsr.method.georeferenced import stream_geotiff
from cmsr.method.normalize import array_to_tensor, result_dtype, tensor_to_array
from cmsr.method.precision import describe_precision
from cmsr.method.resample import upsample_bicubic
from cmsr.pictures.curves import loss_curve
from cmsr.pictures.display import error_map
from cmsr.pictures.panels import alignment_figure, panel_grid
from cmsr.pictures.progress import TileProgress, TrainingProgress

#: At most this many training steps per stage in ``cmsr demo`` unless --iters is given.
DEMO_MAX_ITERS = 300

DEMO_EXAMPLES = """examples:
  cmsr demo                        # writes cmsr-demo/ (under a minute on 2 CPU cores)
  cmsr demo -o out --overwrite --iters 500 --save-figures out/figures
"""

SR_EXAMPLES = """examples:
  cmsr sr --target thermal_80x60.png --guide rgb_320x240.png -o thermal_sr.png
  cmsr sr --target nir.tif --guide rgb.png -o nir_sr.tif --preset nir --save-figures figs/
  cmsr sr --target depth.png --guide rgb.png -o depth_sr.png --preset depth --invalid 0
  cmsr sr --target t1.png --guide g1.png -o sr1.png --align full --save-warp rig.pt
  cmsr sr --target t2.png --guide g2.png -o sr2.png --load-warp rig.pt   # next frame
  cmsr sr --target lst_100m.tif --guide s2_10m.tif --guide-bands 4,3,2 -o lst_10m.tif
  cmsr sr --model rig.pt --target t3.png --guide g3.png -o sr3.png  # learned: no fitting
"""


def add_sr_parser(commands: argparse._SubParsersAction) -> None:
    """Declare ``cmsr sr`` and its options."""
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
    add_state_options(sr)
    sr.set_defaults(run=run_sr)
    sr.add_argument("--scale", type=float, default=None,
                    help="force this scale (default: guide size / target size; for "
                         "georeferenced inputs the ratio of their pixel sizes, which a "
                         "given scale must match)")
    sr.add_argument("--invalid", type=float, default=None, metavar="VALUE",
                    help="target value meaning 'no measurement' (e.g. 0 in depth maps); "
                         "NaN and a GeoTIFF's nodata are always invalid")
    add_raster_options(sr)
    sr.add_argument("--model", type=Path, default=None, metavar="MODEL.pt",
                    help="apply a model made by cmsr train instead of fitting on the pair "
                         "(the guide as the model was trained: full size, or the target's "
                         "size for --reduce-guide models; a GeoTIFF pair is matched on the "
                         "ground as for fitting, its grids' ratio the model's scale, and a "
                         "--reduce-guide model gets its guide reduced); the bands, nodata and "
                         "--resolution options apply, the training options are not used")


def add_demo_parser(commands: argparse._SubParsersAction) -> None:
    """Declare ``cmsr demo`` and its options."""
    demo = commands.add_parser(
        "demo", help="run on a built-in synthetic depth + RGB example",
        description="Generate a built-in depth/RGB pair (with RGB-only texture that must not "
                    "appear in the result), super-resolve it x4 and compare with the truth. "
                    f"Defaults: preset depth, at most {DEMO_MAX_ITERS} steps per stage.",
        epilog=DEMO_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    demo.add_argument("-o", "--output", type=Path, default=Path("cmsr-demo"),
                      help="folder for the example and its results (default: cmsr-demo)")
    add_training_options(demo, default_preset="depth")
    demo.set_defaults(run=run_demo)


def enlarge_for_display(target: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bicubic enlargement of ``(h, w[, c])`` to ``size``, float32, for side-by-side views."""
    tensor = array_to_tensor(np.nan_to_num(np.asarray(target, dtype=np.float32)))
    return tensor_to_array(upsample_bicubic(tensor, size))


def history_rows(model: CMSR) -> list[tuple[str, int, float, float, float, float]]:
    """(phase, step counted over all phases, loss, reconstruction, learning rate, seconds).

    Phases: ``align 1``, ... (the warp's fits on reduced pairs), ``stage 1``, ...
    (the gradual stages; ``guide-free`` after the first when the self-check chose the
    guide-free network and ``self_check_free_share`` trains it further), ``consistency``
    (the fine-tuning at the target scale).
    """
    phases = [(f"align {k + 1}", records) for k, records in enumerate(model.alignment_records)]
    for k, records in enumerate(model.records):
        phases.append((f"stage {k + 1}", records))
        if k == 0 and model.guide_free_records:
            phases.append(("guide-free", model.guide_free_records))
    phases.append(("consistency", model.consistency_records))
    rows, offset = [], 0
    for phase, records in phases:
        for record in records:
            rows.append((phase, offset + record.step, record.loss, record.reconstruction,
                         record.learning_rate, record.seconds))
        offset += records[-1].step if records else 0
    return rows


def phase_starts(rows: list[tuple[str, int, float, float, float, float]]
                 ) -> list[tuple[float, str]]:
    """Where each phase of :func:`history_rows` begins, as loss-curve marks."""
    marks, previous = [], None
    for index, row in enumerate(rows):
        if row[0] != previous:
            start = rows[index - 1][1] if index else 0
            marks.append((float(start), row[0]))
            previous = row[0]
    return marks


def save_figures(folder: Path, model: CMSR, target: np.ndarray, guide: np.ndarray,
                 result: np.ndarray, *, overwrite: bool, truth: np.ndarray | None = None
                 ) -> list[Path]:
    """Write the comparison grid, the loss curve, the alignment overlays and history.csv."""
    size = result.shape[:2]
    enlarged = enlarge_for_display(target, size)
    shown = guide if guide.shape[:2] == size else enlarge_for_display(guide, size)
    label = "cmsr"
    if model.guide_shift is not None and model.guide_shift.moved:
        label += f" (finishes: guide moved {model.guide_shift.offset} px)"
    panels: list[tuple[str, np.ndarray]] = [("guide", shown), ("input (bicubic)", enlarged),
                                            (label, result)]
    if truth is not None:
        scale = float(np.nanpercentile(np.abs(enlarged.astype(np.float64) - truth), 99)) or 1.0
        panels += [("ground truth", truth), ("error bicubic", error_map(enlarged, truth,
                                                                        vmax=scale)),
                   ("error cmsr", error_map(result, truth, vmax=scale))]
    written = [write_image(folder / "comparison.png", panel_grid(panels, columns=3),
                           overwrite=overwrite)]
    rows = history_rows(model)
    if rows:
        title = "training loss"
        if model.self_check is not None:
            title += f" - {model.self_check.describe()}"
        if model.alignment_check is not None:
            title += f" - coarse alignment {model.alignment_check.decision}"
        curve = loss_curve([r[1] for r in rows], [r[2] for r in rows],
                           learning_rates=[r[4] for r in rows],
                           stage_marks=phase_starts(rows), title=title)
        written.append(write_image(folder / "loss_curve.png", curve, overwrite=overwrite))
    if model.warp is not None and model.pair is not None:
        aligned = model.aligned_guide()[0].permute(1, 2, 0).cpu().numpy()
        grid = alignment_figure(model.pair.guide[0].permute(1, 2, 0).cpu().numpy(), aligned,
                                enlarged)
        written.append(write_image(folder / "alignment.png", grid, overwrite=overwrite))
    buffer = text_io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["phase", "step", "loss", "reconstruction", "learning_rate", "seconds"])
    writer.writerows(rows)
    written.append(write_text(folder / "history.csv", buffer.getvalue(), overwrite=overwrite))
    return written


def fit_and_predict(config: Config, target: np.ndarray, guide: np.ndarray, *,
                    scale: float | None, invalid: float | None, quiet: bool,
                    target_name: str, guide_name: str, init: StateSource | None = None,
                    warp_init: StateSource | None = None, mask: np.ndarray | None = None
                    ) -> tuple[CMSR, np.ndarray, float]:
    """Train with a progress bar, predict; return the model, result and seconds taken.

    ``init`` / ``warp_init``: checkpoint and warp (files or dicts) to start from, see
    :meth:`CMSR.fit`; ``mask``: ``(h, w)`` bool, True for valid target pixels.
    """
    use_threads(config)
    progress = TrainingProgress(enabled=not quiet)
    start = time.perf_counter()
    model = CMSR(config)
    if not quiet:
        print(f"cmsr: {describe_precision(config.precision, model.device)}", file=sys.stderr)
    try:
        model = model.fit(target, guide, scale=scale, invalid_value=invalid, mask=mask,
                          on_step=progress, target_name=target_name, guide_name=guide_name,
                          init=init, warp_init=warp_init)
    except BaseException:
        progress.close(finished=False)
        raise
    progress.close()
    if model.init_warp_skipped and not quiet:
        print(f"cmsr: the warm start's warp {model.init_warp_skipped}: it starts afresh",
              file=sys.stderr)
    if model.alignment_check is not None and not quiet:
        after = ("; no warp learned (the pair counts as aligned)"
                 if not model.alignment_check.kept and model.warp is None else "")
        print(f"cmsr: {model.alignment_check.describe()}{after}", file=sys.stderr)
    if model.self_check is not None and not quiet:
        print(f"cmsr: {model.self_check.describe()}", file=sys.stderr)
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
    if model.guide_shift is not None and not quiet:
        print(f"cmsr: guided finishes: {model.guide_shift.describe()}", file=sys.stderr)
    return model, result, time.perf_counter() - start


def _check_grid_scale(model: LearnedModel, geo: GeoPair, args: argparse.Namespace) -> None:
    """A georeferenced pair's output grid (the guide's, or ``--resolution``) must be
    exactly the model's scale finer than the coarse grid the target was read on; else a
    one-line error naming the model (with the hint of ``--scale`` when the grids are
    within :data:`~cmsr.files.geotiff.SCALE_TOLERANCE` of it)."""
    if geo.scale == (model.scale, model.scale):
        return
    scale_y, scale_x = geo.scale
    ratio = (f"x{scale_x:.6g}" if scale_x == scale_y
             else f"x{scale_x:.6g} across by x{scale_y:.6g} down")
    near = all(abs(s - model.scale) <= SCALE_TOLERANCE * model.scale for s in geo.scale)
    hint = (f"; --scale {model.scale} reads the target on a grid exactly x{model.scale} "
            "coarser" if near and args.scale is None else "")
    raise InputError(f"enlarges x{model.scale}, but the grids of {args.target} and "
                     f"{args.guide} give {ratio} (the ratio of their pixel sizes): for a "
                     f"georeferenced pair the output's pixels (the guide's, or --resolution) "
                     f"must be {model.scale} times finer than the target's{hint}",
                     source=str(args.model))


def _guide_for_model(model: LearnedModel, pair: LoadedPair, *, quiet: bool) -> np.ndarray:
    """The guide as the model takes it: a model trained with a low-resolution guide
    (``--reduce-guide``) given a guide at the output's size (a georeferenced pair's
    guide, which lies on the output grid, or a plain guide ``scale`` times the target's
    size) gets it reduced to the target's size as its training guides were (the kernel
    of the protocol its pairs were made with); otherwise the guide as read."""
    if not (model.guide_is_low and model.info.config.use_guide):
        return pair.guide
    full = (pair.target.shape[0] * model.scale, pair.target.shape[1] * model.scale)
    if pair.geo is None and any(abs(have - need) > SIZE_SLACK for have, need
                                in zip(pair.guide.shape[:2], full, strict=True)):
        return pair.guide  # e.g. already low resolution; checked by the model
    kind = str(model.info.protocol.get("kind", "bicubic"))
    kind = kind if kind in KINDS else "bicubic"
    size = pair.target.shape[:2]
    if not quiet:
        print(f"cmsr: the guide reduced to the target's {describe_shape(size)} pixels "
              f"({KINDS[kind] or 'cubic'} kernel), as the model's training guides were "
              "(--reduce-guide)", file=sys.stderr)
    return reduced_guide(pair.guide, size, kind)


def run_sr_with_model(args: argparse.Namespace) -> int:
    """``cmsr sr --model``: apply a learned model to one pair, no fitting.

    The pair is read as for fitting (:func:`cmsr.cli.rasters.read_pair`: the bands of
    ``--target-band`` / ``--guide-bands``, a TIFF's nodata as the target's invalid
    pixels, georeferenced pairs laid on matching grids, ``--resolution``) and the result
    written the same way (:func:`cmsr.cli.rasters.write_result`: georeferenced for a
    GeoTIFF pair and a ``.tif`` name). A georeferenced pair's guide lies on the output
    grid, which must be the model's scale finer than the target's; a model trained with
    a low-resolution guide gets it reduced to the target's size.
    """
    for option, value in (("--save-warp", args.save_warp), ("--load-warp", args.load_warp),
                          ("--init", args.init), ("--save-checkpoint", args.save_checkpoint),
                          ("--save-figures", args.save_figures)):
        if value is not None:
            raise InputError("belongs to fitting on the pair; --model applies a trained "
                             "model", source=option)
    use_threads(config_from_args(args))  # --threads, --seed, --device checked as for fitting
    model = LearnedModel.load(args.model)
    if args.scale is not None and float(args.scale) != float(model.scale):
        raise InputError(f"the model enlarges x{model.scale}, not x{args.scale:g}",
                         source="--scale")
    pair = read_pair(args)
    if pair.geo is not None:
        _check_grid_scale(model, pair.geo, args)
        model.check_dtype(np.dtype(pair.geo.output.dtype), str(args.target))
    check_output(args.output, overwrite=args.overwrite,
                 inputs=(args.target, args.guide, args.model), result=pair.result_layout())
    guide = _guide_for_model(model, pair, quiet=args.quiet)
    start = time.perf_counter()
    result = model.predict(pair.target, guide, target_name=str(args.target),
                           guide_name=str(args.guide), mask=pair.mask,
                           invalid_value=args.invalid)
    seconds = time.perf_counter() - start
    result = pair.finish(result)
    where = write_result(args.output, result, pair, overwrite=args.overwrite)
    print(f"cmsr: wrote {args.output} ({describe(result)}){where} in {seconds:.2f} s with "
          f"{model.info.describe()} (no fitting)", file=sys.stderr)
    return 0


def run_sr(args: argparse.Namespace) -> int:
    """``cmsr sr``: one pair in, one result out."""
    if args.model is not None:
        return run_sr_with_model(args)
    config, _, _ = load_start_states(args, config_from_args(args))  # checked early
    streaming = streaming_pair(args, config.stream_above)
    if streaming is not None:
        return run_sr_tiled(args, config, streaming)
    pair = read_pair(args)
    target, guide = pair.target, pair.guide
    inputs = tuple(p for p in (args.target, args.guide, args.init, args.load_warp) if p)
    check_output(args.output, overwrite=args.overwrite, inputs=inputs,
                 result=pair.result_layout())
    check_state_outputs(args, config, inputs=inputs, output=args.output)
    if args.save_figures is not None:
        check_figures(args.save_figures, overwrite=args.overwrite,
                      alignment=config.align != "none", inputs=inputs,
                      output=args.output)
    model, result, seconds = fit_and_predict(
        config, target, guide, scale=None if pair.geo else args.scale, invalid=args.invalid,
        quiet=args.quiet, target_name=str(args.target), guide_name=str(args.guide),
        init=args.init, warp_init=args.load_warp, mask=pair.mask)
    result = pair.finish(result)
    where = write_result(args.output, result, pair, overwrite=args.overwrite)
    if args.save_warp is not None:
        model.save_warp(args.save_warp, overwrite=args.overwrite)
    if args.save_checkpoint is not None:
        model.save_checkpoint(args.save_checkpoint, overwrite=args.overwrite)
    if args.save_figures is not None:
        save_figures(args.save_figures, model, target, guide, result, overwrite=args.overwrite)
    print(f"cmsr: wrote {args.output} ({describe(result)}){where} in {seconds:.1f} s, "
          f"{model.training_steps} steps", file=sys.stderr)
    return 0


def run_sr_tiled(args: argparse.Namespace, config: Config, pair: GeoPair) -> int:
    """``cmsr sr`` for a GeoTIFF result too large to hold: trained on the central part,
    computed and written tile by tile (:func:`cmsr.method.georeferenced.stream_geotiff`)."""
    for option, value in (("--save-figures", args.save_figures), ("--save-warp", args.save_warp),
                          ("--load-warp", args.load_warp), ("--init", args.init),
                          ("--save-checkpoint", args.save_checkpoint)):
        if value is not None:
            raise InputError(f"is not available for outputs computed tile by tile "
                             f"({describe_shape(pair.output.shape)} output pixels, more than "
                             f"--stream-above {config.stream_above})", source=option)
    inputs = (args.target, args.guide)
    count = 1 if pair.target.ndim == 2 else pair.target.shape[2]
    check_output(args.output, overwrite=args.overwrite, inputs=inputs,
                 result=(result_dtype(np.dtype(pair.output.dtype)), count))
    use_threads(config)
    if not args.quiet:
        print(f"cmsr: {describe_shape(pair.output.shape)} output: training on its central "
              f"part (at most {config.train_max_pixels} pixels, no learned alignment), then "
              f"tiles of {config.stream_tile} pixels", file=sys.stderr)
        print(f"cmsr: {describe_precision(config.precision, resolve_device(config.device))}",
              file=sys.stderr)
    progress = TrainingProgress(enabled=not args.quiet)
    tiles = TileProgress(enabled=not args.quiet)
    start = time.perf_counter()

    def on_tile(done: int, total: int) -> None:
        if done == 1:
            progress.close()
        tiles(done, total)

    try:
        written = stream_geotiff(pair, args.target, args.guide, args.output, config,
                                 invalid_value=args.invalid, overwrite=args.overwrite,
                                 on_step=progress, on_tile=on_tile)
    except BaseException:
        progress.close(finished=False)
        tiles.close()
        raise
    progress.close()
    tiles.close()
    nodata = "" if written.nodata is None else f", nodata {written.nodata:g}"
    print(f"cmsr: wrote {args.output} ({describe_shape(written.shape)} {written.dtype}, "
          f"{tiles.done} tiles) on {written.describe()}{nodata} in "
          f"{time.perf_counter() - start:.1f} s", file=sys.stderr)
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



