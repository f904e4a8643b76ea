"""Reading and writing image files: the only module that touches the file system.

Images are plain NumPy arrays of shape ``(H, W)`` (one band) or ``(H, W, C)``
(``C`` bands, at most :data:`MAX_CHANNELS`), returned **in the file's own data
type and units**: nothing is scaled, normalised or clipped, so a 16-bit thermal
PNG comes back as ``uint16`` counts and a float32 depth TIFF as float32 metres.

Formats
-------
Read (:data:`SUPPORTED_READ`):

* ``.png`` -- 8- and 16-bit grey, grey + alpha, RGB and RGBA, and palette
  images (returned as RGB ``uint8``). Grey images with 1, 2 or 4 bits per pixel
  are returned as ``uint8`` scaled to 0..255, the way Pillow decodes them.
  16-bit colour PNGs are read exactly as ``uint16`` (Pillow on its own reduces
  them to 8 bits; see :func:`_read_png16_colour`).
* ``.tif`` / ``.tiff`` -- any real numeric type, any number of bands; the first
  image series of the file.
* ``.npy`` -- real numeric or bool arrays (bool becomes ``uint8`` 0/1); pickled
  objects are never loaded.
* ``.jpg`` / ``.jpeg`` / ``.bmp`` -- 8-bit grey or RGB (CMYK and other colour
  spaces are converted to RGB).

Write (:data:`SUPPORTED_WRITE`): ``.png`` (``uint8`` or ``uint16``; 1, 3 or 4
channels), ``.tif`` / ``.tiff`` (any real type, bands interleaved as
``(H, W, C)``) and ``.npy``. Writes are atomic: the data goes to a hidden
temporary file next to the target, is flushed to disk and only then takes the
final name, so a partially written file never appears under that name.

Layout rules applied on reading
-------------------------------
* **Alpha is dropped.** cmsr does not use transparency: the alpha channel of a
  grey + alpha or RGBA image is discarded whether or not it is fully opaque.
* **Band-first arrays are turned band-last.** A 3-D TIFF or NPY array of shape
  ``(C, H, W)`` with ``C <= 16`` and ``H, W > 16`` is returned as ``(H, W, C)``.
* Leading singleton axes of arrays with more than three axes are removed and a
  trailing singleton channel is squeezed: ``(H, W, 1)`` becomes ``(H, W)``.

Limits
------
Files declaring more than :data:`MAX_PIXELS` pixels (``H * W``), more than
:data:`MAX_CHANNELS` channels or more than :data:`MAX_BYTES` bytes of decoded
pixels are refused before their pixel data is decoded (or memory allocated for
it), and so are uncompressed TIFF and NPY files too short to hold the pixels
their header declares. A TIFF with more than 2048 pages (IFDs) is refused unless
its tifffile metadata declares them to be one image (as ``tifffile.imwrite``
stores an ``(H, W, C)`` float array: one page per row); working out how the
pages of other files group into images takes time growing with the square of
their number.

Pillow's own decompression-bomb limit (``PIL.Image.MAX_IMAGE_PIXELS``) also
applies to PNG, JPEG and BMP files; both its warning and its error become an
:class:`~cmsr.errors.InputError`.

Every problem with a file -- missing, unreadable, corrupt, truncated, too large,
of an unsupported kind -- raises :class:`~cmsr.errors.InputError` with a
one-line message that starts with the file name.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import os
import secrets
import stat
import struct
import warnings
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np
import tifffile
from PIL import Image, UnidentifiedImageError

from cmsr.errors import InputError

__all__ = [
    "MAX_BYTES",
    "MAX_CHANNELS",
    "MAX_PIXELS",
    "SUPPORTED_READ",
    "SUPPORTED_WRITE",
    "describe",
    "read_image",
    "write_image",
    "write_text",
]

SUPPORTED_READ: tuple[str, ...] = (".png", ".tif", ".tiff", ".npy", ".jpg", ".jpeg", ".bmp")
"""File extensions :func:`read_image` accepts (compared case-insensitively)."""

SUPPORTED_WRITE: tuple[str, ...] = (".png", ".tif", ".tiff", ".npy")
"""File extensions :func:`write_image` accepts (compared case-insensitively)."""

MAX_PIXELS: int = 2**28
"""Largest image (``H * W`` pixels) that will be decoded: 268,435,456."""

MAX_CHANNELS: int = 64
"""Largest number of bands (channels) an image may have."""

MAX_BYTES: int = 2**31
"""Largest decoded image (``H * W * C * bytes per value``) that will be read: 2 GiB."""

_MAX_BAND_FIRST = 16  # (C, H, W) with C <= this and H, W > this is taken as band-first
_MAX_TIFF_PAGES = 2048  # more pages only as one tifffile-"shaped" image (see _read_tiff)
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = b"PK\x03\x04"
_PNG_IDAT_CHUNK = 2**20  # bytes per IDAT chunk in PNGs we write
_TEMP_NAME_MAX = 100  # characters of the final name kept in a temporary file's name

_PIL_FORMATS: dict[str, tuple[str, tuple[str, ...]]] = {
    ".png": ("PNG", ("PNG",)),
    ".jpg": ("JPEG", ("JPEG",)),  # multi-picture (MPO) JPEGs open through "JPEG" too
    ".jpeg": ("JPEG", ("JPEG",)),
    ".bmp": ("BMP", ("BMP", "DIB")),
}

_DTYPE_KIND_NAMES = {
    "c": "complex numbers",
    "O": "Python objects",
    "U": "text",
    "S": "bytes",
    "V": "structured records",
    "M": "dates",
    "m": "time spans",
}


# --------------------------------------------------------------------------- public API


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an image file into a NumPy array, without any scaling.

    Parameters
    ----------
    path:
        A ``.png``, ``.tif``, ``.tiff``, ``.npy``, ``.jpg``, ``.jpeg`` or ``.bmp``
        file (see :data:`SUPPORTED_READ`); the extension picks the decoder.

    Returns
    -------
    numpy.ndarray
        Shape ``(H, W)`` or ``(H, W, C)`` with ``1 < C <= 64``, in the file's
        stored dtype and units (e.g. ``uint8`` 0..255, ``uint16`` 0..65535,
        ``float32`` in whatever unit the file holds, NaN included). The array is
        C-contiguous, writable and in native byte order. Exceptions to "as
        stored": bool data becomes ``uint8`` 0/1, palette images become RGB,
        1/2/4-bit grey PNGs become ``uint8`` 0..255 and alpha channels are
        dropped (see the module documentation).

    Raises
    ------
    InputError
        If the file does not exist, is a directory, has an unsupported
        extension, is not a valid image of its kind, is truncated or corrupt,
        declares more than :data:`MAX_PIXELS` pixels, :data:`MAX_CHANNELS`
        channels or :data:`MAX_BYTES` bytes, is empty, is not 2-D or 3-D, or
        holds non-numeric data (complex, objects, text). The message names the
        file.

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> from cmsr.files import read_image, write_image
    >>> folder = tempfile.mkdtemp()
    >>> path = write_image(f"{folder}/thermal.png", np.full((48, 64), 3000, np.uint16))
    >>> image = read_image(path)
    >>> image.shape, image.dtype, int(image.max())
    ((48, 64), dtype('uint16'), 3000)
    """
    source = os.fspath(path)
    file = Path(path)
    try:
        info = file.stat()
    except FileNotFoundError:
        raise InputError("no such file", source) from None
    except OSError as exc:
        raise InputError(f"cannot access the file: {_os_reason(exc)}", source) from None
    if stat.S_ISDIR(info.st_mode):
        raise InputError("is a directory, not an image file", source)
    if not stat.S_ISREG(info.st_mode):
        raise InputError("is not a regular file", source)
    ext = file.suffix.lower()
    if ext not in SUPPORTED_READ:
        raise InputError(
            f"unsupported file type {ext or '(no extension)'!r}; "
            f"supported: {', '.join(SUPPORTED_READ)}",
            source,
        )
    if info.st_size == 0:
        raise InputError("is an empty file (0 bytes)", source)

    readers: dict[str, Callable[[BinaryIO, str], np.ndarray]] = {
        ".tif": _read_tiff,
        ".tiff": _read_tiff,
        ".npy": _read_npy,
    }
    reader = readers.get(ext, _read_pil)
    try:
        with open(file, "rb") as fh:
            image = reader(fh, source)
    except InputError:
        raise
    except MemoryError:
        raise InputError("not enough memory to read this image", source) from None
    except OSError as exc:  # opening or reading the file itself failed
        raise InputError(f"cannot read the file: {_os_reason(exc)}", source) from None
    return _finish(image, source)


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
    return _write_atomically(final, lambda fh: writers[ext](fh, data), overwrite=overwrite)


