"""Learned models (issue 14): train once on part of a dataset, test on the rest, beside
bicubic and per-pair cmsr fitting.

Three directions, each trained with ``cmsr train`` and scored with ``cmsr eval`` on
the held-out test pairs (x4, bicubic protocol):

* ``paper`` -- the CSPSR paper's setting on ``nir/epfl``: ``--swap --reduce-guide
  --disparity 4``, a visible target with a low-resolution NIR guide from another view
  (a 4 px mean horizontal disparity at full resolution). Models: ``baseline`` (the
  visible branch alone), ``with-guide`` ("w/ NIR") and ``full``. cmsr fits each pair
  with the reduced NIR guide enlarged back by bicubic (the same information).
* ``nir`` -- our direction on ``nir/epfl``: RGB-guided NIR with the full-resolution
  guide (``--our-disparity``, default 0: aligned). Model: ``full``.
* ``thermal`` -- RGB-guided thermal on ``thermal/roadscene``. Model: ``full``.

``--input-noise SIGMA`` adds Gaussian noise to the paper direction's visible input in
training and test (the paper's visible images are degraded; the issue's protocol is
clean; ``benchmarks/cross_spectral_information.py`` says why that matters): give it
its own ``--results-dir``.

Reported per direction and method: mean PSNR / SSIM / RMSE on the test pairs, seconds
per frame as ``cmsr eval`` measured them (model loading included for the learned
models, the whole fit for cmsr), the training minutes, and the inference time of
each model on one 1024x680 output frame (median of 3 after a warm-up, ``--threads``).
Prints one Markdown table and writes it to ``learned_models.md``
(``learned_models_equal_steps.md`` with ``--equal-steps``) in ``results/`` or
``--results-dir``. Models go to ``<results-dir>/learned/<direction>/models/`` (not
kept in git) and are reused when present (``--retrain`` trains again); finished eval
runs are reused too, so a stopped run can be started again.

Cost with the defaults (a reduced model, T=4, C=32; 25 minutes of training each, 5
models; cmsr on 6 + 6 + 6 test pairs) is about three hours on 2 cores. To check that
the script works, run it small, e.g.::

    python benchmarks/learned_models.py --minutes 1 --train-pairs 3 --test-pairs 1 \\
        --cmsr-iters 5 --only paper --results-dir /tmp/learned-check
"""

from __future__ import annotations

import argparse
import csv
import math
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from common import RESULTS, data_root, machine_line, markdown_table

from cmsr.cli import main as cmsr_main
from cmsr.evaluation.datasets import find_scenes
from cmsr.learned.inference import LearnedModel

EPFL_TEST = ("train_0003", "train_0005", "train_0007", "train_0008", "train_0013",
             "train_0014")
"""The EPFL pairs the other benchmarks test cmsr on (``eval_suite.py``, ``epfl-nir-x4``)."""


@dataclass(frozen=True)
class Direction:
    """One dataset and setting: what is trained and how cmsr is run beside it."""

    name: str
    data: str  # below the shared data root
    preset: str  # cmsr's preset for the per-pair fits
    variants: tuple[str, ...]
    pair_options: tuple[str, ...]
    test: tuple[str, ...] = ()  # test scene names; empty: the first --test-pairs by name
    why: str = ""


def directions(our_disparity: float, input_noise: float = 0.0) -> dict[str, Direction]:
    """The three directions (see the module docstring); ``input_noise`` on the paper
    direction's visible input (training and test)."""
    ours = ("--disparity", str(our_disparity)) if our_disparity else ()
    noise = ("--input-noise", str(input_noise)) if input_noise else ()
    return {
        "paper": Direction("paper", "nir/epfl", "nir", ("baseline", "with-guide", "full"),
                           ("--swap", "--reduce-guide", "--disparity", "4", *noise), EPFL_TEST,
                           "VIS target, low-resolution NIR guide, 4 px mean disparity"
                           + (f", noise {input_noise:g} of the range on the visible input"
                              if noise else "")),
        "nir": Direction("nir", "nir/epfl", "nir", ("full",), ours, EPFL_TEST,
                         "NIR target, full-resolution RGB guide"
                         + (f", {our_disparity:g} px mean disparity" if ours else "")),
        "thermal": Direction("thermal", "thermal/roadscene", "thermal", ("full",), ours,
                             why="thermal target, full-resolution RGB guide"),
    }


