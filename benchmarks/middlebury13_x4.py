"""Middlebury13 at x4 under the MMSR protocol: bicubic and cmsr, side by side.

Protocol (``../shared/data/README.md``): the low-resolution input is the 8-bit
disparity average-pooled 4x4 (320 -> 80); the result is compared with the target on
the full 320x320 image, RMSE in 0-255 units, no border crop.

Usage: ``python benchmarks/middlebury13_x4.py [--preset depth] [--pairs 01_1,026]``.
Prints a table and writes ``benchmarks/results/middlebury13_x4.{md,csv}``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from common import data_root, machine_line, markdown_table, reduce_image, write_results

import cmsr
from cmsr.io import read_image
from cmsr.metrics import rmse
from cmsr.resample import upsample_bicubic

SCALE = 4
MMSR_MEAN = 1.71  # MMSR's own notebook on these 13 pairs (shared/data/README.md)


def bicubic(low: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """MATLAB-style bicubic enlargement of ``(h, w)`` float to ``size``."""
    tensor = torch.from_numpy(low)[None, None]
    return upsample_bicubic(tensor, size)[0, 0].numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="depth")
    parser.add_argument("--pairs", default=None, help="comma-separated scene names")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(2)
    folder = data_root() / "depth" / "middlebury13"
    scenes = sorted(p.name for p in folder.iterdir() if p.is_dir())
    if args.pairs:
        scenes = [s for s in scenes if s in args.pairs.split(",")]
    config = cmsr.Config.preset(args.preset, seed=args.seed)
    header = ["pair", "bicubic RMSE", "cmsr RMSE", "cmsr s/pair", "training steps"]
    rows: list[list[str]] = []
    bic_scores, cmsr_scores, seconds = [], [], []
    for scene in scenes:
        truth = read_image(folder / scene / "target_disparity.png")
        guide = read_image(folder / scene / "guide_rgb.png")
        low = reduce_image(truth, SCALE, "box")
        bic = rmse(bicubic(low, truth.shape), truth)
        start = time.perf_counter()
        model = cmsr.CMSR(config).fit(low.astype(np.float32), guide)
        result = model.predict()
        elapsed = time.perf_counter() - start
        ours = rmse(result, truth)
        bic_scores.append(bic)
        cmsr_scores.append(ours)
        seconds.append(elapsed)
        rows.append([scene, f"{bic:.3f}", f"{ours:.3f}", f"{elapsed:.1f}",
                     str(sum(stage[-1].step for stage in model.records if stage))])
        print(" | ".join(rows[-1]), flush=True)
    better = sum(o < b for o, b in zip(cmsr_scores, bic_scores, strict=True))
    rows.append(["**mean**", f"{np.mean(bic_scores):.3f}", f"{np.mean(cmsr_scores):.3f}",
                 f"median {statistics.median(seconds):.1f}", ""])
    markdown = "\n".join([
        f"# Middlebury13 x{SCALE}, MMSR protocol (average pooling), RMSE in 0-255 units",
        "",
        f"Preset `{args.preset}`, seed {args.seed}; {machine_line()}.",
        f"cmsr better than bicubic on {better} of {len(scenes)} pairs. "
        f"Reference: MMSR's own notebook, mean {MMSR_MEAN} (RTX 3090, ~137 s/pair).",
        "",
        markdown_table(header, rows),
    ])
    print()
    print(markdown)
    name = f"middlebury13_x{SCALE}" if args.pairs is None else f"middlebury13_x{SCALE}_subset"
    write_results(name, markdown, header, rows)


if __name__ == "__main__":
    main()
