"""Edge sharpening for piecewise-constant targets (depth): pull the pixels a result left
in between the two sides of a step part of the way onto the nearer side.

A network trained on the pair reduced by the scale learns edges as they look in the
measured target, where every edge pixel is a mix of its two sides (a box reduction
averages them). At the output scale the truth of a depth map has no such mixed pixels,
so the result's edges come out a pixel or two too soft, and most of the depth error
sits on those pixels (``benchmarks/edge_errors.py``). This finish looks at each pixel's
``(2 * radius + 1)`` square window:

* the window's lowest and highest values give its range; the pixels within
  :data:`END_SHARE` of the range of either end are that end's *side*, and the side's
  value is their mean;
* the window is a *step* when at least ``step_share`` (:data:`STEP_SHARE`) of its
  pixels belong to a side (a smooth ramp spreads its values evenly and is left alone);
* a pixel of a step lying :data:`MIDDLE` of the way across the range moves by
  ``strength`` of the way to the value of the side it is nearer.

No value leaves its window's range, flat regions and ramps stay as they are, and with
``strength`` 1 every in-between pixel takes a side's value. The whole image is
processed in blocks of rows (:data:`ROWS_PER_BLOCK`), so memory stays near ten times
``(2 * radius + 1) ** 2 * ROWS_PER_BLOCK * W * c * 4`` bytes plus two copies of the
image (86 MB more at the peak on a 1376x1088 result, in about 1 s on one thread).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

ROWS_PER_BLOCK = 64
RADIUS = 2
"""The default window: 5x5 pixels."""
END_SHARE = 0.2
"""A window pixel within this share of the window's range of its lowest (highest) value
belongs to the low (high) side."""
STEP_SHARE = 0.5
"""A window is a step when at least this share of its pixels belong to a side."""
MIDDLE = (0.2, 0.8)
"""A pixel lying strictly this far across its window's range (0: its lowest value, 1:
its highest) is in between the sides."""


def sharpen_edges(estimate: torch.Tensor, *, radius: int = RADIUS, strength: float = 0.4,
                  step_share: float = STEP_SHARE) -> torch.Tensor:
    """Move each in-between pixel of a step ``strength`` of the way to its nearer side.

    Parameters
    ----------
    estimate:
        ``(B, c, H, W)`` float32 result, any units (each band on its own).
    radius:
        The window is ``(2 * radius + 1)`` pixels square; the image is mirrored at its
        borders (repeated when it is no larger than ``radius``).
    strength:
        In ``[0, 1]``: 0 returns ``estimate`` unchanged, 1 puts every in-between pixel
        on its side.
    step_share:
        In ``[0, 1]``: the least share of a window's pixels on its two sides for it to
        count as a step (:data:`STEP_SHARE`; 0: every window).

    Returns
    -------
    ``(B, c, H, W)`` float32, each pixel within its window's range.

    Examples
    --------
    A step blurred over one pixel gets steeper; a ramp does not change:

    >>> step = torch.tensor([0.0, 0.0, 0.0, 3.0, 10.0, 10.0, 10.0]).repeat(5, 1)[None, None]
    >>> sharpen_edges(step, strength=0.5)[0, 0, 2].tolist()
    [0.0, 0.0, 0.0, 1.5, 10.0, 10.0, 10.0]
    >>> ramp = torch.arange(7.0).repeat(5, 1)[None, None]
    >>> bool(torch.equal(sharpen_edges(ramp), ramp))
    True
    """
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength must lie in [0, 1], got {strength}")
    if radius < 1:
        raise ValueError(f"radius must be at least 1, got {radius}")
    if strength == 0.0:
        return estimate
    size = 2 * radius + 1
    batch, channels, height, width = estimate.shape
    mode = "reflect" if min(height, width) > radius else "replicate"
    padded = F.pad(estimate, (radius,) * 4, mode=mode)
    blocks = []
    for top in range(0, height, ROWS_PER_BLOCK):
        rows = min(ROWS_PER_BLOCK, height - top)
        window = F.unfold(padded[:, :, top:top + rows + 2 * radius], size)
        values = window.view(batch, channels, size * size, rows, width)
        own = estimate[:, :, top:top + rows]
        blocks.append(_sharpen_block(own, values, strength, step_share))
    return torch.cat(blocks, dim=2)


def _sharpen_block(own: torch.Tensor, values: torch.Tensor, strength: float,
                   step_share: float) -> torch.Tensor:
    """``own`` ``(B, c, n, W)``, ``values`` its windows ``(B, c, k, n, W)``."""
    low, high = values.amin(dim=2), values.amax(dim=2)
    span = (high - low).clamp(min=torch.finfo(values.dtype).tiny)
    position = (values - low.unsqueeze(2)) / span.unsqueeze(2)
    near_low = (position < END_SHARE).to(values.dtype)
    near_high = (position > 1 - END_SHARE).to(values.dtype)
    side_low = (values * near_low).sum(2) / near_low.sum(2).clamp(min=1)
    side_high = (values * near_high).sum(2) / near_high.sum(2).clamp(min=1)
    step = (near_low + near_high).mean(2) >= step_share
    own_position = (own - low) / span
    between = step & (own_position > MIDDLE[0]) & (own_position < MIDDLE[1]) & (high > low)
    side = torch.where((own - side_low).abs() > (own - side_high).abs(), side_high, side_low)
    return torch.where(between, own + strength * (side - own), own)
