"""Images for people: any array as a displayable picture, colormaps, error maps, overlays.

Every function returns an ``(H, W, 3)`` ``uint8`` RGB array and writes nothing; save
the result with :mod:`cmsr.files`.

Colormaps
---------
``"viridis"``, ``"inferno"`` (van der Walt and Smith, CC0) and ``"turbo"`` (Mikhailov,
Google, Apache 2.0) are compact forms of the published 256-entry tables: every 5th
entry (52 anchors, evenly spaced over [0, 1]), rounded to 8 bits and linearly
interpolated in RGB. At each of the tables' entries they are within 1.5 levels of 255
of matplotlib's (``tests/test_pictures.py`` checks it where matplotlib is installed).
"""

from __future__ import annotations

import numpy as np

from cmsr.errors import InputError
from cmsr.method.validate import check_array

_SOURCE = "figures"


def _hex_colours(text: str) -> tuple[tuple[int, int, int], ...]:
    """``"440154 46085c ..."`` -> ``((68, 1, 84), (70, 8, 92), ...)``."""
    return tuple((int(c[:2], 16), int(c[2:4], 16), int(c[4:], 16)) for c in text.split())


#: Anchor colours (RGB, 0-255) of each colormap, evenly spaced over [0, 1]: entries
#: 0, 5, ..., 255 of the published 256-entry tables.
COLORMAPS: dict[str, tuple[tuple[int, int, int], ...]] = {
    "viridis": _hex_colours(
        "440154 46085c 471063 481769 481d6f 482475 472a7a 46307e 453781 433d84 414287 3f4889 "
        "3d4e8a 3a538b 38598c 355e8d 33638d 31688e 2e6d8e 2c718e 2a768e 297b8e 27808e 25848e "
        "23898e 218e8d 20928c 1f978b 1e9c89 1fa188 21a585 24aa83 28ae80 2eb37c 35b779 3dbc74 "
        "46c06f 50c46a 5ac864 65cb5e 70cf57 7cd250 89d548 95d840 a2da37 b0dd2f bddf26 cae11f "
        "d8e219 e5e419 f1e51d fde725"
    ),
    "inferno": _hex_colours(
        "000004 02020c 050417 0a0722 10092d 160b39 1e0c45 260c51 2f0a5b 380962 400a67 490b6a "
        "510e6c 59106e 61136e 69166e 71196e 781c6d 801f6c 88226a 902568 982766 a02a63 a82e5f "
        "b0315b b73557 bf3952 c63d4d cc4248 d34743 d94d3d df5337 e45a31 e9612b ed6925 f1711f "
        "f47918 f78212 f98b0b fa9407 fb9d07 fca60c fcb014 fbba1f fac42a f8cd37 f6d746 f4e156 "
        "f2ea69 f2f27d f5f992 fcffa4"
    ),
    "turbo": _hex_colours(
        "30123b 36215f 3b2f80 3f3e9c 424bb5 4559cb 4666dd 4773eb 4680f6 458cfd 4099ff 38a5fb "
        "2fb2f4 27bee9 1fc9dd 1ad4d0 18ddc2 1ae4b6 22ebaa 2ff19b 3ff68a 52fa7a 65fd69 79fe59 "
        "8bff4b 9cfe40 a9fb39 b7f735 c3f134 d0ea34 dbe236 e5d938 eecf3a f5c53a faba39 fdae35 "
        "fea130 fe932a fc8423 f9751d f46617 ef5811 e84b0c e14109 d83706 ce2d04 c32503 b71d02 "
        "a91601 9b0f01 8b0902 7a0403"
    ),
}

#: Luminance weights (ITU-R BT.601) used to turn an RGB guide into grey.
LUMA_WEIGHTS = (0.299, 0.587, 0.114)


# --------------------------------------------------------------------------- helpers


def _grey(arr: np.ndarray) -> np.ndarray:
    """Float64 ``(H, W)`` from ``(H, W)`` or ``(H, W, C)``: luminance for C >= 3."""
    values = arr.astype(np.float64)
    if values.ndim == 2:
        return values
    if values.shape[2] >= 3:
        return values[:, :, :3] @ np.asarray(LUMA_WEIGHTS)
    return values[:, :, 0]


