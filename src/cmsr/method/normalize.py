"""Between the user's arrays (own units, own dtype) and the network's tensors.

The target is mapped to [0, 1] by the range of its valid pixels and mapped back at the
end, so results keep their units (disparity, kelvin, digital numbers) and dtype.
Invalid target pixels (NaN, or a user-given value such as 0 in depth maps) are filled
from their valid neighbours before training and left out of the loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from cmsr.method.validate import check_mask


@dataclass(frozen=True)
class Normalization:
    """An affine map ``unit = (value - offset) / span`` and the array form to return to.

    ``dtype``: the target's dtype; ``band_axis``: whether it had a band axis
    ``(H, W, c)`` (kept even when ``c == 1``).
    """

    offset: float
    span: float
    dtype: np.dtype
    band_axis: bool = False

    def to_unit(self, image: np.ndarray) -> torch.Tensor:
        """``(H, W)`` or ``(H, W, c)`` array in its units -> ``(1, c, H, W)`` float32."""
        array = (np.asarray(image, dtype=np.float64) - self.offset) / self.span
        return array_to_tensor(array)

    def from_unit(self, tensor: torch.Tensor) -> np.ndarray:
        """``(1, c, H, W)`` tensor in unit range -> ``(H, W[, c])`` in the stored units.

        Integer dtypes are rounded and clipped to their range; floats keep their
        precision (float64 stays float64, anything else becomes float32).
        """
        array = tensor_to_array(tensor, band_axis=self.band_axis).astype(np.float64)
        return to_dtype(array * self.span + self.offset, self.dtype)


def fit_normalization(image: np.ndarray, valid: np.ndarray | None = None) -> Normalization:
    """The map that sends the valid pixels of ``image`` onto [0, 1].

    Parameters
    ----------
    image:
        ``(H, W)`` or ``(H, W, c)``, any real dtype.
    valid:
        ``(H, W)`` bool, True where a pixel counts; all finite pixels when None.
    """
    values = np.asarray(image, dtype=np.float64)
    keep = np.isfinite(values) if values.ndim == 2 else np.isfinite(values).all(axis=-1)
    if valid is not None:
        keep = keep & valid
    chosen = values[keep]
    low, high = float(chosen.min()), float(chosen.max())
    span = high - low if high > low else 1.0
    return Normalization(offset=low, span=span, dtype=result_dtype(image.dtype),
                         band_axis=values.ndim == 3)


def result_dtype(dtype: np.dtype | type) -> np.dtype:
    """The dtype of a result for a target of ``dtype``: integers keep theirs (bool becomes
    ``uint8``), float64 stays float64, any other float becomes float32.

    Examples
    --------
    >>> result_dtype(np.uint16), result_dtype(np.bool_), result_dtype(np.float16)
    (dtype('uint16'), dtype('uint8'), dtype('float32'))
    """
    dtype = np.dtype(dtype)
    if dtype == np.bool_:
        return np.dtype(np.uint8)
    if np.issubdtype(dtype, np.integer) or dtype == np.float64:
        return dtype
    return np.dtype(np.float32)


def clip_to_dtype(values: np.ndarray, dtype: np.dtype | type) -> np.ndarray:
    """``values`` clipped to the range ``dtype`` can hold when it is an integer type (bool:
    [0, 1]); unchanged for floating types. The values keep their own dtype.

    Floating-point values are clipped to the nearest floats inside the range, so the
    cast that follows never wraps around: ``float(2**63 - 1)`` is ``2**63``, which
    int64 cannot hold, so int64 gets ``2**63 - 1024``.

    Examples
    --------
    >>> clip_to_dtype(np.array([-1e30, 1e30]), np.int64).astype(np.int64).tolist()
    [-9223372036854775808, 9223372036854774784]
    """
    dtype = np.dtype(dtype)
    if dtype == np.bool_:
        return np.clip(values, 0, 1)
    if not np.issubdtype(dtype, np.integer):
        return values
    info = np.iinfo(dtype)
    array = np.asarray(values)
    if array.dtype.kind != "f":
        return np.clip(array, info.min, info.max)
    low, high = array.dtype.type(info.min), array.dtype.type(info.max)
    if int(low) < info.min:
        low = np.nextafter(low, array.dtype.type(np.inf))
    if int(high) > info.max:
        high = np.nextafter(high, array.dtype.type(-np.inf))
    return np.clip(array, low, high)


def to_dtype(values: np.ndarray, dtype: np.dtype | type) -> np.ndarray:
    """``values`` (real numbers) cast to :func:`result_dtype` of ``dtype``: integers rounded
    and clipped to their range; float64 kept, other floats float32.

    Examples
    --------
    >>> to_dtype(np.array([-3.0, 2.5, 2.6, 300.0]), np.uint8).tolist()
    [0, 2, 3, 255]
    """
    target = result_dtype(dtype)
    if np.issubdtype(target, np.integer):
        return clip_to_dtype(np.rint(values), target).astype(target)
    return np.asarray(values).astype(target)


def array_to_tensor(image: np.ndarray, dtype: type = np.float32) -> torch.Tensor:
    """``(H, W)`` or ``(H, W, c)`` array -> ``(1, c, H, W)`` tensor of ``dtype`` (float32 by
    default; no scaling)."""
    array: np.ndarray = np.asarray(image, dtype=dtype)
    if array.ndim == 2:
        array = array[:, :, None]
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))[None]


def tensor_to_array(tensor: torch.Tensor, *, band_axis: bool = False) -> np.ndarray:
    """``(1, c, H, W)`` tensor -> ``(H, W, c)`` float32; ``(H, W)`` when c == 1, unless
    ``band_axis`` (then ``(H, W, 1)``)."""
    array = tensor.detach().float().cpu().numpy()[0].transpose(1, 2, 0)
    return array[:, :, 0] if array.shape[2] == 1 and not band_axis else array


def valid_mask(image: np.ndarray, invalid_value: float | None = None) -> np.ndarray:
    """``(H, W)`` bool: True where every band is finite and differs from ``invalid_value``."""
    values = np.asarray(image, dtype=np.float64)
    bad = ~np.isfinite(values)
    if invalid_value is not None:
        bad |= values == invalid_value
    return np.logical_not(bad if bad.ndim == 2 else bad.any(axis=-1))


def fill_invalid(image: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Fill invalid pixels by growing the valid ones inwards, 3x3 averages at a time.

    Parameters
    ----------
    image:
        ``(1, c, H, W)`` float; values at invalid pixels are ignored (may be NaN).
    valid:
        ``(1, 1, H, W)`` bool with at least one True.

    Returns
    -------
    ``(1, c, H, W)`` float with valid pixels unchanged and every pixel finite.
    """
    known = valid.to(image.dtype)
    filled = torch.where(valid, image, torch.zeros_like(image))
    while bool((known == 0).any()):
        total = F.avg_pool2d(filled * known, 3, stride=1, padding=1, count_include_pad=False)
        weight = F.avg_pool2d(known, 3, stride=1, padding=1, count_include_pad=False)
        grown = weight > 0
        update = grown & (known == 0)
        filled = torch.where(update, total / weight.clamp(min=1e-12), filled)
        known = torch.where(update, torch.ones_like(known), known)
    return filled


