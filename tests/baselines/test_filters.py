"""Tests for the fixed baselines: bicubic, guided filter and joint bilateral upsampling."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from cmsr.evaluation.baselines import Bicubic, GuidedFilter, JointBilateralUpsampling, make_baseline
from cmsr.evaluation.baselines.guided_filter import box_filter, guided_filter
from cmsr.evaluation.baselines.jbu import joint_bilateral_upsample
from cmsr.method.resample import upsample_bicubic

FIXED = ["bicubic", "guided-filter", "jbu"]


def _naive_box(x: np.ndarray, radius: int) -> np.ndarray:
    height, width = x.shape
    out = np.empty_like(x)
    for i in range(height):
        for j in range(width):
            window = x[max(0, i - radius):i + radius + 1, max(0, j - radius):j + radius + 1]
            out[i, j] = window.mean()
    return out


@pytest.mark.parametrize("radius", [0, 1, 2, 5, 20])
def test_box_filter_equals_naive_windowed_mean(radius: int) -> None:
    x = np.random.default_rng(radius).random((9, 13))
    got = box_filter(torch.from_numpy(x)[None, None], radius)[0, 0].numpy()
    np.testing.assert_allclose(got, _naive_box(x, radius), rtol=1e-12, atol=1e-12)


def test_box_filter_keeps_leading_dimensions() -> None:
    x = torch.rand(2, 3, 4, 7, 6, dtype=torch.float64)
    got = box_filter(x, 2)
    assert got.shape == x.shape
    torch.testing.assert_close(got[1, 2, 3], box_filter(x[1, 2, 3][None, None], 2)[0, 0])


def test_guided_filter_with_itself_and_tiny_eps_reproduces_the_source() -> None:
    source = torch.rand(1, 1, 12, 10, dtype=torch.float64)
    out = guided_filter(source, source, radius=2, eps=1e-10)
    torch.testing.assert_close(out, source, rtol=0, atol=1e-6)


def test_colour_guided_filter_reproduces_a_linear_function_of_the_guide() -> None:
    # the colour form (3x3 covariance per window) is exact for q = a^T I + b
    guide = torch.rand(1, 3, 12, 10, dtype=torch.float64)
    source = (0.5 * guide[:, :1] - 0.3 * guide[:, 1:2] + 0.8 * guide[:, 2:] + 0.1)
    out = guided_filter(guide, source, radius=3, eps=1e-10)
    torch.testing.assert_close(out, source, rtol=0, atol=1e-6)


def test_guided_filter_with_huge_eps_is_a_box_mean() -> None:
    guide = torch.rand(1, 3, 10, 10, dtype=torch.float64)
    source = torch.rand(1, 2, 10, 10, dtype=torch.float64)
    out = guided_filter(guide, source, radius=2, eps=1e9)
    torch.testing.assert_close(out, box_filter(box_filter(source, 2), 2), rtol=0, atol=1e-6)


def _naive_spatial_upsample(target: np.ndarray, size: tuple[int, int], sigma: float,
                            support: int) -> np.ndarray:
    """Gaussian-weighted mean of the support x support LR pixels around each HR pixel."""
    h, w = target.shape
    height, width = size
    half = support // 2
    out = np.zeros(size)
    for y in range(height):
        for x in range(width):
            u = (y + 0.5) * h / height - 0.5
            v = (x + 0.5) * w / width - 0.5
            ci, cj = math.floor(u + 0.5), math.floor(v + 0.5)
            total = weight_sum = 0.0
            for i in range(ci - half, ci + half + 1):
                for j in range(cj - half, cj + half + 1):
                    if 0 <= i < h and 0 <= j < w:
                        weight = math.exp(-((u - i) ** 2 + (v - j) ** 2) / (2 * sigma**2))
                        total += weight * target[i, j]
                        weight_sum += weight
            out[y, x] = total / weight_sum
    return out


@pytest.mark.parametrize(("size", "sigma"), [((16, 12), 0.5), ((13, 9), 1.0)])
def test_jbu_with_constant_guide_is_a_spatial_gaussian_upsampling(size, sigma) -> None:
    target = np.random.default_rng(1).random((4, 3))
    guide = torch.full((1, 3, *size), 0.4, dtype=torch.float64)
    got = joint_bilateral_upsample(torch.from_numpy(target)[None, None], guide,
                                   sigma_spatial=sigma, sigma_range=1e6)[0, 0].numpy()
    np.testing.assert_allclose(got, _naive_spatial_upsample(target, size, sigma, 5),
                               rtol=1e-10, atol=1e-12)


def test_jbu_row_blocks_do_not_change_the_result() -> None:
    target = torch.rand(2, 2, 5, 6, dtype=torch.float64)
    guide = torch.rand(2, 3, 20, 24, dtype=torch.float64)
    whole = joint_bilateral_upsample(target, guide)
    blocks = joint_bilateral_upsample(target, guide, max_chunk_bytes=1)
    torch.testing.assert_close(whole, blocks)


def test_jbu_ignores_invalid_samples_next_to_valid_ones() -> None:
    target = torch.zeros(1, 1, 4, 4, dtype=torch.float64)
    target[..., 1, 1] = 100.0
    valid = torch.ones(1, 1, 4, 4, dtype=torch.float64)
    valid[..., 1, 1] = 0.0
    guide = torch.full((1, 1, 16, 16), 0.5, dtype=torch.float64)
    out = joint_bilateral_upsample(target, guide, valid=valid, sigma_range=1e6)
    assert float(out.abs().max()) < 1e-3


def test_bicubic_is_cmsr_resample() -> None:
    target = np.random.default_rng(2).random((6, 5)).astype(np.float32)
    guide = np.random.default_rng(3).random((24, 20, 3))
    baseline = Bicubic().fit(target, guide)
    assert baseline.pair is not None
    expected = upsample_bicubic(baseline.pair.target, (24, 20))
    torch.testing.assert_close(baseline.predict_tensor(), expected)


@pytest.mark.parametrize("name", FIXED)
@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_fixed_shapes_and_dtypes_follow_the_target(name, dtype, edge_pair) -> None:
    target = edge_pair.target_lr * 200 + 20 if dtype == np.uint8 else edge_pair.target_lr
    target = np.rint(target).astype(dtype) if dtype == np.uint8 else target.astype(dtype)
    out = make_baseline(name).fit(target, edge_pair.guide).predict()
    assert out.shape == edge_pair.truth.shape
    assert out.dtype == dtype
    again = make_baseline(name).fit(target, edge_pair.guide).predict()
    np.testing.assert_array_equal(out, again)


@pytest.mark.parametrize("name", FIXED)
def test_fixed_multiband_target_keeps_its_band_axis(name, edge_pair) -> None:
    target = np.stack([edge_pair.target_lr, 1 - edge_pair.target_lr], axis=-1)
    out = make_baseline(name).fit(target, edge_pair.guide).predict()
    assert out.shape == (*edge_pair.truth.shape, 2)
    assert out.dtype == np.float32


@pytest.mark.parametrize("baseline", [GuidedFilter(), JointBilateralUpsampling()])
def test_guided_filters_beat_bicubic_on_edge_aligned_pair(baseline, edge_pair, rmse) -> None:
    # (the grey guide is left out: its band mean is not monotone in the target here)
    bicubic = Bicubic().fit(edge_pair.target_lr, edge_pair.guide).predict()
    guided = baseline.fit(edge_pair.target_lr, edge_pair.guide).predict()
    assert rmse(guided, edge_pair.truth) < 0.8 * rmse(bicubic, edge_pair.truth)


def test_grey_guided_filter_uses_the_band_mean(edge_pair) -> None:
    baseline = GuidedFilter(grey=True, radius=3).fit(edge_pair.target_lr, edge_pair.guide)
    assert baseline.pair is not None
    grey = baseline.pair.guide.mean(dim=1, keepdim=True)
    enlarged = upsample_bicubic(baseline.pair.target, tuple(grey.shape[-2:]))
    torch.testing.assert_close(baseline.predict_tensor(),
                               guided_filter(grey, enlarged, 3, baseline.eps))


def test_guided_filter_default_radius_grows_with_the_scale(edge_pair) -> None:
    baseline = GuidedFilter().fit(edge_pair.target_lr, edge_pair.guide)
    assert baseline.pair is not None
    assert baseline.window_radius(baseline.pair) == 8
    assert GuidedFilter(radius=3).window_radius(baseline.pair) == 3