def split(direction: Direction, root: Path, train_pairs: int | None, test_pairs: int
          ) -> tuple[list[str], list[str]]:
    """Training and test scene names (disjoint)."""
    names = [scene.name for scene in find_scenes(root / direction.data)]
    test = [n for n in direction.test if n in names] or names[:test_pairs]
    test = test[:test_pairs]
    train = [n for n in names if n not in test and n not in direction.test]
    return (train if train_pairs is None else train[:train_pairs]), test


def run(argv: list[str]) -> None:
    """One ``cmsr`` command; stop the benchmark if it fails."""
    print(f"\n== cmsr {' '.join(argv)}", flush=True)
    start = time.perf_counter()
    code = cmsr_main(argv)
    print(f"== exit {code}, {time.perf_counter() - start:.0f} s", flush=True)
    if code not in (0, 1):  # 1: some eval run failed; reported in its table
        raise SystemExit(f"cmsr {argv[0]} failed with exit code {code}")


def model_arguments(args: argparse.Namespace, max_steps: int | None = None) -> list[str]:
    """The architecture and training options shared by every model (``max_steps``
    overrides ``--max-steps``)."""
    argv = ["--size", args.size, "--minutes", str(args.minutes), "--seed", str(args.seed),
            "--threads", str(args.threads), "--validation-fraction",
            str(args.validation_fraction), "--quiet"]
    steps = max_steps if max_steps is not None else args.max_steps
    for option, value in (("blocks", args.blocks), ("features", args.features),
                          ("batch-size", args.batch_size), ("patch-size", args.patch_size),
                          ("max-steps", steps)):
        if value is not None:
            argv += [f"--{option}", str(value)]
    return argv


def train(direction: Direction, variant: str, folder: Path, root: Path, train: list[str],
          args: argparse.Namespace, max_steps: int | None = None) -> Path:
    """Train one model (unless it exists and --retrain is not given); its path.

    ``max_steps``: stop after that many steps (overrides ``--max-steps``; the time
    budget still applies)."""
    model = folder / "models" / f"{variant}.pt"
    if model.exists() and not args.retrain:
        print(f"\n== {direction.name}/{variant}: reusing {model}", flush=True)
        return model
    model.parent.mkdir(parents=True, exist_ok=True)
    checkpoint = model.with_name(f"{variant}-checkpoint.pt")
    run(["train", str(root / direction.data), "-o", str(model), "--method", "cspsr",
         "--scale", str(args.scale), "--scenes", ",".join(train), "--variant", variant,
         *direction.pair_options, *model_arguments(args, max_steps), "--checkpoint",
         str(checkpoint), "--overwrite"])
    return model


def train_variants(direction: Direction, folder: Path, root: Path, train_names: list[str],
                   args: argparse.Namespace) -> dict[str, Path]:
    """Every variant's model. With ``--equal-steps`` the last variant (the largest,
    ``full``) is trained first on the time budget and the others stop at its step
    count, as the paper's ablation trains every variant for the same schedule;
    otherwise each gets the whole time budget."""
    if not args.equal_steps or len(direction.variants) == 1:
        return {variant: train(direction, variant, folder, root, train_names, args)
                for variant in direction.variants}
    *others, largest = direction.variants
    models = {largest: train(direction, largest, folder, root, train_names, args)}
    steps = int(LearnedModel.load(models[largest]).info.training["steps"])
    for variant in others:
        models[variant] = train(direction, variant, folder, root, train_names, args,
                                max_steps=steps)
    return {variant: models[variant] for variant in direction.variants}


