"""The guide's whole-pixel offset for the guided finishes (depth): where the guide sits
an output pixel off the target, find it and move the guide before the guided median.

The guided median (:mod:`cmsr.method.guided_median`) moves a result's edges onto the
guide's, and the block partition ranks a block's pixels partly by the guide's colours.
Both assume the guide lies on the target's output grid. On a pair whose guide is off
by an output pixel (Middlebury13 ``026``: one row), the guided median moves every depth
edge a pixel the wrong way. :func:`best_guide_shift` looks for such an offset within
``reach`` output pixels in two steps, and moves the guide only when both agree:

* **the edges propose.** For every whole-pixel offset, the correlation between the
  result's gradient magnitude and the moved guide's: the offset where the guide's
  edges lie best on the result's (ties go to the shortest move) is the candidate, if
  it beats the unmoved guide's correlation by ``margin`` (:data:`MARGIN`) of it;
* **the measurement confirms.** The guided median runs on the result with the
  unmoved and with the moved guide; reduced by the degradation, the moved guide's
  must give back the measured target better, by ``margin`` of the unmoved guide's
  mean absolute residual.

The residual alone cannot choose: a guide moved far enough leaves the median nothing
to do, so the result stays as consistent with the measurement as it was, and a
wrong offset can score best for that reason alone. The correlation alone took a
texture's offset on Middlebury 2005 ``books`` (3.9% better than unmoved, and 3.3%
worse RMSE after the finishes). Whole pixels only: a fractional move blurs the guide. On a
large result only a central window of at most :data:`WINDOW` output pixels a side is
scored (whole measured pixels, at an integer scale). The network never sees the moved
guide; only the finishes do.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from cmsr.method.block_partition import integer_scale
from cmsr.method.guided_median import guided_median
from cmsr.method.resample import Box, DegradationKernel, downsample

Offset = tuple[int, int]
"""``(rows, columns)`` output pixels the guide moves by (positive: down, right)."""

MARGIN = 0.05
"""The share by which the proposed offset must beat the unmoved guide, both in edge
correlation and in the guided median's residual, to be taken."""
WINDOW = 512
"""Largest side, in output pixels, of the central window scored on a large result."""


@dataclass(frozen=True)
class GuideShift:
    """What :func:`best_guide_shift` found: the ``offset`` taken ((0, 0): the guide
    stays), each offset's edge ``correlations``, and the guided median's mean absolute
    ``residuals`` (the target's unit range) for the unmoved guide and the candidate."""

    offset: Offset
    correlations: dict[Offset, float] = field(default_factory=dict)
    residuals: dict[Offset, float] = field(default_factory=dict)

    @property
    def moved(self) -> bool:
        """Whether the guide moves."""
        return self.offset != (0, 0)

    @property
    def candidate(self) -> Offset:
        """The offset the edges proposed ((0, 0) when none beat the unmoved guide)."""
        return next((offset for offset in self.residuals if offset != (0, 0)), (0, 0))

    def describe(self) -> str:
        """One line for logs, e.g. ``guide moved by (1, 0) px (edge correlation 0.334
        against 0.301 unmoved; residual 0.0599 against 0.0689)``."""
        candidate = self.candidate
        if candidate == (0, 0):
            return (f"guide not moved (no whole-pixel offset lines its edges up "
                    f"{MARGIN:.0%} better)")
        numbers = (f"edge correlation {self.correlations[candidate]:.3g} against "
                   f"{self.correlations[(0, 0)]:.3g} unmoved; residual "
                   f"{self.residuals[candidate]:.3g} against {self.residuals[(0, 0)]:.3g}")
        if not self.moved:
            return f"guide not moved: the measurement does not confirm {candidate} px ({numbers})"
        return f"guide moved by {candidate} px ({numbers})"


def _source_indices(start: int, stop: int, move: int, length: int) -> torch.Tensor:
    """The source rows (or columns) of output rows ``start:stop`` of an image moved by
    ``move`` pixels, clamped to ``[0, length)`` (borders repeated)."""
    return (torch.arange(start, stop) - move).clamp(0, length - 1)


