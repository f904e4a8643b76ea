"""Tests for cmsr.evaluation.metrics: known values, masks, NaN, crop, and SSIM against skimage."""

from __future__ import annotations

import math

import numpy as np
import pytest
from skimage.metrics import structural_similarity

from cmsr.errors import InputError
from cmsr.evaluation.metrics import (
    _gaussian_filter,
    _gaussian_taps,
    data_range_for,
    mae,
    psnr,
    rmse,
    score,
    ssim,
)


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _skimage_ssim(a: np.ndarray, b: np.ndarray, data_range: float) -> float:
    return float(
        structural_similarity(
            a,
            b,
            data_range=data_range,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            channel_axis=2 if a.ndim == 3 else None,
        )
    )


# ------------------------------------------------------------------ known values


def test_rmse_and_mae_of_constant_offset() -> None:
    truth = _rng().random((12, 9)) * 100.0
    assert rmse(truth + 3.5, truth) == pytest.approx(3.5)
    assert mae(truth - 3.5, truth) == pytest.approx(3.5)


def test_rmse_and_mae_known_values() -> None:
    truth = np.zeros((1, 4))
    prediction = np.array([[1.0, -1.0, 3.0, -3.0]])
    assert rmse(prediction, truth) == pytest.approx(math.sqrt(5.0))
    assert mae(prediction, truth) == pytest.approx(2.0)


def test_psnr_of_known_mse() -> None:
    truth = np.full((8, 8), 100, dtype=np.uint8)
    prediction = truth.astype(np.int16) + 5  # MSE = 25
    expected = 10 * math.log10(255.0**2 / 25.0)
    assert psnr(prediction, truth, data_range=255) == pytest.approx(expected)


def test_psnr_infinite_for_identical() -> None:
    truth = _rng().random((8, 8))
    assert psnr(truth, truth.copy(), data_range=1.0) == math.inf


def test_integer_inputs_do_not_wrap() -> None:
    truth = np.zeros((4, 4), dtype=np.uint8)
    prediction = np.full((4, 4), 10, dtype=np.uint8)
    assert rmse(truth, prediction) == pytest.approx(10.0)
    assert mae(truth, prediction) == pytest.approx(10.0)


def test_multichannel_averages_all_channels() -> None:
    truth = np.zeros((5, 5, 3))
    prediction = truth.copy()
    prediction[..., 0] = 3.0
    assert mae(prediction, truth) == pytest.approx(1.0)
    assert rmse(prediction, truth) == pytest.approx(math.sqrt(3.0))


# ------------------------------------------------------------------ mask, NaN, crop


def test_mask_excludes_pixels() -> None:
    rng = _rng(1)
    truth = rng.random((24, 24))
    prediction = truth + 0.05 * rng.standard_normal(truth.shape)
    mask = np.ones(truth.shape, dtype=bool)
    mask[3:9, 10:20] = False
    changed = prediction.copy()
    changed[~mask] = 1e6
    for metric in (rmse, mae):
        assert metric(changed, truth, mask=mask) == pytest.approx(
            metric(prediction, truth, mask=mask)
        )
    assert psnr(changed, truth, data_range=1.0, mask=mask) == pytest.approx(
        psnr(prediction, truth, data_range=1.0, mask=mask)
    )
    # Masked SSIM also ignores what is under the mask, in prediction and truth.
    changed_truth = truth.copy()
    changed_truth[~mask] = -7.0
    assert ssim(changed, changed_truth, data_range=1.0, mask=mask) == pytest.approx(
        ssim(prediction, truth, data_range=1.0, mask=mask)
    )
    assert rmse(changed, truth) > 1e3


def test_mask_matches_manual_selection() -> None:
    truth = np.arange(16.0).reshape(4, 4)
    prediction = truth + np.arange(16.0).reshape(4, 4) % 3
    mask = truth % 2 == 0
    diff = (prediction - truth)[mask]
    assert mae(prediction, truth, mask=mask) == pytest.approx(np.abs(diff).mean())
    assert rmse(prediction, truth, mask=mask) == pytest.approx(np.sqrt((diff**2).mean()))


