"""Batch runs: the plan of jobs, the manifest of finished ones, and running one job.

A *job* super-resolves one :class:`~cmsr.evaluation.datasets.Scene`. Its input is, in this order:

* the scene's real low-resolution capture (``target_*_lr*``, a manifest's ``lr``
  column), when there is one; the full-resolution target is then the ground truth
  (:func:`cmsr.evaluation.evaluate.load_pair` with the ``real`` protocol);
* the target itself, when it is smaller than the guide (no ground truth);
* otherwise the target is the ground truth, and the batch's
  :class:`~cmsr.evaluation.protocols.Protocol` makes the input from it (as ``cmsr eval`` does).

Results where a ground truth exists are scored (RMSE, MAE, PSNR, SSIM) and written in
the truth's dtype; others keep the input's dtype (:meth:`cmsr.CMSR.predict`).

Nothing is lost when a batch stops: every finished job (success or failure) is
appended to ``OUT_DIR/manifest.jsonl`` as one JSON line (one ``write`` of the whole
line, then ``fsync``). The record holds the sha256 of every input file, a key of the
settings (config, protocol, warm-start chain) and the sha256 of the written output;
on a rerun a job is skipped only when all of them still match the files on disk
(:meth:`Manifest.finished`). Outputs are written atomically
(:func:`cmsr.files.write_image`), so a partial file never carries a finished name.
Before a job runs, its output path is *claimed* in the manifest; a claimed path
belongs to the batch and is replaced on a rerun without ``--overwrite``, while a
foreign file there is kept (the job fails with a one-line error).

Warm start (:attr:`BatchSettings.warm_start`): the jobs form one chain, in name
order; each starts from the network and warp of the previous successful job (the
first from ``init``, a checkpoint file, or from scratch) and saves its own state to
``OUT_DIR/states/<name>.pt`` (:mod:`cmsr.method.checkpoint`) so a resumed chain continues
from the last finished job. Warm-started fits train for ``config.warm_start_iters``
steps from ``config.warm_learning_rate`` (see :meth:`cmsr.CMSR.fit`).
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import hashlib
import io as text_io
import json
import math
import os
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar
from typing import Protocol as TypingProtocol

import numpy as np

from cmsr import __version__
from cmsr.errors import InputError
from cmsr.evaluation.datasets import Scene
from cmsr.evaluation.evaluate import load_pair
from cmsr.evaluation.metrics import data_range_for, score
from cmsr.evaluation.protocols import Protocol
from cmsr.evaluation.usage import track_usage
from cmsr.files import read_image, same_file, write_image, write_text
from cmsr.method.api import CMSR
from cmsr.method.checkpoint import save_checkpoint
from cmsr.method.config import Config
from cmsr.method.train import StepInfo

__all__ = [
    "MANIFEST_NAME",
    "STATES_FOLDER",
    "SUMMARY_NAME",
    "Backend",
    "BatchSettings",
    "Chain",
    "Job",
    "JobResult",
    "Manifest",
    "Schedule",
    "make_chains",
    "plan_jobs",
    "run_batch",
    "run_chain",
    "run_job",
    "schedule",
    "sha256_file",
    "summary_csv",
]

MANIFEST_NAME = "manifest.jsonl"
"""The results manifest in OUT_DIR: one JSON line per claim and per finished job."""

SUMMARY_NAME = "summary.csv"
"""The per-scene summary in OUT_DIR, rewritten at the end of every run."""

STATES_FOLDER = "states"
"""Warm start: each job's network and warp are saved as ``OUT_DIR/states/<name>.pt``."""

#: Bumped when a change of this module makes earlier results invalid.
BATCH_VERSION = 1

#: Ways a job ends; ``skipped`` = finished in an earlier run and still valid,
#: ``interrupted`` = not finished because the batch was stopped.
STATUSES = ("ok", "failed", "skipped", "interrupted")


