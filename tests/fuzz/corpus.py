"""Broken, hostile and implausible input files, written on demand (nothing binary is stored).

Every entry of :data:`CASES` is one kind of bad input cmsr must refuse with a one-line
:class:`cmsr.errors.InputError` that names the file: truncated and corrupt PNG, JPEG,
TIFF and NPY files, headers declaring huge or empty images, files of one kind named as
another, things that are not files at all, unsupported data types and layouts, and
images that read fine but cannot be super-resolved (1x1, NaN, infinity, guides of the
wrong size).

The files are made with NumPy, Pillow, tifffile and hand-written PNG / TIFF / NPY
headers, never with :mod:`cmsr.files` itself, so the corpus does not depend on the code
it tests.

* ``stage="read"``: :func:`cmsr.files.read_image` must refuse the file.
* ``stage="check"``: the file reads fine, but the checks before training
  (:func:`cmsr.method.api.prepare_pair`) must refuse it, given the valid partner file from
  :func:`write_partner`.

Examples
--------
>>> import tempfile
>>> from pathlib import Path
>>> case = CASE_BY_NAME["png_zero_width"]
>>> path = write_case(case, Path(tempfile.mkdtemp()))
>>> path.name, case.stage, case.words
('zero_width.png', 'read', ('empty',))
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import tifffile
from PIL import Image

__all__ = ["CASES", "CASE_BY_NAME", "Case", "write_case", "write_corpus", "write_partner"]

_SEED = 20240521
PARTNER_TARGET_SHAPE = (12, 12)
"""Shape of the valid target given with a broken guide (uint8 PNG)."""
PARTNER_GUIDE_SHAPE = (48, 48, 3)
"""Shape of the valid guide given with a broken target (uint8 RGB PNG), x4 the target."""


@dataclass(frozen=True)
class Case:
    """One kind of bad input.

    Attributes
    ----------
    name:
        Identifier, e.g. ``"png_truncated_half"``.
    filename:
        Name of the file (or directory, link, pipe) :func:`write_case` creates.
    role:
        Whether it is given as the ``"target"`` or the ``"guide"``.
    stage:
        ``"read"``: :func:`cmsr.files.read_image` refuses it; ``"check"``: it reads, and
        the pair checks refuse it.
    words:
        The error message must contain at least one of these (compared in lower case).
    build:
        Creates the input at the given path.
    about:
        What is wrong, in a few words.
    posix_only:
        Needs POSIX file-system features (named pipes, symbolic links).
    """

    name: str
    filename: str
    role: Literal["target", "guide"]
    stage: Literal["read", "check"]
    words: tuple[str, ...]
    build: Callable[[Path], None]
    about: str
    posix_only: bool = False


# --------------------------------------------------------------------------- encoders


def _rng() -> np.random.Generator:
    return np.random.default_rng(_SEED)


def _noise(shape: tuple[int, ...], dtype: type = np.uint8) -> np.ndarray:
    """Random pixels over the whole range of an integer dtype (compresses badly)."""
    info = np.iinfo(dtype)
    return _rng().integers(info.min, int(info.max) + 1, shape, dtype=dtype)


def _smooth(shape: tuple[int, ...]) -> np.ndarray:
    """A float64 ramp plus a little noise: a plausible, non-constant image."""
    height, width = shape[:2]
    ramp = np.add.outer(np.arange(height), np.arange(width)) / (height + width)
    image = ramp if len(shape) == 2 else np.repeat(ramp[:, :, None], shape[2], axis=2)
    return image + 0.05 * _rng().random(shape)


def _chunk(kind: bytes, body: bytes) -> bytes:
    """One PNG chunk: length, type, data, CRC."""
    crc = zlib.crc32(kind + body) & 0xFFFFFFFF
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)


def _png(width: int, height: int, *, bit_depth: int = 8, colour_type: int = 0,
         idat: bytes | None = None) -> bytes:
    """A PNG with the given header; ``idat`` is the compressed pixel stream (default: a
    tiny zlib stream, far too short for any real image)."""
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    idat = zlib.compress(b"\0" * 16) if idat is None else idat
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", idat)
            + _chunk(b"IEND", b""))


def _png16(pixels: np.ndarray) -> bytes:
    """A correct 16-bit PNG of ``(H, W)`` or ``(H, W, 3)`` ``uint16`` pixels (filter 0)."""
    height, width = pixels.shape[:2]
    rows = b"".join(b"\0" + row.astype(">u2").tobytes() for row in pixels)
    return _png(width, height, bit_depth=16, colour_type=2 if pixels.ndim == 3 else 0,
                idat=zlib.compress(rows))


def _pillow(image: np.ndarray, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _tiff(width: int, height: int, *, bits: int = 8, sample_format: int = 1, samples: int = 1,
          compression: int = 1, data: bytes = b"\0" * 16, pages: int = 1) -> bytes:
    """A little-endian baseline TIFF written field by field, whatever the header claims.

    All ``pages`` share one strip of ``data``. ``samples`` is at most 2 (the per-sample
    fields then fit in their tag entries).
    """
    if not 1 <= samples <= 2:
        raise ValueError("samples must be 1 or 2")
    data += b"\0" * (len(data) % 2)  # IFDs start on a word boundary
    first_ifd = 8 + len(data)

    def per_sample(value: int) -> tuple[int, int, int, bytes]:
        return (3, samples, 0, struct.pack("<2H", value, value if samples == 2 else 0))

    entries = {  # tag: (type, count, value, packed value or b"")
        256: (4, 1, width, b""),  # ImageWidth
        257: (4, 1, height, b""),  # ImageLength
        258: per_sample(bits),  # BitsPerSample
        259: (3, 1, compression, b""),  # Compression
        262: (3, 1, 1, b""),  # PhotometricInterpretation: min-is-black
        273: (4, 1, 8, b""),  # StripOffsets
        277: (3, 1, samples, b""),  # SamplesPerPixel
        278: (4, 1, max(height, 1), b""),  # RowsPerStrip
        279: (4, 1, len(data), b""),  # StripByteCounts
        284: (3, 1, 1, b""),  # PlanarConfiguration: contiguous
        339: per_sample(sample_format),  # SampleFormat
    }
    ifd_size = 2 + 12 * len(entries) + 4
    out = [b"II*\0", struct.pack("<I", first_ifd), data]
    for page in range(pages):
        out.append(struct.pack("<H", len(entries)))
        for tag, (kind, count, value, packed) in sorted(entries.items()):
            if packed:
                out.append(struct.pack("<HHI", tag, kind, count) + packed)
            elif kind == 3:
                out.append(struct.pack("<HHIHH", tag, kind, count, value, 0))
            else:
                out.append(struct.pack("<HHII", tag, kind, count, value))
        following = first_ifd + (page + 1) * ifd_size if page + 1 < pages else 0
        out.append(struct.pack("<I", following))
    return b"".join(out)


def _tifffile(image: np.ndarray, **options: object) -> bytes:
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, image, **options)
    return buffer.getvalue()


def _npy_header(descr: str, shape: str, *, version: bytes = b"\x01\x00") -> bytes:
    """A ``.npy`` signature and header with a literal ``descr`` and ``shape`` (no data)."""
    text = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}".encode()
    text += b" " * ((64 - (10 + len(text) + 1) % 64) % 64) + b"\n"
    return b"\x93NUMPY" + version + struct.pack("<H", len(text)) + text


def _npy(array: np.ndarray, *, allow_pickle: bool = False) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=allow_pickle)
    return buffer.getvalue()


def _cut(data: bytes, keep: float) -> bytes:
    """The first ``keep`` fraction of ``data``."""
    return data[: int(len(data) * keep)]


def _flip_byte(data: bytes, at: int) -> bytes:
    changed = bytearray(data)
    changed[at] ^= 0xFF
    return bytes(changed)


def _jpeg_with_size(width: int, height: int) -> bytes:
    """A small valid JPEG whose frame header (SOF0) is patched to ``width x height``."""
    data = bytearray(_pillow(_noise((64, 64, 3)), "JPEG", quality=90))
    sof = data.find(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def _bmp_with_size(width: int, height: int) -> bytes:
    """A small valid BMP whose info header is patched to ``width x height``."""
    data = bytearray(_pillow(_noise((8, 8)), "BMP"))
    data[18:26] = struct.pack("<ii", width, height)
    return bytes(data)


# --------------------------------------------------------------------------- builders


def _bytes(make: Callable[[], bytes]) -> Callable[[Path], None]:
    """A builder writing the bytes ``make()`` returns."""
    return lambda path: path.write_bytes(make())


def _array(make: Callable[[], np.ndarray]) -> Callable[[Path], None]:
    """A builder saving ``make()`` in the format of the path's extension (valid file)."""

    def build(path: Path) -> None:
        image = make()
        suffix = path.suffix.lower()
        if suffix == ".npy":
            path.write_bytes(_npy(image))
        elif suffix in (".tif", ".tiff"):
            path.write_bytes(_tifffile(image, photometric="minisblack"))
        else:
            path.write_bytes(_pillow(image, "PNG"))

    return build


