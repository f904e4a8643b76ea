"""Writing image files: ``.png`` (``uint8`` through Pillow, ``uint16`` through pypng; 1, 3
or 4 channels), ``.tif`` / ``.tiff`` (any real type, bands interleaved as ``(H, W, C)``)
and ``.npy``.

Arrays are written as they are (no scaling), atomically (:mod:`cmsr.files.atomic`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import numpy as np
import tifffile
from PIL import Image

from cmsr.errors import InputError
from cmsr.files.atomic import write_atomically
from cmsr.files.checks import DTYPE_KIND_NAMES, check_shape
from cmsr.files.png16 import write_png16

SUPPORTED_WRITE: tuple[str, ...] = (".png", ".tif", ".tiff", ".npy")
"""File extensions :func:`write_image` accepts (compared case-insensitively)."""


def write_image(
    path: str | os.PathLike[str], image: np.ndarray, *, overwrite: bool = False
) -> Path:
    """Write an image atomically; the format follows the file extension.

    Parameters
    ----------
    path:
        Target file ending in ``.png``, ``.tif``, ``.tiff`` or ``.npy`` (see
        :data:`SUPPORTED_WRITE`). Missing parent folders are created.
    image:
        Array of shape ``(H, W)`` or ``(H, W, C)``, written as is (no scaling).
        ``.png`` takes ``uint8`` or ``uint16`` with 1, 3 or 4 channels (4 = RGBA);
        ``.tif`` takes any real dtype (bool is stored as ``uint8`` 0/1) with the
        bands interleaved; ``.npy`` stores the array exactly.
    overwrite:
        Replace an existing file. Without it an existing file is never touched.

    Returns
    -------
    pathlib.Path
        The path written, as given (not resolved).

    Raises
    ------
    InputError
        If the extension is not supported, the array does not fit the format
        (e.g. float data for ``.png``), is empty or not 2-D/3-D, the file exists
        and ``overwrite`` is false, or the file system refuses the write.

    Notes
    -----
    The data is written to a hidden temporary file ``.{name}.{random}.part`` in
    the target folder, flushed with ``fsync`` and then moved into place. With
    ``overwrite=False`` the move is a hard link, which fails rather than
    replacing a file created meanwhile; where hard links are unsupported it
    falls back to check-then-rename. The temporary file is removed on failure.

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> from cmsr.files import read_image, write_image
    >>> folder = tempfile.mkdtemp()
    >>> depth = np.linspace(0.5, 4.0, 32 * 40, dtype=np.float32).reshape(32, 40)
    >>> path = write_image(f"{folder}/out/depth.tif", depth)
    >>> bool((read_image(path) == depth).all())
    True
    >>> write_image(path, depth)
    Traceback (most recent call last):
    ...
    cmsr.errors.InputError: ...depth.tif: already exists; pass --overwrite to replace it
    """
    source = os.fspath(path)
    final = Path(path)
    ext = final.suffix.lower()
    if ext not in SUPPORTED_WRITE:
        raise InputError(
            f"cannot write {ext or 'files without an extension'!r}; "
            f"use one of {', '.join(SUPPORTED_WRITE)}",
            source,
        )
    writers: dict[str, Callable[[BinaryIO, np.ndarray], None]] = {
        ".png": _write_png,
        ".tif": _write_tiff,
        ".tiff": _write_tiff,
        ".npy": _write_npy,
    }
    data = _prepare_for_writing(np.asarray(image), ext, source)
    return write_atomically(final, lambda fh: writers[ext](fh, data), overwrite=overwrite)


def _prepare_for_writing(image: np.ndarray, ext: str, source: str) -> np.ndarray:
    """Check that ``image`` fits the format of ``ext``; return the array to store."""
    if image.dtype.kind not in "biuf":
        what = DTYPE_KIND_NAMES.get(image.dtype.kind, "non-numeric data")
        raise InputError(
            f"cannot save {what} (dtype {image.dtype}); images must hold real numbers",
            source,
        )
    check_shape(image.shape, source)
    if not image.dtype.isnative:
        image = image.astype(image.dtype.newbyteorder("="))
    if ext == ".npy":
        return image
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if ext == ".png":
        if image.dtype not in (np.uint8, np.uint16):
            raise InputError(
                f"PNG stores only uint8 or uint16 pixels, not {image.dtype}; "
                "save as .tif or .npy to keep the values, or convert the array",
                source,
            )
        if image.ndim == 3 and image.shape[2] not in (3, 4):
            raise InputError(
                f"PNG stores 1, 3 or 4 channels, not {image.shape[2]}; save as .tif or .npy",
                source,
            )
    elif image.dtype == np.bool_:  # TIFF
        image = image.astype(np.uint8)
    return image


def _write_png(fh: BinaryIO, image: np.ndarray) -> None:
    if image.dtype == np.uint16:
        write_png16(fh, image)  # Pillow cannot write 16-bit colour; one path for 16 bits
    else:
        Image.fromarray(np.ascontiguousarray(image)).save(fh, format="PNG")


def _write_tiff(fh: BinaryIO, image: np.ndarray) -> None:
    rgb = image.ndim == 3 and image.shape[2] == 3 and image.dtype in (np.uint8, np.uint16)
    tifffile.imwrite(
        fh,
        image,
        photometric="rgb" if rgb else "minisblack",
        planarconfig="contig" if image.ndim == 3 else None,
    )


def _write_npy(fh: BinaryIO, image: np.ndarray) -> None:
    np.save(fh, image, allow_pickle=False)
