"""Antialiased resizing in torch, as MATLAB's ``imresize`` does it.

Every resize here is a pair of dense matrices, one per axis: ``out = Wy @ image @ Wx.T``.
That makes it differentiable in the image, exact for any output size (non-integer
scales, different in x and y), and cheap for the image sizes cmsr works with.

The weights follow MATLAB's ``imresize``: output pixel ``i`` (1-based) is centred at
``u = i / s + 0.5 * (1 - 1 / s)`` in input pixels, where ``s = out / in``; the kernel is
widened by ``1 / s`` when shrinking (antialiasing); borders are mirrored
(symmetric padding). Shrinking with ``kernel="box"`` integrates each output pixel's
footprint exactly (average pooling for integer factors).

All functions take and return ``(B, C, H, W)`` floating tensors; values keep their
units (no clipping), so cubic resizing may overshoot the input's range slightly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal, get_args

import torch

Kernel = Literal["cubic", "linear", "box"]
Degradation = Literal["cubic", "box", "cubic-aliased", "linear-aliased"]
"""How a sensor reduces the scene: antialiased ``"cubic"`` (MATLAB, ZSSR, CMSR),
``"box"`` (area average, a pixel integrating its footprint), or ``"cubic-aliased"`` /
``"linear-aliased"`` (interpolation at the low-resolution pixel centres without
widening the kernel, as ``cv2.resize`` and PIL's ``reduce=None`` do)."""
DEGRADATION_NAMES: tuple[str, ...] = get_args(Degradation)
DegradationKernel = Degradation | tuple[tuple[float, ...], ...]

KERNEL_WIDTHS: dict[str, float] = {"cubic": 4.0, "linear": 2.0, "box": 1.0}
#: The interpolation kernel of each degradation without antialiasing.
_ALIASED: dict[str, Kernel] = {"cubic-aliased": "cubic", "linear-aliased": "linear"}


def cubic(x: torch.Tensor) -> torch.Tensor:
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB's ``"bicubic"``).

    Parameters
    ----------
    x:
        Distances in pixels, any shape, float64 or float32.

    Returns
    -------
    Kernel values, same shape; 1 at 0, 0 at every other integer, 0 beyond ``|x| = 2``.
    """
    ax = x.abs()
    ax2 = ax * ax
    ax3 = ax2 * ax
    near = (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1)
    far = (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * ((ax > 1) & (ax <= 2))
    return near + far


def linear(x: torch.Tensor) -> torch.Tensor:
    """Triangle kernel, ``max(0, 1 - |x|)``."""
    return (1.0 - x.abs()).clamp(min=0.0)


def box(x: torch.Tensor) -> torch.Tensor:
    """Box kernel: 1 on ``[-0.5, 0.5)``, else 0 (MATLAB's ``"box"``)."""
    return ((x >= -0.5) & (x < 0.5)).to(x.dtype)


_KERNELS = {"cubic": cubic, "linear": linear, "box": box}


def resize_matrix(
    in_length: int,
    out_length: int,
    *,
    kernel: Kernel = "cubic",
    antialias: bool = True,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Weights that resize one axis from ``in_length`` to ``out_length`` samples.

    Parameters
    ----------
    in_length, out_length:
        Number of pixels along the axis before and after, both >= 1.
    kernel:
        ``"cubic"``, ``"linear"`` or ``"box"``.
    antialias:
        Widen the kernel by ``in / out`` when shrinking, as MATLAB does.

    Returns
    -------
    ``(out_length, in_length)`` tensor of ``dtype``; each row sums to 1.

    Examples
    --------
    >>> resize_matrix(4, 2, kernel="box")
    tensor([[0.5000, 0.5000, 0.0000, 0.0000],
            [0.0000, 0.0000, 0.5000, 0.5000]])
    """
    if in_length < 1 or out_length < 1:
        raise ValueError(f"lengths must be >= 1, got {in_length} -> {out_length}")
    if kernel not in _KERNELS:
        raise ValueError(f"unknown kernel {kernel!r}; choose from {sorted(_KERNELS)}")
    scale = out_length / in_length
    if kernel == "box" and antialias and scale < 1.0:
        return area_matrix(in_length, out_length).to(device=device, dtype=dtype)
    function = _KERNELS[kernel]
    width = KERNEL_WIDTHS[kernel]
    shrink = antialias and scale < 1.0
    if shrink:
        width = width / scale

    out_index = torch.arange(1, out_length + 1, dtype=torch.float64)
    centre = out_index / scale + 0.5 * (1.0 - 1.0 / scale)
    left = torch.floor(centre - width / 2.0)
    taps = math.ceil(width) + 2
    index = left[:, None] + torch.arange(taps, dtype=torch.float64)[None, :]
    distance = centre[:, None] - index
    weights = scale * function(scale * distance) if shrink else function(distance)
    weights = weights / weights.sum(dim=1, keepdim=True)

    # Mirror out-of-range taps back into [0, in_length - 1] (symmetric padding).
    zero_based = (index - 1).long()
    period = 2 * in_length
    folded = torch.remainder(zero_based, period)
    folded = torch.where(folded >= in_length, period - 1 - folded, folded)

    matrix = torch.zeros(out_length, in_length, dtype=torch.float64)
    matrix.scatter_add_(1, folded, weights)
    return matrix.to(device=device, dtype=dtype)


def area_matrix(in_length: int, out_length: int) -> torch.Tensor:
    """Weights that average each output pixel's footprint exactly, for shrinking.

    Output pixel ``i`` covers input interval ``[i, i + 1) * in / out``; each input pixel
    is weighted by its overlap with it. Returns ``(out_length, in_length)`` float64,
    rows summing to 1; for integer factors this is average pooling.
    """
    ratio = in_length / out_length
    lower = torch.arange(out_length, dtype=torch.float64)[:, None] * ratio
    upper = lower + ratio
    left = torch.arange(in_length, dtype=torch.float64)[None, :]
    overlap = (torch.minimum(upper, left + 1) - torch.maximum(lower, left)).clamp(min=0.0)
    return overlap / overlap.sum(dim=1, keepdim=True)


def resize(
    image: torch.Tensor,
    size: Sequence[int],
    *,
    kernel: Kernel = "cubic",
    antialias: bool = True,
) -> torch.Tensor:
    """Resize ``(B, C, H, W)`` float images to ``size = (height, width)``.

    Differentiable in ``image``. Values keep their units; cubic may overshoot.

    Examples
    --------
    >>> x = torch.arange(16.0).reshape(1, 1, 4, 4)
    >>> resize(x, (2, 2), kernel="box")
    tensor([[[[ 2.5000,  4.5000],
              [10.5000, 12.5000]]]])
    """
    if image.ndim != 4:
        raise ValueError(f"expected (B, C, H, W), got shape {tuple(image.shape)}")
    height, width = int(size[0]), int(size[1])
    in_height, in_width = image.shape[-2:]
    dtype = image.dtype if image.dtype in (torch.float32, torch.float64) else torch.float32
    out = image.to(dtype)
    if (height, width) == (in_height, in_width):
        return out
    rows = resize_matrix(in_height, height, kernel=kernel, antialias=antialias,
                         device=image.device, dtype=dtype)
    cols = resize_matrix(in_width, width, kernel=kernel, antialias=antialias,
                         device=image.device, dtype=dtype)
    return rows @ out @ cols.T


def upsample_bicubic(image: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Bicubic enlargement of ``(B, C, h, w)`` to ``(B, C, *size)``, MATLAB-style."""
    return resize(image, size, kernel="cubic")


def downsample(image: torch.Tensor, size: Sequence[int], *,
               kernel: DegradationKernel | Kernel = "cubic") -> torch.Tensor:
    """Reduction of ``(B, C, H, W)`` to ``(B, C, *size)`` by a degradation.

    ``kernel="cubic"`` is MATLAB's antialiased ``imresize`` (ZSSR's and CMSR's
    degradation); ``kernel="box"`` integrates each output pixel over its footprint
    (see :func:`area_matrix`): average pooling for integer factors, a sensor pixel's
    response; ``"cubic-aliased"`` / ``"linear-aliased"`` interpolate at the output
    pixel centres without antialiasing. A ``(k, k)`` nested tuple is a blur kernel in
    input pixels (see :func:`blur_and_sample`).

    Examples
    --------
    >>> x = torch.arange(16.0).reshape(1, 1, 4, 4)
    >>> downsample(x, (2, 2), kernel="linear-aliased")
    tensor([[[[ 2.5000,  4.5000],
              [10.5000, 12.5000]]]])
    """
    if isinstance(kernel, tuple):
        return blur_and_sample(image, size, torch.tensor(kernel, dtype=image.dtype))
    if kernel == "cubic-aliased" or kernel == "linear-aliased":
        return resize(image, size, kernel=_ALIASED[kernel], antialias=False)
    return resize(image, size, kernel=kernel)


def blur_and_sample(image: torch.Tensor, size: Sequence[int], kernel: torch.Tensor
                    ) -> torch.Tensor:
    """Blur ``(B, C, H, W)`` by ``kernel (k, k)`` and read it at ``size``'s pixel centres.

    The kernel (in input pixels, normalised to sum 1, mirrored borders) is centred on
    each output pixel's centre; where that centre falls between input pixels the
    blurred image is read bilinearly. Differentiable in ``image``.

    Examples
    --------
    >>> x = torch.arange(16.0).reshape(1, 1, 4, 4)
    >>> blur_and_sample(x, (2, 2), torch.ones(2, 2))
    tensor([[[[ 2.5000,  4.5000],
              [10.5000, 12.5000]]]])
    """
    kernel = kernel / kernel.sum()
    k_h, k_w = kernel.shape
    batch, channels, height, width = image.shape
    padded = torch.nn.functional.pad(
        image.reshape(batch * channels, 1, height, width),
        ((k_w - 1) // 2, k_w // 2, (k_h - 1) // 2, k_h // 2), mode="replicate")
    blurred = torch.nn.functional.conv2d(padded, kernel.flip(0, 1)[None, None])
    # an even kernel's centre lies half a pixel after its index (k - 1) // 2
    shift_y, shift_x = (0.5 if k_h % 2 == 0 else 0.0), (0.5 if k_w % 2 == 0 else 0.0)
    out_h, out_w = int(size[0]), int(size[1])
    ys = (torch.arange(out_h, dtype=image.dtype) + 0.5) * height / out_h - 0.5 - shift_y
    xs = (torch.arange(out_w, dtype=image.dtype) + 0.5) * width / out_w - 0.5 - shift_x
    grid_y = (2 * ys + 1) / height - 1
    grid_x = (2 * xs + 1) / width - 1
    grid = torch.stack(torch.meshgrid(grid_y, grid_x, indexing="ij")[::-1], dim=-1)
    sampled = torch.nn.functional.grid_sample(
        blurred, grid[None].expand(batch * channels, -1, -1, -1).to(image.device),
        mode="bilinear", padding_mode="border", align_corners=False)
    return sampled.reshape(batch, channels, out_h, out_w)


def scaled_size(size: tuple[int, int], scale: tuple[float, float]) -> tuple[int, int]:
    """``(height, width)`` times ``(scale_y, scale_x)``, rounded to the nearest pixel.

    Examples
    --------
    >>> scaled_size((80, 60), (4.0, 4.0))
    (320, 240)
    """
    return (max(1, round(size[0] * scale[0])), max(1, round(size[1] * scale[1])))
