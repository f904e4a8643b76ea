"""The store of finished runs, shared by ``cmsr eval`` and ``cmsr batch``.

A *run* (one method on one scene, one pair of a batch) is recorded here when it ends.
A rerun takes its result from the store, instead of computing it again, only while
the record still vouches for it: the run succeeded, its key is the same (a sha256 of
everything the result depends on besides what the caller checks itself: settings,
versions, the digest of the inputs) and its output file still has the recorded
sha256. So a stopped evaluation or batch resumes where it stopped, and a changed
input, setting or output is recomputed.

The store is one file, ``FOLDER/manifest.jsonl``, one JSON object a line. Each line is
appended with a single ``write`` and flushed to disk (``fsync``), so a crash tears at
most the last line, which reading skips. Two kinds of line:

* ``{"kind": "result", "run": NAME, "status": "ok", "key": ..., "output": PATH,
  "output_sha256": ..., ...}``: how a run ended (the last result of a run counts; the
  caller adds what else it wants to keep, such as times or metrics);
* ``{"kind": "claim", "run": NAME, "outputs": [PATH, ...]}``: a run is about to write
  these files, so a later run may replace them (they are the store's own).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from cmsr.errors import InputError
from cmsr.files.atomic import append_line, same_file

JOURNAL_NAME = "manifest.jsonl"
"""The store's file in its folder."""


def sha256_file(path: str | Path) -> str:
    """The sha256 of a file's bytes, in hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()


def settings_key(settings: Mapping[str, Any]) -> str:
    """A run's key: the sha256 of ``settings`` as canonical JSON (sorted keys; anything
    JSON lacks, such as paths, as its text).

    Examples
    --------
    >>> settings_key({"b": 1, "a": [2, 3]}) == settings_key({"a": [2, 3], "b": 1})
    True
    """
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


class RunStore:
    """The finished runs recorded in ``folder/manifest.jsonl`` (read when created).

    Attributes
    ----------
    folder:
        Where the store lives (created on the first write).
    path:
        The store's file.
    records:
        The last result recorded for each run, by name.
    claimed:
        Every output path ever claimed or recorded (resolved, as text).
    written:
        The sha256 last recorded for each output path a run wrote (resolved, as text).
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.path = self.folder / JOURNAL_NAME
        self.records: dict[str, dict[str, Any]] = {}
        self.claimed: set[str] = set()
        self.written: dict[str, str] = {}
        self._load()

    def _load(self) -> None:
        """Read the file (missing: empty); unreadable and torn lines are skipped."""
        try:
            text = self.path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return
        except OSError as exc:
            raise InputError(f"cannot read the record of finished runs: "
                             f"{exc.strerror or exc}", source=str(self.path)) from None
        for line in text.splitlines():
            try:
                record = json.loads(line)
                run = record["run"]
                if record["kind"] == "claim":
                    self.claimed.update(str(Path(p).resolve()) for p in record["outputs"])
                elif record["kind"] == "result" and isinstance(run, str):
                    self.records[run] = record
                    self._note_output(record)
            except (ValueError, TypeError, KeyError, AttributeError):
                continue

    def _append(self, record: Mapping[str, Any]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        append_line(self.path, json.dumps(record, sort_keys=True))

    def add(self, run: str, record: Mapping[str, Any]) -> None:
        """Record how ``run`` ended: ``record`` holds at least its ``status`` (``"ok"`` for
        a result that may be used again), ``key``, and for a result its ``output`` and
        ``output_sha256`` (see :func:`sha256_file`); values must be valid JSON."""
        line = {**record, "kind": "result", "run": run}
        self._append(line)
        self.records[run] = line
        self._note_output(line)

    def _note_output(self, record: Mapping[str, Any]) -> None:
        """Count a result's output as claimed, and remember the sha256 it was written with."""
        if not record.get("output"):
            return
        path = str(Path(record["output"]).resolve())
        self.claimed.add(path)
        if record.get("output_sha256"):
            self.written[path] = str(record["output_sha256"])

    def claim(self, run: str, outputs: Iterable[Path]) -> None:
        """Record that ``run`` will write ``outputs`` (before it runs)."""
        paths = [str(Path(path).resolve()) for path in outputs]
        self._append({"kind": "claim", "run": run, "outputs": paths})
        self.claimed.update(paths)

    def owns(self, path: Path) -> bool:
        """Whether a run of this store claimed ``path`` before (so it may replace it)."""
        return str(path.resolve()) in self.claimed

    def edited(self, path: Path) -> bool:
        """Whether ``path`` holds a file that differs from what a run of this store last
        wrote there (changed by someone since; False when no run recorded writing it)."""
        recorded = self.written.get(str(path.resolve()))
        if recorded is None or not path.exists():
            return False
        try:
            return sha256_file(path) != recorded
        except OSError:
            return True

    def get(self, run: str) -> dict[str, Any] | None:
        """The last result recorded for ``run``, whatever its status, or None."""
        return self.records.get(run)

    def finished(self, run: str, key: str, *, outputs: Sequence[Path] | None = None
                 ) -> dict[str, Any] | None:
        """The record of ``run`` if it still vouches for its result, else None.

        It does when the run succeeded with this ``key`` and its output file (one of
        ``outputs``, when given) still has the recorded sha256.
        """
        record = self.records.get(run)
        if record is None or record.get("status") != "ok" or record.get("key") != key:
            return None
        output = Path(str(record.get("output", "")))
        if outputs is not None and not any(same_file(output, path) for path in outputs):
            return None
        return record if self.intact(record) is not None else None

    @staticmethod
    def intact(record: Mapping[str, Any], field: str = "output") -> Path | None:
        """The file a record names under ``field`` (``"output"``, or another file a run
        wrote, recorded with its ``<field>_sha256``), if it is still there unchanged."""
        name, recorded = record.get(field), record.get(f"{field}_sha256")
        if not name or not recorded:
            return None
        try:
            return Path(name) if sha256_file(name) == recorded else None
        except OSError:
            return None
