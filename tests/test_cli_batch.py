"""``cmsr batch`` end to end on tiny scenes: outputs, summary, exit codes, resuming."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from test_bad_input import BAD_SETTINGS
from test_batch import write_scenes

import cmsr.batches.run as batch
from cmsr.cli import build_parser, main
from cmsr.cli.batch import settings_from_args
from cmsr.files import read_image, write_image
from cmsr.method.api import CMSR
from cmsr.method.config import Config

QUICK = ["--preset", "quick", "--iters", "2", "--workers", "0", "--threads", "1"]


def _summary(out) -> dict[str, dict[str, str]]:
    with open(out / "summary.csv", newline="") as fh:
        return {row["scene"]: row for row in csv.DictReader(fh)}


def _error_line(capsys) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1, err
    assert err[0].startswith("cmsr: error:")
    return err[0]


def test_batch_writes_results_records_a_failure_and_resumes(tmp_path, capsys):
    data = write_scenes(tmp_path / "data", ("a", "b", "c"), truth=("a",))
    good_c = (data / "c" / "target_ir.png").read_bytes()
    (data / "c" / "target_ir.png").write_bytes(good_c[:40])  # truncated file
    out = tmp_path / "out"
    assert main(["batch", str(data), "-o", str(out), *QUICK]) == 1
    err = capsys.readouterr().err
    assert "c failed" in err and "target_ir.png" in err
    rows = _summary(out)
    assert [rows[s]["status"] for s in "abc"] == ["ok", "ok", "failed"]
    assert rows["a"]["rmse"] and rows["a"]["ssim"] and not rows["b"]["rmse"]
    assert float(rows["a"]["peak_rss_mb"]) > 0 and rows["a"]["final_loss"]
    assert "target_ir.png" in rows["c"]["error"]
    assert read_image(out / "a" / "result.png").shape == (64, 64)
    assert not (out / "c" / "result.png").exists()

    (data / "c" / "target_ir.png").write_bytes(good_c)  # fixed: only c runs again
    assert main(["batch", str(data), "-o", str(out), *QUICK, "--quiet"]) == 0
    assert [_summary(out)[s]["status"] for s in "abc"] == ["skipped", "skipped", "ok"]


def test_manifest_rows_write_to_their_output_column(tmp_path):
    write_scenes(tmp_path / "data", ("a", "b"))
    (tmp_path / "pairs.csv").write_text("name,target,guide,output\n"
                                        "one,data/a/target_ir.png,data/a/guide_rgb.png,x/1.png\n"
                                        "two,data/b/target_ir.png,data/b/guide_rgb.png,\n")
    out = tmp_path / "out"
    assert main(["batch", str(tmp_path / "pairs.csv"), "-o", str(out), *QUICK,
                 "--quiet"]) == 0
    assert read_image(out / "x" / "1.png").shape == (64, 64)  # inside OUT_DIR
    assert not (tmp_path / "x").exists()
    assert read_image(out / "two.png").dtype == np.uint8
    assert set(_summary(out)) == {"one", "two"}


def test_an_output_over_an_input_is_refused_before_any_work(tmp_path, capsys):
    write_scenes(tmp_path / "data", ("a",))
    target = tmp_path / "data" / "a" / "target_ir.png"
    before = target.read_bytes()
    (tmp_path / "pairs.csv").write_text("target,guide,output\n"
                                        "data/a/target_ir.png,data/a/guide_rgb.png,"
                                        "data/a/target_ir.png\n")
    # OUT_DIR is the manifest's folder: the output column names the target itself
    assert main(["batch", str(tmp_path / "pairs.csv"), "-o", str(tmp_path), *QUICK]) == 2
    assert "write over an input" in _error_line(capsys)
    assert target.read_bytes() == before
    assert not (tmp_path / "manifest.jsonl").exists()


@pytest.mark.parametrize("output", ["../escaped.png", "x/../../escaped.png", "ABSOLUTE"])
def test_an_output_column_leaving_out_dir_is_refused_before_any_work(tmp_path, capsys,
                                                                      output):
    write_scenes(tmp_path / "data", ("a",))
    if output == "ABSOLUTE":
        output = str(tmp_path / "escaped.png")
    (tmp_path / "pairs.csv").write_text("target,guide,output\n"
                                        f"data/a/target_ir.png,data/a/guide_rgb.png,{output}\n")
    out = tmp_path / "work" / "out"
    assert main(["batch", str(tmp_path / "pairs.csv"), "-o", str(out), *QUICK]) == 2
    line = _error_line(capsys)
    assert f"line 2: output {output!r} must be a relative name without '..'" in line
    assert "pairs.csv" in line
    assert not (tmp_path / "escaped.png").exists() and not (tmp_path / "work").exists()


def test_a_manifest_row_naming_a_missing_file_fails_alone(tmp_path, capsys):
    write_scenes(tmp_path / "data", ("a", "b"))
    manifest = tmp_path / "pairs.csv"
    manifest.write_text("target,guide\n"
                        "data/a/target_ir.png,data/a/guide_rgb.png\n"
                        "data/gone/target_ir.png,data/a/guide_rgb.png\n"
                        "data/b/target_ir.png,data/b/guide_rgb.png\n")
    out = tmp_path / "out"
    assert main(["batch", str(manifest), "-o", str(out), *QUICK]) == 1
    err = capsys.readouterr().err
    reason = f"{manifest}: line 3: target data/gone/target_ir.png: no such file"
    assert f"target_ir-3 failed: {reason}" in err
    assert "2 ok, 0 skipped (done before), 1 failed of 3 pairs" in err
    rows = _summary(out)
    assert [rows[n]["status"] for n in ("target_ir-2", "target_ir-3", "target_ir-4")] == [
        "ok", "failed", "ok"]
    assert rows["target_ir-3"]["error"] == reason
    assert read_image(out / "target_ir-2.png").shape == (64, 64)
    assert not (out / "target_ir-3.png").exists()
    # once the file is there, a rerun runs that row alone
    (tmp_path / "data" / "gone").mkdir()
    (tmp_path / "data" / "gone" / "target_ir.png").write_bytes(
        (tmp_path / "data" / "a" / "target_ir.png").read_bytes())
    assert main(["batch", str(manifest), "-o", str(out), *QUICK, "--quiet"]) == 0
    assert [r["status"] for r in _summary(out).values()] == ["skipped", "ok", "skipped"]
    # the manifest itself broken is still refused before any work
    capsys.readouterr()
    manifest.write_text("target\ndata/a/target_ir.png\n")
    assert main(["batch", str(manifest), "-o", str(tmp_path / "other"), *QUICK]) == 2
    assert "missing required column(s) guide" in _error_line(capsys)
    assert not (tmp_path / "other").exists()


def test_a_ground_truth_mask_in_a_batch_as_in_eval(tmp_path, capsys):
    # scenes with a 64x64 ground truth and a mask_* of the truth's size (scored only
    # where valid) and of the input's size (16x16: refused for that scene, by eval too)
    data = write_scenes(tmp_path / "data", ("truth_mask", "input_mask", "real"),
                        truth=("truth_mask", "input_mask", "real"))
    write_image(data / "real" / "target_ir_lr.png",
                read_image(data / "real" / "target_ir.png")[::4, ::4].copy())
    big = np.ones((64, 64), np.uint8)
    big[:, 40:] = 0
    write_image(data / "truth_mask" / "mask_valid.png", big)
    write_image(data / "real" / "mask_valid.png", big)
    write_image(data / "input_mask" / "mask_valid.png", big[::4, ::4].copy())
    out = tmp_path / "out"
    assert main(["batch", str(data), "-o", str(out), *QUICK]) == 1
    rows = _summary(out)
    assert {n: r["status"] for n, r in rows.items()} == {
        "input_mask": "failed", "real": "ok", "truth_mask": "ok"}
    refusal = (f"{data / 'input_mask' / 'mask_valid.png'}: the mask is 16x16 but the target "
               "is 64x64; they must have the same size")
    assert rows["input_mask"]["error"] == refusal
    for name in ("truth_mask", "real"):
        truth = read_image(data / name / "target_ir.png").astype(np.float64)
        result = read_image(out / name / "result.png").astype(np.float64)
        assert float(rows[name]["rmse"]) == pytest.approx(
            np.sqrt(np.mean((result - truth)[:, :40] ** 2)), rel=1e-4)
    capsys.readouterr()
    assert main(["eval", str(data), "-o", str(tmp_path / "report"), "--methods", "bicubic",
                 "--quiet"]) == 1
    err = capsys.readouterr().err
    assert f"input_mask / bicubic failed: {refusal}" in err and "2 of 3 runs ok" in err


def _no_pair_runs(job, **kwargs):
    raise AssertionError("a pair ran")


@pytest.mark.parametrize(("extra", "message"), BAD_SETTINGS)
def test_unusable_settings_are_refused_once_before_any_pair(tmp_path, capsys, monkeypatch,
                                                            extra, message):
    data = write_scenes(tmp_path / "data", ("a", "b"))
    monkeypatch.setattr(batch, "run_job", _no_pair_runs)
    assert main(["batch", str(data), "-o", str(tmp_path / "out"), *QUICK[:4],
                 "--workers", "0", *extra]) == 2
    assert message in _error_line(capsys)
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_a_remote_cluster_may_have_the_device_this_machine_lacks(tmp_path):
    args = build_parser().parse_args(["batch", str(tmp_path), "-o", str(tmp_path / "out"),
                                      "--device", "cuda", "--scheduler", "tcp://gpu:8786"])
    assert settings_from_args(args).config.device == "cuda"


def test_ctrl_c_keeps_what_finished_and_exits_130(tmp_path, monkeypatch, capsys):
    data, out = write_scenes(tmp_path / "data", ("a", "b")), tmp_path / "out"
    real_run_job = batch.run_job

    def run_job(job, **kwargs):
        if job.name == "b":
            raise KeyboardInterrupt
        return real_run_job(job, **kwargs)

    monkeypatch.setattr(batch, "run_job", run_job)
    assert main(["batch", str(data), "-o", str(out), *QUICK]) == 130
    assert "interrupted" in capsys.readouterr().err
    assert {s: r["status"] for s, r in _summary(out).items()} == {"a": "ok",
                                                                  "b": "interrupted"}
    monkeypatch.undo()
    assert main(["batch", str(data), "-o", str(out), *QUICK, "--quiet"]) == 0
    assert {s: r["status"] for s, r in _summary(out).items()} == {"a": "skipped", "b": "ok"}


@pytest.mark.parametrize("extra", [["--save-figures", "figs"], ["--init", "missing.pt"],
                                   ["--save-checkpoint", "c.pt"], ["--load-warp", "no.pt"],
                                   ["--workers", "-1"], ["--scenes", "zz*"]])
def test_usage_errors_exit_2_before_any_work(tmp_path, extra, capsys):
    data = write_scenes(tmp_path / "data", ("a",))
    assert main(["batch", str(data), "-o", str(tmp_path / "out"), *QUICK[:4], *extra]) == 2
    _error_line(capsys)
    assert not (tmp_path / "out" / "a").exists()


def test_unsupported_scale_is_an_argparse_error(tmp_path):
    with pytest.raises(SystemExit) as stop:
        main(["batch", str(tmp_path), "-o", str(tmp_path / "out"), "--scale", "3"])
    assert stop.value.code == 2


def test_out_dir_that_is_a_file_is_a_usage_error(tmp_path, capsys):
    data = write_scenes(tmp_path / "data", ("a",))
    write_image(tmp_path / "out.png", np.zeros((2, 2), np.uint8))
    assert main(["batch", str(data), "-o", str(tmp_path / "out.png"), *QUICK]) == 2
    assert "not a folder" in _error_line(capsys)


def test_warm_start_from_a_checkpoint_of_an_earlier_batch(tmp_path):
    data = write_scenes(tmp_path / "data", ("a", "b"))
    first = tmp_path / "first"
    assert main(["batch", str(data), "-o", str(first), *QUICK, "--quiet",
                 "--warm-start"]) == 0
    checkpoint = first / "states" / "b.pt"
    assert checkpoint.is_file()
    second = tmp_path / "second"
    assert main(["batch", str(data), "-o", str(second), *QUICK, "--quiet",
                 "--init", str(checkpoint)]) == 0
    assert read_image(second / "a" / "result.png").shape == (64, 64)
    assert (second / "a" / "result.png").read_bytes() != (first / "a" /
                                                         "result.png").read_bytes()


def test_a_warm_chain_over_frames_of_another_aspect_ratio_goes_on_and_says_so(tmp_path):
    data = write_scenes(tmp_path / "data", ("a", "b"))
    guide = read_image(data / "b" / "guide_rgb.png")[:, :32]  # half as wide
    write_image(data / "b" / "guide_rgb.png", guide, overwrite=True)
    write_image(data / "b" / "target_ir.png", guide[::4, ::4, 0].copy(), overwrite=True)
    out = tmp_path / "out"
    assert main(["batch", str(data), "-o", str(out), *QUICK, "--quiet",
                 "--warm-start"]) == 0
    rows = _summary(out)
    assert rows["a"]["note"] == ""
    assert "another aspect ratio" in rows["b"]["note"] and "started afresh" in rows["b"]["note"]


def test_every_pair_starts_from_a_loaded_warp(tmp_path):
    data = write_scenes(tmp_path / "data", ("a", "b"))
    model = CMSR(Config.preset("quick", max_iters=2, min_iters=2, align="affine"))
    model.fit(read_image(data / "a" / "target_ir.png"), read_image(data / "a" / "guide_rgb.png"))
    warp = model.save_warp(tmp_path / "rig.pt")
    out = tmp_path / "out"
    assert main(["batch", str(data), "-o", str(out), *QUICK, "--quiet", "--load-warp",
                 str(warp), "--freeze-warp"]) == 0
    assert {s: r["status"] for s, r in _summary(out).items()} == {"a": "ok", "b": "ok"}
    assert main(["batch", str(data), "-o", str(out), *QUICK, "--quiet", "--load-warp",
                 str(warp), "--freeze-warp"]) == 0
    assert {s: r["status"] for s, r in _summary(out).items()} == {"a": "skipped",
                                                                  "b": "skipped"}


def test_an_edited_output_is_kept_and_counted_and_a_second_batch_is_refused(tmp_path,
                                                                           capsys):
    data, out = write_scenes(tmp_path / "data", ("a",)), tmp_path / "out"
    assert main(["batch", str(data), "-o", str(out), *QUICK, "--quiet"]) == 0
    edited = np.full((64, 64), 3, np.uint8)
    write_image(out / "a" / "result.png", edited, overwrite=True)
    capsys.readouterr()
    assert main(["batch", str(data), "-o", str(out), *QUICK, "--seed", "5"]) == 1
    err = capsys.readouterr().err
    assert "1 kept because their outputs were changed since" in err
    assert np.array_equal(read_image(out / "a" / "result.png"), edited)
    assert _summary(out)["a"]["status"] == "conflict"
    with batch.lock_output_folder(out):
        assert main(["batch", str(data), "-o", str(out), *QUICK, "--overwrite"]) == 2
        line = _error_line(capsys)
        assert "another cmsr batch is writing to this folder" in line and str(out) in line
    assert main(["batch", str(data), "-o", str(out), *QUICK, "--overwrite",
                 "--quiet"]) == 0
    assert not np.array_equal(read_image(out / "a" / "result.png"), edited)
