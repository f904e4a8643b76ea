"""Reading image files, without any scaling.

Images are plain NumPy arrays of shape ``(H, W)`` (one band) or ``(H, W, C)``
(``C`` bands, at most :data:`MAX_CHANNELS`), returned **in the file's own data
type and units**: nothing is scaled, normalised or clipped, so a 16-bit thermal
PNG comes back as ``uint16`` counts and a float32 depth TIFF as float32 metres.

Formats
-------
Read (:data:`SUPPORTED_READ`):

* ``.png`` -- 8- and 16-bit grey, grey + alpha, RGB and RGBA, and palette
  images. Grey images with 1, 2 or 4 bits per pixel are returned as ``uint8``
  scaled to 0..255, the way Pillow decodes them. PNGs with 16 bits per sample
  are read exactly as ``uint16`` through pypng (:func:`~cmsr.files.png16.read_png16`;
  Pillow reduces 16-bit colour to 8 bits), the others through Pillow.
* ``.tif`` / ``.tiff`` -- any real numeric type, any number of bands; the first
  image series of the file.
* ``.npy`` -- real numeric or bool arrays (bool becomes ``uint8`` 0/1); pickled
  objects are never loaded.
* ``.jpg`` / ``.jpeg`` / ``.bmp`` -- 8-bit grey or RGB (CMYK and other colour
  spaces are converted to RGB).
* **Palette images** (PNG, BMP) are returned as the colours they show, not their
  indices: one ``uint8`` grey band when every pixel's palette colour has
  R = G = B, ``uint8`` RGB otherwise.

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
import json
import logging
import math
import os
import stat
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np
import tifffile
from PIL import Image, UnidentifiedImageError

from cmsr.errors import InputError
from cmsr.files.checks import (
    MAX_CHANNELS,
    check_band_numbers,
    check_declared,
    check_shape,
    finish,
    laid_out_shape,
    os_reason,
)
from cmsr.files.png16 import png_header, read_png16

SUPPORTED_READ: tuple[str, ...] = (".png", ".tif", ".tiff", ".npy", ".jpg", ".jpeg", ".bmp")
"""File extensions :func:`read_image` accepts (compared case-insensitively)."""

_MAX_TIFF_PAGES = 2048  # more pages only as one tifffile-"shaped" image (see _read_tiff)
_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = b"PK\x03\x04"

_PIL_FORMATS: dict[str, tuple[str, tuple[str, ...]]] = {
    ".png": ("PNG", ("PNG",)),
    ".jpg": ("JPEG", ("JPEG",)),  # multi-picture (MPO) JPEGs open through "JPEG" too
    ".jpeg": ("JPEG", ("JPEG",)),
    ".bmp": ("BMP", ("BMP", "DIB")),
}


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
        stored": bool data becomes ``uint8`` 0/1, palette images become the grey
        or RGB colours of their palette, 1/2/4-bit grey PNGs become ``uint8``
        0..255 and alpha channels are dropped (see the module documentation).

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
        raise InputError(f"cannot access the file: {os_reason(exc)}", source) from None
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
        raise InputError(f"cannot read the file: {os_reason(exc)}", source) from None
    return finish(image, source)


def _read_pil(fh: BinaryIO, source: str) -> np.ndarray:
    """Decode a PNG, JPEG or BMP file with Pillow (16-bit PNGs with pypng)."""
    kind, formats = _PIL_FORMATS[Path(source).suffix.lower()]
    if kind == "PNG":
        width, height, bit_depth, _ = png_header(fh.read(33), source)
        check_shape((height, width), source)
        fh.seek(0)
        if bit_depth == 16:
            return _drop_alpha(read_png16(fh, source))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(fh, formats=list(formats)) as im:
                check_shape((im.height, im.width), source)
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
    if mode in ("LA", "La", "RGBA"):
        return _drop_alpha(np.asarray(im))
    if mode == "1":
        return np.asarray(im.convert("L"))
    if mode in ("P", "PA"):
        return _palette_colours(im)
    return np.asarray(im.convert("RGB"))  # CMYK, YCbCr, premultiplied RGBa, ...


def _drop_alpha(pixels: np.ndarray) -> np.ndarray:
    """``(H, W, 2)`` grey + alpha becomes ``(H, W)`` grey, ``(H, W, 4)`` RGBA becomes RGB.

    Other channel counts (1 and 3: no alpha) are returned unchanged.
    """
    bands = pixels.shape[2] if pixels.ndim == 3 else 1
    if bands == 2:
        return pixels[:, :, 0]
    if bands == 4:
        return pixels[:, :, :3]
    return pixels


def _palette_colours(im: Image.Image) -> np.ndarray:
    """The colours a palette image shows: ``uint8`` grey ``(H, W)`` or RGB ``(H, W, 3)``.

    The indices are looked up in the palette; the result is one grey band when
    every pixel's colour has R = G = B (a grey palette, as far as it is used),
    RGB otherwise. Transparency (a ``tRNS`` entry or a palette alpha) is dropped
    like any alpha channel.
    """
    rgb = _drop_alpha(np.asarray(im.convert("RGBA")))
    red, green, blue = rgb[:, :, 0], rgb[:, :, 1], rgb[:, :, 2]
    if np.array_equal(red, green) and np.array_equal(green, blue):
        return red
    return rgb


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
            laid_out = laid_out_shape(shape)
            too_many_bands = len(laid_out) == 3 and laid_out[2] > MAX_CHANNELS
            if pages > 1 and (len(laid_out) > 3 or too_many_bands):
                raise InputError(
                    f"holds {pages} pages making an array of shape {tuple(shape)}: a "
                    f"stack of images, or an image with more than {MAX_CHANNELS} bands; cmsr "
                    f"reads a single image with at most {MAX_CHANNELS} bands (up to 16 of them "
                    "may be stored as pages)",
                    source,
                )
            check_declared(shape, np.dtype(series.dtype), source)
            keyframe = series.keyframe
            if keyframe.compression == 1:  # uncompressed: the file must hold every byte
                needed = math.prod(shape) * keyframe.bitspersample // 8
                available = os.fstat(fh.fileno()).st_size
                if needed > available:
                    raise InputError(
                        f"is truncated: its header declares uncompressed values of shape "
                        f"{tuple(shape)} ({needed} bytes), the whole file has "
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
    check_declared(tuple(shape), dtype, source)

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


def select_bands(image: np.ndarray, bands: tuple[int, ...] | None, source: str) -> np.ndarray:
    """The bands numbered ``bands`` (from 1, as GDAL) of an ``(H, W)`` or ``(H, W, C)`` image.

    ``None`` keeps every band. One band gives ``(H, W)``, several ``(H, W, len(bands))``.
    A band number the image lacks raises :class:`InputError` naming ``source``.

    Examples
    --------
    >>> rgb = np.arange(24).reshape(2, 4, 3)
    >>> select_bands(rgb, (3, 1), "rgb.tif")[0, 0].tolist()
    [2, 0]
    >>> select_bands(rgb, (2,), "rgb.tif").shape
    (2, 4)
    """
    if bands is None:
        return image
    count = 1 if image.ndim == 2 else image.shape[2]
    check_band_numbers(bands, count, source)
    stack = image[:, :, None] if image.ndim == 2 else image
    chosen = stack[:, :, [band - 1 for band in bands]]
    return np.ascontiguousarray(chosen[:, :, 0] if len(bands) == 1 else chosen)
