"""The plan of a batch: its shared settings, one job per scene, and chains of jobs.

A *job* super-resolves one :class:`~cmsr.evaluation.datasets.Scene`; :func:`plan_jobs`
gives each its output path and checks, before any work, that no two jobs write one
file and that no output is an input. With warm start the jobs form one
:class:`Chain`, in name order (see :mod:`cmsr.batches.run`).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cmsr import __version__
from cmsr.errors import InputError
from cmsr.evaluation.datasets import Scene
from cmsr.evaluation.protocols import EvalProtocol
from cmsr.files.runs import JOURNAL_NAME, settings_key
from cmsr.method.config import STREAM_FIELDS, Config

MANIFEST_NAME = JOURNAL_NAME
"""The batch's store of finished runs in OUT_DIR (:mod:`cmsr.files.runs`): one JSON line
per claim and per finished job."""

SUMMARY_NAME = "summary.csv"
"""The per-scene summary in OUT_DIR, rewritten at the end of every run."""

STATES_FOLDER = "states"
"""Warm start: each job's network and warp are saved as ``OUT_DIR/states/<name>.pt``."""

#: Bumped when a change of this module makes earlier results invalid.
BATCH_VERSION = 1


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
    model:
        A learned model file (``cmsr train``) applied to every pair instead of
        fitting on it (``config`` then only names the threads).
    inputs_at_guide_size:
        A target as large as its guide is the input, not a ground truth: set for a
        model that takes the guide at the target's low resolution, when the guide is
        not reduced by the protocol (frames of the rig as they come).
    """

    config: Config
    protocol: EvalProtocol = field(default_factory=EvalProtocol)
    invalid: float | None = None
    warm_start: bool = False
    init: Path | None = None
    warp_init: Path | None = None
    overwrite: bool = False
    model: Path | None = None
    inputs_at_guide_size: bool = False


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
                 "warp_init": self.settings.warp_init if self.after is None else None,
                 "model": self.settings.model}
        return {role: path for role, path in roles.items() if path is not None}

    def key(self) -> str:
        """sha256 of everything besides the input files that decides the result."""
        config = dataclasses.asdict(self.settings.config)
        for name in ("threads", *STREAM_FIELDS):
            config.pop(name, None)
        settings = {
            "batch": BATCH_VERSION, "cmsr": __version__, "config": config,
            "protocol": self.settings.protocol.name, "invalid": self.settings.invalid,
            "warm_start": self.settings.warm_start, "after": self.after,
        }
        if self.settings.model is not None:  # its file's hash is among the inputs
            settings.update(learned=True, inputs_at_guide_size=self.settings.inputs_at_guide_size)
        return settings_key(settings)


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

    Outputs: ``OUT_DIR/<output>`` for a manifest row's ``output`` column (a relative
    path, checked by :func:`~cmsr.evaluation.datasets.read_manifest`; an absolute
    :attr:`Scene.output` is used as it is), else ``OUT_DIR/<name>.png`` for manifest
    rows and ``OUT_DIR/<name>/result.png`` for scene folders (both become ``.tif``
    when PNG cannot hold the result). With ``settings.warm_start`` the jobs are
    sorted by name. A scene with a :attr:`Scene.problem` gets its job too: the batch
    records it as failed without running it.

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
            output, automatic = out_dir / scene.output, False
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
