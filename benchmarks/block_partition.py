"""Block partition on depth: how strong, with how much guide, and does it hold on scenes
it was not chosen on.

Reads stored evaluation outputs (fits nothing) and finishes each with
:func:`cmsr.method.block_partition.partition_blocks` at several strengths, smoothings
and guide weights, each followed by back-projection and the local clip (the ``depth``
preset's finish), and scores every variant against the truth beside the output as
stored. Items whose outputs were made before edge sharpening (``*-unsharpened``
entries) are first sharpened as the ``depth`` preset does (strength 0.5, then
back-projection and the clip), so every variant finishes what the preset's result was
before this step. The ``depth`` preset's choice was made on Middlebury 2005 x4 (the
first item); the others check it. Only outputs made without the partition may be
given (the ``*-unsharpened`` entries' are 0.11's), or it would run twice.

Usage: ``python benchmarks/block_partition.py [--items ENTRY[@FOLDER]:METHOD,...]
[--strengths 0.3,0.4,0.5] [--sigmas 1,1.5] [--guide-weights 0,0.2]
[--step-shares 0.6] [--step-radii 1,2]
[--output NAME]``. Items as in ``benchmarks/edge_sharpening.py``. Writes
``results/NAME.md`` (default ``block_partition``).
"""

from __future__ import annotations

import argparse
import itertools
import statistics

import numpy as np
import torch
from common import data_root, markdown_table, stored_outputs
from edge_sharpening import item_runs, outcome_cells, refit, write_report

from cmsr.evaluation.datasets import find_scenes
from cmsr.evaluation.metrics import rmse
from cmsr.method.block_partition import partition_blocks
from cmsr.method.config import PRESETS
from cmsr.method.edge_sharpening import sharpen_edges
from cmsr.method.normalize import array_to_tensor, fit_normalization

DEFAULT_ITEMS = ("middlebury2005-x4-unsharpened:cmsr,middlebury13-x4-unsharpened:cmsr,"
                 "middlebury13-x4-unsharpened:zssr")
Variant = tuple[float, float, float, float, int]
"""Strength, smoothing sigma, guide weight, step share, step radius."""


def unit_guide(guide: np.ndarray) -> torch.Tensor:
    """``(H, W[, C])`` guide -> ``(1, C, H, W)`` float32 in [0, 1], by the pipeline's own
    map (:func:`cmsr.method.normalize.fit_normalization`: its lowest and highest values)."""
    return fit_normalization(guide).to_unit(guide).float()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", default=DEFAULT_ITEMS)
    parser.add_argument("--strengths", default="0.4,0.5,0.6,1")
    parser.add_argument("--sigmas", default="0,1.5")
    parser.add_argument("--guide-weights", default="0,0.2")
    parser.add_argument("--step-shares", default="0.6,0.7,0.8")
    parser.add_argument("--step-radii", default="1,2")
    parser.add_argument("--output", default="block_partition")
    args = parser.parse_args()
    variants: list[Variant] = list(itertools.product(
        *(tuple(float(v) for v in text.split(","))
          for text in (args.strengths, args.sigmas, args.guide_weights, args.step_shares)),
        tuple(int(v) for v in args.step_radii.split(","))))
    iterations = PRESETS["depth"].back_projection_iters
    sections = []
    for item in args.items.split(","):
        label, method, protocol, runs, data = item_runs(item)
        presharpen = "unsharpened" in label
        names, stored, scores = [], [], {v: [] for v in variants}
        scenes = find_scenes(data_root() / data)
        for scene, pair, truth, output in stored_outputs(runs, scenes, method, protocol):
            low, estimate = array_to_tensor(pair.low), array_to_tensor(output)
            if presharpen:
                estimate = refit(sharpen_edges(estimate, strength=0.5), low, iterations)
            names.append(scene.name)
            stored.append(rmse(estimate[0, 0].double().numpy(), truth, mask=pair.mask))
            guide = unit_guide(pair.guide)
            for variant in variants:
                strength, sigma, weight, share, radius = variant
                result = refit(partition_blocks(estimate, low, guide=guide, strength=strength,
                                                sigma=sigma, guide_weight=weight,
                                                step_share=share, step_radius=radius),
                               low, iterations)
                scores[variant].append(
                    rmse(result[0, 0].double().numpy(), truth, mask=pair.mask))
        if not stored:
            raise SystemExit(f"{item}: no stored outputs in {runs}")
        base = statistics.fmean(stored)
        rows = [["as stored" + (", sharpened 0.5" if presharpen else ""), "–", "–", "–",
                 f"{base:.3f}", "–", "–"]]
        for (strength, sigma, weight, share, radius), values in scores.items():
            rows.append([f"{strength:g}", f"{sigma:g}", f"{weight:g}",
                         f"{share:g} of {(2 * radius + 1) ** 2}",
                         *outcome_cells(values, stored)])
        per_pair = ", ".join(f"{n} {s:.3f}" for n, s in zip(names, stored, strict=True))
        sections += [f"## {label} ({len(names)} pairs, {protocol.name})", "",
                     f"Before the partition, per pair: {per_pair}.", "",
                     markdown_table(["strength", "smoothing sigma (px)", "guide weight",
                                     "step test", "mean RMSE", "change", "better on"],
                                    rows), ""]
    write_report("Block partition on stored depth results", iterations, sections,
                 args.output)


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
