"""Did the coarse alignment move the guide onto the target? A check without a network.

Why. The coarse fits (:mod:`cmsr.method.coarse_alignment`) steer the warp through a
small throw-away network's loss. On a pair that is already aligned that loss carries
little about alignment, and the warp drifts: on Middlebury13's aligned depth pairs by
about 2.3 target pixels on average (9 output pixels at x4). A check that asks the same
network whether the warp helps is fooled by it (it has learned with the warp), so this
one asks the images alone.

How. The guide, warped and reduced to the target's grid, should explain the target
locally: in every ``(2 r + 1)``-pixel square window the target is fitted by an affine
function of the guide's luminance (a local linear model, as in the guided filter), and
the score is the share of the target's local variance that those fits leave
unexplained, over the whole image (0: the guide explains every window; 1: nothing).
Misalignment raises it: on 026 the identity scores 0.44, the guide shifted by half a
target pixel 0.60. The warp is kept when it lowers the score by at least ``margin``
relative to the guide as given; otherwise the alignment starts again from the identity
(or, with ``Config.align_when_dropped="none"``, no warp is learned at all).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from cmsr.method.resample import downsample


@dataclass(frozen=True)
class AlignmentCheck:
    """The unexplained shares with the guide as given and as warped, and the decision."""

    identity: float
    warped: float
    kept: bool
    margin: float = 0.0

    @property
    def decision(self) -> str:
        """``"kept"`` or ``"dropped"``."""
        return "kept" if self.kept else "dropped"

    def describe(self) -> str:
        """One line for logs."""
        verdict = self.decision + ("" if self.kept else
                                   f" (it has to lower the share by {100 * self.margin:g}%)")
        return (f"alignment check: unexplained share {self.identity:.3f} as given, "
                f"{self.warped:.3f} warped; coarse alignment {verdict}")


def _box_mean(image: torch.Tensor, radius: int) -> torch.Tensor:
    """Mean over the ``(2 radius + 1)`` square around each pixel (edges replicated)."""
    padded = F.pad(image, (radius,) * 4, mode="replicate")
    return F.avg_pool2d(padded, 2 * radius + 1, stride=1)


def unexplained_share(target: torch.Tensor, guide: torch.Tensor, *, radius: int = 1,
                      valid: torch.Tensor | None = None, eps: float = 1e-4) -> float:
    """Share of ``target``'s local variance not explained by local affine fits of the
    guide's luminance.

    Parameters
    ----------
    target:
        ``(1, c, h, w)`` float32, unit range.
    guide:
        ``(1, C, h, w)`` float32 in [0, 1], on the target's grid.
    radius:
        Windows are ``2 radius + 1`` pixels square.
    valid:
        ``(1, 1, h, w)`` in {0, 1}: only windows of valid pixels count (all when None).
    eps:
        Ridge term of the fits: guide windows flatter than about ``sqrt(eps)`` explain
        little.

    Returns
    -------
    A float in [0, 1] (1 when the target has no local variance at all).

    Examples
    --------
    >>> guide = torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    >>> unexplained_share(0.5 - 0.4 * guide, guide) < 0.01
    True
    >>> unexplained_share(guide, torch.full_like(guide, 0.5))
    1.0
    """
    luminance = guide.mean(dim=1, keepdim=True)
    mean_g = _box_mean(luminance, radius)
    var_g = _box_mean(luminance * luminance, radius) - mean_g * mean_g
    mean_t = _box_mean(target, radius)
    var_t = (_box_mean(target * target, radius) - mean_t * mean_t).clamp_min(0.0)
    cov = _box_mean(target * luminance, radius) - mean_t * mean_g
    explained = (cov * cov / (var_g.clamp_min(0.0) + eps)).minimum(var_t)
    if valid is not None:
        whole = (_box_mean(valid, radius) > 0.999).to(target.dtype)
        var_t, explained = var_t * whole, explained * whole
    total = float(var_t.sum())
    if total <= 1e-12:
        return 1.0
    return 1.0 - float(explained.sum()) / total


@torch.no_grad()
def check_alignment(target: torch.Tensor, guide: torch.Tensor, warped: torch.Tensor, *,
                    margin: float, valid: torch.Tensor | None = None,
                    radius: int = 1) -> AlignmentCheck:
    """Score the guide as given and as warped on ``target``'s grid; keep the warp only if
    it lowers the unexplained share by ``margin`` (relative).

    ``target`` ``(1, c, h, w)``; ``guide`` and ``warped`` ``(1, C, H, W)`` in [0, 1], any
    size (reduced to ``(h, w)`` by area averaging); ``valid`` ``(1, 1, h, w)`` or None.
    """
    size = tuple(target.shape[-2:])
    identity = unexplained_share(target, downsample(guide, size).clamp(0.0, 1.0),
                                 radius=radius, valid=valid)
    moved = unexplained_share(target, downsample(warped, size).clamp(0.0, 1.0),
                              radius=radius, valid=valid)
    return AlignmentCheck(identity, moved, moved <= identity * (1.0 - margin), margin)
