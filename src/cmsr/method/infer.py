"""Inference on the whole image (paper section 3.3).

The trained network runs on the full pair (in overlapping tiles when large), averaged
over the 8 flips and quarter turns (geometric self-ensemble), then corrected by
iterative back-projection so that reducing the result gives back the input. Results
may be clipped to the range of the measured pixels around each pixel
(:func:`clamp_to_local_range`) or of the whole input (:func:`clamp_to_input_range`).
"""

from __future__ import annotations

import torch

from cmsr.method.config import Config
from cmsr.method.model import CMSRNet
from cmsr.method.resample import DegradationKernel, downsample, upsample_bicubic


def dihedral(image: torch.Tensor, index: int) -> torch.Tensor:
    """The ``index``-th (0..7) of the 8 flips/quarter turns of ``(B, C, H, W)``."""
    out = torch.flip(image, dims=(-1,)) if index >= 4 else image
    return torch.rot90(out, k=index % 4, dims=(-2, -1))


def dihedral_inverse(image: torch.Tensor, index: int) -> torch.Tensor:
    """Undo :func:`dihedral` with the same ``index``."""
    out = torch.rot90(image, k=-(index % 4), dims=(-2, -1))
    return torch.flip(out, dims=(-1,)) if index >= 4 else out


@torch.no_grad()
def run_network(net: CMSRNet, target_up: torch.Tensor, guide: torch.Tensor | None, *,
                tile_size: int, guide_weight: float = 1.0) -> torch.Tensor:
    """``net(target_up, guide)`` computed tile by tile when the image is large.

    Tiles of ``tile_size`` pixels get ``net.halo`` pixels of context on each side, so
    the result equals the whole-image result exactly. Peak memory is about
    ``(tile_size + 2 * halo)**2 * width * 12`` bytes for a network ``width`` wide.

    Parameters
    ----------
    target_up:
        ``(1, c, H, W)`` float32, the enlarged target in unit range.
    guide:
        ``(1, C, H, W)`` float32 in [0, 1]; None runs the guide-free network.
    guide_weight:
        Scales the guide branch's output (1: the guided network; between 0 and 1: a
        blend of the guided and the guide-free network, as the self-check chose).

    Returns
    -------
    ``(1, c, H, W)`` float32.
    """
    height, width = target_up.shape[-2:]
    weight = (None if guide_weight == 1.0
              else torch.full((target_up.shape[0], 1, 1, 1), guide_weight,
                              dtype=target_up.dtype, device=target_up.device))
    if height <= tile_size and width <= tile_size:
        return net(target_up, guide, weight).float()
    halo = net.halo
    out = torch.empty_like(target_up)
    for top in range(0, height, tile_size):
        for left in range(0, width, tile_size):
            y0, x0 = max(0, top - halo), max(0, left - halo)
            y1, x1 = min(height, top + tile_size + halo), min(width, left + tile_size + halo)
            guide_tile = None if guide is None else guide[..., y0:y1, x0:x1]
            tile = net(target_up[..., y0:y1, x0:x1], guide_tile, weight).float()
            h, w = min(tile_size, height - top), min(tile_size, width - left)
            out[..., top:top + h, left:left + w] = tile[..., top - y0:top - y0 + h,
                                                        left - x0:left - x0 + w]
    return out


@torch.no_grad()
def self_ensemble(net: CMSRNet, target_up: torch.Tensor, guide: torch.Tensor | None, *,
                  tile_size: int, guide_weight: float = 1.0) -> torch.Tensor:
    """Median over the 8 flips/quarter turns of the network's output, ``(1, c, H, W)``
    (arguments as :func:`run_network`)."""
    outputs = [dihedral_inverse(run_network(
        net, dihedral(target_up, k), None if guide is None else dihedral(guide, k),
        tile_size=tile_size, guide_weight=guide_weight), k) for k in range(8)]
    return torch.quantile(torch.stack(outputs), 0.5, dim=0)


def back_project(estimate: torch.Tensor, target: torch.Tensor, *, iterations: int,
                 kernel: DegradationKernel = "cubic", valid: torch.Tensor | None = None
                 ) -> torch.Tensor:
    """Iterative back-projection: make ``reduce(estimate)`` agree with ``target``.

    Repeats ``estimate += upsample_bicubic(target - reduce(estimate))``, where
    ``reduce`` is the degradation (``kernel``) to the target's size.

    Parameters
    ----------
    estimate:
        ``(1, c, H, W)`` float32 high-resolution estimate.
    target:
        ``(1, c, h, w)`` float32 low-resolution measurement, same units.
    valid:
        ``(1, 1, h, w)`` float32; residuals at invalid pixels count as zero.
    """
    size, big = target.shape[-2:], estimate.shape[-2:]
    for _ in range(iterations):
        residual = target - downsample(estimate, size, kernel=kernel)
        if valid is not None:
            residual = residual * valid
        estimate = estimate + upsample_bicubic(residual, big)
    return estimate


