"""Tests for cmsr.method.normalize: unit-range round trips, dtypes, masks and hole filling."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cmsr.method.normalize import (
    array_to_tensor,
    clip_to_dtype,
    fill_invalid,
    fit_normalization,
    normalize_guide,
    result_dtype,
    tensor_to_array,
    to_dtype,
    valid_mask,
)

RNG = np.random.default_rng(7)


# ------------------------------------------------------------------ round trips


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16])
def test_integer_round_trip_is_exact(dtype):
    info = np.iinfo(dtype)
    image = RNG.integers(info.min, info.max, size=(9, 7), endpoint=True).astype(dtype)
    image[0, 0], image[0, 1] = info.min, info.max
    norm = fit_normalization(image)
    unit = norm.to_unit(image)
    assert unit.shape == (1, 1, 9, 7) and unit.dtype == torch.float32
    assert float(unit.min()) == 0.0 and float(unit.max()) == 1.0
    back = norm.from_unit(unit)
    assert back.dtype == dtype
    np.testing.assert_array_equal(back, image)


def test_uint16_round_trip_with_narrow_range_is_exact():
    image = RNG.integers(30000, 30050, size=(6, 8)).astype(np.uint16)
    norm = fit_normalization(image)
    assert norm.offset == image.min() and norm.span == image.max() - image.min()
    np.testing.assert_array_equal(norm.from_unit(norm.to_unit(image)), image)


def test_float32_round_trip_is_close_and_keeps_dtype():
    image = (RNG.random((5, 6, 2)) * 300 - 20).astype(np.float32)
    norm = fit_normalization(image)
    unit = norm.to_unit(image)
    assert unit.shape == (1, 2, 5, 6)
    back = norm.from_unit(unit)
    assert back.dtype == np.float32 and back.shape == image.shape
    np.testing.assert_allclose(back, image, rtol=0, atol=320 * 2e-7)


def test_float64_stays_float64_and_float16_becomes_float32():
    image = RNG.random((4, 5))
    assert fit_normalization(image).from_unit(fit_normalization(image).to_unit(image)).dtype \
        == np.float64
    half = image.astype(np.float16)
    assert fit_normalization(half).from_unit(fit_normalization(half).to_unit(half)).dtype \
        == np.float32


def test_from_unit_rounds_and_clips_integers():
    image = np.array([[10, 200], [50, 100]], dtype=np.uint8)
    norm = fit_normalization(image)  # offset 10, span 190
    unit = torch.tensor([[[[-0.5, 2.0], [(100.4 - 10) / 190, (100.6 - 10) / 190]]]])
    back = norm.from_unit(unit)
    np.testing.assert_array_equal(back, np.array([[0, 255], [100, 101]], dtype=np.uint8))


def test_from_unit_clips_to_signed_range():
    image = np.array([[-100, 100]], dtype=np.int8).repeat(2, axis=0)
    norm = fit_normalization(image)
    back = norm.from_unit(torch.tensor([[[[-1.0, 2.0], [0.0, 1.0]]]]))
    np.testing.assert_array_equal(back, np.array([[-128, 127], [-100, 100]], dtype=np.int8))


@pytest.mark.parametrize("dtype", [np.int64, np.uint64, np.int32, np.uint32])
def test_integer_results_never_wrap_around_at_the_dtype_limits(dtype):
    # float(2**63 - 1) == 2**63: clipped to that and cast, int64 used to wrap to -2**63
    info = np.iinfo(dtype)
    values = np.array([-1e30, float(info.min), float(info.max), 1e30, 12.4])
    cast = to_dtype(values, dtype)
    assert cast.dtype == dtype
    assert cast[0] == cast[1] == info.min
    assert cast[2] == cast[3] and info.max - cast[3] <= 2048 and cast[3] > info.max // 2
    assert cast[4] == 12
    assert clip_to_dtype(np.float32([1e30]), dtype)[0] <= info.max


def test_an_int64_result_outside_the_input_range_keeps_its_values():
    # the range an integer result may take is its dtype's: 0-5000 in, overshoot kept
    norm = fit_normalization(np.array([[0, 5000]], dtype=np.int64))
    back = norm.from_unit(torch.tensor([[[[-0.071, 1.0736]]]]))
    assert back.dtype == np.int64 and back.tolist() == [[-355, 5368]]


def test_fit_normalization_uses_only_valid_finite_pixels():
    image = np.array([[np.nan, 5.0, 7.0], [0.0, 6.0, 1000.0]])
    valid = np.array([[True, True, True], [False, True, False]])
    norm = fit_normalization(image, valid)
    assert (norm.offset, norm.span) == (5.0, 2.0)
    unit = norm.to_unit(image)
    assert float(unit[0, 0, 0, 1]) == 0.0 and float(unit[0, 0, 0, 2]) == 1.0


def test_fit_normalization_constant_image_has_unit_span():
    norm = fit_normalization(np.full((3, 3), 4.0))
    assert norm.span == 1.0 and norm.offset == 4.0


def test_fit_normalization_multiband_shares_one_range():
    image = np.stack([np.full((3, 3), 2.0), np.full((3, 3), 8.0)], axis=-1)
    image[0, 0, 1] = np.nan  # a pixel with a NaN band is left out entirely
    image[0, 0, 0] = -50.0
    norm = fit_normalization(image)
    assert (norm.offset, norm.span) == (2.0, 6.0)


def test_bool_images_return_as_uint8():
    image = np.eye(4, dtype=bool)
    norm = fit_normalization(image)
    assert norm.dtype == np.uint8
    np.testing.assert_array_equal(norm.from_unit(norm.to_unit(image)), image.astype(np.uint8))


def test_array_tensor_layout_round_trip():
    image = RNG.random((3, 4, 2)).astype(np.float32)
    tensor = array_to_tensor(image)
    assert tensor.shape == (1, 2, 3, 4)
    assert float(tensor[0, 1, 2, 3]) == image[2, 3, 1]
    np.testing.assert_array_equal(tensor_to_array(tensor), image)
    grey = RNG.random((3, 4)).astype(np.float32)
    assert tensor_to_array(array_to_tensor(grey)).shape == (3, 4)


# ------------------------------------------------------------------ valid_mask


def test_valid_mask_with_nan_and_invalid_value():
    image = np.array([[1.0, np.nan, 0.0], [2.0, 3.0, np.inf]])
    np.testing.assert_array_equal(valid_mask(image), [[True, False, True], [True, True, False]])
    np.testing.assert_array_equal(valid_mask(image, invalid_value=0),
                                  [[True, False, False], [True, True, False]])
    assert valid_mask(image).dtype == bool


def test_valid_mask_multiband_requires_every_band():
    image = np.ones((2, 2, 3))
    image[0, 0, 2] = np.nan
    image[1, 1, 0] = -1
    assert valid_mask(image).shape == (2, 2)
    np.testing.assert_array_equal(valid_mask(image), [[False, True], [True, True]])
    np.testing.assert_array_equal(valid_mask(image, invalid_value=-1),
                                  [[False, True], [True, False]])


def test_valid_mask_integer_image_with_invalid_zero():
    depth = np.array([[0, 1200], [1300, 0]], dtype=np.uint16)
    np.testing.assert_array_equal(valid_mask(depth, invalid_value=0),
                                  [[False, True], [True, False]])


# ---------------------------------------------------------------- fill_invalid


def _fill(image: np.ndarray, valid: np.ndarray) -> torch.Tensor:
    tensor = array_to_tensor(image)
    return fill_invalid(tensor, torch.from_numpy(valid)[None, None])


def test_fill_keeps_valid_pixels_and_fills_all_invalid():
    image = RNG.random((10, 12, 2)).astype(np.float32)
    valid = RNG.random((10, 12)) > 0.4
    image[~valid] = np.nan
    filled = _fill(image, valid)
    assert bool(torch.isfinite(filled).all())
    reference = array_to_tensor(image)
    mask = torch.from_numpy(valid)[None, None].expand_as(reference)
    assert torch.equal(filled[mask], reference[mask])


def test_fill_big_hole_stays_within_range_of_valid_values():
    image = RNG.random((16, 16)).astype(np.float32) * 3 + 5
    valid = np.ones((16, 16), dtype=bool)
    valid[2:15, 1:14] = False  # a big hole, 13 x 13
    image[~valid] = np.nan
    filled = _fill(image, valid)
    assert bool(torch.isfinite(filled).all())
    assert float(filled.min()) >= image[valid].min() - 1e-6
    assert float(filled.max()) <= image[valid].max() + 1e-6


def test_fill_of_constant_surroundings_is_constant():
    image = np.full((9, 9), 2.5, dtype=np.float32)
    valid = np.ones((9, 9), dtype=bool)
    valid[3:7, 2:8] = False
    image[~valid] = -1e30  # values at invalid pixels are ignored
    filled = _fill(image, valid)
    torch.testing.assert_close(filled, torch.full_like(filled, 2.5))


def test_fill_follows_nearest_side():
    # left half 0, right half 1, a hole across the middle: filled values rise left to right
    image = np.zeros((5, 12), dtype=np.float32)
    image[:, 6:] = 1.0
    valid = np.ones((5, 12), dtype=bool)
    valid[:, 2:10] = False
    filled = _fill(image, valid)[0, 0, 2].numpy()
    assert filled[2] < 0.5 < filled[9]
    assert np.all(np.diff(filled) >= -1e-6)


def test_fill_from_single_valid_pixel():
    image = np.full((6, 5), np.nan, dtype=np.float32)
    image[4, 1] = 3.0
    valid = ~np.isnan(image)
    filled = _fill(image, valid)
    torch.testing.assert_close(filled, torch.full_like(filled, 3.0))


# ------------------------------------------------------------------ normalize_guide


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32, np.float64])
def test_normalize_guide_range_is_exactly_zero_to_one(dtype):
    guide = (RNG.random((8, 9, 3)) * 200 + 20).astype(dtype)
    out = normalize_guide(guide)
    assert out.shape == (1, 3, 8, 9) and out.dtype == torch.float32
    assert float(out.min()) == 0.0 and float(out.max()) == 1.0


def test_normalize_guide_keeps_band_ratios():
    base = RNG.random((6, 6)) * 100
    guide = np.stack([base, 2 * base, np.zeros((6, 6))], axis=-1)  # shared min 0
    out = normalize_guide(guide).numpy()[0]
    np.testing.assert_allclose(out[1], 2 * out[0], rtol=1e-6, atol=1e-7)
    assert float(out[1].max()) == pytest.approx(1.0)


def test_normalize_guide_grey():
    guide = np.array([[0, 255], [128, 64]], dtype=np.uint8)
    out = normalize_guide(guide)
    assert out.shape == (1, 1, 2, 2)
    torch.testing.assert_close(out[0, 0], torch.tensor([[0.0, 1.0], [128 / 255, 64 / 255]]))


def test_one_rule_for_dtypes_results_come_back_in() -> None:
    values = np.array([-1.6, 0.4, 0.5, 70000.2])
    assert to_dtype(values, np.uint16).tolist() == [0, 0, 0, 65535]
    assert to_dtype(values, np.int16).tolist() == [-2, 0, 0, 32767]
    assert to_dtype(values, np.bool_).dtype == np.uint8
    assert to_dtype(values, np.float64).dtype == np.float64
    assert to_dtype(values, np.float16).dtype == np.float32
    assert result_dtype(np.int32) == np.int32
    clipped = clip_to_dtype(values.astype(np.float32), np.uint8)
    assert clipped.dtype == np.float32 and clipped.tolist() == [0.0, 0.4000000059604645, 0.5,
                                                                 255.0]
    assert clip_to_dtype(values, np.float32) is values


def test_array_tensor_round_trip_keeps_a_band_axis_when_asked() -> None:
    image = RNG.random((5, 6, 1))
    tensor = array_to_tensor(image, np.float64)
    assert tensor.dtype == torch.float64 and tensor.shape == (1, 1, 5, 6)
    assert tensor_to_array(tensor).shape == (5, 6)
    back = tensor_to_array(tensor, band_axis=True)
    assert back.shape == (5, 6, 1) and back.dtype == np.float32
