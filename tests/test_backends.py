"""Execution backends: sizing, same numbers everywhere, a killed worker."""

from __future__ import annotations

import multiprocessing
import os
import signal

import pytest
from test_batch import QUICK, statuses, write_scenes

from cmsr.batches.backends import (
    DaskBackend,
    InProcessBackend,
    LocalBackend,
    make_backend,
    plan_workers,
)
from cmsr.batches.plan import BatchSettings, plan_jobs
from cmsr.batches.results import JobResult
from cmsr.batches.run import run_batch
from cmsr.errors import InputError
from cmsr.evaluation.datasets import find_scenes


def test_plan_workers_fills_the_cores():
    assert plan_workers(cores=2) == (2, 1)            # default: one thread per worker
    assert plan_workers(cores=2, workers=1) == (1, 2)
    assert plan_workers(cores=2, threads=2) == (1, 2)
    assert plan_workers(cores=2, chains=1) == (1, 2)  # warm start: one chain
    assert plan_workers(cores=1, workers=3) == (3, 1)
    assert plan_workers(cores=16, threads=4, chains=2) == (2, 4)
    with pytest.raises(InputError, match="--workers"):
        plan_workers(cores=2, workers=0)


def test_make_backend_by_options():
    assert isinstance(make_backend(None, workers=0, threads=1, chains=3)[0], InProcessBackend)
    backend, text = make_backend(None, workers=None, threads=None, chains=5)
    assert isinstance(backend, LocalBackend) and "local processes" in text
    assert isinstance(make_backend("local-dask", workers=1, threads=1, chains=1)[0],
                      DaskBackend)
    assert make_backend("tcp://10.0.0.1:8786", workers=None, threads=None,
                        chains=1)[0].address == "tcp://10.0.0.1:8786"
    with pytest.raises(InputError, match="scheduler"):
        make_backend("somewhere", workers=None, threads=None, chains=1)


def _outputs(results: list[JobResult]) -> dict[str, tuple[str, str, str, str]]:
    """What must not depend on the backend (floats as text, so NaN equals NaN)."""
    return {r.scene: (r.status, r.output_sha256, repr(r.final_loss), repr(r.rmse))
            for r in results}


def test_every_backend_gives_the_same_results(tmp_path):
    data = write_scenes(tmp_path / "data", ("a", "b"), truth=("b",))
    settings = BatchSettings(config=QUICK)
    backends = {
        "here": InProcessBackend(threads=1),
        "processes": LocalBackend(workers=2, threads=1),
        "dask": DaskBackend(workers=1, threads=1, processes=False),
    }
    found = {}
    for name, backend in backends.items():
        out = tmp_path / name
        jobs = plan_jobs(find_scenes(data), out, settings)
        found[name] = _outputs(run_batch(jobs, out, backend, settings=settings))
        assert (out / "a" / "result.png").exists()
    assert found["here"]["a"][0] == found["here"]["b"][0] == "ok"
    assert found["processes"] == found["here"] == found["dask"]


def test_a_warm_start_chain_gives_the_same_results_on_dask(tmp_path):
    data = write_scenes(tmp_path / "data", ("a", "b", "c"))
    settings = BatchSettings(config=QUICK, warm_start=True)
    found = {}
    for name, backend in {"here": InProcessBackend(threads=1),
                          "dask": DaskBackend(workers=2, threads=1, processes=False)}.items():
        out = tmp_path / name
        jobs = plan_jobs(find_scenes(data), out, settings)
        found[name] = _outputs(run_batch(jobs, out, backend, settings=settings))
    assert [found["here"][s][0] for s in "abc"] == ["ok", "ok", "ok"]
    assert found["dask"] == found["here"]


def test_a_killed_worker_fails_its_job_and_the_rest_goes_on(tmp_path):
    data = write_scenes(tmp_path / "data", ("a", "b"))
    settings = BatchSettings(config=QUICK)
    jobs = plan_jobs(find_scenes(data), tmp_path / "out", settings)
    killed = []

    def kill_on_first_step(scene: str, info) -> None:
        if not killed:
            killed.append(scene)
            for child in multiprocessing.active_children():
                if child.name == "cmsr-batch-worker":
                    os.kill(child.pid, signal.SIGKILL)

    results = run_batch(jobs, tmp_path / "out", LocalBackend(workers=1, threads=1),
                        settings=settings, on_step=kill_on_first_step)
    assert killed == ["a"]
    assert statuses(results) == {"a": "failed", "b": "ok"}
    assert "killed by SIGKILL" in results[0].error
    assert statuses(run_batch(jobs, tmp_path / "out", InProcessBackend(threads=1),
                              settings=settings)) == {"a": "ok", "b": "skipped"}


def test_ctrl_c_stops_the_workers_and_keeps_what_finished(tmp_path):
    data = write_scenes(tmp_path / "data", ("a", "b"))
    settings = BatchSettings(config=QUICK)
    jobs = plan_jobs(find_scenes(data), tmp_path / "out", settings)

    def interrupt_during_b(scene: str, info) -> None:
        if scene == "b":  # Ctrl-C arrives in the caller while b trains
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_batch(jobs, tmp_path / "out", LocalBackend(workers=1, threads=1),
                  settings=settings, on_step=interrupt_during_b)
    assert not [c for c in multiprocessing.active_children() if c.name == "cmsr-batch-worker"]
    summary = (tmp_path / "out" / "summary.csv").read_text()
    assert "\na,ok," in summary and "\nb,interrupted," in summary