def write_text(path: str | os.PathLike[str], text: str, *, overwrite: bool = False) -> Path:
    """Write a small UTF-8 text file (a CSV, a report) atomically, as :func:`write_image`.

    Without ``overwrite`` an existing file is never replaced; raises
    :class:`InputError` on any failure. Returns the path as given.
    """
    return _write_atomically(Path(path), lambda fh: fh.write(text.encode("utf-8")),
                             overwrite=overwrite)


def write_bytes(path: str | os.PathLike[str], data: bytes, *, overwrite: bool = False) -> Path:
    """Write raw bytes (a checkpoint, an archive) atomically, as :func:`write_image`.

    Without ``overwrite`` an existing file is never replaced; raises
    :class:`InputError` on any failure. Returns the path as given.
    """
    return _write_atomically(Path(path), lambda fh: fh.write(data), overwrite=overwrite)


def _write_atomically(final: Path, write: Callable[[BinaryIO], object], *,
                      overwrite: bool) -> Path:
    """Write through a hidden temporary file in ``final``'s folder, then move it in place."""
    source = os.fspath(final)
    if final.is_dir():
        raise InputError("is a directory; give a file name to write to", source)
    if not overwrite and os.path.lexists(final):
        raise InputError("already exists; pass --overwrite to replace it", source)
    folder = final.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create the folder {folder}: {_os_reason(exc)}", source) from None

    fh, temp = _create_temp_file(folder, final.name, source)
    try:
        with fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        _move_into_place(temp, final, overwrite, source)
    except OSError as exc:
        raise InputError(f"could not write the file: {_os_reason(exc)}", source) from exc
    finally:
        with contextlib.suppress(OSError):
            os.unlink(temp)  # gone already after a successful rename; a link leaves it
    _fsync_folder(folder)
    return final


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


