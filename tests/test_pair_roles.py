"""Tests for the protocol switches of learned models: disparity, swap, reduce_guide."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cmsr.errors import InputError
from cmsr.evaluation.datasets import Scene
from cmsr.evaluation.displacement import (
    DISPARITY_VARIATION,
    disparity_field,
    displace,
    displacement_field,
)
from cmsr.evaluation.evaluate import load_pair
from cmsr.evaluation.protocols import EvalProtocol, apply_protocol
from cmsr.files import write_image


def test_disparity_field_has_the_mean_and_spread_asked_for() -> None:
    field = disparity_field(40, 60, mean=4.0, seed=3)
    assert field.shape == (40, 60)
    assert field.mean() == pytest.approx(4.0)
    assert field.min() >= 4.0 * (1 - DISPARITY_VARIATION) - 1e-9
    assert field.max() <= 4.0 * (1 + DISPARITY_VARIATION) + 1e-9
    assert field.max() - field.min() > 1.0  # not constant
    assert np.array_equal(field, disparity_field(40, 60, mean=4.0, seed=3))
    assert not np.array_equal(field, disparity_field(40, 60, mean=4.0, seed=4))
    assert not disparity_field(5, 5, mean=0.0, seed=0).any()


def test_disparity_moves_the_guide_horizontally_only() -> None:
    field = displacement_field(20, 30, shift=0.0, rotation=0.0, local_warp=0.0, seed=1,
                               disparity=2.0)
    assert not field[..., 1].any()
    assert field[..., 0].mean() == pytest.approx(2.0, abs=1e-5)
    ramp = np.tile(np.arange(30, dtype=np.float64), (20, 1))
    moved = displace(ramp, disparity=2.0, seed=1)
    inner = (moved - ramp)[:, 5:-8]  # each pixel shows the scene about 2 px to its right
    assert inner.min() >= 1.0 and inner.max() <= 3.0


def test_disparity_leaves_the_other_random_streams_alone() -> None:
    plain = displacement_field(16, 16, shift=3.0, rotation=0.0, local_warp=1.0, seed=2)
    both = displacement_field(16, 16, shift=3.0, rotation=0.0, local_warp=1.0, seed=2,
                              disparity=1.0)
    assert np.allclose(both[..., 1], plain[..., 1])


def test_protocol_names_and_checks() -> None:
    protocol = EvalProtocol("bicubic", 4, disparity=4, swap=True, reduce_guide=True)
    assert protocol.name == "bicubic-x4-swap-lowguide-disp4-seed0"
    assert protocol.displaced
    assert EvalProtocol("avgpool", 2, reduce_guide=True).name == "avgpool-x2-lowguide"
    assert EvalProtocol("bicubic", 4).name == "bicubic-x4"  # unchanged for old reports
    with pytest.raises(InputError, match="swap needs ground truth"):
        EvalProtocol("real", swap=True).validate()
    with pytest.raises(InputError, match="disparity"):
        EvalProtocol("bicubic", 4, disparity=-1).validate()
    with pytest.raises(InputError, match="reduce_guide"):
        EvalProtocol("bicubic", 4, reduce_guide=1).validate()  # type: ignore[arg-type]


def test_band_choice_names_the_protocol_and_is_checked() -> None:
    assert EvalProtocol("bicubic", 4).name == "bicubic-x4"  # without bands: as it was
    assert EvalProtocol("real").name == "real"
    assert EvalProtocol("bicubic", 4, target_band=2).name == "bicubic-x4-band2"
    assert EvalProtocol("avgpool", 2, guide_bands=(4, 3, 2)).name == "avgpool-x2-gbands4.3.2"
    named = EvalProtocol("bicubic", 4, disparity=4, swap=True, reduce_guide=True,
                         target_band=1, guide_bands=(2,))
    assert named.name == "bicubic-x4-swap-lowguide-band1-gbands2-disp4-seed0"
    assert EvalProtocol(guide_bands=(1, 2)).name != EvalProtocol(guide_bands=(2, 1)).name
    assert EvalProtocol(guide_bands=(1, 23)).name != EvalProtocol(guide_bands=(12, 3)).name
    for bad in ({"target_band": 0}, {"target_band": True}, {"target_band": 1.5},
                {"guide_bands": ()}, {"guide_bands": (1, 0)}, {"guide_bands": [1, 2]}):
        field = next(iter(bad))
        with pytest.raises(InputError, match=f"protocol: {field} must be"):
            EvalProtocol("bicubic", 4, **bad).validate()  # type: ignore[arg-type]
    EvalProtocol("bicubic", 4, target_band=3, guide_bands=(1, 1, 2)).validate()


def test_reduce_guide_gives_the_input_size_and_keeps_the_full_guide() -> None:
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 255, (16, 24), dtype=np.uint8)
    guide = rng.integers(0, 255, (16, 24, 3), dtype=np.uint8)
    pair = apply_protocol(truth, guide, EvalProtocol("avgpool", 4, reduce_guide=True))
    assert pair.low.shape == (4, 6) and pair.guide.shape == (4, 6, 3)
    assert pair.guide.dtype == np.float32
    assert pair.guide_full is not None and np.array_equal(pair.guide_full, guide)
    expected = guide.reshape(4, 4, 6, 4, 3).mean(axis=(1, 3))
    assert np.allclose(pair.guide, expected, atol=1e-4)
    enlarged = pair.guide_at_truth_size()
    assert enlarged.shape == guide.shape and enlarged.dtype == np.float32
    plain = apply_protocol(truth, guide, EvalProtocol("avgpool", 4))
    assert plain.guide_full is None and plain.guide_at_truth_size() is plain.guide


def test_swap_makes_the_guide_file_the_truth(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    nir = rng.integers(0, 255, (16, 16), dtype=np.uint8)
    rgb = rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)
    write_image(tmp_path / "target_nir.png", nir)
    write_image(tmp_path / "guide_rgb.png", rgb)
    write_image(tmp_path / "mask_nir.png", np.zeros((16, 16), np.uint8))
    scene = Scene("s", tmp_path / "guide_rgb.png", tmp_path / "target_nir.png",
                  mask=tmp_path / "mask_nir.png")
    pair = load_pair(scene, EvalProtocol("bicubic", 2, swap=True, reduce_guide=True,
                                         disparity=1))
    assert np.array_equal(pair.truth, rgb) and pair.low.shape == (8, 8, 3)
    assert pair.guide.shape == (8, 8) and pair.guide_full is not None
    assert pair.mask is None  # the target's mask does not belong to the new truth
    assert not np.array_equal(pair.guide_full, nir)  # displaced
