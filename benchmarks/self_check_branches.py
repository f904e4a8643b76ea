"""Both branches of the self-check, pair by pair: does its choice hold at full scale?

cmsr's self-check (:mod:`cmsr.method.self_check`) decides after the first stage, on
held-out pixels at the *training* scale, whether the guided network beats the guide-free
one by ``self_check_margin``. The result is made at the *target* scale. This script runs
each pair of an ``eval_suite.py`` entry down both branches from the same first stage
(same seed and thread count, so the fits are the same up to the decision):

* with ``--self-check-margin 0``: the guided branch wherever the guided network wins
  the check at all (else the guide-free one, and the pair needs no second fit);
* with ``--self-check-margin 0.999``: the guide-free branch.

Each pair's row holds the check's held-out errors (the relative *gain* of the guide,
``1 - guided / guide-free``), both branches' scores against the truth, and ZSSR's
stored score for the same seed (``results/eval/<entry>`` for seed 0,
``results/eval/seeds/<spread>-seed<k>`` from ``seed_spread.py`` otherwise). From the
rows it tabulates what each margin would have given: the set's mean, and on how many
pairs the chosen branch beats ZSSR.

Rows are kept in ``results/self_check_branches.jsonl``, one per entry, seed and scene,
with the key of the fit's settings (every config field but the margin, as ``cmsr eval``
keys its runs) and the cmsr version that computed it. A row is reused, and tabulated,
while its entry's settings key is unchanged; after a change to the method's code,
delete the file. The tables go to ``results/self_check_branches.md``.

Usage: ``python benchmarks/self_check_branches.py [--entries middlebury13-x4,...]
[--seeds 0,1] [--scenes A,B] [--threads 1] [--summarise]``. Two processes with
disjoint ``--entries`` or ``--seeds`` share the 2 cores at 1 thread each.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch
from common import RESULTS, data_root, machine_line, markdown_table
from eval_suite import SUITE, entry_argv, entry_named
from seed_spread import SPREADS, Spread, per_pair

from cmsr import __version__
from cmsr.cli import build_parser
from cmsr.cli.eval import protocol_from_args
from cmsr.cli.options import config_from_args
from cmsr.evaluation.datasets import find_scenes, select_scenes
from cmsr.evaluation.evaluate import load_pair, method_settings, score_run
from cmsr.evaluation.protocols import EvaluationPair
from cmsr.files.runs import settings_key
from cmsr.method.api import CMSR
from cmsr.method.config import Config

ROWS = RESULTS / "self_check_branches.jsonl"
FORCE_FREE = 0.999
MARGINS = (0.0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3)
# ZSSR beside each entry: seed_spread.py's spread (seed 0 is its entry's own run)
ZSSR_SPREADS = {"middlebury13-x4": "depth-zssr", "thermal-unaligned-x8-aliased": "thermal-zssr"}


def entry_config(name: str, seed: int, threads: int) -> tuple[argparse.Namespace, Config]:
    """The parsed ``cmsr eval`` arguments of an entry and the config they give."""
    entry = entry_named(name)
    args = build_parser().parse_args(entry_argv(entry, data_root(), threads, seed))
    return args, config_from_args(args)


def fit_key(config: Config) -> str:
    """The key of what a branch's fits depend on: the settings without the margin."""
    return settings_key(method_settings("cmsr", config.replace(self_check_margin=0.0), {}))


def zssr_scores(name: str, seed: int) -> dict[str, dict[str, float]]:
    """ZSSR's stored ``{scene: {"rmse", "psnr"}}`` for the entry at ``seed`` (empty when
    it was not run): its spread in ``seed_spread.py``, or the entry's own run."""
    spread = next((s for s in SPREADS if s.name == ZSSR_SPREADS.get(name)),
                  Spread(f"{name}-zssr", name, "zssr"))
    return per_pair(spread, seed) or {}


def fit_branch(pair: EvaluationPair, config: Config, margin: float
               ) -> tuple[CMSR, dict[str, float]]:
    """One cmsr fit of ``pair`` with ``margin``; the fitted method and its scores."""
    method = CMSR(config.replace(self_check_margin=margin))
    start = time.perf_counter()
    method.fit(pair.low, pair.guide_at_truth_size())
    scores = score_run(np.asarray(method.predict(), dtype=np.float32), pair, 0)
    return method, {"rmse": float(scores["rmse"]), "psnr": float(scores["psnr"]),
                    "seconds": time.perf_counter() - start}


def run_pairs(name: str, seed: int, threads: int, only: set[str] | None) -> None:
    """Fit both branches of every pair of the entry not in :data:`ROWS` yet."""
    args, config = entry_config(name, seed, threads)
    if not config.self_check:
        raise SystemExit(f"{name}: its preset runs no self-check")
    key = fit_key(config)
    done = {(r["entry"], r["seed"], r["scene"]) for r in read_rows() if r["settings"] == key}
    protocol = protocol_from_args(args)
    for scene in select_scenes(find_scenes(args.data), args.scenes):
        if (only and scene.name not in only) or (name, seed, scene.name) in done:
            continue
        pair = load_pair(scene, protocol)
        method, first = fit_branch(pair, config, 0.0)
        check = method.self_check
        assert check is not None
        row = {"entry": name, "seed": seed, "scene": scene.name, "cmsr": __version__,
               "settings": key, "threads": threads,
               "guided_error": check.guided, "free_error": check.guide_free,
               "bicubic_error": check.bicubic, "check_choice": check.choice}
        if check.choice == "guided":
            row["guided"] = first
            row["guide-free"] = fit_branch(pair, config, FORCE_FREE)[1]
        else:  # the guide lost the check even at margin 0: both branches are this fit
            row["guide-free"] = first
        with ROWS.open("a") as handle:
            handle.write(json.dumps(row) + "\n")
        print(f"{name} seed {seed} {scene.name}: gain {gain(row):+.1%}, "
              + ", ".join(f"{b} {row[b]['rmse']:.3f} / {row[b]['psnr']:.2f} dB"
                          for b in ("guided", "guide-free") if b in row), flush=True)


