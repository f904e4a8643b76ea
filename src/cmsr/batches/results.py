"""How the jobs of a batch ended: :class:`JobResult`, the manifest and the summary.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io as text_io
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from cmsr.batches.plan import MANIFEST_NAME, Job
from cmsr.errors import InputError
from cmsr.files import same_file

#: Ways a job ends; ``skipped`` = finished in an earlier run and still valid,
#: ``interrupted`` = not finished because the batch was stopped.
STATUSES = ("ok", "failed", "skipped", "interrupted")

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
