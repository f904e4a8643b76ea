"""Tests for cmsr.evaluation.protocols: names, input reduction, noise and guide displacement."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cmsr.errors import InputError
from cmsr.evaluation.displacement import displace, displacement_field
from cmsr.evaluation.protocols import (
    EvalProtocol,
    EvaluationPair,
    apply_protocol,
    modcrop,
)
from cmsr.method.resample import downsample


def _random(shape, dtype=np.uint8, seed=0):
    rng = np.random.default_rng(seed)
    if np.issubdtype(dtype, np.integer):
        return rng.integers(0, np.iinfo(dtype).max, size=shape, endpoint=True).astype(dtype)
    return rng.random(shape).astype(dtype)


# --------------------------------------------------------------------------- names


@pytest.mark.parametrize(
    ("protocol", "name"),
    [
        (EvalProtocol("avgpool", 4), "avgpool-x4"),
        (EvalProtocol(), "bicubic-x4"),
        (EvalProtocol("bicubic", 4, input_noise=0.05), "bicubic-x4-noise0.05"),
        (EvalProtocol("bicubic", 4, shift=6, rotation=2), "bicubic-x4-shift6-rot2-seed0"),
        (EvalProtocol("bicubic", 4, local_warp=4.0), "bicubic-x4-warp4-seed0"),
        (EvalProtocol("real"), "real"),
        (EvalProtocol("real", guide_noise=0.01, seed=7), "real-gnoise0.01-seed7"),
        (EvalProtocol("avgpool", 16, 0.1, 0.2, 1.5, 0.25, 3, 12),
         "avgpool-x16-noise0.1-gnoise0.2-shift1.5-rot0.25-warp3-seed12"),
        (EvalProtocol("avgpool", 2, input_noise=1e-5), "avgpool-x2-noise0.00001"),
    ],
)
def test_names(protocol, name):
    assert protocol.name == name


_amounts = st.one_of(
    st.just(0.0),
    st.floats(min_value=0.0, max_value=1e4, allow_nan=False, allow_infinity=False),
    st.integers(min_value=0, max_value=50).map(float),
)


_LABELS = {"noise": "input_noise", "gnoise": "guide_noise", "shift": "shift",
           "rot": "rotation", "warp": "local_warp", "seed": "seed"}


@settings(max_examples=300, deadline=None)
@given(
    kind=st.sampled_from(["avgpool", "bicubic", "real"]),
    scale=st.sampled_from([2, 3, 4, 8, 16]),
    input_noise=_amounts,
    guide_noise=_amounts,
    shift=_amounts,
    rotation=_amounts,
    local_warp=_amounts,
    seed=st.integers(min_value=0, max_value=2**63),
)
def test_the_name_says_every_setting_exactly(kind, scale, input_noise, guide_noise, shift,
                                            rotation, local_warp, seed):
    """Names are store keys: each setting reads back exactly, so two protocols never share
    one (``real`` has no scale)."""
    protocol = EvalProtocol(kind, 4 if kind == "real" else scale, input_noise, guide_noise,
                            shift, rotation, local_warp, seed)
    protocol.validate()
    name = protocol.name
    assert " " not in name and "+" not in name
    head, *parts = name.split("-x" if kind != "real" else "-", 1)
    assert head == kind
    tokens = parts[0].split("-") if parts else []
    if kind != "real":
        assert int(tokens.pop(0)) == scale
    said = {}
    for token in tokens:
        label = token.rstrip("0123456789.")
        number = token[len(label):]
        said[_LABELS[label]] = int(number) if label == "seed" else float(number)
    settings_ = {"input_noise": input_noise, "guide_noise": guide_noise, "shift": shift,
                 "rotation": rotation, "local_warp": local_warp}
    assert said == {**{k: v for k, v in settings_.items() if v},
                    **({"seed": seed} if protocol.displaced or seed else {})}


@pytest.mark.parametrize(
    "protocol",
    [
        EvalProtocol("lanczos"),
        EvalProtocol(scale=1),
        EvalProtocol(scale=4.0),  # type: ignore[arg-type]
        EvalProtocol(scale=True),  # type: ignore[arg-type]
        EvalProtocol(input_noise=-0.1),
        EvalProtocol(guide_noise=float("nan")),
        EvalProtocol(shift=float("inf")),
        EvalProtocol(rotation=-2.0),
        EvalProtocol(local_warp=-1),
        EvalProtocol(seed=-1),
        EvalProtocol(seed=1.5),  # type: ignore[arg-type]
    ],
)
def test_validate_rejects(protocol):
    with pytest.raises(InputError):
        protocol.validate()
    with pytest.raises(InputError):
        apply_protocol(np.zeros((8, 8)), np.zeros((8, 8)), protocol)


def test_validate_accepts_real_with_any_scale_and_numpy_numbers():
    EvalProtocol("real", scale=0).validate()
    EvalProtocol("bicubic", np.int64(8), np.float32(0.1), seed=np.int64(3)).validate()  # type: ignore[arg-type]


# --------------------------------------------------------------------------- reduction


@pytest.mark.parametrize("scale", [2, 4, 8, 16])
def test_avgpool_is_exact_block_means(scale):
    truth = _random((3 * scale, 2 * scale, 3), np.uint8, seed=scale)
    guide = _random((3 * scale, 2 * scale, 3), np.uint8, seed=99)
    pair = apply_protocol(truth, guide, EvalProtocol("avgpool", scale))
    expected = truth.astype(np.float64).reshape(3, scale, 2, scale, 3).mean(axis=(1, 3))
    assert pair.low.dtype == np.float32
    assert pair.low.shape == (3, 2, 3)
    np.testing.assert_array_equal(pair.low, expected.astype(np.float32))
    assert pair.guide is not guide
    np.testing.assert_array_equal(pair.guide, guide)
    assert pair.guide.dtype == np.uint8
    np.testing.assert_array_equal(pair.truth, truth)
    assert pair.mask is None
    assert isinstance(pair, EvaluationPair) and pair.protocol == EvalProtocol("avgpool", scale)


def test_avgpool_uint16_two_dimensional():
    truth = _random((12, 8), np.uint16)
    pair = apply_protocol(truth, np.zeros((12, 8, 3), np.uint8), EvalProtocol("avgpool", 4))
    expected = truth.astype(np.float64).reshape(3, 4, 2, 4).mean(axis=(1, 3))
    np.testing.assert_array_equal(pair.low, expected.astype(np.float32))
    assert pair.truth.dtype == np.uint16 and pair.low.ndim == 2


@pytest.mark.parametrize("shape", [(16, 12), (16, 12, 1), (16, 12, 2)])
def test_bicubic_matches_resample(shape):
    truth = (_random(shape, np.float64, seed=3) * 50.0 - 10.0).astype(np.float32)
    pair = apply_protocol(truth, np.zeros(shape[:2]), EvalProtocol("bicubic", 4))
    tensor = torch.from_numpy(truth.reshape(16, 12, -1).transpose(2, 0, 1).copy())[None]
    expected = downsample(tensor.double(), (4, 3), kernel="cubic")[0].numpy().transpose(1, 2, 0)
    assert pair.low.shape == (4, 3, *shape[2:])
    np.testing.assert_allclose(pair.low.reshape(4, 3, -1), expected, rtol=0, atol=1e-5)
    # float targets are not clipped: cubic overshoot is kept
    assert pair.truth.dtype == np.float32


def test_bicubic_of_integers_is_clipped_to_the_dtype_range():
    truth = np.zeros((16, 16), np.uint8)
    truth[:, 8:] = 255
    truth[::2, 8] = 0
    pair = apply_protocol(truth, truth, EvalProtocol("bicubic", 2))
    unclipped = downsample(torch.from_numpy(truth.astype(np.float64))[None, None], (8, 8))
    assert float(unclipped.min()) < 0 or float(unclipped.max()) > 255
    assert pair.low.min() >= 0 and pair.low.max() <= 255
    assert pair.low.dtype == np.float32


@pytest.mark.parametrize(("shape", "scale", "cropped"), [
    ((322, 319, 3), 4, (320, 316, 3)),
    ((17, 9), 8, (16, 8)),
    ((16, 16), 16, (16, 16)),
    ((10, 7), 3, (9, 6)),
])
def test_modcrop_sizes(shape, scale, cropped):
    assert modcrop(np.zeros(shape), scale).shape == cropped
    truth = _random(shape, np.uint8)
    guide = _random((*shape[:2], 3), np.uint8, seed=1)
    mask = np.ones(shape[:2], np.uint8)
    pair = apply_protocol(truth, guide, EvalProtocol("avgpool", scale), mask=mask)
    height, width = cropped[:2]
    assert pair.truth.shape == cropped
    np.testing.assert_array_equal(pair.truth, truth[:height, :width])
    np.testing.assert_array_equal(pair.guide, guide[:height, :width])
    assert pair.mask is not None and pair.mask.dtype == np.bool_
    assert pair.mask.shape == (height, width) and pair.mask.all()
    assert pair.low.shape[:2] == (height // scale, width // scale)


def test_mask_is_boolean_nonzero_and_cropped():
    mask = np.zeros((9, 9, 3), np.uint8)
    mask[2, 3, 1] = 7
    pair = apply_protocol(np.zeros((9, 9)), np.zeros((9, 9)), EvalProtocol("avgpool", 2),
                          mask=mask)
    assert pair.mask is not None and pair.mask.shape == (8, 8)
    assert pair.mask.sum() == 1 and pair.mask[2, 3]


def test_size_errors():
    with pytest.raises(InputError, match="guide"):
        apply_protocol(np.zeros((16, 16)), np.zeros((32, 32, 3)), EvalProtocol("bicubic", 2))
    with pytest.raises(InputError, match="mask"):
        apply_protocol(np.zeros((16, 16)), np.zeros((16, 16)), EvalProtocol(), mask=np.ones((8, 8)))
    with pytest.raises(InputError, match="smaller than the scale"):
        apply_protocol(np.zeros((3, 16)), np.zeros((3, 16)), EvalProtocol("bicubic", 4))
    with pytest.raises(InputError, match="truth"):
        apply_protocol(np.zeros(16), np.zeros((16, 16)), EvalProtocol())


# --------------------------------------------------------------------------- real


def test_real_needs_low():
    with pytest.raises(InputError, match=r"protocol real needs a target_\*_lr\* capture"):
        apply_protocol(np.zeros((64, 80)), np.zeros((64, 80, 3)), EvalProtocol("real"))


def test_real_keeps_everything_and_allows_other_guide_sizes():
    truth = _random((64, 80, 3), np.uint8)
    low = _random((8, 10, 3), np.uint8, seed=1)
    guide = _random((100, 130, 3), np.uint8, seed=2)
    pair = apply_protocol(truth, guide, EvalProtocol("real", scale=2), low=low)
    np.testing.assert_array_equal(pair.low, low.astype(np.float32))
    assert pair.low.dtype == np.float32
    np.testing.assert_array_equal(pair.truth, truth)
    np.testing.assert_array_equal(pair.guide, guide)
    assert pair.guide.dtype == np.uint8
    # not an integer multiple, but the same aspect to within one pixel
    apply_protocol(np.zeros((61, 79)), guide, EvalProtocol("real"), low=np.zeros((6, 8)))


@pytest.mark.parametrize(("truth", "low", "message"), [
    ((64, 80), (128, 160), "larger"),
    ((64, 80), (8, 20), "aspect"),
    ((64, 80, 3), (8, 10), "band"),
])
def test_real_low_must_fit(truth, low, message):
    with pytest.raises(InputError, match=message):
        apply_protocol(np.zeros(truth), np.zeros((64, 80, 3)), EvalProtocol("real"),
                       low=np.zeros(low))


def test_real_input_noise_clips_to_the_capture_dtype():
    low = np.full((16, 16), 250, np.uint8)
    pair = apply_protocol(np.zeros((64, 64), np.uint8), np.zeros((64, 64)),
                          EvalProtocol("real", input_noise=0.1), low=low)
    assert pair.low.max() == 255 and pair.low.min() < 250


# --------------------------------------------------------------------------- noise


def test_input_noise_statistics_and_reproducibility():
    truth = np.full((256, 256), 30000, np.uint16)
    protocol = EvalProtocol("avgpool", 2, input_noise=0.01, seed=5)
    pair = apply_protocol(truth, np.zeros((256, 256)), protocol)
    noise = pair.low.astype(np.float64) - 30000.0
    assert abs(noise.mean()) < 0.05 * 655.35
    assert noise.std() == pytest.approx(655.35, rel=0.03)
    again = apply_protocol(truth, np.zeros((256, 256)), protocol)
    np.testing.assert_array_equal(pair.low, again.low)
    other = apply_protocol(truth, np.zeros((256, 256)), EvalProtocol("avgpool", 2, 0.01, seed=6))
    assert not np.array_equal(pair.low, other.low)
    # the guide is untouched by input noise
    assert pair.guide.dtype == np.float64


def test_float_noise_uses_max_minus_min_and_is_not_clipped():
    truth = np.zeros((128, 128), np.float32)
    truth[0, 0] = 4.0
    pair = apply_protocol(truth, np.zeros((128, 128)), EvalProtocol("avgpool", 2, input_noise=0.5))
    assert pair.low.std() == pytest.approx(2.0, rel=0.05)
    assert pair.low.min() < -4.0


def test_guide_noise_per_band_clipped_float32():
    guide = np.full((128, 128, 3), 128, np.uint8)
    pair = apply_protocol(np.zeros((128, 128)), guide, EvalProtocol("bicubic", 2, guide_noise=0.02))
    assert pair.guide.dtype == np.float32 and pair.guide.shape == guide.shape
    noise = pair.guide.astype(np.float64) - 128.0
    assert noise.std() == pytest.approx(0.02 * 255, rel=0.05)
    assert not np.array_equal(noise[..., 0], noise[..., 1])
    clipped = apply_protocol(np.zeros((64, 64)), np.full((64, 64), 255, np.uint8),
                             EvalProtocol("bicubic", 2, guide_noise=0.1))
    assert clipped.guide.max() == 255.0 and clipped.guide.min() < 255.0
    # the input is untouched by guide noise
    np.testing.assert_array_equal(pair.low, 0.0)


def test_streams_are_independent():
    truth = _random((32, 32), np.uint8)
    guide = _random((32, 32, 3), np.uint8, seed=1)
    noisy = EvalProtocol("bicubic", 2, input_noise=0.1, guide_noise=0.1, local_warp=2, seed=3)
    quiet = EvalProtocol("bicubic", 2, local_warp=2, seed=3)
    input_only = EvalProtocol("bicubic", 2, input_noise=0.1, seed=3)
    a = apply_protocol(truth, guide, noisy)
    b = apply_protocol(truth, guide, quiet)
    c = apply_protocol(truth, guide, input_only)
    # same displacement with or without guide noise: the difference is the noise alone
    assert (a.guide - b.guide).std() == pytest.approx(0.1 * 255, rel=0.2)
    np.testing.assert_array_equal(a.low, c.low)
    np.testing.assert_array_equal(b.guide, displace(guide, local_warp=2, seed=3))


# --------------------------------------------------------------------------- displacement


def test_zero_displacement_is_identity():
    image = _random((7, 9, 3), np.uint8)
    moved = displace(image)
    assert moved.dtype == np.float32
    np.testing.assert_array_equal(moved, image.astype(np.float32))
    field = displacement_field(7, 9, shift=0, rotation=0, local_warp=0, seed=3)
    assert field.shape == (7, 9, 2) and field.dtype == np.float32 and not field.any()


@pytest.mark.parametrize(("direction", "dy", "dx"), [
    (0.0, 0, 3), (90.0, 3, 0), (180.0, 0, -3), (270.0, -3, 0),
])
def test_integer_shift_moves_pattern(direction, dy, dx):
    image = _random((20, 24, 2), np.float32, seed=4)
    moved = displace(image, shift=3.0, direction=direction)
    interior = np.s_[4:-4, 4:-4]
    expected = np.roll(image, (dy, dx), axis=(0, 1))
    np.testing.assert_allclose(moved[interior], expected[interior], rtol=0, atol=1e-5)


def test_random_shift_has_the_requested_length_and_moves_a_ramp():
    field = displacement_field(16, 20, shift=2.5, rotation=0, local_warp=0, seed=11)
    np.testing.assert_allclose(np.hypot(field[..., 0], field[..., 1]), 2.5, rtol=1e-6)
    assert np.ptp(field[..., 0]) == 0 and np.ptp(field[..., 1]) == 0
    ys, xs = np.mgrid[0:16, 0:20].astype(np.float64)
    ramp = 3.0 * xs + 5.0 * ys
    moved = displace(ramp, shift=2.5, seed=11)
    dx, dy = field[0, 0].astype(np.float64)
    # bicubic resampling (torch's a = -0.75) is not exact on a ramp: measured 0.37 here,
    # a position error of 0.06 px against the ramp's slope of 5.8 per px
    np.testing.assert_allclose(moved[4:-4, 4:-4], (ramp + 3.0 * dx + 5.0 * dy)[4:-4, 4:-4],
                               atol=0.6)
    other = displacement_field(16, 20, shift=2.5, rotation=0, local_warp=0, seed=12)
    assert not np.allclose(field, other)


@pytest.mark.parametrize("size", [8, 9])
def test_rotation_by_90_degrees_is_rot90(size):
    image = _random((size, size, 3), np.uint8, seed=size)
    moved = displace(image, rotation=90.0)
    np.testing.assert_allclose(moved, np.rot90(image).astype(np.float32), atol=1e-3)
    np.testing.assert_allclose(displace(image, rotation=180.0),
                               np.rot90(image, 2).astype(np.float32), atol=1e-3)


def test_rotation_keeps_the_centre_and_borders_are_replicated():
    image = _random((15, 21), np.uint8, seed=8)
    moved = displace(image, rotation=17.0, shift=5.0, local_warp=3.0, seed=2)
    assert moved.shape == image.shape and moved.dtype == np.float32
    assert moved.min() >= image.min() and moved.max() <= image.max()
    flat = displace(np.full((15, 21), 200, np.uint8), rotation=17.0, shift=5.0,
                    local_warp=3.0, seed=2)
    np.testing.assert_allclose(flat, 200.0, rtol=1e-6)  # no black borders
    field = displacement_field(15, 21, shift=0, rotation=30.0, local_warp=0, seed=0)
    np.testing.assert_allclose(field[7, 10], 0.0, atol=1e-6)


@pytest.mark.parametrize(("height", "width", "amount", "seed"), [
    (32, 32, 4.0, 0), (48, 20, 1.5, 1), (5, 7, 2.0, 2), (64, 96, 0.25, 3),
])
def test_local_warp_max_length_and_smoothness(height, width, amount, seed):
    field = displacement_field(height, width, shift=0, rotation=0, local_warp=amount,
                               seed=seed)
    length = np.hypot(field[..., 0].astype(np.float64), field[..., 1].astype(np.float64))
    assert length.max() == pytest.approx(amount, rel=1e-6)
    assert length.min() < amount
    # smooth: neighbouring offsets differ by a small fraction of the amplitude
    step = max(np.abs(np.diff(field, axis=0)).max(), np.abs(np.diff(field, axis=1)).max())
    assert step <= amount * 4.0 / min(height, width) * 3.0
    again = displacement_field(height, width, shift=0, rotation=0, local_warp=amount,
                               seed=seed)
    np.testing.assert_array_equal(field, again)


def test_warp_field_is_independent_of_shift_stream():
    warp = displacement_field(24, 24, shift=0, rotation=0, local_warp=2, seed=4)
    both = displacement_field(24, 24, shift=3, rotation=0, local_warp=2, seed=4)
    shift = displacement_field(24, 24, shift=3, rotation=0, local_warp=0, seed=4)
    np.testing.assert_allclose(both, warp + shift, atol=1e-5)


def test_apply_protocol_displaces_the_guide_only():
    truth = _random((32, 32), np.uint16)
    guide = _random((32, 32, 3), np.uint8, seed=1)
    protocol = EvalProtocol("bicubic", 4, shift=2, rotation=3, local_warp=1.5, seed=9)
    pair = apply_protocol(truth, guide, protocol)
    expected = displace(guide, shift=2, rotation=3, local_warp=1.5, seed=9)
    assert pair.guide.dtype == np.float32
    np.testing.assert_array_equal(pair.guide, expected)
    plain = apply_protocol(truth, guide, EvalProtocol("bicubic", 4))
    np.testing.assert_array_equal(pair.low, plain.low)
    np.testing.assert_array_equal(pair.truth, truth)
