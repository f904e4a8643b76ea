"""How much of a comparison is the seed: cmsr and ZSSR over several seeds, pair by pair.

A single fit moves a lot with its random draws (a depth pair by up to 25%, a thermal
capture by 0.5 dB), so "better than ZSSR on 11 of 13 pairs" from one seed says little.
This script reruns the entries of ``benchmarks/eval_suite.py`` that the issue's ZSSR
targets are measured on with more seeds, one method at a time, and compares the
methods on the mean over the seeds (and cmsr with ``--align none`` on the real thermal
captures, whose guide comes from another camera, beside the preset's alignment; and
both methods at 250 steps per stage, beside each other and beside the preset's 500).

* Seed 0 is the entry's own run (``results/eval/<entry>/``, from ``eval_suite.py``).
* Seed k > 0 of a spread (one method of one entry, see ``SPREADS``) goes to
  ``results/eval/seeds/<spread>-seed<k>/`` (only the ``.md``/``.csv`` are kept in git,
  as for the suite); finished runs are reused.

It prints, and writes to ``results/seed_spread.md``: each method's set mean for every
seed, their mean and spread (the standard deviation over the seeds), and for each
comparison the per-pair means over the seeds with the number of pairs each method wins,
on how many seeds the first method won each pair, and the difference of the set means
seed by seed (its mean and standard deviation over the seeds: a difference smaller than
that deviation is a tie a single seed can tip either way), and the count of pairs won
for every pairing of a seed of one method with a seed of the other, beside the second
method against itself on two seeds (how far a count moves by chance alone). Last, the
issue's targets that depend on the fit (``guide_payoff.py``'s checks, its timing target
left out: these runs share the cores) on each seed and on the per-pair mean over the
seeds.

Usage: ``python benchmarks/seed_spread.py [--seeds 1,2] [--only NAME,...]
[--threads 1] [--summarise]``. Two processes with disjoint ``--only`` share the 2
cores at 1 thread each.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from common import RESULTS, data_root, machine_line, markdown_table
from eval_suite import Entry, entry_argv, entry_named, report_csv
from guide_payoff import checks, per_scene

from cmsr.cli import main as cmsr_main


@dataclass(frozen=True)
class Spread:
    """One method of one eval-suite entry, over seeds."""

    name: str
    entry: str  # the eval_suite entry whose seed 0 it is
    method: str

    @property
    def suite_entry(self) -> Entry:
        return entry_named(self.entry)

    def folder(self, seed: int) -> Path:
        return RESULTS / "eval" / "seeds" / f"{self.name}-seed{seed}"


@dataclass(frozen=True)
class Comparison:
    """Two spreads on the same pairs; ``metric`` ``rmse`` (lower wins) or ``psnr``."""

    title: str
    first: str
    second: str
    metric: str


SPREADS = (
    Spread("depth-cmsr", "middlebury13-x4", "cmsr"),
    Spread("depth-zssr", "middlebury13-x4-zssr", "zssr"),
    Spread("depth-cmsr-raw", "middlebury13-x4-raw", "cmsr"),  # benchmarks/depth_finish.py
    Spread("thermal-cmsr", "thermal-unaligned-x8-aliased", "cmsr"),
    Spread("thermal-zssr", "thermal-unaligned-x8-aliased", "zssr"),
    Spread("thermal-cmsr-align-none", "thermal-unaligned-x8-aliased-align-none", "cmsr"),
    Spread("thermal-cmsr-250", "thermal-unaligned-x8-aliased-250", "cmsr"),
    Spread("thermal-zssr-250", "thermal-unaligned-x8-aliased-250", "zssr"),
)
COMPARISONS = (
    Comparison("Middlebury13 x4, RMSE", "depth-cmsr", "depth-zssr", "rmse"),
    Comparison("thermal/unaligned real x8 (cubic-aliased), PSNR (dB)", "thermal-cmsr",
               "thermal-zssr", "psnr"),
    Comparison("the same, cmsr with --align none", "thermal-cmsr-align-none", "thermal-zssr",
               "psnr"),
    Comparison("the same, both at 250 steps per stage (--iters 250)", "thermal-cmsr-250",
               "thermal-zssr-250", "psnr"),
    Comparison("cmsr at 250 steps per stage against the preset's 500", "thermal-cmsr-250",
               "thermal-cmsr", "psnr"),
    Comparison("ZSSR at 250 steps per stage against the preset's 500", "thermal-zssr-250",
               "thermal-zssr", "psnr"),
)


def spread_argv(spread: Spread, root: Path, threads: int, seed: int) -> list[str]:
    """The ``cmsr eval`` command line of ``spread`` at ``seed`` (> 0), one method."""
    argv = entry_argv(spread.suite_entry, root, threads, seed)
    argv[argv.index("--methods") + 1] = spread.method
    argv[argv.index("-o") + 1] = str(spread.folder(seed))
    return [*argv, "--no-grids", "--quiet"]


def spread_csv(spread: Spread, seed: int) -> Path:
    """Where the per-pair results of ``spread`` at ``seed`` are (the protocol's name
    ends in ``-seed<k>`` for a seed other than 0)."""
    if seed == 0:
        return report_csv(spread.suite_entry)
    return spread.folder(seed) / report_csv(spread.suite_entry, seed).name


def per_pair(spread: Spread, seed: int) -> dict[str, dict[str, float]] | None:
    """``{scene: {"rmse", "psnr", "seconds"}}`` of the method's successful runs, or None
    when that seed has not been run."""
    path = spread_csv(spread, seed)
    if not path.exists():
        return None
    return method_runs(path, spread.method)


def method_runs(path: Path, method: str) -> dict[str, dict[str, float]]:
    """``{scene: {"rmse", "psnr", "seconds"}}`` of ``method``'s successful runs in the
    ``cmsr eval`` CSV at ``path``."""
    return per_scene(path).get(method, {})


def seed_means(spread: Spread, seeds: list[int]) -> dict[int, dict[str, dict[str, float]]]:
    """The seeds of ``spread`` that have been run, with their per-pair results."""
    found = {seed: per_pair(spread, seed) for seed in seeds}
    return {seed: pairs for seed, pairs in found.items() if pairs}


def spread_rows(spreads: list[Spread], seeds: list[int]) -> list[list[str]]:
    """Per spread: the set mean (RMSE / PSNR) per seed, their mean and spread."""
    rows = []
    for spread in spreads:
        runs = seed_means(spread, seeds)
        rmse = {s: statistics.fmean(p["rmse"] for p in pairs.values()) for s, pairs in runs.items()}
        psnr = {s: statistics.fmean(p["psnr"] for p in pairs.values()) for s, pairs in runs.items()}
        cells = [f"{rmse[s]:.3f} / {psnr[s]:.2f}" if s in runs else "–" for s in seeds]
        spread_cell = (f"{statistics.stdev(rmse.values()):.3f} / "
                       f"{statistics.stdev(psnr.values()):.2f}" if len(runs) > 1 else "–")
        mean_cell = (f"**{statistics.fmean(rmse.values()):.3f} / "
                     f"{statistics.fmean(psnr.values()):.2f}**" if runs else "–")
        rows.append([spread.name, spread.entry, *cells, mean_cell, spread_cell])
    return rows


def comparison_table(comparison: Comparison, by_name: dict[str, Spread],
                     seeds: list[int]) -> tuple[list[str], list[list[str]], str]:
    """Per pair: each method's mean over the seeds both have run; who wins; a summary."""
    first, second = by_name[comparison.first], by_name[comparison.second]
    # the methods' names, or the spreads' when both are one method (two settings of it)
    name_a, name_b = ((first.method, second.method) if first.method != second.method
                      else (first.name, second.name))
    runs_a, runs_b = seed_means(first, seeds), seed_means(second, seeds)
    common = sorted(set(runs_a) & set(runs_b))
    if not common:
        return [], [], f"{comparison.title}: no seed run by both"
    scenes = sorted(set.intersection(*(set(runs_a[s]) & set(runs_b[s]) for s in common)))
    lower = comparison.metric == "rmse"
    rows, wins_a, wins_per_seed = [], 0, {s: 0 for s in common}
    for scene in scenes:
        a = [runs_a[s][scene][comparison.metric] for s in common]
        b = [runs_b[s][scene][comparison.metric] for s in common]
        seeds_won = 0
        for seed, x, y in zip(common, a, b, strict=True):
            won = (x < y) if lower else (x > y)
            wins_per_seed[seed] += won
            seeds_won += won
        mean_a, mean_b = statistics.fmean(a), statistics.fmean(b)
        a_wins = mean_a < mean_b if lower else mean_a > mean_b
        wins_a += a_wins
        rows.append([scene, *(f"{x:.3f} / {y:.3f}" for x, y in zip(a, b, strict=True)),
                     f"{mean_a:.3f}", f"{mean_b:.3f}", name_a if a_wins else name_b,
                     f"{seeds_won} of {len(common)}"])
    set_means = {name: {s: statistics.fmean(runs[s][sc][comparison.metric] for sc in scenes)
                        for s in common} for name, runs in (("a", runs_a), ("b", runs_b))}
    total_a = statistics.fmean(set_means["a"].values())
    total_b = statistics.fmean(set_means["b"].values())
    rows.append(["**mean**", *("" for _ in common), f"**{total_a:.3f}**", f"**{total_b:.3f}**",
                 "", ""])
    header = ["pair", *(f"seed {s}: {name_a} / {name_b}" for s in common),
              f"{name_a}, mean of seeds", f"{name_b}, mean of seeds", "better",
              f"{name_a} better on seeds"]
    per_seed = ", ".join(f"seed {s} {wins_per_seed[s]}" for s in common)
    summary = (f"{comparison.title}, {len(common)} seed(s) ({', '.join(map(str, common))}), "
               f"{len(scenes)} pairs: {name_a} {total_a:.3f} against {name_b} "
               f"{total_b:.3f}; {name_a} better on {wins_a} of {len(scenes)} pairs on "
               f"the mean over the seeds (on single seeds: {per_seed}). "
               + seed_differences(set_means["a"], set_means["b"], name_a,
                                  name_b)
               + ". " + cross_seed_counts(runs_a, runs_b, scenes, comparison.metric,
                                          name_a, name_b))
    return header, rows, summary


