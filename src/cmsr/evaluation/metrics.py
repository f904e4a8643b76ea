"""Image-quality metrics for a super-resolved image against its ground truth.

Plain numpy functions, computed in float64, in the spirit of
:mod:`skimage.metrics` (which is *not* a dependency: everything here is numpy).

Every metric takes ``prediction`` and ``truth`` of the same shape, ``(H, W)`` or
``(H, W, C)``, any real dtype, in the data's own units (kelvin, millimetres, raw
counts...), and the same two keyword arguments:

``mask``
    Optional bool array ``(H, W)``; True marks a valid pixel to score. Pixels where
    any channel of ``truth`` is not finite (NaN, ±inf) are excluded automatically.
    A NaN in ``prediction`` at a valid pixel is *not* excluded: it makes the score
    NaN, because a broken prediction should not look good.
``crop``
    Number of border pixels removed on every side (of the images and of the mask)
    before scoring, as is customary for super-resolution benchmarks.

Masked SSIM
-----------
SSIM needs whole windows, so invalid pixels cannot simply be dropped. :func:`ssim`
fills the invalid pixels of *both* images with the mean of the truth's valid
pixels (per channel), computes the usual SSIM map on the filled images, and
averages the map over the pixels that are valid **and** at least 5 pixels
(``(11 - 1) // 2``, the window radius) away from the (cropped) border, the same
border that :func:`skimage.metrics.structural_similarity` leaves out. With no mask
and a finite truth this is exactly skimage's value (``gaussian_weights=True,
sigma=1.5, use_sample_covariance=False``).
"""

from __future__ import annotations

from typing import TypedDict

import numpy as np

from cmsr.errors import InputError, describe_shape
from cmsr.method.validate import check_array, check_mask

__all__ = ["data_range_for", "mae", "psnr", "rmse", "score", "ssim"]

#: Standard deviation of the Gaussian SSIM window, in pixels.
SSIM_SIGMA = 1.5
#: The window is truncated at this many standard deviations (11 taps for sigma 1.5).
SSIM_TRUNCATE = 3.5
#: SSIM stabilising constants, relative to the data range.
SSIM_K1 = 0.01
SSIM_K2 = 0.03

_SOURCE = "metrics"


# --------------------------------------------------------------------------- helpers


