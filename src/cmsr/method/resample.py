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
    folded, weights = _taps(in_length, out_length, 0, out_length, kernel, antialias)
    matrix = torch.zeros(out_length, in_length, dtype=torch.float64)
    matrix.scatter_add_(1, folded, weights)
    return matrix.to(device=device, dtype=dtype)


def _taps(in_length: int, out_length: int, start: int, stop: int, kernel: Kernel,
          antialias: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Input indices (0-based, mirrored into the axis) and weights of output samples
    ``start..stop-1`` of a resize from ``in_length`` to ``out_length``; each
    ``(stop - start, taps)``, weights float64 summing to 1 per row."""
    scale = out_length / in_length
    function = _KERNELS[kernel]
    width = KERNEL_WIDTHS[kernel]
    shrink = antialias and scale < 1.0
    if shrink:
        width = width / scale

    out_index = torch.arange(start + 1, stop + 1, dtype=torch.float64)
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
    return folded, weights


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
    out_h, out_w = int(size[0]), int(size[1])
    height, width = image.shape[-2:]
    ys = (torch.arange(out_h, dtype=image.dtype) + 0.5) * height / out_h - 0.5
    xs = (torch.arange(out_w, dtype=image.dtype) + 0.5) * width / out_w - 0.5
    return _blur_and_read(image, kernel, ys, xs)


def _blur_and_read(image: torch.Tensor, kernel: torch.Tensor, ys: torch.Tensor,
                   xs: torch.Tensor) -> torch.Tensor:
    """Blur ``(B, C, H, W)`` by ``kernel (k, k)`` (normalised, mirrored borders) and read
    it bilinearly at rows ``ys`` and columns ``xs`` (pixel centres of ``image``, 0-based),
    the kernel centred there; returns ``(B, C, len(ys), len(xs))``."""
    kernel = kernel / kernel.sum()
    k_h, k_w = kernel.shape
    batch, channels, height, width = image.shape
    padded = torch.nn.functional.pad(
        image.reshape(batch * channels, 1, height, width),
        ((k_w - 1) // 2, k_w // 2, (k_h - 1) // 2, k_h // 2), mode="replicate")
    blurred = torch.nn.functional.conv2d(padded, kernel.flip(0, 1)[None, None])
    # an even kernel's centre lies half a pixel after its index (k - 1) // 2
    shift_y, shift_x = (0.5 if k_h % 2 == 0 else 0.0), (0.5 if k_w % 2 == 0 else 0.0)
    grid_y = (2 * (ys - shift_y) + 1) / height - 1
    grid_x = (2 * (xs - shift_x) + 1) / width - 1
    grid = torch.stack(torch.meshgrid(grid_y, grid_x, indexing="ij")[::-1], dim=-1)
    sampled = torch.nn.functional.grid_sample(
        blurred, grid[None].expand(batch * channels, -1, -1, -1).to(image.device),
        mode="bilinear", padding_mode="border", align_corners=False)
    return sampled.reshape(batch, channels, len(ys), len(xs))


# --------------------------------------------------------------------------- windows

Box = tuple[int, int, int, int]
"""A window ``(top, bottom, left, right)`` of a grid: rows ``top..bottom-1`` and
columns ``left..right-1``, 0-based."""


def window_matrix(in_length: int, out_length: int, in_window: tuple[int, int],
                  out_window: tuple[int, int], *, kernel: Kernel = "cubic",
                  antialias: bool = True, device: torch.device | str | None = None,
                  dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Rows ``out_window`` of :func:`resize_matrix` on columns ``in_window`` only.

    Taps falling outside ``in_window`` are moved to its nearest column (replicated
    border), so every row whose taps all lie inside the window equals
    :func:`resize_matrix`'s row exactly; rows near the window's edge are approximate
    (unless the window's edge is the axis's own, where the mirroring is the same).

    Returns
    -------
    ``(out_stop - out_start, in_stop - in_start)`` tensor of ``dtype``; rows sum to 1.

    Examples
    --------
    >>> full = resize_matrix(8, 16, dtype=torch.float64)
    >>> part = window_matrix(8, 16, (2, 8), (8, 12), dtype=torch.float64)
    >>> bool(torch.allclose(part, full[8:12, 2:8]))
    True
    """
    start, stop = in_window
    first, last = out_window
    columns = stop - start
    if columns < 1 or last <= first:
        raise ValueError(f"empty window: {in_window} -> {out_window}")
    if kernel == "box" and antialias and out_length < in_length:
        ratio = in_length / out_length
        lower = torch.arange(out_length, dtype=torch.float64)[first:last, None] * ratio
        upper = lower + ratio
        left = torch.arange(start, stop, dtype=torch.float64)[None, :]
        overlap = (torch.minimum(upper, left + 1) - torch.maximum(lower, left)).clamp(min=0.0)
        overlap[:, 0] += (upper[:, 0].clamp(max=start) - lower[:, 0]).clamp(min=0.0)
        overlap[:, -1] += (upper[:, 0] - lower[:, 0].clamp(min=stop)).clamp(min=0.0)
        matrix = overlap / overlap.sum(dim=1, keepdim=True)
    else:
        folded, weights = _taps(in_length, out_length, first, last, kernel, antialias)
        matrix = torch.zeros(last - first, columns, dtype=torch.float64)
        matrix.scatter_add_(1, (folded - start).clamp(0, columns - 1), weights)
    return matrix.to(device=device, dtype=dtype)


def resize_window(image: torch.Tensor, full_in: Sequence[int], full_out: Sequence[int],
                  origin: Sequence[int], box: Box, *, kernel: Kernel = "cubic",
                  antialias: bool = True) -> torch.Tensor:
    """The window ``box`` of ``resize(whole, full_out)``, from a window of ``whole`` alone.

    Parameters
    ----------
    image:
        ``(B, C, h, w)`` float: rows ``origin[0]..+h`` and columns ``origin[1]..+w`` of
        an image of size ``full_in``.
    full_in, full_out:
        ``(height, width)`` of the whole image before and after resizing.
    box:
        The output window to compute, on the ``full_out`` grid (see :data:`Box`).

    Returns
    -------
    ``(B, C, bottom - top, right - left)``: exactly :func:`resize`'s values where the
    kernel's taps lie inside ``image`` (see :func:`window_matrix`).
    """
    height, width = image.shape[-2:]
    dtype = image.dtype if image.dtype in (torch.float32, torch.float64) else torch.float32
    rows = window_matrix(int(full_in[0]), int(full_out[0]), (origin[0], origin[0] + height),
                         (box[0], box[1]), kernel=kernel, antialias=antialias,
                         device=image.device, dtype=dtype)
    cols = window_matrix(int(full_in[1]), int(full_out[1]), (origin[1], origin[1] + width),
                         (box[2], box[3]), kernel=kernel, antialias=antialias,
                         device=image.device, dtype=dtype)
    return rows @ image.to(dtype) @ cols.T


def downsample_window(image: torch.Tensor, full_in: Sequence[int], full_out: Sequence[int],
                      origin: Sequence[int], box: Box, *,
                      kernel: DegradationKernel | Kernel = "cubic") -> torch.Tensor:
    """The window ``box`` of ``downsample(whole, full_out, kernel=kernel)`` from a window
    of ``whole`` (arguments as :func:`resize_window`); exact away from the window's edge."""
    if isinstance(kernel, tuple):
        full_h, full_w = int(full_in[0]), int(full_in[1])
        out_h, out_w = int(full_out[0]), int(full_out[1])
        ys = (torch.arange(box[0], box[1], dtype=image.dtype) + 0.5) * full_h / out_h - 0.5
        xs = (torch.arange(box[2], box[3], dtype=image.dtype) + 0.5) * full_w / out_w - 0.5
        return _blur_and_read(image, torch.tensor(kernel, dtype=image.dtype),
                              ys - origin[0], xs - origin[1])
    if kernel == "cubic-aliased" or kernel == "linear-aliased":
        return resize_window(image, full_in, full_out, origin, box,
                             kernel=_ALIASED[kernel], antialias=False)
    return resize_window(image, full_in, full_out, origin, box, kernel=kernel)


def scaled_size(size: tuple[int, int], scale: tuple[float, float]) -> tuple[int, int]:
    """``(height, width)`` times ``(scale_y, scale_x)``, rounded to the nearest pixel.

    Examples
    --------
    >>> scaled_size((80, 60), (4.0, 4.0))
    (320, 240)
    """
    return (max(1, round(size[0] * scale[0])), max(1, round(size[1] * scale[1])))