def describe(image: np.ndarray) -> str:
    """One-line summary of an image for messages: size, dtype and bands.

    The size is given as width x height (x channels), the usual way to state
    image sizes, so an array of shape ``(480, 640, 3)`` reads ``640x480x3``.

    Parameters
    ----------
    image:
        Array of shape ``(H, W)`` or ``(H, W, C)``; other shapes are described
        by their shape.

    Returns
    -------
    str
        For example ``"320x256 uint16 grey"`` or ``"640x480x3 uint8"``.

    Examples
    --------
    >>> import numpy as np
    >>> describe(np.zeros((256, 320), np.uint16))
    '320x256 uint16 grey'
    >>> describe(np.zeros((480, 640, 3), np.uint8))
    '640x480x3 uint8'
    """
    array = np.asarray(image)
    if array.ndim == 2:
        height, width = array.shape
        return f"{width}x{height} {array.dtype} grey"
    if array.ndim == 3:
        height, width, channels = array.shape
        return f"{width}x{height}x{channels} {array.dtype}"
    return f"array of shape {tuple(array.shape)} {array.dtype}"


# --------------------------------------------------------------------------- checks


def _os_reason(exc: OSError) -> str:
    """The human part of an OSError (``'Permission denied'``), without the path."""
    return exc.strerror or str(exc) or type(exc).__name__


def _shape_text(shape: tuple[int, ...]) -> str:
    return "x".join(str(n) for n in shape) if shape else "()"


def _check_dtype(dtype: np.dtype, source: str) -> None:
    """Refuse anything but bool, integer and real floating-point data."""
    if dtype.kind not in "biuf":
        what = _DTYPE_KIND_NAMES.get(dtype.kind, "non-numeric data")
        raise InputError(
            f"holds {what} (dtype {dtype}); only real numbers (integer, float or bool) "
            "are supported",
            source,
        )