def _prepare(
    prediction: np.ndarray,
    truth: np.ndarray,
    mask: np.ndarray | None,
    crop: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Check, crop and convert the inputs.

    Returns ``(prediction, truth, valid)``: float64 ``(H, W, C)`` arrays and a bool
    ``(H, W)`` validity mask (user mask AND finite truth), all cropped. Raises
    :class:`InputError` when shapes disagree or nothing is left to score.
    """
    pred = check_array(prediction, "prediction")
    true = check_array(truth, "truth")
    if pred.shape != true.shape:
        raise InputError(
            f"prediction is {describe_shape(pred.shape)} but truth is {describe_shape(true.shape)}",
            source=_SOURCE,
        )
    if isinstance(crop, bool) or not isinstance(crop, (int, np.integer)) or crop < 0:
        raise InputError(f"crop must be a non-negative integer, got {crop!r}", source=_SOURCE)
    height, width = true.shape[:2]
    if mask is None:
        valid = np.ones((height, width), dtype=bool)
    else:
        valid = check_mask(mask, (height, width), of="truth")
    if 2 * crop >= min(height, width):
        raise InputError(
            f"crop={crop} removes the whole {width}x{height} image", source=_SOURCE
        )
    window = (slice(crop, height - crop), slice(crop, width - crop))
    pred = pred[window].astype(np.float64)
    true = true[window].astype(np.float64)
    valid = valid[window]
    if pred.ndim == 2:
        pred = pred[:, :, None]
        true = true[:, :, None]
    valid = valid & np.isfinite(true).all(axis=2)
    if not valid.any():
        raise InputError("no valid pixels to score (mask, NaN truth or crop)", source=_SOURCE)
    return pred, true, valid


def _check_data_range(data_range: float) -> float:
    value = float(data_range)
    if not np.isfinite(value) or value <= 0:
        raise InputError(f"data_range must be positive and finite, got {data_range!r}",
                         source=_SOURCE)
    return value


def _mse(pred: np.ndarray, true: np.ndarray, valid: np.ndarray) -> float:
    diff = pred[valid] - true[valid]
    return float(np.mean(diff * diff))


def _gaussian_taps(sigma: float, truncate: float) -> np.ndarray:
    """Normalised 1-D Gaussian taps, radius ``int(truncate * sigma + 0.5)``."""
    radius = int(truncate * sigma + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    taps = np.exp(-0.5 * (x / sigma) ** 2)
    return taps / taps.sum()


def _gaussian_filter(image: np.ndarray, taps: np.ndarray) -> np.ndarray:
    """Separable 2-D Gaussian filter of a float64 ``(H, W)`` image.

    The border is extended by mirror reflection including the edge pixel
    (``d c b a | a b c d | d c b a``): numpy's ``"symmetric"`` padding, which is
    scipy.ndimage's ``mode="reflect"`` that skimage uses for SSIM.
    """
    radius = len(taps) // 2
    out = image
    for axis in (0, 1):
        pad = [(0, 0), (0, 0)]
        pad[axis] = (radius, radius)
        padded = np.pad(out, pad, mode="symmetric")
        size = out.shape[axis]
        acc = np.zeros_like(out)
        for k, weight in enumerate(taps):
            acc += weight * (padded[k : k + size] if axis == 0 else padded[:, k : k + size])
        out = acc
    return out


def _ssim_map(a: np.ndarray, b: np.ndarray, data_range: float, taps: np.ndarray) -> np.ndarray:
    """SSIM map of two float64 ``(H, W)`` images (population covariance)."""
    ux = _gaussian_filter(a, taps)
    uy = _gaussian_filter(b, taps)
    uxx = _gaussian_filter(a * a, taps)
    uyy = _gaussian_filter(b * b, taps)
    uxy = _gaussian_filter(a * b, taps)
    vx = uxx - ux * ux
    vy = uyy - uy * uy
    vxy = uxy - ux * uy
    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2
    numerator = (2 * ux * uy + c1) * (2 * vxy + c2)
    denominator = (ux * ux + uy * uy + c1) * (vx + vy + c2)
    return numerator / denominator


# --------------------------------------------------------------------------- public


def data_range_for(dtype_or_array: np.ndarray | np.dtype | type) -> float:
    """The data range to use for PSNR and SSIM.

    Parameters
    ----------
    dtype_or_array:
        A numpy dtype (or scalar type) or an array.

    Returns
    -------
    float
        255 for uint8, 65535 for uint16, 1 for bool. For other arrays: 1.0 when all
        finite values lie in [0, 1], else max − min of the finite values (1.0 when
        that is 0, i.e. a constant image).

    Raises
    ------
    InputError
        A dtype other than uint8/uint16/bool is given without data, or the array
        has no finite value.

    Examples
    --------
    >>> data_range_for(np.uint8)
    255.0
    >>> data_range_for(np.array([[0.2, 0.9]]))
    1.0
    >>> data_range_for(np.array([[280.0, 310.0], [np.nan, 300.0]]))
    30.0
    """
    if isinstance(dtype_or_array, np.ndarray):
        dtype = dtype_or_array.dtype
        array: np.ndarray | None = dtype_or_array
    else:
        try:
            dtype = np.dtype(dtype_or_array)
        except TypeError:
            dtype = None
        if dtype is None or dtype == np.object_:
            array = np.asarray(dtype_or_array)
            dtype = array.dtype
        else:
            array = None
    if dtype == np.uint8:
        return 255.0
    if dtype == np.uint16:
        return 65535.0
    if dtype == np.bool_:
        return 1.0
    if array is None:
        raise InputError(
            f"cannot infer the data range of {dtype} data from its type alone; pass the array",
            source=_SOURCE,
        )
    values = np.asarray(array, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        raise InputError("cannot infer a data range: no finite values", source=_SOURCE)
    low, high = float(values.min()), float(values.max())
    if low >= 0.0 and high <= 1.0:
        return 1.0
    return high - low if high > low else 1.0


def rmse(
    prediction: np.ndarray,
    truth: np.ndarray,
    *,
    mask: np.ndarray | None = None,
    crop: int = 0,
) -> float:
    """Root-mean-square error over valid pixels, in the data's units.

    Parameters
    ----------
    prediction, truth:
        Arrays ``(H, W)`` or ``(H, W, C)`` of the same shape, any real dtype.
    mask:
        Optional bool ``(H, W)``; True = pixel is scored. Non-finite truth pixels
        are always excluded.
    crop:
        Border pixels removed on every side before scoring.

    Returns
    -------
    float
        ``sqrt(mean((prediction - truth)**2))`` over valid pixels and all channels.

    Raises
    ------
    InputError
        Shapes differ, the mask has the wrong shape, or no pixel is left to score.

    Examples
    --------
    >>> truth = np.zeros((4, 4))
    >>> rmse(truth + 2.0, truth)
    2.0
    """
    pred, true, valid = _prepare(prediction, truth, mask, crop)
    return float(np.sqrt(_mse(pred, true, valid)))


def mae(
    prediction: np.ndarray,
    truth: np.ndarray,
    *,
    mask: np.ndarray | None = None,
    crop: int = 0,
) -> float:
    """Mean absolute error over valid pixels, in the data's units.

    Parameters
    ----------
    prediction, truth:
        Arrays ``(H, W)`` or ``(H, W, C)`` of the same shape, any real dtype.
    mask:
        Optional bool ``(H, W)``; True = pixel is scored. Non-finite truth pixels
        are always excluded.
    crop:
        Border pixels removed on every side before scoring.

    Returns
    -------
    float
        ``mean(|prediction - truth|)`` over valid pixels and all channels.

    Raises
    ------
    InputError
        Shapes differ, the mask has the wrong shape, or no pixel is left to score.

    Examples
    --------
    >>> mae(np.array([[1.0, 3.0]]), np.array([[2.0, 2.0]]))
    1.0
    """
    pred, true, valid = _prepare(prediction, truth, mask, crop)
    return float(np.mean(np.abs(pred[valid] - true[valid])))


def psnr(
    prediction: np.ndarray,
    truth: np.ndarray,
    *,
    data_range: float,
    mask: np.ndarray | None = None,
    crop: int = 0,
) -> float:
    """Peak signal-to-noise ratio in decibels.

    Parameters
    ----------
    prediction, truth:
        Arrays ``(H, W)`` or ``(H, W, C)`` of the same shape, any real dtype.
    data_range:
        Span of possible values, in data units: 255 for uint8, 65535 for uint16, the
        truth's range for float data (see :func:`data_range_for`).
    mask:
        Optional bool ``(H, W)``; True = pixel is scored. Non-finite truth pixels
        are always excluded.
    crop:
        Border pixels removed on every side before scoring.

    Returns
    -------
    float
        ``10 * log10(data_range**2 / MSE)`` in dB; ``inf`` when the MSE is 0.

    Raises
    ------
    InputError
        Shapes differ, no pixel is left to score, or ``data_range`` is not positive.

    Examples
    --------
    >>> truth = np.zeros((8, 8))
    >>> round(psnr(truth + 0.1, truth, data_range=1.0), 6)
    20.0
    >>> psnr(truth, truth, data_range=1.0)
    inf
    """
    value_range = _check_data_range(data_range)
    pred, true, valid = _prepare(prediction, truth, mask, crop)
    mse = _mse(pred, true, valid)
    if mse == 0.0:
        return float("inf")
    return float(10.0 * np.log10(value_range**2 / mse))


def ssim(
    prediction: np.ndarray,
    truth: np.ndarray,
    *,
    data_range: float,
    mask: np.ndarray | None = None,
    crop: int = 0,
) -> float:
    """Structural similarity (Wang et al. 2004) with an 11x11 Gaussian window.

    Gaussian window sigma 1.5 truncated at 3.5 sigma, K1 = 0.01, K2 = 0.03,
    population covariance, reflected borders; the mean of the SSIM map leaves out
    a 5-pixel border. Multi-channel images: mean over channels. Without a mask this
    equals ``skimage.metrics.structural_similarity(prediction, truth,
    data_range=data_range, gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, channel_axis=...)`` for float64 input.

    With a mask (or non-finite truth pixels), invalid pixels of both images are
    filled with the per-channel mean of the truth's valid pixels before filtering,
    and the map is averaged over pixels that are valid and not in the 5-pixel
    border (see the module docstring).

    Parameters
    ----------
    prediction, truth:
        Arrays ``(H, W)`` or ``(H, W, C)`` of the same shape, any real dtype, at
        least 11x11 after cropping.
    data_range:
        Span of possible values, in data units (see :func:`data_range_for`).
    mask:
        Optional bool ``(H, W)``; True = pixel is scored.
    crop:
        Border pixels removed on every side before scoring.

    Returns
    -------
    float
        Mean SSIM, at most 1 (1 for identical images).

    Raises
    ------
    InputError
        Shapes differ, the cropped image is smaller than 11x11, no valid pixel lies
        outside the 5-pixel border, or ``data_range`` is not positive.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> image = rng.random((16, 16))
    >>> ssim(image, image, data_range=1.0)
    1.0
    """
    value_range = _check_data_range(data_range)
    pred, true, valid = _prepare(prediction, truth, mask, crop)
    taps = _gaussian_taps(SSIM_SIGMA, SSIM_TRUNCATE)
    win = len(taps)
    height, width = valid.shape
    if height < win or width < win:
        raise InputError(
            f"SSIM needs at least {win}x{win} pixels after cropping, got {width}x{height}",
            source=_SOURCE,
        )
    pad = (win - 1) // 2
    scored = np.zeros_like(valid)
    scored[pad : height - pad, pad : width - pad] = valid[pad : height - pad, pad : width - pad]
    if not scored.any():
        raise InputError(
            f"no valid pixel lies at least {pad} pixels inside the border for SSIM",
            source=_SOURCE,
        )
    invalid = ~valid
    values = []
    for channel in range(true.shape[2]):
        a = pred[:, :, channel]
        b = true[:, :, channel]
        if invalid.any():
            fill = float(b[valid].mean())
            a = np.where(invalid, fill, a)
            b = np.where(invalid, fill, b)
        values.append(_ssim_map(a, b, value_range, taps)[scored].mean())
    return float(np.mean(values))


class Scores(TypedDict):
    """What :func:`score` returns; the keys are fields of the runs' records."""

    rmse: float
    mae: float
    psnr: float
    ssim: float


def score(
    prediction: np.ndarray,
    truth: np.ndarray,
    *,
    data_range: float | None = None,
    mask: np.ndarray | None = None,
    crop: int = 0,
) -> Scores:
    """All metrics at once.

    Parameters
    ----------
    prediction, truth:
        Arrays ``(H, W)`` or ``(H, W, C)`` of the same shape, any real dtype.
    data_range:
        For PSNR and SSIM; ``None`` uses ``data_range_for(truth)``.
    mask:
        Optional bool ``(H, W)``; True = pixel is scored.
    crop:
        Border pixels removed on every side before scoring.

    Returns
    -------
    Scores
        ``{"rmse", "mae", "psnr", "ssim"}``; RMSE and MAE in data units, PSNR in dB.

    Raises
    ------
    InputError
        As the individual metrics.

    Examples
    --------
    >>> truth = np.linspace(0.0, 1.0, 256).reshape(16, 16)
    >>> row = score(truth, truth)
    >>> row["rmse"], row["psnr"], row["ssim"]
    (0.0, inf, 1.0)
    """
    if data_range is None:
        data_range = data_range_for(np.asarray(truth))
    return {
        "rmse": rmse(prediction, truth, mask=mask, crop=crop),
        "mae": mae(prediction, truth, mask=mask, crop=crop),
        "psnr": psnr(prediction, truth, data_range=data_range, mask=mask, crop=crop),
        "ssim": ssim(prediction, truth, data_range=data_range, mask=mask, crop=crop),
    }
