"""Tests for cmsr.files.runs: the store of finished runs shared by ``cmsr eval`` and
``cmsr batch``."""

from __future__ import annotations

from pathlib import Path

from cmsr.files.runs import JOURNAL_NAME, RunStore, settings_key, sha256_file


def _finish(store: RunStore, run: str, output: Path, key: str = "k", **more: object) -> None:
    output.write_bytes(run.encode())
    store.add(run, {"status": "ok", "key": key, "output": str(output),
                    "output_sha256": sha256_file(output), **more})


def test_a_finished_run_counts_while_key_and_output_hold(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "store")
    output = tmp_path / "a.npy"
    _finish(store, "a", output, seconds=1.5)
    again = RunStore(tmp_path / "store")  # read back from the file
    assert (tmp_path / "store" / JOURNAL_NAME).is_file()
    assert again.finished("a", "k")["seconds"] == 1.5
    assert again.finished("a", "other key") is None
    assert again.finished("b", "k") is None
    assert again.finished("a", "k", outputs=[tmp_path / "elsewhere.npy"]) is None
    assert again.finished("a", "k", outputs=[tmp_path / "x" / ".." / "a.npy"]) is not None
    output.write_bytes(b"changed")
    assert again.finished("a", "k") is None


def test_the_last_result_counts_and_failures_are_not_finished(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    _finish(store, "a", tmp_path / "a.npy")
    store.add("a", {"status": "failed", "key": "k", "error": "boom"})
    assert RunStore(tmp_path).finished("a", "k") is None
    assert RunStore(tmp_path).get("a")["error"] == "boom"


def test_claims_and_outputs_belong_to_the_store(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    store.claim("a", [tmp_path / "a.png", tmp_path / "a.tif"])
    _finish(store, "b", tmp_path / "b.npy")
    again = RunStore(tmp_path)
    assert again.owns(tmp_path / "a.tif") and again.owns(tmp_path / "b.npy")
    assert not again.owns(tmp_path / "c.png")


def test_intact_checks_any_recorded_file(tmp_path: Path) -> None:
    state = tmp_path / "state.pt"
    state.write_bytes(b"weights")
    record = {"state": str(state), "state_sha256": sha256_file(state)}
    assert RunStore.intact(record, "state") == state
    assert RunStore.intact({"state": ""}, "state") is None
    state.unlink()
    assert RunStore.intact(record, "state") is None


def test_settings_key_ignores_order_and_writes_paths_as_text() -> None:
    assert settings_key({"a": 1, "b": Path("x")}) == settings_key({"b": "x", "a": 1})
    assert settings_key({"a": 1}) != settings_key({"a": 2})
