"""Block partition for piecewise-constant targets (depth): split each measured pixel that
straddles a step between the step's two sides in the proportion its value says.

Under a box degradation every measured pixel is the mean of the ``s x s`` block of
output pixels it covers. Where a block straddles a step between a low side ``lo`` and a
high side ``hi``, a measured value ``v`` therefore says how many of the block's pixels
lie on the high side: ``(v - lo) / (hi - lo) * s**2``. A result that blurs the edge over
a pixel or two keeps the block's mean but not that count. This finish, for each such
block:

* takes ``lo`` and ``hi`` as the lowest and highest measured values among the block's
  3x3 measured neighbours (a block wholly on a side measures that side's value);
* counts it as a step when its own value lies between them (more than 2% of the way
  from either; all 9 measured, none a filled hole) and at least
  ``step_share`` (:data:`STEP_SHARE`) of the 5x5 measured pixels around it
  (:data:`STEP_RADIUS`) lie within :data:`END_SHARE` of their range of its lowest or
  highest value (a smooth ramp spreads its values evenly and is left alone: in 5x5 a
  ramp has 2 of 5 values near an end, a step blurred over one measured pixel 4 of 5);
* ranks the block's pixels by the result smoothed over ``sigma`` (:data:`SIGMA`)
  pixels, plus, with a guide, ``guide_weight`` (:data:`GUIDE_WEIGHT`) times how much
  nearer the pixel's guide colour is to the high side's colour than to the low side's
  (both sides' colours taken where the result lies at that side, in the block's 3x3
  neighbourhood);
* gives the ``n`` highest-ranked pixels ``hi``, the rest ``lo``, and the one pixel in
  between the remainder (so the block's mean stays ``v`` exactly), and moves each pixel
  ``strength`` of the way to that value.

Chosen on stored results (``benchmarks/block_partition.py``). Exact for a box
degradation; under another kernel the count is only approximate.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

SIGMA = 1.5
"""Output pixels of Gaussian smoothing of the result before it ranks a block's pixels."""
GUIDE_WEIGHT = 0.2
"""How far, in units of the step's height, the guide colour can move a pixel's rank."""
COLOUR_SIGMA = 0.1
"""Guide colour distance (unit range) below which the two sides count as alike."""
STEP_SHARE = 0.7
"""A block is a step when at least this share of the measured pixels around it lie near
the lowest or the highest of them."""
STEP_RADIUS = 2
"""The step test reads the ``(2 * STEP_RADIUS + 1)**2`` measured pixels around a block: in
a 3x3 window a step blurred over one measured pixel and a ramp look the same."""
END_SHARE = 0.2
"""Near a side: within this share of the neighbourhood's range of its end."""


def partition_halo(scale: int, sigma: float = SIGMA) -> int:
    """Output pixels of context a window needs for :func:`partition_blocks` to give the
    whole image's values in its interior: the step test's reach and an unaligned
    block, or the smoothing's reach and two blocks, whichever is more."""
    return max((STEP_RADIUS + 2) * scale, 2 * scale + math.ceil(3 * sigma)) + 1


def integer_scale(full: tuple[int, int], coarse: tuple[int, int]) -> int | None:
    """The integer scale ``s`` (>= 2) with ``full == (s * coarse[0], s * coarse[1])``, or
    None when the sizes are not such a multiple."""
    if coarse[0] <= 0 or coarse[1] <= 0 or full[0] % coarse[0] or full[1] % coarse[1]:
        return None
    scale = full[0] // coarse[0]
    return scale if scale == full[1] // coarse[1] and scale >= 2 else None


def block_scale(estimate: torch.Tensor, measured: torch.Tensor) -> int | None:
    """:func:`integer_scale` of ``estimate`` ``(..., H, W)`` over ``measured``
    ``(..., h, w)``."""
    return integer_scale((int(estimate.shape[-2]), int(estimate.shape[-1])),
                         (int(measured.shape[-2]), int(measured.shape[-1])))


