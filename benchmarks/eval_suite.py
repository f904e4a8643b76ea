"""The evaluation benchmarks: ``cmsr eval`` on the shared data, every table in one run.

Each entry below is one ``cmsr eval`` call; its report goes to
``benchmarks/results/eval/<entry>/`` (``<protocol>.md``/``.csv`` are kept in git;
``grids/`` and ``runs/`` are not). Runs already finished are not recomputed, so the
script can be stopped and started again. At the end it prints the mean RMSE / PSNR
of every method in every entry side by side and writes ``results/eval_suite.md``.

Subsets keep the whole set near one hour on 2 CPU cores (see ``SUITE``): all 13
Middlebury13 pairs at x4 with the filters, ZSSR and cmsr, P2P and MMSR (at 100 of its
1000 steps) on one of them, and a few scenes of the other sets;
``middlebury13-x4-mmsr-full`` (MMSR in full on that pair) runs only when named.

Usage: ``python benchmarks/eval_suite.py [--only middlebury13-x4,...] [--list]``.
"""

from __future__ import annotations

import argparse
import csv
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from common import RESULTS, data_root, machine_line, markdown_table

from cmsr.cli import build_parser
from cmsr.cli import main as cmsr_main
from cmsr.cli.eval import protocol_from_args
from cmsr.evaluation.protocols import EvalProtocol


@dataclass(frozen=True)
class Entry:
    """One ``cmsr eval`` call."""

    name: str
    data: str  # below the shared data root
    protocol: str
    scale: int
    methods: str
    preset: str
    scenes: str | None = None
    extra: tuple[str, ...] = field(default=())
    why: str = ""
    optional: bool = False  # run only when named in --only (over the one-hour budget)


