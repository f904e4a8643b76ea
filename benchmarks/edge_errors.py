"""Where the depth error is: how much of it sits on a few edge pixels, and what deciding
their side of the edge would be worth. Reads stored evaluation outputs; fits nothing.

For each pair and method (the outputs kept by ``benchmarks/eval_suite.py``, default
its Middlebury13 x4 entries for cmsr and ZSSR):

* RMSE, and the share of the squared error on the worst 1% of the pixels;
* of those pixels, the share whose value lies between the two sides of the edge
  (20-80% of the way from the 5x5 window's lowest to its highest output value): a
  blurred edge rather than a wrong depth;
* RMSE after putting each such in-between pixel (in any 5x5 window spanning more than
  1 unit) on one side, the value of the window's pixels near its low or its high end:

  - ``oracle``: the side the truth is on (what a perfect side decision gives);
  - ``nearer``: the side the output value is nearer (no guide);
  - ``guide``: the side whose pixels' guide colour is nearer the pixel's, when one is
    at most half as far as the other (else the pixel is left as it is).

Usage: ``python benchmarks/edge_errors.py [--entries middlebury13-x4:cmsr,...]``;
writes ``results/edge_errors.md``. The outputs live in each entry's ``runs/`` folder,
which is not in git: run the entries first (``eval_suite.py --only ENTRY``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from common import RESULTS, data_root, machine_line, markdown_table, stored_outputs

from cmsr.evaluation.datasets import find_scenes
from cmsr.evaluation.metrics import rmse
from cmsr.evaluation.protocols import EvalProtocol

PROTOCOL = EvalProtocol(kind="avgpool", scale=4)
RADIUS = 2  # 5x5 windows
CONFIDENT = 0.25  # a side's pixels: within this share of the window's range of its end
MID = (0.2, 0.8)  # in between: this far from the low end, as a share of the range
MIN_RANGE = 1.0  # windows spanning less (data units) are left alone
GUIDE_RATIO = 0.5  # the guide decides when one side is at most this share as far


def windows(image: torch.Tensor) -> torch.Tensor:
    """``(c, H, W)`` -> ``(c, 25, H, W)``: every pixel's 5x5 window, edges replicated."""
    size = 2 * RADIUS + 1
    padded = F.pad(image[None], (RADIUS,) * 4, mode="replicate")
    c, h, w = image.shape
    return F.unfold(padded, size).view(c, size * size, h, w)


def side_values(output: np.ndarray, guide: np.ndarray, truth: np.ndarray
                ) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """``output``, ``truth`` ``(H, W)`` float64, ``guide`` ``(H, W, C)`` in [0, 1]: the
    output with its in-between pixels put on a side by each rule (see the module), and
    each pixel's position across its window's range (0: the lowest value, 1: the
    highest)."""
    out = torch.from_numpy(output)[None]
    values = windows(out)[0]
    low, high = values.min(0).values, values.max(0).values
    span = (high - low).clamp(min=1e-9)
    position = (values - low) / span
    near_low, near_high = (position < CONFIDENT).double(), (position > 1 - CONFIDENT).double()
    value_low = (values * near_low).sum(0) / near_low.sum(0).clamp(min=1)
    value_high = (values * near_high).sum(0) / near_high.sum(0).clamp(min=1)
    own = (out[0] - low) / span
    between = (own > MID[0]) & (own < MID[1]) & (high - low > MIN_RANGE)

    colours = torch.from_numpy(guide).permute(2, 0, 1).double()
    around = windows(colours)
    colour_low = (around * near_low).sum(1) / near_low.sum(0).clamp(min=1)
    colour_high = (around * near_high).sum(1) / near_high.sum(0).clamp(min=1)
    far_low = ((colours - colour_low) ** 2).sum(0).sqrt()
    far_high = ((colours - colour_high) ** 2).sum(0).sqrt()

    true = torch.from_numpy(truth)
    rules = {"oracle": (true - value_low).abs() > (true - value_high).abs(),
             "nearer": (out[0] - value_low).abs() > (out[0] - value_high).abs()}
    result = {name: torch.where(between, torch.where(to_high, value_high, value_low),
                                out[0]).numpy() for name, to_high in rules.items()}
    to_low, to_high = far_low < GUIDE_RATIO * far_high, far_high < GUIDE_RATIO * far_low
    result["guide"] = torch.where(between & to_low, value_low, torch.where(
        between & to_high, value_high, out[0])).numpy()
    return result, own.numpy()


def pair_row(output: np.ndarray, truth: np.ndarray, guide: np.ndarray,
             mask: np.ndarray | None) -> list[float]:
    """RMSE, worst-1% share, in-between share of those, and the three snapped RMSEs."""
    error = (output - truth) ** 2
    valid = np.isfinite(truth) if mask is None else mask & np.isfinite(truth)
    scored = error[valid]
    worst = scored >= np.quantile(scored, 0.99)
    snapped, own = side_values(output, guide, truth)
    between = ((own > MID[0]) & (own < MID[1]))[valid][worst]
    return [rmse(output, truth, mask=mask), float(scored[worst].sum() / scored.sum()),
            float(between.mean()),
            *(rmse(snapped[name], truth, mask=mask) for name in ("oracle", "nearer", "guide"))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", default="middlebury13-x4:cmsr,middlebury13-x4-zssr:zssr",
                        help="comma-separated ENTRY:METHOD (eval_suite entries)")
    args = parser.parse_args()
    scenes = find_scenes(data_root() / "depth" / "middlebury13")
    header = ["method", "pair", "RMSE", "worst 1%: share of squared error",
              "worst 1%: in between", "RMSE, side by truth (oracle)",
              "RMSE, side by output value", "RMSE, side by guide colour"]
    rows: list[list[str]] = []
    for item in args.entries.split(","):
        entry, method = item.split(":")
        runs = RESULTS / "eval" / entry / "runs" / PROTOCOL.name
        table = []
        for scene, pair, truth, output in stored_outputs(runs, scenes, method, PROTOCOL):
            guide = pair.guide_at_truth_size().astype(np.float64) / 255.0
            values = pair_row(output, truth, guide, pair.mask)
            table.append(values)
            rows.append([method, scene.name, *(f"{v:.3f}" for v in values)])
        if not table:
            raise SystemExit(f"no stored {method} outputs in {runs}: run "
                             f"`eval_suite.py --only {entry}` first")
        rows.append([method, f"**mean of {len(table)}**",
                     *(f"{v:.3f}" for v in np.mean(table, axis=0))])
    text = "\n".join([
        "# Where the depth error is (Middlebury13 x4, avgpool protocol)", "",
        machine_line() + "; stored outputs of " + args.entries + ". In between: the "
        "output lies 20-80% of the way across its 5x5 window's range. The three last "
        "columns put every in-between pixel (window range > 1) on one side of its edge.",
        "", markdown_table(header, rows), ""])
    path = RESULTS / "edge_errors.md"
    path.write_text(text)
    print(text)
    print(f"wrote {Path(path)}")


if __name__ == "__main__":
    main()
