"""Does the guide help on this pair? A check on held-out pixels, at run time.

Before the first stage trains, a random share of the measured target's pixels is held
out (in square blocks, so the patches that supervise training never see them): they
are left out of the training loss. After that stage, the whole target is rebuilt from
its own reduction three ways, and scored (L1) on the held-out pixels only:

* ``guided``: the trained network with the guide;
* ``guide_free``: the same network with its guide branch off (Feature-Extractor 1
  alone; trained to stand alone by ``config.guide_dropout``);
* ``bicubic``: the reduction enlarged again, the network's starting point.

The result uses the guide only when it wins by ``config.self_check_margin`` (relative;
``config.self_check_margin_warped`` where the alignment check kept the coarse warp and
that is set) against the better of the other two; otherwise the guide-free network, and
bicubic enlargement (with back-projection) when even that loses to bicubic. With
``config.self_check_blend`` the held-out pixels are also rebuilt with the guide branch's
contribution scaled by each of :data:`BLEND_WEIGHTS` (a blend of the two networks, at no
extra cost: the output is ``up + FE1 + w * FE2``), and the weight with the least error
is used when it wins by the same margin. The decision and its three errors are kept in
:class:`SelfCheck`, printed by the command line and written into the title of the loss
curve (``--save-figures``).

A check that chose bicubic is not final where the guide-free network then trains
alone (``config.self_check_free_share``): it trains on the pixels not held out and is
asked again (:func:`recheck_guide_free`), since at the first check it had trained only
on the examples whose guide was dropped.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from cmsr.method.config import Config
from cmsr.method.model import CMSRNet
from cmsr.method.precision import autocast
from cmsr.method.resample import downsample, upsample_bicubic

Choice = Literal["guided", "guide-free", "blend", "bicubic"]
BLEND_WEIGHTS = (0.25, 0.5, 0.75)
"""The guide weights between 0 (guide-free) and 1 (guided) tried by the blend."""


@dataclass(frozen=True)
class SelfCheck:
    """The held-out errors (L1 in unit range) and the choice made from them.

    ``blended`` holds the errors for :data:`BLEND_WEIGHTS` (empty when the blends were
    not candidates); ``guide_weight`` is the weight of the guide branch the result uses: 1
    for ``guided``, 0 for ``guide-free`` and ``bicubic``, in between for ``blend``;
    ``margin`` the relative win the guide needed; ``rechecked`` the guide-free network's
    error when a first choice of bicubic was made again (:func:`recheck_guide_free`).
    """

    guided: float
    guide_free: float
    bicubic: float
    held_out_pixels: int
    choice: Choice
    guide_weight: float
    blended: tuple[float, ...] = ()
    margin: float = 0.0
    rechecked: float | None = None

    @property
    def first_choice(self) -> Choice:
        """The choice before any recheck: ``"bicubic"`` for a check made again, else
        :attr:`choice`.

        >>> SelfCheck(0.03, 0.025, 0.02, 9, "guide-free", 0.0, rechecked=0.019).first_choice
        'bicubic'
        """
        return "bicubic" if self.rechecked is not None else self.choice

    def describe(self) -> str:
        """One line for logs: the three errors and the decision."""
        def rel(value: float) -> str:
            return f"{100 * (value / self.bicubic - 1):+.1f}%" if self.bicubic > 0 else "n/a"

        blend = "".join(f", {weight:g} {rel(error)}"
                        for weight, error in zip(BLEND_WEIGHTS, self.blended, strict=False))
        using = (f"blend (guide weight {self.guide_weight:g})" if self.choice == "blend"
                 else self.choice)
        needed = f" (the guide had to win by {self.margin:g} of the error)" if self.margin else ""
        again = ("" if self.rechecked is None else
                 f"; the guide-free network after training alone {rel(self.rechecked)}")
        return (f"self-check on {self.held_out_pixels} held-out pixels: guided "
                f"{rel(self.guided)}, guide-free {rel(self.guide_free)}{blend} against "
                f"bicubic{again}; using {using}{needed}")


def held_out_mask(size: Sequence[int], fraction: float, block: int,
                  generator: torch.Generator) -> torch.Tensor:
    """``(1, 1, h, w)`` float32, 1 on about ``fraction`` of the pixels in ``block``-sized
    squares drawn at random (at least one block), else 0.

    Examples
    --------
    >>> mask = held_out_mask((64, 64), 0.25, 8, torch.Generator().manual_seed(0))
    >>> mask.shape, 0.15 < float(mask.mean()) < 0.35
    (torch.Size([1, 1, 64, 64]), True)
    """
    h, w = size
    rows, cols = max(1, -(-h // block)), max(1, -(-w // block))
    count = max(1, round(fraction * rows * cols))
    chosen = torch.randperm(rows * cols, generator=generator)[:count]
    blocks = torch.zeros(rows * cols)
    blocks[chosen] = 1.0
    mask = F.interpolate(blocks.view(1, 1, rows, cols), scale_factor=block, mode="nearest")
    return mask[..., :h, :w].contiguous()


@torch.no_grad()
def held_out_errors(net: CMSRNet, target: torch.Tensor, guide: torch.Tensor,
                    held_out: torch.Tensor, scale: tuple[float, float], config: Config
                    ) -> tuple[float, float, float, tuple[float, ...]]:
    """L1 on ``held_out`` of rebuilding ``target`` from its reduction: guided,
    guide-free, bicubic, and the blends of the two networks at :data:`BLEND_WEIGHTS`.

    ``target (1, c, h, w)`` unit range; ``guide (1, C, H, W)`` the stage's (aligned)
    guide, reduced here to the target's size; ``held_out (1, 1, h, w)`` in {0, 1}.
    """
    h, w = target.shape[-2:]
    small = (max(2, round(h / scale[0])), max(2, round(w / scale[1])))
    enlarged = upsample_bicubic(downsample(target, small, kernel=config.degradation), (h, w))
    guide_small = downsample(guide, (h, w))
    weight = held_out.expand_as(target)
    total = weight.sum().clamp(min=1.0)

    def error(prediction: torch.Tensor) -> float:
        return float(((prediction.float() - target).abs() * weight).sum() / total)

    with autocast(target.device, config.precision):
        guided = net(enlarged, guide_small).float()
        free = net(enlarged, None).float()
    blended = tuple(error(free + weight * (guided - free)) for weight in BLEND_WEIGHTS)
    return error(guided), error(free), error(enlarged), blended


def decide(guided: float, guide_free: float, bicubic: float, held_out_pixels: int,
           margin: float, blended: tuple[float, ...] = (), *, blend: bool = False
           ) -> SelfCheck:
    """The guide if it beats the better of the guide-free network and bicubic by
    ``margin`` (relative); else the guide-free network if it beats bicubic; else bicubic.

    The guide has to win by the margin against what the result would be without it:
    the guide-free network, or bicubic where that network lost to bicubic. (Before
    0.18 it had to beat the guide-free network by the margin and bicubic by anything:
    on a real thermal capture, ``thermal/unaligned`` 145347 seed 5, a guided network
    1.3% below bicubic won against a guide-free network 1.2% above it.)

    With ``blend``, the guide weight (1 or one of :data:`BLEND_WEIGHTS`, whose errors
    are ``blended``) with the least error is the guide's candidate, under the same rule.

    Examples
    --------
    >>> decide(0.010, 0.012, 0.02, 100, 0.02).choice
    'guided'
    >>> decide(0.0119, 0.012, 0.02, 100, 0.02).choice
    'guide-free'
    >>> decide(0.03, 0.025, 0.02, 100, 0.02).choice
    'bicubic'
    >>> decide(0.0198, 0.0205, 0.02, 100, 0.02).choice  # 3.4% ahead of guide-free, 1% of bicubic
    'bicubic'
    >>> decide(0.0119, 0.012, 0.02, 100, 0.02, (0.0116, 0.0110, 0.0113), blend=True).guide_weight
    0.5
    """
    weight, best = 1.0, guided
    if blend:
        for candidate, error in zip(BLEND_WEIGHTS, blended, strict=True):
            if error < best:
                weight, best = candidate, error
    if best < min(guide_free, bicubic) * (1.0 - margin):
        choice: Choice = "guided" if weight == 1.0 else "blend"
    elif guide_free < bicubic:
        choice, weight = "guide-free", 0.0
    else:
        choice, weight = "bicubic", 0.0
    return SelfCheck(guided, guide_free, bicubic, held_out_pixels, choice, weight,
                     blended if blend else (), margin)


@torch.no_grad()
def recheck_guide_free(check: SelfCheck, net: CMSRNet, target: torch.Tensor,
                       guide: torch.Tensor, held_out: torch.Tensor,
                       scale: tuple[float, float], config: Config) -> SelfCheck:
    """``check`` again, after its guide-free network, which lost to bicubic, has trained
    alone on the pixels not ``held_out``: ``guide-free`` if it now beats bicubic there,
    else still ``bicubic``; the new error is kept in ``rechecked`` (arguments as
    :func:`held_out_errors`).

    At the first check the guide-free network has trained only on the examples whose
    guide was dropped (``config.guide_dropout``), so a loss to bicubic then is no
    verdict on it: on a real thermal capture (``thermal/unaligned`` 145315, seed 3) it
    sent the result back to bicubic, 2.7 dB below ZSSR.
    """
    if check.choice != "bicubic":
        raise ValueError(f"only a check that chose bicubic is asked again, not {check.choice!r}")
    _, free, bicubic, _ = held_out_errors(net, target, guide, held_out, scale, config)
    choice: Choice = "guide-free" if free < bicubic else "bicubic"
    return dataclasses.replace(check, choice=choice, rechecked=free)
