"""Bad input, tried on purpose: every file of the fuzz corpus gets a one-line error.

For each kind of broken input in :data:`fuzz.corpus.CASES`:

* :func:`cmsr.files.read_image` (or, for files that read fine, the pair checks of
  :func:`cmsr.method.api.prepare_pair`) raises :class:`InputError` naming the file and the
  problem, within seconds and without allocating memory for what a header declares;
* ``cmsr sr`` exits with code 2 and one line ``cmsr: error: ...`` on stderr, no
  traceback, no warnings, and writes nothing.

And the output checks of ``cmsr sr``: an output is never written over an input, nor
anywhere but where ``-o`` says.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import tracemalloc
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from fuzz.corpus import CASES, Case, write_case, write_corpus, write_partner

from cmsr.cli import EXIT_USAGE, main
from cmsr.cli.outputs import check_output
from cmsr.errors import InputError
from cmsr.files import read_image, write_image
from cmsr.method.api import prepare_pair

SECONDS = 5.0
"""Most CPU time (this process's, all threads) any bad file may take to be refused ("fails
fast"). CPU time, not wall-clock time: other work on a busy machine does not count."""
TRACED_BYTES = 64 * 2**20
"""Most memory NumPy may allocate while refusing a bad file (the largest real file is tiny)."""
QUICK = ["--preset", "quick", "--iters", "2", "--quiet"]

_NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
_FEW_GPUS = pytest.mark.skipif(torch.cuda.is_available() and torch.cuda.device_count() > 1,
                               reason="needs a machine with fewer than 2 CUDA devices")
BAD_SETTINGS = [
    pytest.param(["--seed", "99999999999999999999"],
                 "seed must be an integer in [0, 2**63), got 99999999999999999999", id="seed-huge"),
    pytest.param(["--seed", "-1"], "seed must be an integer in [0, 2**63), got -1",
                 id="seed-negative"),
    pytest.param(["--threads", "0"], "threads must be an integer >= 1 (or None for torch's "
                 "choice), got 0", id="threads-0"),
    pytest.param(["--threads", "-3"], "threads must be an integer >= 1", id="threads-negative"),
    pytest.param(["--device", "cuda"], "--device: cuda is not available on this machine",
                 marks=_NO_CUDA, id="cuda"),
    pytest.param(["--device", "cuda:1"], "--device: cuda:1 is not available on this machine",
                 marks=_FEW_GPUS, id="cuda-1"),
    pytest.param(["--device", "mps"], "--device: 'mps' is not a device cmsr runs on",
                 id="mps"),
]
"""Training options the hostile test of issue 12 found tracebacks with, and what the one-line
refusal says (used by the tests of every command that trains)."""

READ_CASES = [case for case in CASES if case.stage == "read"]
CHECK_CASES = [case for case in CASES if case.stage == "check"]


def _param(case: Case) -> object:
    marks = [pytest.mark.skipif(os.name != "posix", reason="needs POSIX files")
             ] if case.posix_only else []
    return pytest.param(case, id=case.name, marks=marks)


# --------------------------------------------------------------------------- helpers


@pytest.fixture
def time_limit() -> Iterator[None]:
    """Abort the test with a failure (instead of spinning for ever) after twice
    :data:`SECONDS` of this process's CPU time (``ITIMER_PROF``: waiting for the CPU on a
    busy machine does not count)."""
    usable = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    if not usable:
        yield
        return

    def expire(signum: int, frame: object) -> None:
        raise TimeoutError(f"still busy after {2 * SECONDS} s of CPU time: a hang")

    previous = signal.signal(signal.SIGPROF, expire)
    signal.setitimer(signal.ITIMER_PROF, 2 * SECONDS)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, previous)


def _assert_names(message: str, path: Path, case: Case) -> None:
    """One line, naming the file, stating the expected problem."""
    assert "\n" not in message, message
    assert path.name in message, message
    assert any(word in message.lower() for word in case.words), (case.words, message)
    assert "Traceback" not in message, message


