"""How far the learned alignment moves a guide, against where it should be, and what
the alignment check (:mod:`cmsr.method.alignment_check`) makes of it.

For each pair, condition and setting, cmsr is fitted with the set's preset and
``--align full``, and the warp's displacement at the output's pixels is measured
(``GuideWarp.grid`` minus the identity, in output pixels). Conditions: ``aligned``
(the guide as given: Middlebury13's, EPFL's and RoadScene's guides lie on their
targets, so every pixel of displacement is drift) and ``global`` (the guide moved by a
6 px shift and a 2 degree rotation, as ``benchmarks/misalignment.py`` does, seed 0);
``thermal-unaligned``'s real captures have no known alignment, so only the check is
reported there. The error is the length of the warp's displacement less the one that
undoes the move (for ``aligned``: the displacement itself), mean and largest, beside
the error of the identity. Also reported: the check's unexplained shares with the guide
as given and as warped, and whether it kept the warp. Settings: ``--levels``
(``align_levels``; the presets' 2: fits on the pair reduced by 4 and 2 before the first
stage) and ``--margins`` (``align_check_margin``; negative: no check).

Usage: ``python benchmarks/alignment_drift.py [--sets middlebury13,epfl] [--iters 40]
[--levels 2] [--margins -1,0.05]``; writes ``results/alignment_drift.md``. ``--iters``
caps the steps per stage (the coarse fits run their full ``align_level_iters``
whatever it is; ``--iters 1`` measures them alone). The stored table:
``--sets middlebury13,epfl,roadscene,thermal-unaligned --iters 1``.
"""

from __future__ import annotations

import argparse
import itertools
import time

import numpy as np
import torch
from common import RESULTS, data_root, machine_line, markdown_table

from cmsr import CMSR, Config
from cmsr.evaluation.datasets import find_scenes, select_scenes
from cmsr.evaluation.displacement import displace, displacement_field
from cmsr.evaluation.evaluate import load_pair
from cmsr.evaluation.protocols import EvalProtocol
from cmsr.method.warp.grid import identity_grid

SETS: dict[str, tuple[str, EvalProtocol, str, str | None, dict]] = {
    # name: (folder, protocol, preset, default scenes (None: all), config overrides)
    "middlebury13": ("depth/middlebury13", EvalProtocol(kind="avgpool", scale=4), "depth",
                     "01_1,026,02_4,03_9", {}),
    "epfl": ("nir/epfl", EvalProtocol(kind="bicubic", scale=4), "nir",
             "train_0003,train_0005", {}),
    "roadscene": ("thermal/roadscene", EvalProtocol(kind="bicubic", scale=4), "thermal",
                  "FLIR_00006,FLIR_00018", {}),
    # real captures from separate cameras: the true alignment is unknown (no errors)
    "thermal-unaligned": ("thermal/unaligned", EvalProtocol(kind="real", scale=8), "thermal",
                          None, {"degradation": "cubic-aliased"}),
}
CONDITIONS = {"aligned": {}, "global": {"shift": 6.0, "rotation": 2.0}}


def warp_displacement(model: CMSR, height: int, width: int) -> np.ndarray:
    """``(H, W, 2)`` float64 displacement ``(dx, dy)`` in output pixels of the fitted
    model's warp (where each output pixel samples the guide, less its own position)."""
    if model.warp is None:
        return np.zeros((height, width, 2))
    with torch.no_grad():
        moved = model.warp.grid(height, width) - identity_grid(height, width)
    moved = moved[0].double().numpy()
    return moved * np.array([width / 2.0, height / 2.0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sets", default="middlebury13")
    parser.add_argument("--scenes", default=None, help="default: each set's own")
    parser.add_argument("--conditions", default="aligned,global")
    parser.add_argument("--iters", type=int, default=40)
    parser.add_argument("--levels", default="2", help="align_levels values to fit with")
    parser.add_argument("--margins", default="-1,0.05",
                        help="align_check_margin values (negative: no check)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output", default=str(RESULTS / "alignment_drift.md"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    settings = list(itertools.product((int(v) for v in args.levels.split(",")),
                                      (float(v) for v in args.margins.split(","))))
    for set_name in args.sets.split(","):
        folder, protocol, preset, default_scenes, overrides = SETS[set_name]
        known = protocol.kind != "real"
        scenes = find_scenes(data_root() / folder)
        if args.scenes or default_scenes:
            scenes = select_scenes(scenes, args.scenes or default_scenes)
        for scene in scenes:
            pair = load_pair(scene, protocol)
            guide = pair.guide_at_truth_size()
            height, width = guide.shape[:2]
            for condition in args.conditions.split(",") if known else ["as captured"]:
                move = CONDITIONS.get(condition, {})
                moved_guide = displace(guide, seed=0, **move) if move else guide
                field = (displacement_field(height, width, seed=0, local_warp=0.0, **move)
                         if move else np.zeros((height, width, 2)))
                before = np.hypot(field[..., 0], field[..., 1])
                for levels, margin in settings:
                    config = Config.preset(preset, seed=0, threads=args.threads,
                                           align="full", max_iters=args.iters,
                                           align_levels=levels,
                                           align_check_margin=margin, **overrides)
                    start = time.perf_counter()
                    model = CMSR(config).fit(pair.low, moved_guide)
                    seconds = time.perf_counter() - start
                    error = warp_displacement(model, height, width) + field
                    length = np.hypot(error[..., 0], error[..., 1])
                    check = model.alignment_check
                    row = [set_name, scene.name, condition, str(levels),
                           "off" if margin < 0 else f"{margin:g}",
                           *([f"{before.mean():.2f}", f"{length.mean():.2f}",
                              f"{length.max():.2f}"] if known else ["-"] * 3),
                           "-" if check is None else f"{check.identity:.3f}",
                           "-" if check is None else f"{check.warped:.3f}",
                           "-" if check is None else ("kept" if check.kept else "dropped"),
                           f"{seconds:.0f}"]
                    print(" ".join(row), flush=True)
                    rows.append(row)
    header = ["set", "pair", "guide", "align_levels", "check margin",
              "identity error (px)", "warp error, mean (px)", "warp error, largest (px)",
              "unexplained, as given", "unexplained, warped", "check", "fit s"]
    text = "\n".join([
        "# The learned alignment against where it should be, with and without the "
        "alignment check (x4; the real thermal captures x8)", "",
        f"{machine_line()}; each set's preset with `--align full`, seed 0, at most "
        f"{args.iters} steps per stage. Errors in output pixels: the warp's displacement "
        "less the one that undoes the guide's move (for aligned guides, the displacement "
        "itself: drift).", "", markdown_table(header, rows), ""])
    with open(args.output, "w") as handle:
        handle.write(text)
    print(text)


if __name__ == "__main__":
    main()
