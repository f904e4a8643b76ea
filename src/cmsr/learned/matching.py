"""Cross-view matching (CVM): horizontal disparities between the target's and the guide's
views, predicted from the low-resolution pair, and the warps that use them.

Convention (the paper's equation 1): a pixel at column ``x`` of the target's view (the
*left* view) shows what column ``x - d_left(x)`` of the guide's view (the *right* view)
shows, so the guide brought into the target's view is ``guide(x - d_left(x))``
(:func:`warp_by_disparity`); a pixel at column ``x`` of the guide's view shows what
column ``x + d_right(x)`` of the target's view shows, so an image of the target's view
brought into the guide's view is ``warp_by_disparity(image, -d_right)``. For a
consistent pair ``d_right(x - d_left(x)) = d_left(x)``. Disparities are in pixels of
the image they are given with; :func:`upsample_disparity` carries a low-resolution
field to the output resolution.

:class:`CrossViewMatching` extracts matching features from each modality (small
convolutional stacks, unit length per pixel), correlates them over a small range of
integer disparities (:func:`cost_volume`), refines the cost volume with two
convolutions and reads a sub-pixel disparity with a soft arg-max over the planes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cmsr.method.model import conv_stack
from cmsr.method.warp.grid import identity_grid, sample

__all__ = [
    "CrossViewMatching",
    "Disparities",
    "cost_volume",
    "shift_horizontally",
    "upsample_disparity",
    "warp_by_disparity",
]


def shift_horizontally(image: Tensor, offset: int) -> Tensor:
    """``out[..., x] = image[..., x - offset]`` for an integer ``offset``, the border
    column repeated where ``x - offset`` falls outside.

    Parameters
    ----------
    image:
        ``(B, C, H, W)`` float.
    offset:
        Pixels to move the content right (negative: left).

    Examples
    --------
    >>> shift_horizontally(torch.arange(4.0).view(1, 1, 1, 4), 1).flatten().tolist()
    [0.0, 0.0, 1.0, 2.0]
    """
    if offset == 0:
        return image
    width = image.shape[-1]
    reach = min(abs(offset), width)
    if offset > 0:
        padded = F.pad(image, (reach, 0, 0, 0), mode="replicate")
        return padded[..., :width]
    padded = F.pad(image, (0, reach, 0, 0), mode="replicate")
    return padded[..., reach:reach + width]


def cost_volume(left: Tensor, right: Tensor, max_disparity: int) -> Tensor:
    """Correlation of left features with right features shifted by each disparity.

    Parameters
    ----------
    left, right:
        ``(B, F, h, w)`` matching features (unit length per pixel for cosine
        similarities).
    max_disparity:
        D >= 0: disparities ``-D, ..., D``.

    Returns
    -------
    Tensor
        ``(B, 2 D + 1, h, w)``; plane ``i`` holds the mean over channels of
        ``left(x) * right(x - d_i)`` with ``d_i = i - D``, i.e. how well column ``x``
        of the left view matches column ``x - d_i`` of the right view.
    """
    planes = [(left * shift_horizontally(right, d)).sum(dim=1, keepdim=True)
              for d in range(-max_disparity, max_disparity + 1)]
    return torch.cat(planes, dim=1)


def warp_by_disparity(image: Tensor, disparity: Tensor) -> tuple[Tensor, Tensor]:
    """``out(x) = image(x - disparity(x))`` with bilinear interpolation.

    Parameters
    ----------
    image:
        ``(B, C, H, W)`` float.
    disparity:
        ``(B, 1, H, W)`` horizontal offsets in pixels of ``image``.

    Returns
    -------
    (Tensor, Tensor)
        The warped image ``(B, C, H, W)`` (points outside take the border column)
        and ``(B, 1, H, W)`` float {0, 1}: 1 where the point sampled lies inside the
        image (within half a pixel of the outer columns' centres).
    """
    height, width = image.shape[-2:]
    grid = identity_grid(height, width, device=image.device, dtype=image.dtype)
    offset = (2.0 / width) * disparity[:, 0]
    points = torch.stack((grid[..., 0] - offset, grid[..., 1].expand_as(offset)), dim=-1)
    warped = sample(image, points, mode="bilinear", padding_mode="border")
    column = torch.arange(width, device=image.device, dtype=image.dtype) - disparity
    valid = ((column >= -0.5) & (column <= width - 0.5)).to(image.dtype)
    return warped, valid


def upsample_disparity(disparity: Tensor, scale: int) -> Tensor:
    """A disparity field ``(B, 1, h, w)`` in low-resolution pixels as ``(B, 1, h * scale,
    w * scale)`` in output pixels (bilinear, values times ``scale``)."""
    if scale == 1:
        return disparity
    size = (disparity.shape[-2] * scale, disparity.shape[-1] * scale)
    return F.interpolate(disparity, size=size, mode="bilinear", align_corners=False) * scale


@dataclass(frozen=True)
class Disparities:
    """The two disparity fields of a pair, ``(B, 1, h, w)`` float, in low-resolution pixels.

    ``left``: in the target's view (the guide's column ``x - left(x)`` matches the
    target's ``x``); ``right``: in the guide's view (the target's column
    ``x + right(x)`` matches the guide's ``x``). Values lie in ``[-D, D]``.
    """

    left: Tensor
    right: Tensor


def _feature_stack(bands: int, features: int) -> nn.Sequential:
    """Three 3x3 convolutions ``bands -> features -> features -> features``, ReLU between."""
    stack = conv_stack(bands, features, features, 3, 3)
    last = stack[-1]
    assert isinstance(last, nn.Conv2d)
    nn.init.kaiming_normal_(last.weight, nonlinearity="linear")
    return stack


class CrossViewMatching(nn.Module):
    """Predicts the disparities of a low-resolution cross-spectral pair.

    Parameters
    ----------
    target_bands, guide_bands:
        Bands of the target and of the guide.
    features:
        Channels of the matching features.
    max_disparity:
        D: the disparities considered are the integers ``-D..D`` (sub-pixel values in
        between come from the soft arg-max).

    Notes
    -----
    The refinement of the cost volume starts at zero (the raw correlations decide)
    and the soft arg-max starts with a sharpness of 10 on cosine similarities.
    """

    def __init__(self, target_bands: int, guide_bands: int, *, features: int = 16,
                 max_disparity: int = 4) -> None:
        super().__init__()
        self.max_disparity = max_disparity
        self.target_features = _feature_stack(target_bands, features)
        self.guide_features = _feature_stack(guide_bands, features)
        planes = 2 * max_disparity + 1
        self.refine = conv_stack(planes, 32, planes, 2, 3)
        self.log_sharpness = nn.Parameter(torch.tensor(math.log(10.0)))
        self.register_buffer("disparities",
                             torch.arange(-max_disparity, max_disparity + 1,
                                          dtype=torch.float32).view(1, -1, 1, 1),
                             persistent=False)

    def _soft_argmax(self, cost: Tensor) -> Tensor:
        refined = cost + self.refine(cost)
        weights = torch.softmax(refined * self.log_sharpness.exp(), dim=1)
        planes = self.get_buffer("disparities").to(cost.dtype)
        return (weights * planes).sum(dim=1, keepdim=True)

    def forward(self, target: Tensor, guide: Tensor) -> Disparities:
        """Disparities of the pair.

        Parameters
        ----------
        target:
            ``(B, c, h, w)`` target in unit range.
        guide:
            ``(B, C, h, w)`` guide in unit range, the target's size.

        Returns
        -------
        Disparities
            Both fields ``(B, 1, h, w)`` in pixels of the inputs.
        """
        left = F.normalize(self.target_features(target), dim=1)
        right = F.normalize(self.guide_features(guide), dim=1)
        cost_left = cost_volume(left, right, self.max_disparity)
        # in the guide's view: its column x against the target's column x + d
        cost_right = cost_volume(right, left, self.max_disparity).flip(1)
        return Disparities(self._soft_argmax(cost_left), self._soft_argmax(cost_right))
