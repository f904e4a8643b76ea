"""The command line end to end on tiny files: outputs, dtypes, figures, errors."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

import cmsr.cli.sr
from cmsr.cli import main
from cmsr.files import read_image, write_image
from cmsr.method.train import StepInfo
from cmsr.pictures.progress import TrainingProgress

QUICK = ["--preset", "quick", "--iters", "4", "--quiet"]




def _pair(tmp_path, dtype=np.uint8, target_name="t.png", guide_name="g.png"):
    rng = np.random.default_rng(0)
    guide = (rng.random((48, 48, 3)) * 255).astype(np.uint8)
    base = guide[::4, ::4, 0].astype(np.float64) / 255
    target = (base * (65535 if dtype == np.uint16 else 255 if dtype == np.uint8 else 1)
              ).astype(dtype)
    return (write_image(tmp_path / target_name, target),
            write_image(tmp_path / guide_name, guide))


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("cmsr: error:")
    assert "Traceback" not in err[0]
    return err[0]


@pytest.mark.parametrize(("dtype", "name"), [(np.uint8, "t.png"), (np.uint16, "t.png"),
                                             (np.float32, "t.tif")])
def test_sr_keeps_dtype_and_writes_the_guide_size(tmp_path, dtype, name):
    target, guide = _pair(tmp_path, dtype, target_name=name)
    out = tmp_path / ("out" + (".tif" if dtype == np.float32 else ".png"))
    assert main(["sr", "--target", str(target), "--guide", str(guide), "-o", str(out),
                 *QUICK]) == 0
    result = read_image(out)
    assert result.shape == (48, 48)
    assert result.dtype == dtype


def test_same_seed_gives_identical_files(tmp_path):
    target, guide = _pair(tmp_path)
    outs = [tmp_path / "a.png", tmp_path / "b.png"]
    for out in outs:
        assert main(["sr", "--target", str(target), "--guide", str(guide), "-o", str(out),
                     "--seed", "3", *QUICK]) == 0
    assert outs[0].read_bytes() == outs[1].read_bytes()


def test_save_figures_writes_pictures_and_history(tmp_path):
    target, guide = _pair(tmp_path)
    figures = tmp_path / "figs"
    assert main(["sr", "--target", str(target), "--guide", str(guide), "-o",
                 str(tmp_path / "o.png"), "--save-figures", str(figures), "--align", "affine",
                 *QUICK]) == 0
    for name in ("comparison.png", "loss_curve.png", "alignment.png"):
        picture = read_image(figures / name)
        assert picture.ndim == 3 and picture.shape[2] == 3 and picture.std() > 0
    lines = (figures / "history.csv").read_text().splitlines()
    assert lines[0].startswith("phase,step,loss")


def test_missing_target_is_one_line_error(tmp_path, capsys):
    _, guide = _pair(tmp_path)
    code = main(["sr", "--target", str(tmp_path / "nope.png"), "--guide", str(guide),
                 "-o", str(tmp_path / "o.png"), *QUICK])
    assert code == 2
    assert "nope.png" in _error_line(capsys)


def test_guide_smaller_than_target(tmp_path, capsys):
    target, guide = _pair(tmp_path)
    code = main(["sr", "--target", str(guide), "--guide", str(target), "-o",
                 str(tmp_path / "o.png"), *QUICK])
    assert code == 2
    assert "smaller" in _error_line(capsys)


def test_constant_target(tmp_path, capsys):
    _, guide = _pair(tmp_path)
    target = write_image(tmp_path / "c.png", np.full((12, 12), 7, np.uint8))
    assert main(["sr", "--target", str(target), "--guide", str(guide), "-o",
                 str(tmp_path / "o.png"), *QUICK]) == 2
    assert "constant" in _error_line(capsys)


def test_nan_in_guide(tmp_path, capsys):
    target, _ = _pair(tmp_path)
    guide = np.random.default_rng(1).random((48, 48)).astype(np.float32)
    guide[3, 3] = np.nan
    path = write_image(tmp_path / "g.npy", guide)
    assert main(["sr", "--target", str(target), "--guide", str(path), "-o",
                 str(tmp_path / "o.png"), *QUICK]) == 2
    assert "NaN" in _error_line(capsys)


def test_text_file_named_png(tmp_path, capsys):
    _, guide = _pair(tmp_path)
    fake = tmp_path / "fake.png"
    fake.write_text("not an image")
    assert main(["sr", "--target", str(fake), "--guide", str(guide), "-o",
                 str(tmp_path / "o.png"), *QUICK]) == 2
    assert "fake.png" in _error_line(capsys)


def test_existing_output_is_kept_without_overwrite(tmp_path, capsys):
    target, guide = _pair(tmp_path)
    out = tmp_path / "o.png"
    out.write_bytes(b"precious")
    assert main(["sr", "--target", str(target), "--guide", str(guide), "-o", str(out),
                 *QUICK]) == 2
    assert "--overwrite" in _error_line(capsys)
    assert out.read_bytes() == b"precious"


def test_output_equal_to_input_is_refused_even_with_overwrite(tmp_path, capsys):
    target, guide = _pair(tmp_path)
    before = target.read_bytes()
    assert main(["sr", "--target", str(target), "--guide", str(guide), "-o", str(target),
                 "--overwrite", *QUICK]) == 2
    assert "input" in _error_line(capsys)
    assert target.read_bytes() == before


def test_float_result_to_png_fails_before_training(tmp_path, capsys):
    target, guide = _pair(tmp_path, np.float32, target_name="t.tif")
    assert main(["sr", "--target", str(target), "--guide", str(guide), "-o",
                 str(tmp_path / "o.png"), *QUICK]) == 2
    assert ".tif" in _error_line(capsys)


def test_bad_scale(tmp_path, capsys):
    target, guide = _pair(tmp_path)
    assert main(["sr", "--target", str(target), "--guide", str(guide), "-o",
                 str(tmp_path / "o.png"), "--scale", "0", *QUICK]) == 2
    assert "scale" in _error_line(capsys)


def test_unknown_preset_is_a_usage_error(tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        main(["sr", "--target", "a", "--guide", "b", "-o", "c", "--preset", "nope"])
    assert exit_info.value.code == 2


def test_integer_result_png_can_not_hold_fails_before_training(tmp_path, capsys):
    _, guide = _pair(tmp_path)
    target = write_image(tmp_path / "t.npy",
                         np.arange(144, dtype=np.int16).reshape(12, 12) - 50)
    assert main(["sr", "--target", str(target), "--guide", str(guide), "-o",
                 str(tmp_path / "o.png"), *QUICK]) == 2
    assert "int16" in _error_line(capsys)
    assert not (tmp_path / "o.png").exists()


def test_existing_figures_are_refused_before_training(tmp_path, capsys, monkeypatch):
    target, guide = _pair(tmp_path)
    figures = tmp_path / "figs"
    figures.mkdir()
    (figures / "loss_curve.png").write_bytes(b"keep")
    monkeypatch.setattr(cmsr.cli.sr.CMSR, "fit", lambda *a, **k: pytest.fail("trained"))
    assert main(["sr", "--target", str(target), "--guide", str(guide), "-o",
                 str(tmp_path / "o.png"), "--save-figures", str(figures), *QUICK]) == 2
    assert "loss_curve.png" in _error_line(capsys)
    assert (figures / "loss_curve.png").read_bytes() == b"keep"
    assert not (tmp_path / "o.png").exists()


def test_invalid_option_value_is_a_usage_error(tmp_path, capsys):
    target, guide = _pair(tmp_path)
    assert main(["sr", "--target", str(target), "--guide", str(guide), "-o",
                 str(tmp_path / "o.png"), "--preset", "quick", "--iters", "0"]) == 2
    assert "max_iters" in _error_line(capsys)


def test_interrupt_exits_130_without_output(tmp_path, capsys, monkeypatch):
    target, guide = _pair(tmp_path)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cmsr.cli.sr.CMSR, "fit", interrupted)
    out = tmp_path / "o.png"
    assert main(["sr", "--target", str(target), "--guide", str(guide), "-o", str(out),
                 *QUICK]) == 130
    err = capsys.readouterr().err
    assert err.startswith("cmsr: interrupted") and "Traceback" not in err
    assert not out.exists()


def test_progress_and_summary_on_stderr(tmp_path, capsys):
    target, guide = _pair(tmp_path)
    out = tmp_path / "o.png"
    assert main(["sr", "--target", str(target), "--guide", str(guide), "-o", str(out),
                 "--preset", "quick", "--iters", "4"]) == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "4/4" in captured.err  # the tqdm bar
    assert "inference" in captured.err
    summary = captured.err.strip().splitlines()[-1]
    assert summary.startswith("cmsr: wrote") and "o.png" in summary
    assert "48x48 uint8" in summary and "4 steps" in summary


def test_progress_bar_marks_an_early_stop_and_new_stages():
    stream = io.StringIO()
    progress = TrainingProgress(file=stream)
    for step in range(1, 4):
        progress(StepInfo(step, 10, 0.5, 1e-3, 0.1 * step, stage=0, stages=2))
    for step in range(1, 11):
        progress(StepInfo(step, 10, 0.25, 1e-4, 0.1 * step, stage=1, stages=2))
    progress.close()
    text = stream.getvalue()
    assert progress.steps == 13
    assert "train 1/2" in text and "train 2/2" in text
    assert "3/10" in text and "stopped early" in text
    assert "10/10" in text
    assert text.count("stopped early") == 1


def test_quiet_progress_still_counts():
    stream = io.StringIO()
    progress = TrainingProgress(enabled=False, file=stream)
    for step in range(1, 6):
        progress(StepInfo(step, 10, 0.5, 1e-3, 0.1))
    progress.close()
    assert progress.steps == 5 and stream.getvalue() == ""


def test_version_and_help(capsys):
    for argv in (["--version"], ["-h"], ["sr", "-h"], ["demo", "-h"]):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert f"cmsr {cmsr.__version__}" in out
    assert "--invalid 0" in out  # an example in the epilog


# ------------------------------------------------------------------ saved state


def _sr(target, guide, out, *extra):
    return main(["sr", "--target", str(target), "--guide", str(guide), "-o", str(out),
                 *QUICK, *extra])


def test_save_warp_then_load_it_for_the_next_frame(tmp_path):
    target, guide = _pair(tmp_path)
    warp = tmp_path / "rig.pt"
    assert _sr(target, guide, tmp_path / "a.png", "--align", "full", "--save-warp",
               str(warp), "--save-checkpoint", str(tmp_path / "m.pt")) == 0
    assert warp.exists() and (tmp_path / "m.pt").exists()
    # --align is taken from the file; frozen: the warp is applied as saved
    assert _sr(target, guide, tmp_path / "b.png", "--load-warp", str(warp),
               "--freeze-warp", "--save-warp", str(tmp_path / "same.pt")) == 0
    before = torch.load(warp, weights_only=True)["state_dict"]
    after = torch.load(tmp_path / "same.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(before[name], after[name]) for name in before)
    assert _sr(target, guide, tmp_path / "c.png", "--init", str(tmp_path / "m.pt"),
               "--warm-iters", "2") == 0


def test_existing_warp_file_is_refused_before_training(tmp_path, capsys, monkeypatch):
    target, guide = _pair(tmp_path)
    (tmp_path / "rig.pt").write_bytes(b"keep")
    monkeypatch.setattr(cmsr.cli.sr.CMSR, "fit", lambda *a, **k: pytest.fail("trained"))
    assert _sr(target, guide, tmp_path / "o.png", "--align", "affine", "--save-warp",
               str(tmp_path / "rig.pt")) == 2
    assert "rig.pt: already exists" in _error_line(capsys)
    assert _sr(target, guide, tmp_path / "o.png", "--align", "none", "--save-warp",
               str(tmp_path / "w.pt")) == 2
    assert "--align none" in _error_line(capsys)
    assert _sr(target, guide, tmp_path / "o.png", "--freeze-warp") == 2
    assert "--load-warp" in _error_line(capsys)
    assert (tmp_path / "rig.pt").read_bytes() == b"keep"


@pytest.mark.parametrize(("content", "match"), [
    (b"not a warp at all", "is not a cmsr warp"),
    (b"PK\x03\x04broken", "is not a cmsr warp or is damaged"),
])
def test_unusable_warp_file_is_one_line_error(tmp_path, capsys, content, match):
    target, guide = _pair(tmp_path)
    (tmp_path / "w.pt").write_bytes(content)
    assert _sr(target, guide, tmp_path / "o.png", "--load-warp", str(tmp_path / "w.pt")) == 2
    assert match in _error_line(capsys)


def test_warp_of_another_structure_is_one_line_error(tmp_path, capsys):
    target, guide = _pair(tmp_path)
    assert _sr(target, guide, tmp_path / "a.png", "--align", "affine", "--save-warp",
               str(tmp_path / "w.pt")) == 0
    capsys.readouterr()
    assert _sr(target, guide, tmp_path / "b.png", "--align", "full", "--load-warp",
               str(tmp_path / "w.pt")) == 2
    assert "w.pt: was learned with align affine; this run uses align full" in _error_line(
        capsys)


@pytest.mark.parametrize("preset", ["thermal", "nir", "depth", "elevation", "temperature",
                                    "quick"])
def test_full_alignment_with_every_preset_gradual_and_figures(tmp_path, preset):
    target, guide = _pair(tmp_path)
    figures = tmp_path / "figs"
    assert main(["sr", "--target", str(target), "--guide", str(guide), "-o",
                 str(tmp_path / "o.png"), "--preset", preset, "--iters", "3", "--quiet",
                 "--align", "full", "--gradual", "--no-ensemble", "--save-figures",
                 str(figures)]) == 0
    assert read_image(figures / "alignment.png").std() > 0
    stages = {line.split(",")[0] for line in
              (figures / "history.csv").read_text().splitlines()[1:]}
    # x4: two gradual stages after the alignment's fits on the reduced pair (and the
    # guide-free network's training when the self-check chose it)
    assert {"stage 1", "stage 2"} <= stages <= {"align 1", "align 2", "stage 1", "stage 2",
                                                "guide-free"}


def test_a_dropped_alignment_check_that_learns_no_warp_says_so(tmp_path, capsys):
    rng = np.random.default_rng(0)
    guide = (rng.random((256, 256, 3)) * 255).astype(np.uint8)  # large enough for levels
    target = write_image(tmp_path / "t.png", guide[::4, ::4, 0].copy())
    guide_path = write_image(tmp_path / "g.png", guide)
    assert main(["sr", "--target", str(target), "--guide", str(guide_path), "-o",
                 str(tmp_path / "o.png"), "--preset", "quick", "--iters", "2",
                 "--align-levels", "2", "--align-check-margin", "0.99",
                 "--align-when-dropped", "none", "--no-ensemble", "--save-warp",
                 str(tmp_path / "rig.pt")]) == 0
    err = capsys.readouterr().err
    assert "coarse alignment dropped" in err and "no warp learned" in err
    assert (tmp_path / "rig.pt").stat().st_size > 0  # the identity, for the next frame


def test_alternating_scales_option(tmp_path, capsys):
    target, guide = _pair(tmp_path)
    assert _sr(target, guide, tmp_path / "a.png", "--alternating-scales", "0") == 0
    capsys.readouterr()
    assert _sr(target, guide, tmp_path / "b.png", "--alternating-scales", "1.5") == 2
    assert "alternating_scales must be in [0, 1]" in _error_line(capsys)


def test_warp_learning_rate_multipliers_reach_the_config():
    from cmsr.cli import build_parser
    from cmsr.cli.options import config_from_args

    args = build_parser().parse_args(["sr", "--target", "a", "--guide", "b", "-o", "c",
                                      "--align", "full", "--warp-lr", "20,2.5,0"])
    config = config_from_args(args)
    assert (config.warp_lr_affine, config.warp_lr_cpab, config.warp_lr_tps) == (20, 2.5, 0)
    default = config_from_args(build_parser().parse_args(
        ["sr", "--target", "a", "--guide", "b", "-o", "c"]))
    assert default.warp_lr_affine == 10.0
    assert (default.align, default.align_levels) == ("full", 2)
    levels = config_from_args(build_parser().parse_args(
        ["sr", "--target", "a", "--guide", "b", "-o", "c", "--align-levels", "3"]))
    assert levels.align_levels == 3
    assert default.align_check_margin == 0.05
    unchecked = config_from_args(build_parser().parse_args(
        ["sr", "--target", "a", "--guide", "b", "-o", "c", "--align-check-margin", "-1"]))
    assert unchecked.align_check_margin == -1.0
    assert default.align_when_dropped == "learn"
    stopped = config_from_args(build_parser().parse_args(
        ["sr", "--target", "a", "--guide", "b", "-o", "c", "--align-when-dropped", "none"]))
    assert stopped.align_when_dropped == "none"


@pytest.mark.parametrize(("preset", "clip", "local", "whole"), [
    ("depth", "auto", True, False), ("thermal", "auto", False, False),
    ("depth", "none", False, False), ("depth", "input", False, True),
    ("thermal", "local", True, False), ("thermal", "input", False, True),
])
def test_clip_option_reaches_the_config(preset, clip, local, whole):
    from cmsr.cli import build_parser
    from cmsr.cli.options import config_from_args

    config = config_from_args(build_parser().parse_args(
        ["batch", "data", "-o", "out", "--preset", preset, "--clip", clip]))
    assert (config.clamp_to_local_range, config.clip_to_input_range) == (local, whole)


@pytest.mark.parametrize(("preset", "extra", "radius"), [
    ("depth", [], 1), ("thermal", [], 0), ("depth", ["--guided-median", "0"], 0),
    ("nir", ["--guided-median", "2"], 2),
])
def test_guided_median_option_reaches_the_config(preset, extra, radius):
    from cmsr.cli import build_parser
    from cmsr.cli.options import config_from_args

    config = config_from_args(build_parser().parse_args(
        ["sr", "--target", "a", "--guide", "b", "-o", "c", "--preset", preset, *extra]))
    assert config.guided_median_radius == radius


@pytest.mark.parametrize(("command", "extra", "reach"), [
    (["sr", "--target", "a", "--guide", "b", "-o", "c", "--preset", "depth"], [], 1),
    (["sr", "--target", "a", "--guide", "b", "-o", "c", "--preset", "nir"], [], 0),
    (["eval", "data", "-o", "out", "--preset", "depth"], ["--guide-shift-search", "0"], 0),
    (["batch", "data", "-o", "out", "--preset", "elevation"],
     ["--guided-median", "1", "--guide-shift-search", "2"], 2),
])
def test_guide_shift_search_option_reaches_the_config(command, extra, reach):
    from cmsr.cli import build_parser
    from cmsr.cli.options import config_from_args

    config = config_from_args(build_parser().parse_args([*command, *extra]))
    assert config.guide_shift_search == reach


@pytest.mark.parametrize(("command", "extra", "strength"), [
    (["sr", "--target", "a", "--guide", "b", "-o", "c", "--preset", "thermal"], [], 0.0),
    (["sr", "--target", "a", "--guide", "b", "-o", "c", "--preset", "depth"],
     ["--edge-sharpening", "0"], 0.0),
    (["eval", "data", "-o", "out", "--preset", "nir"], ["--edge-sharpening", "0.25"], 0.25),
    (["batch", "data", "-o", "out", "--preset", "thermal"], ["--edge-sharpening", "1"], 1.0),
])
def test_edge_sharpening_option_reaches_the_config(command, extra, strength):
    from cmsr.cli import build_parser
    from cmsr.cli.options import config_from_args

    config = config_from_args(build_parser().parse_args([*command, *extra]))
    assert config.edge_sharpening == strength


@pytest.mark.parametrize(("command", "extra", "strength", "weight"), [
    (["sr", "--target", "a", "--guide", "b", "-o", "c", "--preset", "thermal"], [], 0.0, 0.2),
    (["sr", "--target", "a", "--guide", "b", "-o", "c", "--preset", "depth"], [], 0.5, 0.2),
    (["eval", "data", "-o", "out", "--preset", "depth"], ["--block-partition", "0"], 0.0, 0.2),
    (["batch", "data", "-o", "out", "--preset", "elevation"],
     ["--block-partition", "0.7", "--block-partition-guide", "0"], 0.7, 0.0),
])
def test_block_partition_options_reach_the_config(command, extra, strength, weight):
    from cmsr.cli import build_parser
    from cmsr.cli.options import config_from_args

    config = config_from_args(build_parser().parse_args([*command, *extra]))
    assert config.block_partition == strength and config.block_partition_guide == weight


@pytest.mark.parametrize(("preset", "extra", "margin"), [
    ("thermal", [], 0.02), ("depth", [], 0.2), ("thermal", ["--self-check-margin", "0.1"], 0.1),
    ("depth", ["--self-check-margin", "0"], 0.0),
])
def test_self_check_margin_option_reaches_the_config(preset, extra, margin):
    from cmsr.cli import build_parser
    from cmsr.cli.options import config_from_args

    config = config_from_args(build_parser().parse_args(
        ["eval", "data", "-o", "out", "--preset", preset, *extra]))
    assert config.self_check_margin == margin


@pytest.mark.parametrize(("preset", "extra", "margin"), [
    ("thermal", [], 0.2), ("nir", [], None), ("depth", [], None),
    ("nir", ["--self-check-margin-warped", "0.1"], 0.1),
])
def test_warped_margin_option_reaches_the_config(preset, extra, margin):
    from cmsr.cli import build_parser
    from cmsr.cli.options import config_from_args

    config = config_from_args(build_parser().parse_args(
        ["batch", "data", "-o", "out", "--preset", preset, *extra]))
    assert config.self_check_margin_warped == margin


def test_self_check_margin_out_of_range_is_a_one_line_error(tmp_path, capsys):
    target, guide = _pair(tmp_path)
    code = main(["sr", "--target", str(target), "--guide", str(guide), "-o",
                 str(tmp_path / "o.png"), "--self-check-margin", "1.5"])
    err = capsys.readouterr().err
    assert code != 0 and "self_check_margin" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o.png").exists()


@pytest.mark.parametrize(("flag", "value", "message"), [
    ("--guide-shift-search", "-1", "guide_shift_search must be an integer >= 0"),
    ("--block-partition", "1.5", "block_partition must be in [0, 1]"),
    ("--block-partition-guide", "-1", "block_partition_guide must be >= 0"),
])
def test_block_partition_out_of_range_is_a_one_line_error(tmp_path, capsys, flag, value,
                                                          message):
    target, guide = _pair(tmp_path)
    code = main(["sr", "--target", str(target), "--guide", str(guide), "-o",
                 str(tmp_path / "out.png"), "--preset", "quick", flag, value])
    err = capsys.readouterr().err
    assert code != 0 and message in err and len(err.strip().splitlines()) == 1
    assert "Traceback" not in err and not (tmp_path / "out.png").exists()


def test_edge_sharpening_out_of_range_is_a_one_line_error(tmp_path, capsys):
    target, guide = _pair(tmp_path)
    code = main(["sr", "--target", str(target), "--guide", str(guide), "-o",
                 str(tmp_path / "out.png"), "--preset", "quick", "--edge-sharpening", "1.5"])
    err = capsys.readouterr().err
    assert code != 0 and "edge_sharpening must be in [0, 1]" in err
    assert "Traceback" not in err and not (tmp_path / "out.png").exists()


def test_clip_input_keeps_a_16_bit_result_inside_the_input_range(tmp_path):
    target, guide = _pair(tmp_path, dtype=np.uint16)
    low = np.where(read_image(target) > 30000, 60000, 1000).astype(np.uint16)  # steps
    write_image(target, low, overwrite=True)
    assert _sr(target, guide, tmp_path / "o.png", "--clip", "input") == 0
    result = read_image(tmp_path / "o.png")
    assert result.dtype == np.uint16
    assert low.min() <= result.min() and result.max() <= low.max()
    assert _sr(target, guide, tmp_path / "free.png", "--clip", "none") == 0
    free = read_image(tmp_path / "free.png").astype(np.int64)
    assert free.min() < low.min() or free.max() > low.max()  # what the clip removed
    np.testing.assert_array_equal(result, np.clip(free, low.min(), low.max()))


def test_negative_alignment_levels_are_refused(tmp_path, capsys):
    target, guide = _pair(tmp_path)
    assert _sr(target, guide, tmp_path / "o.png", "--align-levels", "-1") == 2
    assert "align_levels must be >= 0" in _error_line(capsys)


@pytest.mark.parametrize("value", ["1,2", "1,2,x", "1,-2,3", "1,inf,3"])
def test_bad_warp_learning_rates_are_a_usage_error(value, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["sr", "--target", "a", "--guide", "b", "-o", "c", "--warp-lr", value])
    assert exit_info.value.code == 2
    assert "expected three numbers >= 0" in capsys.readouterr().err


def test_kernel_file_is_used_and_bad_kernels_are_one_line_errors(tmp_path, capsys):
    target, guide = _pair(tmp_path)
    np.save(tmp_path / "k.npy", np.ones((4, 4)))
    args = ["sr", "--target", str(target), "--guide", str(guide), *QUICK]
    assert main([*args, "-o", str(tmp_path / "a.png"), "--kernel", str(tmp_path / "k.npy")]) == 0
    assert main([*args, "-o", str(tmp_path / "b.png"), "--kernel", "cubic-aliased"]) == 0
    capsys.readouterr()
    np.save(tmp_path / "bad.npy", np.ones(4))
    for kernel, words in ((str(tmp_path / "bad.npy"), "2-D"), ("gauss", "kernel name"),
                          (str(tmp_path / "none.npy"), "no such file")):
        assert main([*args, "-o", str(tmp_path / "c.png"), "--kernel", kernel]) == 2
        line = _error_line(capsys)
        assert words in line and kernel in line
    assert not (tmp_path / "c.png").exists()


def test_self_check_decision_is_printed_and_drawn(tmp_path, capsys):
    target, guide = _pair(tmp_path)
    figures = tmp_path / "figs"
    assert main(["sr", "--target", str(target), "--guide", str(guide), "-o",
                 str(tmp_path / "o.png"), "--preset", "quick", "--iters", "6",
                 "--self-check", "--guide-dropout", "0.3", "--save-figures",
                 str(figures)]) == 0
    err = capsys.readouterr().err
    assert "self-check on" in err and "using " in err
    assert read_image(figures / "loss_curve.png").std() > 0
    assert main(["sr", "--target", str(target), "--guide", str(guide), "-o",
                 str(tmp_path / "p.png"), "--preset", "depth", "--iters", "3",
                 "--no-self-check", "--no-ensemble", "--align", "none"]) == 0
    assert "self-check" not in capsys.readouterr().err


@pytest.mark.parametrize(("extra", "logged"), [([], True), (["--guide-shift-search", "0"], False)])
def test_sr_logs_the_guide_shift_of_the_guided_finishes(tmp_path, capsys, extra, logged):
    target, guide = _pair(tmp_path)
    code = main(["sr", "--target", str(target), "--guide", str(guide), "-o",
                 str(tmp_path / "o.png"), "--preset", "quick", "--guided-median", "1",
                 "--guide-shift-search", "1", *extra])
    err = capsys.readouterr().err
    assert code == 0
    lines = [line for line in err.splitlines() if line.startswith("cmsr: guided finishes:")]
    assert len(lines) == (1 if logged else 0)
    if logged:
        assert "guide moved by" in lines[0] or "guide not moved" in lines[0]
