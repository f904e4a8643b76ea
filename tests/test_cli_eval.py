"""``cmsr eval`` end to end on tiny scene folders."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from test_bad_input import BAD_SETTINGS

import cmsr.cli.eval
from cmsr.cli import main
from cmsr.files import read_image, write_image


def make_data(root: Path, names: tuple[str, ...] = ("s1", "s2"), size: int = 32) -> Path:
    for seed, name in enumerate(names):
        y, x = np.mgrid[0:size, 0:size] / size
        truth = (127 + 100 * np.sin(4 * x + 3 * y + seed)).astype(np.uint8)
        folder = root / name
        folder.mkdir(parents=True)
        write_image(folder / "target_depth.png", truth)
        write_image(folder / "guide_rgb.png", np.stack([truth, truth // 2, 255 - truth], 2))
    return root


QUICK = ["--preset", "quick", "--iters", "2", "--no-ensemble", "--back-projection", "0",
         "--quiet"]


def test_eval_writes_tables_grids_and_resumes(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    data = make_data(tmp_path / "data")
    report = tmp_path / "report"
    argv = ["eval", str(data), "--methods", "bicubic,jbu,cmsr", "--protocol", "avgpool",
            "--scale", "2", "-o", str(report), *QUICK]
    assert main(argv) == 0
    rows = list(csv.DictReader((report / "avgpool-x2.csv").open()))
    assert [(r["scene"], r["method"]) for r in rows] == [
        ("s1", "bicubic"), ("s1", "jbu"), ("s1", "cmsr"),
        ("s2", "bicubic"), ("s2", "jbu"), ("s2", "cmsr")]
    assert all(r["status"] == "ok" and float(r["rmse"]) > 0 for r in rows)
    markdown = (report / "avgpool-x2.md").read_text()
    assert "| **mean** |" in markdown and "avgpool-x2" in markdown
    grid = read_image(report / "grids" / "avgpool-x2" / "s1.png")
    assert grid.ndim == 3 and grid.shape[0] > 3 * 32
    assert "6 of 6 runs ok" in capsys.readouterr().err

    assert main(argv) == 0  # resumed: everything cached, same numbers
    again = list(csv.DictReader((report / "avgpool-x2.csv").open()))
    assert all(r["cached"] == "True" for r in again)
    assert [r["rmse"] for r in again] == [r["rmse"] for r in rows]


def test_eval_reports_what_cmsrs_self_check_chose(tmp_path: Path) -> None:
    data = make_data(tmp_path / "data", names=("s1",))
    report = tmp_path / "report"
    assert main(["eval", str(data), "--methods", "bicubic,cmsr", "--protocol", "avgpool",
                 "--scale", "2", "--self-check", "--guide-dropout", "0.3", "-o", str(report),
                 *QUICK]) == 0
    rows = list(csv.DictReader((report / "avgpool-x2.csv").open()))
    bicubic, cmsr = rows
    assert bicubic["guide_choice"] == ""
    assert cmsr["guide_choice"] in ("guided", "guide-free", "bicubic")
    markdown = (report / "avgpool-x2.md").read_text()
    assert f"| s1 | {cmsr['guide_choice']} |" in markdown.split("## cmsr's self-check")[1]
    assert f"{cmsr['guide_choice']} on 1 of 1 scenes." in markdown

    assert main(["eval", str(data), "--methods", "bicubic,cmsr", "--protocol", "avgpool",
                 "--scale", "2", "--self-check", "--guide-dropout", "0.3", "-o", str(report),
                 *QUICK]) == 0  # resumed: the choice comes from the stored run
    again = list(csv.DictReader((report / "avgpool-x2.csv").open()))
    assert again[1]["cached"] == "True" and again[1]["guide_choice"] == cmsr["guide_choice"]


def test_eval_draws_the_alignment_of_cmsr_runs_that_learn_a_warp(tmp_path: Path) -> None:
    data = make_data(tmp_path / "data", names=("s1",))
    report = tmp_path / "report"
    assert main(["eval", str(data), "--methods", "cmsr", "--protocol", "avgpool",
                 "--scale", "2", "--shift", "2", "-o", str(report), *QUICK]) == 0
    figure = read_image(report / "alignment" / "avgpool-x2-shift2-seed0" / "s1.png")
    assert figure.ndim == 3 and figure.shape[1] > 3 * 32  # three panels side by side
    none = tmp_path / "none"
    assert main(["eval", str(data), "--methods", "cmsr", "--protocol", "avgpool",
                 "--scale", "2", "--align", "none", "-o", str(none), *QUICK]) == 0
    assert not (none / "alignment").exists()


def test_eval_runs_with_the_threads_it_is_given(tmp_path: Path) -> None:
    data = make_data(tmp_path / "data", names=("s1",))
    before = torch.get_num_threads()
    try:
        assert main(["eval", str(data), "--methods", "bicubic", "--threads", "1",
                     "-o", str(tmp_path / "report"), *QUICK]) == 0
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_eval_displacement_and_noise_are_named(tmp_path: Path) -> None:
    data = make_data(tmp_path / "data", names=("s1",))
    report = tmp_path / "report"
    assert main(["eval", str(data), "--methods", "bicubic", "--shift", "2", "--rotation",
                 "1", "--input-noise", "0.01", "-o", str(report), *QUICK]) == 0
    names = [p.name for p in report.glob("*.md")]
    assert len(names) == 1 and "shift2" in names[0] and "rot1" in names[0]


def test_eval_failures_give_exit_code_1_and_are_listed(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    data = make_data(tmp_path / "data")
    (data / "s2" / "guide_rgb.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    report = tmp_path / "report"
    assert main(["eval", str(data), "--methods", "bicubic", "-o", str(report),
                 "--scale", "2", *QUICK]) == 1
    err = capsys.readouterr().err
    assert "s2" in err and "1 of 2 runs ok" in err
    assert "## Failed runs" in (report / "bicubic-x2.md").read_text()


@pytest.mark.parametrize(("extra", "message"), [
    (["--methods", "bicubic,srcnn"], "unknown method srcnn"),
    (["--option", "jbu.colour=2"], "takes no option colour"),
    (["--option", "mmsr.seed=99999999999999999999"], "--option: seed must be an integer"),
    (["--option", "p2p.seed=-4"], "--option: seed must be an integer in [0, 2**63), got -4"),
    (["--option", "p2p.threads=0"], "--option: threads must be None or >= 1, got 0"),
    (["--option", "mmsr.device=mps"], "--option: device: 'mps' is not a device"),
    pytest.param(["--option", "p2p.device=cuda"],
                 "--option: device: cuda is not available on this machine",
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="has CUDA")),
    (["--scenes", "nothing*"], "nothing"),
    (["--save-figures", "figs"], "--save-figures"),
])
def test_eval_user_mistakes_are_one_line_errors(tmp_path: Path, extra: list[str],
                                                message: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    data = make_data(tmp_path / "data", names=("s1",))
    assert main(["eval", str(data), "-o", str(tmp_path / "r"), *QUICK, *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("cmsr: error:") and message in err and "\n" not in err


def test_eval_missing_data_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", str(tmp_path / "nope"), "-o", str(tmp_path / "r"), *QUICK]) == 2
    assert "nope" in capsys.readouterr().err


@pytest.mark.parametrize(("extra", "message"), BAD_SETTINGS)
def test_unusable_settings_are_refused_once_before_any_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    extra: list[str], message: str,
) -> None:
    data = make_data(tmp_path / "data")

    def no_run(*args: object, **kwargs: object) -> None:
        raise AssertionError("a run started")

    monkeypatch.setattr(cmsr.cli.eval, "evaluate", no_run)
    assert main(["eval", str(data), "-o", str(tmp_path / "r"), *QUICK, *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("cmsr: error:") and message in err and "\n" not in err
    assert not (tmp_path / "r").exists()
