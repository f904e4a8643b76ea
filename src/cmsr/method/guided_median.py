"""The guided weighted median: each pixel of a result becomes the weighted median of its
neighbourhood, each neighbour weighted by how alike the guide is at it and at the pixel.

Where a depth edge lies between two measured pixels, the network's result puts it
roughly; the guide usually shows where it is. Across a guide edge the neighbours on
the other side get little weight, so the median takes the value of the pixel's own
side and the depth edge moves onto the guide's. The output's values are always values
of the input's neighbourhood: a flat region stays flat whatever texture the guide has
(no guide-only detail is painted in), and no value beyond the neighbourhood's range
appears.

The whole image is filtered in blocks of rows (:data:`ROWS_PER_BLOCK`), so memory stays
near ``(2 * radius + 1) ** 2 * ROWS_PER_BLOCK * W * (c + C + 3) * 4`` bytes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

ROWS_PER_BLOCK = 256


def weighted_median(values: torch.Tensor, weights: torch.Tensor, dim: int) -> torch.Tensor:
    """The weighted median along ``dim``: the smallest value whose cumulative weight
    (values sorted) reaches half the total.

    Parameters
    ----------
    values:
        Any shape, float.
    weights:
        Broadcastable to ``values``, float >= 0 with a positive sum along ``dim``.

    Returns
    -------
    ``values`` without ``dim``.

    Examples
    --------
    >>> weighted_median(torch.tensor([3.0, 1.0, 2.0]), torch.tensor([1.0, 1.0, 1.0]), 0)
    tensor(2.)
    >>> weighted_median(torch.tensor([3.0, 1.0, 2.0]), torch.tensor([5.0, 1.0, 1.0]), 0)
    tensor(3.)
    """
    weights = weights.expand_as(values)
    ordered, order = values.sort(dim=dim)
    cumulative = weights.gather(dim, order).cumsum(dim)
    half = cumulative.narrow(dim, cumulative.shape[dim] - 1, 1) / 2
    index = (cumulative < half).sum(dim, keepdim=True).clamp(max=values.shape[dim] - 1)
    return ordered.gather(dim, index).squeeze(dim)


def _neighbours(image: torch.Tensor, radius: int) -> torch.Tensor:
    """``(B, c, H, W)`` -> ``(B, c, k * k, H', W')`` with ``k = 2 * radius + 1`` and
    ``H', W'`` the sizes less ``2 * radius`` (the input is already padded)."""
    size = 2 * radius + 1
    b, c, h, w = image.shape
    patches = F.unfold(image, size)
    return patches.view(b, c, size * size, h - 2 * radius, w - 2 * radius)


def guided_median(image: torch.Tensor, guide: torch.Tensor, *, radius: int = 1,
                  sigma: float = 0.07) -> torch.Tensor:
    """Replace each pixel by the weighted median of its ``(2 * radius + 1)**2``
    neighbourhood, neighbour ``q`` of pixel ``p`` weighted by
    ``exp(-|guide(q) - guide(p)|**2 / (2 * sigma**2))`` (squared distance summed over
    the guide's bands). Image borders repeat the edge pixels.

    Parameters
    ----------
    image:
        ``(B, c, H, W)`` float32, any units; each band is filtered on its own (with
        the same weights).
    guide:
        ``(B, C, H, W)`` float32 in [0, 1], on the same pixel grid.
    radius:
        Neighbourhood radius in pixels; 0 returns ``image``.
    sigma:
        Guide distance (unit range) at which a neighbour's weight falls to
        ``exp(-1/2)``.

    Returns
    -------
    ``(B, c, H, W)`` float32: every value is one of its neighbourhood's.

    Examples
    --------
    The depth edge after column 2 of ``image`` moves onto the guide's edge after
    column 1:

    >>> image = torch.tensor([[[[0.0, 0.0, 0.0, 1.0, 1.0, 1.0]]]])
    >>> guide = torch.tensor([[[[0.0, 0.0, 1.0, 1.0, 1.0, 1.0]]]])
    >>> guided_median(image, guide, radius=2)
    tensor([[[[0., 0., 1., 1., 1., 1.]]]])
    """
    if image.shape[-2:] != guide.shape[-2:] or image.shape[0] != guide.shape[0]:
        raise ValueError(f"image {tuple(image.shape)} and guide {tuple(guide.shape)} "
                         "must share batch and pixel grid")
    if radius < 0 or sigma <= 0:
        raise ValueError(f"radius must be >= 0 and sigma > 0, got {radius}, {sigma}")
    if radius == 0:
        return image
    pad = (radius, radius, radius, radius)
    padded_image = F.pad(image, pad, mode="replicate")
    padded_guide = F.pad(guide, pad, mode="replicate")
    height = image.shape[-2]
    blocks = []
    for top in range(0, height, ROWS_PER_BLOCK):
        bottom = min(height, top + ROWS_PER_BLOCK)
        rows = slice(top, bottom + 2 * radius)
        values = _neighbours(padded_image[..., rows, :], radius)
        guides = _neighbours(padded_guide[..., rows, :], radius)
        centre = guide[..., top:bottom, :].unsqueeze(2)
        distance = ((guides - centre) ** 2).sum(dim=1, keepdim=True)
        weights = torch.exp(distance / (-2.0 * sigma * sigma))
        blocks.append(weighted_median(values, weights, dim=2))
    return torch.cat(blocks, dim=-2)
