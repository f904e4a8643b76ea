"""What an image file may hold: the size limits, and the checks on shapes and dtypes.

Shared by the readers (which check a file's declared shape before decoding it) and
the writers. Every problem raises :class:`~cmsr.errors.InputError` naming the file.
"""

from __future__ import annotations

import math

import numpy as np

from cmsr.errors import InputError, describe_shape

MAX_PIXELS: int = 2**28
"""Largest image (``H * W`` pixels) that will be decoded: 268,435,456."""

MAX_CHANNELS: int = 64
"""Largest number of bands (channels) an image may have."""

MAX_BYTES: int = 2**31
"""Largest decoded image (``H * W * C * bytes per value``) that will be read: 2 GiB."""

_MAX_BAND_FIRST = 16  # (C, H, W) with C <= this and H, W > this is taken as band-first

DTYPE_KIND_NAMES = {
    "c": "complex numbers",
    "O": "Python objects",
    "U": "text",
    "S": "bytes",
    "V": "structured records",
    "M": "dates",
    "m": "time spans",
}


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
    if array.ndim in (2, 3):
        grey = " grey" if array.ndim == 2 else ""
        return f"{describe_shape(array.shape)} {array.dtype}{grey}"
    return f"array of shape {tuple(array.shape)} {array.dtype}"


# --------------------------------------------------------------------------- checks


def os_reason(exc: OSError) -> str:
    """The human part of an OSError (``'Permission denied'``), without the path."""
    return exc.strerror or str(exc) or type(exc).__name__


def check_dtype(dtype: np.dtype, source: str) -> None:
    """Refuse anything but bool, integer and real floating-point data."""
    if dtype.kind not in "biuf":
        what = DTYPE_KIND_NAMES.get(dtype.kind, "non-numeric data")
        raise InputError(
            f"holds {what} (dtype {dtype}); only real numbers (integer, float or bool) "
            "are supported",
            source,
        )


def layout(array: np.ndarray) -> np.ndarray:
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


def check_shape(shape: tuple[int, ...], source: str) -> None:
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
        raise InputError(f"is empty: the image has shape {tuple(shape)}", source)
    if height * width > MAX_PIXELS:
        raise InputError(
            f"image is too large: {width}x{height} = {height * width} pixels, more than the "
            f"limit of {MAX_PIXELS}",
            source,
        )
    if len(shape) == 3 and shape[2] > MAX_CHANNELS:
        raise InputError(
            f"has {shape[2]} channels ({describe_shape(shape)}); at most {MAX_CHANNELS} "
            "are supported",
            source,
        )


def laid_out_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """The shape :func:`layout` gives an array of ``shape``, computed without data."""
    return layout(np.broadcast_to(np.zeros((), dtype=np.uint8), shape)).shape


def check_declared(shape: tuple[int, ...], dtype: np.dtype, source: str) -> None:
    """Check a shape and dtype read from a file header, before decoding any pixels."""
    check_dtype(dtype, source)
    if any(int(n) < 0 for n in shape):
        raise InputError(f"has a corrupt header: it declares the negative size {tuple(shape)}",
                         source)
    laid_out = laid_out_shape(shape)
    check_shape(laid_out, source)
    size = math.prod(laid_out) * dtype.itemsize
    if size > MAX_BYTES:
        raise InputError(
            f"image is too large: {describe_shape(laid_out)} values of {dtype} take {size} bytes, "
            f"more than the limit of {MAX_BYTES}",
            source,
        )


def finish(image: np.ndarray, source: str) -> np.ndarray:
    """Validate a decoded array and return it laid out, native-endian and writable."""
    check_dtype(image.dtype, source)
    image = layout(image)
    check_shape(image.shape, source)
    if image.dtype == np.bool_:
        image = image.astype(np.uint8)
    elif not image.dtype.isnative:
        image = image.astype(image.dtype.newbyteorder("="))
    image = np.ascontiguousarray(image)
    if not image.flags.writeable:
        image = image.copy()
    return image


def check_band_numbers(bands: tuple[int, ...], count: int, source: str) -> None:
    """Refuse band numbers outside ``1..count`` (numbered from 1, as GDAL does).

    Examples
    --------
    >>> check_band_numbers((1, 3), 3, "rgb.tif")
    >>> check_band_numbers((4,), 3, "rgb.tif")
    Traceback (most recent call last):
    ...
    cmsr.errors.InputError: rgb.tif: has no band 4 (it has 3 bands, numbered from 1)
    """
    if not bands:
        raise InputError("no bands chosen (give band numbers from 1)", source)
    for band in bands:
        if not 1 <= band <= count:
            plural = "band" if count == 1 else "bands"
            raise InputError(f"has no band {band} (it has {count} {plural}, numbered from 1)",
                             source)
