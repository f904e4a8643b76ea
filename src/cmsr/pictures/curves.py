"""The loss curve of a training run: log-scale loss over steps, with the learning rate's
changes and the stages marked; drawn with Pillow.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

from cmsr.errors import InputError
from cmsr.pictures.panels import (
    AXIS_COLOUR,
    BACKGROUND,
    GRID_COLOUR,
    TEXT_COLOUR,
    default_font,
    text_size,
)

#: Colours of the curve and of the learning-rate marks.
CURVE_COLOUR = (31, 119, 180)
LR_MARK_COLOUR = (214, 96, 24)

#: At most this many learning-rate changes are marked on a loss curve.
MAX_LR_MARKS = 12
_SOURCE = "figures"


def _format_number(value: float) -> str:
    if value == 0:
        return "0"
    if float(value).is_integer() and abs(value) < 1e6:
        return str(int(value))
    return f"{value:.3g}"


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
    font = default_font(12)
    left, right, top, bottom = 72, width - 20, 32, height - 44
    plot_w, plot_h = right - left, bottom - top

    tw, _ = text_size(draw, title, font)
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
        lw, _ = text_size(draw, label, font)
        draw.text((x - lw // 2, bottom + 7), label, fill=TEXT_COLOUR, font=font)
    for tick in _log_ticks(y_lo, y_hi):
        y = round(py(math.log10(tick)))
        draw.line([(left, y), (right, y)], fill=GRID_COLOUR)
        draw.line([(left - 4, y), (left, y)], fill=AXIS_COLOUR)
        label = f"{tick:.3g}"
        lw, lh = text_size(draw, label, font)
        draw.text((left - 7 - lw, y - lh // 2 - 2), label, fill=TEXT_COLOUR, font=font)
    sw, _ = text_size(draw, "step", font)
    draw.text((left + (plot_w - sw) // 2, height - 18), "step", fill=TEXT_COLOUR, font=font)

    for step, label in stage_marks:
        if not math.isfinite(step) or not x_lo <= step <= x_hi:
            continue
        x = round(px(float(step)))
        draw.line([(x, top), (x, bottom)], fill=AXIS_COLOUR)
        lw, lh = text_size(draw, label, font)
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
                lw, _ = text_size(draw, label, font)
                tx = x + 3 if x + 3 + lw <= right else x - 3 - lw
                draw.text((tx, top + 3 + 14 * (k % 2)), label, fill=LR_MARK_COLOUR, font=font)

    if valid.any():
        segment: list[tuple[float, float]] = []
        for i in range(x_values.size + 1):
            if i < x_values.size and valid[i]:
                segment.append((px(float(x_values[i])), py(math.log10(float(y_values[i])))))
                continue
            if len(segment) == 1:
                (dot_x, dot_y) = segment[0]
                draw.ellipse([dot_x - 2, dot_y - 2, dot_x + 2, dot_y + 2], fill=CURVE_COLOUR)
            elif len(segment) > 1:
                draw.line(segment, fill=CURVE_COLOUR, width=2, joint="curve")
            segment = []
    else:
        nw, nh = text_size(draw, "no data", font)
        draw.text((left + (plot_w - nw) // 2, top + (plot_h - nh) // 2), "no data",
                  fill=TEXT_COLOUR, font=font)

    draw.line([(left, top), (left, bottom), (right, bottom)], fill=AXIS_COLOUR)
    return np.asarray(picture, dtype=np.uint8).copy()
