"""Does the self-check's verdict at the training scale carry to the target scale? Thermal.

The self-check (``cmsr.method.self_check``) decides after the first stage, on held-out
pixels of the measured target rebuilt from its own reduction: guided, guide-free or
bicubic. The eval scores the whole fit's result at the target scale. This script puts
the two side by side, run by run, for the ``thermal`` preset:

* the real captures of ``thermal/unaligned`` x8 (``--kernel cubic-aliased``), every seed
  of ``seed_spread.py`` that cmsr and ZSSR both ran (seed 0: the eval suite's entry);
* RoadScene x4 (bicubic protocol, 6 pairs), seed 0, the eval suite's entry.

For each run it fits the first stage alone, with the seed and settings of the eval's
fit (the first stage and its check do not depend on what the later stages do, so the
check is the one the whole fit made; the choice is compared with the one the eval
recorded), and reads the check's held-out errors: guided and guide-free, relative to
bicubic, and the guided network's win over the guide-free one. Beside them: the eval's
PSNR of cmsr, ZSSR and bicubic at the target scale.

The check's numbers are kept in ``results/self_check_transfer.jsonl`` (a run is fitted
once; delete a line to fit it again). Writes ``results/self_check_transfer.md``.

Usage: ``python benchmarks/self_check_transfer.py [--seeds 0,1,2] [--threads 1]``.
About 40 s per first stage at 1 thread, 80 s with the cores shared.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import time
from pathlib import Path

import torch
from common import RESULTS, data_root, machine_line, markdown_table
from eval_suite import Entry, entry_named, report_csv
from seed_spread import SPREADS, method_runs, spread_csv

from cmsr import Config
from cmsr.evaluation.datasets import find_scenes, select_scenes
from cmsr.evaluation.evaluate import load_pair
from cmsr.evaluation.protocols import EvalProtocol
from cmsr.method.api import CMSR, PreparedPair

STORE = RESULTS / "self_check_transfer.jsonl"
#: (eval-suite entry, cmsr's seed spread, ZSSR's seed spread; None: seed 0 only)
SETS = (("thermal-unaligned-x8-aliased", "thermal-cmsr", "thermal-zssr"),
        ("roadscene-x4", None, None))


class FirstStageCMSR(CMSR):
    """:class:`cmsr.CMSR` that trains its first gradual stage only (and its checks)."""

    def _stages(self, pair: PreparedPair) -> list[tuple[int, int]]:
        return super()._stages(pair)[:1]


def entry_config(entry: Entry, seed: int, threads: int) -> Config:
    """The config ``cmsr eval`` fits cmsr with for ``entry`` (preset and ``--kernel``)."""
    extra = dict(zip(entry.extra[::2], entry.extra[1::2], strict=True))
    unknown = set(extra) - {"--kernel"}
    if unknown:
        raise SystemExit(f"self_check_transfer: options not handled: {sorted(unknown)}")
    kernel = {"degradation": extra["--kernel"]} if "--kernel" in extra else {}
    return Config.preset(entry.preset, seed=seed, threads=threads, **kernel)


def first_check(entry: Entry, scene_name: str, seed: int, threads: int) -> dict[str, object]:
    """Fit the first stage of ``entry``'s pair ``scene_name`` and return its check."""
    scene = select_scenes(find_scenes(data_root() / entry.data), scene_name)[0]
    pair = load_pair(scene, EvalProtocol(kind=entry.protocol, scale=entry.scale))
    start = time.perf_counter()
    model = FirstStageCMSR(entry_config(entry, seed, threads))
    model.fit(pair.low, pair.guide_at_truth_size())
    check, alignment = model.self_check, model.alignment_check
    assert check is not None, "the preset runs no self-check"
    return {"entry": entry.name, "scene": scene_name, "seed": seed,
            "guided": check.guided, "guide_free": check.guide_free, "bicubic": check.bicubic,
            "first_choice": check.first_choice,
            "margin": check.margin,
            "warp_kept": None if alignment is None else alignment.kept,
            "seconds": round(time.perf_counter() - start, 1)}


def eval_csv(entry: Entry, spread: str | None, seed: int) -> Path | None:
    """The eval's CSV of ``entry`` at ``seed``: the suite's own run for seed 0, else the
    seed spread's (None when ``entry`` has no spread or the seed was not run)."""
    if seed == 0:
        path = report_csv(entry)
    elif spread is None:
        return None
    else:
        path = spread_csv(next(s for s in SPREADS if s.name == spread), seed)
    return path if path.exists() else None


