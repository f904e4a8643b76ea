"""How the jobs of a batch ended: :class:`JobResult`, kept in the batch's store of finished
runs (``OUT_DIR/manifest.jsonl``, :mod:`cmsr.files.runs`), and the summary table.
"""

from __future__ import annotations

import csv
import dataclasses
import io as text_io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from cmsr.batches.plan import Job
from cmsr.files.runs import RunStore, sha256_file

#: Ways a job ends; ``skipped`` = finished in an earlier run and still valid,
#: ``interrupted`` = not finished because the batch was stopped, ``conflict`` = not run
#: because its output was changed since the batch wrote it (the file is kept).
STATUSES = ("ok", "failed", "skipped", "interrupted", "conflict")

# --------------------------------------------------------------------------- results


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
    """How a job ended, as recorded in the store of finished runs and the summary.

    Metrics are NaN without ground truth or when the job did not succeed.
    ``peak_rss_mb``: the worker process's peak resident memory while the job ran.
    ``note``: what a successful job did other than asked (a warm start whose warp did
    not fit this pair and started afresh), ``""`` otherwise.
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
    note: str = ""
    key: str = ""
    inputs: dict[str, str] = field(default_factory=dict)
    output_sha256: str = ""
    state: str = ""
    state_sha256: str = ""

    SUMMARY_FIELDS: ClassVar[tuple[str, ...]] = (
        "scene", "status", "seconds", "steps", "final_loss", "rmse", "mae", "psnr", "ssim",
        "peak_rss_mb", "output", "error", "note")

    def record(self) -> dict[str, Any]:
        """What the store keeps of it (NaN and infinity as strings: valid JSON)."""
        values = dataclasses.asdict(self)
        for name, value in values.items():
            if isinstance(value, float) and not math.isfinite(value):
                values[name] = str(value)
        return values

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


def finished_result(store: RunStore, job: Job, hashes: dict[str, str] | None = None
                    ) -> JobResult | None:
    """The earlier successful result of ``job`` if it is still valid, else None.

    Valid: the store vouches for it (same key, i.e. settings; the output still one of
    the job's paths, with its recorded sha256) and the input files have the same
    hashes (``hashes``, computed now when not given).
    """
    record = store.finished(job.name, job.key(), outputs=job.candidates)
    if record is None or record.get("inputs") != (input_hashes(job) if hashes is None
                                                  else hashes):
        return None
    try:
        return JobResult.from_record(record)
    except (TypeError, ValueError):
        return None


def saved_state(store: RunStore, job: Job) -> Path | None:
    """The warm-start checkpoint ``job`` saved, if it still has its recorded sha256."""
    record = store.get(job.name)
    return None if record is None else store.intact(record, "state")
