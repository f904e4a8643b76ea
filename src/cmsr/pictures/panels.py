"""Labelled panel grids, colour bars and the alignment figure, drawn with Pillow.

Every function returns an ``(H, W, 3)`` ``uint8`` RGB array and writes nothing. Drawing
uses Pillow only (``ImageDraw`` and the default font), no matplotlib.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from cmsr.errors import InputError
from cmsr.pictures.display import apply_colormap, enlarge_nearest, red_green_overlay, to_display

#: Colours of the pictures' background, text and axes.
BACKGROUND = (255, 255, 255)
TEXT_COLOUR = (0, 0, 0)
AXIS_COLOUR = (0, 0, 0)
GRID_COLOUR = (228, 228, 228)

#: Default cap on the long side of a :func:`panel_grid` cell, in pixels.
MAX_CELL_SIZE = 512

_GAP = 8  # pixels between and around grid cells
_SOURCE = "figures"


def default_font(size: int = 12) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """Pillow's default font at ``size`` points (its bitmap font where FreeType lacks)."""
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError):  # Pillow without FreeType or < 10.1
        return ImageFont.load_default()


def text_size(
    draw: ImageDraw.ImageDraw, text: str, font: ImageFont.ImageFont | ImageFont.FreeTypeFont
) -> tuple[int, int]:
    """``(width, height)`` in pixels of ``text`` drawn in ``font``."""
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    return math.ceil(right - left), math.ceil(bottom - top)


def _fit_text(
    draw: ImageDraw.ImageDraw,
    text: str,
    font: ImageFont.ImageFont | ImageFont.FreeTypeFont,
    width: int,
) -> str:
    if text_size(draw, text, font)[0] <= width:
        return text
    while text and text_size(draw, text + "...", font)[0] > width:
        text = text[:-1]
    return text + "..." if text else ""


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

    font = default_font(12)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    strip = text_size(probe, "Ag", font)[1] + 8
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
        resized = enlarge_nearest(arr, (new_h, new_w))
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
        raise InputError(f"colorbar needs height >= 32 and width >= 30, got {width}x{height}",
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
    font = default_font(11)
    for fraction in (0.0, 0.5, 1.0):
        value = vmax + (vmin - vmax) * fraction
        y = margin + round(fraction * (bar_h - 1))
        draw.line([(2 + bar_w, y), (2 + bar_w + 3, y)], fill=AXIS_COLOUR)
        label = f"{value:.3g}"
        _, lh = text_size(draw, label, font)
        ty = min(max(0, y - lh // 2 - 2), height - lh - 3)
        draw.text((2 + bar_w + 6, ty), label, fill=TEXT_COLOUR, font=font)
    return np.asarray(picture, dtype=np.uint8).copy()