# --------------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class BatchSettings:
    """What every job of a batch shares.

    Attributes
    ----------
    config:
        Training and inference settings (``threads`` is set by the backend).
    protocol:
        How the input is made from a ground-truth target (``avgpool`` or ``bicubic``).
    invalid:
        A target value meaning "no measurement" (e.g. 0 in depth maps).
    warm_start:
        Run the jobs as one chain, each starting from the previous one's state.
    init:
        A checkpoint to start from: the chain's first job with ``warm_start``, every
        job without it.
    warp_init:
        A warp file (or checkpoint) the alignment starts from, for the same jobs as
        ``init`` (``CMSR.fit(warp_init=...)``); later jobs of a warm-start chain take
        the warp of the job before.
    overwrite:
        Replace output files the batch did not write itself.
    """

    config: Config
    protocol: Protocol = field(default_factory=Protocol)
    invalid: float | None = None
    warm_start: bool = False
    init: Path | None = None
    warp_init: Path | None = None
    overwrite: bool = False


@dataclass(frozen=True)
class Job:
    """One scene to super-resolve.

    Attributes
    ----------
    scene:
        The files.
    output:
        Where the result goes. With ``automatic_suffix`` the ``.png`` is replaced by
        ``.tif`` when PNG cannot hold the result (float data, 2 or 5+ bands).
    settings:
        The batch's shared settings.
    out_dir:
        The batch's output folder (for the warm-start state file).
    after:
        Warm start: the scene before this one in the chain (part of the job's key).
    replace:
        The output may be replaced if it exists (it is the batch's own, or
        ``--overwrite``).
    """

    scene: Scene
    output: Path
    settings: BatchSettings
    out_dir: Path
    automatic_suffix: bool = False
    after: str | None = None
    replace: bool = False

    @property
    def name(self) -> str:
        """The scene's name."""
        return self.scene.name

    @property
    def candidates(self) -> tuple[Path, ...]:
        """Every path the result may be written to."""
        if self.automatic_suffix:
            return (self.output, self.output.with_suffix(".tif"))
        return (self.output,)

    @property
    def state_path(self) -> Path:
        """Where a warm-started job saves its network and warp."""
        return self.out_dir / STATES_FOLDER / f"{self.name}.pt"

    def inputs(self) -> dict[str, Path]:
        """The files the result depends on, by role."""
        roles = {"target": self.scene.target, "guide": self.scene.guide,
                 "target_lr": self.scene.target_lr, "mask": self.scene.mask,
                 "init": self.settings.init if self.after is None else None,
                 "warp_init": self.settings.warp_init if self.after is None else None}
        return {role: path for role, path in roles.items() if path is not None}

    def key(self) -> str:
        """sha256 of everything besides the input files that decides the result."""
        config = dataclasses.asdict(self.settings.config)
        config.pop("threads", None)
        settings = {
            "batch": BATCH_VERSION, "cmsr": __version__, "config": config,
            "protocol": self.settings.protocol.name, "invalid": self.settings.invalid,
            "warm_start": self.settings.warm_start, "after": self.after,
        }
        text = json.dumps(settings, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Chain:
    """Jobs one worker runs in order, handing each job's state to the next (warm start).

    ``init``: the checkpoint the first job starts from (None: from scratch).
    """

    jobs: tuple[Job, ...]
    init: Path | None = None


def plan_jobs(scenes: Sequence[Scene], out_dir: Path, settings: BatchSettings, *,
              from_manifest: bool = False) -> list[Job]:
    """One :class:`Job` per scene, with its output path; checked before any work.

    Outputs: a manifest row's ``output`` column, else ``OUT_DIR/<name>.png`` for
    manifest rows and ``OUT_DIR/<name>/result.png`` for scene folders (both become
    ``.tif`` when PNG cannot hold the result). With ``settings.warm_start`` the jobs
    are sorted by name.

    Raises
    ------
    InputError
        Two scenes would write the same file, or an output is one of the inputs (or
        the batch's own manifest, summary or a checkpoint).
    """
    ordered = sorted(scenes, key=lambda s: s.name) if settings.warm_start else list(scenes)
    jobs = []
    previous: str | None = None
    for scene in ordered:
        if scene.output is not None:
            output, automatic = scene.output, False
        elif from_manifest:
            output, automatic = out_dir / f"{scene.name}.png", True
        else:
            output, automatic = out_dir / scene.name / "result.png", True
        jobs.append(Job(scene, output, settings, out_dir, automatic_suffix=automatic,
                        after=previous if settings.warm_start else None))
        previous = scene.name
    _check_outputs(jobs, out_dir)
    return jobs


def _identity(path: Path) -> set[object]:
    """What makes two paths the same file: the resolved path, and the inode if it exists."""
    keys: set[object] = {path.resolve()}
    with contextlib.suppress(OSError):
        info = path.stat()
        keys.add((info.st_dev, info.st_ino))
    return keys


def _check_outputs(jobs: Sequence[Job], out_dir: Path) -> None:
    """No two jobs write one file; no output (or warm-start state) is an input or a file
    of the batch's own."""
    protected: dict[object, str] = {}
    for job in jobs:
        for path in job.inputs().values():
            protected.update(dict.fromkeys(_identity(path), "an input"))
    for path in (out_dir / MANIFEST_NAME, out_dir / SUMMARY_NAME):
        protected.update(dict.fromkeys(_identity(path), "a file of the batch"))
    written: dict[object, str] = {}
    for job in jobs:
        paths = list(job.candidates)
        if job.settings.warm_start:
            paths.append(job.state_path)
        for path in paths:
            keys = _identity(path)
            clash = next((protected[key] for key in keys if key in protected), None)
            if clash is not None:
                raise InputError(f"scene {job.name!r} would write over {clash}; refusing",
                                 source=str(path))
            other = next((written[key] for key in keys if key in written), None)
            if other is not None:
                raise InputError(f"scenes {other!r} and {job.name!r} would both write this "
                                 "file", source=str(path))
            written.update(dict.fromkeys(keys, job.name))


def make_chains(jobs: Sequence[Job], init: Path | None = None, *, warm_start: bool
                ) -> list[Chain]:
    """Warm start: all jobs in one chain starting from ``init``; else one chain per job
    (each starting from ``init``, when given)."""
    if not jobs:
        return []
    if warm_start:
        return [Chain(tuple(jobs), init)]
    return [Chain((job,), init) for job in jobs]


# --------------------------------------------------------------------------- results


def sha256_file(path: Path) -> str:
    """The sha256 of a file's bytes, in hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()


def input_hashes(job: Job) -> dict[str, str]:
    """sha256 of each input file by role; an unreadable file gets an empty hash."""
    hashes = {}
    for role, path in job.inputs().items():
        try:
            hashes[role] = sha256_file(path)
        except OSError:
            hashes[role] = ""
    return hashes


@dataclass(frozen=True)
class JobResult:
    """How a job ended, as recorded in the manifest and the summary.

    Metrics are NaN without ground truth or when the job did not succeed.
    ``peak_rss_mb``: the worker process's peak resident memory while the job ran.
    """

    scene: str
    status: str
    seconds: float = math.nan
    steps: int = 0
    final_loss: float = math.nan
    rmse: float = math.nan
    mae: float = math.nan
    psnr: float = math.nan
    ssim: float = math.nan
    peak_rss_mb: float = math.nan
    output: str = ""
    error: str = ""
    key: str = ""
    inputs: dict[str, str] = field(default_factory=dict)
    output_sha256: str = ""
    state: str = ""
    state_sha256: str = ""

    SUMMARY_FIELDS: ClassVar[tuple[str, ...]] = (
        "scene", "status", "seconds", "steps", "final_loss", "rmse", "mae", "psnr", "ssim",
        "peak_rss_mb", "output", "error")

    def record(self) -> dict[str, Any]:
        """The manifest line's content (NaN and infinity as strings, valid JSON)."""
        values = dataclasses.asdict(self)
        for name, value in values.items():
            if isinstance(value, float) and not math.isfinite(value):
                values[name] = str(value)
        return {"kind": "result", **values}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> JobResult:
        """Read back :meth:`record` (unknown keys are ignored)."""
        names = {item.name: item for item in dataclasses.fields(cls)}
        values: dict[str, Any] = {}
        for name, value in record.items():
            if name not in names:
                continue
            if names[name].type == "float":
                value = float(value)
            values[name] = value
        return cls(**values)

    def summary_row(self) -> list[str]:
        """The values of :attr:`SUMMARY_FIELDS`, formatted for the CSV."""
        row = []
        for name in self.SUMMARY_FIELDS:
            value = getattr(self, name)
            if isinstance(value, float):
                value = "" if math.isnan(value) else f"{value:.6g}"
            row.append(str(value))
        return row


def summary_csv(results: Sequence[JobResult]) -> str:
    """The summary table: one row per scene (see :attr:`JobResult.SUMMARY_FIELDS`)."""
    buffer = text_io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(JobResult.SUMMARY_FIELDS)
    writer.writerows(result.summary_row() for result in results)
    return buffer.getvalue()


def _append_line(path: Path, line: str) -> None:
    """Append one line with a single ``write`` and ``fsync`` it.

    A line torn by a crash is at most the file's last; :meth:`Manifest.load` skips
    it, and the next append starts on a fresh line.
    """
    data = line.rstrip("\n").encode() + b"\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size
        if size:
            with open(path, "rb") as fh:
                fh.seek(size - 1)
                if fh.read(1) != b"\n":
                    data = b"\n" + data
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


class Manifest:
    """``OUT_DIR/manifest.jsonl``: claimed outputs and finished jobs, one JSON per line.

    Lines are ``{"kind": "claim", "scene": ..., "outputs": [...]}`` (written before a
    job runs) and ``{"kind": "result", ...}`` (:meth:`JobResult.record`). The last
    result of a scene counts.
    """

    def __init__(self, out_dir: Path) -> None:
        self.path = Path(out_dir) / MANIFEST_NAME
        self.results: dict[str, JobResult] = {}
        self.claimed: set[str] = set()

    def load(self) -> Manifest:
        """Read the file (missing: empty); unreadable lines are skipped."""
        try:
            text = self.path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return self
        except OSError as exc:
            raise InputError(f"cannot read the manifest: {exc.strerror or exc}",
                             source=str(self.path)) from None
        for line in text.splitlines():
            try:
                record = json.loads(line)
                if record.get("kind") == "claim":
                    self.claimed.update(str(Path(p).resolve()) for p in record["outputs"])
                elif record.get("kind") == "result":
                    result = JobResult.from_record(record)
                    self.results[result.scene] = result
                    if result.output:
                        self.claimed.add(str(Path(result.output).resolve()))
            except (ValueError, TypeError, KeyError, AttributeError):
                continue
        return self

    def owns(self, path: Path) -> bool:
        """Whether the batch claimed ``path`` before (so it may replace it)."""
        return str(path.resolve()) in self.claimed

    def claim(self, job: Job) -> None:
        """Record that ``job`` will write its output (before it runs)."""
        paths = [str(path.resolve()) for path in job.candidates]
        self._append({"kind": "claim", "scene": job.name, "outputs": paths})
        self.claimed.update(paths)

    def add(self, result: JobResult) -> None:
        """Record a finished job (ok or failed)."""
        self._append(result.record())
        self.results[result.scene] = result

    def _append(self, record: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _append_line(self.path, json.dumps(record, sort_keys=True))

    def finished(self, job: Job, hashes: dict[str, str] | None = None) -> JobResult | None:
        """The earlier successful result of ``job`` if it is still valid, else None.

        Valid: same key (settings), same input hashes (``hashes``, computed now when
        not given), and the output file still there with its recorded sha256.
        """
        result = self.results.get(job.name)
        if result is None or result.status != "ok" or result.key != job.key():
            return None
        if result.inputs != (input_hashes(job) if hashes is None else hashes):
            return None
        output = Path(result.output)
        if not any(same_file(output, path) for path in job.candidates):
            return None
        try:
            if sha256_file(output) != result.output_sha256:
                return None
        except OSError:
            return None
        return result

    def state_of(self, job: Job) -> Path | None:
        """The warm-start checkpoint ``job`` saved, if it still has its recorded hash."""
        result = self.results.get(job.name)
        if result is None or not result.state:
            return None
        try:
            if sha256_file(Path(result.state)) == result.state_sha256:
                return Path(result.state)
        except OSError:
            return None
        return None


# --------------------------------------------------------------------------- one job


@dataclass(frozen=True)
class JobInput:
    """What a job trains on and is scored against (``truth`` None: no ground truth)."""

    low: np.ndarray
    guide: np.ndarray
    truth: np.ndarray | None = None
    mask: np.ndarray | None = None
    scale: float | None = None


def load_input(job: Job) -> JobInput:
    """Read the job's files and make its input (see the module docstring)."""
    scene = job.scene
    if scene.target_lr is not None:
        pair = load_pair(scene, Protocol("real"))
        return JobInput(pair.low, pair.guide, pair.truth, pair.mask)
    target = read_image(scene.target)
    guide = read_image(scene.guide)
    if target.shape[0] < guide.shape[0] or target.shape[1] < guide.shape[1]:
        mask = None
        if scene.mask is not None:
            mask = read_image(scene.mask) != 0
            mask = mask.any(axis=2) if mask.ndim == 3 else mask
        return JobInput(target, guide, mask=mask)
    pair = load_pair(scene, job.settings.protocol)
    return JobInput(pair.low, pair.guide, pair.truth, pair.mask,
                    scale=float(job.settings.protocol.scale))


def _as_dtype(result: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``result`` in ``dtype``: integers rounded and clipped to their range."""
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return np.clip(np.rint(result), info.min, info.max).astype(dtype)
    if dtype == np.bool_:
        return (result >= 0.5).astype(np.uint8)
    return result.astype(dtype if dtype == np.float64 else np.float32)


def _output_path(job: Job, result: np.ndarray) -> Path:
    """``job.output``, or its ``.tif`` sibling when PNG cannot hold ``result``."""
    if not job.automatic_suffix:
        return job.output
    channels = 1 if result.ndim == 2 else result.shape[2]
    if result.dtype in (np.uint8, np.uint16) and channels in (1, 3, 4):
        return job.output
    return job.output.with_suffix(".tif")


def error_line(error: BaseException) -> str:
    """A one-line description of a job's failure."""
    if isinstance(error, InputError):
        text = str(error)
    else:
        frames = traceback.extract_tb(error.__traceback__)
        where = f" ({frames[-1].name})" if frames else ""
        text = f"{type(error).__name__}: {error}{where}"
    return " ".join(text.split())


def _steps(model: CMSR) -> int:
    return sum(stage[-1].step for stage in model.records if stage)


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
    try:
        with track_usage() as usage:
            data = load_input(job)
            model = CMSR(job.settings.config).fit(
                data.low, data.guide, scale=data.scale, mask=data.mask,
                invalid_value=job.settings.invalid, on_step=on_step, init=init,
                warp_init=job.settings.warp_init if job.after is None else None,
                target_name=str(job.scene.target_lr or job.scene.target),
                guide_name=str(job.scene.guide))
            result = model.predict()
            if data.truth is not None:
                result = _as_dtype(result, data.truth.dtype)
            output = _output_path(job, result)
            if any(same_file(output, path) for path in job.inputs().values()):
                raise InputError("is also an input; refusing to overwrite it", str(output))
            write_image(output, result, overwrite=job.replace)
            metrics: dict[str, float] = {}
            if data.truth is not None and data.truth.shape == result.shape:
                metrics = score(result, data.truth, data_range=data_range_for(data.truth),
                                mask=data.mask)
            state, state_file, state_hash = None, "", ""
            if job.settings.warm_start:
                state = model.state()
                save_checkpoint(job.state_path, state, overwrite=True)
                state_file, state_hash = str(job.state_path), sha256_file(job.state_path)
    except Exception as error:  # recorded; the batch goes on
        return JobResult(job.name, "failed", seconds=time.perf_counter() - start,
                         error=error_line(error), key=key, inputs=hashes), None
    history = model.history
    return JobResult(
        job.name, "ok", seconds=usage.seconds, steps=_steps(model),
        final_loss=history[-1].loss if history else math.nan,
        peak_rss_mb=usage.peak_rss_mb, output=str(output), key=key, inputs=hashes,
        output_sha256=sha256_file(output), state=state_file, state_sha256=state_hash,
        **metrics), state


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
class Schedule:
    """What a run of the batch has to do.

    ``skipped``: jobs finished earlier and still valid (status ``"skipped"``);
    ``refused``: jobs failed before running (a foreign file sits at the output);
    ``chains``: the work for the backend.
    """

    skipped: tuple[JobResult, ...]
    refused: tuple[JobResult, ...]
    chains: tuple[Chain, ...]


def schedule(jobs: Sequence[Job], manifest: Manifest, settings: BatchSettings) -> Schedule:
    """Split ``jobs`` into the valid finished ones and the work left, and claim outputs.

    Warm start: the longest run of finished jobs at the head of the chain is skipped
    (back to the last one whose saved state is intact); everything after it runs
    again, since each job depends on the one before it.
    """
    hashes = {job.name: input_hashes(job) for job in jobs}
    finished = {job.name: manifest.finished(job, hashes[job.name]) for job in jobs}
    if settings.warm_start:
        head = 0
        while head < len(jobs) and finished[jobs[head].name] is not None:
            head += 1
        while head > 0 and manifest.state_of(jobs[head - 1]) is None:
            head -= 1
        done, todo = list(jobs[:head]), list(jobs[head:])
        init = manifest.state_of(jobs[head - 1]) if head else settings.init
    else:
        done = [job for job in jobs if finished[job.name] is not None]
        todo = [job for job in jobs if finished[job.name] is None]
        init = settings.init
    skipped = tuple(dataclasses.replace(finished[job.name], status="skipped")  # type: ignore[arg-type]
                    for job in done)
    refused, runnable = [], []
    for job in todo:
        replace = settings.overwrite or any(manifest.owns(path) for path in job.candidates)
        foreign = [path for path in job.candidates if path.exists() and not replace]
        if foreign:
            refused.append(JobResult(job.name, "failed", error=str(InputError(
                "already exists; pass --overwrite to replace it", source=str(foreign[0]))),
                key=job.key(), inputs=hashes[job.name]))
            continue
        manifest.claim(job)
        runnable.append(dataclasses.replace(job, replace=True))
    return Schedule(skipped, tuple(refused),
                    tuple(make_chains(runnable, init, warm_start=settings.warm_start)))


class Backend(TypingProtocol):
    """Runs chains of jobs somewhere and reports each finished job (see cmsr.batches.backends)."""

    def run(self, chains: Sequence[Chain], on_result: Callable[[JobResult], None],
            on_step: Callable[[str, StepInfo], None] | None = None) -> None:
        """Run every chain; call ``on_result`` in the caller's thread per finished job."""


def run_batch(jobs: Sequence[Job], out_dir: Path, backend: Backend, *,
              settings: BatchSettings,
              on_result: Callable[[JobResult], None] | None = None,
              on_step: Callable[[str, StepInfo], None] | None = None,
              on_schedule: Callable[[Schedule], None] | None = None) -> list[JobResult]:
    """Run the jobs not finished before, record each as it ends, write the summary.

    Every result is appended to the manifest the moment it arrives; the summary
    (``OUT_DIR/summary.csv``, one row per job in plan order) is written at the end,
    also when the run is interrupted (``KeyboardInterrupt`` is re-raised after it;
    unfinished jobs are listed as ``interrupted``).

    Returns
    -------
    list[JobResult]
        One per job, in the order of ``jobs``.
    """
    manifest = Manifest(out_dir).load()
    plan = schedule(jobs, manifest, settings)
    if on_schedule is not None:
        on_schedule(plan)
    results: dict[str, JobResult] = {r.scene: r for r in (*plan.skipped, *plan.refused)}
    for result in plan.refused:
        manifest.add(result)
        if on_result is not None:
            on_result(result)

    def finished(result: JobResult) -> None:
        manifest.add(result)
        results[result.scene] = result
        if on_result is not None:
            on_result(result)

    try:
        backend.run(plan.chains, finished, on_step)
    finally:
        ordered = [results.get(job.name, JobResult(job.name, "interrupted")) for job in jobs]
        write_text(out_dir / SUMMARY_NAME, summary_csv(ordered), overwrite=True)
    return ordered
