"""Checks made before any work, so that a run never fails after minutes of training
because of where it was asked to write: unsupported types, inputs named as outputs,
existing files without ``--overwrite``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cmsr.errors import InputError
from cmsr.files import SUPPORTED_WRITE, same_file

#: Files ``--save-figures`` writes (plus ``alignment.png`` with ``--align``).
FIGURE_FILES = ("comparison.png", "loss_curve.png", "history.csv")


def check_output(path: Path, *, overwrite: bool, inputs: Sequence[Path] = (),
                 result: tuple[np.dtype, int] | None = None) -> None:
    """Fail before any work if ``path`` cannot or must not be written.

    ``result``: the dtype and channel count that will be written (PNG takes only
    ``uint8``/``uint16`` with 1, 3 or 4 channels).
    """
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_WRITE:
        raise InputError(f"unsupported output type {suffix or '(none)'}; use one of "
                         f"{', '.join(SUPPORTED_WRITE)}", source=str(path))
    for source in inputs:
        if same_file(path, source):
            raise InputError("is also an input; refusing to overwrite it", source=str(path))
    if path.is_dir():
        raise InputError("is a directory", source=str(path))
    if path.exists() and not overwrite:
        raise InputError("already exists; pass --overwrite to replace it", source=str(path))
    if result is not None and suffix == ".png":
        dtype, channels = result
        if dtype not in (np.uint8, np.uint16):
            kind = "floating point" if dtype.kind == "f" else str(dtype)
            raise InputError(f"the result will be {kind} like the target ({dtype}) and PNG "
                             "stores only 8- or 16-bit integers; write .tif or .npy",
                             source=str(path))
        if channels not in (1, 3, 4):
            raise InputError(f"the result will have {channels} bands like the target and PNG "
                             "stores 1, 3 or 4; write .tif or .npy", source=str(path))


def check_figures(folder: Path, *, overwrite: bool, alignment: bool,
                  names: Sequence[str] = FIGURE_FILES, inputs: Sequence[Path] = (),
                  output: Path | None = None) -> None:
    """Fail before any work if the figure files in ``folder`` must not be written:
    one is an input (never replaced) or the result file, or exists without
    ``overwrite``."""
    if folder.exists() and not folder.is_dir():
        raise InputError("exists and is not a folder", source=str(folder))
    for name in (*names, "alignment.png") if alignment else names:
        path = folder / name
        if any(same_file(path, source) for source in inputs):
            raise InputError("is also an input; refusing to overwrite it with a figure",
                             source=str(path))
        if output is not None and same_file(path, output):
            raise InputError("is both the result (-o) and a figure of --save-figures; "
                             "choose another name or folder", source=str(path))
        if path.is_dir():
            raise InputError("is a directory", source=str(path))
        if path.exists() and not overwrite:
            raise InputError("already exists; pass --overwrite to replace it", source=str(path))
