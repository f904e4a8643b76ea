"""What each preset costs on this machine: seconds and peak memory for one real pair each.

Pairs (from ``../shared/data`` or ``$CMSR_DATA``):
- depth: Middlebury13 ``01_1``, 80x80 -> 320x320 (x4, average pooling);
- nir: EPFL ``train_0003``, 256x170 -> 1024x680 (x4, MATLAB bicubic reduction);
- thermal: ``thermal/unaligned`` first scene, real 80x60 capture -> 640x480 (x8).

Each pair runs with ``--align none`` and ``--align full`` (the column ``default``
marks the preset's own: ``full`` for nir and thermal, ``none`` for depth since 0.9),
so the table also gives what the learned deformation (with its fits on the reduced
pair) adds to a whole run: fit and predict, the preset's steps.

Usage: ``python benchmarks/preset_costs.py [--presets depth,nir,thermal] [--defaults-only]
[--name preset_costs]``; writes ``benchmarks/results/<name>.md`` and ``.csv``.
``--defaults-only`` runs each preset with its own alignment alone (for a slow machine).
Run it on an otherwise idle machine: its timings are the point.
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import numpy as np
import torch
from common import data_root, machine_line, markdown_table, reduce_image, write_results

import cmsr
from cmsr.files import read_image


def first(folder: Path, pattern: str) -> Path:
    return sorted(folder.glob(pattern))[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", default="depth,nir,thermal",
                        help="comma-separated, of depth, nir, thermal")
    parser.add_argument("--defaults-only", action="store_true",
                        help="only each preset's own alignment")
    parser.add_argument("--name", default="preset_costs", help="results file name")
    args = parser.parse_args()
    chosen = args.presets.split(",")
    torch.set_num_threads(2)
    root = data_root()
    middlebury = root / "depth" / "middlebury13" / "01_1"
    epfl = root / "nir" / "epfl" / "train_0003"
    thermal = sorted(p for p in (root / "thermal" / "unaligned").iterdir() if p.is_dir())[0]
    cases = [
        ("depth", "middlebury13/01_1 x4",
         reduce_image(read_image(middlebury / "target_disparity.png"), 4, "box").astype(np.float32),
         read_image(middlebury / "guide_rgb.png")),
        ("nir", "epfl/train_0003 x4",
         reduce_image(read_image(epfl / "target_nir.png"), 4, "cubic").astype(np.float32),
         read_image(epfl / "guide_rgb.png")),
        ("thermal", f"unaligned/{thermal.name} x8 (real LR)",
         read_image(first(thermal, "target_*_lr*")), read_image(first(thermal, "guide_*"))),
    ]
    header = ["preset", "pair", "input -> output", "align", "default",
              "train steps (+ alignment)",
              "seconds", "time added by the alignment", "peak RSS GB"]
    rows = []
    for preset, name, target, guide in [case for case in cases if case[0] in chosen]:
        seconds: dict[str, float] = {}
        aligns = (cmsr.PRESETS[preset].align,) if args.defaults_only else ("none", "full")
        for align in aligns:
            start = time.perf_counter()
            model = cmsr.CMSR(cmsr.Config.preset(preset, align=align)).fit(target, guide)
            result = model.predict()
            seconds[align] = time.perf_counter() - start
            steps = model.training_steps
            levels = sum(level[-1].step for level in model.alignment_records)
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
            added = (f"{100 * (seconds['full'] / seconds['none'] - 1):+.0f}%"
                     if align == "full" and "none" in seconds else "")
            rows.append([preset, name, f"{target.shape[1]}x{target.shape[0]} -> "
                         f"{result.shape[1]}x{result.shape[0]}", align,
                         "yes" if cmsr.PRESETS[preset].align == align else "",
                         f"{steps} (+ {levels})" if levels else str(steps),
                         f"{seconds[align]:.1f}", added, f"{peak:.2f}"])
            print(" | ".join(rows[-1]), flush=True)
    markdown = "\n".join([
        "# Cost of each preset on one real pair", "", f"{machine_line()}.",
        "Peak RSS is the process's running maximum (so it never decreases down the table).",
        "", markdown_table(header, rows)])
    print()
    print(markdown)
    write_results(args.name, markdown, header, rows)


if __name__ == "__main__":
    main()