def test_nan_in_truth_is_ignored() -> None:
    rng = _rng(2)
    truth = rng.random((20, 20))
    prediction = truth + 0.1
    holes = np.zeros(truth.shape, dtype=bool)
    holes[5:8, 5:15] = True
    with_nan = truth.copy()
    with_nan[holes] = np.nan
    assert rmse(prediction, with_nan) == pytest.approx(0.1)
    assert mae(prediction, with_nan) == pytest.approx(0.1)
    assert math.isfinite(psnr(prediction, with_nan, data_range=1.0))
    assert ssim(prediction, with_nan, data_range=1.0) == pytest.approx(
        ssim(prediction, truth, data_range=1.0, mask=~holes)
    )
    row = score(prediction, with_nan)
    assert all(math.isfinite(v) for v in row.values())


def test_nan_in_prediction_propagates() -> None:
    truth = np.zeros((4, 4))
    prediction = truth.copy()
    prediction[1, 1] = np.nan
    assert math.isnan(rmse(prediction, truth))


def test_crop_removes_border() -> None:
    truth = np.zeros((10, 10))
    prediction = np.zeros((10, 10))
    prediction[0, :] = 100.0
    prediction[:, -1] = 100.0
    assert rmse(prediction, truth, crop=1) == 0.0
    assert mae(prediction, truth, crop=0) > 0.0
    assert psnr(prediction, truth, data_range=1.0, crop=1) == math.inf


def test_crop_applies_to_mask() -> None:
    truth = np.zeros((6, 6))
    prediction = np.ones((6, 6))
    mask = np.zeros((6, 6), dtype=bool)
    mask[0, 0] = True  # the only valid pixel is cropped away
    with pytest.raises(InputError):
        rmse(prediction, truth, mask=mask, crop=1)


# ------------------------------------------------------------------ SSIM


def test_gaussian_filter_matches_scipy_reflect() -> None:
    ndimage = pytest.importorskip("scipy.ndimage")
    image = _rng(3).random((13, 17))
    ours = _gaussian_filter(image, _gaussian_taps(1.5, 3.5))
    theirs = ndimage.gaussian_filter(image, sigma=1.5, truncate=3.5, mode="reflect")
    np.testing.assert_allclose(ours, theirs, atol=1e-12)


@pytest.mark.parametrize("shape", [(11, 11), (23, 31), (40, 40)])
def test_ssim_matches_skimage_grey_random(shape: tuple[int, int]) -> None:
    rng = _rng(sum(shape))
    truth = rng.random(shape)
    prediction = np.clip(truth + 0.2 * rng.standard_normal(shape), 0, 1)
    assert ssim(prediction, truth, data_range=1.0) == pytest.approx(
        _skimage_ssim(prediction, truth, 1.0), abs=1e-6
    )


def test_ssim_matches_skimage_structured() -> None:
    y, x = np.mgrid[0:48, 0:40]
    truth = 290.0 + 10.0 * np.sin(x / 4.0) * np.cos(y / 7.0) + (x > 20) * 5.0
    prediction = truth[::-1, :] * 0.98 + 3.0
    data_range = float(truth.max() - truth.min())
    assert ssim(prediction, truth, data_range=data_range) == pytest.approx(
        _skimage_ssim(prediction, truth, data_range), abs=1e-6
    )


def test_ssim_matches_skimage_rgb_uint8() -> None:
    rng = _rng(4)
    truth = rng.integers(0, 256, (30, 26, 3), dtype=np.uint8)
    noisy = truth.astype(np.int16) + rng.integers(-20, 21, truth.shape)
    prediction = np.clip(noisy, 0, 255).astype(np.uint8)
    ours = ssim(prediction, truth, data_range=255)
    assert ours == pytest.approx(
        _skimage_ssim(prediction.astype(np.float64), truth.astype(np.float64), 255.0), abs=1e-6
    )
    per_channel = [ssim(prediction[..., c], truth[..., c], data_range=255) for c in range(3)]
    assert ours == pytest.approx(np.mean(per_channel))


def test_ssim_of_identical_is_one() -> None:
    image = _rng(5).random((16, 16, 3))
    assert ssim(image, image, data_range=1.0) == pytest.approx(1.0, abs=1e-12)
    mask = np.ones((16, 16), dtype=bool)
    mask[:4] = False
    assert ssim(image, image, data_range=1.0, mask=mask) == pytest.approx(1.0, abs=1e-12)


