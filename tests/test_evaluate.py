"""Evaluation runs: scoring, the run store (resume), failures recorded, options, what
cmsr's self-check chose."""

from __future__ import annotations

import json
import math
import re
import time
from pathlib import Path

import numpy as np
import pytest

from cmsr.errors import InputError
from cmsr.evaluation.datasets import Scene
from cmsr.evaluation.evaluate import (
    MethodRun,
    evaluate,
    input_digest,
    keep_output,
    load_pair,
    make_method,
    method_settings,
    parse_method_options,
    parse_methods,
    run_key,
)
from cmsr.evaluation.protocols import EvalProtocol
from cmsr.evaluation.usage import current_rss_bytes, track_usage
from cmsr.files import write_image
from cmsr.files.runs import RunStore
from cmsr.method.config import Config

TINY = Config.preset("quick", max_iters=2, min_iters=2, self_ensemble=False,
                     back_projection_iters=0, gradual=False)
#: TINY with cmsr's run-time self-check (and a guide-free network trained for it).
CHECKED = TINY.replace(self_check=True, guide_dropout=0.3)
CHOICES = ("guided", "guide-free", "bicubic", "blend 0.25", "blend 0.5", "blend 0.75")


def make_scene(folder: Path, seed: int = 0, size: int = 32) -> Scene:
    """A smooth target and a guide whose first band equals it (so filters do well)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    truth = (127 + 100 * np.sin(3 * x + 2 * y + seed)).astype(np.uint8)
    guide = np.stack([truth, 255 - truth, rng.integers(0, 255, (size, size))], axis=2)
    folder.mkdir(parents=True)
    write_image(folder / "target_depth.png", truth)
    write_image(folder / "guide_rgb.png", guide.astype(np.uint8))
    return Scene(name=folder.name, guide=folder / "guide_rgb.png",
                 target=folder / "target_depth.png")


def test_parse_methods_rejects_unknown_and_repeated() -> None:
    assert parse_methods("bicubic,cmsr") == ["bicubic", "cmsr"]
    with pytest.raises(InputError, match="unknown method srcnn"):
        parse_methods("bicubic,srcnn")
    with pytest.raises(InputError, match="twice"):
        parse_methods("cmsr,cmsr")


def test_parse_method_options_literals_and_errors() -> None:
    assert parse_method_options(["p2p.iterations=5", "jbu.sigma_range=0.2"]) == {
        "p2p": {"iterations": 5}, "jbu": {"sigma_range": 0.2}}
    with pytest.raises(InputError, match=r"METHOD\.NAME=VALUE"):
        parse_method_options(["iterations=5"])
    with pytest.raises(InputError, match="takes no option"):
        parse_method_options(["jbu.colour=3"])
    with pytest.raises(InputError, match="training options"):
        parse_method_options(["cmsr.max_iters=3"])


def test_seeded_baselines_take_the_config_seed() -> None:
    method = make_method("p2p", Config(seed=7), {"p2p": {"iterations": 3}})
    assert method.seed == 7
    assert method_settings("p2p", Config(seed=7), {})["seed"] == 7
    assert "config" in method_settings("cmsr", Config(), {})


def test_warp_knobs_key_only_runs_that_learn_a_warp() -> None:
    none = Config(align="none")
    assert (method_settings("cmsr", none, {})
            == method_settings("cmsr", none.replace(tps_points=9, align_levels=0), {}))
    full = Config(align="full")
    assert (method_settings("cmsr", full, {})
            != method_settings("cmsr", full.replace(tps_points=9), {}))
    assert method_settings("zssr", full, {}) == method_settings("zssr", none, {})


def test_load_pair_makes_the_input_by_protocol(tmp_path: Path) -> None:
    scene = make_scene(tmp_path / "a", size=34)
    pair = load_pair(scene, EvalProtocol("avgpool", 4))
    assert pair.truth.shape == (32, 32) and pair.low.shape == (8, 8)
    assert np.isclose(pair.low[0, 0], pair.truth[:4, :4].mean())


def test_evaluate_scores_and_resumes(tmp_path: Path) -> None:
    scenes = [make_scene(tmp_path / "data" / name, seed=i) for i, name in enumerate("ab")]
    store = RunStore(tmp_path / "runs")
    protocol = EvalProtocol("bicubic", 2)
    first = evaluate(scenes, ["bicubic", "jbu", "cmsr"], protocol, store, config=TINY)
    assert [(r.scene, r.method) for r in first] == [
        ("a", "bicubic"), ("a", "jbu"), ("a", "cmsr"),
        ("b", "bicubic"), ("b", "jbu"), ("b", "cmsr")]
    assert all(r.status == "ok" and not r.cached for r in first)
    assert all(0 < r.rmse < 60 and r.psnr > 10 and -1 <= r.ssim <= 1 for r in first)
    assert all(r.seconds > 0 and r.peak_rss_mb > 10 for r in first)

    calls: list[str] = []
    again = evaluate(scenes, ["bicubic", "jbu", "cmsr"], protocol, store, config=TINY,
                     on_event=lambda e: calls.append(e.kind))
    assert all(r.cached for r in again)
    assert "step" not in calls  # nothing trained
    assert [r.rmse for r in again] == [r.rmse for r in first]

    # a different crop re-scores from the stored outputs without recomputing
    cropped = evaluate(scenes, ["bicubic"], protocol, store, config=TINY, crop=4)
    assert all(r.cached for r in cropped)
    assert cropped[0].rmse != first[0].rmse

    # another seed is another setting for cmsr, but not for the fixed filters
    reseeded = evaluate(scenes[:1], ["bicubic", "cmsr"], protocol, store,
                        config=Config.preset("quick", **{**TINY.__dict__, "seed": 1}))
    assert [r.cached for r in reseeded] == [True, False]


def test_changed_input_or_damaged_output_is_recomputed(tmp_path: Path) -> None:
    scene = make_scene(tmp_path / "a")
    store = RunStore(tmp_path / "runs")
    protocol = EvalProtocol("bicubic", 2)
    evaluate([scene], ["bicubic"], protocol, store, config=TINY)
    output = next((tmp_path / "runs").rglob("bicubic.npy"))
    damaged = np.load(output)
    damaged[0, 0] += 1
    np.save(output, damaged)
    assert not evaluate([scene], ["bicubic"], protocol, store, config=TINY)[0].cached
    assert evaluate([scene], ["bicubic"], protocol, store, config=TINY)[0].cached
    record = RunStore(tmp_path / "runs").get("bicubic-x2/a/bicubic")
    assert record["method"] == "bicubic" and len(record["output_sha256"]) == 64
    write_image(scene.target, np.zeros((32, 32), np.uint8) + 9, overwrite=True)
    assert not evaluate([scene], ["bicubic"], protocol, store, config=TINY)[0].cached


def test_a_run_kept_beside_its_output_by_an_earlier_cmsr_is_used(tmp_path: Path) -> None:
    scene = make_scene(tmp_path / "a")
    store = RunStore(tmp_path / "runs")
    evaluate([scene], ["bicubic"], EvalProtocol("bicubic", 2), store, config=TINY)
    record = store.get("bicubic-x2/a/bicubic")
    output = Path(record["output"])
    output.with_suffix(".json").write_text(json.dumps(
        {"key": record["key"], "output_sha256": record["output_sha256"], "seconds": 2.0,
         "peak_rss_mb": 50.0}))
    store.path.unlink()  # as before the shared store: the .npy and its .json only
    again = evaluate([scene], ["bicubic"], EvalProtocol("bicubic", 2), RunStore(tmp_path / "runs"),
                     config=TINY)
    assert again[0].cached and again[0].seconds == 2.0


def test_cmsr_runs_record_what_their_self_check_chose(tmp_path: Path) -> None:
    scene = make_scene(tmp_path / "a")
    store = RunStore(tmp_path / "runs")
    protocol = EvalProtocol("bicubic", 2)
    first = evaluate([scene], ["bicubic", "zssr", "cmsr"], protocol, store, config=CHECKED)
    assert [r.guide_choice for r in first[:2]] == ["", ""]  # no self-check in these
    assert [r.self_check_errors for r in first[:2]] == ["", ""]
    choice = first[2].guide_choice
    assert choice in CHOICES
    errors = first[2].self_check_errors
    assert re.fullmatch(r"guided [0-9.e-]+, guide-free [0-9.e-]+, bicubic [0-9.e-]+"
                        r"(, guide-free again [0-9.e-]+)?", errors)
    record = store.get("bicubic-x2/a/cmsr")
    assert record is not None and record["guide_choice"] == choice
    assert record["self_check_errors"] == errors
    assert store.get("bicubic-x2/a/bicubic")["guide_choice"] == ""

    # a stored run gives the choice its record holds
    other = "guide-free" if choice != "guide-free" else "guided"
    keep_output(store, protocol.name, "a", "cmsr", record["key"], np.load(record["output"]),
                seconds=1.0, peak_rss_mb=1.0, guide_choice=other)
    again = evaluate([scene], ["cmsr"], protocol, RunStore(tmp_path / "runs"), config=CHECKED)
    assert again[0].cached and again[0].guide_choice == other

    assert again[0].self_check_errors == ""  # the record kept above has none
    unchecked = evaluate([scene], ["cmsr"], protocol, store, config=TINY)
    assert not unchecked[0].cached and unchecked[0].guide_choice == ""
    assert unchecked[0].self_check_errors == ""


def test_keep_output_takes_only_decisions(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="not a decision: guide"):
        keep_output(RunStore(tmp_path / "runs"), "p", "a", "cmsr", "k",
                    np.zeros((2, 2), np.float32), seconds=1.0, peak_rss_mb=1.0, guide="x")


def test_cmsr_runs_record_what_their_alignment_check_did(tmp_path: Path) -> None:
    scene = make_scene(tmp_path / "a", size=128)  # large enough for two coarse levels
    store = RunStore(tmp_path / "runs")
    protocol = EvalProtocol("bicubic", 2)
    dropping = TINY.replace(align="full", align_level_iters=2, align_check_margin=0.99)
    first = evaluate([scene], ["bicubic", "cmsr"], protocol, store, config=dropping)
    assert [r.alignment for r in first] == ["", "dropped"]
    assert store.get("bicubic-x2/a/cmsr")["alignment"] == "dropped"
    again = evaluate([scene], ["cmsr"], protocol, RunStore(tmp_path / "runs"),
                     config=dropping)
    assert again[0].cached and again[0].alignment == "dropped"
    unaligned = evaluate([scene], ["cmsr"], protocol, store, config=TINY.replace(align="none"))
    assert unaligned[0].alignment == ""


def test_cmsr_runs_record_what_their_guide_shift_search_did(tmp_path: Path) -> None:
    scene = make_scene(tmp_path / "a")
    store = RunStore(tmp_path / "runs")
    protocol = EvalProtocol("bicubic", 2)
    searching = TINY.replace(guided_median_radius=1, guide_shift_search=1)
    first = evaluate([scene], ["bicubic", "zssr", "cmsr"], protocol, store, config=searching)
    shift = first[2].guide_shift
    assert re.fullmatch(r"not moved|moved \(-?[01], -?[01]\)", shift)
    assert [r.guide_shift for r in first[:2]] == ["", ""]  # they read no guide
    assert store.get("bicubic-x2/a/cmsr")["guide_shift"] == shift
    assert store.get("bicubic-x2/a/zssr")["guide_shift"] == ""
    again = evaluate([scene], ["cmsr"], protocol, RunStore(tmp_path / "runs"),
                     config=searching)
    assert again[0].cached and again[0].guide_shift == shift
    without = evaluate([scene], ["cmsr"], protocol, store,
                       config=searching.replace(guide_shift_search=0))
    assert not without[0].cached and without[0].guide_shift == ""


def test_a_config_field_added_later_is_left_out_of_the_key_at_its_default() -> None:
    aligned = TINY.replace(align="full")
    assert "align_when_dropped" not in method_settings("cmsr", aligned, {})["config"]
    stopped = method_settings("cmsr", aligned.replace(align_when_dropped="none"), {})
    assert stopped["config"]["align_when_dropped"] == "none"


def test_a_cmsr_run_stored_without_a_choice_is_found_under_the_same_key(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    scene = make_scene(tmp_path / "a")
    protocol = EvalProtocol("bicubic", 2)
    store = RunStore(tmp_path / "runs")
    first = evaluate([scene], ["cmsr"], protocol, store, config=CHECKED)
    record = store.get("bicubic-x2/a/cmsr")
    assert record is not None and record["guide_choice"] == first[0].guide_choice != ""
    # the key comes from the inputs and settings alone, as before choices were kept
    assert record["key"] == run_key(input_digest(load_pair(scene, protocol)),
                                    method_settings("cmsr", CHECKED, {}))

    # a record written before choices were kept: the same line without the field
    lines = [json.loads(line) for line in store.path.read_text().splitlines()]
    for line in lines:
        line.pop("guide_choice", None)
    store.path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    again = evaluate([scene], ["cmsr"], protocol, RunStore(tmp_path / "runs"), config=CHECKED)
    assert again[0].cached and again[0].guide_choice == ""
    assert again[0].rmse == first[0].rmse

    # another choice on the same inputs and settings is kept under the same key
    import cmsr.evaluation.evaluate as module
    monkeypatch.setattr(module, "guide_choice", lambda check: "bicubic")
    store = RunStore(tmp_path / "runs")
    redone = evaluate([scene], ["cmsr"], protocol, store, config=CHECKED, recompute=True)
    assert not redone[0].cached and redone[0].guide_choice == "bicubic"
    assert store.get("bicubic-x2/a/cmsr")["key"] == record["key"]


def test_failures_are_recorded_and_the_rest_goes_on(tmp_path: Path) -> None:
    good = make_scene(tmp_path / "good")
    broken = make_scene(tmp_path / "broken")
    broken.target.write_bytes(b"not a png")
    results = evaluate([broken, good], ["bicubic", "p2p"], EvalProtocol("bicubic", 2),
                       RunStore(tmp_path / "runs"), config=TINY,
                       options={"p2p": {"iterations": 0}})
    assert [r.status for r in results[:2]] == ["failed", "failed"]
    assert "broken" in results[0].error and math.isnan(results[0].rmse)
    assert results[2].status == "ok"
    assert results[3].status == "failed" and "iterations" in results[3].error


def test_a_stopped_evaluation_keeps_what_finished(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    scenes = [make_scene(tmp_path / name) for name in ("a", "b")]
    store = RunStore(tmp_path / "runs")
    import cmsr.evaluation.evaluate as module

    real = module.run_method

    def stop_at_second_run(name: str, pair: object, *args: object, **kwargs: object
                           ) -> MethodRun:
        if calls:
            raise KeyboardInterrupt
        calls.append(name)
        return real(name, pair, *args, **kwargs)

    calls: list[str] = []
    monkeypatch.setattr(module, "run_method", stop_at_second_run)
    with pytest.raises(KeyboardInterrupt):
        evaluate(scenes, ["bicubic", "jbu"], EvalProtocol("bicubic", 2), store, config=TINY)
    monkeypatch.setattr(module, "run_method", real)
    resumed = evaluate(scenes, ["bicubic", "jbu"], EvalProtocol("bicubic", 2), store,
                       config=TINY)
    assert [r.cached for r in resumed] == [True, False, False, False]


def test_track_usage_sees_a_large_allocation_freed_inside_the_block() -> None:
    before = current_rss_bytes()
    with track_usage() as usage:
        block = np.ones(80 * 2**20 // 8)
        total = block.sum()
        del block
        time.sleep(0.05)
    assert total > 0 and usage.seconds >= 0.05
    assert usage.peak_rss_bytes >= before + 60 * 2**20