def _stretch(
    values: np.ndarray, vmin: float | None, vmax: float | None, percentiles: bool = True
) -> np.ndarray:
    """Map float values to [0, 1]; NaN stays NaN.

    Defaults for the limits: 1st/99th percentile of the finite values (or min/max
    when ``percentiles`` is False). A degenerate scale (vmax <= vmin) gives 0 below
    vmin, 1 above and 0.5 at vmin.
    """
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return np.full(values.shape, np.nan)
    if vmin is None:
        vmin = float(np.percentile(finite, 1)) if percentiles else float(finite.min())
    if vmax is None:
        vmax = float(np.percentile(finite, 99)) if percentiles else float(finite.max())
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        if vmax > vmin:
            out = np.clip((values - vmin) / (vmax - vmin), 0.0, 1.0)
        else:
            out = np.where(values > vmin, 1.0, np.where(values < vmin, 0.0, 0.5))
    out[np.isnan(values)] = np.nan
    return out


def enlarge_nearest(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``(h, w[, c])`` -> ``size + ([c])`` by nearest neighbour, so pixels stay visible
    (also shrinks, picking the pixel under each output pixel's centre).

    Examples
    --------
    >>> enlarge_nearest(np.array([[1, 2], [3, 4]]), (2, 4)).tolist()
    [[1, 1, 2, 2], [3, 3, 4, 4]]
    """
    rows = np.minimum((np.arange(size[0]) + 0.5) * image.shape[0] / size[0], image.shape[0] - 1)
    cols = np.minimum((np.arange(size[1]) + 0.5) * image.shape[1] / size[1], image.shape[1] - 1)
    return image[rows.astype(np.intp)[:, None], cols.astype(np.intp)[None, :]]


# --------------------------------------------------------------------------- public


def apply_colormap(values: np.ndarray, name: str) -> np.ndarray:
    """Colour values in [0, 1] with a named colormap.

    Parameters
    ----------
    values:
        Float array of any shape; clipped to [0, 1]. NaN is shown black.
    name:
        ``"viridis"``, ``"inferno"`` or ``"turbo"`` (see :data:`COLORMAPS`).

    Returns
    -------
    np.ndarray
        ``values.shape + (3,)`` ``uint8`` RGB.

    Examples
    --------
    >>> apply_colormap(np.array([0.0, 1.0]), "inferno").tolist()
    [[0, 0, 4], [252, 255, 164]]
    """
    if name not in COLORMAPS:
        raise InputError(f"unknown colormap {name!r}; choose one of {sorted(COLORMAPS)}",
                         source=_SOURCE)
    anchors = np.asarray(COLORMAPS[name], dtype=np.float64)
    positions = np.linspace(0.0, 1.0, len(anchors))
    t = np.asarray(values, dtype=np.float64)
    nan = np.isnan(t)
    t = np.clip(np.where(nan, 0.0, t), 0.0, 1.0)
    out = np.stack([np.interp(t, positions, anchors[:, c]) for c in range(3)], axis=-1)
    out = np.rint(out).astype(np.uint8)
    out[nan] = 0
    return out


def to_display(
    image: np.ndarray,
    *,
    vmin: float | None = None,
    vmax: float | None = None,
    colormap: str | None = None,
) -> np.ndarray:
    """Turn any image into something a screen can show.

    Parameters
    ----------
    image:
        ``(H, W)`` or ``(H, W, C)``, any real dtype, in its own units. ``C == 1`` or
        ``C == 2`` is shown as grey from the first channel; ``C >= 3`` as RGB from
        the first three channels.
    vmin, vmax:
        Values (in the image's units) shown black and white (or the two ends of the
        colormap). Defaults: the 1st and 99th percentile of the finite values
        (bool images: 0 and 1). Colour images share one scale across channels; a
        ``uint8`` colour image is returned unchanged unless vmin or vmax is given.
    colormap:
        ``None`` for grey, or ``"viridis"``, ``"inferno"``, ``"turbo"``; grey images only.

    Returns
    -------
    np.ndarray
        ``(H, W, 3)`` ``uint8``. NaN pixels (any channel) are black (0, 0, 0).

    Examples
    --------
    >>> out = to_display(np.array([[0.0, 0.5, 1.0]]), vmin=0.0, vmax=1.0)
    >>> out.shape, out.dtype, out[0, :, 0].tolist()
    ((1, 3, 3), dtype('uint8'), [0, 128, 255])
    """
    arr = check_array(image, "image")
    if arr.dtype == np.bool_:
        arr = arr.astype(np.float64)
        vmin = 0.0 if vmin is None else vmin
        vmax = 1.0 if vmax is None else vmax
    if arr.ndim == 3 and arr.shape[2] >= 3:
        if colormap is not None:
            raise InputError("a colormap applies to single-channel images only",
                             source=_SOURCE)
        rgb = arr[:, :, :3]
        if rgb.dtype == np.uint8 and vmin is None and vmax is None:
            return np.ascontiguousarray(rgb)
        values = rgb.astype(np.float64)
        t = _stretch(values, vmin, vmax)
        nan = np.isnan(t).any(axis=2)
        out = np.rint(np.nan_to_num(t, nan=0.0) * 255.0).astype(np.uint8)
        out[nan] = 0
        return out
    values = arr.astype(np.float64)
    if values.ndim == 3:
        values = values[:, :, 0]
    t = _stretch(values, vmin, vmax)
    if colormap is not None:
        return apply_colormap(t, colormap)
    nan = np.isnan(t)
    grey = np.rint(np.nan_to_num(t, nan=0.0) * 255.0).astype(np.uint8)
    grey[nan] = 0
    return np.repeat(grey[:, :, None], 3, axis=2)


def error_map(prediction: np.ndarray, truth: np.ndarray, *, vmax: float) -> np.ndarray:
    """Absolute error ``|prediction - truth|`` on a fixed "inferno" scale.

    Parameters
    ----------
    prediction, truth:
        Same shape, ``(H, W)`` or ``(H, W, C)``, any real dtype, same units.
        Multi-channel errors are averaged over channels.
    vmax:
        Error (in data units) shown at the bright end of the scale; 0 is the dark
        end. Pass the same value for several methods so their maps compare.

    Returns
    -------
    np.ndarray
        ``(H, W, 3)`` ``uint8``. Pixels where either input is NaN are black.

    Examples
    --------
    >>> a = np.zeros((2, 2))
    >>> error_map(a, a, vmax=1.0)[0, 0].tolist()
    [0, 0, 4]
    """
    pred = check_array(prediction, "prediction").astype(np.float64)
    true = check_array(truth, "truth").astype(np.float64)
    if pred.shape != true.shape:
        raise InputError(f"prediction has shape {pred.shape} but truth has shape {true.shape}",
                         source=_SOURCE)
    if not (np.isfinite(vmax) and vmax > 0):
        raise InputError(f"vmax must be positive, got {vmax!r}", source=_SOURCE)
    error = np.abs(pred - true)
    if error.ndim == 3:
        error = error.mean(axis=2)
    return apply_colormap(error / float(vmax), "inferno")


def red_green_overlay(guide: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Red = guide luminance, green = target: misalignment shows as colour fringes.

    As in Figure 6 of the CMSR paper. Each input is min-max stretched to [0, 1]
    over its finite values; NaN counts as 0.

    Parameters
    ----------
    guide:
        ``(H, W, 3)`` RGB (luminance with BT.601 weights) or ``(H, W)`` grey, any dtype.
    target:
        ``(H, W)`` (or ``(H, W, C)``: luminance / first channel), same H and W.

    Returns
    -------
    np.ndarray
        ``(H, W, 3)`` ``uint8``: red from the guide, green from the target, blue 0.

    Examples
    --------
    >>> out = red_green_overlay(np.array([[0.0, 1.0]]), np.array([[5.0, 3.0]]))
    >>> out[0].tolist()
    [[0, 255, 0], [255, 0, 0]]
    """
    red = _grey(check_array(guide, "guide"))
    green = _grey(check_array(target, "target"))
    if red.shape != green.shape:
        raise InputError(
            f"guide is {red.shape[1]}x{red.shape[0]} but target is "
            f"{green.shape[1]}x{green.shape[0]}; resample one first",
            source=_SOURCE,
        )
    out = np.zeros((*red.shape, 3), dtype=np.uint8)
    for channel, values in ((0, red), (1, green)):
        t = np.nan_to_num(_stretch(values, None, None, percentiles=False), nan=0.0)
        out[:, :, channel] = np.rint(t * 255.0).astype(np.uint8)
    return out
