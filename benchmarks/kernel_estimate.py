"""Can the degradation kernel be told from the low-resolution target alone?

Issue 11 asks for ``--kernel estimate``. Whether a target was reduced with
antialiasing (``cubic``, ``box``) or by interpolation at the low-resolution pixel
centres (``cubic-aliased``, as ``cv2.resize`` does and as the "real" captures of
``thermal/unaligned`` were made, see ``guide_diagnostic.py`` part 2) decides what cmsr
should assume, and a wrong guess costs up to 4.6 dB on those captures.

The statistic tried here is the sharpness of the image's strongest edges: along rows
and columns, at the edges whose range over 5 pixels is in the image's top 3% (one
difference per edge, where it peaks), the largest step between neighbours as a share
of the edge's range, medianed. Point sampling leaves a step edge jumping within one
pixel (near 1); an antialiased reduction spreads it over two or three (about 0.6).

Prints, and writes to ``results/kernel_estimate.md``:

* the statistic of every ground truth of the shared sets (up to 12 per set) reduced
  x4 and x8 by each candidate: its spread per kernel, and the share of images a
  threshold would call aliased;
* the statistic of the real captures of ``thermal/unaligned`` (all reduced without
  antialiasing).

Usage: ``python benchmarks/kernel_estimate.py [--threshold 0.8]`` (a few seconds).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from common import RESULTS, data_root, machine_line, markdown_table
from guide_diagnostic import grey

from cmsr.evaluation.datasets import find_scenes
from cmsr.files import read_image
from cmsr.method.resample import downsample

SETS = ("depth/middlebury13", "depth/middlebury2005", "nir/epfl", "thermal/roadscene",
        "thermal/llvip", "multispectral/cave", "thermal/unaligned")
KERNELS = ("cubic-aliased", "box", "cubic")


def edge_step_share(image: np.ndarray, *, top: float = 0.03, span: int = 5) -> float:
    """Median share of an edge's range crossed in one pixel, at the strongest edges.

    ``image``: ``(h, w)`` float. Along rows, then columns: the range of each window of
    ``span`` pixels around a neighbour difference; at the differences that peak along
    their line and whose window range is in the top ``top`` share, the difference
    divided by the range. Returns the median over both directions, in [0, 1].

    Examples
    --------
    >>> step = np.repeat(np.r_[np.zeros(8), np.ones(8)][None], 16, axis=0)
    >>> edge_step_share(step)
    1.0
    """
    shares = []
    for lines in (image, image.T):
        steps = np.abs(np.diff(lines, axis=1))  # (h, w - 1)
        width = lines.shape[1]
        index = np.arange(steps.shape[1])
        window = np.stack([lines[:, np.clip(index + k, 0, width - 1)]
                           for k in range(1 - span // 2, span // 2 + 1)])
        ranges = window.max(axis=0) - window.min(axis=0)
        padded = np.pad(steps, ((0, 0), (1, 1)))
        peaks = (steps >= padded[:, :-2]) & (steps >= padded[:, 2:])
        strong = peaks & (ranges >= np.quantile(ranges, 1 - top)) & (ranges > 0)
        shares.append(steps[strong] / ranges[strong])
    return float(np.median(np.concatenate(shares)))


def synthetic_values() -> dict[str, list[float]]:
    """Per kernel: the statistic of every truth of :data:`SETS` reduced x4 and x8 (low
    resolution at least 40 pixels high)."""
    values: dict[str, list[float]] = {kernel: [] for kernel in KERNELS}
    for name in SETS:
        for scene in find_scenes(data_root() / name)[:12]:
            truth = grey(read_image(scene.target))
            for scale in (4, 8):
                height, width = (side - side % scale for side in truth.shape)
                if height // scale < 40:
                    continue
                tensor = torch.from_numpy(truth[:height, :width])[None, None]
                for kernel in KERNELS:
                    low = downsample(tensor, (height // scale, width // scale), kernel=kernel)
                    values[kernel].append(edge_step_share(low[0, 0].numpy()))
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threshold", type=float, default=0.8,
                        help="call an image aliased when its statistic is at least this")
    args = parser.parse_args()
    threshold = args.threshold
    values = synthetic_values()
    rows = []
    for kernel, found in values.items():
        low, q05, median, q95, high = np.quantile(found, [0, 0.05, 0.5, 0.95, 1])
        called = sum(v >= threshold for v in found)
        rows.append([kernel, str(len(found)), f"{low:.2f}", f"{q05:.2f}", f"{median:.2f}",
                     f"{q95:.2f}", f"{high:.2f}", f"{called}/{len(found)}"])
    synthetic = markdown_table(["reduced by", "images", "min", "5%", "median", "95%", "max",
                                f"called aliased (>= {threshold:g})"], rows)
    real = {scene.name: edge_step_share(grey(read_image(scene.target_lr)))
            for scene in find_scenes(data_root() / "thermal/unaligned")
            if scene.target_lr is not None}
    real_rows = [[name, f"{value:.2f}", "aliased" if value >= threshold else "antialiased"]
                 for name, value in real.items()]
    called = sum(value >= threshold for value in real.values())
    real_table = markdown_table(["capture (cubic, no antialiasing)", "statistic", "called"],
                                real_rows)
    text = (f"# Telling the kernel from the target alone\n\n{machine_line()}\n\n"
            "## Truths of the shared sets reduced x4 and x8\n\n" + synthetic +
            "\n\n## Real captures of thermal/unaligned\n\n" + real_table +
            f"\n\nThreshold {threshold:g}: {called} of {len(real_rows)} real captures "
            "called aliased (all are).\n")
    (RESULTS / "kernel_estimate.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
