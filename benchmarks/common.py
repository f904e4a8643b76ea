"""Shared pieces of the benchmark scripts: where the data is, and writing tables.

The real test data lives outside the repository, in ``../shared/data`` beside the
project root, or wherever ``$CMSR_DATA`` points. It is read from there, never copied.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from cmsr.evaluation.datasets import Scene
from cmsr.evaluation.evaluate import load_pair
from cmsr.evaluation.protocols import EvalProtocol, EvaluationPair
from cmsr.evaluation.report import markdown_table
from cmsr.method.resample import Kernel, downsample

ROOT = Path(__file__).resolve().parent.parent
__all__ = ["RESULTS", "ROOT", "add_config_overrides", "config_overrides", "data_root",
           "machine_line", "markdown_table", "reduce_image", "stored_outputs",
           "write_results"]
RESULTS = ROOT / "benchmarks" / "results"


def data_root() -> Path:
    """The shared data folder: ``$CMSR_DATA`` or ``<project>/../shared/data``."""
    path = Path(os.environ.get("CMSR_DATA", ROOT.parent / "shared" / "data"))
    if not path.is_dir():
        raise SystemExit(f"benchmark data not found at {path}; set CMSR_DATA")
    return path


def machine_line() -> str:
    """One line naming the machine, torch and thread count the numbers were taken on."""
    return (f"{platform.machine()} {os.cpu_count()} cores, torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads, {time.strftime('%Y-%m-%d %H:%M')}")


def add_config_overrides(parser: argparse.ArgumentParser) -> None:
    """``--set NAME=VALUE`` (repeatable): a :class:`cmsr.Config` field to override."""
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="config override, VALUE as JSON or a bare string; repeatable")


def config_overrides(items: list[str]) -> dict[str, object]:
    """``["max_iters=100", "align=none", "zoom=[0.8, 1]"]`` -> the overrides' dict.

    Values are JSON (lists become tuples, as the config's fields are); anything that is
    not JSON is taken as a string.
    """
    overrides: dict[str, object] = {}
    for item in items:
        key, value = item.split("=", 1)
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            parsed = value
        overrides[key] = tuple(parsed) if isinstance(parsed, list) else parsed
    return overrides


def stored_outputs(runs: Path, scenes: list[Scene], method: str, protocol: EvalProtocol
                   ) -> Iterator[tuple[Scene, EvaluationPair, np.ndarray, np.ndarray]]:
    """The stored ``cmsr eval`` outputs of ``method`` under ``runs`` (a run folder's
    ``<protocol>`` directory), scene by scene where one exists: the scene, its pair as
    ``protocol`` makes it, the truth and the output, both ``(H, W)`` float64."""
    for scene in scenes:
        path = runs / scene.name / f"{method}.npy"
        if path.exists():
            pair = load_pair(scene, protocol)
            truth = pair.truth.astype(np.float64)
            yield scene, pair, truth, np.load(path).astype(np.float64).reshape(truth.shape)


def write_results(name: str, markdown: str, header: list[str], rows: list[list[str]]) -> None:
    """Write ``results/NAME.md`` and ``results/NAME.csv`` (replacing earlier runs)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.md").write_text(markdown + "\n")
    with open(RESULTS / f"{name}.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def reduce_image(image: np.ndarray, scale: int, kernel: Kernel) -> np.ndarray:
    """``(H, W)`` -> ``(H / scale, W / scale)`` float64, reduced with ``kernel``.

    ``"box"`` is average pooling (the MMSR protocol), ``"cubic"`` MATLAB's bicubic
    (the CMSR / ZSSR protocol).
    """
    tensor = torch.from_numpy(image.astype(np.float64))[None, None]
    size = (round(image.shape[0] / scale), round(image.shape[1] / scale))
    return downsample(tensor, size, kernel=kernel)[0, 0].numpy()
