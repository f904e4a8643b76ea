"""What the learnable alignment costs per training step: ``--align none`` vs ``full``.

Pair: ``thermal/unaligned/cats_OUTDOOR_CARS_scene2`` (80x60 -> 640x480, x8), preset
thermal, whose gradual SR trains three stages (outputs 160x120, 320x240, 640x480).
Each stage is trained for ``--steps`` steps with every warp layer on from the first
step (the worst case), after a warm-up run; the table gives the median over
``--reps`` repetitions of wall and process CPU seconds per step (CPU time is less
disturbed by other jobs on a shared machine). To measure another checkout (e.g. the
code before a change) put its ``src`` first on ``PYTHONPATH`` and give ``--label``
and ``--name``.

Usage: ``python benchmarks/warp_cost.py [--threads 2] [--steps 40] [--reps 3]``;
writes ``benchmarks/results/warp_cost.md`` (``--name``).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from common import data_root, machine_line, markdown_table, write_results

import cmsr
from cmsr.files import read_image
from cmsr.method import train as training
from cmsr.method.api import CMSR, prepare_pair

STAGES = [((60, 80), (120, 160)), ((120, 160), (240, 320)), ((240, 320), (480, 640))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--label", default="this checkout", help="what was measured")
    parser.add_argument("--name", default="warp_cost", help="results file name")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    folder = data_root() / "thermal" / "unaligned" / "cats_OUTDOOR_CARS_scene2"
    pair = prepare_pair(read_image(folder / "target_thermal_lr80x60.png"),
                        read_image(folder / "guide_rgb.png"), scale=None, mask=None,
                        invalid_value=None, device=torch.device("cpu"))

    def run(align: str, stage: int, steps: int, seed: int) -> tuple[float, float]:
        low, high = STAGES[stage]
        config = cmsr.Config.preset("thermal", max_iters=steps, min_iters=steps, align=align,
                                    warp_release=(0.0, 0.0))
        model = CMSR(config)
        target = pair.target if low == (60, 80) else torch.nn.functional.interpolate(
            pair.target, size=low, mode="bilinear")
        guide = CMSR._stage_guide(pair.guide, high)
        wall, cpu = time.perf_counter(), time.process_time()
        training.train(model._new_network(1, 3, stage), target, guide, scale=(2.0, 2.0),
                       config=config, generator=torch.Generator().manual_seed(seed),
                       warp=model._new_warp())
        return (time.perf_counter() - wall) / steps, (time.process_time() - cpu) / steps

    for align in ("none", "full"):  # first-call costs (allocator, oneDNN, CPAB basis)
        run(align, 0, 5, 0)
    times: dict[tuple[str, int], list[tuple[float, float]]] = {}
    for rep in range(args.reps):
        for stage in range(len(STAGES)):
            for align in ("none", "full"):
                times.setdefault((align, stage), []).append(run(align, stage, args.steps, rep))
                print(align, stage, times[(align, stage)][-1], flush=True)

    header = ["stage output", "none wall ms", "full wall ms", "+wall", "none CPU ms",
              "full CPU ms", "+CPU"]
    rows = []
    for stage, (_, high) in enumerate(STAGES):
        none = [1000 * statistics.median(t[i] for t in times[("none", stage)]) for i in (0, 1)]
        full = [1000 * statistics.median(t[i] for t in times[("full", stage)]) for i in (0, 1)]
        rows.append([f"{high[1]}x{high[0]}", f"{none[0]:.1f}", f"{full[0]:.1f}",
                     f"{100 * (full[0] / none[0] - 1):+.0f}%", f"{none[1]:.1f}",
                     f"{full[1]:.1f}", f"{100 * (full[1] / none[1] - 1):+.0f}%"])
    markdown = "\n".join([
        "# Cost of the learnable alignment per training step", "",
        f"{machine_line()}; {args.label}; median of {args.reps} "
        f"runs of {args.steps} steps per stage, every warp layer on.", "",
        markdown_table(header, rows)])
    print()
    print(markdown)
    write_results(args.name, markdown, header, rows)


if __name__ == "__main__":
    main()