def _layout(array: np.ndarray) -> np.ndarray:
    """Bring an array to ``(H, W)`` / ``(H, W, C)`` layout using views only.

    Drops leading singleton axes beyond three, turns a band-first ``(C, H, W)``
    (``C <= 16 < H, W``) band-last and squeezes a trailing singleton channel.
    Works on zero-stride placeholders, so shapes can be checked before decoding.
    """
    while array.ndim > 3 and array.shape[0] == 1:
        array = array[0]
    if (
        array.ndim == 3
        and array.shape[0] <= _MAX_BAND_FIRST
        and array.shape[1] > _MAX_BAND_FIRST
        and array.shape[2] > _MAX_BAND_FIRST
    ):
        array = np.moveaxis(array, 0, -1)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    return array


def _check_shape(shape: tuple[int, ...], source: str) -> None:
    """Refuse shapes that are not a non-empty, not-too-large (H, W[, C]) image."""
    if len(shape) not in (2, 3):
        hint = " (a stack of images?)" if len(shape) > 3 else ""
        raise InputError(
            f"holds a {len(shape)}-D array of shape {tuple(shape)}{hint}; expected a "
            "single image of shape (H, W) or (H, W, C)",
            source,
        )
    height, width = shape[0], shape[1]
    if height == 0 or width == 0 or (len(shape) == 3 and shape[2] == 0):
        raise InputError(f"is empty: the image has shape {_shape_text(shape)}", source)
    if height * width > MAX_PIXELS:
        raise InputError(
            f"image is too large: {width}x{height} = {height * width} pixels, more than the "
            f"limit of {MAX_PIXELS}",
            source,
        )
    if len(shape) == 3 and shape[2] > MAX_CHANNELS:
        raise InputError(
            f"has {shape[2]} channels (shape {_shape_text(shape)}); at most {MAX_CHANNELS} "
            "are supported",
            source,
        )


def _laid_out_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """The shape :func:`_layout` gives an array of ``shape``, computed without data."""
    return _layout(np.broadcast_to(np.zeros((), dtype=np.uint8), shape)).shape


def _check_declared(shape: tuple[int, ...], dtype: np.dtype, source: str) -> None:
    """Check a shape and dtype read from a file header, before decoding any pixels."""
    _check_dtype(dtype, source)
    if any(int(n) < 0 for n in shape):
        raise InputError(f"has a corrupt header: it declares the negative size {tuple(shape)}",
                         source)
    laid_out = _laid_out_shape(shape)
    _check_shape(laid_out, source)
    size = math.prod(laid_out) * dtype.itemsize
    if size > MAX_BYTES:
        raise InputError(
            f"image is too large: {_shape_text(laid_out)} values of {dtype} take {size} bytes, "
            f"more than the limit of {MAX_BYTES}",
            source,
        )


def _finish(image: np.ndarray, source: str) -> np.ndarray:
    """Validate a decoded array and return it laid out, native-endian and writable."""
    _check_dtype(image.dtype, source)
    image = _layout(image)
    _check_shape(image.shape, source)
    if image.dtype == np.bool_:
        image = image.astype(np.uint8)
    elif not image.dtype.isnative:
        image = image.astype(image.dtype.newbyteorder("="))
    image = np.ascontiguousarray(image)
    if not image.flags.writeable:
        image = image.copy()
    return image


# --------------------------------------------------------------------------- readers


def _read_pil(fh: BinaryIO, source: str) -> np.ndarray:
    """Decode a PNG, JPEG or BMP file with Pillow (16-bit colour PNGs aside)."""
    kind, formats = _PIL_FORMATS[Path(source).suffix.lower()]
    if kind == "PNG":
        width, height, bit_depth, colour_type = _png_header(fh.read(33), source)
        _check_shape((height, width), source)
        fh.seek(0)
        if bit_depth == 16 and colour_type in (2, 4, 6):
            return _read_png16_colour(fh, colour_type, source)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(fh, formats=list(formats)) as im:
                _check_shape((im.height, im.width), source)
                im.load()  # decodes now, so truncated or corrupt data raises here
                return _pil_to_array(im)
    except InputError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InputError(f"image is too large to decode safely ({exc})", source) from None
    except UnidentifiedImageError:
        raise InputError(f"is not a {kind} file (cannot identify the image data)", source) from None
    except MemoryError:
        raise
    except Exception as exc:  # Pillow plugins raise OSError, SyntaxError, ValueError, ...
        raise InputError(f"is truncated or corrupt: {exc}", source) from None