def evaluate(direction: Direction, methods: str, report: Path, root: Path,
             test: list[str], args: argparse.Namespace, extra: tuple[str, ...] = ()) -> Path:
    """``cmsr eval`` on the test pairs; the CSV it writes."""
    argv = ["eval", str(root / direction.data), "--methods", methods, "--protocol", "bicubic",
            "--scale", str(args.scale), "--scenes", ",".join(test), "-o", str(report),
            "--preset", direction.preset, "--threads", str(args.threads), "--seed",
            str(args.seed), "--quiet", "--no-grids", *direction.pair_options, *extra]
    if args.cmsr_iters is not None:
        argv += ["--iters", str(args.cmsr_iters)]
    run(argv)
    return next(report.glob("bicubic-x*.csv"))


def scores(csv_path: Path) -> dict[str, dict[str, float]]:
    """Per method: mean PSNR, SSIM, RMSE and seconds over its successful runs, and their
    count (cached runs keep the seconds they took when computed)."""
    rows = list(csv.DictReader(csv_path.open()))
    table: dict[str, dict[str, float]] = {}
    for method in dict.fromkeys(row["method"] for row in rows):
        ok = [r for r in rows if r["method"] == method and r["status"] == "ok"]

        def mean(key: str, ok: list[dict[str, str]] = ok) -> float:
            values = [float(r[key]) for r in ok if math.isfinite(float(r[key]))]
            return statistics.mean(values) if values else math.nan

        table[method] = {"psnr": mean("psnr"), "ssim": mean("ssim"), "rmse": mean("rmse"),
                         "seconds": mean("seconds"), "pairs": float(len(ok)),
                         "runs": float(sum(r["method"] == method for r in rows))}
    return table