def _pair_paths(case: Case, folder: Path) -> tuple[Path, Path, Path]:
    """(broken file, target, guide) for ``case``, written into ``folder``."""
    broken = write_case(case, folder)
    partner = write_partner(case, folder)
    target, guide = (broken, partner) if case.role == "target" else (partner, broken)
    return broken, target, guide


# --------------------------------------------------------------------------- the corpus


def test_corpus_has_many_distinct_kinds() -> None:
    names = [case.name for case in CASES]
    assert len(names) == len(set(names))
    assert len(CASES) >= 70
    assert {case.stage for case in CASES} == {"read", "check"}
    assert {case.role for case in CASES} == {"target", "guide"}
    assert all(case.words and case.about for case in CASES)


def test_corpus_writes_nothing_big(tmp_path: Path) -> None:
    paths = write_corpus(tmp_path)
    sizes = [p.lstat().st_size for p in paths.values() if not p.is_dir()]
    assert max(sizes) < 2**20


@pytest.mark.usefixtures("time_limit")
@pytest.mark.parametrize("case", [_param(case) for case in READ_CASES])
def test_read_image_refuses_fast_and_small(tmp_path: Path, case: Case) -> None:
    path = write_case(case, tmp_path)
    tracemalloc.start()
    start = time.process_time()
    try:
        with pytest.raises(InputError) as info:
            read_image(path)
        seconds = time.process_time() - start
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    _assert_names(str(info.value), path, case)
    assert info.value.source == str(path)
    assert seconds < SECONDS, f"{case.name} took {seconds:.1f} s of CPU time"
    assert peak < TRACED_BYTES, f"{case.name} allocated {peak / 2**20:.0f} MiB"


@pytest.mark.usefixtures("time_limit")
@pytest.mark.parametrize("case", [_param(case) for case in CHECK_CASES])
def test_readable_bad_pairs_are_refused_before_training(tmp_path: Path, case: Case) -> None:
    broken, target, guide = _pair_paths(case, tmp_path)
    target_image, guide_image = read_image(target), read_image(guide)
    with pytest.raises(InputError) as info:
        prepare_pair(target_image, guide_image, scale=None, mask=None, invalid_value=None,
                     device=torch.device("cpu"), target_name=str(target),
                     guide_name=str(guide))
    _assert_names(str(info.value), broken, case)


@pytest.mark.usefixtures("time_limit")
@pytest.mark.parametrize("case", [_param(case) for case in CASES])
def test_cli_gives_one_line_and_exit_code_2(
    tmp_path: Path, case: Case, capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    inputs = tmp_path / "in"
    broken, target, guide = _pair_paths(case, inputs)
    before = sorted(p.name for p in inputs.iterdir())
    output = tmp_path / "out" / "result.tif"
    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.WARNING):
        warnings.simplefilter("always")
        code = main(["sr", "--target", str(target), "--guide", str(guide), "-o", str(output),
                     *QUICK])
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert code == EXIT_USAGE, captured.err
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("cmsr: error: "), lines[0]
    _assert_names(lines[0], broken, case)
    assert captured.out == ""
    assert [str(w.message) for w in caught] == []  # each would be extra lines on stderr
    assert [r.getMessage() for r in caplog.records] == []
    assert not output.parent.exists()
    assert sorted(p.name for p in inputs.iterdir()) == before