def _directory(path: Path) -> None:
    path.mkdir()


def _fifo(path: Path) -> None:
    os.mkfifo(path)  # opening it for reading would block until someone writes


def _symlink_loop(path: Path) -> None:
    other = path.with_name("loop_other.png")
    os.symlink(other.name, path)
    os.symlink(path.name, other)


def _dangling_symlink(path: Path) -> None:
    os.symlink("does_not_exist.png", path)


def _text(path: Path) -> None:
    path.write_text("width,height\n640,480\nthis is a CSV file, not an image\n")


def _with_values(shape: tuple[int, ...], dtype: type, where: tuple[int, ...], value: float,
                 ) -> Callable[[], np.ndarray]:
    def make() -> np.ndarray:
        image = _smooth(shape).astype(dtype)
        image[where] = value
        return image

    return make


def _all_nan() -> np.ndarray:
    return np.full(PARTNER_TARGET_SHAPE, np.nan, np.float32)


def _range_overflow() -> np.ndarray:
    image = _smooth(PARTNER_TARGET_SHAPE)
    image[0, 0], image[-1, -1] = -1e308, 1e308
    return image


def _structured() -> np.ndarray:
    return np.zeros((8, 8), dtype=[("x", "<f4"), ("y", "<f4")])


def _objects() -> np.ndarray:
    image = np.empty((8, 8), dtype=object)
    image[:] = 1.5
    return image


