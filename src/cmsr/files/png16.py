"""A 16-bit PNG codec: exact reading of 16-bit colour PNGs, and writing them.

Pillow has no 16-bit colour modes: it reduces 16-bit RGB(A) PNGs to 8 bits when
reading and cannot write them. :func:`read_png16_colour` decodes such a file twice
through Pillow, keeping the high and then the low byte of every sample, and
recombines them; :func:`encode_png` writes a ``uint16`` array of 1 to 4 channels
as a PNG by hand (zlib and the chunk layout).
"""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from typing import BinaryIO

import numpy as np
from PIL import Image

from cmsr.errors import InputError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_IDAT_CHUNK = 2**20  # bytes per IDAT chunk in PNGs we write


def png_header(head: bytes, source: str) -> tuple[int, int, int, int]:
    """``(width, height, bit_depth, colour_type)`` from the first 33 bytes of a PNG."""
    if not head.startswith(PNG_SIGNATURE):
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
        # Pillow >= 11 has _Tile named tuples, older Pillow plain tuples
        im.tile = [replace(args=rawmode) if replace  # type: ignore[list-item]
                   else (*tile[:3], rawmode)]
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
    probe = io.BytesIO(encode_png(sample))
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


def read_png16_colour(fh: BinaryIO, colour_type: int, source: str) -> np.ndarray:
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


def encode_png(image: np.ndarray) -> bytes:
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
    parts = [PNG_SIGNATURE, chunk(b"IHDR", header)]
    for start in range(0, max(len(compressed), 1), _PNG_IDAT_CHUNK):
        parts.append(chunk(b"IDAT", compressed[start : start + _PNG_IDAT_CHUNK]))
    parts.append(chunk(b"IEND", b""))
    return b"".join(parts)