def shift_window(image: torch.Tensor, offset: Offset, box: Box | None = None) -> torch.Tensor:
    """Window ``box`` (default: the whole image) of ``image`` moved by whole pixels.

    ``image`` ``(..., H, W)``; the result's pixel ``(y, x)`` is the input's pixel
    ``(y - dy, x - dx)``, clamped to the image (borders repeated).

    Examples
    --------
    >>> shift_window(torch.tensor([[1.0, 2.0, 3.0]]), (0, 1)).tolist()
    [[1.0, 1.0, 2.0]]
    >>> shift_window(torch.tensor([[1.0, 2.0, 3.0]]), (0, -1), (0, 1, 1, 3)).tolist()
    [[3.0, 3.0]]
    """
    height, width = int(image.shape[-2]), int(image.shape[-1])
    top, bottom, left, right = box if box is not None else (0, height, 0, width)
    rows = _source_indices(top, bottom, offset[0], height).to(image.device)
    cols = _source_indices(left, right, offset[1], width).to(image.device)
    return image.index_select(-2, rows).index_select(-1, cols)


def read_shifted(read: Callable[[Box], np.ndarray], box: Box, offset: Offset,
                 shape: tuple[int, int]) -> np.ndarray:
    """Window ``box`` of an image of ``shape`` ``(H, W)`` moved by ``offset``, read by
    ``read`` (a :data:`cmsr.method.streaming.GuideReader`: ``(H', W'[, C])`` pixels of a
    window) without reading the whole image.
    """
    rows = _source_indices(box[0], box[1], offset[0], shape[0]).numpy()
    cols = _source_indices(box[2], box[3], offset[1], shape[1]).numpy()
    source = (int(rows.min()), int(rows.max()) + 1, int(cols.min()), int(cols.max()) + 1)
    pixels = read(source)
    return pixels[rows - source[0]][:, cols - source[2]]


