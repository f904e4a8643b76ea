"""The depth finish as a whole: how much of it should the guide steer?

On depth the guide pays almost only through the finish: cmsr's networks, with the
finish turned off (``*-raw`` entries of ``eval_suite.py``), score about what ZSSR's do,
and the guided parts of the finish (the guided median, the guide term of the block
partition) make the difference. This script reads those stored raw outputs (fits
nothing), runs the ``depth`` preset's whole finish on them -- the guided median,
edge sharpening, the block partition, each followed by back-projection and the local
clip, as :class:`cmsr.method.api.CMSR` does -- with several guided-median radii,
sharpening and partition strengths and partition guide weights, and scores every
variant. With ``--shift-search``, the guide (for the finishes) first moves by the
whole-pixel offset :func:`cmsr.method.guide_shift.best_guide_shift` finds (the offsets it
took are listed). The first variant is the preset's own finish (it reproduces the preset's
stored result); each row says how many pairs a variant makes better than that, and,
with ``--against``, than another method's stored results (e.g. ZSSR's of the same
seed). A variant without the partition is scored once (its guide weight does nothing).

Usage: ``python benchmarks/depth_finish.py [--items ENTRY[@FOLDER]:METHOD,...]
[--against ENTRY[@FOLDER]:METHOD|-,...] [--median-radii 0,1] [--sharpening 0,0.5]
[--partition 0,0.5] [--guide-weights 0,0.2] [--shift-search 1,0] [--output NAME]``. Items as in
``benchmarks/edge_sharpening.py``; ``--against`` gives one reference per item (``-`` for
none). Writes ``results/NAME.md`` (default ``depth_finish``).
"""

from __future__ import annotations

import argparse
import itertools
import statistics

import torch
from block_partition import unit_guide
from common import data_root, markdown_table, stored_outputs
from edge_sharpening import item_runs, outcome_cells, refit, write_report

from cmsr.evaluation.datasets import find_scenes
from cmsr.evaluation.metrics import rmse
from cmsr.method.block_partition import partition_blocks
from cmsr.method.config import PRESETS
from cmsr.method.edge_sharpening import sharpen_edges
from cmsr.method.guide_shift import Offset, best_guide_shift, shift_window
from cmsr.method.guided_median import guided_median
from cmsr.method.normalize import array_to_tensor

DEFAULT_ITEMS = ("middlebury2005-x4-raw:cmsr,middlebury13-x4-raw:cmsr,"
                 "middlebury13-x4-raw@seeds/depth-cmsr-raw-seed1:cmsr")
DEFAULT_AGAINST = "-,middlebury13-x4-zssr:zssr,middlebury13-x4-zssr@seeds/depth-zssr-seed1:zssr"
Variant = tuple[int, float, float, float, int]
"""Guided-median radius, edge-sharpening strength, partition strength, partition guide
weight, guide-shift search (output pixels)."""


def finish(estimate: torch.Tensor, low: torch.Tensor, guide: torch.Tensor,
           variant: Variant) -> tuple[torch.Tensor, Offset]:
    """The ``depth`` preset's finish of ``estimate`` ``(1, 1, H, W)`` (any units) on the
    measured ``low`` ``(1, 1, h, w)``, ``guide`` ``(1, C, H, W)`` in [0, 1], with the
    ``variant``'s settings (the others the preset's), and the guide's offset."""
    median_radius, sharpening, partition, guide_weight, search = variant
    preset = PRESETS["depth"]
    iterations = preset.back_projection_iters
    offset: Offset = (0, 0)
    if median_radius and search:
        offset = best_guide_shift(estimate, low, guide, reach=search, radius=median_radius,
                                  sigma=preset.guided_median_sigma,
                                  kernel=preset.degradation).offset
        guide = shift_window(guide, offset)
    if median_radius:
        estimate = refit(guided_median(estimate, guide, radius=median_radius,
                                       sigma=preset.guided_median_sigma), low, iterations)
    if sharpening:
        estimate = refit(sharpen_edges(estimate, strength=sharpening), low, iterations)
    if partition:
        estimate = refit(partition_blocks(estimate, low, guide=guide, strength=partition,
                                          guide_weight=guide_weight), low, iterations)
    return estimate, offset


