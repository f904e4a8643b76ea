"""Training variants on depth, scored as ``cmsr eval`` scores them (Middlebury13 x4).

Each pair is fitted once per variant exactly as ``cmsr eval --preset depth --seed S
--threads 1`` fits it (the same pair, guide and config: the ``l1`` variant reproduces
the eval's stored results), then finished two ways, the median over the 8 flips and
quarter turns (the preset) and their mean, and scored (RMSE in the data's units, on
the full image: the MMSR protocol). Variants:

* ``l1``: the preset (the paper's L1 loss);
* ``l2``: the training loss is the mean squared error, which the RMSE metric rewards
  (L1 favours the median, i.e. a sharp guess on either side of an uncertain edge);
  a replacement of :func:`cmsr.method.train.run_step` made here for the experiment,
  not a setting of cmsr;
* any of these with ``--set NAME=VALUE`` config overrides (e.g. ``fe2_channels=32``,
  ``seed=1``) and ``--name`` to tell them apart.

Each fit appends one JSON line to ``results/training_variants.jsonl`` (scene, variant,
seconds, the self-check's choice, the learning rates each stage ran at, the two
RMSEs) and keeps its outputs under ``results/training_variants/`` (not committed).
``--average NAME NAME`` scores, per pair both fitted, the mean of the two variants'
outputs (an ensemble of two fits, e.g. two seeds) instead of fitting.

Usage: ``python benchmarks/training_variants.py --variant l2 --scenes 026,03_9``;
``python benchmarks/training_variants.py --average l1 l1-seed1 --scenes 026``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from common import RESULTS, add_config_overrides, config_overrides, data_root

import cmsr.method.infer as infer
import cmsr.method.train as train
from cmsr import CMSR, Config
from cmsr.evaluation.datasets import Scene, find_scenes, select_scenes
from cmsr.evaluation.evaluate import load_pair, score_run
from cmsr.evaluation.protocols import EvalProtocol, EvaluationPair
from cmsr.method.precision import autocast
from cmsr.method.train import TrainRecord

PROTOCOL = EvalProtocol(kind="avgpool", scale=4)
LOG = RESULTS / "training_variants.jsonl"
OUTPUTS = RESULTS / "training_variants"


def squared_error_step(net: torch.nn.Module, batch: train.PatchBatch, precision: str,
                       guide_weight: torch.Tensor | None = None, *, use_guide: bool = True
                       ) -> torch.Tensor:
    """:func:`cmsr.method.train.run_step` with the mean squared error over valid pixels."""
    device = batch.target_up.device
    guide = batch.guide.contiguous(memory_format=torch.channels_last) if use_guide else None
    with autocast(device, precision):
        prediction = net(batch.target_up.contiguous(memory_format=torch.channels_last),
                         guide, guide_weight)
    error = (prediction.float() - batch.supervision) ** 2 * batch.valid
    return error.sum() / (batch.valid.sum() * prediction.shape[1]).clamp(min=1.0)


def mean_ensemble(net: torch.nn.Module, target_up: torch.Tensor, guide: torch.Tensor | None,
                  *, tile_size: int, guide_weight: float = 1.0) -> torch.Tensor:
    """:func:`cmsr.method.infer.self_ensemble` with the mean instead of the median."""
    outputs = [infer.dihedral_inverse(infer.run_network(
        net, infer.dihedral(target_up, k), None if guide is None else infer.dihedral(guide, k),
        tile_size=tile_size, guide_weight=guide_weight), k) for k in range(8)]
    return torch.stack(outputs).mean(dim=0)


def rate_changes(records: list[TrainRecord]) -> list[tuple[int, float | str]]:
    """``(step, learning rate)`` where the rate changed, and ``(last step, "end")``."""
    changes: list[tuple[int, float | str]] = []
    for record in records:
        if not changes or record.learning_rate != changes[-1][1]:
            changes.append((record.step, record.learning_rate))
    return [*changes, (records[-1].step, "end")] if records else []


def output_file(variant: str, scene: str) -> Path:
    return OUTPUTS / variant / f"{scene}.npy"


def fit_variant(scene: Scene, pair: EvaluationPair, variant: str, name: str,
                config: Config) -> dict[str, object]:
    """Fit one pair with ``variant`` and score both finishes; the JSON line's fields."""
    median_ensemble = infer.self_ensemble
    preset_step = train.run_step
    if variant == "l2":
        train.run_step = squared_error_step  # type: ignore[assignment]
    try:
        start = time.perf_counter()
        model = CMSR(config)
        model.fit(pair.low, pair.guide_at_truth_size())
        row: dict[str, object] = {
            "scene": scene.name, "variant": name, "fit_s": round(time.perf_counter() - start, 1),
            "choice": None if model.self_check is None else model.self_check.choice,
            "rates": [rate_changes(r) for r in model.records]
            + [rate_changes(model.guide_free_records)]}
        for finish, ensemble in (("median", median_ensemble), ("mean", mean_ensemble)):
            infer.self_ensemble = ensemble  # type: ignore[assignment]
            output = np.asarray(model.predict(), dtype=np.float32)
            row[finish] = round(score_run(output, pair, 0)["rmse"], 4)
            if finish == "median":
                output_file(name, scene.name).parent.mkdir(parents=True, exist_ok=True)
                np.save(output_file(name, scene.name), output)
    finally:
        infer.self_ensemble = median_ensemble  # type: ignore[assignment]
        train.run_step = preset_step  # type: ignore[assignment]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--variant", choices=["l1", "l2"], default="l1")
    parser.add_argument("--name", help="the variant's name in the log (default: --variant)")
    parser.add_argument("--scenes", default="026,03_9,05,11_1,64,235")
    parser.add_argument("--average", nargs=2, metavar="NAME",
                        help="score the mean of two logged variants' outputs instead")
    add_config_overrides(parser)
    args = parser.parse_args()
    scenes = select_scenes(find_scenes(data_root() / "depth" / "middlebury13"), args.scenes)
    torch.set_num_threads(1)
    config = Config.preset("depth", seed=0, threads=1, **config_overrides(args.set))
    name = args.name or args.variant
    for scene in scenes:
        pair = load_pair(scene, PROTOCOL)
        if args.average:
            first, second = (np.load(output_file(v, scene.name)) for v in args.average)
            rmse = [score_run(o, pair, 0)["rmse"] for o in (first, second, (first + second) / 2)]
            print(f"{scene.name}: {args.average[0]} {rmse[0]:.4f}, {args.average[1]} "
                  f"{rmse[1]:.4f}, their mean {rmse[2]:.4f}", flush=True)
            continue
        row = fit_variant(scene, pair, args.variant, name, config)
        print(json.dumps(row), flush=True)
        with LOG.open("a") as log:
            log.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