def gaussian_smooth(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """``(B, c, H, W)`` float32 smoothed by a Gaussian of ``sigma`` pixels (truncated at
    3 sigma, borders repeated); ``sigma`` 0 returns ``image``."""
    if sigma <= 0:
        return image
    radius = math.ceil(3 * sigma)
    taps = torch.arange(-radius, radius + 1, dtype=image.dtype, device=image.device)
    kernel = torch.exp(-taps ** 2 / (2 * sigma ** 2))
    kernel = kernel / kernel.sum()
    batch, bands, height, width = image.shape
    flat = image.reshape(batch * bands, 1, height, width)
    flat = F.pad(flat, (radius, radius, radius, radius), mode="replicate")
    flat = F.conv2d(flat, kernel.view(1, 1, 1, -1))
    flat = F.conv2d(flat, kernel.view(1, 1, -1, 1))
    return flat.reshape(batch, bands, height, width)


def _neighbour_range(measured: torch.Tensor, radius: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The lowest and highest of each pixel's ``(2 radius + 1)**2`` neighbours (borders
    repeated), each ``(B, 1, h, w)``."""
    size = 2 * radius + 1
    padded = F.pad(measured, (radius,) * 4, mode="replicate")
    return -F.max_pool2d(-padded, size, stride=1), F.max_pool2d(padded, size, stride=1)


def _spread_over_blocks(values: torch.Tensor, scale: int) -> torch.Tensor:
    """``(B, c, h, w)`` -> ``(B, c, s h, s w)``: each value on every pixel of its block."""
    return values.repeat_interleave(scale, -2).repeat_interleave(scale, -1)


def _blocks(image: torch.Tensor, scale: int) -> torch.Tensor:
    """``(B, c, s h, s w)`` -> ``(B, c, h, w, s * s)``, each block's pixels row by row."""
    batch, bands, height, width = image.shape
    low_h, low_w = height // scale, width // scale
    return (image.reshape(batch, bands, low_h, scale, low_w, scale)
            .permute(0, 1, 2, 4, 3, 5).reshape(batch, bands, low_h, low_w, scale * scale))


def _unblocks(blocks: torch.Tensor, scale: int) -> torch.Tensor:
    """Inverse of :func:`_blocks`."""
    batch, bands, low_h, low_w, _ = blocks.shape
    return (blocks.reshape(batch, bands, low_h, low_w, scale, scale)
            .permute(0, 1, 2, 4, 3, 5).reshape(batch, bands, low_h * scale, low_w * scale))


def _side_affinity(estimate: torch.Tensor, guide: torch.Tensor, low: torch.Tensor,
                   high: torch.Tensor, scale: int) -> torch.Tensor:
    """``(B, 1, H, W)`` in (-1, 1): how much nearer each pixel's guide colour is to the
    high side's than to the low side's, 0 where a side has no pixel nearby.

    ``estimate`` ``(B, 1, H, W)``; ``guide`` ``(B, C, H, W)`` in unit range; ``low``,
    ``high`` ``(B, 1, h, w)`` each block's side values.
    """
    spread = high - low
    on_high = (estimate >= _spread_over_blocks(high - END_SHARE * spread, scale)).to(guide.dtype)
    on_low = (estimate <= _spread_over_blocks(low + END_SHARE * spread, scale)).to(guide.dtype)

    def side_colour(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # sums over each block, then over its 3x3 blocks (zero beyond the image)
        count = F.avg_pool2d(mask, scale, divisor_override=1)
        colour = F.avg_pool2d(mask * guide, scale, divisor_override=1)
        count = F.avg_pool2d(count, 3, stride=1, padding=1, divisor_override=1)
        colour = F.avg_pool2d(colour, 3, stride=1, padding=1, divisor_override=1)
        return (_spread_over_blocks(colour / count.clamp(min=1.0), scale),
                _spread_over_blocks(count, scale))

    high_colour, high_count = side_colour(on_high)
    low_colour, low_count = side_colour(on_low)
    to_high = ((guide - high_colour) ** 2).sum(1, keepdim=True)
    to_low = ((guide - low_colour) ** 2).sum(1, keepdim=True)
    affinity = (to_low - to_high) / (to_low + to_high + COLOUR_SIGMA ** 2)
    return torch.where((high_count > 0) & (low_count > 0), affinity, torch.zeros_like(affinity))


def partition_blocks(estimate: torch.Tensor, measured: torch.Tensor, *,
                     guide: torch.Tensor | None = None, valid: torch.Tensor | None = None,
                     strength: float = 0.5,
                     sigma: float = SIGMA, guide_weight: float = GUIDE_WEIGHT,
                     step_share: float = STEP_SHARE, step_radius: int = STEP_RADIUS
                     ) -> torch.Tensor:
    """Move the pixels of each measured block that straddles a step ``strength`` of the
    way to the partition of the block its measured value implies.

    Parameters
    ----------
    estimate:
        ``(B, c, s h, s w)`` float32 result, any units (each band on its own), ``s`` an
        integer >= 2 (:func:`block_scale`).
    measured:
        ``(B, c, h, w)`` float32: the measured target in the same units (each of its
        pixels the mean of an ``s x s`` block of the truth).
    guide:
        ``(B, C, s h, s w)`` float32 in [0, 1], or None: the (aligned) guide, whose
        colours break the ranking within a block by ``guide_weight``.
    valid:
        ``(B, 1, h, w)`` float32 {0, 1}, or None (all valid): where ``measured`` was
        measured. A block with an invalid pixel among its 3x3 measured neighbours (a
        filled hole) is left as it is.
    strength:
        In ``[0, 1]``: 0 returns ``estimate`` unchanged, 1 puts the block's pixels on
        the partition.
    sigma, guide_weight, step_share, step_radius:
        See :data:`SIGMA`, :data:`GUIDE_WEIGHT`, :data:`STEP_SHARE`, :data:`STEP_RADIUS`
        (``step_share`` 0: every block whose value lies between its neighbours').

    Returns
    -------
    ``(B, c, s h, s w)`` float32; the blocks that are no step are unchanged; with
    ``strength`` 1 every pixel of a step block takes a value within its measured
    neighbours' range (with less, it moves that share of the way there).

    Raises
    ------
    ValueError
        ``strength`` outside ``[0, 1]``, or sizes that are no integer multiple.

    Examples
    --------
    A step between columns 2 and 3, measured at x2 (the block over columns 2-3 measures
    5: half of it high) and blurred over two pixels; partitioned in full it is a step
    again:

    >>> truth = torch.tensor([0.0, 0, 0, 10, 10, 10, 10, 10]).repeat(4, 1)[None, None]
    >>> measured = torch.nn.functional.avg_pool2d(truth, 2)
    >>> measured[0, 0, 0].tolist()
    [0.0, 5.0, 10.0, 10.0]
    >>> blurred = torch.tensor([0.0, 0, 4, 6, 10, 10, 10, 10]).repeat(4, 1)[None, None]
    >>> partition_blocks(blurred, measured, strength=1.0, sigma=0)[0, 0, 0].tolist()
    [0.0, 0.0, 0.0, 10.0, 10.0, 10.0, 10.0, 10.0]
    """
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength must lie in [0, 1], got {strength}")
    scale = block_scale(estimate, measured)
    if scale is None:
        raise ValueError(f"estimate {tuple(estimate.shape[-2:])} is no integer multiple "
                         f"(>= 2) of measured {tuple(measured.shape[-2:])}")
    if strength == 0.0:
        return estimate
    out = []
    for band in range(estimate.shape[1]):
        out.append(_partition_band(estimate[:, band:band + 1], measured[:, band:band + 1],
                                   guide, valid, scale, strength=strength, sigma=sigma,
                                   guide_weight=guide_weight, step_share=step_share,
                                   step_radius=step_radius))
    return torch.cat(out, dim=1)


def _partition_band(estimate: torch.Tensor, measured: torch.Tensor,
                    guide: torch.Tensor | None, valid: torch.Tensor | None, scale: int, *,
                    strength: float,
                    sigma: float, guide_weight: float, step_share: float,
                    step_radius: int) -> torch.Tensor:
    """:func:`partition_blocks` for one band, ``(B, 1, ...)``."""
    low, high = _neighbour_range(measured, 1)
    spread = high - low
    safe = torch.where(spread > 0, spread, torch.ones_like(spread))
    share_high = (measured - low) / safe
    step = (spread > 0) & (share_high > 0.02) & (share_high < 0.98)
    if valid is not None:  # every 3x3 neighbour measured, none a filled hole
        step &= _neighbour_range(valid, 1)[0] > 0.5
    if step_share > 0:
        radius = step_radius
        size = 2 * radius + 1
        padded = F.pad(measured, (radius,) * 4, mode="replicate")
        window = F.unfold(padded, size).reshape(measured.shape[0], size * size,
                                                 *measured.shape[-2:])
        wide_low, wide_high = window.amin(1, keepdim=True), window.amax(1, keepdim=True)
        wide = END_SHARE * (wide_high - wide_low)
        near = ((window - wide_low) <= wide) | ((wide_high - window) <= wide)
        step &= near.float().mean(1, keepdim=True) >= step_share

    score = ((gaussian_smooth(estimate, sigma) - _spread_over_blocks(low, scale))
             / _spread_over_blocks(safe, scale))
    if guide is not None and guide_weight:
        score = score + guide_weight * _side_affinity(estimate, guide, low, high, scale)

    pixels = _blocks(estimate, scale)
    order = torch.argsort(_blocks(score, scale), dim=-1, descending=True, stable=True)
    rank = torch.empty_like(order)
    positions = torch.arange(scale * scale, device=order.device).expand_as(order)
    rank.scatter_(-1, order, positions)
    count = share_high * scale * scale
    whole = torch.floor(count)
    rest = (count - whole)[..., None]
    whole = whole[..., None]
    low_b, high_b, spread_b = low[..., None], high[..., None], spread[..., None]
    partition = torch.where(rank < whole, high_b,
                            torch.where(rank == whole, low_b + rest * spread_b, low_b))
    moved = pixels + strength * (partition - pixels)
    return _unblocks(torch.where(step[..., None], moved, pixels), scale)