def eval_choices(path: Path) -> dict[str, str]:
    """The self-check choice the eval recorded per scene for cmsr."""
    return {r["scene"]: r.get("guide_choice", "") for r in csv.DictReader(path.open())
            if r["method"] == "cmsr" and r["status"] == "ok"}


def load_store() -> dict[tuple[str, str, int], dict[str, object]]:
    """The first-stage checks fitted so far, by (entry, scene, seed)."""
    if not STORE.exists():
        return {}
    rows = [json.loads(line) for line in STORE.read_text().splitlines() if line.strip()]
    return {(r["entry"], r["scene"], r["seed"]): r for r in rows}


def relative(value: float, reference: float) -> float:
    """``value`` against ``reference`` in percent (negative: lower error)."""
    return 100.0 * (value / reference - 1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2,3,4,5,6,7,8")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",") if s]
    torch.set_num_threads(args.threads)
    store = load_store()
    rows: list[list[str]] = []
    by_choice: dict[tuple[str, str], list[tuple[float, float]]] = {}  # (vs ZSSR, vs bicubic)
    for name, cmsr_spread, zssr_spread in SETS:
        entry = entry_named(name)
        bicubic = method_runs(report_csv(entry), "bicubic")
        for seed in seeds if cmsr_spread else [0]:
            cmsr_csv = eval_csv(entry, cmsr_spread, seed)
            zssr_csv = eval_csv(entry, zssr_spread, seed)
            if cmsr_csv is None or zssr_csv is None:
                continue
            cmsr, zssr = method_runs(cmsr_csv, "cmsr"), method_runs(zssr_csv, "zssr")
            choices = eval_choices(cmsr_csv)
            for scene in sorted(set(cmsr) & set(zssr)):
                key = (name, scene, seed)
                if key not in store:
                    print(f"first stage: {name} {scene} seed {seed}", flush=True)
                    store[key] = first_check(entry, scene, seed, args.threads)
                    with STORE.open("a") as handle:
                        handle.write(json.dumps(store[key]) + "\n")
                check = store[key]
                guided, free, bic = (float(check[k])  # type: ignore[arg-type]
                                     for k in ("guided", "guide_free", "bicubic"))
                choice = choices.get(scene, "")
                versus_zssr = cmsr[scene]["psnr"] - zssr[scene]["psnr"]
                versus_bicubic = cmsr[scene]["psnr"] - bicubic[scene]["psnr"]
                by_choice.setdefault((name, choice), []).append((versus_zssr, versus_bicubic))
                rows.append([name, scene, str(seed), f"{relative(guided, bic):+.1f}%",
                             f"{relative(free, bic):+.1f}%",
                             f"{100 * (1 - guided / free):+.1f}%",
                             {True: "kept", False: "dropped", None: ""}[check["warp_kept"]],
                             str(check["first_choice"]), choice,
                             f"{versus_bicubic:+.2f}",
                             f"{zssr[scene]['psnr'] - bicubic[scene]['psnr']:+.2f}",
                             f"{versus_zssr:+.2f}"])
    summary = [[name, choice or "(not recorded)", str(len(values)),
                f"{statistics.fmean(v[1] for v in values):+.2f}",
                f"{statistics.fmean(v[0] for v in values):+.2f}",
                f"{sum(v[0] > 0 for v in values)} of {len(values)}"]
               for (name, choice), values in sorted(by_choice.items())]
    markdown = "\n".join([
        "# The self-check at the training scale against the result at the target scale",
        "", f"{machine_line()}; seeds {', '.join(map(str, seeds))} (RoadScene: 0); the "
        "check's errors from a first-stage fit with the eval's seed and settings, PSNR "
        "(dB) from the eval's runs.", "",
        "## Per choice (the eval's, after any recheck)", "",
        markdown_table(["entry", "choice", "runs", "cmsr - bicubic (dB)",
                        "cmsr - ZSSR (dB)", "cmsr ahead of ZSSR"], summary), "",
        "## Run by run", "",
        "Held-out L1 against bicubic's (negative: better); *guide's win*: how much lower "
        "the guided error is than the guide-free one (the margin compares this); "
        "*warp*: what the alignment check did with the coarse warp.", "",
        markdown_table(["entry", "scene", "seed", "guided", "guide-free", "guide's win",
                        "warp", "first check", "eval's choice", "cmsr - bicubic",
                        "ZSSR - bicubic", "cmsr - ZSSR"], rows)])
    print("\n" + markdown)
    (RESULTS / "self_check_transfer.md").write_text(markdown + "\n")


if __name__ == "__main__":
    main()
