"""Tests for cmsr.method.validate: every bad input gives a one-line InputError naming its source."""

from __future__ import annotations

import numpy as np
import pytest

from cmsr.errors import InputError
from cmsr.method.validate import (
    check_array,
    check_image,
    check_mask,
    check_pair,
    check_scale,
    infer_scale,
)

RNG = np.random.default_rng(3)


def _img(*shape, dtype=np.float64):
    return (RNG.random(shape) * 100).astype(dtype)


def _expect(call, name: str, *words: str) -> str:
    with pytest.raises(InputError) as info:
        call()
    message = str(info.value)
    assert name in message, message
    assert "\n" not in message, message
    assert any(word in message.lower() for word in words), message
    assert isinstance(info.value, ValueError)
    return message


# ------------------------------------------------------------------- pair errors


def test_guide_smaller_than_target():
    _expect(lambda: check_pair(_img(16, 16), _img(8, 8), guide_name="rgb.png"), "rgb.png",
            "smaller")
    # smaller along one axis only
    _expect(lambda: check_pair(_img(16, 16), _img(32, 12), guide_name="rgb.png"), "rgb.png",
            "smaller")


def test_guide_same_size_as_target():
    message = _expect(lambda: check_pair(_img(16, 16), _img(16, 16, 3), target_name="t.tif",
                                         guide_name="g.png"), "g.png", "same size")
    assert "t.tif" in message
    # within 1 % counts as the same size
    _expect(lambda: check_pair(_img(200, 200), _img(201, 201, 3)), "guide", "same size")


def test_scale_above_sixteen():
    _expect(lambda: check_pair(_img(4, 4), _img(68, 68, 3), guide_name="big.png"), "big.png",
            "implausible", "16")
    assert check_pair(_img(4, 4), _img(64, 64, 3)) == (16.0, 16.0)


def test_anisotropic_scale_beyond_two():
    message = _expect(lambda: check_pair(_img(8, 8), _img(16, 40, 3), guide_name="g.png"),
                      "g.png", "differ")
    assert "--scale" in message
    assert check_pair(_img(8, 8), _img(16, 32, 3)) == (2.0, 4.0)  # exactly 2x is allowed


@pytest.mark.parametrize("bad", [0.5, 1.0, 16.5, 100.0, float("nan"), float("inf"), -2.0])
def test_scale_option_out_of_range(bad):
    _expect(lambda: check_scale(bad), "--scale", "scale")
    _expect(lambda: check_pair(_img(8, 8), _img(32, 32, 3), scale=bad), "--scale", "scale")


def test_scale_option_in_range():
    assert check_scale(16) == 16.0
    assert check_scale(1.5) == 1.5
    assert check_pair(_img(8, 8), _img(31, 33, 3), scale=4) == (4.0, 4.0)


# ------------------------------------------------------------------ image errors


def test_constant_target():
    _expect(lambda: check_pair(np.full((8, 8), 3.0), _img(16, 16, 3), target_name="t.npy"),
            "t.npy", "constant")


def test_constant_target_apart_from_nan():
    target = np.full((8, 8), 3.0)
    target[2, 2] = np.nan
    _expect(lambda: check_pair(target, _img(16, 16, 3), target_name="t.npy"), "t.npy",
            "constant")


def test_constant_guide():
    _expect(lambda: check_pair(_img(8, 8), np.zeros((16, 16, 3), np.uint8), guide_name="g.png"),
            "g.png", "constant")


def test_nan_in_guide():
    guide = _img(16, 16, 3)
    guide[3, 4, 1] = np.nan
    _expect(lambda: check_pair(_img(8, 8), guide, guide_name="g.tif"), "g.tif", "nan")


def test_nan_in_target_is_allowed():
    target = _img(8, 8)
    target[0, 0] = np.nan
    assert check_pair(target, _img(16, 16, 3)) == (2.0, 2.0)


@pytest.mark.parametrize("which", ["target", "guide"])
@pytest.mark.parametrize("value", [np.inf, -np.inf])
def test_infinite_values(which, value):
    target, guide = _img(8, 8), _img(16, 16, 3)
    (target if which == "target" else guide)[1, 1] = value
    _expect(lambda: check_pair(target, guide, target_name="T", guide_name="G"),
            "T" if which == "target" else "G", "infinite")


def test_all_nan_target():
    _expect(lambda: check_pair(np.full((8, 8), np.nan), _img(16, 16, 3), target_name="t.tif"),
            "t.tif", "no valid")


def test_no_valid_pixels_is_said_before_constant():
    # every pixel is the invalid value: nothing is valid, which is not "constant"
    image = np.full((8, 8), 77.0)
    _expect(lambda: check_image(image, "t.png", allow_nan=True, valid=image != 77),
            "t.png", "no valid pixels")
    # the valid pixels alone decide whether the image is constant
    image[:, :4] = 5.0
    _expect(lambda: check_image(image, "t.png", allow_nan=True, valid=image != 77),
            "t.png", "constant (every valid pixel is 5)")
    bands = np.stack([image, image], axis=2)
    bands[0, 0, 1] = 9.0  # varies, but only in a pixel that does not count
    valid = image != 77
    valid[0, 0] = False
    _expect(lambda: check_image(bands, "t.tif", allow_nan=True, valid=valid), "t.tif",
            "constant")