@pytest.mark.skipif(sys.platform != "linux", reason="address-space limit and /proc: Linux")
def test_reading_the_corpus_fits_in_little_memory(tmp_path: Path) -> None:
    """Under a hard limit of 768 MiB of new address space, all of Pillow's, tifffile's and
    NumPy's allocations included, every read-stage file is refused as bad input, never
    for want of memory."""
    write_corpus(tmp_path)
    script = textwrap.dedent(
        """
        import json, re, resource, sys
        from pathlib import Path
        from fuzz.corpus import CASES
        from cmsr.files import read_image
        from cmsr.errors import InputError

        status = Path("/proc/self/status").read_text()
        used = int(re.search(r"VmSize:\\s+(\\d+) kB", status).group(1)) * 1024
        limit = used + 768 * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        folder, results = Path(sys.argv[1]), {}
        for case in CASES:
            if case.stage != "read":
                continue
            try:
                read_image(folder / case.name / case.filename)
                results[case.name] = "read without error"
            except InputError as error:
                results[case.name] = "InputError: " + str(error)
            except BaseException as error:
                results[case.name] = f"{type(error).__name__}: {error}"
        print(json.dumps(results))
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(Path(__file__).parent), *sys.path])}
    run = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True,
                         text=True, timeout=600, env=env, check=False)  # a hang guard
    assert run.returncode == 0, run.stderr
    results = json.loads(run.stdout)
    assert len(results) == len(READ_CASES)
    failures = {name: message for name, message in results.items()
                if not message.startswith("InputError: ") or "memory" in message}
    assert failures == {}


def test_the_guards_let_good_files_through(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           ) -> None:
    """The page, byte and truncation checks refuse only what they should."""
    bands = np.random.default_rng(3).random((2100, 4, 5)).astype(np.float32)
    tifffile.imwrite(tmp_path / "rows.tif", bands)  # 2100 pages of 4x5, one "shaped" image
    np.testing.assert_array_equal(read_image(tmp_path / "rows.tif"), bands)
    tifffile.imwrite(tmp_path / "pages.tif", bands, metadata=None)  # the same, unlabelled
    with pytest.raises(InputError, match="2100 pages"):
        read_image(tmp_path / "pages.tif")
    bits = np.eye(40, dtype=bool)  # 1 bit per pixel: 200 bytes hold 1600 pixels
    tifffile.imwrite(tmp_path / "bits.tif", bits)
    np.testing.assert_array_equal(read_image(tmp_path / "bits.tif"), bits.astype(np.uint8))
    image = np.zeros((20, 30, 2), np.float64)
    for name in ("x.tif", "x.npy"):
        write_image(tmp_path / name, image)
    monkeypatch.setattr("cmsr.files.checks.MAX_BYTES", 20 * 30 * 2 * 8)
    for name in ("x.tif", "x.npy"):
        assert read_image(tmp_path / name).shape == (20, 30, 2)
    monkeypatch.setattr("cmsr.files.checks.MAX_BYTES", 20 * 30 * 2 * 8 - 1)
    for name in ("x.tif", "x.npy"):
        with pytest.raises(InputError, match=f"{name}: image is too large"):
            read_image(tmp_path / name)


# --------------------------------------------------------------------------- outputs


def _valid_pair(folder: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(7)
    guide = rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)
    target = guide[::2, ::2, 0].copy()
    return write_image(folder / "t.png", target), write_image(folder / "g.png", guide)


def _refused(argv: list[str], capsys: pytest.CaptureFixture[str], *words: str) -> str:
    assert main(argv) == EXIT_USAGE
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("cmsr: error: "), lines
    assert any(word in lines[0] for word in words), lines[0]
    return lines[0]


@pytest.mark.parametrize("which", ["target", "guide"])
@pytest.mark.parametrize("spelling", ["same", "dotted", "relative", "symlink", "hardlink"])
def test_output_never_replaces_an_input(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    which: str, spelling: str,
) -> None:
    target, guide = _valid_pair(tmp_path)
    victim = target if which == "target" else guide
    original = victim.read_bytes()
    if spelling == "same":
        output = str(victim)
    elif spelling == "dotted":
        output = str(tmp_path / "sub" / ".." / victim.name)
        (tmp_path / "sub").mkdir()
    elif spelling == "relative":
        monkeypatch.chdir(tmp_path)
        output = victim.name
    elif spelling == "symlink":
        if os.name != "posix":
            pytest.skip("needs symbolic links")
        output = str(tmp_path / "link.png")
        os.symlink(victim, output)
    else:
        output = str(tmp_path / "hard.png")
        os.link(victim, output)
    message = _refused(["sr", "--target", str(target), "--guide", str(guide), "-o", output,
                        "--overwrite", *QUICK], capsys, "input")
    assert Path(output).name in message
    assert victim.read_bytes() == original


def test_check_output_refusals(tmp_path: Path) -> None:
    target, guide = _valid_pair(tmp_path)
    inputs = (target, guide)
    uint8 = (np.dtype(np.uint8), 1)
    cases: list[tuple[Path, bool, str]] = [
        (target, True, "also an input"),
        (guide, True, "also an input"),
        (target, False, "also an input"),
        (tmp_path, True, "unsupported output type"),
        (tmp_path / "dir.png", True, "directory"),
        (tmp_path / "exists.png", False, "already exists"),
        (tmp_path / "result.jpg", True, "unsupported output type"),
        (tmp_path / "result", True, "unsupported output type"),
    ]
    (tmp_path / "dir.png").mkdir()
    (tmp_path / "exists.png").write_bytes(b"keep me")
    for path, overwrite, words in cases:
        with pytest.raises(InputError, match=words) as info:
            check_output(path, overwrite=overwrite, inputs=inputs, result=uint8)
        assert str(path) in str(info.value)
    for dtype, channels, words in [(np.float32, 1, "PNG"), (np.uint8, 5, "5 bands"),
                                   (np.int16, 1, "PNG"), (np.uint8, 2, "2 bands")]:
        with pytest.raises(InputError, match=words):
            check_output(tmp_path / "new.png", overwrite=False, inputs=inputs,
                         result=(np.dtype(dtype), channels))
    assert (tmp_path / "exists.png").read_bytes() == b"keep me"
    # A new file anywhere else, or an existing one with --overwrite, is fine.
    check_output(tmp_path / "new" / "folder" / "r.tif", overwrite=False, inputs=inputs,
                 result=(np.dtype(np.float32), 5))
    check_output(tmp_path / "exists.png", overwrite=True, inputs=inputs, result=uint8)


def test_a_run_writes_only_the_output_it_was_asked_for(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    inputs, outputs = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    target, guide = _valid_pair(inputs)
    before = {p.name: p.read_bytes() for p in inputs.iterdir()}
    assert main(["sr", "--target", str(target), "--guide", str(guide), "-o",
                 str(outputs / "r.png"), *QUICK]) == 0
    assert {p.name: p.read_bytes() for p in inputs.iterdir()} == before
    assert [p.name for p in outputs.iterdir()] == ["r.png"]
    assert read_image(outputs / "r.png").shape == (24, 24)
    # Without --overwrite the second run leaves the first result alone.
    capsys.readouterr()
    first = (outputs / "r.png").read_bytes()
    _refused(["sr", "--target", str(target), "--guide", str(guide), "-o",
              str(outputs / "r.png"), *QUICK], capsys, "already exists")
    assert (outputs / "r.png").read_bytes() == first


@pytest.mark.parametrize(("extra", "message"), BAD_SETTINGS)
def test_unusable_settings_are_one_line_refusals(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str,
) -> None:
    target, guide = _valid_pair(tmp_path)
    _refused(["sr", "--target", str(target), "--guide", str(guide), "-o",
              str(tmp_path / "r.png"), *QUICK, *extra], capsys, message)
    assert not (tmp_path / "r.png").exists()


def test_invalid_everywhere_says_no_valid_pixels(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    target, guide = _valid_pair(tmp_path)
    write_image(target, np.full((12, 12), 77, np.uint8), overwrite=True)
    line = _refused(["sr", "--target", str(target), "--guide", str(guide), "-o",
                     str(tmp_path / "r.png"), "--invalid", "77", *QUICK], capsys,
                    "has no valid pixels")
    assert str(target) in line and "constant" not in line
