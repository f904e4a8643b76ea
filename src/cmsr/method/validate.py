"""Checks on arrays before any work starts, with one-line errors: one rule for images
(:func:`check_array`, and for a pair :func:`check_image` and :func:`check_pair`) and one
for masks (:func:`check_mask`).

Each problem raises :class:`cmsr.errors.InputError` naming the file (or ``"target"`` /
``"guide"`` for arrays) and what is wrong with it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cmsr.errors import InputError, describe_shape

MAX_BANDS = 16
MIN_SIDE = 4
MAX_SCALE = 16.0
MAX_ANISOTROPY = 2.0


def check_array(image: Any, name: str, *, max_bands: int | None = None,
                min_side: int | None = None) -> np.ndarray:
    """``image`` as an array, checked to be an image: ``(H, W)`` or ``(H, W, C)``, not empty,
    at most ``max_bands`` bands and ``min_side`` pixels a side (when given), real numbers
    (integer, float or bool). Values are not looked at.

    Examples
    --------
    >>> check_array([[1, 2], [3, 4]], "image").shape
    (2, 2)
    >>> check_array(np.zeros(3), "truth")
    Traceback (most recent call last):
    ...
    cmsr.errors.InputError: truth: expected (H, W) or (H, W, C), got shape (3,)
    """
    array = np.asarray(image)
    if array.ndim not in (2, 3):
        raise InputError(f"expected (H, W) or (H, W, C), got shape {array.shape}", source=name)
    if array.size == 0:
        raise InputError(f"is empty (shape {array.shape})", source=name)
    if max_bands is not None and array.ndim == 3 and array.shape[2] > max_bands:
        raise InputError(f"has {array.shape[2]} bands; at most {max_bands} are supported",
                         source=name)
    if min_side is not None and min(array.shape[:2]) < min_side:
        raise InputError(f"is {describe_shape(array.shape)}: too small (each side needs at least "
                         f"{min_side} pixels)", source=name)
    if array.dtype.kind not in "biuf":  # not timedelta64 either, though NumPy counts it a number
        raise InputError(f"has unsupported dtype {array.dtype}; only real numbers (integer, "
                         "float or bool) are supported", source=name)
    return array


def check_mask(mask: Any, size: tuple[int, ...], *, of: str = "target",
               name: str = "mask") -> np.ndarray:
    """A mask as ``(H, W)`` bool, True at valid pixels: nonzero in ``(H, W)``, or in any band of
    ``(H, W, k)``; its size must be ``size[:2]``, the size of the image it belongs to (``of``).

    Examples
    --------
    >>> check_mask(np.array([[0, 2], [1, 0]]), (2, 2)).tolist()
    [[False, True], [True, False]]
    >>> check_mask(np.ones((4, 6)), (4, 5))
    Traceback (most recent call last):
    ...
    cmsr.errors.InputError: mask: the mask is 6x4 but the target is 5x4; they must ... size
    """
    valid = check_array(mask, name) != 0
    if valid.ndim == 3:
        valid = valid.any(axis=2)
    if valid.shape != tuple(size[:2]):
        raise InputError(f"the mask is {describe_shape(valid.shape)} but the {of} is "
                         f"{describe_shape(tuple(size[:2]))}; they must have the same size",
                         source=name)
    return valid


def check_image(image: np.ndarray, name: str, *, allow_nan: bool,
                valid: np.ndarray | None = None) -> None:
    """Shape, dtype and value checks for one image of a pair, ``(H, W)`` or ``(H, W, C)``:
    :func:`check_array`, a plausible size and band count, no infinite values, and some
    valid pixels that are not all the same.

    ``valid``: ``(H, W)`` bool, the pixels that count (e.g. not the ``invalid_value``,
    not masked out); NaN pixels never count. Whether any pixel is valid is asked before
    whether the valid ones are constant.

    Examples
    --------
    >>> check_image(np.full((8, 8), 77.0), "t.png", allow_nan=True,
    ...             valid=np.zeros((8, 8), bool))
    Traceback (most recent call last):
    ...
    cmsr.errors.InputError: t.png: has no valid pixels (all NaN or invalid)
    """
    if not isinstance(image, np.ndarray):
        raise InputError(f"expected a numpy array, got {type(image).__name__}", source=name)
    check_array(image, name, max_bands=MAX_BANDS, min_side=MIN_SIDE)
    values = np.asarray(image, dtype=np.float64)
    if np.isinf(values).any():
        raise InputError("contains infinite values", source=name)
    if np.isnan(values).any() and not allow_nan:
        raise InputError("contains NaN values", source=name)
    counted = np.isfinite(values)
    if valid is not None:
        counted &= valid[..., None] if values.ndim == 3 else valid
    finite = values[counted]
    if finite.size == 0:
        raise InputError("has no valid pixels (all NaN or invalid)", source=name)
    low, high = finite.min(), finite.max()
    if low == high:
        raise InputError(f"is constant (every valid pixel is {low:g}): "
                         "there is nothing to super-resolve", source=name)
    with np.errstate(over="ignore"):
        span = high - low
    if not np.isfinite(span):
        raise InputError(f"values range from {low:g} to {high:g}, too wide a range to compute "
                         "with (their difference overflows float64); rescale the image",
                         source=name)


def infer_scale(target_shape: tuple[int, ...], guide_shape: tuple[int, ...], *,
                target_name: str = "target", guide_name: str = "guide"
                ) -> tuple[float, float]:
    """``(scale_y, scale_x)`` = guide size / target size, checked for plausibility.

    Raises :class:`InputError` when the guide is smaller than the target, when the
    ratio is above 16 or below 1, or when x and y differ by more than a factor of 2.
    """
    (h, w), (gh, gw) = target_shape[:2], guide_shape[:2]
    sy, sx = gh / h, gw / w
    sizes = f"guide {describe_shape(guide_shape)} vs target {describe_shape(target_shape)}"
    if sy < 1 or sx < 1:
        raise InputError(f"is smaller than the target ({sizes})", source=guide_name)
    if sy < 1.01 and sx < 1.01:
        raise InputError(f"has the same size as the target ({sizes}); nothing to "
                         f"super-resolve (is {target_name} the ground truth?)", source=guide_name)
    if max(sy, sx) > MAX_SCALE:
        raise InputError(f"scale {max(sy, sx):.3g} is implausible ({sizes}); cmsr supports "
                         f"up to x{MAX_SCALE:g}", source=guide_name)
    if max(sy, sx) / min(sy, sx) > MAX_ANISOTROPY:
        raise InputError(f"scales differ in x ({sx:.3g}) and y ({sy:.3g}) by more than "
                         f"{MAX_ANISOTROPY:g}x ({sizes}); pass --scale to force one",
                         source=guide_name)
    return sy, sx


def check_scale(scale: float, name: str = "--scale") -> float:
    """A user-given scale: a number in (1, 16]."""
    if not np.isfinite(scale) or not 1.0 < scale <= MAX_SCALE:
        raise InputError(f"scale must be a number in (1, {MAX_SCALE:g}], got {scale}",
                         source=name)
    return float(scale)


def check_pair(target: np.ndarray, guide: np.ndarray, *, scale: float | None = None,
               target_name: str = "target", guide_name: str = "guide"
               ) -> tuple[float, float]:
    """Validate a pair; return ``(scale_y, scale_x)``.

    With ``scale`` given, the output is ``target size * scale`` and the guide may have
    any size at least that large or up to 2 pixels off (it is resized to fit); a scale
    so close to 1 that the output would keep the target's size is refused.
    """
    check_image(target, target_name, allow_nan=True)
    check_image(guide, guide_name, allow_nan=False)
    if scale is None:
        return infer_scale(target.shape, guide.shape, target_name=target_name,
                           guide_name=guide_name)
    scale = check_scale(scale)
    (h, w), (gh, gw) = target.shape[:2], guide.shape[:2]
    need = (round(h * scale), round(w * scale))
    if need == (h, w):
        raise InputError(f"{scale:g} x the {describe_shape(target.shape)} target rounds to the "
                         "same size; nothing to super-resolve", source="--scale")
    if gh < need[0] - 2 or gw < need[1] - 2:
        raise InputError(f"is {describe_shape(guide.shape)}, smaller than target x {scale:g} = "
                         f"{need[1]}x{need[0]}", source=guide_name)
    return scale, scale
