"""Tests for cmsr.evaluation.baselines: the registry, make_baseline and the shared interface."""

from __future__ import annotations

import numpy as np
import pytest

from cmsr import InputError
from cmsr.evaluation.baselines import BASELINES, Baseline, Bicubic, make_baseline

NAMES = ["bicubic", "guided-filter", "jbu", "zssr", "p2p", "mmsr"]


def test_registry_lists_the_six_cli_names() -> None:
    assert list(BASELINES) == NAMES
    for name, cls in BASELINES.items():
        assert issubclass(cls, Baseline)
        assert cls.name == name


@pytest.mark.parametrize("name", NAMES)
def test_make_baseline_builds_each(name: str) -> None:
    baseline = make_baseline(name)
    assert isinstance(baseline, BASELINES[name])
    assert baseline.name == name


def test_unknown_name_raises_input_error_listing_the_names() -> None:
    with pytest.raises(InputError) as caught:
        make_baseline("nope")
    message = str(caught.value)
    assert "nope" in message
    for name in NAMES:
        assert name in message


def test_unknown_option_raises_input_error_listing_the_options() -> None:
    with pytest.raises(InputError, match="sigma_range"):
        make_baseline("jbu", radius=3)
    with pytest.raises(InputError, match="none"):
        make_baseline("bicubic", eps=1.0)


def test_options_reach_the_instance() -> None:
    assert make_baseline("guided-filter", radius=3, eps=0.5).radius == 3
    assert make_baseline("p2p", iterations=7, device="cpu").iterations == 7


def test_predict_before_fit_raises() -> None:
    with pytest.raises(RuntimeError, match="fit"):
        Bicubic().predict()


def test_fit_validates_like_cmsr() -> None:
    guide = np.zeros((8, 8, 3))
    with pytest.raises(InputError):
        Bicubic().fit(np.full((4, 4), np.nan), guide)
