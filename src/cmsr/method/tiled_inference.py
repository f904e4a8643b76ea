"""Inference one output window at a time, for results too large to hold at once.

:meth:`cmsr.CMSR.predict_tensor` runs every stage, the self-ensemble, back-projection
and the local-range clip on the whole image. Here the same steps run on one window of
the output (:func:`predict_window`), from the window of the guide under it and the
measured target (small: it is the coarse image) around it. Every step is local:

- the network sees ``net.halo`` pixels around each pixel (exact in tiles, see
  :func:`cmsr.method.infer.run_network`);
- enlarging, reducing (:func:`cmsr.method.resample.resize_window`), the local-range
  clip, the guided median (``guided_median_radius`` output pixels), edge sharpening
  (:data:`cmsr.method.edge_sharpening.RADIUS`) and the block partition
  (:func:`cmsr.method.block_partition.partition_halo`) read a few
  pixels around each pixel; computed on a window they equal the
  whole-image values except near the window's edge;
- back-projection compares the estimate, reduced by the degradation, with the measured
  target and spreads the residual back by bicubic enlargement: each of its steps
  reaches about 4 target pixels further, with a weight that falls quickly.

So each output tile (:class:`Tile`) is computed on its core grown by a halo
(:func:`tile_halo`: the networks' receptive fields plus ``halo`` target pixels for
back-projection and clipping; :mod:`cmsr.method.streaming` adds the reach of the
finishes: the guided median, edge sharpening and the block partition) and only the
core is kept. The result differs from the
whole-image result only where the halo is too short for back-projection's reach; the
tests measure that seam error.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from cmsr.method.block_partition import integer_scale, partition_blocks
from cmsr.method.config import Config
from cmsr.method.edge_sharpening import sharpen_edges
from cmsr.method.guided_median import guided_median
from cmsr.method.infer import network_estimate
from cmsr.method.model import CMSRNet
from cmsr.method.resample import Box, DegradationKernel, downsample_window, resize_window

Size = tuple[int, int]


@dataclass(frozen=True)
class Tile:
    """One output tile: ``core`` is written, ``read`` (the core and its halo, inside the
    image) is computed. Both :data:`~cmsr.method.resample.Box` on the output grid."""

    core: Box
    read: Box


def plan_tiles(shape: Size, tile: int, halo: int) -> list[Tile]:
    """Tiles of ``tile`` output pixels a side covering ``shape`` row by row, each read
    with ``halo`` pixels of context (cut at the image's edge).

    Examples
    --------
    >>> [t.core for t in plan_tiles((5, 8), 4, 1)]
    [(0, 4, 0, 4), (0, 4, 4, 8), (4, 5, 0, 4), (4, 5, 4, 8)]
    >>> plan_tiles((5, 8), 4, 1)[1].read
    (0, 5, 3, 8)
    """
    if tile < 1 or halo < 0:
        raise ValueError(f"tile must be >= 1 and halo >= 0, got {tile}, {halo}")
    height, width = shape
    tiles = []
    for top in range(0, height, tile):
        for left in range(0, width, tile):
            bottom, right = min(height, top + tile), min(width, left + tile)
            tiles.append(Tile((top, bottom, left, right),
                              (max(0, top - halo), min(height, bottom + halo),
                               max(0, left - halo), min(width, right + halo))))
    return tiles


def map_box(box: Box, source: Size, target: Size, margin: int = 0) -> Box:
    """The smallest window of a ``target``-sized grid covering the ground of ``box`` on a
    ``source``-sized grid of the same extent, grown by ``margin`` pixels, inside the grid.

    Examples
    --------
    >>> map_box((4, 9, 0, 8), (16, 16), (4, 4))
    (1, 3, 0, 2)
    >>> map_box((4, 9, 0, 8), (16, 16), (4, 4), margin=2)
    (0, 4, 0, 4)
    """
    fy, fx = target[0] / source[0], target[1] / source[1]
    eps = 1e-9
    return (max(0, math.floor(box[0] * fy + eps) - margin),
            min(target[0], math.ceil(box[1] * fy - eps) + margin),
            max(0, math.floor(box[2] * fx + eps) - margin),
            min(target[1], math.ceil(box[3] * fx - eps) + margin))


def tile_halo(networks: Sequence[CMSRNet], stages: Sequence[Size], coarse: Size,
              halo: int) -> int:
    """Output pixels of context a tile needs: every stage network's receptive-field
    radius (in its stage's pixels, counted in output pixels) plus ``halo`` target pixels
    (back-projection and the local-range clip), rounded up."""
    out = stages[-1]
    total = halo * max(out[0] / coarse[0], out[1] / coarse[1])
    for net, size in zip(networks, stages, strict=True):
        total += net.halo * max(out[0] / size[0], out[1] / size[1])
    return math.ceil(total)


def _origin(box: Box) -> Size:
    return box[0], box[2]


def back_project_window(estimate: torch.Tensor, box: Box, full: Size, target: torch.Tensor,
                        valid: torch.Tensor, coarse_box: Box, coarse: Size, *,
                        iterations: int, kernel: DegradationKernel) -> torch.Tensor:
    """:func:`cmsr.method.infer.back_project` on a window.

    Parameters
    ----------
    estimate:
        ``(1, c, h, w)`` float32: window ``box`` of an estimate of size ``full``.
    target, valid:
        ``(1, c, ch, cw)`` and ``(1, 1, ch, cw)`` float32: window ``coarse_box`` of the
        measured target (size ``coarse``) and its validity (residuals at invalid pixels
        count as zero).
    """
    for _ in range(iterations):
        reduced = downsample_window(estimate, full, coarse, _origin(box), coarse_box,
                                    kernel=kernel)
        residual = (target - reduced) * valid
        estimate = estimate + resize_window(residual, coarse, full, _origin(coarse_box), box)
    return estimate


def clamp_window(estimate: torch.Tensor, box: Box, full: Size, target: torch.Tensor,
                 coarse_box: Box, coarse: Size, *, radius: int = 1) -> torch.Tensor:
    """:func:`cmsr.method.infer.clamp_to_local_range` on a window (arguments as
    :func:`back_project_window`): each output pixel clipped to the range of the measured
    pixels within ``radius`` of the one it lies in (nearest-exact, as the whole-image
    version)."""
    size = 2 * radius + 1
    high = torch.nn.functional.max_pool2d(target, size, stride=1, padding=radius)
    low = -torch.nn.functional.max_pool2d(-target, size, stride=1, padding=radius)

    def nearest(start: int, stop: int, axis: int) -> torch.Tensor:
        index = torch.floor((torch.arange(start, stop, dtype=torch.float64) + 0.5)
                            * (coarse[axis] / full[axis])).long()
        offset = coarse_box[2 * axis]
        limit = coarse_box[2 * axis + 1] - offset - 1
        return (index.clamp(max=coarse[axis] - 1) - offset).clamp(0, limit)

    rows, cols = nearest(box[0], box[1], 0), nearest(box[2], box[3], 1)
    high = high[..., rows, :][..., cols]
    low = low[..., rows, :][..., cols]
    return torch.minimum(torch.maximum(estimate, low), high)


@torch.no_grad()
def predict_window(networks: Sequence[CMSRNet], stages: Sequence[Size], target: torch.Tensor,
                   valid: torch.Tensor, guide: torch.Tensor, box: Box, *, config: Config,
                   guide_weight: float = 1.0, bicubic: bool = False, margin: int = 3,
                   finish_guide: torch.Tensor | None = None) -> torch.Tensor:
    """Window ``box`` of the result of :meth:`cmsr.CMSR.predict_tensor`, from that window
    of the guide.

    Parameters
    ----------
    networks, stages:
        The fitted networks and their output sizes, one per gradual stage (the last is
        the output size).
    target, valid:
        ``(1, c, h, w)`` float32 the whole measured target in unit range (invalid pixels
        filled) and ``(1, 1, h, w)`` float32 {0, 1}.
    guide:
        ``(1, C, H', W')`` float32 in [0, 1]: the guide's pixels in ``box``.
    box:
        The output window (:data:`~cmsr.method.resample.Box`).
    config:
        Inference settings: ``self_ensemble``, ``back_projection_iters``,
        ``degradation``, ``clamp_to_local_range``, ``guided_median_radius`` and
        ``guided_median_sigma``, ``edge_sharpening``, ``block_partition`` and
        ``block_partition_guide``, ``tile_size``.
    guide_weight:
        The guide branch's weight (the self-check's choice): 0 runs the guide-free
        networks, between 0 and 1 a blend.
    bicubic:
        Return the bicubic enlargement of the target (the self-check's last resort).
    margin:
        Target pixels read beyond the ground of ``box`` (the enlargement's taps).
    finish_guide:
        ``(1, C, H', W')`` float32 in [0, 1] or None (``guide``): the guide the guided
        finishes read, e.g. ``guide`` moved by :attr:`cmsr.CMSR.guide_shift`.

    Returns
    -------
    ``(1, c, H', W')`` float32 in the target's unit range.
    """
    full = stages[-1]
    coarse = (int(target.shape[-2]), int(target.shape[-1]))
    coarse_box = map_box(box, full, coarse, margin)
    measured = target[..., coarse_box[0]:coarse_box[1], coarse_box[2]:coarse_box[3]]
    measured_valid = valid[..., coarse_box[0]:coarse_box[1], coarse_box[2]:coarse_box[3]]
    if bicubic:
        return resize_window(measured, coarse, full, _origin(coarse_box), box)
    current, current_full, current_box = measured, coarse, coarse_box
    for index, (net, size) in enumerate(zip(networks, stages, strict=True)):
        stage_box = box if index == len(stages) - 1 else map_box(box, full, size)
        stage_guide = guide if size == full else downsample_window(
            guide, full, size, _origin(box), stage_box).clamp(0.0, 1.0)
        target_up = resize_window(current, current_full, size, _origin(current_box),
                                  stage_box)
        estimate = network_estimate(net, target_up, stage_guide, config=config,
                                    guide_weight=guide_weight)
        if index == 0:  # back-projection onto the measurement only (see CMSR._stage_config)
            estimate = back_project_window(
                estimate, stage_box, size, measured, measured_valid, coarse_box, coarse,
                iterations=config.back_projection_iters, kernel=config.degradation)
        current, current_full, current_box = estimate, size, stage_box
    if len(networks) > 1:
        current = back_project_window(
            current, box, full, measured, measured_valid, coarse_box, coarse,
            iterations=config.back_projection_iters, kernel=config.degradation)
    if config.clamp_to_local_range:
        current = clamp_window(current, box, full, measured, coarse_box, coarse)

    def back_project_and_clip(moved: torch.Tensor) -> torch.Tensor:
        """Back-projection and the clip once more, after a finish that moved pixels."""
        moved = back_project_window(
            moved, box, full, measured, measured_valid, coarse_box, coarse,
            iterations=config.back_projection_iters, kernel=config.degradation)
        if config.clamp_to_local_range:
            moved = clamp_window(moved, box, full, measured, coarse_box, coarse)
        return moved

    guide = guide if finish_guide is None else finish_guide
    if config.guided_median_radius:
        current = back_project_and_clip(guided_median(
            current, guide, radius=config.guided_median_radius, sigma=config.guided_median_sigma))
    if config.edge_sharpening:
        current = back_project_and_clip(sharpen_edges(current, strength=config.edge_sharpening))
    if config.block_partition and integer_scale(full, coarse) is not None:
        current = back_project_and_clip(partition_window(
            current, guide, box, full, measured, measured_valid, coarse_box, coarse,
            config=config))
    return current


def partition_window(estimate: torch.Tensor, guide: torch.Tensor, box: Box, full: Size,
                     measured: torch.Tensor, measured_valid: torch.Tensor, coarse_box: Box,
                     coarse: Size, *, config: Config) -> torch.Tensor:
    """:func:`cmsr.method.block_partition.partition_blocks` on a window (arguments as
    :func:`back_project_window`, ``measured_valid`` the window's validity; ``guide`` the
    window's guide pixels): the blocks of the
    measured grid that lie wholly in ``box`` are partitioned, the rest left as they are.
    Within :func:`cmsr.method.block_partition.partition_halo` of the window's border the
    values differ from the whole image's (the neighbours beyond it are not read).
    Unchanged when the output is no integer multiple of the target."""
    scale = integer_scale(full, coarse)
    if scale is None:
        return estimate
    top, bottom = -(-box[0] // scale) * scale, box[1] // scale * scale
    left, right = -(-box[2] // scale) * scale, box[3] // scale * scale
    if bottom <= top or right <= left:
        return estimate
    rows, cols = slice(top - box[0], bottom - box[0]), slice(left - box[2], right - box[2])
    low_rows = slice(top // scale - coarse_box[0], bottom // scale - coarse_box[0])
    low_cols = slice(left // scale - coarse_box[2], right // scale - coarse_box[2])
    part = partition_blocks(estimate[..., rows, cols], measured[..., low_rows, low_cols],
                            valid=measured_valid[..., low_rows, low_cols],
                            guide=guide[..., rows, cols] if config.block_partition_guide else None,
                            strength=config.block_partition,
                            guide_weight=config.block_partition_guide)
    estimate = estimate.clone()
    estimate[..., rows, cols] = part
    return estimate


def crop_core(result: torch.Tensor, tile: Tile) -> torch.Tensor:
    """The core of a tile's result ``(1, c, read height, read width)``."""
    top, left = tile.core[0] - tile.read[0], tile.core[2] - tile.read[2]
    return result[..., top:top + tile.core[1] - tile.core[0],
                  left:left + tile.core[3] - tile.core[2]]
