"""The Wald protocol's aggregations and scores (cmsr.evaluation.wald), on hand-made arrays."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cmsr.evaluation.wald import block_mean, crop_to_multiple, radiometric_mean, score_sharpening


def test_block_mean_by_hand():
    image = np.array([[1.0, 2.0, 10.0, 20.0],
                      [3.0, 4.0, 30.0, 40.0],
                      [0.0, 0.0, -1.0, 1.0],
                      [0.0, 8.0, 5.0, 5.0]])
    np.testing.assert_array_equal(block_mean(image, 2), [[2.5, 25.0], [2.0, 2.5]])
    np.testing.assert_array_equal(block_mean(image, 4), [[128.0 / 16]])
    np.testing.assert_array_equal(block_mean(image, 1), image)


def test_block_mean_leaves_out_nan_and_keeps_all_nan_blocks_missing():
    image = np.array([[1.0, np.nan, np.nan, np.nan],
                      [3.0, 5.0, np.nan, np.nan]])
    result = block_mean(image, 2)
    assert result[0, 0] == 3.0
    assert math.isnan(result[0, 1])


def test_block_mean_refuses_partial_blocks_and_crop_fixes_them():
    image = np.arange(35.0).reshape(5, 7)
    with pytest.raises(ValueError, match="not a multiple of 2"):
        block_mean(image, 2)
    cropped = crop_to_multiple(image, 2)
    assert cropped.shape == (4, 6)
    assert block_mean(cropped, 2)[0, 0] == (0 + 1 + 7 + 8) / 4


def test_radiometric_mean_by_hand():
    kelvin = np.array([[300.0, 310.0, 280.0, 280.0],
                       [290.0, 300.0, 280.0, 280.0]])
    result = radiometric_mean(kelvin, 2)
    # ((300^4 + 310^4 + 290^4 + 300^4) / 4) ** 0.25 = (32508020000 / 4) ** 0.25
    assert result[0, 0] == pytest.approx(300.24973428713133, abs=1e-9)
    assert result[0, 1] == pytest.approx(280.0, abs=1e-9)
    # warmer than the plain mean (300) wherever the block is not uniform
    assert result[0, 0] > block_mean(kelvin, 2)[0, 0]


def test_radiometric_mean_needs_kelvin():
    with pytest.raises(ValueError, match="kelvin"):
        radiometric_mean(np.array([[20.0, -3.0], [1.0, 2.0]]), 2)


def test_scores_of_a_perfect_result_with_an_inconsistent_input():
    truth = np.arange(1.0, 9.0).reshape(4, 2)
    score = score_sharpening(truth.copy(), truth, np.array([[2.0], [7.0]]), 2)
    assert score.rmse == 0.0 and score.bias == 0.0
    assert score.correlation == pytest.approx(1.0)
    # block means are 2.5 and 6.5: off by 0.5 each
    assert score.conservation_rmse == pytest.approx(0.5)


def test_scores_of_a_doubled_and_of_an_inverted_result():
    truth = np.arange(1.0, 9.0).reshape(4, 2)
    coarse = block_mean(truth, 2)  # 2.5, 6.5
    doubled = score_sharpening(2 * truth, truth, coarse, 2)
    assert doubled.bias == pytest.approx(4.5)
    assert doubled.rmse == pytest.approx(math.sqrt(204 / 8))
    assert doubled.correlation == pytest.approx(1.0)
    assert doubled.conservation_rmse == pytest.approx(math.sqrt((2.5**2 + 6.5**2) / 2))
    inverted = score_sharpening(9 - truth, truth, coarse, 2)
    assert inverted.correlation == pytest.approx(-1.0)
    assert inverted.bias == pytest.approx(0.0)


def test_scores_with_the_radiometric_aggregation_and_missing_pixels():
    truth = np.full((4, 4), 300.0)
    truth[0, 0] = np.nan
    result = np.full((4, 4), 301.0)
    score = score_sharpening(result, truth, np.full((2, 2), 300.0), 2, radiometric_mean)
    assert score.bias == pytest.approx(1.0) and score.rmse == pytest.approx(1.0)
    assert math.isnan(score.correlation)  # a constant truth has no correlation
    assert score.conservation_rmse == pytest.approx(1.0)


def test_scores_refuse_mismatched_shapes():
    with pytest.raises(ValueError, match="differ in shape"):
        score_sharpening(np.zeros((4, 4)), np.zeros((4, 2)), np.zeros((2, 2)), 2)
    with pytest.raises(ValueError, match="coarse input"):
        score_sharpening(np.zeros((4, 4)), np.zeros((4, 4)), np.zeros((1, 2)), 2)