def read_rows() -> list[dict]:
    """Every stored row (of any settings)."""
    if not ROWS.exists():
        return []
    return [json.loads(line) for line in ROWS.read_text().splitlines() if line.strip()]


def gain(row: dict) -> float:
    """The guide's relative gain on the held-out pixels: ``1 - guided / guide-free``."""
    return 1.0 - row["guided_error"] / row["free_error"] if row["free_error"] > 0 else 0.0


def chosen(row: dict, margin: float) -> dict[str, float]:
    """The branch ``margin`` would have chosen (the bicubic fallback is not modelled:
    a check that chose bicubic lands in the guide-free branch's row)."""
    return row["guided"] if "guided" in row and gain(row) > margin else row["guide-free"]


def summarise(entries: list[str]) -> str:
    """The tables of every entry and seed in :data:`ROWS`."""
    rows = read_rows()
    lines = ["# The self-check's two branches at full scale", "",
             f"{machine_line()}; cmsr {__version__}; rows from `self_check_branches.jsonl`.",
             ""]
    for name in entries:
        metric = "rmse" if name.startswith("middlebury") else "psnr"
        lower = metric == "rmse"
        for seed in sorted({r["seed"] for r in rows if r["entry"] == name}):
            _, config = entry_config(name, seed, 1)
            key = fit_key(config)
            part = [r for r in rows if r["entry"] == name and r["seed"] == seed
                    and r["settings"] == key]
            if not part:
                continue
            zssr = zssr_scores(name, seed)
            versions = ", ".join(sorted({r["cmsr"] for r in part}))
            threads = ", ".join(sorted({str(r["threads"]) for r in part}))
            per_pair = []
            for r in sorted(part, key=lambda r: r["scene"]):
                guided = r["guided"][metric] if "guided" in r else None
                free = r["guide-free"][metric]
                z = zssr.get(r["scene"], {}).get(metric)
                per_pair.append([r["scene"], f"{gain(r):+.1%}",
                                 "–" if guided is None else f"{guided:.3f}", f"{free:.3f}",
                                 "–" if z is None else f"{z:.3f}",
                                 "–" if guided is None else
                                 ("guided" if (guided < free) == lower else "guide-free")])
            table = []
            for margin in (*MARGINS, FORCE_FREE):
                values = [chosen(r, margin)[metric] for r in part]
                guided_count = sum("guided" in r and gain(r) > margin for r in part)
                beats = [v for r, v in zip(part, values, strict=True) if r["scene"] in zssr]
                wins = sum((v < zssr[r["scene"]][metric]) == lower
                           for r, v in zip(part, values, strict=True) if r["scene"] in zssr)
                label = ("guide-free always" if margin == FORCE_FREE else
                         f"{margin:g}" + (" (preset)" if margin == config.self_check_margin
                                          else ""))
                table.append([label, str(guided_count), f"{statistics.fmean(values):.3f}",
                              f"{wins} of {len(beats)}" if beats else "–"])
            z_mean = (f"{statistics.fmean(zssr[r['scene']][metric] for r in part):.3f}"
                      if all(r["scene"] in zssr for r in part) else "–")
            lines += [f"## {name}, seed {seed} ({len(part)} pairs, {metric.upper()})", "",
                      f"Fitted by cmsr {versions} at {threads} thread(s), preset "
                      f"`{entry_named(name).preset}` with the entry's options.", "",
                      markdown_table(["pair", "guide's held-out gain", "guided branch",
                                      "guide-free branch", "ZSSR", "better at full scale"],
                                     per_pair), "",
                      f"What each margin would choose (ZSSR's mean {z_mean}):", "",
                      markdown_table(["margin", "pairs guided", f"mean {metric.upper()}",
                                      "better than ZSSR on"], table), ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", default="middlebury13-x4,thermal-unaligned-x8-aliased")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--scenes", default=None, help="comma-separated scene names")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--summarise", action="store_true",
                        help="fit nothing; tabulate the stored rows")
    args = parser.parse_args()
    entries = args.entries.split(",")
    torch.set_num_threads(args.threads)
    if not args.summarise:
        only = set(args.scenes.split(",")) if args.scenes else None
        for name in entries:
            for seed in (int(s) for s in args.seeds.split(",")):
                run_pairs(name, seed, args.threads, only)
    everything = sorted({r["entry"] for r in read_rows()},
                        key=lambda n: [e.name for e in SUITE].index(n))
    text = summarise(everything)
    print(text)
    (RESULTS / "self_check_branches.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