def _npz() -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, image=_smooth((8, 8)))
    return buffer.getvalue()


def _tiff_stack() -> bytes:
    return _tifffile(_noise((100, 20, 70)))


# --------------------------------------------------------------------------- the corpus


def _read(name: str, filename: str, words: tuple[str, ...], build: Callable[[Path], None],
          about: str, *, role: Literal["target", "guide"] = "target",
          posix_only: bool = False) -> Case:
    return Case(name, filename, role, "read", words, build, about, posix_only)


def _check(name: str, filename: str, words: tuple[str, ...], make: Callable[[], np.ndarray],
           about: str, *, role: Literal["target", "guide"] = "target") -> Case:
    return Case(name, filename, role, "check", words, _array(make), about)


_TOO_LARGE = ("too large",)
_TRUNCATED = ("truncated",)
_CORRUPT = ("corrupt", "truncated")
_NOT_A = ("not a",)

CASES: tuple[Case, ...] = (
    # ---- PNG
    _read("png_truncated_half", "cut.png", _TRUNCATED,
          _bytes(lambda: _cut(_pillow(_noise((64, 64, 3)), "PNG"), 0.5)),
          "8-bit RGB PNG cut in half"),
    _read("png_truncated_in_header", "cut_header.png", ("ihdr",),
          _bytes(lambda: _pillow(_noise((64, 64)), "PNG")[:20]),
          "PNG cut inside its IHDR header"),
    _read("png_signature_only", "signature.png", ("ihdr",),
          _bytes(lambda: b"\x89PNG\r\n\x1a\n"), "only the 8-byte PNG signature"),
    _read("png_corrupt_crc", "crc.png", _CORRUPT,
          _bytes(lambda: _flip_byte(_png(16, 16, idat=zlib.compress(_noise(16 * 17).tobytes())),
                                    50)),
          "PNG with a damaged byte in its pixel data (CRC mismatch)"),
    _read("png_bad_zlib", "zlib.png", _CORRUPT,
          _bytes(lambda: _png(16, 16, idat=b"this is no zlib stream at all")),
          "PNG whose pixel stream is not zlib data"),
    _read("png_no_pixel_data", "no_idat.png", _CORRUPT,
          _bytes(lambda: _png(16, 16)[:33] + _chunk(b"IEND", b"")),
          "PNG without any IDAT chunk"),
    _read("png_pixel_data_short", "short.png", _TRUNCATED,
          _bytes(lambda: _png(64, 64)), "PNG whose pixel stream ends after 16 of 4160 bytes"),
    _read("png_zero_width", "zero_width.png", ("empty",),
          _bytes(lambda: _png(0, 16, idat=zlib.compress(b""))), "PNG declaring 0x16 pixels"),
    _read("png_zero_height", "zero_height.png", ("empty",),
          _bytes(lambda: _png(16, 0, idat=zlib.compress(b""))), "PNG declaring 16x0 pixels"),
    _read("png16_rgb_truncated", "cut16.png", _TRUNCATED,
          _bytes(lambda: _cut(_png16(_noise((40, 40, 3), np.uint16)), 0.5)),
          "16-bit RGB PNG cut in half (read through pypng)", role="guide"),
    _read("png16_rgb_zero_width", "zero16.png", ("empty",),
          _bytes(lambda: _png(0, 16, bit_depth=16, colour_type=2, idat=zlib.compress(b""))),
          "16-bit RGB PNG declaring 0x16 pixels"),
    _read("png_huge_header", "bomb.png", _TOO_LARGE,
          _bytes(lambda: _png(100_000, 100_000)),
          "PNG header declaring 100000x100000 pixels, 40 bytes of data"),
    _read("png16_huge_header", "bomb16.png", _TOO_LARGE,
          _bytes(lambda: _png(70_000, 70_000, bit_depth=16, colour_type=2)),
          "16-bit RGB PNG header declaring 70000x70000 pixels"),
    _read("png16_inflate_bomb", "inflate16.png", ("longer than",),
          _bytes(lambda: _png(1, 1, bit_depth=16, colour_type=2,
                              idat=zlib.compress(bytes(50_000_000), 9))),
          "16-bit RGB PNG of 1x1 pixels whose 50 kB pixel stream inflates to 50 MB"),
    _read("png_over_pillow_limit", "pillow_bomb.png", _TOO_LARGE,
          _bytes(lambda: _png(15_000, 15_000)),
          "PNG declaring 15000x15000: under cmsr's pixel limit, over Pillow's"),
    _read("png_bad_bit_depth", "bits7.png", ("not a png",),
          _bytes(lambda: _png(16, 16, bit_depth=7)), "PNG with 7 bits per sample"),
    _read("png_bad_colour_type", "colour5.png", ("not a png",),
          _bytes(lambda: _png(16, 16, colour_type=5)), "PNG with the undefined colour type 5"),
    # ---- JPEG and BMP
    _read("jpeg_truncated_tail", "cut.jpg", _TRUNCATED,
          _bytes(lambda: _cut(_pillow(_noise((64, 64, 3)), "JPEG", quality=90), 0.75)),
          "JPEG missing the last quarter of its data", role="guide"),
    _read("jpeg_missing_end_marker", "no_eoi.jpg", _TRUNCATED,
          _bytes(lambda: _pillow(_noise((64, 64, 3)), "JPEG", quality=90)[:-2]),
          "JPEG without its final end-of-image marker and last bytes", role="guide"),
    _read("jpeg_huge_header", "bomb.jpg", _TOO_LARGE,
          _bytes(lambda: _jpeg_with_size(65_000, 65_000)),
          "JPEG frame header declaring 65000x65000 pixels"),
    _read("jpeg_zero_height", "zero.jpg", ("not a jpeg",),
          _bytes(lambda: _jpeg_with_size(64, 0)), "JPEG frame header declaring 64x0 pixels"),
    _read("bmp_huge_header", "bomb.bmp", _TOO_LARGE,
          _bytes(lambda: _bmp_with_size(100_000, 100_000)),
          "BMP header declaring 100000x100000 pixels"),
    # ---- TIFF
    _read("tiff_huge_header", "bomb.tif", _TOO_LARGE,
          _bytes(lambda: _tiff(100_000, 100_000)), "TIFF declaring 100000x100000 pixels"),
    _read("tiff_zero_rows", "zero_rows.tif", ("empty",),
          _bytes(lambda: _tiff(16, 0)), "TIFF with 0 rows"),
    _read("tiff_zero_columns", "zero_columns.tif", ("empty",),
          _bytes(lambda: _tiff(0, 16)), "TIFF with 0 columns"),
    _read("tiff_truncated_half", "cut.tif", ("truncated", "cannot decode"),
          _bytes(lambda: _cut(_tifffile(_smooth((64, 64)).astype(np.float32)), 0.5)),
          "float32 TIFF cut in half"),
    _read("tiff_short_uncompressed", "liar.tif", _TRUNCATED,
          _bytes(lambda: _tiff(16_000, 16_000, bits=64, sample_format=3)),
          "uncompressed float64 TIFF declaring 16000x16000 (2 GB) in a 166-byte file"),
    _read("tiff_over_byte_limit", "bomb_bytes.tif", _TOO_LARGE,
          _bytes(lambda: _tiff(16_000, 16_000, bits=64, sample_format=3, samples=2,
                               compression=8, data=zlib.compress(b"\0" * 4096))),
          "deflated 2-band float64 TIFF declaring 16000x16000 (4 GB): under the pixel "
          "limit, over the byte limit"),
    _read("tiff_many_pages", "pages.tif", ("pages",),
          _bytes(lambda: _tiff(2, 2, data=b"\0" * 4, pages=3000)),
          "TIFF of 3000 tiny pages (grouping them takes time quadratic in their number)"),
    _read("tiff_stack", "stack.tif", ("stack", "channels"), _bytes(_tiff_stack),
          "TIFF stack of 100 images"),
    _read("tiff_65_bands", "bands65.tif", ("channels", "bands"),
          _bytes(lambda: _tifffile(np.zeros((8, 8, 65), np.float32))),
          "8x8 TIFF with 65 bands"),
    _read("tiff_complex", "complex.tif", ("complex",),
          _bytes(lambda: _tifffile(np.zeros((8, 8), np.complex64), photometric="minisblack")),
          "TIFF of complex numbers"),
    # ---- one kind named as another, not a file, empty
    _read("png_named_tif", "png.tif", ("not a valid tiff",),
          _bytes(lambda: _pillow(_noise((16, 16)), "PNG")), "a PNG file named .tif"),
    _read("jpeg_named_png", "jpeg.png", ("not a png",),
          _bytes(lambda: _pillow(_noise((16, 16)), "JPEG")), "a JPEG file named .png"),
    _read("tiff_named_png", "tiff.png", ("not a png",),
          _bytes(lambda: _tifffile(_noise((16, 16)))), "a TIFF file named .png"),
    _read("text_named_png", "notes.png", _NOT_A, _text, "a text file named .png"),
    _read("text_named_tif", "notes.tif", _NOT_A, _text, "a text file named .tif"),
    _read("text_named_npy", "notes.npy", _NOT_A, _text, "a text file named .npy"),
    _read("text_named_jpg", "notes.jpg", _NOT_A, _text, "a text file named .jpg",
          role="guide"),
    _read("empty_png", "empty.png", ("empty",), lambda path: path.touch(), "empty .png file"),
    _read("empty_tif", "empty.tif", ("empty",), lambda path: path.touch(), "empty .tif file"),
    _read("empty_npy", "empty.npy", ("empty",), lambda path: path.touch(), "empty .npy file"),
    _read("directory_named_png", "x.png", ("directory",), _directory,
          "a directory named x.png"),
    _read("fifo_named_png", "pipe.png", ("not a regular file",), _fifo,
          "a named pipe called pipe.png (reading it would block)", posix_only=True),
    _read("symlink_loop", "loop.png", ("cannot access",), _symlink_loop,
          "two symbolic links pointing at each other", posix_only=True),
    _read("dangling_symlink", "dangling.png", ("no such file",), _dangling_symlink,
          "a symbolic link to a file that does not exist", posix_only=True),
    _read("unsupported_extension", "anim.gif", ("unsupported",),
          _bytes(lambda: _pillow(_noise((8, 8)), "GIF")), "a GIF file (not supported)"),
    _read("no_extension", "thermal", ("unsupported",),
          _bytes(lambda: _pillow(_noise((8, 8)), "PNG")), "a PNG file without extension"),
    # ---- NPY
    _read("npy_complex", "complex.npy", ("complex",),
          _bytes(lambda: _npy(np.zeros((8, 8), np.complex128))), "array of complex numbers"),
    _read("npy_object", "objects.npy", ("objects",),
          _bytes(lambda: _npy(_objects(), allow_pickle=True)),
          "pickled array of Python objects (must not be unpickled)"),
    _read("npy_text", "text.npy", ("text",),
          _bytes(lambda: _npy(np.full((8, 8), "hot"))), "array of strings"),
    _read("npy_structured", "records.npy", ("structured",),
          _bytes(lambda: _npy(_structured())), "array of (x, y) records"),
    _read("npy_datetime", "dates.npy", ("dates",),
          _bytes(lambda: _npy(np.zeros((8, 8), "datetime64[s]"))), "array of dates"),
    _read("npy_timedelta", "spans.npy", ("time spans",),
          _bytes(lambda: _npy(np.zeros((8, 8), "timedelta64[ms]"))), "array of time spans"),
    _read("npy_4d_stack", "stack.npy", ("stack",),
          _bytes(lambda: _npy(np.zeros((2, 3, 16, 16), np.float32))), "4-D array (2x3 images)"),
    _read("npy_1d", "line.npy", ("1-d",),
          _bytes(lambda: _npy(np.arange(64, dtype=np.float32))), "1-D array"),
    _read("npy_scalar", "scalar.npy", ("0-d",),
          _bytes(lambda: _npy(np.array(3.5))), "0-D array (one number)"),
    _read("npy_zero_rows", "zero_rows.npy", ("empty",),
          _bytes(lambda: _npy(np.zeros((0, 16), np.float32))), "array of shape (0, 16)"),
    _read("npy_65_bands", "bands65.npy", ("channels",),
          _bytes(lambda: _npy(np.zeros((8, 8, 65), np.float32))), "8x8 array with 65 bands"),
    _read("npy_truncated", "cut.npy", _TRUNCATED,
          _bytes(lambda: _cut(_npy(_smooth((64, 64))), 0.5)), "float64 .npy cut in half"),
    _read("npy_huge_header", "bomb.npy", _TOO_LARGE,
          _bytes(lambda: _npy_header("<f8", "(100000, 100000)")),
          "header declaring 100000x100000 float64, no data"),
    _read("npy_negative_shape", "negative.npy", ("negative",),
          _bytes(lambda: _npy_header("<f4", "(-4, 4)") + b"\0" * 64),
          "header declaring the shape (-4, 4)"),
    _read("npy_corrupt_header", "header.npy", ("corrupt",),
          _bytes(lambda: _npy_header("<f8", "(4, 4")[:-1] + b"\n" + b"\0" * 128),
          "header that is not a valid Python literal"),
    _read("npy_unknown_version", "version.npy", ("version",),
          _bytes(lambda: _npy_header("<f8", "(4, 4)", version=b"\x09\x00") + b"\0" * 128),
          "unknown .npy format version 9.0"),
    _read("npz_named_npy", "archive.npy", ("zip",), _bytes(_npz), "an .npz archive named .npy"),
    # ---- read fine, refused before training
    _check("target_1x1", "one.png", ("too small",), lambda: _noise((1, 1)),
           "1x1 target"),
    _check("target_3x3", "three.png", ("too small",), lambda: _noise((3, 3)), "3x3 target"),
    _check("guide_1x1", "one.png", ("too small", "smaller"), lambda: _noise((1, 1, 3)),
           "1x1 guide", role="guide"),
    _check("target_all_nan", "nan.tif", ("no valid pixels",), _all_nan,
           "float32 target that is NaN everywhere"),
    _check("target_with_inf", "inf.npy", ("infinite",),
           _with_values(PARTNER_TARGET_SHAPE, np.float32, (3, 4), np.inf),
           "float32 target with one +inf"),
    _check("target_with_minus_inf", "minus_inf.tif", ("infinite",),
           _with_values(PARTNER_TARGET_SHAPE, np.float64, (0, 0), -np.inf),
           "float64 target with one -inf"),
    _check("target_range_overflow", "range.npy", ("too wide",), _range_overflow,
           "float64 target from -1e308 to 1e308 (the range overflows)"),
    _check("target_constant", "flat.png", ("constant",),
           lambda: np.full(PARTNER_TARGET_SHAPE, 17, np.uint8), "constant target"),
    _check("guide_with_nan", "nan.npy", ("nan",),
           _with_values(PARTNER_GUIDE_SHAPE, np.float32, (5, 6, 1), np.nan),
           "float32 guide with one NaN", role="guide"),
    _check("guide_with_inf", "inf.tif", ("infinite",),
           _with_values(PARTNER_GUIDE_SHAPE, np.float32, (7, 7, 0), np.inf),
           "float32 guide with one +inf", role="guide"),
    _check("guide_constant", "flat.png", ("constant",),
           lambda: np.zeros(PARTNER_GUIDE_SHAPE, np.uint8), "black guide", role="guide"),
    _check("guide_smaller_than_target", "small.png", ("smaller",),
           lambda: _noise((8, 8, 3)), "8x8 guide for a 12x12 target", role="guide"),
    _check("guide_same_size_as_target", "same.png", ("same size",),
           lambda: _noise((12, 12, 3)), "guide as small as the 12x12 target", role="guide"),
    _check("guide_anisotropic", "wide.png", ("differ",),
           lambda: _noise((12, 96, 3)), "guide x1 in y and x8 in x", role="guide"),
    _check("guide_scale_over_16", "huge_scale.png", ("implausible",),
           lambda: _noise((204, 204, 3)), "guide x17 the target", role="guide"),
    _check("guide_17_bands", "bands17.npy", ("bands",),
           lambda: _smooth((48, 48, 17)).astype(np.float32), "48x48 guide with 17 bands",
           role="guide"),
)
"""Every kind of bad input, one :class:`Case` each."""

