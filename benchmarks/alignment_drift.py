"""How far the learned alignment moves a guide that is already aligned.

Middlebury13's guides lie exactly on their depth maps, so any displacement the learned
warp ends with is drift. For each pair and each setting, cmsr is fitted with the
``depth`` preset (``--align full``) and the warp's displacement at the output's pixels
is measured (``GuideWarp.grid`` minus the identity, in output pixels): its mean
vector and the mean and largest length. Settings: each ``align_levels`` value
given to ``--levels`` (the preset's 2: fits on the pair reduced by 4 and 2 before the
first stage).

Usage: ``python benchmarks/alignment_drift.py [--scenes 02_4,026] [--iters 500]
[--levels 0,1,2]``; writes ``results/alignment_drift.md``. ``--iters`` caps the steps
per stage (the coarse fits run their full ``align_level_iters`` whatever it is).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from common import RESULTS, data_root, machine_line, markdown_table

from cmsr import CMSR, Config
from cmsr.evaluation.datasets import find_scenes, select_scenes
from cmsr.evaluation.evaluate import load_pair
from cmsr.evaluation.protocols import EvalProtocol
from cmsr.method.warp.grid import identity_grid

PROTOCOL = EvalProtocol(kind="avgpool", scale=4)


def warp_displacement(model: CMSR, height: int, width: int) -> np.ndarray:
    """``(H, W, 2)`` float64 displacement ``(dx, dy)`` in output pixels of the fitted
    model's warp (where each output pixel samples the guide, less its own position)."""
    assert model.warp is not None
    with torch.no_grad():
        moved = model.warp.grid(height, width) - identity_grid(height, width)
    moved = moved[0].double().numpy()
    return moved * np.array([width / 2.0, height / 2.0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scenes", default="01_1,026,02_4,03_9")
    parser.add_argument("--iters", type=int, default=500)
    parser.add_argument("--levels", default="0,2", help="align_levels values to fit with")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    scenes = select_scenes(find_scenes(data_root() / "depth" / "middlebury13"), args.scenes)
    rows = []
    for levels in (int(v) for v in args.levels.split(",")):
        for scene in scenes:
            pair = load_pair(scene, PROTOCOL)
            config = Config.preset("depth", seed=0, threads=args.threads, align="full",
                                   max_iters=args.iters, align_levels=levels)
            start = time.perf_counter()
            model = CMSR(config).fit(pair.low, pair.guide_at_truth_size())
            seconds = time.perf_counter() - start
            height, width = pair.truth.shape[:2]
            moved = warp_displacement(model, height, width)
            length = np.hypot(moved[..., 0], moved[..., 1])
            row = [str(levels), scene.name, f"{moved[..., 0].mean():+.2f}",
                   f"{moved[..., 1].mean():+.2f}", f"{length.mean():.2f}",
                   f"{length.max():.2f}", f"{seconds:.0f}"]
            print(" ".join(row), flush=True)
            rows.append(row)
    header = ["align_levels", "pair", "mean dx (px)", "mean dy (px)", "mean length (px)",
              "largest length (px)", "fit s"]
    text = "\n".join([
        "# Drift of the learned alignment on aligned pairs (Middlebury13 x4)", "",
        f"{machine_line()}; `depth` preset with `--align full`, seed 0, at most "
        f"{args.iters} steps per stage. The guides are aligned: every pixel of "
        "displacement is drift.",
        "", markdown_table(header, rows), ""])
    (RESULTS / "alignment_drift.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
