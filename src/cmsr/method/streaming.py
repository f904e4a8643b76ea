"""Results too large to hold: a fit on the central part of the pair, then the result
computed and handed over tile by tile (:func:`super_resolve_tiled`)."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from cmsr.method.api import CMSR, stage_sizes
from cmsr.method.block_partition import partition_halo
from cmsr.method.config import Config
from cmsr.method.edge_sharpening import RADIUS as EDGE_RADIUS
from cmsr.method.guide_shift import read_shifted
from cmsr.method.normalize import fit_normalization, measured_target, target_tensors
from cmsr.method.resample import Box
from cmsr.method.tiled_inference import crop_core, plan_tiles, predict_window, tile_halo
from cmsr.method.train import StepInfo

GuideReader = Callable[[Box], np.ndarray]
"""Returns the guide's pixels ``(H', W'[, C])`` (invalid pixels filled) in an output
window (:data:`~cmsr.method.resample.Box`)."""

TileWriter = Callable[[Box, np.ndarray], None]
"""Receives one output tile ``(H', W'[, c])`` (the target's dtype) and its window."""


def training_window(coarse: tuple[int, int], final: tuple[int, int], max_pixels: int
                    ) -> tuple[Box, Box]:
    """The central part of a pair that a fit trains on: ``(target window, output window)``
    with at most about ``max_pixels`` output pixels, whole target pixels, the whole pair
    when it is small enough.

    Examples
    --------
    >>> training_window((100, 100), (400, 400), 200 * 200)
    ((25, 75, 25, 75), (100, 300, 100, 300))
    """
    h, w = coarse
    sy, sx = final[0] / h, final[1] / w
    if final[0] * final[1] <= max_pixels:
        return (0, h, 0, w), (0, final[0], 0, final[1])
    side = math.sqrt(max_pixels)
    rows = max(2, min(h, math.floor(side / sy)))
    cols = max(2, min(w, math.floor(max_pixels / (rows * sy * sx))))
    top, left = (h - rows) // 2, (w - cols) // 2
    box = (top, top + rows, left, left + cols)
    return box, (round(box[0] * sy), round(box[1] * sy), round(box[2] * sx),
                 round(box[3] * sx))


def super_resolve_tiled(target_lr: np.ndarray, read_guide: GuideReader,
                        shape: tuple[int, int], write_tile: TileWriter,
                        config: Config | None = None, *, mask: np.ndarray | None = None,
                        invalid_value: float | None = None,
                        on_step: Callable[[StepInfo], None] | None = None,
                        on_tile: Callable[[int, int], None] | None = None,
                        target_name: str = "target", guide_name: str = "guide") -> CMSR:
    """Super-resolve a target whose result is too large to hold: train on a part, then
    compute and hand over the result tile by tile.

    The fit trains on the central part of the pair with at most
    ``config.train_max_pixels`` output pixels (:func:`training_window`; the whole pair
    when it is smaller), without the learned alignment (``align="none"``: a warp learned
    on a part does not describe the whole). Then each tile of ``config.stream_tile``
    output pixels is computed from its window of the guide, grown by
    :func:`cmsr.method.tiled_inference.tile_halo` (the networks' receptive fields and
    ``config.stream_halo`` target pixels, the guided median's radius, edge
    sharpening's and the block partition's), by
    :func:`cmsr.method.tiled_inference.predict_window`, and handed to ``write_tile``. The
    guide is mapped to [0, 1] by the range of the training part, the target by the fit's
    normalization. With the guided median and ``guide_shift_search``, the guide's
    offset for the finishes is found once, on the training part
    (:meth:`CMSR.decide_guide_shift`), and every tile's finishes read the guide moved
    by it. Memory: the coarse target, the training part, and one tile's
    network activations at a time.

    Parameters
    ----------
    target_lr:
        ``(h, w)`` or ``(h, w, c)``, any real dtype; NaN = invalid.
    read_guide:
        The guide's pixels in an output window (see :data:`GuideReader`).
    shape:
        ``(H, W)`` of the output (the guide).
    write_tile:
        Receives each tile with its window (see :data:`TileWriter`).
    mask, invalid_value, on_step, target_name, guide_name:
        As :meth:`CMSR.fit`.
    on_tile:
        Called with ``(tiles done, tiles)`` after each tile.

    Returns
    -------
    CMSR
        The fitted model (its ``pair`` is the training part).
    """
    config = (config or Config()).replace(align="none")
    h, w = target_lr.shape[:2]
    coarse_box, out_box = training_window((h, w), shape, config.train_max_pixels)
    guide_part = read_guide(out_box)
    part = (slice(coarse_box[0], coarse_box[1]), slice(coarse_box[2], coarse_box[3]))
    model = CMSR(config).fit(target_lr[part], guide_part,
                             mask=None if mask is None else mask[part],
                             invalid_value=invalid_value, on_step=on_step,
                             target_name=target_name, guide_name=guide_name)
    guide_range = fit_normalization(guide_part)
    del guide_part
    assert model.pair is not None
    normalization = model.pair.normalization
    masked, valid = measured_target(target_lr, mask, invalid_value)
    target, valid_t = target_tensors(masked, valid, normalization, model.device)
    stages = stage_sizes((h, w), shape, gradual=config.gradual)
    if len(stages) != len(model.networks):
        raise RuntimeError(f"{len(model.networks)} stages trained but {len(stages)} to run")
    halo = (tile_halo(model.networks, stages, (h, w), config.stream_halo)
            + config.guided_median_radius + (EDGE_RADIUS if config.edge_sharpening else 0)
            + (partition_halo(max(1, round(shape[0] / h))) if config.block_partition else 0))
    tiles = plan_tiles(shape, config.stream_tile, halo)
    bicubic = model.self_check is not None and model.self_check.choice == "bicubic"
    shift = model.decide_guide_shift()
    offset = (0, 0) if shift is None else shift.offset
    for index, tile in enumerate(tiles):
        guide = guide_range.to_unit(read_guide(tile.read)).clamp(0.0, 1.0).to(model.device)
        finish_guide = None if offset == (0, 0) else guide_range.to_unit(
            read_shifted(read_guide, tile.read, offset, shape)).clamp(0.0, 1.0).to(model.device)
        result = predict_window(model.networks, stages, target, valid_t, guide, tile.read,
                                config=config, guide_weight=model.guide_weight, bicubic=bicubic,
                                finish_guide=finish_guide)
        write_tile(tile.core, normalization.from_unit(crop_core(result, tile)))
        if on_tile is not None:
            on_tile(index + 1, len(tiles))
    return model
