"""Evaluation reports: Markdown and CSV tables, and one comparison grid (PNG) per scene.

Tables take the :class:`cmsr.evaluation.evaluate.RunResult` list of one protocol; when
cmsr's run-time self-check, alignment check or guide-shift search ran, the report also
lists what they chose on each scene. The grid of a scene shows the guide, the input (enlarged with
nearest neighbours, so its pixels stay visible), the truth, every method's output on
the truth's value scale, and every method's absolute error on one shared colour scale,
with its colour bar.
"""

from __future__ import annotations

import csv
import io as text_io
import math
import statistics
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import get_args

import numpy as np

from cmsr.evaluation.evaluate import RunResult
from cmsr.evaluation.protocols import EvaluationPair
from cmsr.method.self_check import Choice
from cmsr.pictures.display import enlarge_nearest, error_map, to_display
from cmsr.pictures.panels import colorbar, panel_grid

#: Metrics in table order; True where larger is better.
METRICS = {"rmse": False, "mae": False, "psnr": True, "ssim": True}
_DIGITS = {"rmse": 3, "mae": 3, "psnr": 2, "ssim": 4}


def _format(value: float, digits: int) -> str:
    if math.isnan(value):
        return "failed"
    if math.isinf(value):
        return "inf"
    return f"{value:.{digits}f}"


def _methods_in_order(results: Sequence[RunResult]) -> list[str]:
    return list(dict.fromkeys(result.method for result in results))