def _pil_to_array(im: Image.Image) -> np.ndarray:
    """Pixels of a loaded Pillow image in their stored type, alpha dropped."""
    mode = im.mode
    if mode in ("L", "RGB", "I", "F") or mode.startswith("I;16"):
        return np.asarray(im)
    if mode in ("LA", "La"):
        return np.asarray(im)[:, :, 0]
    if mode == "RGBA":
        return np.asarray(im)[:, :, :3]
    if mode == "1":
        return np.asarray(im.convert("L"))
    return np.asarray(im.convert("RGB"))  # palette, CMYK, YCbCr, premultiplied RGBa, ...


def _png_header(head: bytes, source: str) -> tuple[int, int, int, int]:
    """``(width, height, bit_depth, colour_type)`` from the first 33 bytes of a PNG."""
    if not head.startswith(_PNG_SIGNATURE):
        raise InputError("is not a PNG file (it does not start with the PNG signature)", source)
    if len(head) < 33 or head[12:16] != b"IHDR":
        raise InputError("is not a valid PNG file (its IHDR header is missing or cut)", source)
    width, height, bit_depth, colour_type = struct.unpack(">IIBB", head[16:26])
    return width, height, bit_depth, colour_type


def _decode_png_rawmode(fh: BinaryIO, rawmode: str) -> np.ndarray:
    """Decode a PNG with Pillow, unpacking the pixel bytes with ``rawmode``.

    Pillow undoes the PNG filters and interlacing in C, with the filter stride
    taken from the raw mode's bits per pixel, then "unpacks" each pixel into its
    8-bit image mode. Choosing the raw mode chooses which bytes of a 16-bit
    sample are kept.
    """
    fh.seek(0)
    with Image.open(fh, formats=["PNG"]) as im:
        if len(im.tile) != 1:
            raise ValueError("unexpected PNG tile layout")
        tile = im.tile[0]
        replace = getattr(tile, "_replace", None)
        im.tile = [replace(args=rawmode) if replace else (*tile[:3], rawmode)]
        im.load()
        return np.asarray(im)


def _png16_rawmodes(colour_type: int) -> tuple[str, str] | None:
    """Raw modes that make Pillow return the high and the low bytes of 16-bit samples.

    Pillow has no 16-bit colour modes; its raw modes ``"RGB;16B"`` and
    ``"RGB;16L"`` each keep one byte of every sample (which one has differed
    between versions), so this is settled by decoding a tiny known PNG. For
    grey + alpha (colour type 4, four bytes per pixel) the plain ``"RGBA"`` raw
    mode copies all bytes and serves for both. Returns None if this version of
    Pillow does not behave as required.
    """
    channels = {2: 3, 4: 2, 6: 4}[colour_type]
    sample = np.array([[[0x0102, 0x0304, 0x0506, 0x0708][:channels]]], dtype=np.uint16)
    probe = io.BytesIO(_encode_png(sample))
    if colour_type == 4:
        candidates = ["RGBA"]
        want_high, want_low = [1, 2, 3, 4], [1, 2, 3, 4]
    else:
        prefix = "RGB" if colour_type == 2 else "RGBA"
        candidates = [f"{prefix};16B", f"{prefix};16L"]
        want_high, want_low = [1, 3, 5, 7][:channels], [2, 4, 6, 8][:channels]
    high = low = None
    for rawmode in candidates:
        try:
            got = _decode_png_rawmode(probe, rawmode).reshape(-1).tolist()
        except Exception:  # unknown raw mode in this Pillow version
            continue
        if got == want_high and high is None:
            high = rawmode
        if got == want_low and low is None:
            low = rawmode
    return (high, low) if high and low else None


