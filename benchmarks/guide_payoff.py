"""Does the guide pay off? The issue-11 targets, checked on the eval suite's runs.

Runs (or reuses) the ``cmsr eval`` entries of :mod:`eval_suite` that the targets are
measured on, then prints one table: each target, the figure measured, the baselines
beside it, and whether it is met.

* Middlebury13 x4, MMSR protocol, ``--preset depth``, all 13 pairs: mean RMSE (MMSR's
  own notebook: 1.71), pairs better than bicubic and than ZSSR, median seconds;
* EPFL NIR x4, bicubic protocol, ``--preset nir``: mean PSNR against ZSSR's;
* ``thermal/unaligned``, the real low-resolution captures x8, ``--preset thermal``:
  mean PSNR against bicubic's and ZSSR's, with the preset's kernel and with the
  kernel the captures were made with (``cubic-aliased``, see
  ``results/guide_diagnostic.md``);
* RoadScene x4, bicubic protocol, ``--preset thermal``: mean PSNR against bicubic's,
  and the pairs where cmsr is better;
* alignment does no harm: Middlebury13 x4, ``--preset depth``, cmsr's mean RMSE with
  ``--align full`` against the preset's ``--align none``, on the aligned pairs and on
  pairs whose guide is displaced (:data:`ALIGNMENT`).

Usage: ``python benchmarks/guide_payoff.py [--threads 2] [--entries a,b] [--reuse c,d]``;
writes ``results/guide_payoff.md``. ``--reuse`` reads the named entries' last reports
(``results/eval/<entry>/<protocol>.csv``) instead of running them: for entries whose
preset and code path did not change since (say so where the figures are quoted).
"""

from __future__ import annotations

import argparse
import csv
import statistics
import time
from pathlib import Path

import torch
from common import RESULTS, data_root, machine_line, markdown_table
from eval_suite import SUITE, Entry, report_csv, run_entry

#: (entry with --align full, the same with --align none, what the guide is)
ALIGNMENT = (("middlebury13-x4-align-full", "middlebury13-x4", "aligned"),
             ("middlebury13-x4-displaced-align-full", "middlebury13-x4-displaced",
              "displaced by 6 px and 2 degrees"))
ENTRIES = ("middlebury13-x4", "thermal-unaligned-x8-aliased", "epfl-nir-x4", "roadscene-x4",
           *(name for pair in ALIGNMENT for name in pair[:2] if name != "middlebury13-x4"))
#: Read from the suite's last run of the entry instead of running it (ZSSR's code path
#: is unchanged since that run; see the entry's ``why`` in eval_suite.py).
REUSED = {"middlebury13-x4": "middlebury13-x4-zssr"}


def per_scene(csv_path: Path) -> dict[str, dict[str, dict[str, float]]]:
    """method -> scene -> {"rmse", "psnr", "seconds"} for the successful runs."""
    table: dict[str, dict[str, dict[str, float]]] = {}
    for row in csv.DictReader(csv_path.open()):
        if row["status"] == "ok":
            table.setdefault(row["method"], {})[row["scene"]] = {
                key: float(row[key]) for key in ("rmse", "psnr", "seconds")}
    return table


def mean_of(table: dict[str, dict[str, dict[str, float]]], method: str, key: str) -> float:
    values = [v[key] for v in table.get(method, {}).values()]
    return statistics.fmean(values) if values else float("nan")


def wins(table: dict[str, dict[str, dict[str, float]]], method: str, other: str,
         key: str = "rmse") -> tuple[int, int]:
    """(scenes where ``method`` beats ``other`` on ``key``, scenes both ran)."""
    shared = set(table.get(method, {})) & set(table.get(other, {}))
    better = sum((table[method][s][key] < table[other][s][key]) == (key == "rmse")
                 for s in shared)
    return better, len(shared)


def last_report(entry: Entry) -> Path:
    """The CSV ``cmsr eval`` last wrote for ``entry``; exits when there is none."""
    path = report_csv(entry)
    if not path.is_file():
        raise SystemExit(f"guide_payoff: no report to reuse for {entry.name}: {path}")
    return path


