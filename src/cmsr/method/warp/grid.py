"""Sampling grids in normalized image coordinates.

Convention used by the whole :mod:`cmsr.method.warp` package: a point is ``(x, y)`` with
``x`` first, in normalized coordinates where ``-1`` and ``+1`` are the *outer edges*
of the border pixels (``align_corners=False``, as in
:func:`torch.nn.functional.grid_sample`). The centre of pixel column ``i`` of an
image ``W`` pixels wide is at ``x = (2 i + 1) / W - 1``; one pixel is ``2 / W``
wide.

A sampling grid ``(B, H, W, 2)`` holds, for every output pixel, the point of the
input image it samples (a *backward* mapping).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

SAMPLE_MODES = ("bilinear", "bicubic", "nearest")
PADDING_MODES = ("border", "zeros", "reflection")


def pixel_centers(
    size: int, *, device: torch.device | str | None = None, dtype: torch.dtype = torch.float32
) -> Tensor:
    """Normalized coordinates of the pixel centres along one image axis.

    Parameters
    ----------
    size:
        Number of pixels along the axis, ``>= 1``.
    device, dtype:
        Placement of the result.

    Returns
    -------
    Tensor
        ``(size,)`` values ``(2 i + 1) / size - 1`` in ``(-1, 1)``.
    """
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    centres = (torch.arange(size, dtype=torch.float64) * 2.0 + 1.0) / size - 1.0
    return centres.to(device=device, dtype=dtype)


def identity_grid(
    height: int,
    width: int,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """The sampling grid that reproduces an image unchanged.

    Parameters
    ----------
    height, width:
        Output size in pixels, each ``>= 1``.
    device, dtype:
        Placement of the result.

    Returns
    -------
    Tensor
        ``(1, height, width, 2)`` pixel centres ``(x, y)`` in ``(-1, 1)``, x first,
        ``align_corners=False`` convention.
    """
    ys = pixel_centers(height, device=device, dtype=dtype)
    xs = pixel_centers(width, device=device, dtype=dtype)
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack((grid_x, grid_y), dim=-1).unsqueeze(0)


def sample(
    image: Tensor,
    grid: Tensor,
    *,
    mode: str = "bilinear",
    padding_mode: str = "border",
) -> Tensor:
    """Sample ``image`` at the points of ``grid`` (thin wrapper on ``grid_sample``).

    Parameters
    ----------
    image:
        ``(B, C, H_in, W_in)`` floating point.
    grid:
        ``(B, H, W, 2)`` or ``(1, H, W, 2)`` (broadcast over the batch) points
        ``(x, y)`` in normalized coordinates, x first; points outside ``[-1, 1]``
        are handled by ``padding_mode``. Cast to ``image.dtype``.
    mode:
        ``"bilinear"``, ``"bicubic"`` or ``"nearest"``.
    padding_mode:
        ``"border"`` (default), ``"zeros"`` or ``"reflection"``.

    Returns
    -------
    Tensor
        ``(B, C, H, W)`` in the dtype of ``image``.
    """
    if image.dim() != 4:
        raise ValueError(f"image must be (B, C, H, W), got shape {tuple(image.shape)}")
    if grid.dim() != 4 or grid.shape[-1] != 2:
        raise ValueError(f"grid must be (B, H, W, 2), got shape {tuple(grid.shape)}")
    if mode not in SAMPLE_MODES:
        raise ValueError(f"mode must be one of {SAMPLE_MODES}, got {mode!r}")
    if padding_mode not in PADDING_MODES:
        raise ValueError(f"padding_mode must be one of {PADDING_MODES}, got {padding_mode!r}")
    batch = image.shape[0]
    if grid.shape[0] != batch:
        if grid.shape[0] != 1:
            raise ValueError(
                f"grid batch {grid.shape[0]} does not match image batch {batch} (nor is 1)"
            )
        grid = grid.expand(batch, -1, -1, -1)
    return F.grid_sample(
        image,
        grid.to(image.dtype),
        mode=mode,
        padding_mode=padding_mode,
        align_corners=False,
    )


def spanning_grid(
    height: int,
    width: int,
    coarse_height: int,
    coarse_width: int,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """A coarse grid spanning the pixel centres of a ``height x width`` image.

    ``coarse_width`` points evenly spaced from the first to the last pixel centre
    along x (``-1 + 1/width`` to ``1 - 1/width``), likewise along y, so that
    :func:`upsample_displacement` interpolates without extrapolating. Equal to
    :func:`identity_grid` when the coarse size equals the image size.

    Parameters
    ----------
    height, width:
        Size of the full-resolution image, each ``>= 1``.
    coarse_height, coarse_width:
        Number of coarse points per axis, each ``>= 2`` (or equal to the full size).

    Returns
    -------
    Tensor
        ``(1, coarse_height, coarse_width, 2)`` points ``(x, y)``, x first.
    """

    def axis(size: int, count: int) -> Tensor:
        if count == size:
            return pixel_centers(size, device=device, dtype=dtype)
        if count < 2:
            raise ValueError(f"a coarse grid needs >= 2 points per axis, got {count}")
        edge = 1.0 - 1.0 / size
        return torch.linspace(-edge, edge, count, dtype=torch.float64).to(device, dtype)

    grid_y, grid_x = torch.meshgrid(
        axis(height, coarse_height), axis(width, coarse_width), indexing="ij"
    )
    return torch.stack((grid_x, grid_y), dim=-1).unsqueeze(0)


def upsample_displacement(displacement: Tensor, height: int, width: int) -> Tensor:
    """Bilinearly resize a displacement field given on a :func:`spanning_grid`.

    Parameters
    ----------
    displacement:
        ``(B, h, w, 2)`` offsets ``(dx, dy)`` in normalized units at the points of
        ``spanning_grid(height, width, h, w)`` (corner samples on the outermost
        pixel centres of the target).
    height, width:
        Target size.

    Returns
    -------
    Tensor
        ``(B, height, width, 2)``: the field bilinearly interpolated at the pixel
        centres of the target (exact at the coarse points, no extrapolation).
        Normalized units need no rescaling.
    """
    if displacement.dim() != 4 or displacement.shape[-1] != 2:
        raise ValueError(
            f"displacement must be (B, h, w, 2), got shape {tuple(displacement.shape)}"
        )
    if displacement.shape[1:3] == (height, width):
        return displacement
    field = displacement.permute(0, 3, 1, 2)
    field = F.interpolate(field, size=(height, width), mode="bilinear", align_corners=True)
    return field.permute(0, 2, 3, 1)


def as_point_rows(points: Tensor) -> Tensor:
    """View points ``(..., 2)`` as rows ``(N, 2)``; raises on a wrong last axis."""
    if points.dim() < 1 or points.shape[-1] != 2:
        raise ValueError(f"points must have shape (..., 2), got {tuple(points.shape)}")
    return points.reshape(-1, 2)
