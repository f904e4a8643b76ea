"""Training the network on the one pair (paper section 3.2): the compact loop.

Each step draws a batch of patches (:mod:`cmsr.method.patches`), runs the network, and takes
an Adam step on the L1 loss over valid pixels. Every ``config.eval_every`` steps the
whole low-resolution target is reconstructed from its own reduction; those errors set
the learning rate (:mod:`cmsr.method.learning_rate`) and the stop.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from cmsr.method.config import Config
from cmsr.method.learning_rate import LearningRateBySlope
from cmsr.method.model import CMSRNet
from cmsr.method.patches import PatchBatch, PointMap, training_batch, upscaling_step
from cmsr.method.precision import autocast
from cmsr.method.resample import downsample, upsample_bicubic
from cmsr.method.warp import GuideWarp, identity_grid

EVAL_MAX_PIXELS = 256 * 256


@dataclass(frozen=True)
class TrainRecord:
    """One evaluation point of a run.

    ``loss``: mean training L1 since the previous record (unit range).
    ``reconstruction``: L1 of rebuilding the low-resolution target from its reduction.
    """

    step: int
    loss: float
    reconstruction: float
    learning_rate: float
    seconds: float


@dataclass(frozen=True)
class StepInfo:
    """What a progress display needs after each step.

    ``stage`` / ``stages``: which of the gradual-SR trainings this is (0-based) and
    how many there are; :func:`train` reports stage 0 of 1, callers running several
    stages relabel it. ``phase``: ``"train"``, or ``"align"`` for the warp's fits on
    reduced copies of the pair (:mod:`cmsr.method.coarse_alignment`).
    """

    step: int
    max_steps: int
    loss: float
    learning_rate: float
    seconds: float
    stage: int = 0
    stages: int = 1
    phase: str = "train"


def masked_l1(prediction: torch.Tensor, supervision: torch.Tensor, valid: torch.Tensor
              ) -> torch.Tensor:
    """Mean absolute error over valid pixels; ``valid (B, 1, H, W)`` in {0, 1}."""
    error = (prediction.float() - supervision).abs() * valid
    return error.sum() / (valid.sum() * prediction.shape[1]).clamp(min=1.0)


def run_step(net: CMSRNet, batch: PatchBatch, precision: str,
             guide_weight: torch.Tensor | None = None, *, use_guide: bool = True
             ) -> torch.Tensor:
    """Forward one batch and return its loss (not yet backpropagated).

    ``guide_weight``: ``(B, 1, 1, 1)`` multiplier of the guide branch per example (0
    drops the guide for it), or None. ``use_guide`` False: the guide-free network
    (Feature-Extractor 2 is not run).
    """
    device = batch.target_up.device
    channels_last = torch.channels_last
    guide = batch.guide.contiguous(memory_format=channels_last) if use_guide else None
    with autocast(device, precision):
        prediction = net(batch.target_up.contiguous(memory_format=channels_last), guide,
                         guide_weight)
    return masked_l1(prediction, batch.supervision, batch.valid)


def central_crop(target: torch.Tensor, guide: torch.Tensor, valid: torch.Tensor,
                 max_pixels: int, guide_map: PointMap | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The centre of the pair, at most ``max_pixels`` target pixels, for cheap checks.

    With ``guide_map`` (see :func:`warp_point_map`) the guide's crop is read through
    it (bilinear, border padding, as the training crops), so only the crop is warped.
    """
    h, w = target.shape[-2:]
    big_h, big_w = guide.shape[-2:]
    top, left, ch, cw = 0, 0, h, w
    if h * w > max_pixels:
        side = int(max_pixels**0.5)
        ch, cw = min(h, side), min(w, max_pixels // min(h, side))
        top, left = (h - ch) // 2, (w - cw) // 2
    gy, gx = big_h / h, big_w / w
    g_top, g_left = round(top * gy), round(left * gx)
    g_rows, g_cols = (min(big_h, round((top + ch) * gy)) - g_top,
                      min(big_w, round((left + cw) * gx)) - g_left)
    if guide_map is None:
        g_crop = guide[..., g_top:g_top + g_rows, g_left:g_left + g_cols]
    else:
        points = identity_grid(big_h, big_w, device=guide.device)
        points = points[:, g_top:g_top + g_rows, g_left:g_left + g_cols]
        g_crop = F.grid_sample(guide, guide_map(points), mode="bilinear",
                               padding_mode="border", align_corners=False)
    return (target[..., top:top + ch, left:left + cw], g_crop,
            valid[..., top:top + ch, left:left + cw])


@torch.no_grad()
def reconstruction_error(net: nn.Module, target: torch.Tensor, guide: torch.Tensor,
                         valid: torch.Tensor, scale: tuple[float, float], config: Config,
                         guide_map: PointMap | None = None, *, use_guide: bool = True
                         ) -> float:
    """L1 of rebuilding ``target (1, c, h, w)`` from its reduction by ``scale``.

    The guide (read through ``guide_map``, the warp, when given) is reduced to the
    target's size, so this is the down-sampling scheme on the whole image (its
    centre, for large images); ``use_guide`` False: by the guide-free network.
    """
    target, guide, valid = central_crop(target, guide, valid, EVAL_MAX_PIXELS, guide_map)
    h, w = target.shape[-2:]
    small = (max(2, round(h / scale[0])), max(2, round(w / scale[1])))
    reduced = downsample(target, small, kernel=config.degradation)
    guide_small = downsample(guide, (h, w), kernel="cubic")
    with autocast(target.device, config.precision):
        prediction = net(upsample_bicubic(reduced, (h, w)), guide_small if use_guide else None)
    return float(masked_l1(prediction, target, valid))


def warp_point_map(warp: GuideWarp, size: Sequence[int]) -> PointMap:
    """Sampling points through ``warp``, for crops of a guide of ``size = (H, W)``.

    The local layers (CPAB, TPS) are evaluated once per call at the coarse nodes of
    :meth:`GuideWarp.local_displacement` (the same cheap form :meth:`GuideWarp.grid`
    uses at inference) and their displacement is read at the crop's points
    (bilinear); the affine layer is applied exactly. One step therefore costs one
    coarse evaluation whatever the batch, gradients reach every warp parameter that
    requires them, and at the identity the map is exactly the identity.
    """
    height, width = size
    local_on = bool({"cpab", "tps"} & warp.active)
    affine = warp.layers["affine"] if "affine" in warp.active else None
    if local_on:
        shift = warp.local_displacement(height, width, coarse=warp.coarse)
        shift = shift.permute(0, 3, 1, 2)
        # the nodes span the outer pixel centres: stretch points onto that span
        span = torch.tensor([1.0 - 1.0 / width, 1.0 - 1.0 / height], device=shift.device)

    def point_map(points: torch.Tensor) -> torch.Tensor:
        moved = points
        if local_on:
            # one image, the batch's points side by side: no copy of the field per patch
            batch, rows, columns, _ = points.shape
            where = (points / span).clamp(-1.0, 1.0).reshape(1, batch * rows, columns, 2)
            offset = F.grid_sample(shift, where, mode="bilinear", align_corners=True)
            moved = points + offset.permute(0, 2, 3, 1).reshape(points.shape)
        return affine(moved) if affine is not None else moved

    return point_map


def _without_gradient(point_map: PointMap) -> PointMap:
    """``point_map`` applied as a constant: no gradient reaches the warp through it."""

    def constant(points: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return point_map(points)

    return constant


def release_warp_layers(warp: GuideWarp, step: int, config: Config) -> None:
    """Coarse to fine: affine from the start, CPAB and TPS after ``config.warp_release``."""
    present = set(warp.layers.keys())
    cpab_from, tps_from = (round(f * config.max_iters) for f in config.warp_release)
    active = {"affine"} & present
    if step > cpab_from:
        active |= {"cpab"} & present
    if step > tps_from:
        active |= {"tps"} & present
    warp.set_active(active)


def train(net: CMSRNet, target: torch.Tensor, guide: torch.Tensor, *,
          scale: tuple[float, float], config: Config, generator: torch.Generator,
          valid: torch.Tensor | None = None, warp: GuideWarp | None = None,
          release_warp: bool = True, use_guide: bool = True,
          on_step: Callable[[StepInfo], None] | None = None) -> list[TrainRecord]:
    """Fit ``net`` to the pair in place; return the evaluation records.

    Parameters
    ----------
    target:
        ``(1, c, h, w)`` float32 low-resolution target in unit range, invalid pixels
        filled (see :func:`cmsr.method.normalize.fill_invalid`).
    guide:
        ``(1, C, H, W)`` float32 in [0, 1], same device as ``target``.
    scale:
        ``(H / h, W / w)``.
    valid:
        ``(1, 1, h, w)`` float32, 1 for valid target pixels; all valid when None.
    warp:
        Optional learnable deformation of the guide (:class:`cmsr.method.warp.GuideWarp`),
        trained with the network by the same loss, each layer at its own learning
        rate (``config.warp_lr_*`` times the network's, in pixels of ``target``: Adam
        moves the warp by about that many target pixels per step), on the
        down-sampling steps only: their
        supervision is the measured target, while the up-sampling scheme's is a
        bicubic enlargement that says nothing about alignment (those steps still see
        the warped guide). Layers frozen with :meth:`GuideWarp.freeze` are applied but
        not trained (and cost no backward pass).
    release_warp:
        Free the warp's layers coarse to fine (:func:`release_warp_layers`), for a
        warp starting at the identity; False: all present layers act from the first
        step (a warp learned before: a previous stage or a loaded warp).
    use_guide:
        False: train the guide-free network alone (``target_up + FE1``; Feature-
        Extractor 2 is not run, ``warp`` and ``config.guide_dropout`` are not used), as
        the stages after a self-check that chose the guide-free network do.
    on_step:
        Called after every step (for progress bars).
    """
    valid = torch.ones_like(target[:, :1]) if valid is None else valid
    warp = warp if use_guide else None
    schedule = LearningRateBySlope(config.learning_rate, config.min_learning_rate,
                                   decay=config.lr_decay, window=config.slope_window)
    groups: list[dict] = [{"params": list(net.parameters()), "lr_scale": 1.0}]
    learn_warp = warp is not None and any(p.requires_grad for p in warp.parameters())
    if warp is not None and not release_warp:
        warp.set_active(warp.layers.keys())
    if learn_warp:
        assert warp is not None
        multipliers = {"affine": config.warp_lr_affine, "cpab": config.warp_lr_cpab,
                       "tps": config.warp_lr_tps}
        # the warp's parameters are in normalized units (2 = the image's width): in
        # pixels of this stage's target, so that a step moves the guide by about
        # learning_rate * multiplier target pixels whatever the image size
        pixel = 2.0 / max(target.shape[-2:])
        for group in warp.parameter_groups(pixel, multipliers):
            groups.append({"params": group["params"], "lr_scale": group["lr"]})
    for group in groups:
        group["lr"] = config.learning_rate * group["lr_scale"]
    optimizer = torch.optim.Adam(groups)
    net.to(memory_format=torch.channels_last).train()  # type: ignore[call-overload]
    records: list[TrainRecord] = []

    def evaluate() -> float:
        with torch.no_grad():
            guide_map = None if warp is None else warp_point_map(warp, tuple(guide.shape[-2:]))
        return reconstruction_error(net, target, guide, valid, scale, config, guide_map,
                                    use_guide=use_guide)

    start = time.perf_counter()
    running, count = 0.0, 0
    # the last final_decay share of the steps runs at most at the first lowered rate
    tail_from = (config.max_iters - round(config.final_decay * config.max_iters)
                 if config.final_decay > 0 else config.max_iters + 1)
    for step in range(1, config.max_iters + 1):
        # the scheme is drawn first: the warp learns only from the down-sampling scheme,
        # whose supervision is the measured target
        upscaling = upscaling_step(config, generator)
        warp_learns = learn_warp and not upscaling
        guide_map = None
        if warp is not None:
            if release_warp:
                release_warp_layers(warp, step, config)
            with torch.set_grad_enabled(warp_learns):
                guide_map = warp_point_map(warp, tuple(guide.shape[-2:]))
            if not warp_learns:
                guide_map = _without_gradient(guide_map)
        batch = training_batch(target, guide, valid, scale, config, generator, guide_map,
                               upscaling=upscaling)
        guide_weight = None
        if config.guide_dropout > 0 and use_guide:
            keep = torch.rand(batch.guide.shape[0], generator=generator) >= config.guide_dropout
            guide_weight = keep.float().view(-1, 1, 1, 1).to(batch.guide.device)
        loss = run_step(net, batch, config.precision, guide_weight, use_guide=use_guide)
        if warp_learns:
            assert warp is not None
            loss = loss + config.warp_regularization * warp.regularization()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        running, count = running + float(loss.detach()), count + 1
        if on_step is not None:
            on_step(StepInfo(step, config.max_iters, float(loss.detach()), schedule.rate,
                             time.perf_counter() - start))
        if step % config.eval_every == 0:
            error = evaluate()
            records.append(TrainRecord(step, running / count, error, schedule.rate,
                                       time.perf_counter() - start))
            running, count = 0.0, 0
            lowered = schedule.update(error, allow_decay=step >= config.min_iters)
            if step >= tail_from:
                lowered = schedule.lower_to(config.learning_rate / config.lr_decay) or lowered
            if lowered:
                for group in optimizer.param_groups:
                    group["lr"] = schedule.rate * group["lr_scale"]
            if schedule.finished:
                break
    if count:  # the steps after the last evaluation (short runs) get a record too
        error = evaluate()
        records.append(TrainRecord(step, running / count, error, schedule.rate,
                                   time.perf_counter() - start))
    net.eval()
    return records
