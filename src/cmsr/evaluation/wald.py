"""The Wald protocol for rasters: aggregate a fine raster onto a coarser grid, and score
a sharpened raster against the truth and against the coarse input it came from.

Thermal-sharpening studies (Wald, Ranchin and Mangolini 1997; DisTrad, TsHARP, DMS)
reduce the target by a factor ``s`` the way a sensor with ``s`` times larger pixels
would see it, sharpen it back and compare with the original:

* :func:`block_mean` -- each coarse pixel the mean of its ``s x s`` fine pixels (a
  sensor integrating its footprint: elevation, digital numbers linear in radiance);
* :func:`radiometric_mean` -- for temperatures in kelvin, the fourth root of the mean of
  ``T**4``: the emitted radiance (Stefan-Boltzmann) is what a coarse pixel averages;
* :func:`score_sharpening` -- RMSE, bias and correlation against the truth, and the
  energy-conservation error: the result aggregated back by the same rule, against the
  coarse input (RMSE).

Plain numpy on ``(H, W)`` arrays whose sides are multiples of ``s``
(:func:`crop_to_multiple` cuts them to that); NaN marks a missing value and is left out
of means and scores.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

Aggregation = Callable[[np.ndarray, int], np.ndarray]
"""``(fine (H, W), s) -> coarse (H / s, W / s)``: :func:`block_mean` or
:func:`radiometric_mean`."""


def crop_to_multiple(image: np.ndarray, factor: int) -> np.ndarray:
    """The top-left ``(H - H % factor, W - W % factor)`` of ``image`` (``(H, W[, C])``).

    Examples
    --------
    >>> crop_to_multiple(np.zeros((7, 10)), 4).shape
    (4, 8)
    """
    if factor < 1:
        raise ValueError(f"factor must be >= 1, got {factor}")
    height, width = image.shape[0] // factor * factor, image.shape[1] // factor * factor
    if height == 0 or width == 0:
        raise ValueError(f"a {image.shape[0]}x{image.shape[1]} image has no whole "
                         f"{factor}x{factor} block")
    return image[:height, :width]


def _blocks(image: np.ndarray, factor: int) -> np.ndarray:
    """``(H, W)`` -> ``(H / f, W / f, f * f)`` float64: the fine pixels of each block."""
    if image.ndim != 2:
        raise ValueError(f"expected an (H, W) array, got shape {image.shape}")
    if factor < 1:
        raise ValueError(f"factor must be >= 1, got {factor}")
    height, width = image.shape
    if height % factor or width % factor:
        raise ValueError(f"{height}x{width} is not a multiple of {factor}; "
                         "crop_to_multiple() first")
    blocks = image.astype(np.float64).reshape(height // factor, factor, width // factor,
                                              factor)
    return blocks.transpose(0, 2, 1, 3).reshape(height // factor, width // factor, -1)


def block_mean(image: np.ndarray, factor: int) -> np.ndarray:
    """Each ``factor x factor`` block's mean: ``(H, W)`` -> ``(H / factor, W / factor)``.

    Float64 in the input's units; NaN pixels are left out, an all-NaN block gives NaN.

    Examples
    --------
    >>> block_mean(np.array([[1.0, 3.0, 5.0, 5.0], [5.0, 7.0, 5.0, 9.0]]), 2)
    array([[4., 6.]])
    """
    blocks = _blocks(image, factor)
    valid = np.isfinite(blocks)
    count = valid.sum(axis=2)
    total = np.where(valid, blocks, 0.0).sum(axis=2)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def radiometric_mean(kelvin: np.ndarray, factor: int) -> np.ndarray:
    """Each block's radiance-equivalent temperature, ``mean(T**4) ** (1/4)``.

    Parameters
    ----------
    kelvin:
        ``(H, W)`` temperatures in kelvin (> 0; NaN for missing), sides multiples of
        ``factor``.
    factor:
        Block side in pixels.

    Returns
    -------
    ``(H / factor, W / factor)`` float64 kelvin; never below the block's plain mean.

    Examples
    --------
    >>> radiometric_mean(np.array([[300.0, 300.0], [300.0, 300.0]]), 2)
    array([[300.]])
    """
    values = np.asarray(kelvin, dtype=np.float64)
    if np.nanmin(values) <= 0:
        raise ValueError("radiometric_mean needs temperatures in kelvin (all > 0)")
    return np.asarray(block_mean(values ** 4, factor) ** 0.25)


@dataclass(frozen=True)
class SharpeningScore:
    """How a sharpened raster compares with the truth and with its coarse input.

    Attributes
    ----------
    rmse:
        Root-mean-square error against the truth, in the target's units (K, m, DN).
    bias:
        Mean of ``result - truth`` (positive: too warm / too high).
    correlation:
        Pearson's r between result and truth (NaN when either is constant).
    conservation_rmse:
        RMSE between the result aggregated back to the coarse grid and the coarse input
        (0: the result reproduces every coarse pixel exactly).
    """

    rmse: float
    bias: float
    correlation: float
    conservation_rmse: float


def score_sharpening(result: np.ndarray, truth: np.ndarray, coarse: np.ndarray,
                     factor: int, aggregate: Aggregation = block_mean) -> SharpeningScore:
    """Score ``result`` against ``truth`` and, aggregated by ``aggregate``, ``coarse``.

    Parameters
    ----------
    result, truth:
        ``(H, W)`` in the same units; pixels NaN in either are left out.
    coarse:
        ``(H / factor, W / factor)``: the input the result was sharpened from.
    factor:
        Fine pixels per coarse pixel, per axis.
    aggregate:
        How a fine raster becomes a coarse one (:func:`block_mean`,
        :func:`radiometric_mean`), the rule the coarse input was (or is assumed) made by.

    Examples
    --------
    >>> truth = np.array([[1.0, 3.0], [5.0, 7.0]])
    >>> score = score_sharpening(truth + 1.0, truth, np.array([[4.0]]), 2)
    >>> score.rmse, score.bias, round(score.correlation, 12), score.conservation_rmse
    (1.0, 1.0, 1.0, 1.0)
    """
    result = np.asarray(result, dtype=np.float64)
    truth = np.asarray(truth, dtype=np.float64)
    coarse = np.asarray(coarse, dtype=np.float64)
    if result.shape != truth.shape:
        raise ValueError(f"result {result.shape} and truth {truth.shape} differ in shape")
    expected = (result.shape[0] // factor, result.shape[1] // factor)
    if coarse.shape != expected:
        raise ValueError(f"coarse input {coarse.shape} is not result {result.shape} / "
                         f"{factor}")
    valid = np.isfinite(result) & np.isfinite(truth)
    if not valid.any():
        raise ValueError("result and truth share no finite pixel")
    error = result[valid] - truth[valid]
    a, b = result[valid], truth[valid]
    spread = a.std() * b.std()
    correlation = float(((a - a.mean()) * (b - b.mean())).mean() / spread) if spread > 0 \
        else float("nan")
    back = aggregate(result, factor) - coarse
    back = back[np.isfinite(back)]
    return SharpeningScore(
        rmse=float(np.sqrt(np.mean(error ** 2))),
        bias=float(error.mean()),
        correlation=correlation,
        conservation_rmse=float(np.sqrt(np.mean(back ** 2))) if back.size else float("nan"),
    )
