"""16-bit PNG files, read and written exactly through pypng.

Pillow reduces 16-bit colour PNGs to 8 bits and cannot write them, so every PNG
with 16 bits per sample -- grey, grey + alpha, RGB and RGBA -- goes through
pypng (a pure-Python PNG codec) instead, in both directions; 8-bit PNGs stay
with Pillow. Samples are ``uint16`` 0..65535, returned and written as stored.

pypng decodes in Python: a 1024x768 16-bit RGB PNG took about 0.1 s of CPU to
read when its rows are unfiltered (as cmsr writes them) and about 0.55 s when an
encoder such as libpng filtered them; writing one took about 0.1 s. Before
decoding, the declared size is checked and the compressed pixel stream is
measured in bounded steps, so that a small file cannot make pypng inflate far
more data than its header declares.
"""

from __future__ import annotations

import itertools
import struct
import zlib
from collections.abc import Iterator
from typing import BinaryIO

import numpy as np
import png
from PIL import Image

from cmsr.errors import InputError
from cmsr.files.checks import check_shape

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

_PLANES = {0: 1, 2: 3, 4: 2, 6: 4}
"""Samples per pixel of the PNG colour types that allow 16 bits per sample."""

_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
          (0, 1, 1, 2))  # fmt: skip
"""The seven passes of Adam7 interlacing: first column, first row, column step, row step."""

_INFLATE_STEP = 2**20  # bytes of pixel stream inflated at a time while measuring it


def png_header(head: bytes, source: str) -> tuple[int, int, int, int]:
    """``(width, height, bit_depth, colour_type)`` from the first 33 bytes of a PNG."""
    if not head.startswith(PNG_SIGNATURE):
        raise InputError("is not a PNG file (it does not start with the PNG signature)", source)
    if len(head) < 33 or head[12:16] != b"IHDR":
        raise InputError("is not a valid PNG file (its IHDR header is missing or cut)", source)
    width, height, bit_depth, colour_type = struct.unpack(">IIBB", head[16:26])
    return width, height, bit_depth, colour_type


def read_png16(fh: BinaryIO, source: str) -> np.ndarray:
    """Read a PNG with 16 bits per sample exactly.

    Parameters
    ----------
    fh:
        The open file, at any position; it is read from its start.
    source:
        The file name, for messages.

    Returns
    -------
    numpy.ndarray
        ``uint16`` of shape ``(H, W, P)`` with every stored sample plane: ``P`` is
        1 (grey), 2 (grey, alpha), 3 (RGB) or 4 (RGBA). Alpha is kept here; what to
        do with it is the caller's choice.

    Raises
    ------
    InputError
        If the header is not that of a 16-bit grey or colour PNG, declares more
        pixels than allowed (cmsr's :data:`~cmsr.files.checks.MAX_PIXELS` and
        Pillow's decompression-bomb limit ``PIL.Image.MAX_IMAGE_PIXELS`` alike),
        or the file is truncated or corrupt, or holds more pixel data than its
        header declares.
    """
    fh.seek(0)
    head = fh.read(33)
    width, height, bit_depth, colour_type = png_header(head, source)
    interlaced = head[28] == 1  # the IHDR's last byte: 0 none, 1 Adam7
    if bit_depth != 16 or colour_type not in _PLANES:
        raise InputError(
            f"is not a valid PNG file ({bit_depth} bits per sample with colour type "
            f"{colour_type} is not a 16-bit grey or colour image)",
            source,
        )
    check_shape((height, width), source)
    limit = Image.MAX_IMAGE_PIXELS
    if limit is not None and width * height > limit:
        raise InputError(
            f"image is too large to decode safely ({width}x{height} = {width * height} "
            f"pixels, more than the decompression-bomb limit of {limit})",
            source,
        )
    fh.seek(0)
    data = fh.read()  # from memory, pypng never reads past the file's end for a chunk
    planes = _PLANES[colour_type]
    expected = _pixel_stream_bytes(width, height, 2 * planes, interlaced)
    try:
        found = _measure_pixel_stream(data, expected)
        if found > expected:
            raise InputError(
                f"is corrupt: its pixel data is longer than the {expected} bytes its header "
                f"declares for {width}x{height} pixels",
                source,
            )
        if found < expected:
            raise InputError(
                f"is truncated: its pixel data ends after {found} of {expected} bytes", source
            )
        _, _, rows, _ = png.Reader(bytes=data).read()
        pixels = np.empty((height, width * planes), dtype=np.uint16)
        filled = 0
        for filled, row in enumerate(itertools.islice(rows, height), start=1):
            pixels[filled - 1] = np.frombuffer(row, dtype=np.uint16)  # pypng: native order
        if filled < height:
            raise InputError(f"is truncated: it holds {filled} of {height} pixel rows", source)
    except InputError:
        raise
    except MemoryError:
        raise
    except Exception as exc:  # png.Error, zlib.error, EOFError, ValueError, ...
        raise InputError(f"is truncated or corrupt: {exc}", source) from None
    return pixels.reshape(height, width, planes)


def _pixel_stream_bytes(width: int, height: int, pixel_bytes: int, interlaced: bool) -> int:
    """Bytes of the inflated pixel stream: each row (of each Adam7 pass) and its filter byte."""
    if not interlaced:
        return height * (1 + width * pixel_bytes)
    total = 0
    for x0, y0, dx, dy in _ADAM7:
        columns = max(0, -(-(width - x0) // dx))
        rows = max(0, -(-(height - y0) // dy))
        if columns and rows:
            total += rows * (1 + columns * pixel_bytes)
    return total


def _measure_pixel_stream(data: bytes, expected: int) -> int:
    """Length of the inflated pixel stream of a PNG, counted up to just past ``expected``.

    Inflates at most :data:`_INFLATE_STEP` bytes at a time and keeps none of them,
    so a file whose stream inflates to far more than its header declares (a
    decompression bomb) costs little. pypng checks every chunk's CRC on the way.
    """
    inflate = zlib.decompressobj()
    found = 0
    for compressed in _idat_chunks(data):
        pending = compressed
        while pending:
            found += len(inflate.decompress(pending, _INFLATE_STEP))
            if found > expected:
                return found
            pending = inflate.unconsumed_tail
    return found + len(inflate.flush())


def _idat_chunks(data: bytes) -> Iterator[bytes]:
    """The contents of the IDAT chunks of a PNG, in file order."""
    for kind, content in png.Reader(bytes=data).chunks():
        if kind == b"IDAT":
            yield content


def write_png16(fh: BinaryIO, image: np.ndarray) -> None:
    """Write ``uint16`` pixels to ``fh`` as a non-interlaced 16-bit PNG, with pypng.

    Parameters
    ----------
    fh:
        A binary file open for writing.
    image:
        ``uint16`` array ``(H, W)`` (grey) or ``(H, W, C)`` with ``C`` 1 (grey),
        2 (grey, alpha), 3 (RGB) or 4 (RGBA); values 0..65535 are stored as they
        are. Rows are stored unfiltered and deflated at zlib's default level.
    """
    pixels = image if image.ndim == 3 else image[:, :, np.newaxis]
    height, width, planes = pixels.shape
    rows = np.ascontiguousarray(pixels, dtype=">u2").view(np.uint8).reshape(height, -1)
    writer = png.Writer(
        width, height, bitdepth=16, greyscale=planes <= 2, alpha=planes in (2, 4)
    )
    writer.write_packed(fh, rows)  # "packed" rows: the big-endian bytes of each row
