"""Running a batch: each job's input, its training and output, and the whole batch.

A *job* super-resolves one :class:`~cmsr.evaluation.datasets.Scene`. Its input is, in this order:

* the scene's real low-resolution capture (``target_*_lr*``, a manifest's ``lr``
  column), when there is one; the full-resolution target is then the ground truth
  (:func:`cmsr.evaluation.evaluate.load_pair` with the ``real`` protocol);
* the target itself, when it is smaller than the guide (no ground truth), or as large
  as the guide with :attr:`BatchSettings.inputs_at_guide_size` (a learned model that
  takes a low-resolution guide);
* otherwise the target is the ground truth, and the batch's
  :class:`~cmsr.evaluation.protocols.EvalProtocol` makes the input from it (as ``cmsr eval`` does;
  with ``swap`` always, from the scene's guide file).

In every case the protocol's ``target_band`` and ``guide_bands`` choose the bands of the
files in their roles as used (the target band of the truth and of the input alike), and
the files are read as plain images (no georeferencing; a GeoTIFF's nodata is not used).

With :attr:`BatchSettings.model` each job applies that learned model
(:class:`cmsr.learned.inference.LearnedModel`) instead of fitting cmsr on the pair;
it gets the guide as the protocol makes it, while a cmsr fit gets a reduced guide
enlarged back to the truth's size.

Results where a ground truth exists are scored (RMSE, MAE, PSNR, SSIM) and written in
the truth's dtype; others keep the input's dtype (:meth:`cmsr.CMSR.predict`). A scene's
``mask_*`` marks valid pixels of its target: where the target is the ground truth, the
mask is the truth's size and only limits the scoring, as in ``cmsr eval``; where the
target is the input, the fit leaves its invalid pixels out.

Nothing is lost when a batch stops: every finished job (success or failure) is
appended to ``OUT_DIR/manifest.jsonl``, the batch's store of finished runs
(:mod:`cmsr.files.runs`), as one JSON line (one ``write`` of the whole line, then
``fsync``). The record holds the sha256 of every input file, a key of the
settings (config, protocol, warm-start chain) and the sha256 of the written output;
on a rerun a job is skipped only when all of them still match the files on disk
(:func:`~cmsr.batches.results.finished_result`). Outputs are written atomically
(:func:`cmsr.files.write_image`), so a partial file never carries a finished name.
Before a job runs, its output path is *claimed* in the manifest; a claimed path
belongs to the batch and is replaced on a rerun without ``--overwrite``, while a
foreign file there is kept (the job fails with a one-line error). An output changed
since the batch wrote it (its sha256 no longer the recorded one) is kept too: the job
is recorded as a ``conflict`` and not run, unless ``--overwrite``. One batch at a time
writes to an output folder: :func:`run_batch` holds ``OUT_DIR/.cmsr-batch.lock``
(:mod:`filelock`) while it runs, and a second batch on the same folder is refused.

Warm start (:attr:`BatchSettings.warm_start`): the jobs form one chain, in name
order; each starts from the network and warp of the previous successful job (the
first from ``init``, a checkpoint file, or from scratch) and saves its own state to
``OUT_DIR/states/<name>.pt`` (:mod:`cmsr.method.checkpoint`) so a resumed chain continues
from the last finished job. Warm-started fits train for ``config.warm_start_iters``
steps from ``config.warm_learning_rate`` (see :meth:`cmsr.CMSR.fit`).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from filelock import FileLock, Timeout

from cmsr.batches.plan import SUMMARY_NAME, BatchSettings, Chain, Job, make_chains
from cmsr.batches.results import (
    JobResult,
    finished_result,
    input_hashes,
    saved_state,
    summary_csv,
)
from cmsr.errors import InputError, one_line
from cmsr.evaluation.evaluate import load_pair, read_bands
from cmsr.evaluation.metrics import Scores, data_range_for, score
from cmsr.evaluation.protocols import EvalProtocol
from cmsr.evaluation.usage import track_usage
from cmsr.files import read_image, same_file, write_image, write_text
from cmsr.files.runs import RunStore, sha256_file
from cmsr.learned.inference import LearnedModel
from cmsr.method.api import CMSR
from cmsr.method.checkpoint import save_checkpoint
from cmsr.method.normalize import to_dtype
from cmsr.method.train import StepInfo

# --------------------------------------------------------------------------- one job


@dataclass(frozen=True)
class JobInput:
    """What a job trains on and is scored against (``truth`` None: no ground truth)."""

    low: np.ndarray
    guide: np.ndarray
    truth: np.ndarray | None = None
    #: valid pixels of ``low``, as read (checked by the fit); None with a truth
    mask: np.ndarray | None = None
    #: ``(H, W)`` bool, valid pixels of ``truth``: they alone are scored
    truth_mask: np.ndarray | None = None
    scale: float | None = None


def load_input(job: Job) -> JobInput:
    """Read the job's files and make its input (see the module docstring)."""
    scene = job.scene
    protocol = job.settings.protocol
    learned = job.settings.model is not None
    if scene.target_lr is not None and not protocol.swap:
        real = EvalProtocol("real", reduce_guide=protocol.reduce_guide,
                            target_band=protocol.target_band, guide_bands=protocol.guide_bands)
        pair = load_pair(scene, real)
        return JobInput(pair.low, pair.guide if learned else pair.guide_at_truth_size(),
                        pair.truth, truth_mask=pair.mask)
    if not protocol.swap:
        target_bands = None if protocol.target_band is None else (protocol.target_band,)
        target = read_bands(scene.target, target_bands)
        guide = read_bands(scene.guide, protocol.guide_bands)
        smaller = target.shape[0] < guide.shape[0] or target.shape[1] < guide.shape[1]
        if smaller or (job.settings.inputs_at_guide_size
                       and target.shape[:2] == guide.shape[:2]):
            mask = read_image(scene.mask) if scene.mask is not None else None
            return JobInput(target, guide, mask=mask)
    pair = load_pair(scene, protocol)
    return JobInput(pair.low, pair.guide if learned else pair.guide_at_truth_size(),
                    pair.truth, truth_mask=pair.mask, scale=float(protocol.scale))