@pytest.mark.parametrize("shape", [(3, 8), (8, 3), (2, 2), (3, 8, 1)])
def test_too_small(shape):
    _expect(lambda: check_image(_img(*shape), "tiny.png", allow_nan=True), "tiny.png",
            "too small")


def test_too_many_bands():
    _expect(lambda: check_image(_img(8, 8, 17), "cube.tif", allow_nan=False), "cube.tif",
            "bands")
    check_image(_img(8, 8, 16), "cube.tif", allow_nan=False)


def test_zero_bands():
    _expect(lambda: check_image(np.zeros((8, 8, 0)), "x.npy", allow_nan=False), "x.npy",
            "empty", "bands")


@pytest.mark.parametrize("shape", [(16,), (2, 8, 8, 3), ()])
def test_wrong_ndim(shape):
    image = RNG.random(shape)
    _expect(lambda: check_image(np.asarray(image), "x.npy", allow_nan=False), "x.npy",
            "expected")


def test_not_an_array():
    _expect(lambda: check_image([[1, 2], [3, 4]], "list", allow_nan=False), "list", "numpy")


@pytest.mark.parametrize("array", [np.array([["a"] * 8] * 8),
                                   np.ones((8, 8), dtype=np.complex64)])
def test_unsupported_dtype(array):
    _expect(lambda: check_image(array, "x.npy", allow_nan=False), "x.npy", "dtype")


def test_empty():
    _expect(lambda: check_image(np.zeros((0, 8)), "e.npy", allow_nan=False), "e.npy", "empty")


# ------------------------------------------------------------------- valid pairs


@pytest.mark.parametrize(("target_shape", "guide_shape", "expected"), [
    ((12, 12), (48, 48, 3), (4.0, 4.0)),
    ((10, 8), (25, 20, 3), (2.5, 2.5)),
    ((12, 10), (30, 20, 4), (2.5, 2.0)),
    ((7, 9), (10, 13), (10 / 7, 13 / 9)),
    ((8, 8, 2), (16, 16, 3), (2.0, 2.0)),
])
def test_valid_pairs_return_scale_per_axis(target_shape, guide_shape, expected):
    assert check_pair(_img(*target_shape), _img(*guide_shape)) == pytest.approx(expected)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32, np.float32, bool])
def test_valid_dtypes_pass(dtype):
    target = (RNG.random((8, 8)) * 2).astype(dtype)
    target[0, 0], target[0, 1] = 0, 1
    guide = (RNG.random((16, 16, 3)) * 2).astype(dtype)
    guide[0, 0, 0], guide[0, 1, 0] = 0, 1
    assert check_pair(target, guide) == (2.0, 2.0)


def test_infer_scale_names_guide():
    _expect(lambda: infer_scale((8, 8), (4, 4), guide_name="my guide"), "my guide", "smaller")


def test_forced_scale_rejects_a_guide_much_smaller_than_the_output():
    _expect(lambda: check_pair(_img(12, 12), _img(10, 10, 3), scale=4, guide_name="g.png"),
            "g.png", "small")


def test_forced_scale_accepts_guide_a_pixel_off():
    assert check_pair(_img(12, 12), _img(47, 49, 3), scale=4) == (4.0, 4.0)


def test_check_array_is_the_one_image_rule() -> None:
    assert check_array([[1.0, 2.0]], "truth").shape == (1, 2)
    for bad, words in ((np.zeros(4), r"shape \(4,\)"), (np.zeros((0, 3)), "empty"),
                       (np.zeros((2, 2), complex), "complex"), (np.zeros((2, 2, 20)), None)):
        if words is None:
            check_array(bad, "truth")  # bands and sides are limited only when asked
            with pytest.raises(InputError, match="20 bands"):
                check_array(bad, "truth", max_bands=16)
            continue
        with pytest.raises(InputError, match=words) as info:
            check_array(bad, "truth")
        assert str(info.value).startswith("truth: ")


def test_check_mask_takes_bands_and_states_sizes_width_first() -> None:
    mask = np.zeros((4, 6, 2), np.uint8)
    mask[1, 2, 1] = 7
    valid = check_mask(mask, (4, 6, 3))
    assert valid.dtype == bool and valid.shape == (4, 6) and valid.sum() == 1 and valid[1, 2]
    with pytest.raises(InputError) as info:
        check_mask(np.ones((4, 6)), (4, 5), of="truth")
    assert str(info.value) == ("mask: the mask is 6x4 but the truth is 5x4; they must have "
                               "the same size")
