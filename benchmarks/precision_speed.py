"""What a training step costs in float32 and under bfloat16 autocast on this machine,
and which of the two ``--precision auto`` picks here.

The built-in demo pair (256x192 from 64x48, x4, two x2 stages), the ``thermal`` and
``depth`` presets' networks, each stage trained for ``--steps`` steps after a warm-up
run; the table gives the median over ``--reps`` repetitions of wall and process CPU
milliseconds per step. Where the CPU has no native bfloat16 (oneDNN emulates it), the
autocast costs many times float32's, which is why ``auto`` takes float32 there.

Usage: ``python benchmarks/precision_speed.py [--threads 2] [--steps 20] [--reps 3]``;
writes ``benchmarks/results/precision_speed.md`` and ``.csv``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from common import machine_line, markdown_table, write_results

import cmsr
from cmsr.demo import make_demo_pair
from cmsr.method import train as training
from cmsr.method.api import CMSR, prepare_pair
from cmsr.method.precision import bfloat16_is_native, describe_precision

PRECISIONS = ("float32", "bfloat16")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--presets", default="thermal,depth")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    cpu = torch.device("cpu")
    demo = make_demo_pair()
    pair = prepare_pair(demo.target_lr, demo.guide, scale=None, mask=None, invalid_value=None,
                        device=cpu)
    low = tuple(pair.target.shape[-2:])
    stages = [(low, (2 * low[0], 2 * low[1])),
              ((2 * low[0], 2 * low[1]), (4 * low[0], 4 * low[1]))]

    def run(preset: str, precision: str, stage: int, steps: int, seed: int
            ) -> tuple[float, float]:
        source, output = stages[stage]
        config = cmsr.Config.preset(preset, max_iters=steps, min_iters=steps,
                                    precision=precision, align="none")
        model = CMSR(config)
        target = pair.target if stage == 0 else torch.nn.functional.interpolate(
            pair.target, size=source, mode="bilinear")
        guide = CMSR._stage_guide(pair.guide, output)
        wall, process = time.perf_counter(), time.process_time()
        training.train(model._new_network(pair.target.shape[1], pair.guide.shape[1], stage),
                       target, guide, scale=(2.0, 2.0), config=config,
                       generator=torch.Generator().manual_seed(seed))
        return (time.perf_counter() - wall) / steps, (time.process_time() - process) / steps

    presets = args.presets.split(",")
    for preset in presets:  # first-call costs (allocator, oneDNN kernels)
        for precision in PRECISIONS:
            run(preset, precision, 0, 2, 0)
    times: dict[tuple[str, str, int], list[tuple[float, float]]] = {}
    for rep in range(args.reps):
        for preset in presets:
            for stage in range(len(stages)):
                for precision in PRECISIONS:
                    key = (preset, precision, stage)
                    times.setdefault(key, []).append(run(preset, precision, stage,
                                                         args.steps, rep))
                    print(key, times[key][-1], flush=True)

    header = ["preset", "stage output", "float32 wall ms", "bfloat16 wall ms",
              "bfloat16 / float32", "float32 CPU ms", "bfloat16 CPU ms"]
    rows = []
    for preset in presets:
        for stage, (_, output) in enumerate(stages):
            f32, bf16 = ([1000 * statistics.median(t[i] for t in times[(preset, p, stage)])
                          for i in (0, 1)] for p in PRECISIONS)
            rows.append([preset, f"{output[1]}x{output[0]}", f"{f32[0]:.0f}", f"{bf16[0]:.0f}",
                         f"{bf16[0] / f32[0]:.2f}", f"{f32[1]:.0f}", f"{bf16[1]:.0f}"])
    native = bfloat16_is_native(cpu)
    markdown = "\n".join([
        "# A training step in float32 and under bfloat16 autocast", "",
        f"{machine_line()}; CPU capability {torch.backends.cpu.get_cpu_capability()}, "
        f"native bfloat16: {'yes' if native else 'no'}, so `--precision auto` is "
        f"{describe_precision('auto', cpu)}; the demo pair, median of {args.reps} runs of "
        f"{args.steps} steps per stage.", "",
        markdown_table(header, rows)])
    print()
    print(markdown)
    write_results("precision_speed", markdown, header, rows)


if __name__ == "__main__":
    main()
