"""Batches on this machine: pairs per hour cold, warm-started and on Dask; peak memory.

Every number comes from ``cmsr batch`` run as a separate process (its wall time,
and its ``summary.csv``), into ``results/batch/<case>/`` (outputs not kept in git):

* ``thermal/roadscene`` at x4 (bicubic protocol, preset ``thermal``), the first
  ``--pairs`` scenes in name order (frames of one FLIR ADAS drive, one camera rig):
  cold (each pair from scratch; default backend: local worker processes), warm
  (``--warm-start``: one chain, each pair from the previous pair's networks), and the
  cold batch again on a local Dask cluster (``--scheduler local-dask``), whose
  outputs must be byte-identical to the local ones;
* peak memory of the largest Middlebury 2005 scene (1376x1088) at x8.

Usage: ``python benchmarks/batch_throughput.py [--pairs 6] [--only cold,warm,dask,memory]``.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import RESULTS, ROOT, data_root, machine_line, markdown_table

OUT = RESULTS / "batch"


def batch(case: str, data: Path, scenes: str, extra: list[str]) -> tuple[float, list[dict]]:
    """Run ``cmsr batch`` afresh into ``results/batch/<case>``; wall seconds, summary rows."""
    out = OUT / case
    if out.exists():
        shutil.rmtree(out)
    argv = [sys.executable, "-m", "cmsr", "batch", str(data), "-o", str(out),
            "--scenes", scenes, "--quiet", *extra]
    print("==", " ".join(argv[1:]), flush=True)
    start = time.perf_counter()
    code = subprocess.run(argv, cwd=ROOT, check=False,
                          env={**os.environ, "PYTHONPATH": str(ROOT / "src")}).returncode
    seconds = time.perf_counter() - start
    rows = list(csv.DictReader((out / "summary.csv").open()))
    print(f"== exit {code}, {seconds:.0f} s", flush=True)
    return seconds, rows


def output_hashes(case: str) -> dict[str, str]:
    """sha256 of every result a case wrote, by scene."""
    return {path.parent.name: hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted((OUT / case).glob("*/result.*"))}


def summarise(name: str, seconds: float, rows: list[dict]) -> list[str]:
    ok = [r for r in rows if r["status"] == "ok"]
    psnr = statistics.fmean(float(r["psnr"]) for r in ok) if ok else float("nan")
    per_pair = statistics.median(float(r["seconds"]) for r in ok) if ok else float("nan")
    peak = max((float(r["peak_rss_mb"]) for r in ok), default=float("nan"))
    return [name, f"{len(ok)}/{len(rows)}", f"{seconds:.0f}", f"{3600 * len(ok) / seconds:.1f}",
            f"{per_pair:.1f}", f"{psnr:.2f}", f"{peak:.0f}"]


def per_pair(name: str, rows: list[dict]) -> str:
    """One note line: steps, seconds and PSNR of each finished pair."""
    return f"- {name} per pair (steps, s, PSNR dB): " + "; ".join(
        f"{r['scene']} {r['steps']}, {float(r['seconds']):.0f}, {float(r['psnr']):.2f}"
        for r in rows if r["status"] == "ok") + "."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=6)
    parser.add_argument("--only", default="cold,warm,dask,memory")
    args = parser.parse_args()
    parts = args.only.split(",")
    root = data_root()
    roadscene = root / "thermal" / "roadscene"
    names = sorted(p.name for p in roadscene.iterdir() if p.is_dir())[: args.pairs]
    scenes = ",".join(names)
    common = ["--preset", "thermal", "--protocol", "bicubic", "--scale", "4"]
    rows, notes = [], []
    if "cold" in parts:
        seconds, cold_rows = batch("roadscene-cold", roadscene, scenes, common)
        rows.append(summarise("cold, 2 workers x 1 thread", seconds, cold_rows))
        notes.append(per_pair("Cold", cold_rows))
    if "warm" in parts:
        seconds, warm_rows = batch("roadscene-warm", roadscene, scenes,
                                   [*common, "--warm-start"])
        rows.append(summarise("warm start, 1 worker x 2 threads", seconds, warm_rows))
        notes.append(per_pair("Warm start", warm_rows))
    if "dask" in parts:
        rows.append(summarise("cold, local Dask cluster", *batch(
            "roadscene-dask", roadscene, scenes, [*common, "--scheduler", "local-dask"])))
        if "cold" in parts:
            same = output_hashes("roadscene-dask") == output_hashes("roadscene-cold")
            notes.append(f"- Dask outputs byte-identical to the local cold batch: {same}.")
    if "memory" in parts:
        folder = root / "depth" / "middlebury2005"
        seconds, memory_rows = batch("middlebury2005-x8", folder, "art",
                                     ["--preset", "depth", "--protocol", "avgpool",
                                      "--scale", "8"])
        rows.append(summarise("middlebury2005 art x8 (1376x1088), 1 pair", seconds,
                              memory_rows))
    header = ["batch", "pairs ok", "wall s", "pairs/hour", "median s/pair", "mean PSNR (dB)",
              "peak RSS per job (MB)"]
    markdown = "\n".join([
        f"# cmsr batch: thermal/roadscene x4, first {args.pairs} pairs, preset thermal", "",
        f"{machine_line()}.", "", markdown_table(header, rows), "", *notes])
    print("\n" + markdown)
    (RESULTS / "batch_throughput.md").write_text(markdown + "\n")


if __name__ == "__main__":
    main()
