"""Edge sharpening on depth: how strong, and does it hold on scenes it was not chosen on.

The strength of the ``depth`` preset was chosen on Middlebury 2005 x4 (all 6 scenes,
entry ``middlebury2005-x4-unsharpened``), which no earlier choice had been tried on;
Middlebury13 (``middlebury13-x4-unsharpened``: 0.11's cmsr and ZSSR results) shows
what it does where the other choices were made.

Reads stored evaluation outputs (fits nothing) and finishes each with
:func:`cmsr.method.edge_sharpening.sharpen_edges` at several strengths and step shares,
with and without back-projection and the local clip afterwards (the preset's
``back_projection_iters`` on the box reduction, as the guided median is followed), and
scores every variant against the truth beside the output as stored. Outputs made with
sharpening already on are left out (their variants would sharpen twice).

Usage: ``python benchmarks/edge_sharpening.py [--items ENTRY[@FOLDER]:METHOD,...]
[--strengths 0.3,0.4,0.5] [--step-shares 0,0.5] [--output NAME]``. ``ENTRY`` is an
``eval_suite.py`` entry (its data, protocol and scale); ``FOLDER`` below
``results/eval`` holds the runs when they are not the entry's own (e.g.
``seeds/depth-cmsr-seed1``). Writes ``results/NAME.md`` (default ``edge_sharpening``).
"""

from __future__ import annotations

import argparse
import itertools
import statistics
from pathlib import Path

import numpy as np
import torch
from common import RESULTS, data_root, machine_line, markdown_table, stored_outputs
from eval_suite import entry_named

from cmsr.evaluation.datasets import find_scenes
from cmsr.evaluation.metrics import rmse
from cmsr.evaluation.protocols import EvalProtocol
from cmsr.method.config import PRESETS
from cmsr.method.edge_sharpening import sharpen_edges
from cmsr.method.infer import back_project, clamp_to_local_range
from cmsr.method.normalize import array_to_tensor

DEFAULT_ITEMS = ("middlebury2005-x4-unsharpened:cmsr,middlebury13-x4-unsharpened:cmsr,"
                 "middlebury13-x4-unsharpened:zssr")


def refit(estimate: torch.Tensor, low: torch.Tensor, iterations: int) -> torch.Tensor:
    """``estimate`` ``(1, 1, H, W)`` back-projected onto ``low`` ``(1, 1, h, w)`` (box
    reduction) and clipped to the local range of ``low``: the ``depth`` preset's step
    after each finish."""
    estimate = back_project(estimate, low, iterations=iterations, kernel="box")
    return clamp_to_local_range(estimate, low)


def finish(output: np.ndarray, low: np.ndarray, *, strength: float, step_share: float,
           refit_after: bool, iterations: int) -> np.ndarray:
    """``output`` ``(H, W)`` sharpened; with ``refit_after``, then :func:`refit` onto
    ``low`` ``(h, w)``."""
    estimate, target = array_to_tensor(output), array_to_tensor(low)
    result = sharpen_edges(estimate, strength=strength, step_share=step_share)
    if refit_after:
        result = refit(result, target, iterations)
    return result[0, 0].double().numpy()


def outcome_cells(values: list[float], stored: list[float]) -> list[str]:
    """A variant's mean RMSE, its change against the stored mean and how many pairs
    it made better, as table cells."""
    better = sum(v < s for v, s in zip(values, stored, strict=True))
    change = 100 * (statistics.fmean(values) / statistics.fmean(stored) - 1)
    return [f"{statistics.fmean(values):.3f}", f"{change:+.1f}%",
            f"{better} of {len(values)}"]


def write_report(title: str, iterations: int, sections: list[str], output: str) -> None:
    """Print the report and write it to ``results/OUTPUT.md``."""
    text = "\n".join([f"# {title}", "",
                      f"{machine_line()}; back-projection: {iterations} steps, box "
                      "reduction; the clip to the 3x3 measured pixels' range.", "",
                      *sections])
    print(text)
    (RESULTS / f"{output}.md").write_text(text)


def item_runs(item: str) -> tuple[str, str, EvalProtocol, Path, str | None]:
    """``ENTRY[@FOLDER]:METHOD`` -> label, method, protocol, runs folder, scenes."""
    where, method = item.rsplit(":", 1)
    name, _, folder = where.partition("@")
    entry = entry_named(name)
    if entry.extra and any(flag in entry.extra for flag in ("--shift", "--rotation")):
        raise SystemExit(f"{name}: displaced entries are not supported")
    protocol = EvalProtocol(kind=entry.protocol, scale=entry.scale)
    runs = RESULTS / "eval" / (folder or entry.name) / "runs" / protocol.name
    if folder:  # another seed's runs: the protocol's name ends in -seed<k>
        found = sorted((RESULTS / "eval" / folder / "runs").glob(f"{protocol.name}*/"))
        runs = found[0] if len(found) == 1 else runs
    return f"{folder or name}:{method}", method, protocol, runs, entry.data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", default=DEFAULT_ITEMS)
    parser.add_argument("--strengths", default="0.3,0.4,0.5,0.6")
    parser.add_argument("--step-shares", default="0,0.5")
    parser.add_argument("--output", default="edge_sharpening")
    args = parser.parse_args()
    strengths = [float(s) for s in args.strengths.split(",")]
    shares = [float(s) for s in args.step_shares.split(",")]
    iterations = PRESETS["depth"].back_projection_iters
    variants = list(itertools.product(strengths, shares, (False, True)))
    sections = []
    for item in args.items.split(","):
        label, method, protocol, runs, data = item_runs(item)
        scenes = find_scenes(data_root() / data)
        stored, scores = [], {v: [] for v in variants}
        names = []
        for scene, pair, truth, output in stored_outputs(runs, scenes, method, protocol):
            names.append(scene.name)
            stored.append(rmse(output, truth, mask=pair.mask))
            for strength, share, refit_after in variants:
                result = finish(output, pair.low, strength=strength, step_share=share,
                                refit_after=refit_after, iterations=iterations)
                scores[(strength, share, refit_after)].append(
                    rmse(result, truth, mask=pair.mask))
        if not stored:
            raise SystemExit(f"{item}: no stored outputs in {runs}")
        rows = [["as stored", "–", "–", f"{statistics.fmean(stored):.3f}", "–", "–"]]
        for (strength, share, refit_after), values in scores.items():
            rows.append([f"{strength:g}", f"{share:g}", "yes" if refit_after else "no",
                         *outcome_cells(values, stored)])
        per_pair = ", ".join(f"{n} {s:.3f}" for n, s in zip(names, stored, strict=True))
        sections += [f"## {label} ({len(names)} pairs, {protocol.name})", "",
                     f"As stored, per pair: {per_pair}.", "",
                     markdown_table(["strength", "step share", "then back-projection "
                                     "and clip", "mean RMSE", "change", "better on"], rows),
                     ""]
    write_report("Edge sharpening on stored depth results", iterations, sections,
                 args.output)


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
