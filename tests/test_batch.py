"""Batch jobs: planning, running one job, the results manifest, resuming."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest

import cmsr.batches.run as batch
from cmsr.batches.backends import InProcessBackend
from cmsr.batches.plan import MANIFEST_NAME, SUMMARY_NAME, BatchSettings, Job, plan_jobs
from cmsr.batches.results import JobResult, input_hashes
from cmsr.batches.run import run_batch, run_job, triage
from cmsr.errors import InputError
from cmsr.evaluation.datasets import find_scenes
from cmsr.files import read_image, write_image
from cmsr.files.runs import RunStore, sha256_file
from cmsr.method.config import Config

QUICK = Config.preset("quick", max_iters=2, min_iters=2)


def write_scenes(root: Path, names: tuple[str, ...] = ("a", "b", "c"), *,
                 truth: tuple[str, ...] = ()) -> Path:
    """Scene folders under ``root``: a 64x64 RGB guide and a 16x16 uint8 target each
    (a 64x64 target, i.e. ground truth, for the names in ``truth``)."""
    for index, name in enumerate(names):
        rng = np.random.default_rng(index)
        guide = (rng.random((64, 64, 3)) * 255).astype(np.uint8)
        target = guide[:, :, 0] if name in truth else guide[::4, ::4, 0].copy()
        write_image(root / name / "guide_rgb.png", guide)
        write_image(root / name / "target_ir.png", target)
    return root


def settings(**changes) -> BatchSettings:
    return BatchSettings(config=changes.pop("config", QUICK), **changes)


def run(data: Path, out: Path, **changes) -> list[JobResult]:
    chosen = settings(**changes)
    jobs = plan_jobs(find_scenes(data), out, chosen)
    return run_batch(jobs, out, InProcessBackend(threads=1), settings=chosen)


def statuses(results: list[JobResult]) -> dict[str, str]:
    return {result.scene: result.status for result in results}


# --------------------------------------------------------------------------- planning


def test_plan_names_outputs_by_scene_and_manifest_row(tmp_path):
    scenes = find_scenes(write_scenes(tmp_path / "data", ("a", "b")))
    jobs = plan_jobs(scenes, tmp_path / "out", settings())
    assert [job.output for job in jobs] == [tmp_path / "out" / n / "result.png"
                                            for n in ("a", "b")]
    assert all(job.automatic_suffix for job in jobs)
    rows = [dataclasses.replace(scenes[0], output=tmp_path / "mine.tif"), scenes[1]]
    jobs = plan_jobs(rows, tmp_path / "out", settings(), from_manifest=True)
    assert jobs[0].output == tmp_path / "mine.tif" and not jobs[0].automatic_suffix
    assert jobs[1].output == tmp_path / "out" / "b.png"


def test_plan_refuses_outputs_over_inputs_and_shared_outputs(tmp_path):
    scenes = find_scenes(write_scenes(tmp_path / "data", ("a", "b")))
    over_input = [dataclasses.replace(scenes[0], output=scenes[1].guide)]
    with pytest.raises(InputError, match="write over an input"):
        plan_jobs(over_input + scenes[1:], tmp_path / "out", settings())
    shared = [dataclasses.replace(s, output=tmp_path / "same.png") for s in scenes]
    with pytest.raises(InputError, match="both"):
        plan_jobs(shared, tmp_path / "out", settings())
    manifest = [dataclasses.replace(scenes[0], output=tmp_path / "out" / MANIFEST_NAME)]
    with pytest.raises(InputError, match="write over a file of the batch"):
        plan_jobs(manifest, tmp_path / "out", settings())
    (tmp_path / "out" / "states").mkdir(parents=True)
    init = tmp_path / "out" / "states" / "a.pt"
    init.write_bytes(b"checkpoint")  # a warm start would save a's state over its init
    with pytest.raises(InputError, match="write over an input"):
        plan_jobs(scenes, tmp_path / "out", settings(warm_start=True, init=init))


def test_warm_start_plan_chains_scenes_in_name_order(tmp_path):
    scenes = find_scenes(write_scenes(tmp_path / "data", ("b", "a", "c")))
    jobs = plan_jobs(list(reversed(scenes)), tmp_path / "out", settings(warm_start=True))
    assert [(job.name, job.after) for job in jobs] == [("a", None), ("b", "a"), ("c", "b")]
    start = tmp_path / "start.pt"
    jobs = plan_jobs(scenes, tmp_path / "out", settings(warm_start=True, init=start,
                                                        warp_init=start))
    assert [sorted(job.inputs()) for job in jobs] == [
        ["guide", "init", "target", "warp_init"], ["guide", "target"], ["guide", "target"]]
    assert jobs[1].key() != dataclasses.replace(jobs[1], after="c").key()


# --------------------------------------------------------------------------- one job


def test_run_job_writes_scores_and_measures(tmp_path):
    data = write_scenes(tmp_path / "data", ("gt", "lr"), truth=("gt",))
    jobs = plan_jobs(find_scenes(data), tmp_path / "out", settings())
    (scored, _), (plain, _) = (run_job(job) for job in jobs)
    assert scored.status == plain.status == "ok", (scored.error, plain.error)
    for result in (scored, plain):
        image = read_image(result.output)
        assert image.shape == (64, 64) and image.dtype == np.uint8
        assert result.steps == 2 and result.peak_rss_mb > 10 and result.seconds > 0
        assert math.isfinite(result.final_loss)
        assert result.output_sha256 == sha256_file(Path(result.output))
        assert set(result.inputs) == {"target", "guide"}
    assert all(math.isfinite(getattr(scored, m)) for m in ("rmse", "mae", "psnr", "ssim"))
    assert math.isnan(plain.rmse)


def test_a_truth_mask_scores_only_as_cmsr_eval_does(tmp_path):
    # "gt": a 64x64 truth reduced by the protocol; "real": a 64x64 truth with a 16x16
    # capture. Either way the mask_* file is the truth's size, not the input's: it must
    # not reach the fit of the 16x16 input, only the scoring (cmsr eval does the same).
    data = write_scenes(tmp_path / "data", ("gt", "real"), truth=("gt", "real"))
    write_image(data / "real" / "target_ir_lr.png",
                read_image(data / "real" / "target_ir.png")[::4, ::4].copy())
    mask = np.ones((64, 64), np.uint8)
    mask[:, 40:] = 0
    for name in ("gt", "real"):
        write_image(data / name / "mask_valid.png", mask)
    for job in plan_jobs(find_scenes(data), tmp_path / "out", settings()):
        result, _ = run_job(job)
        assert result.status == "ok", result.error
        assert set(result.inputs) >= {"target", "guide", "mask"}
        truth = read_image(job.scene.target).astype(np.float64)
        output = read_image(result.output).astype(np.float64)
        error = (output - truth)[:, :40]  # the masked-out columns do not count
        assert result.rmse == pytest.approx(math.sqrt(np.mean(error**2)))
        assert result.mae == pytest.approx(np.mean(np.abs(error)))


def test_float_results_go_to_tif(tmp_path):
    data = write_scenes(tmp_path / "data", ("a",))
    write_image(data / "a" / "target_ir.tif", np.linspace(280, 300, 256, dtype=np.float32)
                .reshape(16, 16))
    (data / "a" / "target_ir.png").unlink()
    (job,) = plan_jobs(find_scenes(data), tmp_path / "out", settings())
    result, _ = run_job(job)
    assert result.status == "ok", result.error
    assert result.output.endswith("result.tif")
    assert read_image(result.output).dtype == np.float32


def test_corrupt_input_fails_with_one_line_naming_the_file(tmp_path):
    data = write_scenes(tmp_path / "data", ("a",))
    (data / "a" / "target_ir.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    (job,) = plan_jobs(find_scenes(data), tmp_path / "out", settings())
    result, state = run_job(job)
    assert result.status == "failed" and state is None
    assert "target_ir.png" in result.error and "\n" not in result.error
    assert not (tmp_path / "out" / "a" / "result.png").exists()


# --------------------------------------------------------------------------- manifest


def test_manifest_skips_torn_lines_and_keeps_the_last_result(tmp_path):
    store = RunStore(tmp_path)
    store.add("a", JobResult("a", "failed", error="boom").record())
    store.add("a", JobResult("a", "ok", rmse=1.5).record())
    with open(store.path, "a") as fh:
        fh.write('{"kind": "result", "run": "b", "sta')  # a crash mid-line
    store.add("c", JobResult("c", "ok").record())
    loaded = RunStore(tmp_path)
    assert store.path.name == MANIFEST_NAME and sorted(loaded.records) == ["a", "c"]
    result = JobResult.from_record(loaded.get("a"))
    assert result.status == "ok" and result.rmse == 1.5
    lines = store.path.read_text().splitlines()
    assert json.loads(lines[-1])["scene"] == "c"
    assert math.isnan(JobResult.from_record(JobResult("x", "ok").record()).rmse)


def test_rerun_skips_only_jobs_whose_inputs_settings_and_output_match(tmp_path):
    data, out = write_scenes(tmp_path / "data"), tmp_path / "out"
    first = run(data, out)
    assert statuses(first) == {"a": "ok", "b": "ok", "c": "ok"}
    assert statuses(run(data, out)) == {"a": "skipped", "b": "skipped", "c": "skipped"}

    changed = read_image(data / "b" / "target_ir.png")[::-1]
    write_image(data / "b" / "target_ir.png", changed, overwrite=True)  # changed input
    (out / "c" / "result.png").unlink()                                # lost output
    again = run(data, out)
    assert statuses(again) == {"a": "skipped", "b": "ok", "c": "ok"}
    assert again[2].output_sha256 == first[2].output_sha256            # same numbers
    assert statuses(run(data, out, config=QUICK.replace(seed=1))) == {
        "a": "ok", "b": "ok", "c": "ok"}                               # changed settings
    summary = (out / SUMMARY_NAME).read_text().splitlines()
    assert summary[0].startswith("scene,status,seconds,steps,final_loss,rmse")
    assert len(summary) == 4


def test_interrupted_batch_resumes_where_it_stopped(tmp_path, monkeypatch):
    data, out = write_scenes(tmp_path / "data"), tmp_path / "out"
    real_run_job = batch.run_job

    def interrupted(job, **kwargs):
        if job.name == "b":
            raise KeyboardInterrupt
        return real_run_job(job, **kwargs)

    monkeypatch.setattr(batch, "run_job", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run(data, out)
    rows = [line.split(",")[:2] for line in (out / SUMMARY_NAME).read_text().splitlines()]
    assert rows[1:] == [["a", "ok"], ["b", "interrupted"], ["c", "interrupted"]]
    monkeypatch.setattr(batch, "run_job", real_run_job)
    assert statuses(run(data, out)) == {"a": "skipped", "b": "ok", "c": "ok"}


def test_a_failing_job_is_recorded_and_the_batch_goes_on(tmp_path, monkeypatch):
    data, out = write_scenes(tmp_path / "data"), tmp_path / "out"
    real_load_input = batch.load_input

    def load_input(job):
        if job.name == "b":
            raise RuntimeError("out of luck\nsecond line")
        return real_load_input(job)

    monkeypatch.setattr(batch, "load_input", load_input)
    results = run(data, out)
    assert statuses(results) == {"a": "ok", "b": "failed", "c": "ok"}
    assert results[1].error.startswith("RuntimeError: out of luck second line")
    monkeypatch.undo()
    assert statuses(run(data, out)) == {"a": "skipped", "b": "ok", "c": "skipped"}


def test_foreign_file_at_the_output_is_kept_unless_overwrite(tmp_path):
    data, out = write_scenes(tmp_path / "data", ("a", "b")), tmp_path / "out"
    write_image(out / "a" / "result.png", np.zeros((4, 4), np.uint8))
    results = run(data, out)
    assert statuses(results) == {"a": "failed", "b": "ok"}
    assert "already exists" in results[0].error
    assert read_image(out / "a" / "result.png").shape == (4, 4)
    assert statuses(run(data, out, overwrite=True)) == {"a": "ok", "b": "skipped"}
    (out / "b" / "result.png").unlink()  # its own file: replaced without --overwrite
    assert statuses(run(data, out)) == {"a": "skipped", "b": "ok"}


def test_an_output_edited_since_the_batch_wrote_it_is_a_kept_conflict(tmp_path):
    data, out = write_scenes(tmp_path / "data", ("a", "b")), tmp_path / "out"
    run(data, out, config=QUICK.replace(seed=1))
    edited = np.full((64, 64), 7, np.uint8)
    write_image(out / "a" / "result.png", edited, overwrite=True)  # the user's edit
    again = run(data, out)  # other settings: both jobs are due to run again
    assert statuses(again) == {"a": "conflict", "b": "ok"}
    assert "was changed since this batch wrote it" in again[0].error
    assert np.array_equal(read_image(out / "a" / "result.png"), edited)  # kept
    assert statuses(run(data, out)) == {"a": "conflict", "b": "skipped"}  # still kept
    replaced = run(data, out, overwrite=True)
    assert statuses(replaced) == {"a": "ok", "b": "skipped"}
    assert sha256_file(out / "a" / "result.png") == replaced[0].output_sha256
    assert not np.array_equal(read_image(out / "a" / "result.png"), edited)
    rows = [line.split(",")[:2] for line in (out / SUMMARY_NAME).read_text().splitlines()]
    assert rows[1:] == [["a", "ok"], ["b", "skipped"]]


def test_a_second_batch_on_the_same_folder_is_refused_while_the_first_runs(tmp_path):
    data, out = write_scenes(tmp_path / "data", ("a",)), tmp_path / "out"
    with batch.lock_output_folder(out):
        with pytest.raises(InputError, match="another cmsr batch is writing"):
            run(data, out)
        assert not (out / "a").exists()  # nothing computed
    assert statuses(run(data, out)) == {"a": "ok"}  # the lock is released


# --------------------------------------------------------------------------- warm start


def _finished(store: RunStore, job: Job, state: Path | None) -> None:
    """Record ``job`` as finished (with its output and, optionally, a saved state)."""
    write_image(job.output, np.zeros((64, 64), np.uint8), overwrite=True)
    state_file, state_hash = "", ""
    if state is not None:
        state.parent.mkdir(parents=True, exist_ok=True)
        state.write_bytes(job.name.encode())
        state_file, state_hash = str(state), sha256_file(state)
    store.add(job.name, JobResult(job.name, "ok", output=str(job.output), key=job.key(),
                                  inputs=input_hashes(job),
                                  output_sha256=sha256_file(job.output),
                                  state=state_file, state_sha256=state_hash).record())


def test_warm_start_resumes_after_the_last_job_with_an_intact_state(tmp_path):
    out = tmp_path / "out"
    chosen = settings(warm_start=True)
    jobs = plan_jobs(find_scenes(write_scenes(tmp_path / "data", ("a", "b", "c", "d"))),
                     out, chosen)
    store = RunStore(out)
    for job in jobs[:3]:
        _finished(store, job, job.state_path)
    plan = triage(jobs, RunStore(out), chosen)
    assert [r.scene for r in plan.skipped] == ["a", "b", "c"]
    (chain,) = plan.chains
    assert [job.name for job in chain.jobs] == ["d"] and chain.init == jobs[2].state_path

    jobs[2].state_path.write_bytes(b"damaged")  # c must run again, from b's state
    plan = triage(jobs, RunStore(out), chosen)
    assert [job.name for job in plan.chains[0].jobs] == ["c", "d"]
    assert plan.chains[0].init == jobs[1].state_path

    write_image(jobs[0].scene.guide, np.zeros((64, 64, 3), np.uint8), overwrite=True)
    plan = triage(jobs, RunStore(out), chosen)  # a changed: the whole chain
    assert not plan.skipped and len(plan.chains[0].jobs) == 4 and plan.chains[0].init is None


def test_warm_start_chain_passes_state_and_resumes_from_the_saved_one(tmp_path, monkeypatch):
    data = write_scenes(tmp_path / "data", ("a", "b", "c"))
    whole = run(data, tmp_path / "whole", warm_start=True)
    assert statuses(whole) == {"a": "ok", "b": "ok", "c": "ok"}
    for result in whole:
        assert Path(result.state).is_file()
        assert result.state_sha256 == sha256_file(Path(result.state))
    cold = run(data, tmp_path / "cold")
    assert whole[0].output_sha256 == cold[0].output_sha256  # a starts from scratch
    assert whole[1].output_sha256 != cold[1].output_sha256  # b starts from a

    real_run_job = batch.run_job

    def stop_at_c(job, **kwargs):
        if job.name == "c":
            raise KeyboardInterrupt
        return real_run_job(job, **kwargs)

    monkeypatch.setattr(batch, "run_job", stop_at_c)
    with pytest.raises(KeyboardInterrupt):
        run(data, tmp_path / "resumed", warm_start=True)
    monkeypatch.undo()
    resumed = run(data, tmp_path / "resumed", warm_start=True)
    assert statuses(resumed) == {"a": "skipped", "b": "skipped", "c": "ok"}
    assert [r.output_sha256 for r in resumed] == [r.output_sha256 for r in whole]