def checks(results: dict[str, dict[str, dict[str, dict[str, float]]]]) -> list[list[str]]:
    rows: list[list[str]] = []

    def add(target: str, measured: str, baselines: str, met: bool | None) -> None:
        rows.append([target, measured, baselines,
                     "n/a" if met is None else ("yes" if met else "**no**")])

    if "middlebury13-x4" in results:
        t = results["middlebury13-x4"]
        rmse = mean_of(t, "cmsr", "rmse")
        add("Middlebury13 x4: mean RMSE <= 1.65", f"{rmse:.3f}",
            f"bicubic {mean_of(t, 'bicubic', 'rmse'):.3f}, zssr {mean_of(t, 'zssr', 'rmse'):.3f}"
            ", MMSR (own notebook) 1.71", rmse <= 1.65)
        b, n = wins(t, "cmsr", "bicubic")
        add("Middlebury13 x4: better than bicubic on 13 of 13", f"{b} of {n}", "", b == n == 13)
        z, n = wins(t, "cmsr", "zssr")
        add("Middlebury13 x4: better than ZSSR on >= 11 of 13", f"{z} of {n}", "", z >= 11)
        seconds = statistics.median(v["seconds"] for v in t.get("cmsr", {}).values())
        add("Middlebury13 x4: median <= 90 s per pair", f"{seconds:.0f} s",
            f"zssr {statistics.median(v['seconds'] for v in t['zssr'].values()):.0f} s"
            if "zssr" in t else "", seconds <= 90)
    if "epfl-nir-x4" in results:
        t = results["epfl-nir-x4"]
        gain = mean_of(t, "cmsr", "psnr") - mean_of(t, "zssr", "psnr")
        add(f"EPFL NIR x4 ({len(t.get('cmsr', {}))} pairs): cmsr >= ZSSR + 2 dB",
            f"{mean_of(t, 'cmsr', 'psnr'):.2f} dB ({gain:+.2f})",
            f"zssr {mean_of(t, 'zssr', 'psnr'):.2f}, bicubic {mean_of(t, 'bicubic', 'psnr'):.2f}",
            gain >= 2.0)
    for name in ("thermal-unaligned-x8", "thermal-unaligned-x8-aliased"):
        if name not in results:
            continue
        t = results[name]
        cmsr, bicubic, zssr = (mean_of(t, m, "psnr") for m in ("cmsr", "bicubic", "zssr"))
        kernel = "cubic-aliased kernel" if name.endswith("aliased") else "preset's kernel"
        add(f"thermal/unaligned real x8 ({kernel}): >= bicubic + 0.3 dB",
            f"{cmsr:.2f} dB ({cmsr - bicubic:+.2f})", f"bicubic {bicubic:.2f}",
            cmsr >= bicubic + 0.3)
        ran_zssr = zssr == zssr  # NaN when ZSSR was not run
        add(f"thermal/unaligned real x8 ({kernel}): >= ZSSR", f"{cmsr:.2f} dB",
            f"zssr {zssr:.2f}" if ran_zssr else "ZSSR not run",
            cmsr >= zssr if ran_zssr else None)
    if "roadscene-x4" in results:
        t = results["roadscene-x4"]
        cmsr, bicubic = mean_of(t, "cmsr", "psnr"), mean_of(t, "bicubic", "psnr")
        b, n = wins(t, "cmsr", "bicubic", "psnr")
        add(f"RoadScene x4 ({n} pairs): >= bicubic + 1 dB, better on every pair",
            f"{cmsr:.2f} dB ({cmsr - bicubic:+.2f}), {b} of {n}",
            f"bicubic {bicubic:.2f}, zssr {mean_of(t, 'zssr', 'psnr'):.2f}",
            cmsr >= bicubic + 1.0 and b == n)
    for full, none, guide in ALIGNMENT:
        if full in results and none in results:
            with_warp = mean_of(results[full], "cmsr", "rmse")
            without = mean_of(results[none], "cmsr", "rmse")
            pairs = len(results[full].get("cmsr", {}))
            add(f"Middlebury13 x4, guide {guide} ({pairs} pairs): --align full within 2% "
                "of --align none", f"{with_warp:.3f} ({100 * (with_warp / without - 1):+.1f}%)",
                f"--align none {without:.3f}", with_warp <= 1.02 * without)
    return rows


def means_rows(results: dict[str, dict[str, dict[str, dict[str, float]]]]) -> list[list[str]]:
    """Per entry and method: mean RMSE, mean PSNR, median seconds, scenes."""
    rows = []
    for name, table in results.items():
        for method, scenes in table.items():
            rows.append([name, method, f"{mean_of(table, method, 'rmse'):.3f}",
                         f"{mean_of(table, method, 'psnr'):.2f}",
                         f"{statistics.median(v['seconds'] for v in scenes.values()):.1f}",
                         str(len(scenes))])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", default=",".join(ENTRIES))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reuse", default="",
                        help="entries read from their last report instead of run")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    wanted = args.entries.split(",")
    entries = sorted((entry for entry in SUITE if entry.name in wanted),
                     key=lambda entry: wanted.index(entry.name))
    start = time.perf_counter()
    reused = set(filter(None, args.reuse.split(",")))
    results = {entry.name: per_scene(last_report(entry) if entry.name in reused else
                                     run_entry(entry, data_root(), args.threads, args.seed))
               for entry in entries}
    for name, other in REUSED.items():  # one table: the reused runs beside the others
        stored = RESULTS / "eval" / other / "avgpool-x4.csv"
        if name in results and stored.is_file():
            results[name].update(per_scene(stored))
    why = [f"- `{e.name}`: {e.data}, {e.protocol} x{e.scale}, preset {e.preset} "
           f"{' '.join(e.extra)}; {e.why}"
           + (" (read from its last report, not rerun)" if e.name in reused else "")
           for e in entries]
    markdown = "\n".join([
        "# Does the guide pay off? Issue-11 targets", "",
        f"{machine_line()}; seed {args.seed}; {time.perf_counter() - start:.0f} s "
        "(finished runs are reused).", "", *why, "",
        markdown_table(["target", "cmsr", "beside it", "met"], checks(results)), "",
        "## Means per entry", "",
        markdown_table(["entry", "method", "RMSE", "PSNR (dB)", "median s", "scenes"],
                       means_rows(results)), "",
        "Per-scene tables: `results/eval/<entry>/<protocol>.md`."])
    print("\n" + markdown)
    (RESULTS / "guide_payoff.md").write_text(markdown + "\n")


if __name__ == "__main__":
    main()
