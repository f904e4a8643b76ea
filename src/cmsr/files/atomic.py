"""Atomic writes: a file appears under its name complete, or not at all.

The data goes to a hidden temporary file next to the target, is flushed to disk and
only then takes the final name. Without ``overwrite`` an existing file is never
replaced, not even one created meanwhile (the final move is a hard link). A line
appended to a log (:func:`append_line`) is one ``write``, flushed to disk.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from cmsr.errors import InputError
from cmsr.files.checks import os_reason

_TEMP_NAME_MAX = 100  # characters of the final name kept in a temporary file's name


def write_text(path: str | os.PathLike[str], text: str, *, overwrite: bool = False) -> Path:
    """Write a small UTF-8 text file (a CSV, a report) atomically, as :func:`write_image`.

    Without ``overwrite`` an existing file is never replaced; raises
    :class:`InputError` on any failure. Returns the path as given.
    """
    return write_atomically(Path(path), lambda fh: fh.write(text.encode("utf-8")),
                             overwrite=overwrite)


def write_bytes(path: str | os.PathLike[str], data: bytes, *, overwrite: bool = False) -> Path:
    """Write raw bytes (a checkpoint, an archive) atomically, as :func:`write_image`.

    Without ``overwrite`` an existing file is never replaced; raises
    :class:`InputError` on any failure. Returns the path as given.
    """
    return write_atomically(Path(path), lambda fh: fh.write(data), overwrite=overwrite)


def _writable_destination(final: Path, overwrite: bool) -> tuple[str, Path]:
    """``(source name, folder)`` for writing ``final``: refuses a folder, or an existing
    file without ``overwrite``, and creates the folder; :class:`InputError` otherwise."""
    source = os.fspath(final)
    if final.is_dir():
        raise InputError("is a directory; give a file name to write to", source)
    if not overwrite and os.path.lexists(final):
        raise InputError("already exists; pass --overwrite to replace it", source)
    folder = final.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create the folder {folder}: {os_reason(exc)}", source) from None
    return source, folder


def write_atomically(final: Path, write: Callable[[BinaryIO], object], *,
                      overwrite: bool) -> Path:
    """Write through a hidden temporary file in ``final``'s folder, then move it in place."""
    source, folder = _writable_destination(final, overwrite)

    fh, temp = _create_temp_file(folder, final.name, source)
    try:
        with fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        _move_into_place(temp, final, overwrite, source)
    except OSError as exc:
        raise InputError(f"could not write the file: {os_reason(exc)}", source) from exc
    finally:
        with contextlib.suppress(OSError):
            os.unlink(temp)  # gone already after a successful rename; a link leaves it
    _fsync_folder(folder)
    return final


@contextlib.contextmanager
def atomic_path(final: Path, *, overwrite: bool) -> Iterator[Path]:
    """A hidden temporary file name in ``final``'s folder, for writers that need a path
    (GDAL writing a tiled GeoTIFF window by window); moved to ``final`` when the block
    ends without error, removed otherwise. Checks and errors as :func:`write_atomically`.
    """
    source, folder = _writable_destination(final, overwrite)
    fh, temp = _create_temp_file(folder, final.name, source)
    fh.close()
    try:
        yield temp
        with open(temp, "rb+") as written:
            os.fsync(written.fileno())
        _move_into_place(temp, final, overwrite, source)
    except OSError as exc:
        raise InputError(f"could not write the file: {os_reason(exc)}", source) from exc
    finally:
        with contextlib.suppress(OSError):
            os.unlink(temp)
    _fsync_folder(folder)


def append_line(path: Path, line: str) -> None:
    """Append one line to ``path`` (created if missing) with a single ``write``, and
    ``fsync`` it.

    A line torn by a crash is at most the file's last (readers skip it), and the next
    append starts on a fresh line.
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


def same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """Whether ``a`` and ``b`` name one file: the same path once resolved, or (when both
    exist) the same inode through a symlink or hard link.

    Examples
    --------
    >>> same_file("a/../x.png", "x.png")
    True
    """
    first, second = Path(a), Path(b)
    if first.resolve() == second.resolve():
        return True
    try:
        return first.exists() and second.exists() and os.path.samefile(first, second)
    except OSError:
        return False


def _create_temp_file(folder: Path, name: str, source: str) -> tuple[BinaryIO, Path]:
    """Create ``folder/.{name}.{random}.part`` exclusively; return it open and its path.

    Opened with mode ``"xb"`` (``O_CREAT | O_EXCL``, permissions 0o666 minus the
    umask), so the final file gets the usual permissions, unlike the 0o600 of
    :func:`tempfile.mkstemp`.
    """
    for _ in range(100):
        temp = folder / f".{name[:_TEMP_NAME_MAX]}.{secrets.token_hex(4)}.part"
        try:
            return open(temp, "xb"), temp  # the caller closes it
        except FileExistsError:
            continue
        except OSError as exc:
            reason = os_reason(exc)
            raise InputError(f"cannot write in the folder {folder}: {reason}", source) from None
    raise InputError(f"cannot create a temporary file in {folder}", source)


def _move_into_place(temp: Path, final: Path, overwrite: bool, source: str) -> None:
    """Give the complete temporary file its final name."""
    if overwrite:
        os.replace(temp, final)
        return
    try:
        os.link(temp, final)  # fails if ``final`` exists: cannot clobber
    except FileExistsError:
        raise InputError("already exists; pass --overwrite to replace it", source) from None
    except (OSError, NotImplementedError):  # no hard links on this file system
        if os.path.lexists(final):
            raise InputError("already exists; pass --overwrite to replace it", source) from None
        os.replace(temp, final)


def _fsync_folder(folder: Path) -> None:
    """Flush a folder's entry list so a rename survives a crash (best effort, POSIX)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
