"""What each inference step adds: one fit per pair, every way of finishing it scored.

For each pair cmsr is fitted once with the preset (its defaults, ``--align full``
included, unless ``--set`` says otherwise). The fitted networks are then run to the
full size in each combination of

* the branch: with the guide, without it (Feature-Extractor 1 alone, trained to stand
  alone by guide dropout), or the self-check's choice (the preset's result); and, with
  the preset's back-projection and clip, the blends in between (the guide branch's
  output scaled by each of ``BLEND_WEIGHTS``);
* iterative back-projection in every stage (``back_projection_iters`` of the preset)
  or none;
* the clip to the local range of the measurement (3x3 low-resolution pixels) or none;
  after the clip, also the guided median (:mod:`cmsr.method.guided_median`, the
  preset's radius or 1, with the aligned guide) followed by back-projection and the
  clip again, as the preset runs it; key suffix ``median``;

and each result is scored against the truth (RMSE in the data's units, PSNR) beside
bicubic enlargement. The self-check's held-out errors of every weight are kept too, so
the tables also score two ways of choosing the weight on this evidence: ``held-out
blend`` (the least error among 0, the blends and 1 wins if it beats guide-free by the
preset's margin, as ``self_check_blend=True`` does) and ``held-out blend, no margin``.
The preset's own result is the row marked ``default``. With
``--demo`` the built-in demo pair is scored as well, with ``cmsr demo``'s settings
(preset ``depth``, at most ``DEMO_MAX_ITERS`` steps per stage).

Usage: ``python benchmarks/inference_variants.py [--sets middlebury13] [--scenes 026]
[--demo] [--threads 2] [--set NAME=VALUE ...] [--output NAME] [--summarise]``; writes
``results/NAME.md`` (default ``inference_variants``; and ``.jsonl``, one line per pair,
appended as pairs finish; ``--summarise`` rebuilds the tables from it without fitting).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time
from collections.abc import Iterator

import numpy as np
import torch
from common import (
    RESULTS,
    add_config_overrides,
    config_overrides,
    data_root,
    machine_line,
    markdown_table,
)

from cmsr.cli.sr import DEMO_MAX_ITERS
from cmsr.demo import make_demo_pair
from cmsr.evaluation.datasets import find_scenes, select_scenes
from cmsr.evaluation.metrics import data_range_for, psnr, rmse
from cmsr.evaluation.protocols import EvalProtocol, apply_protocol
from cmsr.files import read_image
from cmsr.method.api import CMSR
from cmsr.method.config import PRESETS, Config
from cmsr.method.guided_median import guided_median
from cmsr.method.infer import back_project, clamp_to_local_range
from cmsr.method.resample import upsample_bicubic
from cmsr.method.self_check import BLEND_WEIGHTS, SelfCheck, decide

SETS = {  # name: (folder, protocol, scale, preset, overrides)
    "middlebury13": ("depth/middlebury13", "avgpool", 4, "depth", {}),
    "middlebury2005": ("depth/middlebury2005", "avgpool", 4, "depth", {}),
    "thermal-unaligned": ("thermal/unaligned", "real", 8, "thermal",
                          {"degradation": "cubic-aliased"}),
    "roadscene": ("thermal/roadscene", "bicubic", 4, "thermal", {}),
    "epfl-nir": ("nir/epfl", "bicubic", 4, "nir", {}),
}
BRANCHES = ("guided", "guide-free")


def variants(model: CMSR) -> dict[str, np.ndarray]:
    """Every finish of the fitted ``model``, in the target's units (float64).

    Keys: ``"<branch> bp<iters>[ clip]"`` for the two branches, back-projection on
    (the preset's iterations) and off, with and without the clip; ``"blend <weight>
    bp<iters>[ clip]"`` with the preset's back-projection and clip; ``"bicubic"``.
    """
    pair = model.pair
    assert pair is not None
    fitted_config, check = model.config, model.self_check
    iterations = sorted({0, fitted_config.back_projection_iters})
    radius = fitted_config.guided_median_radius or 1
    guide = model.aligned_guide()
    out: dict[str, np.ndarray] = {}
    try:
        for branch in BRANCHES:
            weight = 1.0 if branch == "guided" else 0.0
            model.self_check = (SelfCheck(0.0, 0.0, 0.0, 0, branch, weight) if check is None
                                else dataclasses.replace(check, choice=branch,
                                                         guide_weight=weight))
            for bp in iterations:
                model.config = fitted_config.replace(back_projection_iters=bp,
                                                     clamp_to_local_range=False,
                                                     guided_median_radius=0)
                result = model.predict_tensor()
                for clip in (False, True):
                    finished = clamp_to_local_range(result, pair.target) if clip else result
                    key = f"{branch} bp{bp}" + (" clip" if clip else "")
                    out[key] = pair.normalization.from_unit(finished).astype(np.float64)
                    if clip:
                        finished = clamp_to_local_range(back_project(
                            guided_median(finished, guide, radius=radius,
                                          sigma=fitted_config.guided_median_sigma),
                            pair.target, iterations=bp, kernel=fitted_config.degradation,
                            valid=pair.valid), pair.target)
                        out[key + " median"] = pair.normalization.from_unit(
                            finished).astype(np.float64)
        model.config = fitted_config
        for weight in BLEND_WEIGHTS:
            model.self_check = SelfCheck(0.0, 0.0, 0.0, 0, "blend", weight)
            key = blend_key(weight, fitted_config)
            out[key] = pair.normalization.from_unit(model.predict_tensor()).astype(np.float64)
    finally:
        model.config, model.self_check = fitted_config, check
    bicubic = upsample_bicubic(pair.target, tuple(pair.guide.shape[-2:]))
    out["bicubic"] = pair.normalization.from_unit(bicubic).astype(np.float64)
    return out


def finish_key(config: Config) -> str:
    """The preset's finish in a variant name: ``"bp<iters>[ clip[ median]]"``."""
    key = f"bp{config.back_projection_iters}" + (" clip" if config.clamp_to_local_range
                                                else "")
    return key + (" median" if config.guided_median_radius else "")


def choice_key(choice: str, weight: float, finish: str) -> str:
    """The variant name of a self-check's choice (and guide weight) with ``finish``."""
    if choice == "bicubic":
        return "bicubic"
    if choice == "blend":
        return f"blend {weight:g} {finish}"
    return f"{choice} {finish}"


def blend_key(weight: float, config: Config) -> str:
    """The variant name of a blend with the preset's finish."""
    return choice_key("blend", weight, finish_key(config))


def default_key(config: Config, check: SelfCheck | None) -> str:
    """The variant the preset itself returns (``bicubic`` if the self-check chose it)."""
    if check is None:
        return choice_key("guided", 1.0, finish_key(config))
    return choice_key(check.choice, check.guide_weight, finish_key(config))


def score_pair(name: str, low: np.ndarray, guide: np.ndarray, truth: np.ndarray,
               config: Config) -> dict:
    """Fit once, score every variant; one JSON-able record."""
    start = time.perf_counter()
    model = CMSR(config).fit(low, guide)
    seconds = time.perf_counter() - start
    data_range = data_range_for(truth)
    scores = {key: [rmse(value, truth), psnr(value, truth, data_range=data_range)]
              for key, value in variants(model).items()}
    check = model.self_check
    return {"pair": name, "seconds": round(seconds, 1),
            "choice": None if check is None else check.choice,
            "held_out_l1": None if check is None else [check.guided, check.guide_free,
                                                       check.bicubic, *check.blended],
            "margin": config.self_check_margin,
            "finish": finish_key(config),
            "default": default_key(config, check), "scores": scores}


def held_out_choice(record: dict, margin: float) -> str | None:
    """The variant the held-out errors choose among guide-free, the blends and guided
    (``decide`` with ``blend=True``), or None without them."""
    errors = record.get("held_out_l1")
    if not errors or len(errors) < 3 + len(BLEND_WEIGHTS) or "finish" not in record:
        return None
    guided, free, bicubic, *blended = errors
    check = decide(guided, free, bicubic, 1, margin, tuple(blended), blend=True)
    return choice_key(check.choice, check.guide_weight, record["finish"])


def pairs(args: argparse.Namespace, overrides: dict
          ) -> Iterator[tuple[str, str, np.ndarray, np.ndarray, np.ndarray, Config]]:
    """``(set, pair name, low, guide, truth, config)`` for every pair asked for, each
    read only when its turn comes."""
    if args.demo:
        demo = make_demo_pair()
        config = Config.preset("depth", seed=args.seed, **{
            "max_iters": min(DEMO_MAX_ITERS, PRESETS["depth"].max_iters), **overrides})
        yield "demo", "demo", demo.target_lr, demo.guide, demo.ground_truth, config
    for set_name in filter(None, args.sets.split(",")):
        folder, protocol, scale, preset, fixed = SETS[set_name]
        config = Config.preset(preset, seed=args.seed, **{**fixed, **overrides})
        for scene in select_scenes(find_scenes(data_root() / folder), args.scenes):
            captured = read_image(scene.target_lr) if scene.target_lr else None
            pair = apply_protocol(read_image(scene.target), read_image(scene.guide),
                                  EvalProtocol(protocol, scale), low=captured)
            yield set_name, scene.name, pair.low, pair.guide, pair.truth, config


def records(args: argparse.Namespace, overrides: dict) -> list[dict]:
    """Score every pair; each record is also appended to the JSONL as it finishes."""
    rows = []
    for set_name, name, low, guide, truth, config in pairs(args, overrides):
        record = {"set": set_name, **score_pair(name, low, guide, truth, config)}
        print(json.dumps(record), flush=True)
        with (RESULTS / f"{args.output}.jsonl").open("a") as handle:
            handle.write(json.dumps(record) + "\n")
        rows.append(record)
    return rows


def table(rows: list[dict], set_name: str) -> str:
    """Mean RMSE / PSNR of every variant over the set's pairs, and pairs won against
    the preset's own result."""
    chosen = [r for r in rows if r["set"] == set_name]
    keys: list[str] = list(chosen[0]["scores"])
    lines = []

    def line(label: str, picks: list[str]) -> None:
        rmses = [r["scores"][k][0] for r, k in zip(chosen, picks, strict=True)]
        psnrs = [r["scores"][k][1] for r, k in zip(chosen, picks, strict=True)]
        better = sum(r["scores"][k][0] < r["scores"][r["default"]][0]
                     for r, k in zip(chosen, picks, strict=True))
        default = sum(r["default"] == k for r, k in zip(chosen, picks, strict=True))
        lines.append([label, f"{statistics.fmean(rmses):.3f}",
                      f"{statistics.fmean(psnrs):.2f}", f"{better} of {len(chosen)}",
                      str(default)])

    for key in keys:
        if all(key in r["scores"] for r in chosen):
            line(key, [key] * len(chosen))
    for label, no_margin in (("held-out blend", False), ("held-out blend, no margin", True)):
        picks = [held_out_choice(r, 0.0 if no_margin else r.get("margin", 0.02))
                 for r in chosen]
        if all(p is not None and p in r["scores"] for r, p in zip(chosen, picks, strict=True)):
            line(label, [str(p) for p in picks])
    return markdown_table(["variant", "mean RMSE", "mean PSNR (dB)",
                           "better than the preset's result", "is the preset's result on"],
                          lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", default="middlebury13")
    parser.add_argument("--scenes", default=None)
    parser.add_argument("--demo", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", default="inference_variants",
                        help="name of the results (results/NAME.md and .jsonl)")
    parser.add_argument("--summarise", action="store_true",
                        help="fit nothing: write the tables from the pairs already in "
                             "results/inference_variants.jsonl (e.g. of a stopped run)")
    add_config_overrides(parser)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    overrides = config_overrides(args.set)
    if args.summarise:
        with (RESULTS / f"{args.output}.jsonl").open() as handle:
            rows = [json.loads(line) for line in handle if line.strip()]
        heading = f"the pairs in `results/{args.output}.jsonl`, fitted one by one"
    else:
        rows = records(args, overrides)
        heading = f"{machine_line()}; seed {args.seed}; overrides {overrides or 'none'}"
    parts = ["# What each inference step adds", "", heading + "."]
    for set_name in dict.fromkeys(r["set"] for r in rows):
        pairs = [r for r in rows if r["set"] == set_name]
        parts += ["", f"## {set_name} ({len(pairs)} pairs; median fit "
                  f"{statistics.median(r['seconds'] for r in pairs):.0f} s)", "",
                  table(rows, set_name), "",
                  "Per pair, RMSE of the preset's result (its variant): " + ", ".join(
                      f"{r['pair']} {r['scores'][r['default']][0]:.3f} ({r['default']})"
                      for r in pairs)]
    text = "\n".join(parts)
    (RESULTS / f"{args.output}.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