CASE_BY_NAME: dict[str, Case] = {case.name: case for case in CASES}


def write_case(case: Case, folder: Path) -> Path:
    """Create the bad input of ``case`` in ``folder``; return its path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / case.filename
    case.build(path)
    return path


def write_partner(case: Case, folder: Path) -> Path:
    """Write the valid other half of the pair for ``case`` in ``folder``; return its path.

    A broken target gets a 48x48 RGB guide, a broken guide a 12x12 grey target (x4).
    """
    folder.mkdir(parents=True, exist_ok=True)
    if case.role == "target":
        path = folder / "partner_guide.png"
        path.write_bytes(_pillow(_noise(PARTNER_GUIDE_SHAPE), "PNG"))
    else:
        path = folder / "partner_target.png"
        image = np.rint(_smooth(PARTNER_TARGET_SHAPE) * 200).astype(np.uint8)
        path.write_bytes(_pillow(image, "PNG"))
    return path


def write_corpus(folder: Path, *, posix: bool = os.name == "posix") -> dict[str, Path]:
    """Every case in its own subfolder of ``folder``: ``{case name: path}``.

    Cases needing POSIX file-system features are left out when ``posix`` is false.
    """
    return {case.name: write_case(case, folder / case.name)
            for case in CASES if posix or not case.posix_only}
