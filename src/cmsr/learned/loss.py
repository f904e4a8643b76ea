"""The training losses of a learned cross-spectral model.

``total = reconstruction + consistency_weight * L_CSSC + matching_weight * matching``:

* :func:`reconstruction_loss` -- MSE (the paper's) or L1 between the target's result
  and its ground truth;
* :func:`consistency_loss` -- the cross-spectral spatial consistency loss L_CSSC of the
  paper (section 4.4): the guide branch's enlarged guide, which is in the target's
  view, against the true high-resolution guide (in its own view) brought into the
  target's view with the left disparity; and the same result brought into the guide's
  view with the right disparity against the true guide. Pixels whose match falls
  outside the image are left out;
* :func:`matching_loss` -- ours, for the CVM, which the paper took pretrained from a
  cross-spectral stereo network: one minus the mean squared local normalised
  cross-correlation of the low-resolution target and the warped guide (squared, so
  that contrast inverted between the modalities still counts as a match).

All take and return float tensors; images in unit range.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from cmsr.learned.matching import Disparities, upsample_disparity, warp_by_disparity
from cmsr.learned.network import NetworkOutput

__all__ = [
    "LossTerms",
    "consistency_loss",
    "masked_mean_square",
    "matching_loss",
    "reconstruction_loss",
    "total_loss",
]

#: Added to the local variances in the normalised cross-correlation (unit-range images).
NCC_EPSILON = 1e-4


def reconstruction_loss(result: Tensor, truth: Tensor, kind: str = "mse") -> Tensor:
    """Mean squared (``"mse"``) or absolute (``"l1"``) error, a scalar.

    ``result`` and ``truth``: ``(B, c, H, W)`` in unit range.

    Examples
    --------
    >>> float(reconstruction_loss(torch.zeros(1, 1, 2, 2), torch.ones(1, 1, 2, 2) * 0.5))
    0.25
    """
    if kind == "mse":
        return F.mse_loss(result, truth)
    if kind == "l1":
        return F.l1_loss(result, truth)
    raise ValueError(f"unknown loss {kind!r}")


def masked_mean_square(a: Tensor, b: Tensor, valid: Tensor) -> Tensor:
    """Mean of ``(a - b)**2`` over the pixels where ``valid`` is 1, a scalar (0 if none).

    ``a``, ``b``: ``(B, C, H, W)``; ``valid``: ``(B, 1, H, W)`` in {0, 1}.
    """
    weight = valid.expand_as(a)
    return ((a - b) ** 2 * weight).sum() / weight.sum().clamp(min=1.0)


def consistency_loss(guide_left: Tensor, guide_truth: Tensor,
                     disparities: Disparities | None, scale: int) -> Tensor:
    """The cross-spectral spatial consistency loss L_CSSC, a scalar.

    Parameters
    ----------
    guide_left:
        ``(B, C, H, W)`` the guide branch's result, in the target's (left) view.
    guide_truth:
        ``(B, C, H, W)`` the true high-resolution guide in its own (right) view.
    disparities:
        The CVM's fields in low-resolution pixels (``(B, 1, H / scale, W / scale)``),
        or None when the views are taken as one (no CVM): then both terms compare
        the two images directly.
    scale:
        ``H`` over the disparities' height.

    Returns
    -------
    Tensor
        ``|guide_left - truth_in_left_view|^2 + |guide_left_in_right_view -
        guide_truth|^2``, each a mean over the pixels whose match lies inside the image.
    """
    if disparities is None:
        ones = torch.ones_like(guide_left[:, :1])
        return 2.0 * masked_mean_square(guide_left, guide_truth, ones)
    left = upsample_disparity(disparities.left, scale)
    right = upsample_disparity(disparities.right, scale)
    truth_left, valid_left = warp_by_disparity(guide_truth, left)
    result_right, valid_right = warp_by_disparity(guide_left, -right)
    return (masked_mean_square(guide_left, truth_left, valid_left)
            + masked_mean_square(result_right, guide_truth, valid_right))


def _local_mean(image: Tensor, window: int) -> Tensor:
    return F.avg_pool2d(image, window, stride=1, padding=window // 2, count_include_pad=False)


def matching_loss(target: Tensor, aligned_guide: Tensor, window: int = 5) -> Tensor:
    """One minus the mean squared local normalised cross-correlation, a scalar in [0, 1].

    Parameters
    ----------
    target, aligned_guide:
        ``(B, c, h, w)`` and ``(B, C, h, w)`` in unit range; compared as grey images
        (band means).
    window:
        Side of the local window (odd).

    Examples
    --------
    >>> image = torch.rand(1, 1, 16, 16)
    >>> bool(matching_loss(image, 1 - image) < 0.01)   # inverted contrast: a match
    True
    """
    a = target.mean(dim=1, keepdim=True)
    b = aligned_guide.mean(dim=1, keepdim=True)
    mean_a, mean_b = _local_mean(a, window), _local_mean(b, window)
    var_a = (_local_mean(a * a, window) - mean_a**2).clamp(min=0.0)
    var_b = (_local_mean(b * b, window) - mean_b**2).clamp(min=0.0)
    covariance = _local_mean(a * b, window) - mean_a * mean_b
    correlation_squared = covariance**2 / ((var_a + NCC_EPSILON) * (var_b + NCC_EPSILON))
    return 1.0 - correlation_squared.clamp(max=1.0).mean()


@dataclass(frozen=True)
class LossTerms:
    """One step's loss and its parts (the parts detached, as floats)."""

    total: Tensor
    reconstruction: float
    consistency: float
    matching: float


def total_loss(output: NetworkOutput, *, target_low: Tensor, truth: Tensor,
               guide_truth: Tensor | None, scale: int, kind: str = "mse",
               consistency_weight: float = 0.1, matching_weight: float = 0.1) -> LossTerms:
    """The training loss of one batch.

    Parameters
    ----------
    output:
        The network's output, with the guide branch's result when it has one.
    target_low:
        ``(B, c, h, w)`` the network's low-resolution input (for the matching loss).
    truth:
        ``(B, c, h*s, w*s)`` the target's ground truth.
    guide_truth:
        ``(B, C, h*s, w*s)`` the true high-resolution guide in its own view, or None.
    scale, kind, consistency_weight, matching_weight:
        See :class:`cmsr.learned.config.TrainingSettings`.
    """
    reconstruction = reconstruction_loss(output.target, truth, kind)
    total = reconstruction
    consistency = matching = torch.zeros(())
    if output.guide is not None and guide_truth is not None and consistency_weight:
        consistency = consistency_loss(output.guide, guide_truth, output.disparities, scale)
        total = total + consistency_weight * consistency
    if output.disparities is not None and output.aligned_low is not None and matching_weight:
        matching = matching_loss(target_low, output.aligned_low)
        total = total + matching_weight * matching
    return LossTerms(total, float(reconstruction.detach()), float(consistency.detach()),
                     float(matching.detach()))