def clamp_to_local_range(estimate: torch.Tensor, target: torch.Tensor, *,
                         radius: int = 1) -> torch.Tensor:
    """Clip each output pixel to the range of the measured pixels around it.

    Output pixel ``(i, j)`` lies in measured pixel ``(i / s_y, j / s_x)``; it is clipped
    to the minimum and maximum of the measured values within ``radius`` measured
    pixels of that one. Sharpening a structure narrower than two measured pixels
    (a pole, a wire) otherwise overshoots it and rings beside it.

    Parameters
    ----------
    estimate:
        ``(1, c, H, W)`` float32 result.
    target:
        ``(1, c, h, w)`` float32 measurement, same units.

    Examples
    --------
    >>> low = torch.tensor([[[[0.0, 1.0, 0.0]]]])
    >>> high = torch.tensor([[[[-0.2, 0.1, 1.3, 1.1, 0.2, -0.3]]]])
    >>> clamp_to_local_range(high, low, radius=1)
    tensor([[[[0.0000, 0.1000, 1.0000, 1.0000, 0.2000, 0.0000]]]])
    """
    size = 2 * radius + 1
    high = torch.nn.functional.max_pool2d(target, size, stride=1, padding=radius)
    low = -torch.nn.functional.max_pool2d(-target, size, stride=1, padding=radius)
    big = tuple(estimate.shape[-2:])
    high = torch.nn.functional.interpolate(high, size=big, mode="nearest-exact")
    low = torch.nn.functional.interpolate(low, size=big, mode="nearest-exact")
    return torch.minimum(torch.maximum(estimate, low), high)


def clamp_to_input_range(estimate: torch.Tensor, target: torch.Tensor,
                         valid: torch.Tensor | None = None) -> torch.Tensor:
    """Clip each band of the output to the range of that band's valid measured pixels.

    Parameters
    ----------
    estimate:
        ``(1, c, H, W)`` float32 result.
    target:
        ``(1, c, h, w)`` float32 measurement, same units.
    valid:
        ``(1, 1, h, w)``, nonzero at the measured pixels that count (all when None).

    Examples
    --------
    >>> low = torch.tensor([[[[0.0, 1.0, 5.0]]]])
    >>> high = torch.tensor([[[[-0.2, 0.1, 1.3, 1.1]]]])
    >>> clamp_to_input_range(high, low, valid=torch.tensor([[[[1, 1, 0]]]]))
    tensor([[[[0.0000, 0.1000, 1.0000, 1.0000]]]])
    """
    values = target.flatten(2)                                       # (1, c, h*w)
    keep = (torch.ones_like(target[:, :1], dtype=torch.bool) if valid is None
            else valid != 0).flatten(2)
    low = torch.where(keep, values, torch.full_like(values, float("inf"))).amin(dim=2)
    high = torch.where(keep, values, torch.full_like(values, -float("inf"))).amax(dim=2)
    return torch.minimum(torch.maximum(estimate, low[..., None, None]), high[..., None, None])


@torch.no_grad()
def network_estimate(net: CMSRNet, target_up: torch.Tensor, guide: torch.Tensor, *,
                     config: Config, guide_weight: float = 1.0) -> torch.Tensor:
    """The network's output for ``target_up`` with ``guide`` (both ``(1, ., H, W)`` in
    unit range), ``(1, c, H, W)`` float32: the self-ensemble when ``config`` asks for
    it, else one pass; ``guide_weight`` 0 runs the guide-free network (the guide gives
    only the size), between 0 and 1 a blend."""
    source = guide if guide_weight > 0 else None
    if config.self_ensemble:
        return self_ensemble(net, target_up, source, tile_size=config.tile_size,
                             guide_weight=guide_weight)
    return run_network(net, target_up, source, tile_size=config.tile_size,
                       guide_weight=guide_weight)


@torch.no_grad()
def predict(net: CMSRNet, target: torch.Tensor, guide: torch.Tensor, *, config: Config,
            valid: torch.Tensor | None = None, guide_weight: float = 1.0) -> torch.Tensor:
    """Super-resolve ``target (1, c, h, w)`` with ``guide (1, C, H, W)``.

    Both in unit range; returns ``(1, c, H, W)`` float32 in the same units as
    ``target``. Uses self-ensemble and back-projection as ``config`` says.
    ``guide_weight`` scales the guide branch: 0 runs the guide-free network (the guide
    gives only the size), between 0 and 1 a blend (see :mod:`cmsr.method.self_check`).
    """
    net.eval()
    target_up = upsample_bicubic(target, guide.shape[-2:])
    estimate = network_estimate(net, target_up, guide, config=config,
                                guide_weight=guide_weight)
    return back_project(estimate, target, iterations=config.back_projection_iters,
                        kernel=config.degradation, valid=valid)