def _output_path(job: Job, result: np.ndarray) -> Path:
    """``job.output``, or its ``.tif`` sibling when PNG cannot hold ``result``."""
    if not job.automatic_suffix:
        return job.output
    channels = 1 if result.ndim == 2 else result.shape[2]
    if result.dtype in (np.uint8, np.uint16) and channels in (1, 3, 4):
        return job.output
    return job.output.with_suffix(".tif")


def run_job(job: Job, *, init: Any = None,
            on_step: Callable[[StepInfo], None] | None = None) -> tuple[JobResult, Any]:
    """Train on one scene, write its result and score it.

    Parameters
    ----------
    job:
        The scene and settings.
    init:
        Warm start: a state (:meth:`cmsr.CMSR.state` of the previous job) or a
        checkpoint file to start from (``CMSR.fit(init=...)``).
    on_step:
        Called after each training step.

    Returns
    -------
    (JobResult, state)
        The result (``status`` ``"ok"`` or ``"failed"``: any exception in the job is
        caught and recorded as one line; ``KeyboardInterrupt`` is not) and, with warm
        start and success, the model's state for the next job (else None).
    """
    hashes = input_hashes(job)
    key = job.key()
    start = time.perf_counter()
    model: CMSR | None = None
    try:
        with track_usage() as usage:
            data = load_input(job)
            if job.settings.model is not None:
                result = _apply_model(job, data)
            else:
                model = CMSR(job.settings.config).fit(
                    data.low, data.guide, scale=data.scale, mask=data.mask,
                    invalid_value=job.settings.invalid, on_step=on_step, init=init,
                    warp_init=job.settings.warp_init if job.after is None else None,
                    target_name=str(job.scene.target_lr or job.scene.target),
                    guide_name=str(job.scene.guide))
                result = model.predict()
            if data.truth is not None:
                result = to_dtype(result, data.truth.dtype)
            output = _output_path(job, result)
            if any(same_file(output, path) for path in job.inputs().values()):
                raise InputError("is also an input; refusing to overwrite it", str(output))
            write_image(output, result, overwrite=job.replace)
            metrics = Scores(rmse=math.nan, mae=math.nan, psnr=math.nan, ssim=math.nan)
            if data.truth is not None and data.truth.shape == result.shape:
                metrics = score(result, data.truth, data_range=data_range_for(data.truth),
                                mask=data.truth_mask)
            state, state_file, state_hash = None, "", ""
            if job.settings.warm_start and model is not None:
                state = model.state()
                save_checkpoint(job.state_path, state, overwrite=True)
                state_file, state_hash = str(job.state_path), sha256_file(job.state_path)
    except Exception as error:  # recorded; the batch goes on
        return JobResult(job.name, "failed", seconds=time.perf_counter() - start,
                         error=one_line(error), key=key, inputs=hashes), None
    history = model.history if model is not None else []
    return JobResult(
        job.name, "ok", seconds=usage.seconds, steps=model.training_steps if model else 0,
        final_loss=history[-1].loss if history else math.nan,
        peak_rss_mb=usage.peak_rss_mb, output=str(output), key=key, inputs=hashes,
        output_sha256=sha256_file(output), state=state_file, state_sha256=state_hash,
        note=(f"the warm start's warp {model.init_warp_skipped}: it started afresh"
              if model is not None and model.init_warp_skipped else ""), **metrics), state