def inference_seconds(model_path: Path, threads: int, repeats: int = 3) -> float:
    """Median seconds of one forward pass producing a 1024x680 frame."""
    torch.set_num_threads(threads)
    model = LearnedModel.load(model_path)
    scale = model.scale
    height, width = 680 // scale, 1024 // scale
    target = torch.rand(1, model.info.target_bands, height, width)
    guide_size = (height, width) if model.guide_is_low else (height * scale, width * scale)
    guide = torch.rand(1, model.info.guide_bands, *guide_size)
    model.run(target, guide)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.run(target, guide)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--only", default="paper,nir,thermal",
                        help="comma-separated directions (default: all three)")
    parser.add_argument("--minutes", type=float, default=25.0,
                        help="training budget per model (default: 25; data loading and "
                             "validation come on top, within 30 minutes)")
    parser.add_argument("--size", choices=("reduced", "paper"), default="reduced",
                        help="model size (default: reduced, T=4, C=32)")
    parser.add_argument("--blocks", type=int, default=None, metavar="T")
    parser.add_argument("--features", type=int, default=None, metavar="C")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--patch-size", type=int, default=None)
    parser.add_argument("--max-steps", type=int, default=None)
    parser.add_argument("--equal-steps", action="store_true",
                        help="train the largest variant on the time budget and stop the "
                             "others at its step count (the paper's ablation: the same "
                             "schedule for every variant)")
    parser.add_argument("--validation-fraction", type=float, default=0.15)
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--train-pairs", type=int, default=None,
                        help="use only the first N training pairs (default: all)")
    parser.add_argument("--test-pairs", type=int, default=6)
    parser.add_argument("--cmsr-iters", type=int, default=None,
                        help="cap cmsr's steps per stage (default: the preset's)")
    parser.add_argument("--our-disparity", type=float, default=0.0,
                        help="mean disparity of the nir and thermal directions (default 0)")
    parser.add_argument("--input-noise", type=float, default=0.0, metavar="SIGMA",
                        help="Gaussian noise on the paper direction's visible input, a "
                             "share of its range, in training and test (the paper's degraded "
                             "visible images; default 0, the issue's protocol); give it its "
                             "own --results-dir")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--retrain", action="store_true", help="train models that exist")
    parser.add_argument("--results-dir", type=Path, default=RESULTS,
                        help="where learned_models.md and the runs go (default: "
                             "benchmarks/results)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    root = data_root()
    chosen = directions(args.our_disparity, args.input_noise)
    names = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = [name for name in names if name not in chosen]
    if unknown:
        raise SystemExit(f"unknown direction(s) {', '.join(unknown)}; choose from "
                         f"{', '.join(chosen)}")
    start = time.perf_counter()
    rows: list[list[str]] = []
    notes: list[str] = []
    for name in names:
        direction = chosen[name]
        folder = args.results_dir / "learned" / name
        train_names, test = split(direction, root, args.train_pairs, args.test_pairs)
        notes.append(f"- `{name}`: {direction.data}, {direction.why}; trained on "
                     f"{len(train_names)} pairs, tested on {len(test)} ({', '.join(test)}).")
        models = train_variants(direction, folder, root, train_names, args)
        fitting = scores(evaluate(direction, "bicubic,cmsr", folder / "eval-fitting", root,
                                  test, args))
        cmsr_seconds = fitting.get("cmsr", {}).get("seconds", math.nan)
        for method, values in fitting.items():
            rows.append(row(name, method, values, "-", "-", "-"))
        for variant, model in models.items():
            learned = scores(evaluate(direction, "cspsr", folder / f"eval-{variant}", root, test,
                                      args, ("--option", f"cspsr.model={model}")))["cspsr"]
            info = LearnedModel.load(model).info
            seconds = inference_seconds(model, args.threads)
            speedup = cmsr_seconds / learned["seconds"] if learned["seconds"] else math.nan
            rows.append(row(name, f"cspsr {variant} ({info.config.blocks}x{info.config.features})",
                            learned, f"{info.training['seconds'] / 60:.1f} "
                            f"({info.training['steps']} steps)",
                            f"{seconds:.2f}", f"{speedup:.0f}x"))
    budget = (" (the largest; the others stop at its step count)" if args.equal_steps
              else "")
    cmsr_steps = (f"at most {args.cmsr_iters} steps per stage" if args.cmsr_iters
                  else "its preset's defaults")
    header = ["direction", "method", "PSNR (dB)", "SSIM", "RMSE", "s / frame (eval)",
              "pairs ok", "training (min, steps)", "inference, 1024x680 (s)", "faster than cmsr"]
    markdown = "\n".join([
        f"# Learned models beside bicubic and per-pair cmsr, x{args.scale} (issue 14)", "",
        f"{machine_line()}; seed {args.seed}; model size {args.size}"
        f"{f' (T={args.blocks})' if args.blocks else ''}"
        f"{f' (C={args.features})' if args.features else ''}; {args.minutes:g} min of "
        f"training per model{budget}; cmsr: {cmsr_steps}; whole run "
        f"{(time.perf_counter() - start) / 60:.0f} min (reused models and runs not counted).",
        "", *notes, "", markdown_table(header, rows), "",
        "s / frame: as `cmsr eval` measured each run (learned models: loading the model "
        "and one forward pass; cmsr: the whole per-pair fit and inference). Inference: "
        "one forward pass producing a 1024x680 frame. Per-pair tables: "
        "`learned/<direction>/eval-*/`."])
    print("\n" + markdown)
    args.results_dir.mkdir(parents=True, exist_ok=True)
    name = "learned_models_equal_steps.md" if args.equal_steps else "learned_models.md"
    (args.results_dir / name).write_text(markdown + "\n")


def row(direction: str, method: str, values: dict[str, float], training: str,
        inference: str, speedup: str) -> list[str]:
    """One table row."""
    return [direction, method, f"{values['psnr']:.2f}", f"{values['ssim']:.4f}",
            f"{values['rmse']:.3f}", f"{values['seconds']:.2f}",
            f"{values['pairs']:.0f}/{values['runs']:.0f}", training, inference, speedup]


if __name__ == "__main__":
    main()
