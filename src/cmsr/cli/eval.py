"""``cmsr eval``: methods side by side on scenes with ground truth, as tables and pictures.

Writes into REPORT_DIR: ``<protocol>.md`` and ``<protocol>.csv`` (per scene and mean,
with time and peak memory, and what cmsr's run-time self-check chose on each scene when
it ran), ``grids/<protocol>/<scene>.png`` (comparison grids),
``alignment/<protocol>/<scene>.png`` (cmsr's deformed guide and red-green overlays
with the truth before and after, for the cmsr runs computed in this call that
learned a warp) and ``runs/`` (every finished run, so a stopped evaluation resumes
where it stopped).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from cmsr.cli.options import (
    add_pair_role_options,
    add_training_options,
    config_from_args,
    use_threads,
)
from cmsr.cli.rasters import add_pair_band_options
from cmsr.errors import InputError
from cmsr.evaluation.datasets import Scene, find_scenes, select_scenes
from cmsr.evaluation.evaluate import (
    METHODS,
    Event,
    evaluate,
    parse_method_options,
    parse_methods,
)
from cmsr.evaluation.protocols import KINDS, USUAL_SCALES, EvalProtocol, EvaluationPair
from cmsr.evaluation.report import comparison_grid, csv_report, markdown_report
from cmsr.files import write_image, write_text
from cmsr.files.runs import RunStore
from cmsr.pictures.panels import alignment_figure

EVAL_EXAMPLES = f"""examples:
  cmsr eval data/middlebury13 --methods bicubic,cmsr --protocol avgpool --scale 4 \\
      --preset depth -o report/
  cmsr eval pairs.csv --methods {','.join(METHODS)} -o report/ --scenes '0*'
  cmsr eval data/unaligned --protocol real --methods bicubic,cmsr --align full -o rep/
  cmsr eval data/nir --shift 6 --rotation 2 --methods bicubic,cmsr -o misaligned/
  cmsr eval data/nir --swap --reduce-guide --disparity 4 --methods bicubic,cspsr \
      --option cspsr.model=vis-from-nir.pt -o learned/