def normalize_guide(guide: np.ndarray) -> torch.Tensor:
    """``(H, W)`` or ``(H, W, C)`` guide in any units -> ``(1, C, H, W)`` float32 in [0, 1].

    One range for all bands (their minimum and maximum), so colour ratios are kept.
    """
    return fit_normalization(guide).to_unit(guide).clamp(0.0, 1.0)


def measured_target(target_lr: np.ndarray, mask: np.ndarray | None, invalid_value: float | None
              ) -> tuple[np.ndarray, np.ndarray]:
    """``(masked, valid)``: the target as float64 with NaN where invalid (NaN, equal to
    ``invalid_value`` or outside ``mask``), and ``(h, w)`` bool validity."""
    valid = valid_mask(target_lr, invalid_value)
    if mask is not None:
        valid &= check_mask(mask, valid.shape)
    masked = np.where(valid[..., None] if np.ndim(target_lr) == 3 else valid,
                      np.asarray(target_lr, dtype=np.float64), np.nan)
    return masked, valid


def target_tensors(masked: np.ndarray, valid: np.ndarray, normalization: Normalization,
                    device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """``(target, valid)``: ``(1, c, h, w)`` unit range with invalid pixels filled from
    their neighbours, and ``(1, 1, h, w)`` float {0, 1}."""
    target = normalization.to_unit(np.nan_to_num(masked, nan=0.0)).to(device)
    valid_t = torch.from_numpy(valid)[None, None].to(device)
    return fill_invalid(target, valid_t), valid_t.float()
