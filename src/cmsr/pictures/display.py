"""Pictures for people: display images, error maps, overlays, panel grids, loss curves.

Every function returns an ``(H, W, 3)`` ``uint8`` RGB array and writes nothing; save
the result with :mod:`cmsr.files`. Drawing uses Pillow only (``ImageDraw`` and the
default font), no matplotlib.

Colormaps
---------
``"viridis"``, ``"inferno"`` and ``"turbo"`` are compact approximations: evenly
spaced anchor colours (9 for viridis and inferno, 15 for turbo) sampled from the
published maps, linearly interpolated in RGB. They are close to, but not
bit-identical with, matplotlib's 256-entry tables.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from cmsr.errors import InputError

__all__ = [
    "COLORMAPS",
    "apply_colormap",
    "colorbar",
    "error_map",
    "loss_curve",
    "panel_grid",
    "red_green_overlay",
    "to_display",
]

_SOURCE = "figures"

#: Anchor colours (RGB, 0-255) of each colormap, evenly spaced over [0, 1].
COLORMAPS: dict[str, tuple[tuple[int, int, int], ...]] = {
    "viridis": (
        (68, 1, 84), (71, 44, 122), (59, 81, 139), (44, 113, 142), (33, 144, 141),
        (39, 173, 129), (92, 200, 99), (170, 220, 50), (253, 231, 37),
    ),
    "inferno": (
        (0, 0, 4), (31, 12, 72), (85, 15, 109), (136, 34, 106), (186, 54, 85),
        (227, 89, 51), (249, 142, 9), (249, 203, 53), (252, 255, 164),
    ),
    "turbo": (
        (48, 18, 59), (65, 69, 171), (70, 117, 237), (57, 162, 252), (27, 207, 212),
        (36, 236, 166), (97, 252, 108), (164, 252, 59), (209, 232, 52), (243, 198, 58),
        (254, 155, 45), (243, 99, 21), (217, 56, 6), (177, 25, 1), (122, 4, 3),
    ),
}

#: Luminance weights (ITU-R BT.601) used to turn an RGB guide into grey.
LUMA_WEIGHTS = (0.299, 0.587, 0.114)

#: Colours used by :func:`loss_curve` and :func:`panel_grid`.
BACKGROUND = (255, 255, 255)
TEXT_COLOUR = (0, 0, 0)
AXIS_COLOUR = (0, 0, 0)
GRID_COLOUR = (228, 228, 228)
CURVE_COLOUR = (31, 119, 180)
LR_MARK_COLOUR = (214, 96, 24)

#: At most this many learning-rate changes are marked on a loss curve.
MAX_LR_MARKS = 12

#: Default cap on the long side of a :func:`panel_grid` cell, in pixels.
MAX_CELL_SIZE = 512

_GAP = 8  # pixels between and around grid cells


# --------------------------------------------------------------------------- helpers


def _font(size: int = 12) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError):  # Pillow without FreeType or < 10.1
        return ImageFont.load_default()


def _text_size(
    draw: ImageDraw.ImageDraw, text: str, font: ImageFont.ImageFont | ImageFont.FreeTypeFont
) -> tuple[int, int]:
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    return math.ceil(right - left), math.ceil(bottom - top)


def _as_real(image: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(image)
    if arr.ndim not in (2, 3) or arr.size == 0:
        raise InputError(f"{name} must be a non-empty (H, W) or (H, W, C) array, got shape "
                         f"{arr.shape}", source=_SOURCE)
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_) or np.iscomplexobj(
        arr
    ):
        raise InputError(f"{name} must hold real numbers, got {arr.dtype}", source=_SOURCE)
    return arr


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


def _resize_nearest(image: np.ndarray, height: int, width: int) -> np.ndarray:
    rows = np.minimum((np.arange(height) + 0.5) * image.shape[0] / height, image.shape[0] - 1)
    cols = np.minimum((np.arange(width) + 0.5) * image.shape[1] / width, image.shape[1] - 1)
    return image[rows.astype(np.intp)[:, None], cols.astype(np.intp)[None, :]]


def _fit_text(
    draw: ImageDraw.ImageDraw,
    text: str,
    font: ImageFont.ImageFont | ImageFont.FreeTypeFont,
    width: int,
) -> str:
    if _text_size(draw, text, font)[0] <= width:
        return text
    while text and _text_size(draw, text + "...", font)[0] > width:
        text = text[:-1]
    return text + "..." if text else ""


def _format_number(value: float) -> str:
    if value == 0:
        return "0"
    if float(value).is_integer() and abs(value) < 1e6:
        return str(int(value))
    return f"{value:.3g}"


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
    arr = _as_real(image, "image")
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
    pred = _as_real(prediction, "prediction").astype(np.float64)
    true = _as_real(truth, "truth").astype(np.float64)
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
    red = _grey(_as_real(guide, "guide"))
    green = _grey(_as_real(target, "target"))
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


def alignment_figure(guide: np.ndarray, aligned: np.ndarray, reference: np.ndarray
                     ) -> np.ndarray:
    """The deformed guide and red-green overlays with ``reference`` before and after.

    Parameters
    ----------
    guide, aligned:
        ``(H, W, 3)`` or ``(H, W)`` the guide as given and as deformed by the learned
        warp, any real dtype.
    reference:
        ``(H, W)`` or ``(H, W, C)`` what the guide should line up with: the enlarged
        input, or the ground truth when there is one.

    Returns
    -------
    np.ndarray
        ``(h, w, 3)`` uint8: three panels, "deformed guide", "before alignment",
        "after alignment".
    """
    return panel_grid([("deformed guide", aligned),
                       ("before alignment", red_green_overlay(guide, reference)),
                       ("after alignment", red_green_overlay(aligned, reference))], columns=3)


def panel_grid(
    panels: Sequence[tuple[str, np.ndarray]],
    *,
    columns: int | None = None,
    cell_size: int | None = None,
) -> np.ndarray:
    """Labelled grid of images on a white background.

    Parameters
    ----------
    panels:
        ``(label, image)`` pairs, row by row. An image that is not already
        ``(H, W, 3)`` ``uint8`` goes through :func:`to_display` with its defaults.
        An empty label leaves the strip above that panel blank.
    columns:
        Panels per row; default ``ceil(sqrt(len(panels)))``.
    cell_size:
        Long side of each cell in pixels. The cell has the aspect ratio of the
        largest panel; every panel is scaled (nearest neighbour, so pixels stay
        visible) to fit it, keeping its own aspect ratio, centred horizontally
        and aligned to the top, right under its label. Default: the
        largest panel's long side, capped at :data:`MAX_CELL_SIZE`.

    Returns
    -------
    np.ndarray
        ``(H, W, 3)`` ``uint8``; each cell has a label strip above it.

    Examples
    --------
    >>> grid = panel_grid([("a", np.zeros((4, 4))), ("b", np.ones((2, 2)))], cell_size=32)
    >>> grid.dtype, grid.shape[2]
    (dtype('uint8'), 3)
    """
    if len(panels) == 0:
        raise InputError("panel_grid needs at least one panel", source=_SOURCE)
    count = len(panels)
    if columns is None:
        columns = math.ceil(math.sqrt(count))
    if columns < 1:
        raise InputError(f"columns must be at least 1, got {columns}", source=_SOURCE)
    columns = min(columns, count)
    rows = math.ceil(count / columns)
    images: list[np.ndarray] = []
    for label, image in panels:
        arr = np.asarray(image)
        if not (arr.dtype == np.uint8 and arr.ndim == 3 and arr.shape[2] == 3):
            arr = to_display(arr)
        if arr.size == 0:
            raise InputError(f"panel {label!r} is empty", source=_SOURCE)
        images.append(arr)
    largest = max(images, key=lambda a: a.shape[0] * a.shape[1])
    long_side = max(max(a.shape[:2]) for a in images)
    if cell_size is None:
        cell_size = min(long_side, MAX_CELL_SIZE)
    if cell_size < 1:
        raise InputError(f"cell_size must be at least 1, got {cell_size}", source=_SOURCE)
    big_h, big_w = largest.shape[:2]
    if big_w >= big_h:
        cell_w, cell_h = cell_size, max(1, round(cell_size * big_h / big_w))
    else:
        cell_w, cell_h = max(1, round(cell_size * big_w / big_h)), cell_size

    font = _font(12)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    strip = _text_size(probe, "Ag", font)[1] + 8
    height = _GAP + rows * (strip + cell_h + _GAP)
    width = _GAP + columns * (cell_w + _GAP)
    canvas = np.full((height, width, 3), 255, dtype=np.uint8)
    for index, arr in enumerate(images):
        row, col = divmod(index, columns)
        x0 = _GAP + col * (cell_w + _GAP)
        y0 = _GAP + row * (strip + cell_h + _GAP) + strip
        scale = min(cell_w / arr.shape[1], cell_h / arr.shape[0])
        new_w = max(1, min(cell_w, round(arr.shape[1] * scale)))
        new_h = max(1, min(cell_h, round(arr.shape[0] * scale)))
        resized = _resize_nearest(arr, new_h, new_w)
        dy, dx = 0, (cell_w - new_w) // 2
        canvas[y0 + dy : y0 + dy + new_h, x0 + dx : x0 + dx + new_w] = resized
    picture = Image.fromarray(canvas)
    draw = ImageDraw.Draw(picture)
    for index, (label, _) in enumerate(panels):
        if not label:
            continue
        row, col = divmod(index, columns)
        x0 = _GAP + col * (cell_w + _GAP)
        y0 = _GAP + row * (strip + cell_h + _GAP)
        text = _fit_text(draw, str(label), font, cell_w)
        left, top, _, _ = draw.textbbox((0, 0), text, font=font)
        draw.text((x0 - left, y0 + 3 - top), text, fill=TEXT_COLOUR, font=font)
    return np.asarray(picture, dtype=np.uint8).copy()


def _log_ticks(lo: float, hi: float) -> list[float]:
    """Tick values for a log axis spanning log10 values [lo, hi]."""
    best: list[float] = []
    for mantissas in ((1.0,), (1.0, 2.0, 5.0), tuple(float(m) for m in range(1, 10))):
        ticks = [
            m * 10.0**k
            for k in range(math.floor(lo) - 1, math.ceil(hi) + 2)
            for m in mantissas
            if lo - 1e-9 <= math.log10(m * 10.0**k) <= hi + 1e-9
        ]
        best = ticks
        if len(ticks) >= 3:
            break
    if len(best) > 8:
        stride = math.ceil(len(best) / 8)
        best = best[::stride]
    if len(best) < 2:
        best = [10.0**lo, 10.0**hi]
    return best


def _linear_ticks(lo: float, hi: float, integer: bool) -> list[float]:
    span = hi - lo
    raw = span / 8.0
    magnitude = 10.0 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1.0, 2.0, 5.0, 10.0) if m * magnitude >= raw)
    if integer:
        step = max(1.0, round(step))
    first = math.ceil(lo / step - 1e-9) * step
    ticks = []
    value = first
    while value <= hi + 1e-9 * max(1.0, abs(hi)):
        ticks.append(value)
        value += step
    return ticks


def _dashed_vline(
    draw: ImageDraw.ImageDraw, x: int, top: int, bottom: int, colour: tuple[int, int, int]
) -> None:
    for y in range(top, bottom, 8):
        draw.line([(x, y), (x, min(y + 4, bottom))], fill=colour, width=1)


def loss_curve(
    steps: Sequence[int],
    losses: Sequence[float],
    *,
    learning_rates: Sequence[float] | None = None,
    stage_marks: Sequence[tuple[float, str]] = (),
    title: str = "training loss",
    size: tuple[int, int] = (800, 480),
) -> np.ndarray:
    """Line plot of a training loss on a log-scale y axis.

    Parameters
    ----------
    steps:
        Training step of each loss value (x axis).
    losses:
        Loss values, same length as ``steps``. NaN, infinite and non-positive values
        (which a log axis cannot show) are skipped and break the line.
    learning_rates:
        Optional learning rate at each step, same length. Wherever it changes, a
        dashed vertical mark is drawn at that step with the new value written next
        to it (only when there are at most :data:`MAX_LR_MARKS` changes; a schedule
        that changes more often is not marked). The first rate is written at the
        top left.
    stage_marks:
        ``(step, label)`` pairs: a solid vertical line at each step, labelled near the
        bottom (where the stages of a gradual run, or the fine-tuning, begin).
    title:
        Text above the plot.
    size:
        ``(width, height)`` of the picture in pixels, at least ``(200, 150)``.

    Returns
    -------
    np.ndarray
        ``(height, width, 3)`` ``uint8``: white background, light grey grid,
        labelled axes, the curve in :data:`CURVE_COLOUR`, marks in
        :data:`LR_MARK_COLOUR`. With no plottable point, the axes and "no data".

    Examples
    --------
    >>> img = loss_curve([0, 10, 20], [1.0, 0.5, 0.1], learning_rates=[1e-3, 1e-3, 1e-4])
    >>> img.shape, img.dtype
    ((480, 800, 3), dtype('uint8'))
    """
    x_values = np.asarray(steps, dtype=np.float64).ravel()
    y_values = np.asarray(losses, dtype=np.float64).ravel()
    if x_values.shape != y_values.shape:
        raise InputError(f"{x_values.size} steps but {y_values.size} losses", source=_SOURCE)
    rates = None
    if learning_rates is not None:
        rates = np.asarray(learning_rates, dtype=np.float64).ravel()
        if rates.shape != x_values.shape:
            raise InputError(f"{x_values.size} steps but {rates.size} learning rates",
                             source=_SOURCE)
    width, height = int(size[0]), int(size[1])
    if width < 200 or height < 150:
        raise InputError(f"size must be at least (200, 150), got {size}", source=_SOURCE)

    picture = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(picture)
    font = _font(12)
    left, right, top, bottom = 72, width - 20, 32, height - 44
    plot_w, plot_h = right - left, bottom - top

    tw, _ = _text_size(draw, title, font)
    draw.text((max(0, (width - tw) // 2), 8), title, fill=TEXT_COLOUR, font=font)

    valid = np.isfinite(x_values) & np.isfinite(y_values) & (y_values > 0)
    if valid.any():
        logs = np.log10(y_values[valid])
        y_lo, y_hi = float(logs.min()), float(logs.max())
        pad = 0.05 * (y_hi - y_lo) if y_hi > y_lo else 0.5
        y_lo, y_hi = y_lo - pad, y_hi + pad
        x_finite = x_values[valid]
    else:
        y_lo, y_hi = -1.0, 0.0
        x_finite = x_values[np.isfinite(x_values)]
    if x_finite.size:
        x_lo, x_hi = float(x_finite.min()), float(x_finite.max())
    else:
        x_lo, x_hi = 0.0, 1.0
    if x_hi <= x_lo:
        x_lo, x_hi = x_lo - 1.0, x_hi + 1.0

    def px(x: float) -> float:
        return left + (x - x_lo) / (x_hi - x_lo) * plot_w

    def py(log_y: float) -> float:
        return bottom - (log_y - y_lo) / (y_hi - y_lo) * plot_h

    integer_steps = bool(np.all(np.mod(x_finite, 1.0) == 0)) if x_finite.size else True
    for tick in _linear_ticks(x_lo, x_hi, integer_steps):
        x = round(px(tick))
        draw.line([(x, top), (x, bottom)], fill=GRID_COLOUR)
        draw.line([(x, bottom), (x, bottom + 4)], fill=AXIS_COLOUR)
        label = _format_number(tick)
        lw, _ = _text_size(draw, label, font)
        draw.text((x - lw // 2, bottom + 7), label, fill=TEXT_COLOUR, font=font)
    for tick in _log_ticks(y_lo, y_hi):
        y = round(py(math.log10(tick)))
        draw.line([(left, y), (right, y)], fill=GRID_COLOUR)
        draw.line([(left - 4, y), (left, y)], fill=AXIS_COLOUR)
        label = f"{tick:.3g}"
        lw, lh = _text_size(draw, label, font)
        draw.text((left - 7 - lw, y - lh // 2 - 2), label, fill=TEXT_COLOUR, font=font)
    sw, _ = _text_size(draw, "step", font)
    draw.text((left + (plot_w - sw) // 2, height - 18), "step", fill=TEXT_COLOUR, font=font)

    for step, label in stage_marks:
        if not math.isfinite(step) or not x_lo <= step <= x_hi:
            continue
        x = round(px(float(step)))
        draw.line([(x, top), (x, bottom)], fill=AXIS_COLOUR)
        lw, lh = _text_size(draw, label, font)
        tx = x + 3 if x + 3 + lw <= right else x - 3 - lw
        draw.text((tx, bottom - lh - 6), label, fill=AXIS_COLOUR, font=font)

    if rates is not None:
        if rates.size and np.isfinite(rates[0]):
            draw.text((left + 4, top + 3), f"lr {rates[0]:.2g}", fill=LR_MARK_COLOUR,
                      font=font)
        changes = [
            i
            for i in range(1, rates.size)
            if np.isfinite(rates[i]) and np.isfinite(x_values[i]) and rates[i] != rates[i - 1]
        ]
        if len(changes) <= MAX_LR_MARKS:
            for k, i in enumerate(changes):
                x = round(min(max(px(float(x_values[i])), left), right))
                _dashed_vline(draw, x, top, bottom, LR_MARK_COLOUR)
                label = f"lr {rates[i]:.2g}"
                lw, _ = _text_size(draw, label, font)
                tx = x + 3 if x + 3 + lw <= right else x - 3 - lw
                draw.text((tx, top + 3 + 14 * (k % 2)), label, fill=LR_MARK_COLOUR, font=font)

    if valid.any():
        segment: list[tuple[float, float]] = []
        for i in range(x_values.size + 1):
            if i < x_values.size and valid[i]:
                segment.append((px(float(x_values[i])), py(math.log10(float(y_values[i])))))
                continue
            if len(segment) == 1:
                (x, y) = segment[0]
                draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=CURVE_COLOUR)
            elif len(segment) > 1:
                draw.line(segment, fill=CURVE_COLOUR, width=2, joint="curve")
            segment = []
    else:
        nw, nh = _text_size(draw, "no data", font)
        draw.text((left + (plot_w - nw) // 2, top + (plot_h - nh) // 2), "no data",
                  fill=TEXT_COLOUR, font=font)

    draw.line([(left, top), (left, bottom), (right, bottom)], fill=AXIS_COLOUR)
    return np.asarray(picture, dtype=np.uint8).copy()


def colorbar(
    vmin: float,
    vmax: float,
    colormap: str | None = "inferno",
    height: int = 256,
    *,
    width: int = 80,
) -> np.ndarray:
    """Vertical colour scale, vmax at the top, with three labelled values.

    Parameters
    ----------
    vmin, vmax:
        Values at the bottom and top, in data units.
    colormap:
        As in :func:`to_display`; ``None`` for grey.
    height, width:
        Size of the picture in pixels (height >= 32, width >= 30).

    Returns
    -------
    np.ndarray
        ``(height, width, 3)`` ``uint8``; a 16-pixel-wide bar on the left, labels
        (vmax, middle, vmin) to its right.

    Examples
    --------
    >>> colorbar(0.0, 2.5, "viridis", 100).shape
    (100, 80, 3)
    """
    if height < 32 or width < 30:
        raise InputError(f"colorbar needs height >= 32 and width >= 30, got {height}x{width}",
                         source=_SOURCE)
    margin, bar_w = 6, 16
    bar_h = height - 2 * margin
    t = np.linspace(1.0, 0.0, bar_h)[:, None].repeat(bar_w, axis=1)
    if colormap is None:
        bar = np.repeat(np.rint(t * 255.0).astype(np.uint8)[:, :, None], 3, axis=2)
    else:
        bar = apply_colormap(t, colormap)
    canvas = np.full((height, width, 3), 255, dtype=np.uint8)
    canvas[margin : margin + bar_h, 2 : 2 + bar_w] = bar
    picture = Image.fromarray(canvas)
    draw = ImageDraw.Draw(picture)
    font = _font(11)
    for fraction in (0.0, 0.5, 1.0):
        value = vmax + (vmin - vmax) * fraction
        y = margin + round(fraction * (bar_h - 1))
        draw.line([(2 + bar_w, y), (2 + bar_w + 3, y)], fill=AXIS_COLOUR)
        label = f"{value:.3g}"
        _, lh = _text_size(draw, label, font)
        ty = min(max(0, y - lh // 2 - 2), height - lh - 3)
        draw.text((2 + bar_w + 6, ty), label, fill=TEXT_COLOUR, font=font)
    return np.asarray(picture, dtype=np.uint8).copy()