def _apply_model(job: Job, data: JobInput) -> np.ndarray:
    """The learned model's result for the job's input (no fitting)."""
    assert job.settings.model is not None
    model = LearnedModel.load(job.settings.model)
    if data.scale is not None and data.scale != model.scale:
        raise InputError(f"enlarges x{model.scale}; the batch reduces by x{data.scale:g} "
                         "(--scale)", str(job.settings.model))
    return model.predict(data.low, data.guide, mask=data.mask,
                         invalid_value=job.settings.invalid,
                         target_name=str(job.scene.target_lr or job.scene.target),
                         guide_name=str(job.scene.guide))


def run_chain(chain: Chain, *, on_step: Callable[[str, StepInfo], None] | None = None
              ) -> Iterator[JobResult]:
    """Run a chain's jobs in order, each from the last successful job's state.

    ``on_step(scene name, step info)`` reports training progress.
    """
    state: Any = chain.init
    for job in chain.jobs:
        step = None if on_step is None else (
            lambda info, name=job.name: on_step(name, info))
        result, new_state = run_job(job, init=state, on_step=step)
        if new_state is not None:
            state = new_state
        yield result


# --------------------------------------------------------------------------- the batch


@dataclass(frozen=True)
class Triage:
    """What a run of the batch has to do (:func:`triage`).

    ``skipped``: jobs finished earlier and still valid (status ``"skipped"``);
    ``refused``: jobs failed before running (their scene has a problem, such as a
    manifest row naming a missing file, or a foreign file sits at the output);
    ``chains``: the work for the backend.
    """

    skipped: tuple[JobResult, ...]
    refused: tuple[JobResult, ...]
    chains: tuple[Chain, ...]


def triage(jobs: Sequence[Job], store: RunStore, settings: BatchSettings) -> Triage:
    """Sort ``jobs`` into the valid finished ones, the refused ones and the work left, and
    claim the outputs of the work left.

    Warm start: the longest run of finished jobs at the head of the chain is skipped
    (back to the last one whose saved state is intact); everything after it runs
    again, since each job depends on the one before it.
    """
    hashes = {job.name: input_hashes(job) for job in jobs}
    finished = {job.name: finished_result(store, job, hashes[job.name]) for job in jobs}
    if settings.warm_start:
        head = 0
        while head < len(jobs) and finished[jobs[head].name] is not None:
            head += 1
        while head > 0 and saved_state(store, jobs[head - 1]) is None:
            head -= 1
        done, todo = list(jobs[:head]), list(jobs[head:])
        init = saved_state(store, jobs[head - 1]) if head else settings.init
    else:
        done = [job for job in jobs if finished[job.name] is not None]
        todo = [job for job in jobs if finished[job.name] is None]
        init = settings.init
    # every done job has a finished result (the filter only tells the type checker)
    skipped = tuple(dataclasses.replace(result, status="skipped")
                    for result in (finished[job.name] for job in done) if result is not None)
    refused, runnable = [], []
    for job in todo:
        if job.scene.problem is not None:
            refused.append(JobResult(job.name, "failed", error=job.scene.problem,
                                     key=job.key(), inputs=hashes[job.name]))
            continue
        edited = [path for path in job.candidates if store.edited(path)]
        if edited and not settings.overwrite:
            refused.append(JobResult(job.name, "conflict", error=str(InputError(
                "was changed since this batch wrote it; kept (pass --overwrite to replace "
                "it)", source=str(edited[0]))), key=job.key(), inputs=hashes[job.name]))
            continue
        replace = settings.overwrite or any(store.owns(path) for path in job.candidates)
        foreign = [path for path in job.candidates if path.exists() and not replace]
        if foreign:
            refused.append(JobResult(job.name, "failed", error=str(InputError(
                "already exists; pass --overwrite to replace it", source=str(foreign[0]))),
                key=job.key(), inputs=hashes[job.name]))
            continue
        store.claim(job.name, job.candidates)
        runnable.append(dataclasses.replace(job, replace=True))
    return Triage(skipped, tuple(refused),
                    tuple(make_chains(runnable, init, warm_start=settings.warm_start)))