def cross_seed_counts(runs_a: dict[int, dict[str, dict[str, float]]],
                      runs_b: dict[int, dict[str, dict[str, float]]], scenes: list[str],
                      metric: str, name_a: str, name_b: str) -> str:
    """One sentence: on how many of ``scenes`` the first method beats the second, for
    every pairing of a seed of one with a seed of the other, and the second method
    against itself on two different seeds: how much a count moves by chance alone."""
    def count(x: dict[str, dict[str, float]], y: dict[str, dict[str, float]]) -> int:
        return sum((x[s][metric] < y[s][metric]) if metric == "rmse"
                   else (x[s][metric] > y[s][metric]) for s in scenes)

    across = sorted(count(runs_a[i], runs_b[j]) for i in runs_a for j in runs_b)
    itself = sorted(count(runs_b[i], runs_b[j]) for i in runs_b for j in runs_b if i < j)
    text = (f"{name_a} seed i against {name_b} seed j, every pairing ({len(across)}): "
            f"better on {', '.join(map(str, across))} of {len(scenes)}")
    if itself:
        text += (f"; {name_b} against itself on another seed (the lower seed first, "
                 f"{len(itself)} pairings): {', '.join(map(str, itself))} of {len(scenes)}")
    return text


def seed_differences(first: dict[int, float], second: dict[int, float], name_first: str,
                     name_second: str) -> str:
    """One sentence: the set mean of ``first`` minus that of ``second`` on each seed, their
    mean and standard deviation over the seeds (how far apart the two methods are,
    against how much one seed moves the difference).

    Examples
    --------
    >>> seed_differences({0: 38.2, 1: 38.3}, {0: 38.0, 1: 38.4}, "cmsr", "zssr")
    'cmsr minus zssr, set mean per seed: +0.200, -0.100 (mean +0.050, sd 0.212 over 2 seeds)'
    """
    differences = [first[s] - second[s] for s in sorted(first)]
    cells = ", ".join(f"{d:+.3f}" for d in differences)
    spread = (f", sd {statistics.stdev(differences):.3f}" if len(differences) > 1 else "")
    return (f"{name_first} minus {name_second}, set mean per seed: {cells} (mean "
            f"{statistics.fmean(differences):+.3f}{spread} over {len(differences)} seeds)")


