"""``cmsr train``, ``cmsr sr --model``, ``cmsr batch --model`` and ``cmsr eval --methods
cspsr`` end to end with tiny models."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from cmsr.cli import main
from cmsr.files import read_image, write_image
from cmsr.learned.model_file import load_model

TINY = ["--blocks", "2", "--features", "8", "--max-disparity", "2", "--batch-size", "2",
        "--patch-size", "8", "--validation-every", "2", "--quiet"]
PAPER_SETTING = ["--swap", "--reduce-guide", "--disparity", "2", "--scale", "2"]


def make_data(root: Path, count: int = 3, size: int = 32) -> Path:
    rng = np.random.default_rng(0)
    for index in range(count):
        y, x = np.mgrid[0:size, 0:size] / size
        base = np.sin(5 * x + 3 * y + index) + 0.3 * rng.standard_normal((size, size))
        nir = np.clip(127 + 90 * base, 0, 255).astype(np.uint8)
        rgb = np.stack([nir, 255 - nir, nir // 2], axis=-1)
        folder = root / f"scene{index}"
        folder.mkdir(parents=True)
        write_image(folder / "target_nir.png", nir)
        write_image(folder / "guide_rgb.png", rgb)
    return root


def error_line(capsys: pytest.CaptureFixture[str]) -> str:
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("cmsr: error: "), lines
    return lines[0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("learned")
    data = make_data(root / "data")
    model = root / "vis.pt"
    assert main(["train", str(data), "-o", str(model), "--method", "cspsr", *PAPER_SETTING,
                 "--max-steps", "3", *TINY]) == 0
    return data, model


def test_train_writes_a_self_describing_model_and_a_checkpoint(
        trained: tuple[Path, Path]) -> None:
    _, model = trained
    _, info = load_model(model)
    assert (info.method, info.scale, info.target_bands, info.guide_bands) == ("cspsr", 2, 3, 1)
    assert info.config.guide_resolution == "low" and info.config.blocks == 2
    assert info.protocol["name"] == "bicubic-x2-swap-lowguide-disp2-seed0"
    assert info.training["steps"] == 3 and len(info.training["validation_pairs"]) == 1
    assert info.target_range.dtype == "uint8"
    assert (model.parent / "vis-checkpoint.pt").is_file()


def test_train_refuses_to_overwrite_and_resumes(trained: tuple[Path, Path], tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    data, model = trained
    argv = ["train", str(data), "-o", str(model), "--method", "cspsr", *PAPER_SETTING,
            "--max-steps", "5", *TINY]
    assert main(argv) == 2
    assert "already exists; pass --overwrite" in error_line(capsys)
    copy = tmp_path / "again.pt"
    checkpoint = model.parent / "vis-checkpoint.pt"
    assert main(["train", str(data), "-o", str(copy), "--method", "cspsr", *PAPER_SETTING,
                 "--max-steps", "5", "--resume", str(checkpoint),
                 "--checkpoint", str(tmp_path / "c.pt"), *TINY]) == 0
    assert load_model(copy)[1].training["steps"] == 5
    capsys.readouterr()
    assert main(["train", str(data), "-o", str(tmp_path / "x.pt"), "--method", "cspsr",
                 "--scale", "4", "--resume", str(checkpoint), *TINY]) == 2
    assert "trained for x2, not x4" in error_line(capsys)


def test_train_with_input_noise_records_it_and_resumes_only_with_it(
        trained: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data, model = trained
    noisy = tmp_path / "noisy.pt"
    argv = ["train", str(data), "-o", str(noisy), "--method", "cspsr", *PAPER_SETTING,
            "--input-noise", "0.05", "--max-steps", "2", *TINY]
    assert main(argv) == 0
    protocol = load_model(noisy)[1].protocol
    assert protocol["input_noise"] == 0.05
    assert protocol["name"] == "bicubic-x2-swap-lowguide-noise0.05-disp2-seed0"
    capsys.readouterr()
    clean_checkpoint = model.parent / "vis-checkpoint.pt"
    assert main([*argv[:3], str(tmp_path / "r.pt"), *argv[4:], "--resume",
                 str(clean_checkpoint), "--checkpoint", str(tmp_path / "c.pt")]) == 2
    assert "not bicubic-x2-swap-lowguide-noise0.05-disp2-seed0" in error_line(capsys)


def test_train_reports_bad_input_in_one_line(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    data = make_data(tmp_path / "data", count=2)
    base = ["train", str(data), "-o", str(tmp_path / "m.pt"), "--method", "cspsr",
            "--scale", "2", "--max-steps", "1", *TINY]
    assert main([*base, "--validation-fraction", "2"]) == 2
    assert "validation_fraction" in error_line(capsys)
    assert main(["train", str(tmp_path / "nowhere"), *base[2:]]) == 2
    assert "no such file or folder" in error_line(capsys)
    assert main([*base, "--protocol", "real", "--swap"]) == 2
    assert "swap needs ground truth" in error_line(capsys)


def test_sr_applies_a_model_without_fitting(trained: tuple[Path, Path], tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    _, model = trained
    rng = np.random.default_rng(5)
    target = rng.integers(0, 255, (12, 14, 3), dtype=np.uint8)
    guide = rng.integers(0, 255, (12, 14), dtype=np.uint8)
    write_image(tmp_path / "t.png", target)
    write_image(tmp_path / "g.png", guide)
    write_image(tmp_path / "big.png", np.kron(guide, np.ones((3, 3), np.uint8)))
    out = tmp_path / "out.png"
    argv = ["sr", "--model", str(model), "--target", str(tmp_path / "t.png"),
            "--guide", str(tmp_path / "g.png"), "-o", str(out)]
    assert main(argv) == 0
    result = read_image(out)
    assert result.shape == (24, 28, 3) and result.dtype == np.uint8
    assert "no fitting" in capsys.readouterr().err
    assert main(argv) == 2
    assert "already exists" in error_line(capsys)
    # a guide 3 times the target's size is neither the model's low resolution nor the
    # output's size (x2, which is reduced: tests/test_cli_bands.py)
    assert main([*argv[:6], str(tmp_path / "big.png"), "-o", str(tmp_path / "o2.png")]) == 2
    message = error_line(capsys)
    assert str(model) in message and "low resolution" in message
    assert main([*argv, "--overwrite", "--save-warp", str(tmp_path / "w.pt")]) == 2
    assert "--save-warp" in error_line(capsys)
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"PK\x03\x04 not really")
    assert main(["sr", "--model", str(broken), *argv[3:-1], str(tmp_path / "o3.png")]) == 2
    assert "broken.pt" in error_line(capsys)


def test_eval_runs_the_model_beside_bicubic_and_cmsr(trained: tuple[Path, Path],
                                                     tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]
                                                     ) -> None:
    data, model = trained
    report = tmp_path / "report"
    argv = ["eval", str(data), "--methods", "bicubic,cmsr,cspsr", *PAPER_SETTING,
            "--option", f"cspsr.model={model}", "-o", str(report), "--preset", "quick",
            "--iters", "2", "--no-ensemble", "--back-projection", "0", "--quiet",
            "--scenes", "scene0"]
    assert main(argv) == 0
    rows = list(csv.DictReader((report / "bicubic-x2-swap-lowguide-disp2-seed0.csv").open()))
    assert [(r["method"], r["status"]) for r in rows] == [
        ("bicubic", "ok"), ("cmsr", "ok"), ("cspsr", "ok")]
    assert all(float(r["psnr"]) > 10 for r in rows)
    assert main(argv) == 0  # resumed: the model's runs are cached like the others
    again = list(csv.DictReader((report / "bicubic-x2-swap-lowguide-disp2-seed0.csv").open()))
    assert [r["cached"] for r in again] == ["True"] * 3
    capsys.readouterr()
    assert main(["eval", str(data), "--methods", "cspsr", "-o", str(report), "--quiet"]) == 2
    assert "cspsr.model=MODEL.pt" in error_line(capsys)
    assert main(["eval", str(data), "--methods", "cspsr", "--option",
                 f"cspsr.model={tmp_path / 'none.pt'}", "-o", str(report), "--quiet"]) == 2
    assert "none.pt: does not exist" in error_line(capsys)


def test_batch_applies_the_model_to_every_pair(trained: tuple[Path, Path], tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    data, model = trained
    out = tmp_path / "out"
    argv = ["batch", str(data), "-o", str(out), "--model", str(model), *PAPER_SETTING,
            "--workers", "0", "--quiet"]
    assert main(argv) == 0
    rows = list(csv.DictReader((out / "summary.csv").open()))
    assert len(rows) == 3 and all(r["status"] == "ok" and float(r["psnr"]) > 10 for r in rows)
    assert read_image(out / "scene0" / "result.png").shape == (32, 32, 3)
    assert main(argv) == 0  # finished pairs are skipped
    assert all(r["status"] == "skipped"
               for r in csv.DictReader((out / "summary.csv").open()))
    capsys.readouterr()
    assert main([*argv, "--warm-start"]) == 2
    assert "--warm-start" in error_line(capsys)


def test_batch_takes_rig_frames_at_the_guide_size_as_inputs(trained: tuple[Path, Path],
                                                            tmp_path: Path) -> None:
    _, model = trained
    rng = np.random.default_rng(2)
    write_image(tmp_path / "vis.png", rng.integers(0, 255, (10, 12, 3), dtype=np.uint8))
    write_image(tmp_path / "nir.png", rng.integers(0, 255, (10, 12), dtype=np.uint8))
    (tmp_path / "frames.csv").write_text("target,guide\nvis.png,nir.png\n")
    out = tmp_path / "out"
    assert main(["batch", str(tmp_path / "frames.csv"), "-o", str(out), "--model",
                 str(model), "--workers", "0", "--quiet"]) == 0
    assert read_image(out / "vis.png").shape == (20, 24, 3)