class Backend(Protocol):
    """Runs chains of jobs somewhere and reports each finished job (see cmsr.batches.backends)."""

    def run(self, chains: Sequence[Chain], on_result: Callable[[JobResult], None],
            on_step: Callable[[str, StepInfo], None] | None = None) -> None:
        """Run every chain; call ``on_result`` in the caller's thread per finished job."""


def run_batch(jobs: Sequence[Job], out_dir: Path, backend: Backend, *,
              settings: BatchSettings,
              on_result: Callable[[JobResult], None] | None = None,
              on_step: Callable[[str, StepInfo], None] | None = None,
              on_triage: Callable[[Triage], None] | None = None) -> list[JobResult]:
    """Run the jobs not finished before, record each as it ends, write the summary.

    Every result is appended to the manifest the moment it arrives; the summary
    (``OUT_DIR/summary.csv``, one row per job in plan order) is written at the end,
    also when the run is interrupted (``KeyboardInterrupt`` is re-raised after it;
    unfinished jobs are listed as ``interrupted``).

    Returns
    -------
    list[JobResult]
        One per job, in the order of ``jobs``.

    Raises
    ------
    InputError
        Another batch is running on ``out_dir`` (:func:`lock_output_folder`).
    """
    with lock_output_folder(out_dir):
        return _run_batch(jobs, out_dir, backend, settings=settings, on_result=on_result,
                          on_step=on_step, on_triage=on_triage)


LOCK_NAME = ".cmsr-batch.lock"


@contextmanager
def lock_output_folder(out_dir: Path) -> Iterator[None]:
    """Hold ``out_dir``'s batch lock (``LOCK_NAME``, created with the folder) while the
    block runs; :class:`InputError` at once if another batch holds it."""
    out_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(out_dir / LOCK_NAME)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise InputError("another cmsr batch is writing to this folder; wait for it to "
                         "finish or choose another -o", source=str(out_dir)) from None
    try:
        yield
    finally:
        lock.release()


def _run_batch(jobs: Sequence[Job], out_dir: Path, backend: Backend, *,
               settings: BatchSettings,
               on_result: Callable[[JobResult], None] | None,
               on_step: Callable[[str, StepInfo], None] | None,
               on_triage: Callable[[Triage], None] | None) -> list[JobResult]:
    """:func:`run_batch` inside the folder's lock."""
    store = RunStore(out_dir)
    plan = triage(jobs, store, settings)
    if on_triage is not None:
        on_triage(plan)
    results: dict[str, JobResult] = {r.scene: r for r in (*plan.skipped, *plan.refused)}
    for result in plan.refused:
        store.add(result.scene, result.record())
        if on_result is not None:
            on_result(result)

    def finished(result: JobResult) -> None:
        store.add(result.scene, result.record())
        results[result.scene] = result
        if on_result is not None:
            on_result(result)

    try:
        backend.run(plan.chains, finished, on_step)
    finally:
        ordered = [results.get(job.name, JobResult(job.name, "interrupted")) for job in jobs]
        write_text(out_dir / SUMMARY_NAME, summary_csv(ordered), overwrite=True)
    return ordered