def reference_scores(item: str) -> dict[str, float]:
    """RMSE per scene of a reference item's stored outputs (empty for ``-``)."""
    if item == "-":
        return {}
    _, method, protocol, runs, data = item_runs(item)
    scenes = find_scenes(data_root() / data)
    return {scene.name: rmse(output, truth, mask=pair.mask)
            for scene, pair, truth, output in stored_outputs(runs, scenes, method, protocol)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", default=DEFAULT_ITEMS)
    parser.add_argument("--against", default=DEFAULT_AGAINST)
    parser.add_argument("--median-radii", default="1,0")
    parser.add_argument("--sharpening", default="0.5",
                        help="edge-sharpening strengths (0: off; default the preset's)")
    parser.add_argument("--partition", default="0.5",
                        help="block-partition strengths (0: off; default the preset's)")
    parser.add_argument("--guide-weights", default="0.2,0,0.4,0.6,1")
    parser.add_argument("--shift-search", default=None,
                        help="guide-shift searches in output pixels (0: off; default the "
                             "preset's)")
    parser.add_argument("--output", default="depth_finish")
    args = parser.parse_args()
    preset = PRESETS["depth"]
    radii = [int(v) for v in args.median_radii.split(",")]
    sharpening = [float(v) for v in args.sharpening.split(",")]
    partition = [float(v) for v in args.partition.split(",")]
    weights = [float(v) for v in args.guide_weights.split(",")]
    searches = ([int(v) for v in args.shift_search.split(",")] if args.shift_search
                else [preset.guide_shift_search])
    own: Variant = (preset.guided_median_radius, preset.edge_sharpening,
                    preset.block_partition, preset.block_partition_guide,
                    preset.guide_shift_search)
    # the search moves the guide for the median alone: without it the search is off
    chosen = [(r, e, p, w, s if r else 0) for r, e, p, w, s
              in itertools.product(radii, sharpening, partition, weights, searches)]
    variants = [own, *dict.fromkeys(v for v in chosen if v != own and (v[2] or v[3] == 0))]
    items, against = args.items.split(","), args.against.split(",")
    if len(against) != len(items):
        raise SystemExit("--against needs one reference (or -) per item")
    sections = []
    for item, reference_item in zip(items, against, strict=True):
        label, method, protocol, runs, data = item_runs(item)
        reference = reference_scores(reference_item)
        names: list[str] = []
        scores: dict[Variant, list[float]] = {v: [] for v in variants}
        moved: dict[Variant, list[str]] = {v: [] for v in variants}
        for scene, pair, truth, output in stored_outputs(runs, find_scenes(data_root() / data),
                                                          method, protocol):
            low, estimate = array_to_tensor(pair.low), array_to_tensor(output)
            guide = unit_guide(pair.guide)
            names.append(scene.name)
            for variant in variants:
                result, offset = finish(estimate, low, guide, variant)
                if offset != (0, 0):
                    moved[variant].append(f"{scene.name} {offset}")
                scores[variant].append(rmse(result[0, 0].double().numpy(), truth,
                                            mask=pair.mask))
        if not names:
            raise SystemExit(f"{item}: no stored outputs in {runs}")
        base = scores[own]
        versus = [reference.get(name, float("nan")) for name in names]
        rows = []
        for variant, values in scores.items():
            radius, sharpen, split, weight, search = variant
            cells = outcome_cells(values, base)
            wins = (f"{sum(v < r for v, r in zip(values, versus, strict=True))} of "
                    f"{len(values)}" if reference else "–")
            shifts = (f"{search}: " + (", ".join(moved[variant]) or "none moved")
                      if radius and search else "–")
            rows.append([f"{radius}", shifts, f"{sharpen:g}", f"{split:g}",
                         f"{weight:g}" if split else "–", *cells, wins])
        rows[0][0] += " (preset)"
        per_pair = ", ".join(f"{n} {s:.3f}" for n, s in zip(names, base, strict=True))
        against_text = (f"; {reference_item}: mean {statistics.fmean(versus):.3f}"
                        if reference else "")
        sections += [f"## {label} ({len(names)} pairs, {protocol.name})", "",
                     f"The preset's finish, per pair: {per_pair}{against_text}.", "",
                     markdown_table(["guided median radius",
                                     "guide-shift search: offsets taken", "edge sharpening",
                                     "block partition", "partition guide weight",
                                     "mean RMSE", "against the preset", "better on",
                                     f"better than {reference_item}"], rows), ""]
    write_report("The depth finish on stored raw network outputs", preset.back_projection_iters,
                 sections, args.output)


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
