"""What averaging several fits would give: the stored outputs of ``seed_spread.py``'s seeds,
averaged two at a time and all together, scored against the truth.

Nothing is trained here. The fits are the runs ``cmsr eval`` kept for
``benchmarks/seed_spread.py`` (seed 0 from ``eval_suite.py``'s entry, seeds 1 to 8 from
``results/eval/seeds/``); each output is read from its run store
(``<protocol>/<scene>/<method>.npy``) and first scored alone, which must give the score
that run's CSV reports (the script stops otherwise: the stored output is then not the
run the tables report). Then, for each method and seed ``k`` of ``n``:

* *one fit*: the set mean of seed ``k``'s outputs (as ``seed_spread.md``);
* *two fits*: the set mean of the pixel mean of seeds ``k`` and ``k + 1`` (mod ``n``),
  which is what running each pair twice with two seeds and averaging would give;
* *all fits*: the pixel mean of all ``n`` seeds (one number).

So this measures the ensemble's gain and what it would do to cmsr against ZSSR. Its
cost, with ``--time`` (on a quiet machine): ``cmsr sr --preset thermal`` on the first
``thermal/unaligned`` capture (as ``preset_costs.py``), once at 2 threads, then twice
side by side at 1 thread each with seeds 0 and 1 (how two fits would share 2 cores).

Usage: ``python benchmarks/seed_ensembles.py [--seeds 0,1,...,8] [--time]``; writes
``results/seed_ensembles.md``. Needs the seed runs' outputs (``runs/``, not in git).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from common import RESULTS, data_root, machine_line, markdown_table
from eval_suite import entry_protocol
from seed_spread import SPREADS, Spread, per_pair, spread_csv

from cmsr.evaluation.datasets import find_scenes, select_scenes
from cmsr.evaluation.evaluate import EvaluationPair, load_pair, output_path, score_run
from cmsr.files import read_image
from cmsr.files.runs import RunStore

#: (title, cmsr's spread, ZSSR's spread, metric)
SETS = (
    ("Middlebury13 x4, RMSE", "depth-cmsr", "depth-zssr", "rmse"),
    ("thermal/unaligned real x8 (cubic-aliased), PSNR (dB)", "thermal-cmsr", "thermal-zssr",
     "psnr"),
)


def spread_named(name: str) -> Spread:
    return next(spread for spread in SPREADS if spread.name == name)


@dataclass
class Fits:
    """One method's stored outputs on one set, ``outputs[seed][scene]``, and their
    scores (the metric asked for), ``scores[seed][scene]``."""

    outputs: dict[int, dict[str, np.ndarray]]
    scores: dict[int, dict[str, float]]


def load_fits(spread: Spread, seeds: list[int], pairs: dict[str, EvaluationPair],
              metric: str) -> Fits:
    """Read every output from its run store and check that it scores as its run's CSV
    says."""
    fits = Fits({}, {})
    for seed in seeds:
        reported = per_pair(spread, seed)
        if reported is None:
            raise SystemExit(f"{spread.name} seed {seed} has not been run (seed_spread.py)")
        store = RunStore(spread_csv(spread, seed).parent / "runs")  # beside its CSV
        protocol = entry_protocol(spread.suite_entry, seed).name
        fits.outputs[seed], fits.scores[seed] = {}, {}
        for scene, pair in pairs.items():
            path = output_path(store, protocol, scene, spread.method)
            output = read_image(path).astype(np.float32)
            value = score_run(output, pair, 0)[metric]  # type: ignore[literal-required]
            if not np.isclose(value, reported[scene][metric], rtol=0, atol=1e-6):
                raise SystemExit(f"{spread.name} seed {seed} {scene}: the stored output scores "
                                 f"{value:.6f}, its CSV {reported[scene][metric]:.6f}")
            fits.outputs[seed][scene], fits.scores[seed][scene] = output, value
    return fits


def set_mean(outputs: dict[str, np.ndarray], pairs: dict[str, EvaluationPair],
             metric: str) -> float:
    return statistics.fmean(score_run(outputs[scene], pairs[scene], 0)[metric]  # type: ignore[literal-required]
                            for scene in pairs)


def averaged(fits: Fits, seeds: list[int]) -> dict[str, np.ndarray]:
    """The pixel mean of ``seeds``' outputs, scene by scene."""
    scenes = fits.outputs[seeds[0]]
    return {scene: np.mean([fits.outputs[seed][scene] for seed in seeds], axis=0)
            for scene in scenes}