def _scored_window(full: tuple[int, int], coarse: tuple[int, int], pad: int, window: int
                   ) -> tuple[Box, Box, Box]:
    """``(output window, its measured window, the scored part of that)``: the central
    window of whole measured pixels with at most ``window`` output pixels a side, grown
    by ``pad`` output pixels (rounded up to whole measured pixels) for the median's
    reach; the whole image at a non-integer scale or when it is small enough."""
    scale = integer_scale(full, coarse)
    if scale is None or (full[0] <= window and full[1] <= window):
        return (0, full[0], 0, full[1]), (0, coarse[0], 0, coarse[1]), \
            (0, coarse[0], 0, coarse[1])
    grow = math.ceil(pad / scale)
    bounds = []
    for length in coarse:
        inner = min(length, max(1, window // scale))
        start = (length - inner) // 2
        bounds.append((start, start + inner, max(0, start - grow),
                       min(length, start + inner + grow)))
    (r0, r1, gr0, gr1), (c0, c1, gc0, gc1) = bounds
    measured = (gr0, gr1, gc0, gc1)
    output = (gr0 * scale, gr1 * scale, gc0 * scale, gc1 * scale)
    return output, measured, (r0 - gr0, r1 - gr0, c0 - gc0, c1 - gc0)


def _offsets(reach: int) -> list[Offset]:
    """Every whole-pixel offset within ``reach`` in each direction, row by row."""
    steps = range(-reach, reach + 1)
    return [(rows, cols) for rows in steps for cols in steps]


def _gradient_magnitude(image: torch.Tensor) -> torch.Tensor:
    """``(1, c, H, W)`` -> ``(1, 1, H, W)``: the length of the forward differences,
    summed over the bands (0 at the last row and column)."""
    across = F.pad(image[..., :, 1:] - image[..., :, :-1], (0, 1, 0, 0))
    down = F.pad(image[..., 1:, :] - image[..., :-1, :], (0, 0, 0, 1))
    return (across ** 2 + down ** 2).sum(1, keepdim=True).sqrt()


def edge_correlations(estimate: torch.Tensor, guide: torch.Tensor, reach: int
                      ) -> dict[Offset, float]:
    """For each whole-pixel offset within ``reach``, the correlation between the
    gradient magnitudes of ``estimate`` ``(1, c, H, W)`` and of ``guide``
    ``(1, C, H, W)`` moved by it (:func:`shift_window`), away from a border of
    ``reach + 1`` pixels; 0 where either is flat."""
    margin = reach + 1
    edges = _gradient_magnitude(estimate)[..., margin:-margin, margin:-margin].flatten()
    edges = edges - edges.mean()
    guide_edges = _gradient_magnitude(guide)
    out: dict[Offset, float] = {}
    for offset in _offsets(reach):
        moved = shift_window(guide_edges, offset)[..., margin:-margin, margin:-margin].flatten()
        moved = moved - moved.mean()
        norm = float(edges.norm() * moved.norm())
        out[offset] = float((edges * moved).sum()) / norm if norm > 0 else 0.0
    return out


def best_guide_shift(estimate: torch.Tensor, measured: torch.Tensor, guide: torch.Tensor, *,
                     reach: int = 1, radius: int = 1, sigma: float = 0.07,
                     kernel: DegradationKernel = "box", valid: torch.Tensor | None = None,
                     margin: float = MARGIN, window: int = WINDOW) -> GuideShift:
    """The whole-pixel offset of ``guide`` that lines its edges up with ``estimate``'s,
    when the measurement confirms it (see the module's docstring).

    Parameters
    ----------
    estimate:
        ``(1, c, H, W)`` float32: the result before the guided finishes (back-projected
        onto ``measured``), the target's unit range.
    measured:
        ``(1, c, h, w)`` float32: the measured target, same units.
    guide:
        ``(1, C, H, W)`` float32 in [0, 1] on the output grid.
    reach:
        Offsets from ``-reach`` to ``reach`` output pixels in each direction are tried
        (0: only the unmoved guide).
    radius, sigma:
        The guided median's (:func:`cmsr.method.guided_median.guided_median`).
    kernel:
        The degradation that reduces the median's result to the measured grid.
    valid:
        ``(1, 1, h, w)`` float32 {0, 1} or None (all valid): the measured pixels scored.
    margin:
        The share of the unmoved guide's correlation (residual) by which the candidate
        must beat it (lower it).
    window:
        Largest side of the scored window (see :data:`WINDOW`).

    Returns
    -------
    GuideShift

    Examples
    --------
    A vertical step at column 8, measured at x4, a result that left it a little soft,
    and a guide whose edge sits one column to the left: the guide is moved one column
    right.

    >>> truth = torch.zeros(1, 1, 16, 16); truth[..., 8:] = 1.0
    >>> measured = torch.nn.functional.avg_pool2d(truth, 4)
    >>> soft = truth.clone(); soft[..., 7] = 0.2; soft[..., 8] = 0.8
    >>> guide = torch.zeros(1, 1, 16, 16); guide[..., 7:] = 1.0
    >>> best_guide_shift(soft, measured, guide).offset
    (0, 1)
    >>> best_guide_shift(soft, measured, shift_window(guide, (0, 1))).offset
    (0, 0)
    """
    if reach < 0 or not 0.0 <= margin < 1.0:
        raise ValueError(f"reach must be >= 0 and margin in [0, 1), got {reach}, {margin}")
    full = (int(estimate.shape[-2]), int(estimate.shape[-1]))
    coarse = (int(measured.shape[-2]), int(measured.shape[-1]))
    out_box, low_box, scored = _scored_window(full, coarse, radius + reach, window)
    part = estimate[..., out_box[0]:out_box[1], out_box[2]:out_box[3]]
    correlations = edge_correlations(part, shift_window(guide, (0, 0), out_box), reach)
    # ties go to the shortest move (a vertical edge says nothing about rows)
    candidate = max(correlations, key=lambda offset: (
        correlations[offset], -abs(offset[0]) - abs(offset[1])))
    unmoved = correlations[(0, 0)]
    if candidate == (0, 0) or correlations[candidate] - unmoved < margin * abs(unmoved):
        return GuideShift((0, 0), correlations)
    low = measured[..., low_box[0]:low_box[1], low_box[2]:low_box[3]]
    weight = (torch.ones_like(low[:, :1]) if valid is None
              else valid[..., low_box[0]:low_box[1], low_box[2]:low_box[3]])
    weight = weight[..., scored[0]:scored[1], scored[2]:scored[3]]
    residuals: dict[Offset, float] = {}
    for offset in ((0, 0), candidate):
        median = guided_median(part, shift_window(guide, offset, out_box), radius=radius,
                               sigma=sigma)
        error = (downsample(median, low.shape[-2:], kernel=kernel) - low).abs()
        error = error[..., scored[0]:scored[1], scored[2]:scored[3]].mean(1, keepdim=True)
        residuals[offset] = float((error * weight).sum() / weight.sum().clamp(min=1.0))
    confirmed = residuals[candidate] <= (1.0 - margin) * residuals[(0, 0)]
    return GuideShift(candidate if confirmed else (0, 0), correlations, residuals)
