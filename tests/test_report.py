"""Report tables and comparison grids."""

from __future__ import annotations

import csv
import io
import math

import numpy as np
import pytest

from cmsr.evaluation.evaluate import RunResult
from cmsr.evaluation.protocols import EvalProtocol, EvaluationPair
from cmsr.evaluation.report import (
    comparison_grid,
    csv_report,
    markdown_report,
    mean_of,
    per_scene_table,
    self_check_table,
)
from cmsr.pictures.display import enlarge_nearest


def results() -> list[RunResult]:
    return [
        RunResult("a", "bicubic", "avgpool-x4", "ok", rmse=3.0, mae=1.0, psnr=30.0, ssim=0.9,
                  seconds=0.1, peak_rss_mb=100),
        RunResult("a", "cmsr", "avgpool-x4", "ok", rmse=2.0, mae=0.8, psnr=32.0, ssim=0.95,
                  seconds=50.0, peak_rss_mb=500),
        RunResult("b", "bicubic", "avgpool-x4", "ok", rmse=5.0, mae=2.0, psnr=28.0,
                  ssim=0.8, seconds=0.1, peak_rss_mb=100),
        RunResult("b", "cmsr", "avgpool-x4", "failed", error="b/target.png: truncated"),
    ]


def test_means_skip_failed_runs() -> None:
    assert mean_of(results(), "bicubic", "rmse") == 4.0
    assert mean_of(results(), "cmsr", "rmse") == 2.0
    assert math.isnan(mean_of(results(), "zssr", "rmse"))


def test_per_scene_table_marks_the_best_and_the_failures() -> None:
    table = per_scene_table(results(), "rmse").splitlines()
    assert table[0] == "| RMSE | bicubic | cmsr |"
    assert table[2] == "| a | 3.000 | **2.000** |"
    assert table[3] == "| b | **5.000** | failed |"
    assert table[4] == "| **mean** | 4.000 | **2.000** |"
    psnr = per_scene_table(results(), "psnr").splitlines()
    assert psnr[2] == "| a | 30.00 | **32.00** |"  # larger is better


def test_markdown_report_lists_failures_and_times() -> None:
    text = markdown_report(results(), title="t", notes=["note"])
    assert "| cmsr | 2.000 | 0.800 | 32.00 | 0.9500 | 50.0 / 50.0 | 500 | 1/2 |" in text
    assert "- b / cmsr: b/target.png: truncated" in text


def test_csv_report_has_one_row_per_run() -> None:
    rows = list(csv.reader(io.StringIO(csv_report(results()))))
    assert rows[0] == list(RunResult.FIELDS)
    assert len(rows) == 5 and rows[4][3] == "failed"


def checked_results() -> list[RunResult]:
    """cmsr runs whose self-check chose, one failed and one bicubic run."""
    choices = {"a": "guide-free", "b": "guided", "c": "guide-free", "d": "blend 0.5"}
    runs = [RunResult(scene, "cmsr", "bicubic-x4", "ok", rmse=1.0, guide_choice=choice)
            for scene, choice in choices.items()]
    return [RunResult("a", "bicubic", "bicubic-x4", "ok", rmse=2.0), *runs,
            RunResult("e", "cmsr", "bicubic-x4", "failed", error="e: truncated")]


def test_csv_report_ends_with_the_self_checks_choice() -> None:
    rows = list(csv.DictReader(io.StringIO(csv_report(checked_results()))))
    header = next(csv.reader(io.StringIO(csv_report(checked_results()))))
    assert header[:12] == ["scene", "method", "protocol", "status", "rmse", "mae", "psnr",
                           "ssim", "seconds", "peak_rss_mb", "cached", "error"]
    assert header[12:] == ["guide_choice", "alignment", "guide_shift", "self_check_errors"]
    assert [row["guide_choice"] for row in rows] == [
        "", "guide-free", "guided", "guide-free", "blend 0.5", ""]


def test_markdown_report_shows_what_the_self_check_chose() -> None:
    text = markdown_report(checked_results(), title="t")
    section = text.split("## cmsr's self-check", 1)[1].split("## Failed runs", 1)[0]
    assert "| scene | choice |" in section
    assert "| a | guide-free |" in section and "| d | blend 0.5 |" in section
    assert "| e |" not in section  # failed: listed with the failures only
    assert "guided on 1 of 4 scenes, guide-free on 2, blend 0.5 on 1." in section
    # no choice (the check off, or not cmsr): no section
    assert "self-check" not in markdown_report(results(), title="t")


@pytest.mark.parametrize(("field", "values", "other", "heading", "row", "summary", "absent"), [
    ("alignment", ("dropped", "kept"), "bicubic", "## cmsr's alignment check",
     "| a | dropped |", "kept on 1 of 3 scenes, dropped on 1, not recorded on 1.",
     "alignment check"),
    ("guide_shift", ("not moved", "moved (1, 0)"), "zssr", "## cmsr's guide shift",
     "| b | moved (1, 0) |",
     "moved (1, 0) on 1 of 3 scenes, not moved on 1, not recorded on 1.", "guide shift"),
])
def test_markdown_report_shows_what_cmsrs_other_decisions_did(
        field: str, values: tuple[str, str], other: str, heading: str, row: str,
        summary: str, absent: str) -> None:
    runs = [RunResult("a", "cmsr", "p", "ok", **{field: values[0]}),
            RunResult("b", "cmsr", "p", "ok", **{field: values[1]}),
            RunResult("c", "cmsr", "p", "ok"), RunResult("d", other, "p", "ok")]
    text = markdown_report(runs, title="t")
    section = text.split(heading, 1)[1]
    assert row in section and "| c | not recorded |" in section
    assert "| d |" not in section
    assert summary in section
    assert absent not in markdown_report(results(), title="t")


def test_self_check_table_marks_runs_stored_before_choices_were_kept() -> None:
    runs = [RunResult("a", "cmsr", "p", "ok", guide_choice="bicubic"),
            RunResult("b", "cmsr", "p", "ok"), RunResult("c", "zssr", "p", "ok")]
    table = self_check_table(runs)
    assert "| b | not recorded |" in table and "| c |" not in table
    assert table.endswith("bicubic on 1 of 2 scenes, not recorded on 1.")
    assert self_check_table(runs[1:]) == ""


def test_enlarge_nearest_repeats_pixels() -> None:
    image = np.array([[1, 2], [3, 4]])
    assert enlarge_nearest(image, (4, 4)).tolist() == [
        [1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4], [3, 3, 4, 4]]


def test_comparison_grid_has_three_rows_of_panels() -> None:
    truth = np.tile(np.arange(32, dtype=np.uint8) * 8, (32, 1))
    pair = EvaluationPair(low=truth[::4, ::4].astype(np.float32),
                          guide=np.stack([truth] * 3, axis=2), truth=truth, mask=None,
                          protocol=EvalProtocol("avgpool", 4))
    outputs = {"bicubic": truth + 3.0, "cmsr": truth + 1.0}
    grid = comparison_grid(pair, outputs, {"bicubic": 3.0, "cmsr": 1.0}, cell_size=64)
    small = comparison_grid(pair, {"cmsr": truth + 1.0}, cell_size=64)
    assert grid.dtype == np.uint8 and grid.ndim == 3 and grid.shape[2] == 3
    assert grid.shape[0] == small.shape[0]  # three rows either way
    assert grid.shape[0] > 3 * 64