def sr_command(target: Path, guide: Path, output: Path, threads: int, seed: int) -> list[str]:
    return [sys.executable, "-m", "cmsr", "sr", "--target", str(target), "--guide", str(guide),
            "-o", str(output), "--preset", "thermal", "--threads", str(threads),
            "--seed", str(seed), "--quiet"]


def time_fits(root: Path) -> str:
    """Seconds of one 2-thread fit and of two 1-thread fits side by side (markdown)."""
    scene = sorted(p for p in (root / "thermal" / "unaligned").iterdir() if p.is_dir())[0]
    target = sorted(scene.glob("target_*_lr*"))[0]
    guide = sorted(scene.glob("guide_*"))[0]
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder)
        start = time.perf_counter()
        subprocess.run(sr_command(target, guide, out / "one.png", 2, 0), check=True)
        one = time.perf_counter() - start
        start = time.perf_counter()
        runs = [subprocess.Popen(sr_command(target, guide, out / f"seed{seed}.png", 1, seed))
                for seed in (0, 1)]
        if any(run.wait() != 0 for run in runs):
            raise SystemExit("a timed fit failed")
        two = time.perf_counter() - start
    line = (f"Cost (`cmsr sr --preset thermal`, `{scene.name}`): one fit at 2 threads "
            f"{one:.1f} s; two fits side by side at 1 thread each {two:.1f} s "
            f"({100 * (two / one - 1):+.0f}%).")
    print(line, flush=True)
    return line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="0,1,2,3,4,5,6,7,8")
    parser.add_argument("--time", action="store_true",
                        help="also time one fit against two side by side (quiet machine)")
    args = parser.parse_args()
    seeds = [int(seed) for seed in args.seeds.split(",")]
    if len(seeds) < 2:
        parser.error("--seeds needs at least two seeds")
    start = time.perf_counter()
    root = data_root()
    sections = [f"# Ensembles of fits: stored seed runs averaged\n\n{machine_line()}; "
                f"seeds {', '.join(map(str, seeds))}; the outputs of "
                "`seed_spread.py`'s runs (0.18), nothing trained here.\n"]
    header = ["method", "fits averaged", "set mean over the seeds",
              *[f"seed {seed}" for seed in seeds]]
    for title, first, second, metric in SETS:
        spreads = [spread_named(first), spread_named(second)]
        entry = spreads[0].suite_entry
        protocol = entry_protocol(spreads[0].suite_entry, 0)
        scenes = select_scenes(find_scenes(root / entry.data), entry.scenes or None)
        pairs = {scene.name: load_pair(scene, protocol) for scene in scenes}
        rows, two_fit = [], {}
        for spread in spreads:
            fits = load_fits(spread, seeds, pairs, metric)
            one = [statistics.fmean(fits.scores[seed].values()) for seed in seeds]
            two = [set_mean(averaged(fits, [seed, seeds[(i + 1) % len(seeds)]]), pairs, metric)
                   for i, seed in enumerate(seeds)]
            every = set_mean(averaged(fits, seeds), pairs, metric)
            two_fit[spread.method] = two
            rows.append([spread.method, "1", f"{statistics.fmean(one):.3f}",
                         *[f"{value:.3f}" for value in one]])
            rows.append([spread.method, "2 (seed and next seed)",
                         f"{statistics.fmean(two):.3f}", *[f"{value:.3f}" for value in two]])
            rows.append([spread.method, f"all {len(seeds)}", f"{every:.3f}",
                         *["" for _ in seeds]])
            print(f"{title}: {spread.method} one {statistics.fmean(one):.3f}, two "
                  f"{statistics.fmean(two):.3f}, all {every:.3f}", flush=True)
        better = (lambda a, b: a < b) if metric == "rmse" else (lambda a, b: a > b)
        wins = sum(better(c, z) for c, z in zip(two_fit["cmsr"], two_fit["zssr"], strict=True))
        sections.append(f"## {title}\n\n{markdown_table(header, rows)}\n\nTwo-fit cmsr "
                        f"against two-fit ZSSR: better on {wins} of {len(seeds)} seed "
                        "pairings.\n")
    if args.time:
        sections.append(time_fits(root) + "\n")
    sections.append(f"{time.perf_counter() - start:.0f} s.")
    markdown = "\n".join(sections)
    print()
    print(markdown)
    (RESULTS / "seed_ensembles.md").write_text(markdown + "\n")


if __name__ == "__main__":
    main()
