"""Temperature and elevation sharpening on the shared ``geo`` rasters (the Wald protocol).

For each case the target is reduced by ``s`` (block mean; for temperatures in kelvin the
mean of T**4, as a sensor aggregates radiance), the guide is kept at the target's own
resolution, and bicubic, the guided filter and cmsr (the case's preset) sharpen it back.
Each result is compared with the original target (RMSE, bias = mean error, Pearson r)
and, aggregated back by the same rule, with the coarse input (energy conservation,
RMSE). ``desirex-20m`` is the real case: the 100 m LST sharpened to 20 m with the 20 m
NDBI/albedo guide, against the 20 m reference LST.

Cases (``--scenes``, comma-separated; default all):

- ``pytseb-x4``, ``pytseb-x8``: vineyard morning radiometric temperature (K), guide LAI
  and fractional cover, 3.6 m; T**4 aggregation; ``temperature``.
- ``landsat5-x4``: TM band 6 DN (linear in radiance, so block mean), guide TM 4,3,2 DN,
  30 m (the native 120 m thermal pixel emulated); ``temperature``.
- ``srtm-x2``: SRTM elevation 30 m OSGB (m), guide Sentinel-2 B8,B4,B3 block-averaged
  from 10 m onto the 30 m grid; block mean; ``elevation``.
- ``desirex-x2``: LST 100 m -> 200 m and back with the 100 m NDBI/albedo; T**4;
  ``temperature``.
- ``desirex-20m``: LST 100 m -> 20 m with the 20 m NDBI/albedo against
  ``reference_lst_20m.tif``; conservation against the 100 m input by T**4;
  ``temperature``.

Writes ``results/geo_sharpening.md`` / ``.csv`` when every case ran with no ``--set``
(a run with ``--max-iters`` says in the file that it is reduced). Needs ``cmsr[geo]``.

Usage: ``python benchmarks/geo_sharpening.py [--scenes a,b] [--max-iters N]
[--threads N] [--seed N] [--set NAME=VALUE ...]``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from common import (
    add_config_overrides,
    config_overrides,
    data_root,
    machine_line,
    markdown_table,
    write_results,
)

from cmsr import CMSR, Config
from cmsr.evaluation.baselines import make_baseline
from cmsr.evaluation.wald import (
    Aggregation,
    SharpeningScore,
    block_mean,
    crop_to_multiple,
    radiometric_mean,
    score_sharpening,
)
from cmsr.files.geotiff import read_geotiff

METHODS = ("bicubic", "guided-filter", "cmsr")


@dataclass(frozen=True)
class Case:
    """One sharpening problem: the coarse input, the guide, the truth."""

    name: str
    coarse: np.ndarray  # (h, w) float64, the input
    guide: np.ndarray  # (H, W, C) float32, H = h * factor
    truth: np.ndarray  # (H, W) float64
    factor: int
    aggregate: Aggregation
    preset: str
    unit: str
    what: str


def _band(path: Path, band: int = 1) -> np.ndarray:
    """One band of a GeoTIFF as ``(H, W)`` float64 (stored values; NaN where invalid)."""
    pixels, valid, _ = read_geotiff(path, [band])
    values = pixels.astype(np.float64)
    values[~valid] = np.nan
    return values


def _stack(*bands: np.ndarray) -> np.ndarray:
    return np.stack(bands, axis=-1).astype(np.float32)


def _wald(name: str, truth: np.ndarray, guide: np.ndarray, factor: int,
          aggregate: Aggregation, preset: str, unit: str, what: str) -> Case:
    """The reduced-resolution case: truth and guide cropped to whole blocks."""
    truth = crop_to_multiple(truth, factor)
    guide = crop_to_multiple(guide, factor)
    return Case(name, aggregate(truth, factor), guide, truth, factor, aggregate, preset,
                unit, what)


def _pytseb(root: Path, factor: int) -> Case:
    folder = root / "pytseb" / "vineyard"
    guide = _stack(_band(folder / "guide_lai.tif"), _band(folder / "guide_fc.tif"))
    return _wald(f"pytseb-x{factor}", _band(folder / "target_trad_am.tif"), guide, factor,
                 radiometric_mean, "temperature", "K",
                 "vineyard am temperature 3.6 m, guide LAI + Fc, T^4")


def _landsat5(root: Path) -> Case:
    folder = root / "landsat5_tm" / "p224r063_19880814"
    guide = _stack(*(_band(folder / f"guide_tm_b{b}.tif") for b in (4, 3, 2)))
    return _wald("landsat5-x4", _band(folder / "target_tm_b6_thermal.tif"), guide, 4,
                 block_mean, "temperature", "DN",
                 "TM6 DN 30 m (120 m emulated), guide TM 4,3,2, block mean")


def _srtm(root: Path) -> Case:
    folder = root / "srtm_s2" / "aberystwyth"
    s2 = folder / "guide_s2_b2_b3_b4_b8_10m.tif"
    # the 10 m guide averaged onto the 30 m grid it nests in exactly (3:1, same origin)
    guide = _stack(*(block_mean(_band(s2, b), 3) for b in (4, 3, 2)))
    return _wald("srtm-x2", _band(folder / "target_srtm_30m_osgb.tif"), guide, 2,
                 block_mean, "elevation", "m",
                 "SRTM 30 m OSGB, guide S2 B8,B4,B3 averaged to 30 m, block mean")


def _desirex(root: Path) -> Case:
    folder = root / "desirex" / "madrid"
    guide = _stack(_band(folder / "aux_ndbi_100m.tif"), _band(folder / "aux_albedo_100m.tif"))
    return _wald("desirex-x2", _band(folder / "target_lst_100m.tif"), guide, 2,
                 radiometric_mean, "temperature", "K",
                 "LST 100 m -> 200 m and back, guide NDBI + albedo 100 m, T^4")


def _desirex_20m(root: Path) -> Case:
    folder = root / "desirex" / "madrid"
    guide = _stack(_band(folder / "guide_ndbi_20m.tif"), _band(folder / "guide_albedo_20m.tif"))
    coarse = _band(folder / "target_lst_100m.tif")
    truth = _band(folder / "reference_lst_20m.tif")
    # the files share one origin and nest 5:1 exactly (meta.json)
    assert truth.shape == guide.shape[:2] == (coarse.shape[0] * 5, coarse.shape[1] * 5)
    return Case("desirex-20m", coarse, guide, truth, 5, radiometric_mean, "temperature",
                "K", "real: LST 100 m -> 20 m, guide NDBI + albedo 20 m, vs 20 m reference")


CASES: dict[str, Callable[[Path], Case]] = {
    "pytseb-x4": lambda root: _pytseb(root, 4),
    "pytseb-x8": lambda root: _pytseb(root, 8),
    "landsat5-x4": _landsat5,
    "srtm-x2": _srtm,
    "desirex-x2": _desirex,
    "desirex-20m": _desirex_20m,
}


def sharpen(case: Case, method: str, config: Config) -> tuple[np.ndarray, str]:
    """``case.coarse`` enlarged ``case.factor`` times by ``method`` with ``case.guide``,
    and for cmsr what its self-check chose (else an empty string)."""
    if method == "cmsr":
        model = CMSR(config).fit(case.coarse, case.guide)
        check = model.self_check.describe() if model.self_check else "no self-check"
        return model.predict(), check
    return make_baseline(method).fit(case.coarse, case.guide).predict(), ""


def score_case(case: Case, result: np.ndarray) -> SharpeningScore:
    """:func:`score_sharpening` of ``result`` for ``case``."""
    return score_sharpening(result, case.truth, case.coarse, case.factor, case.aggregate)


def table(scores: dict[str, dict[str, SharpeningScore]], units: dict[str, str]
          ) -> tuple[list[str], list[list[str]]]:
    """Header and rows: one row per case, per metric the three methods side by side."""
    metrics = (("RMSE", "rmse"), ("bias", "bias"), ("r", "correlation"),
               ("conservation RMSE", "conservation_rmse"))
    header = ["case", "unit"] + [f"{label} {method}" for label, _ in metrics
                                 for method in METHODS]
    rows = []
    for name, by_method in scores.items():
        row = [name, units[name]]
        for _, field in metrics:
            digits = 4 if field == "correlation" else 3
            row += [f"{getattr(by_method[m], field):.{digits}f}" if m in by_method else ""
                    for m in METHODS]
        rows.append(row)
    return header, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", default=None,
                        help=f"comma-separated cases (default all: {', '.join(CASES)})")
    parser.add_argument("--max-iters", type=int, default=None,
                        help="cap cmsr's training steps per stage (a reduced, quick run)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    add_config_overrides(parser)
    args = parser.parse_args()
    names = args.scenes.split(",") if args.scenes else list(CASES)
    unknown = [n for n in names if n not in CASES]
    if unknown:
        parser.error(f"unknown case(s) {', '.join(unknown)}; choose from {', '.join(CASES)}")
    if args.threads < 1:
        parser.error("--threads must be >= 1")
    torch.set_num_threads(args.threads)
    overrides = config_overrides(args.set)
    if args.max_iters is not None:
        overrides["max_iters"] = args.max_iters
    root = data_root() / "geo"
    start = time.perf_counter()
    scores: dict[str, dict[str, SharpeningScore]] = {}
    units: dict[str, str] = {}
    notes: list[str] = []
    for name in names:
        case = CASES[name](root)
        units[name] = case.unit
        config = Config.preset(case.preset, seed=args.seed, threads=args.threads,
                               **overrides)
        if args.max_iters is not None:
            config = config.replace(min_iters=min(config.min_iters, args.max_iters))
        scores[name] = {}
        for method in METHODS:
            began = time.perf_counter()
            result, check = sharpen(case, method, config)
            scores[name][method] = score_case(case, result)
            seconds = time.perf_counter() - began
            print(f"{name} {method}: {scores[name][method]} ({seconds:.1f} s) {check}",
                  flush=True)
        h, w = case.coarse.shape
        notes.append(f"- `{name}`: {case.what}; {w}x{h} -> x{case.factor}, preset "
                     f"`{case.preset}`; cmsr {seconds:.0f} s, {check}")
    header, rows = table(scores, units)
    reduced = args.max_iters is not None
    markdown = "\n".join([
        "# Temperature and elevation sharpening on `geo` (Wald protocol)", "",
        *([f"**Reduced run: cmsr trained at most {args.max_iters} steps per stage, not the "
           "presets' full training. These are not the full benchmark's numbers.**", ""]
          if reduced else []),
        f"{machine_line()}; seed {args.seed}; whole run {time.perf_counter() - start:.0f} s; "
        f"overrides {overrides or 'none'}.", "",
        "Bias is the mean of result minus truth; r is Pearson's correlation with the "
        "truth; conservation RMSE compares the result aggregated back to the coarse grid "
        "(T^4 mean for kelvin, block mean otherwise) with the coarse input.", "",
        *notes, "", markdown_table(header, rows)])
    print("\n" + markdown)
    if args.scenes is None and not args.set:
        write_results("geo_sharpening", markdown, header, rows)


if __name__ == "__main__":
    main()