def test_ssim_all_true_mask_equals_unmasked() -> None:
    rng = _rng(6)
    truth = rng.random((20, 20))
    prediction = truth + 0.1 * rng.standard_normal(truth.shape)
    full = np.ones(truth.shape, dtype=bool)
    assert ssim(prediction, truth, data_range=1.0, mask=full) == ssim(
        prediction, truth, data_range=1.0
    )


def test_ssim_crop_equals_cropped_input() -> None:
    rng = _rng(7)
    truth = rng.random((24, 24))
    prediction = truth + 0.1 * rng.standard_normal(truth.shape)
    assert ssim(prediction, truth, data_range=1.0, crop=3) == pytest.approx(
        _skimage_ssim(prediction[3:-3, 3:-3], truth[3:-3, 3:-3], 1.0), abs=1e-6
    )


def test_ssim_too_small_raises() -> None:
    image = np.zeros((10, 12))
    with pytest.raises(InputError, match="11x11"):
        ssim(image, image, data_range=1.0)


# ------------------------------------------------------------------ score, ranges, errors


def test_score_keys_and_default_range() -> None:
    truth = np.linspace(0, 1, 256).reshape(16, 16)
    prediction = truth + 0.1
    row = score(prediction, truth)
    assert set(row) == {"rmse", "mae", "psnr", "ssim"}
    assert row["rmse"] == pytest.approx(0.1)
    assert row["psnr"] == pytest.approx(20.0)
    assert all(isinstance(v, float) for v in row.values())


def test_data_range_for() -> None:
    assert data_range_for(np.uint8) == 255.0
    assert data_range_for(np.zeros((2, 2), dtype=np.uint16)) == 65535.0
    assert data_range_for(np.dtype("uint16")) == 65535.0
    assert data_range_for(np.array([0.0, 0.3, 1.0, np.nan])) == 1.0
    assert data_range_for(np.array([270.0, 310.0, np.inf])) == 40.0
    assert data_range_for(np.array([-2.0, 0.5])) == 2.5
    assert data_range_for(np.full((3, 3), 7.0)) == 1.0
    assert data_range_for(np.zeros(3, bool)) == 1.0
    assert data_range_for(np.array([-300, 1200], np.int16)) == 1500.0  # wider ints: the data
    with pytest.raises(InputError):
        data_range_for(np.float32)
    with pytest.raises(InputError):
        data_range_for(np.array([np.nan]))


def test_shape_mismatch_raises_one_line() -> None:
    with pytest.raises(InputError) as info:
        rmse(np.zeros((320, 320)), np.zeros((318, 320)))
    message = str(info.value)
    assert message.startswith("metrics: ")
    assert "\n" not in message
    assert "320x320" in message and "320x318" in message
    for call in (
        lambda: mae(np.zeros((4, 4, 3)), np.zeros((4, 4))),
        lambda: psnr(np.zeros((4, 4)), np.zeros((4, 5)), data_range=1.0),
        lambda: ssim(np.zeros((12, 12)), np.zeros((12, 13)), data_range=1.0),
        lambda: score(np.zeros((4, 4)), np.zeros((5, 4))),
    ):
        with pytest.raises(InputError):
            call()


def test_no_valid_pixels_raises() -> None:
    truth = np.full((4, 4), np.nan)
    with pytest.raises(InputError, match="no valid pixels"):
        rmse(np.zeros((4, 4)), truth)
    with pytest.raises(InputError, match="no valid pixels"):
        mae(np.zeros((4, 4)), np.zeros((4, 4)), mask=np.zeros((4, 4), dtype=bool))


def test_bad_arguments_raise() -> None:
    image = np.zeros((12, 12))
    with pytest.raises(InputError):
        rmse(image, image, mask=np.ones((3, 3), dtype=bool))
    with pytest.raises(InputError):
        rmse(image, image, crop=6)
    with pytest.raises(InputError):
        rmse(image, image, crop=-1)
    with pytest.raises(InputError):
        psnr(image, image, data_range=0.0)
    with pytest.raises(InputError):
        ssim(image, image, data_range=float("nan"))
    with pytest.raises(InputError):
        rmse(np.zeros(5), np.zeros(5))
    with pytest.raises(InputError, match="inside the border"):
        mask = np.zeros((12, 12), dtype=bool)
        mask[0] = True
        ssim(image, image, data_range=1.0, mask=mask)
