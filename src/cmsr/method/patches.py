"""Training examples from the one pair: random affine crops, reduced by the scale.

A patch is an affine map from patch coordinates to image coordinates, shared by the
target and the guide, so both crops show the same part of the scene. Crops are taken
with ``grid_sample`` and are therefore differentiable in the images and in any
``guide_map`` applied to the guide's sampling points (where a learned deformation of
the guide plugs in).

Two schemes (the supplementary's *Alternating Scales*), both giving the network
``patch_size`` x ``patch_size`` pixels per example:

* down-sampling: target crop ``m`` (low-resolution pixels, the supervision), its
  reduction by the scale as input, the guide crop reduced to the size of ``m``;
* up-sampling: a crop ``m`` of ``patch_size / scale`` low-resolution pixels enlarged
  by the scale (bicubic) is the supervision and, reduced again, the input; the guide
  crop is used at its original resolution.

Coordinates follow ``grid_sample`` with ``align_corners=False``: (x, y) in [-1, 1]
spanning the image's outer edges, so low- and high-resolution images share them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from cmsr.method.config import Config
from cmsr.method.resample import downsample, upsample_bicubic

PointMap = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class PatchBatch:
    """One training step's examples; all tensors float32 ``(B, *, P, P)``.

    ``target_up``: the reduced target enlarged back (bicubic), network input, unit range.
    ``guide``: guide crops in [0, 1]. ``supervision``: what the network should output.
    ``valid``: 1 where the supervision pixel is a valid measurement, else 0.
    """

    target_up: torch.Tensor
    guide: torch.Tensor
    supervision: torch.Tensor
    valid: torch.Tensor


def _uniform(generator: torch.Generator, n: int, low: float, high: float) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=generator, dtype=torch.float64)


def random_patch_affines(batch: int, patch_size: tuple[int, int], image_size: tuple[int, int],
                         config: Config, generator: torch.Generator) -> torch.Tensor:
    """Random crop transforms for ``batch`` patches of ``patch_size`` image pixels.

    Every patch gets a random flip and quarter turn (when ``config.flips``); with
    probability ``config.augment_probability`` also a random rotation, shear and zoom
    (then the crop is interpolated); otherwise it lies on the pixel grid (exact crop).
    Patches stay inside the image where they fit.

    Parameters
    ----------
    patch_size, image_size:
        ``(height, width)`` in pixels of the same image.

    Returns
    -------
    ``(batch, 2, 3)`` float32 ``theta`` for :func:`torch.nn.functional.affine_grid`.
    """
    (ph, pw), (h, w) = patch_size, image_size
    f64 = torch.float64
    if config.flips:
        flip = torch.rand(batch, generator=generator) < 0.5
        turns = torch.randint(0, 4, (batch,), generator=generator)
    else:
        flip = torch.zeros(batch, dtype=torch.bool)
        turns = torch.zeros(batch, dtype=torch.long)
    warped = torch.rand(batch, generator=generator) < config.augment_probability
    angle = torch.deg2rad(_uniform(generator, batch, -config.augment_rotation,
                                   config.augment_rotation))
    shear = torch.deg2rad(_uniform(generator, batch, -config.augment_shear,
                                   config.augment_shear))
    zoom = _uniform(generator, batch, *config.augment_zoom)
    place = torch.rand(batch, 2, generator=generator, dtype=f64)

    quarter = turns.to(f64) * (math.pi / 2)
    cos_q, sin_q = torch.cos(quarter).round(), torch.sin(quarter).round()
    dihedral = torch.stack([torch.stack([cos_q, -sin_q], -1), torch.stack([sin_q, cos_q], -1)], -2)
    mirror = torch.ones(batch, 2, dtype=f64)
    mirror[:, 0] = torch.where(flip, -1.0, 1.0)
    dihedral = dihedral * mirror[:, None, :]
    cos_a, sin_a = torch.cos(angle), torch.sin(angle)
    rotation = torch.stack([torch.stack([cos_a, -sin_a], -1), torch.stack([sin_a, cos_a], -1)], -2)
    shearing = torch.eye(2, dtype=f64).repeat(batch, 1, 1)
    shearing[:, 0, 1] = torch.tan(shear)
    free = rotation @ shearing @ (zoom[:, None, None] * dihedral)
    linear = torch.where(warped[:, None, None], free, dihedral)

    # half-extent of the transformed patch, in image pixels, along x and y
    half = torch.tensor([pw / 2.0, ph / 2.0], dtype=f64)
    extent = (linear.abs() @ half[:, None])[..., 0]
    size = torch.tensor([w, h], dtype=f64)
    room = size - 2 * extent
    # warped patches anywhere inside; grid patches with an integer corner (exact crops)
    anywhere = extent + room.clamp(min=0) * place
    corner = torch.floor((room.clamp(min=0) + 1) * place).clamp(max=room.clamp(min=0))
    on_grid = corner + extent
    centre = torch.where(warped[:, None], anywhere, on_grid)
    centre = torch.where(room > 0, centre, size / 2)

    to_unit = 2.0 / size
    theta = torch.empty(batch, 2, 3, dtype=f64)
    theta[:, :, :2] = to_unit[None, :, None] * linear * half[None, None, :]
    theta[:, :, 2] = centre * to_unit - 1.0
    return theta.float()


def crop(image: torch.Tensor, theta: torch.Tensor, size: tuple[int, int], *,
         mode: str = "bilinear", padding_mode: str = "border",
         point_map: PointMap | None = None) -> torch.Tensor:
    """Sample ``(B, C, *size)`` crops of ``image (1, C, H, W)`` along ``theta (B, 2, 3)``.

    ``point_map`` maps sampling points ``(B, h, w, 2)`` in [-1, 1] to where they are
    read in ``image`` (a deformation of the image); gradients flow through it.
    """
    batch = theta.shape[0]
    grid = F.affine_grid(theta.to(image.device), [batch, image.shape[1], *size],
                         align_corners=False)
    if point_map is not None:
        grid = point_map(grid)
    source = image.expand(batch, -1, -1, -1)
    return F.grid_sample(source, grid, mode=mode, padding_mode=padding_mode,
                         align_corners=False)


def _crop_target(target: torch.Tensor, valid: torch.Tensor, theta: torch.Tensor,
                 size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    patch = crop(target, theta, size, mode="bicubic", padding_mode="reflection")
    mask = crop(valid, theta, size, mode="nearest", padding_mode="zeros")
    return patch, mask


def downscaling_batch(target: torch.Tensor, guide: torch.Tensor, valid: torch.Tensor,
                      scale: tuple[float, float], config: Config, generator: torch.Generator,
                      guide_map: PointMap | None = None) -> PatchBatch:
    """Examples of the down-sampling scheme: reconstruct target crops from their reduction.

    Parameters
    ----------
    target:
        ``(1, c, h, w)`` float32, low-resolution target in unit range (invalid filled).
    guide:
        ``(1, C, H, W)`` float32 in [0, 1].
    valid:
        ``(1, 1, h, w)`` float32, 1 for valid target pixels.
    scale:
        ``(scale_y, scale_x)`` = guide size / target size.
    """
    h, w = target.shape[-2:]
    side = min(config.patch_size, h, w)
    small = (max(2, round(side / scale[0])), max(2, round(side / scale[1])))
    theta = random_patch_affines(config.batch_size, (side, side), (h, w), config, generator)
    supervision, mask = _crop_target(target, valid, theta, (side, side))
    guide_size = (round(side * scale[0]), round(side * scale[1]))
    guide_patch = crop(guide, theta, guide_size, point_map=guide_map)
    reduced = downsample(supervision, small, kernel=config.degradation)
    return PatchBatch(target_up=upsample_bicubic(reduced, (side, side)),
                      guide=downsample(guide_patch, (side, side), kernel="cubic"),
                      supervision=supervision, valid=mask)


def upscaling_batch(target: torch.Tensor, guide: torch.Tensor, valid: torch.Tensor,
                    scale: tuple[float, float], config: Config, generator: torch.Generator,
                    guide_map: PointMap | None = None) -> PatchBatch:
    """Examples of the up-sampling scheme: the guide at its own scale, the target enlarged.

    Same arguments as :func:`downscaling_batch`.
    """
    h, w = target.shape[-2:]
    side = min(config.patch_size, h, w)
    small = (max(2, round(side / scale[0])), max(2, round(side / scale[1])))
    theta = random_patch_affines(config.batch_size, small, (h, w), config, generator)
    low, mask_low = _crop_target(target, valid, theta, small)
    size = (round(small[0] * scale[0]), round(small[1] * scale[1]))
    supervision = upsample_bicubic(low, size)
    mask = F.interpolate(mask_low, size=size, mode="nearest-exact")
    reduced = downsample(supervision, small, kernel=config.degradation)
    guide_patch = crop(guide, theta, size, point_map=guide_map)
    return PatchBatch(target_up=upsample_bicubic(reduced, size), guide=guide_patch,
                      supervision=supervision, valid=mask)


def upscaling_step(config: Config, generator: torch.Generator) -> bool:
    """Whether a step uses the up-sampling scheme: drawn with probability
    ``config.alternating_scales``."""
    return float(torch.rand(1, generator=generator)) < config.alternating_scales


def training_batch(target: torch.Tensor, guide: torch.Tensor, valid: torch.Tensor,
                   scale: tuple[float, float], config: Config, generator: torch.Generator,
                   guide_map: PointMap | None = None, *, upscaling: bool | None = None
                   ) -> PatchBatch:
    """One step's batch: the up-sampling scheme when ``upscaling`` (drawn by
    :func:`upscaling_step` when None), else the down-sampling scheme."""
    if upscaling is None:
        upscaling = upscaling_step(config, generator)
    make = upscaling_batch if upscaling else downscaling_batch
    return make(target, guide, valid, scale, config, generator, guide_map)