def _scenes_in_order(results: Sequence[RunResult]) -> list[str]:
    return list(dict.fromkeys(result.scene for result in results))


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub-flavoured Markdown table.

    Examples
    --------
    >>> print(markdown_table(["a", "b"], [["1", "2"]]))
    | a | b |
    |---|---|
    | 1 | 2 |
    """
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def mean_of(results: Sequence[RunResult], method: str, metric: str) -> float:
    """Mean of ``metric`` over the successful runs of ``method`` (NaN if there are none;
    infinite PSNRs, from exact results, are left out)."""
    values = [getattr(r, metric) for r in results if r.method == method and r.status == "ok"]
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else math.nan


def per_scene_table(results: Sequence[RunResult], metric: str) -> str:
    """Scenes as rows, methods as columns, the mean last; the best of each row in bold."""
    methods, scenes = _methods_in_order(results), _scenes_in_order(results)
    lookup = {(r.scene, r.method): getattr(r, metric) for r in results}
    larger_better = METRICS[metric]
    rows = []
    for scene in [*scenes, None]:
        if scene is None:
            values = [mean_of(results, m, metric) for m in methods]
        else:
            values = [lookup.get((scene, m), math.nan) for m in methods]
        finite = [v for v in values if not math.isnan(v)]
        best = (max if larger_better else min)(finite) if finite else None
        cells = [f"**{_format(v, _DIGITS[metric])}**" if v == best and len(methods) > 1
                 else _format(v, _DIGITS[metric]) for v in values]
        rows.append([scene if scene is not None else "**mean**", *cells])
    return markdown_table([metric.upper() if metric != "ssim" else "SSIM", *methods], rows)


def summary_table(results: Sequence[RunResult]) -> str:
    """One row per method: mean metrics, time per scene and peak memory."""
    rows = []
    for method in _methods_in_order(results):
        runs = [r for r in results if r.method == method]
        ok = [r for r in runs if r.status == "ok"]
        fresh = [r.seconds for r in ok if not math.isnan(r.seconds)]
        seconds = (f"{statistics.mean(fresh):.1f} / {statistics.median(fresh):.1f}"
                   if fresh else "-")
        peak = max((r.peak_rss_mb for r in ok), default=math.nan)
        rows.append([method, *(_format(mean_of(results, method, m), _DIGITS[m])
                               for m in METRICS),
                     seconds, "-" if math.isnan(peak) else f"{peak:.0f}",
                     f"{len(ok)}/{len(runs)}"])
    return markdown_table(["method", "RMSE", "MAE", "PSNR (dB)", "SSIM",
                           "s/scene (mean / median)", "peak RSS (MB)", "scenes ok"], rows)


#: Shown for a cmsr run whose record predates kept choices (or ran without the check).
NOT_RECORDED = "not recorded"


def _choices_table(results: Sequence[RunResult], attribute: str, order: Sequence[str]) -> str:
    """Per scene, the value of ``attribute`` of the successful cmsr runs
    (:data:`NOT_RECORDED` where empty), then how often each was made, in ``order``
    (others last); ``""`` when no such run has a value."""
    runs = [r for r in results if r.method == "cmsr" and r.status == "ok"]
    if not any(getattr(r, attribute) for r in runs):
        return ""
    chosen = [getattr(r, attribute) or NOT_RECORDED for r in runs]

    def rank(choice: str) -> tuple[int, str]:
        name = choice.split(" ")[0]
        return (order.index(name) if name in order else len(order), choice)

    counts = sorted(Counter(chosen).items(), key=lambda item: rank(item[0]))
    line = ", ".join(f"{choice} on {count}" + (f" of {len(runs)} scenes" if i == 0 else "")
                     for i, (choice, count) in enumerate(counts))
    table = markdown_table(["scene", "choice"],
                           [[r.scene, choice] for r, choice in zip(runs, chosen, strict=True)])
    return f"{table}\n\n{line}."


def self_check_table(results: Sequence[RunResult]) -> str:
    """What cmsr's self-check chose on each scene (successful cmsr runs), then how
    often each choice was made; ``""`` when no cmsr run has a choice (the check off).

    Examples
    --------
    >>> runs = [RunResult(s, "cmsr", "p", "ok", guide_choice=c)
    ...         for s, c in (("a", "guide-free"), ("b", "guided"), ("c", "guide-free"))]
    >>> print(self_check_table(runs))
    | scene | choice |
    |---|---|
    | a | guide-free |
    | b | guided |
    | c | guide-free |
    <BLANKLINE>
    guided on 1 of 3 scenes, guide-free on 2.
    """
    return _choices_table(results, "guide_choice", get_args(Choice))


def alignment_check_table(results: Sequence[RunResult]) -> str:
    """Whether cmsr's alignment check kept the coarse warp on each scene (successful
    cmsr runs), then how often; ``""`` when no cmsr run made the check.

    Examples
    --------
    >>> runs = [RunResult(s, "cmsr", "p", "ok", alignment=c)
    ...         for s, c in (("a", "dropped"), ("b", "kept"))]
    >>> print(alignment_check_table(runs))
    | scene | choice |
    |---|---|
    | a | dropped |
    | b | kept |
    <BLANKLINE>
    kept on 1 of 2 scenes, dropped on 1.
    """
    return _choices_table(results, "alignment", ("kept", "dropped"))


def guide_shift_table(results: Sequence[RunResult]) -> str:
    """What cmsr's guide-shift search did on each scene (successful cmsr runs), then how
    often; ``""`` when no cmsr run searched (or every run was stored before the search
    was recorded).

    Examples
    --------
    >>> runs = [RunResult(s, "cmsr", "p", "ok", guide_shift=c)
    ...         for s, c in (("a", "not moved"), ("b", "moved (1, 0)"))]
    >>> print(guide_shift_table(runs))
    | scene | choice |
    |---|---|
    | a | not moved |
    | b | moved (1, 0) |
    <BLANKLINE>
    moved (1, 0) on 1 of 2 scenes, not moved on 1.
    """
    return _choices_table(results, "guide_shift", ("moved", "not"))


def markdown_report(results: Sequence[RunResult], *, title: str,
                    notes: Sequence[str] = ()) -> str:
    """The whole report: summary, per-scene tables of every metric, what cmsr's
    self-check, alignment check and guide-shift search chose (when they ran:
    :func:`self_check_table`, :func:`alignment_check_table`, :func:`guide_shift_table`),
    failures."""
    parts = [f"# {title}", "", *notes, "", "## Means", "", summary_table(results)]
    for metric in METRICS:
        parts += ["", f"## {metric.upper() if metric != 'ssim' else 'SSIM'} per scene", "",
                  per_scene_table(results, metric)]
    decisions = (
        ("cmsr's self-check", "Whether cmsr used the guide, its guide-free network or "
         "bicubic enlargement, as its check on held-out pixels chose:",
         self_check_table(results)),
        ("cmsr's alignment check", "Whether cmsr kept the warp of its coarse alignment fits "
         "(else the pair counts as aligned as given), as its network-free check chose:",
         alignment_check_table(results)),
        ("cmsr's guide shift", "Whether cmsr moved the guide by whole output pixels before "
         "its guided finishes, as its search chose:", guide_shift_table(results)),
    )
    for heading, intro, table in decisions:
        if table:
            parts += ["", f"## {heading}", "", intro, "", table]
    failed = [r for r in results if r.status != "ok"]
    if failed:
        parts += ["", "## Failed runs", ""]
        parts += [f"- {r.scene} / {r.method}: {r.error}" for r in failed]
    return "\n".join(parts) + "\n"


def csv_report(results: Sequence[RunResult]) -> str:
    """One CSV row per run, columns :attr:`RunResult.FIELDS`."""
    buffer = text_io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(RunResult.FIELDS)
    writer.writerows(result.row() for result in results)
    return buffer.getvalue()


def comparison_grid(pair: EvaluationPair, outputs: Mapping[str, np.ndarray],
                    scores: Mapping[str, float] | None = None, *, metric: str = "RMSE",
                    cell_size: int | None = None) -> np.ndarray:
    """The comparison picture of one scene, ``(H, W, 3)`` uint8.

    Row 1: guide, input, ground truth, error colour bar. Row 2: each method's output,
    on the truth's value range (1st-99th percentile). Row 3: each method's absolute
    error, all on one scale (99th percentile of the largest method error, so the
    worst method saturates only in its worst 1%).
    """
    truth = pair.truth.astype(np.float64)
    finite = truth[np.isfinite(truth)]
    vmin, vmax = (np.percentile(finite, [1, 99]) if finite.size else (0.0, 1.0))
    vmax = vmax if vmax > vmin else vmin + 1.0
    errors = {name: np.abs(out.astype(np.float64) - truth) for name, out in outputs.items()}
    if pair.mask is not None:
        for error in errors.values():
            error[~(pair.mask[..., None] if error.ndim == 3 else pair.mask)] = 0.0
    error_max = max((float(np.nanpercentile(e, 99)) for e in errors.values()), default=1.0)
    error_max = error_max if error_max > 0 else 1.0
    columns = max(len(outputs), 4)
    size = truth.shape[:2]
    blank = np.full((*size, 3), 255, dtype=np.uint8)
    bar = colorbar(0.0, error_max, "inferno", height=max(64, min(size[0], 256)))
    first = [("guide", to_display(pair.guide)),
             ("input (nearest)", to_display(enlarge_nearest(pair.low, size), vmin=vmin,
                                            vmax=vmax)),
             ("ground truth", to_display(truth, vmin=vmin, vmax=vmax)),
             ("|error| scale", bar)]
    panels = first + [("", blank)] * (columns - len(first))
    labels = {name: name if scores is None or name not in scores
              else f"{name} {metric} {_format(scores[name], 3)}" for name in outputs}
    row = [(labels[name], to_display(out, vmin=vmin, vmax=vmax))
           for name, out in outputs.items()]
    panels += row + [("", blank)] * (columns - len(row))
    row = [(f"|error| {name}", error_map(out, truth, vmax=error_max))
           for name, out in outputs.items()]
    panels += row + [("", blank)] * (columns - len(row))
    return panel_grid(panels, columns=columns, cell_size=cell_size)