def _read_png16_colour(fh: BinaryIO, colour_type: int, source: str) -> np.ndarray:
    """Read a 16-bit grey + alpha, RGB or RGBA PNG exactly, as ``uint16``.

    Decodes twice through Pillow with raw modes that keep the high and the low
    byte of each sample (see :func:`_png16_rawmodes`) and recombines them. Grey
    + alpha returns ``(H, W)``, RGB and RGBA return ``(H, W, 3)``.
    """
    rawmodes = _png16_rawmodes(colour_type)
    if rawmodes is None:
        raise InputError(
            "is a 16-bit colour PNG, which this version of Pillow cannot read exactly; "
            "convert it to a 16-bit TIFF (.tif)",
            source,
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            if colour_type == 4:
                raw = _decode_png_rawmode(fh, rawmodes[0]).astype(np.uint16)
                return (raw[:, :, 0] << 8) | raw[:, :, 1]
            high = _decode_png_rawmode(fh, rawmodes[0])[:, :, :3].astype(np.uint16)
            low = _decode_png_rawmode(fh, rawmodes[1])[:, :, :3]
            return (high << 8) | low
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InputError(f"image is too large to decode safely ({exc})", source) from None
    except MemoryError:
        raise
    except Exception as exc:
        raise InputError(f"is truncated or corrupt: {exc}", source) from None


@contextlib.contextmanager
def _tifffile_quiet() -> Iterator[None]:
    """Silence tifffile's log messages (about damaged files) while it reads one.

    They would print extra lines besides the one-line error (or on success), and
    any damage that matters raises an exception anyway.
    """
    log = logging.getLogger("tifffile")
    was_disabled = log.disabled
    log.disabled = True
    try:
        yield
    finally:
        log.disabled = was_disabled


def _is_one_shaped_image(tif: tifffile.TiffFile, pages: int) -> bool:
    """Whether the first page's tifffile metadata declares all ``pages`` to be one image.

    ``tifffile.imwrite`` stores the shape of what it wrote as JSON in the first
    page's description; an ``(H, W, C)`` float array becomes ``H`` pages of ``W x C``.
    """
    first = tif.pages.first
    try:
        shape = json.loads(first.description)["shape"] if first.is_shaped else None
        if not isinstance(shape, list) or not all(isinstance(n, int) for n in shape):
            return False
        return math.prod(shape) >= pages * math.prod(first.shape) > 0
    except (ValueError, TypeError, KeyError):
        return False


def _read_tiff(fh: BinaryIO, source: str) -> np.ndarray:
    """Read the first image series of a TIFF file with tifffile.

    Before any pixel is decoded: the page count is checked (see
    :data:`_MAX_TIFF_PAGES`), then the declared shape, data type and size, and
    for uncompressed data whether the file is long enough to hold it.
    """
    try:
        with _tifffile_quiet(), tifffile.TiffFile(fh) as tif:
            in_file = len(tif.pages)  # follows the chain of page offsets only: fast
            if in_file > _MAX_TIFF_PAGES and not _is_one_shaped_image(tif, in_file):
                raise InputError(
                    f"has {in_file} pages; cmsr reads a single image, stored in at most "
                    f"{_MAX_TIFF_PAGES} pages; save it as a single-page TIFF or as .npy",
                    source,
                )
            if not tif.series:
                raise InputError("contains no image (the TIFF is empty or damaged)", source)
            series = tif.series[0]
            shape = tuple(series.shape)
            pages = len(series)
            laid_out = _laid_out_shape(shape)
            too_many_bands = len(laid_out) == 3 and laid_out[2] > MAX_CHANNELS
            if pages > 1 and (len(laid_out) > 3 or too_many_bands):
                raise InputError(
                    f"holds {pages} pages making an array of shape {_shape_text(shape)}: a "
                    f"stack of images, or an image with more than {MAX_CHANNELS} bands; cmsr "
                    f"reads a single image with at most {MAX_CHANNELS} bands (up to 16 of them "
                    "may be stored as pages)",
                    source,
                )
            _check_declared(shape, np.dtype(series.dtype), source)
            keyframe = series.keyframe
            if keyframe.compression == 1:  # uncompressed: the file must hold every byte
                needed = math.prod(shape) * keyframe.bitspersample // 8
                available = os.fstat(fh.fileno()).st_size
                if needed > available:
                    raise InputError(
                        f"is truncated: its header declares {_shape_text(shape)} "
                        f"uncompressed values ({needed} bytes), the whole file has "
                        f"{available} bytes",
                        source,
                    )
            return series.asarray()
    except InputError:
        raise
    except tifffile.TiffFileError as exc:
        raise InputError(f"is not a valid TIFF file ({exc})", source) from None
    except MemoryError:
        raise
    except Exception as exc:  # truncated strips, unknown compression, broken tags, ...
        reason = "truncated, corrupt or using an unsupported compression"
        raise InputError(f"cannot decode the TIFF data ({reason}): {exc}", source) from None


def _read_npy(fh: BinaryIO, source: str) -> np.ndarray:
    """Read a ``.npy`` array; the header is checked first and pickles are never loaded."""
    magic = fh.read(len(_NPY_MAGIC))
    if magic.startswith(_ZIP_MAGIC):
        raise InputError(
            "is a zip archive (an .npz?), not a .npy file; save one array with numpy.save",
            source,
        )
    if magic != _NPY_MAGIC:
        raise InputError("is not a NumPy .npy file (it lacks the .npy signature)", source)
    fh.seek(0)
    fmt = np.lib.format
    try:
        version = fmt.read_magic(fh)
        if version == (1, 0):
            shape, _fortran, dtype = fmt.read_array_header_1_0(fh)
        elif version == (2, 0):
            shape, _fortran, dtype = fmt.read_array_header_2_0(fh)
        else:
            raise InputError(f"uses .npy format version {version}, which is not supported", source)
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"has a corrupt .npy header: {exc}", source) from None
    _check_declared(tuple(shape), dtype, source)

    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    available = os.fstat(fh.fileno()).st_size - fh.tell()
    if available < expected:
        raise InputError(
            f"is truncated: the header promises {expected} bytes of data, the file holds "
            f"{available}",
            source,
        )
    fh.seek(0)
    try:
        array = np.load(fh, allow_pickle=False)
    except MemoryError:
        raise
    except Exception as exc:
        raise InputError(f"is corrupt: {exc}", source) from None
    if not isinstance(array, np.ndarray):
        raise InputError("is not a single NumPy array", source)
    return array


