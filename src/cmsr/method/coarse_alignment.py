"""Fitting the guide's warp on reduced copies of the pair before the real training.

Why. The warp learns only through the network's use of the guide, and the network
uses the guide only where it is aligned to within a pixel or two of the training
scale. A guide displaced by more (a 6 px shift and a 2 degree rotation moves the
corners of a 1024 px guide by up to about 24 px) is simply ignored by the network:
on EPFL train_0003 (x4) the training loss was then the same, to 4 digits, for every
affine between the identity and the true alignment, so the warp got no useful
gradient. Reduced by 4 the same displacement is about a pixel, the network uses
the guide, and the loss leads the warp to the alignment (150 steps found the true
affine to within 5% of its size, cosine 1.00).

How. For ``config.align_levels`` levels, coarsest first, the first stage's pair
(target and guide) is reduced by ``2 ** level`` and a fresh, throw-away network is
trained on it together with the warp, by the same L1 super-resolution loss, for
``config.align_level_iters`` steps at a constant learning rate. That network is at
most ``config.align_level_channels`` wide: it only has to use the guide enough to
steer the warp (32 instead of 64 channels found the same alignment on EPFL, mean
error 0.34 against 0.31 px, at 40% of the cost per step: 0.024 against 0.059 s
with 2 threads on a 42 x 64 level). The warp's parameters are in normalized
coordinates, so they carry over unchanged from level to level and into the real
stages. Levels whose target would be smaller than ``MIN_LEVEL_SIDE`` pixels on its
shorter side are skipped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from cmsr.method.config import Config
from cmsr.method.model import CMSRNet
from cmsr.method.resample import downsample
from cmsr.method.train import StepInfo, TrainRecord, train
from cmsr.method.warp import GuideWarp

#: Shortest side, in target pixels, of the smallest level fitted.
MIN_LEVEL_SIDE = 16
#: The level networks' seeds: ``config.seed`` plus this plus the level's index.
LEVEL_SEED_OFFSET = 1000


def level_sizes(size: Sequence[int], levels: int, min_side: int = MIN_LEVEL_SIDE
                ) -> list[tuple[int, int]]:
    """Target sizes of the alignment levels, coarsest first.

    Level ``k`` (1-based) is ``size`` divided by ``2 ** k``, rounded; levels whose
    shorter side would be below ``min_side`` are left out.

    Examples
    --------
    >>> level_sizes((170, 256), 2)
    [(42, 64), (85, 128)]
    >>> level_sizes((40, 60), 2)
    [(20, 30)]
    >>> level_sizes((60, 80), 2)
    [(30, 40)]
    """
    height, width = size
    sizes = []
    for level in range(levels, 0, -1):
        factor = 2**level
        small = (max(1, round(height / factor)), max(1, round(width / factor)))
        if min(small) >= min_side:
            sizes.append(small)
    return sizes


def level_config(config: Config) -> Config:
    """The training settings of an alignment level: ``align_level_iters`` steps at
    the full learning rate (no decay, no early stop), down-sampling scheme only, a
    network at most ``align_level_channels`` wide."""
    iters = config.align_level_iters
    width = config.align_level_channels
    return config.replace(max_iters=iters, min_iters=iters, alternating_scales=0.0,
                          eval_every=iters,
                          fe1_channels=min(width, config.fe1_channels),
                          fe2_channels=min(width, config.fe2_channels))


def align_coarse_to_fine(warp: GuideWarp, target: torch.Tensor, guide: torch.Tensor,
                         valid: torch.Tensor, *, scale: tuple[float, float], config: Config,
                         on_level: Callable[[int, int], Callable[[StepInfo], None] | None]
                         | None = None) -> list[list[TrainRecord]]:
    """Fit ``warp`` in place on the reduced pair, coarsest level first.

    Parameters
    ----------
    warp:
        The learnable alignment, at the identity; its layers are freed coarse to fine
        (:func:`cmsr.method.train.release_warp_layers`) on the coarsest level and all act
        from then on.
    target:
        ``(1, c, h, w)`` float32, the first stage's low-resolution target, unit range,
        invalid pixels filled.
    guide:
        ``(1, C, H, W)`` float32 in [0, 1], the first stage's guide, ``H / h`` and
        ``W / w`` equal to ``scale``.
    valid:
        ``(1, 1, h, w)`` float32 in {0, 1}.
    scale:
        ``(H / h, W / w)`` of the first stage; kept on every level.
    on_level:
        ``on_level(index, levels)`` gives the step callback for that level (or None).

    The levels' patches and networks are drawn from their own seeds
    (``config.seed + LEVEL_SEED_OFFSET``), so the stages after them draw the same
    patches as a run without alignment.

    Returns
    -------
    The training records of each level fitted (empty when no level fits).
    """
    sizes = level_sizes(tuple(target.shape[-2:]), config.align_levels)
    settings = level_config(config)
    generator = torch.Generator().manual_seed(config.seed + LEVEL_SEED_OFFSET)
    records = []
    for index, size in enumerate(sizes):
        guide_size = (round(size[0] * scale[0]), round(size[1] * scale[1]))
        small_target = downsample(target, size, kernel=config.degradation)
        small_guide = downsample(guide, guide_size).clamp(0.0, 1.0)
        # a reduced pixel is valid only if every pixel it covers was
        small_valid = (downsample(valid, size, kernel="box") > 0.999).float()
        net = CMSRNet.from_config(settings, target.shape[1], guide.shape[1],
                                  seed=config.seed + LEVEL_SEED_OFFSET + index)
        net = net.to(target.device)
        callback = on_level(index, len(sizes)) if on_level is not None else None
        records.append(train(net, small_target, small_guide, scale=scale, config=settings,
                             generator=generator, valid=small_valid, warp=warp,
                             release_warp=index == 0, on_step=callback))
    return records