FAST = "bicubic,guided-filter,jbu"
RAW_FINISH = ("--guided-median", "0", "--edge-sharpening", "0", "--block-partition", "0")
"""The ``depth`` preset's finish turned off (``benchmarks/depth_finish.py`` applies it)."""
SUITE = (
    Entry("middlebury13-x4", "depth/middlebury13", "avgpool", 4, f"{FAST},cmsr", "depth",
          why="all 13 pairs, MMSR protocol"),
    Entry("middlebury13-x4-zssr", "depth/middlebury13", "avgpool", 4, "zssr", "depth",
          why="ZSSR (cmsr's training without the guide) on all 13 pairs; its code path "
              "is unchanged since 0.2 (01_1 rerun with 0.4: RMSE 0.744 against 0.746)"),
    Entry("middlebury13-x4-float32", "depth/middlebury13", "avgpool", 4, "cmsr", "depth",
          extra=("--precision", "float32"), scenes="01_1,026,02_4,03_9", optional=True,
          why="cmsr trained in float32, as --precision auto does on a CPU without native "
              "bfloat16: does it score as the bfloat16 runs do? (4 pairs)"),
    Entry("middlebury13-x4-zssr-float32", "depth/middlebury13", "avgpool", 4, "zssr", "depth",
          extra=("--precision", "float32"), scenes="01_1,026,02_4,03_9", optional=True,
          why="ZSSR trained in float32, beside middlebury13-x4-float32"),
    Entry("middlebury13-x4-zssr-650", "depth/middlebury13", "avgpool", 4, "zssr", "depth",
          extra=("--iters", "650"), optional=True,
          why="ZSSR with as many steps as cmsr's guide-free network takes (2 x 650 = "
              "500 with the guide branch + 300 alone + 500): is its lead the steps?"),
    Entry("middlebury13-x4-learned", "depth/middlebury13", "avgpool", 4,
          f"{FAST},zssr,p2p,mmsr", "depth", scenes="026",
          extra=("--option", "mmsr.iterations=100", "--option", "p2p.threads=1"),
          why="the learned baselines on pair 026 only (cmsr on it: middlebury13-x4); "
              "MMSR 100 of its 1000 steps (about 45 min per pair in full on 2 cores)",
          optional=True),
    Entry("middlebury13-x4-mmsr-full", "depth/middlebury13", "avgpool", 4, "mmsr", "depth",
          scenes="026", optional=True,
          why="MMSR at its published 1000 steps on pair 026, against its own figures "
              "(over an hour at 1 thread; only with --only)"),
    Entry("middlebury13-x4-mmsr-full-more", "depth/middlebury13", "avgpool", 4, "mmsr",
          "depth", scenes="01_1,02_4", optional=True,
          why="MMSR at its published 1000 steps on the next two pairs in name order "
              "(about an hour each at 1 thread; only with --only)"),
    Entry("epfl-nir-x4", "nir/epfl", "bicubic", 4, f"{FAST},zssr,cmsr", "nir",
          scenes="train_0003,train_0005,train_0007,train_0008,train_0013,train_0014",
          why="6 of 20 pairs"),
    Entry("thermal-unaligned-x8", "thermal/unaligned", "real", 8, "bicubic,zssr,cmsr",
          "thermal", why="all 8 pairs, the real low-resolution capture as input"),
    Entry("thermal-unaligned-x8-aliased", "thermal/unaligned", "real", 8,
          "bicubic,zssr,cmsr", "thermal", extra=("--kernel", "cubic-aliased"),
          why="the same with the kernel the captures were made with (guide_diagnostic.py)"),
    Entry("thermal-unaligned-x8-aliased-align-none", "thermal/unaligned", "real", 8, "cmsr",
          "thermal", extra=("--kernel", "cubic-aliased", "--align", "none"), optional=True,
          why="cmsr without the learned alignment on the captures from two cameras: what "
              "the warp costs or gives there (0.11's run)"),
    Entry("thermal-unaligned-x8-aliased-250", "thermal/unaligned", "real", 8, "zssr,cmsr",
          "thermal", extra=("--kernel", "cubic-aliased", "--iters", "250"), optional=True,
          why="cmsr and ZSSR at 250 steps per stage instead of the preset's 500 (tried for "
              "the thermal preset, not kept; seed_spread.py runs its other seeds)"),
    Entry("roadscene-x4", "thermal/roadscene", "bicubic", 4, f"{FAST},zssr,cmsr", "thermal",
          scenes="FLIR_00006,FLIR_00018,FLIR_00060,FLIR_00122,FLIR_00211,FLIR_00233",
          why="6 of 40 pairs (the learned models' test pairs)"),
    Entry("roadscene-x4-250", "thermal/roadscene", "bicubic", 4, "zssr,cmsr", "thermal",
          scenes="FLIR_00006,FLIR_00018,FLIR_00060,FLIR_00122,FLIR_00211,FLIR_00233",
          extra=("--iters", "250"), optional=True,
          why="the same pairs at 250 steps per stage instead of 500 (tried, not kept)"),
    Entry("middlebury13-x4-align-full", "depth/middlebury13", "avgpool", 4, "cmsr", "depth",
          extra=("--align", "full"), optional=True,
          why="cmsr with the learned alignment (and its check) on the aligned pairs: does "
              "it harm? (against middlebury13-x4)"),
    Entry("middlebury13-x4-displaced", "depth/middlebury13", "avgpool", 4, "bicubic,cmsr",
          "depth", scenes="01_1,026,02_4,03_9", extra=("--shift", "6", "--rotation", "2"),
          optional=True,
          why="the guide moved by 6 px and 2 degrees, the preset's --align none (as "
              "alignment_drift.py's displaced pairs)"),
    Entry("middlebury13-x4-displaced-align-full", "depth/middlebury13", "avgpool", 4, "cmsr",
          "depth", scenes="01_1,026,02_4,03_9",
          extra=("--shift", "6", "--rotation", "2", "--align", "full"), optional=True,
          why="the same with the learned alignment and its check: does it harm, or help?"),
    Entry("middlebury13-x4-2threads", "depth/middlebury13", "avgpool", 4, "cmsr", "depth",
          optional=True,
          why="cmsr alone at 2 threads (the users' default) on a quiet machine: its "
              "seconds are the timing of the median target; run with --threads 2"),
    Entry("middlebury13-x8", "depth/middlebury13", "avgpool", 8, f"{FAST},zssr,cmsr", "depth",
          scenes="01_1,026,11_1,88", why="4 of 13 pairs", optional=True),
    Entry("middlebury13-x4-unsharpened", "depth/middlebury13", "avgpool", 4, "cmsr,zssr",
          "depth", extra=("--edge-sharpening", "0"), optional=True,
          why="cmsr and ZSSR without edge sharpening (0.11's depth defaults): the "
              "stored outputs benchmarks/edge_sharpening.py finishes (its runs/ were "
              "copied from 0.11's middlebury13-x4 and -zssr runs, the same settings; "
              "--only recomputes them)"),
    Entry("middlebury2005-x4-unsharpened", "depth/middlebury2005", "avgpool", 4,
          "bicubic,cmsr", "depth", extra=("--edge-sharpening", "0"), optional=True,
          why="all 6 scenes without edge sharpening: the held-out scenes its strength "
              "was chosen on (benchmarks/edge_sharpening.py)"),
    Entry("middlebury13-x4-raw", "depth/middlebury13", "avgpool", 4, "cmsr", "depth",
          extra=RAW_FINISH, optional=True,
          why="cmsr's networks with no finish (no guided median, edge sharpening or block "
              "partition): the stored outputs benchmarks/depth_finish.py finishes"),
    Entry("middlebury2005-x4-raw", "depth/middlebury2005", "avgpool", 4, "cmsr", "depth",
          extra=RAW_FINISH, optional=True,
          why="the same on all 6 scenes of Middlebury 2005, where the finish is chosen"),
    Entry("middlebury2005-x16-raw", "depth/middlebury2005", "avgpool", 16, "cmsr", "depth",
          scenes="art", extra=RAW_FINISH, optional=True,
          why="the same on art at x16, where the finish chosen at x4 is checked"),
    Entry("middlebury2005-x4", "depth/middlebury2005", "avgpool", 4, f"{FAST},zssr,cmsr",
          "depth", scenes="art", why="1 of 6 scenes (1376x1088)", optional=True),
    Entry("middlebury2005-x8", "depth/middlebury2005", "avgpool", 8, f"{FAST},zssr,cmsr",
          "depth", scenes="art", why="1 of 6 scenes", optional=True),
    Entry("middlebury2005-x16", "depth/middlebury2005", "avgpool", 16, f"{FAST},zssr,cmsr",
          "depth", scenes="art", why="1 of 6 scenes", optional=True),
)


