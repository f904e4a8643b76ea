"""Tests for cmsr.method.learning_rate: the slope test and the learning-rate state machine."""

from __future__ import annotations

import numpy as np
import pytest

from cmsr.method.learning_rate import LearningRateBySlope, error_still_falling


def _noise(n, seed=0, sigma=0.01):
    return np.random.default_rng(seed).normal(0.0, sigma, n)


# ------------------------------------------------------------------ error_still_falling


def test_clean_decreasing_series_is_falling():
    assert error_still_falling([1.0, 0.9, 0.8, 0.7])
    assert error_still_falling(list(0.5 * np.exp(-np.arange(12) / 5)))


def test_exactly_linear_fall_is_falling():
    # zero residual: any negative slope counts
    assert error_still_falling([3.0, 2.0, 1.0])
    assert error_still_falling(list(1.0 - 1e-6 * np.arange(12)))


def test_flat_series_is_not_falling():
    assert not error_still_falling([0.5] * 12)


def test_increasing_series_is_not_falling():
    assert not error_still_falling([0.1, 0.2, 0.3, 0.4])
    assert not error_still_falling(list(0.5 + 0.01 * np.arange(12) + _noise(12, 1, 0.001)))


def test_noisy_flat_series_is_rarely_called_falling():
    # pure noise: the slope exceeds 1.5 standard errors downwards in ~8% of draws
    calls = [error_still_falling(list(0.5 + _noise(12, seed))) for seed in range(400)]
    assert 0.02 < np.mean(calls) < 0.15
    assert not error_still_falling([0.5, 0.52, 0.49, 0.51, 0.5])


def test_noisy_clear_fall_is_almost_always_called_falling():
    calls = [error_still_falling(list(0.5 - 0.002 * np.arange(12) + _noise(12, seed, 0.002)))
             for seed in range(400)]
    assert np.mean(calls) > 0.95


def test_noisy_clear_fall_is_falling():
    errors = 0.5 - 0.01 * np.arange(12) + _noise(12, 2, 0.002)
    assert error_still_falling(list(errors))


def test_ratio_sets_how_clear_the_fall_must_be():
    # slope about 3.6 standard errors: falling at ratio 1.5, not at ratio 4
    errors = np.array([0.50, 0.51, 0.47, 0.50, 0.47, 0.47, 0.47, 0.44, 0.47, 0.45, 0.43, 0.47])
    x = np.arange(12) - 5.5
    slope = (x * (errors - errors.mean())).sum() / (x * x).sum()
    residual = errors - errors.mean() - slope * x
    t = -slope / np.sqrt((residual**2).sum() / 10 / (x * x).sum())
    assert 1.5 < t < 4
    assert error_still_falling(list(errors), ratio=1.5)
    assert error_still_falling(list(errors), ratio=t * 0.99)
    assert not error_still_falling(list(errors), ratio=t * 1.01)
    assert not error_still_falling(list(errors), ratio=4.0)


def test_falling_is_invariant_to_offset_and_positive_scale():
    errors = 0.5 - 0.003 * np.arange(10) + _noise(10, 3, 0.004)
    answer = error_still_falling(list(errors))
    assert error_still_falling(list(errors * 1000.0 + 7.0)) == answer
    assert error_still_falling(list(errors * 1e-4)) == answer


def test_falling_needs_at_least_three_errors():
    with pytest.raises(ValueError, match="at least 3"):
        error_still_falling([1.0, 0.5])


# ---------------------------------------------------------------- LearningRateBySlope


def test_rate_lowered_exactly_when_a_flat_window_is_full():
    schedule = LearningRateBySlope(1e-3, 9e-6, decay=10.0, window=5)
    results = [schedule.update(0.5) for _ in range(5)]
    assert results == [False, False, False, False, True]
    assert schedule.rate == pytest.approx(1e-4)
    assert schedule.errors == []  # a fresh window at the new rate
    assert not schedule.finished


def test_rate_not_lowered_while_error_falls():
    schedule = LearningRateBySlope(1e-3, 9e-6, window=5)
    for k in range(40):
        assert not schedule.update(1.0 - 0.01 * k)
    assert schedule.rate == 1e-3


def test_rate_lowered_after_fall_turns_flat():
    schedule = LearningRateBySlope(1e-3, 9e-6, window=6)
    falling = [1.0 - 0.05 * k for k in range(10)]
    assert not any(schedule.update(e) for e in falling)
    flat = 0.55 + _noise(12, 4, 0.001)
    decayed_at = [k for k, e in enumerate(flat) if schedule.update(float(e))]
    assert decayed_at  # it notices the plateau
    assert decayed_at[0] <= 9  # within a window or so of the fall ending
    assert schedule.rate < 1e-3


def test_rate_needs_a_new_full_window_after_each_decay():
    schedule = LearningRateBySlope(1.0, 1e-9, decay=2.0, window=4)
    decays = [k for k in range(20) if schedule.update(0.3)]
    assert decays == [3, 7, 11, 15, 19]
    assert schedule.rate == pytest.approx(2.0**-5)


def test_finished_after_enough_decays():
    schedule = LearningRateBySlope(1e-3, 9e-6, decay=10.0, window=3)
    states = []
    for _ in range(3):
        for _ in range(3):
            schedule.update(0.2)
        states.append(schedule.finished)
    # 1e-4 and 1e-5 are still >= 9e-6; 1e-6 is below
    assert states == [False, False, True]
    assert schedule.rate == pytest.approx(1e-6)


def test_allow_decay_false_never_decays_but_records():
    schedule = LearningRateBySlope(1e-3, 9e-6, window=3)
    for _ in range(30):
        assert not schedule.update(0.4, allow_decay=False)
    assert schedule.rate == 1e-3
    assert not schedule.finished
    assert len(schedule.errors) == 30
    # the warm-up errors count: the first allowed update already sees a flat window
    assert schedule.update(0.4)
    assert schedule.rate == pytest.approx(1e-4)


def test_decay_uses_only_the_last_window_of_errors():
    schedule = LearningRateBySlope(1e-3, 9e-6, window=4)
    for k in range(10):  # a long fall during warm-up
        schedule.update(1.0 - 0.05 * k, allow_decay=False)
    results = [schedule.update(0.5) for _ in range(4)]
    # the fall still shows in the window for three updates, then only the plateau is left
    assert results == [False, False, False, True]


def test_lower_to_caps_the_rate_once():
    schedule = LearningRateBySlope(1e-3, 1e-6, window=3)
    assert schedule.lower_to(1e-4) and schedule.rate == 1e-4 and schedule.errors == []
    assert not schedule.lower_to(1e-4) and not schedule.lower_to(1e-3)
    assert schedule.rate == 1e-4