Run it again with the same REPORT_DIR to resume: finished runs are not recomputed.
"""

#: Exit code when some run failed (the others are reported).
EXIT_SOME_FAILED = 1


def add_eval_parser(commands: argparse._SubParsersAction) -> None:
    """Declare ``cmsr eval`` and its options."""
    parser = commands.add_parser(
        "eval", help="compare methods against ground truth on a dataset",
        description="Make the low-resolution input from each scene's ground truth (or take "
                    "its real low-resolution capture), run every method, and write "
                    "tables and comparison grids.",
        epilog=EVAL_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path,
                        help="a folder of scene folders (guide_*, target_*, optional "
                             "target_*_lr*, mask_*) or a CSV manifest (target,guide[,lr,mask])")
    parser.add_argument("-o", "--output", required=True, type=Path, metavar="REPORT_DIR",
                        help="folder for the report (created; reused to resume)")
    parser.add_argument("--methods", default="bicubic,cmsr",
                        help=f"comma-separated, from {','.join(METHODS)} "
                             "(default: bicubic,cmsr)")
    parser.add_argument("--protocol", choices=list(KINDS),
                        default="bicubic",
                        help="how the input is made: average pooling (MMSR), MATLAB "
                             "bicubic (CMSR, ZSSR) or the real capture (default: bicubic)")
    parser.add_argument("--scale", type=int, choices=USUAL_SCALES, default=4,
                        help="reduction factor for avgpool/bicubic (default: 4)")
    parser.add_argument("--scenes", default=None, metavar="NAMES",
                        help="comma-separated scene names or glob patterns (default: all)")
    parser.add_argument("--crop", type=int, default=0,
                        help="border pixels left out of every metric (default: 0)")
    parser.add_argument("--input-noise", type=float, default=0.0, metavar="SIGMA",
                        help="Gaussian noise on the input, fraction of the data range")
    parser.add_argument("--guide-noise", type=float, default=0.0, metavar="SIGMA",
                        help="Gaussian noise on the guide, fraction of its data range")
    parser.add_argument("--shift", type=float, default=0.0, metavar="PX",
                        help="displace the guide globally by this many pixels")
    parser.add_argument("--rotation", type=float, default=0.0, metavar="DEG",
                        help="rotate the guide by this many degrees")
    parser.add_argument("--local-warp", type=float, default=0.0, metavar="PX",
                        help="smooth random local displacement of the guide, at most PX")
    parser.add_argument("--option", action="append", default=[], metavar="METHOD.NAME=VALUE",
                        help="a baseline's option, e.g. mmsr.iterations=300, or the "
                             "learned model: cspsr.model=MODEL.pt (repeatable)")
    parser.add_argument("--no-grids", action="store_true",
                        help="write tables only, no comparison PNGs")
    add_pair_role_options(parser)
    add_pair_band_options(parser)
    add_training_options(parser, default_preset="thermal")
    parser.set_defaults(run=run_eval)


def protocol_from_args(args: argparse.Namespace) -> EvalProtocol:
    """The :class:`EvalProtocol` the options describe."""
    protocol = EvalProtocol(kind=args.protocol, scale=args.scale, input_noise=args.input_noise,
                        guide_noise=args.guide_noise, shift=args.shift,
                        rotation=args.rotation, local_warp=args.local_warp, seed=args.seed,
                        disparity=args.disparity, swap=args.swap,
                        reduce_guide=args.reduce_guide, target_band=args.target_band,
                        guide_bands=args.guide_bands)
    protocol.validate()
    return protocol


class EvalProgress:
    """One bar over all (scene, method) runs; the current run and step in its postfix."""

    def __init__(self, total: int, *, enabled: bool) -> None:
        self.bar = tqdm(total=total, unit="run", disable=not enabled, dynamic_ncols=True,
                        file=sys.stderr)

    def __call__(self, event: Event) -> None:
        if event.kind == "start":
            self.bar.set_description(f"{event.scene} {event.method}")
        elif event.kind == "step" and event.step % 10 == 0:
            self.bar.set_postfix_str(f"step {event.step}", refresh=False)
        elif event.kind == "done" and event.result is not None:
            result = event.result
            state = "cached" if result.cached else (
                f"{result.seconds:.1f} s" if result.status == "ok" else "FAILED")
            self.bar.set_postfix_str(state, refresh=False)
            self.bar.update()
            if result.status != "ok":
                self.bar.write(f"cmsr eval: {result.scene} / {result.method} failed: "
                               f"{result.error}", file=sys.stderr)

    def close(self) -> None:
        self.bar.close()


def run_eval(args: argparse.Namespace) -> int:
    """``cmsr eval``: see the module docstring."""
    if args.save_figures is not None:
        raise InputError("cmsr eval writes its pictures into REPORT_DIR/grids",
                         source="--save-figures")
    config = config_from_args(args)
    use_threads(config)  # cmsr, zssr and mmsr run in this process
    methods = parse_methods(args.methods)
    options = parse_method_options(args.option)
    if "cspsr" in methods and "model" not in options.get("cspsr", {}):
        raise InputError("cspsr applies a trained model: add --option cspsr.model=MODEL.pt "
                         "(made by cmsr train)", source="--methods")
    protocol = protocol_from_args(args)
    scenes = select_scenes(find_scenes(args.data), args.scenes)
    report: Path = args.output
    if report.exists() and not report.is_dir():
        raise InputError("exists and is not a folder", source=str(report))
    grids = report / "grids" / protocol.name

    def draw(scene: Scene, pair: EvaluationPair, outputs: dict) -> None:
        scores = {r.method: r.rmse for r in results_so_far
                  if r.scene == scene.name and r.status == "ok"}
        grid = comparison_grid(pair, outputs, scores)
        write_image(grids / f"{scene.name.replace('/', '__')}.png", grid, overwrite=True)

    def draw_alignment(scene: Scene, pair: EvaluationPair, aligned: np.ndarray) -> None:
        if not aligned.shape[:2] == pair.guide.shape[:2] == pair.truth.shape[:2]:
            return  # the guide was resized for the run: no overlay on the truth's grid
        figure = alignment_figure(pair.guide, aligned.squeeze(-1) if aligned.shape[-1] == 1
                                  else aligned, pair.truth)
        write_image(report / "alignment" / protocol.name
                    / f"{scene.name.replace('/', '__')}.png", figure, overwrite=True)

    results_so_far: list = []
    progress = EvalProgress(len(scenes) * len(methods), enabled=not args.quiet)

    def on_event(event: Event) -> None:
        if event.kind == "done" and event.result is not None:
            results_so_far.append(event.result)
        progress(event)

    try:
        results = evaluate(scenes, methods, protocol, RunStore(report / "runs"),
                           config=config, options=options, crop=args.crop,
                           recompute=args.overwrite, on_event=on_event,
                           keep_outputs=None if args.no_grids else draw,
                           keep_alignment=None if args.no_grids else draw_alignment)
    finally:
        progress.close()
    notes = [f"Data: `{args.data}` ({len(scenes)} scenes). Protocol `{protocol.name}`; "
             f"metrics on the full image{f' minus a {args.crop}-pixel border' if args.crop else ''}"
             "; RMSE and MAE in the data's units, PSNR and SSIM on its data range.",
             f"cmsr / zssr: preset `{args.preset}`, seed {config.seed}, at most "
             f"{config.max_iters} steps per stage."]
    if options:
        notes.append("Baseline options: " + "; ".join(
            f"{m}: {', '.join(f'{k}={v}' for k, v in o.items())}" for m, o in options.items()))
    title = f"cmsr eval: {args.data.name}, {protocol.name}"
    markdown = write_text(report / f"{protocol.name}.md",
                          markdown_report(results, title=title, notes=notes), overwrite=True)
    write_text(report / f"{protocol.name}.csv", csv_report(results), overwrite=True)
    failed = sum(r.status != "ok" for r in results)
    print(f"cmsr eval: {len(results) - failed} of {len(results)} runs ok; report {markdown}",
          file=sys.stderr)
    return EXIT_SOME_FAILED if failed else 0