#: (the eval-suite entry guide_payoff.py checks, cmsr's spread, ZSSR's spread)
TARGET_SPREADS = (("middlebury13-x4", "depth-cmsr", "depth-zssr"),
                  ("thermal-unaligned-x8-aliased", "thermal-cmsr", "thermal-zssr"))


def per_scene_mean(runs: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """Per scene that every run has: the mean of each value over the runs.

    Examples
    --------
    >>> per_scene_mean([{"a": {"rmse": 1.0}, "b": {"rmse": 3.0}}, {"a": {"rmse": 2.0}}])
    {'a': {'rmse': 1.5}}
    """
    scenes = sorted(set.intersection(*(set(run) for run in runs)))
    return {scene: {key: statistics.fmean(run[scene][key] for run in runs)
                    for key in runs[0][scene]} for scene in scenes}


def targets_by_seed(by_name: dict[str, Spread],
                    seeds: list[int]) -> tuple[list[str], list[list[str]]]:
    """The issue's fit-dependent targets (``guide_payoff.checks``) per seed that cmsr and
    ZSSR both ran, and on the per-pair mean over those seeds: header and rows, each cell
    the figure and whether it is met ("–" where that entry lacks the seed). Bicubic,
    which has no seed, is the entry's own run.
    """
    columns: dict[str, dict[str, dict[str, dict[str, dict[str, float]]]]] = {}
    for entry, first, second in TARGET_SPREADS:
        cmsr_runs = seed_means(by_name[first], seeds)
        zssr_runs = seed_means(by_name[second], seeds)
        common = sorted(set(cmsr_runs) & set(zssr_runs))
        if not common:
            continue
        bicubic = method_runs(report_csv(entry_named(entry)), "bicubic")
        for seed in common:
            columns.setdefault(f"seed {seed}", {})[entry] = {
                "cmsr": cmsr_runs[seed], "zssr": zssr_runs[seed], "bicubic": bicubic}
        columns.setdefault("mean of seeds", {})[entry] = {
            "cmsr": per_scene_mean([cmsr_runs[s] for s in common]),
            "zssr": per_scene_mean([zssr_runs[s] for s in common]), "bicubic": bicubic}
    order = sorted((c for c in columns if c.startswith("seed ")), key=lambda c: int(c[5:]))
    names = [*order, "mean of seeds"] if columns else []
    cells: dict[str, dict[str, str]] = {}
    for name in names:
        for target, measured, beside, met in checks(columns[name]):
            if "median" in target:  # these runs share the cores: no timings
                continue
            against = f" against {beside}" if target.endswith(">= ZSSR") else ""
            cells.setdefault(target, {})[name] = f"{measured}{against} ({met})"
    rows = [[target, *(values.get(name, "–") for name in names)]
            for target, values in cells.items()]
    return ["target", *names], rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="1,2", help="seeds to run besides 0 (comma-separated)")
    parser.add_argument("--only", default=None,
                        help="spreads to run: " + ",".join(s.name for s in SPREADS))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--summarise", action="store_true", help="run nothing; tables only")
    args = parser.parse_args()
    extra = [int(s) for s in args.seeds.split(",") if s]
    if any(s <= 0 for s in extra):
        parser.error("--seeds: seeds above 0 (seed 0 is the eval suite's own run)")
    seeds = [0, *extra]
    by_name = {s.name: s for s in SPREADS}
    chosen = [by_name[n] for n in args.only.split(",")] if args.only else list(SPREADS)
    torch.set_num_threads(args.threads)
    if not args.summarise:
        root = data_root()
        for spread in chosen:
            for seed in extra:
                argv = spread_argv(spread, root, args.threads, seed)
                print(f"\n== {spread.name} seed {seed}: cmsr {' '.join(argv)}", flush=True)
                start = time.perf_counter()
                code = cmsr_main(argv)
                print(f"== exit {code}, {time.perf_counter() - start:.0f} s", flush=True)
    lines = ["# Seed spread: cmsr and ZSSR over several seeds", "",
             f"{machine_line()}; seeds {', '.join(map(str, seeds))} (0: the eval suite's "
             "runs); every fit at 1 thread unless the header says otherwise.", "",
             "## Set means per seed (mean RMSE / mean PSNR)", "",
             markdown_table(["spread", "entry", *(f"seed {s}" for s in seeds), "mean of seeds",
                             "spread (sd over seeds)"], spread_rows(list(SPREADS), seeds))]
    for comparison in COMPARISONS:
        header, rows, summary = comparison_table(comparison, by_name, seeds)
        lines += ["", f"## {comparison.title}", "", summary + "."]
        if rows:
            lines += ["", markdown_table(header, rows)]
    header, rows = targets_by_seed(by_name, seeds)
    if rows:
        lines += ["", "## The issue's targets, seed by seed", "",
                  "Each figure as `guide_payoff.py` computes it, from the runs above (cmsr and "
                  "ZSSR on the same seed; bicubic has no seed). The last column takes each "
                  "pair's mean over the seeds first.", "", markdown_table(header, rows)]
    markdown = "\n".join(lines)
    print("\n" + markdown)
    (RESULTS / "seed_spread.md").write_text(markdown + "\n")


if __name__ == "__main__":
    main()