# --------------------------------------------------------------------------- writers


def _prepare_for_writing(image: np.ndarray, ext: str, source: str) -> np.ndarray:
    """Check that ``image`` fits the format of ``ext``; return the array to store."""
    if image.dtype.kind not in "biuf":
        what = _DTYPE_KIND_NAMES.get(image.dtype.kind, "non-numeric data")
        raise InputError(
            f"cannot save {what} (dtype {image.dtype}); images must hold real numbers",
            source,
        )
    _check_shape(image.shape, source)
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
    if image.dtype == np.uint16 and image.ndim == 3:
        fh.write(_encode_png(image))  # Pillow cannot write 16-bit colour
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


def _encode_png(image: np.ndarray) -> bytes:
    """Encode a ``uint16`` array of 1-4 channels as a non-interlaced 16-bit PNG.

    Every row uses the "Sub" filter (difference to the pixel on the left),
    which vectorises and compresses smooth images well.
    """
    pixels = image if image.ndim == 3 else image[:, :, np.newaxis]
    height, width, channels = pixels.shape
    colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    rows = np.ascontiguousarray(pixels, dtype=">u2").view(np.uint8).reshape(height, -1)
    step = 2 * channels  # bytes per pixel
    filtered = np.empty((height, rows.shape[1] + 1), dtype=np.uint8)
    filtered[:, 0] = 1  # filter type "Sub"
    filtered[:, 1 : 1 + step] = rows[:, :step]
    filtered[:, 1 + step :] = rows[:, step:] - rows[:, :-step]  # wraps modulo 256
    compressed = zlib.compress(filtered.tobytes(), 6)

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0)
    parts = [_PNG_SIGNATURE, chunk(b"IHDR", header)]
    for start in range(0, max(len(compressed), 1), _PNG_IDAT_CHUNK):
        parts.append(chunk(b"IDAT", compressed[start : start + _PNG_IDAT_CHUNK]))
    parts.append(chunk(b"IEND", b""))
    return b"".join(parts)


# --------------------------------------------------------------------------- atomic files


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
            reason = _os_reason(exc)
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
