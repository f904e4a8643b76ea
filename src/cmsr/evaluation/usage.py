"""Time and peak memory of a piece of work: ``with track_usage() as usage: ...``.

Peak memory is the process's resident set size (RSS), sampled from
``/proc/self/statm`` every few milliseconds by a background thread while the block
runs (on systems without ``/proc`` it falls back to ``ru_maxrss``, the peak of the
whole process so far). It covers everything the process holds: torch's tensors,
numpy arrays and the interpreter itself.
"""

from __future__ import annotations

import os
import resource
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

_STATM = Path("/proc/self/statm")
_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def current_rss_bytes() -> int:
    """Resident set size of this process now, in bytes (0 when it cannot be read)."""
    try:
        return int(_STATM.read_text().split()[1]) * _PAGE_BYTES
    except (OSError, IndexError, ValueError):
        return 0


def max_rss_bytes() -> int:
    """Peak resident set size of this process since it started, in bytes."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


@dataclass
class Usage:
    """What a block cost: wall-clock ``seconds`` and ``peak_rss_bytes`` while it ran."""

    seconds: float = 0.0
    peak_rss_bytes: int = 0

    @property
    def peak_rss_mb(self) -> float:
        """Peak RSS in MiB."""
        return self.peak_rss_bytes / 2**20


@contextmanager
def track_usage(interval: float = 0.005) -> Iterator[Usage]:
    """Measure the wall-clock time and peak RSS of the ``with`` block.

    Parameters
    ----------
    interval:
        Seconds between RSS samples.

    Examples
    --------
    >>> with track_usage() as usage:
    ...     block = bytearray(50 * 2**20)
    >>> usage.seconds > 0 and usage.peak_rss_mb > 50
    True
    """
    usage = Usage(peak_rss_bytes=current_rss_bytes())
    if usage.peak_rss_bytes == 0:  # no /proc: the process-wide peak is the best we have
        start = time.perf_counter()
        try:
            yield usage
        finally:
            usage.seconds = time.perf_counter() - start
            usage.peak_rss_bytes = max_rss_bytes()
        return
    done = threading.Event()

    def sample() -> None:
        while not done.wait(interval):
            usage.peak_rss_bytes = max(usage.peak_rss_bytes, current_rss_bytes())

    sampler = threading.Thread(target=sample, name="cmsr-rss-sampler", daemon=True)
    start = time.perf_counter()
    sampler.start()
    try:
        yield usage
    finally:
        usage.seconds = time.perf_counter() - start
        done.set()
        sampler.join()
        usage.peak_rss_bytes = max(usage.peak_rss_bytes, current_rss_bytes())