def entry_named(name: str) -> Entry:
    """The entry of :data:`SUITE` called ``name``."""
    return next(entry for entry in SUITE if entry.name == name)


def entry_argv(entry: Entry, root: Path, threads: int, seed: int) -> list[str]:
    """The ``cmsr`` command line of ``entry``, data under ``root``."""
    argv = ["eval", str(root / entry.data), "--methods", entry.methods,
            "--protocol", entry.protocol, "--scale", str(entry.scale), "-o",
            str(RESULTS / "eval" / entry.name), "--preset", entry.preset,
            "--threads", str(threads), "--seed", str(seed), *entry.extra]
    if entry.scenes:
        argv += ["--scenes", entry.scenes]
    return argv


def run_entry(entry: Entry, root: Path, threads: int, seed: int) -> Path:
    """Run ``cmsr eval`` for ``entry``; return the CSV it wrote."""
    argv = entry_argv(entry, root, threads, seed)
    print(f"\n== {entry.name}: cmsr {' '.join(argv)}", flush=True)
    start = time.perf_counter()
    code = cmsr_main(argv)
    print(f"== {entry.name}: exit {code}, {time.perf_counter() - start:.0f} s", flush=True)
    return report_csv(entry)


def entry_protocol(entry: Entry, seed: int = 0) -> EvalProtocol:
    """The protocol ``cmsr eval`` runs ``entry`` at ``seed`` with, as its command line
    makes it (a displaced guide or a seed other than 0 adds to its name)."""
    return protocol_from_args(build_parser().parse_args(entry_argv(entry, Path("."), 1, seed)))


def report_csv(entry: Entry, seed: int = 0) -> Path:
    """The CSV ``cmsr eval`` writes (and last wrote) for ``entry`` at ``seed``: named
    after its protocol (:func:`entry_protocol`)."""
    return RESULTS / "eval" / entry.name / f"{entry_protocol(entry, seed).name}.csv"


def means(csv_path: Path) -> dict[str, tuple[float, float, int]]:
    """Per method: mean RMSE, mean PSNR, number of successful scenes."""
    rows = list(csv.DictReader(csv_path.open()))
    table: dict[str, tuple[float, float, int]] = {}
    for method in dict.fromkeys(row["method"] for row in rows):
        ok = [r for r in rows if r["method"] == method and r["status"] == "ok"]
        rmse = sum(float(r["rmse"]) for r in ok) / len(ok) if ok else float("nan")
        psnr = [float(r["psnr"]) for r in ok if r["psnr"] not in ("inf", "nan")]
        table[method] = (rmse, sum(psnr) / len(psnr) if psnr else float("nan"), len(ok))
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=None, help="comma-separated entry names")
    parser.add_argument("--list", action="store_true", help="list the entries and stop")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    entries = [e for e in SUITE if (e.name in args.only.split(",") if args.only
                                    else not e.optional)]
    if args.list:
        for entry in SUITE:
            print(f"{entry.name}: {entry.data} {entry.protocol} x{entry.scale} "
                  f"[{entry.methods}] {entry.why}")
        return
    torch.set_num_threads(args.threads)
    root = data_root()
    start = time.perf_counter()
    summaries = {entry.name: means(run_entry(entry, root, args.threads, args.seed))
                 for entry in entries}
    methods = list(dict.fromkeys(m for table in summaries.values() for m in table))
    header = ["entry", *methods]
    rows = [[name, *(f"{table[m][0]:.3f} / {table[m][1]:.2f}" if m in table else ""
                     for m in methods)] for name, table in summaries.items()]
    why = [f"- `{e.name}`: {e.data}, {e.protocol} x{e.scale}, preset {e.preset}; {e.why}"
           for e in entries]
    markdown = "\n".join([
        "# cmsr eval on the shared data: mean RMSE / mean PSNR (dB) per method", "",
        f"{machine_line()}; seed {args.seed}; whole run {time.perf_counter() - start:.0f} s "
        "(finished runs are reused, so a resumed run counts only what it computed).", "",
        *why, "", markdown_table(header, rows), "",
        "Per-scene tables, times and memory: `results/eval/<entry>/<protocol>.md`."])
    print("\n" + markdown)
    if args.only is None:
        (RESULTS / "eval_suite.md").write_text(markdown + "\n")


if __name__ == "__main__":
    main()
