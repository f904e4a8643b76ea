"""Tests for cmsr.learned.model_file and cmsr.learned.inference: round trips, checks, errors."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from learned_pairs import make_pairs, quick_settings, tiny_config

from cmsr.errors import InputError
from cmsr.learned.inference import LearnedModel
from cmsr.learned.model_file import (
    ValueRange,
    load_checkpoint,
    load_model,
    model_dict,
    save_model,
)
from cmsr.learned.network import CrossSpectralNet
from cmsr.learned.training import TrainingResult, train_model
from cmsr.method.checkpoint import write_state_file


@pytest.fixture(scope="module")
def trained() -> TrainingResult:
    return train_model(make_pairs(2, disparity=2), config=tiny_config(), scale=2,
                       settings=quick_settings(max_steps=3),
                       protocol={"name": "bicubic-x2", "swap": True})


def one_line_error(path: Path, match: str) -> None:
    with pytest.raises(InputError) as caught:
        load_model(path)
    message = str(caught.value)
    assert message.startswith(str(path)) and "\n" not in message
    assert match in message, message


def test_round_trip_gives_identical_outputs(trained: TrainingResult, tmp_path: Path) -> None:
    path = save_model(tmp_path / "m.pt", trained.network, trained.info)
    model = LearnedModel.load(path)
    assert model.info == trained.info
    pair = make_pairs(1, low_size=12)[0]
    before = LearnedModel(trained.network, trained.info).predict(pair.low, pair.guide)
    after = model.predict(pair.low, pair.guide)
    assert before.dtype == after.dtype == np.float32  # the input was float32
    assert np.array_equal(before, after)
    assert model.predict(pair.truth[::2, ::2], pair.guide).dtype == np.uint8


def test_saving_never_replaces_without_overwrite(trained: TrainingResult,
                                                 tmp_path: Path) -> None:
    path = save_model(tmp_path / "m.pt", trained.network, trained.info)
    with pytest.raises(InputError, match="already exists"):
        save_model(path, trained.network, trained.info)
    save_model(path, trained.network, trained.info, overwrite=True)


def test_a_model_refuses_a_pair_it_was_not_trained_for(trained: TrainingResult) -> None:
    model = LearnedModel(trained.network, trained.info, source="rig.pt")
    pair = make_pairs(1, low_size=12)[0]
    cases = [
        (np.stack([pair.low] * 2, -1), pair.guide, "1-band targets"),
        (pair.low, pair.guide[..., :2], "3-band guides"),
        (pair.low, pair.guide_truth, "at the target's low resolution"),
        (pair.truth[::2, ::2].astype(np.uint16), pair.guide, "trained on uint8"),
    ]
    for target, guide, match in cases:
        with pytest.raises(InputError) as caught:
            model.predict(target, guide, target_name="t.png", guide_name="g.png")
        assert str(caught.value).startswith("rig.pt: ") and match in str(caught.value)
    with pytest.raises(InputError, match="constant"):
        model.predict(np.zeros((12, 12)), pair.guide)


def test_a_high_resolution_guide_model_takes_scale_times_the_target(tmp_path: Path) -> None:
    pairs = make_pairs(2, resolution="high")
    result = train_model(pairs, config=tiny_config(resolution="high"), scale=2,
                         settings=quick_settings(max_steps=2))
    model = LearnedModel(result.network, result.info)
    out = model.predict(pairs[0].low, pairs[0].guide_truth[:-1])  # one row short: resized
    assert out.shape == pairs[0].truth.shape
    with pytest.raises(InputError, match="2 times the target's size"):
        model.predict(pairs[0].low, pairs[0].guide_truth[::2])


def test_tiles_agree_with_the_whole_image(trained: TrainingResult) -> None:
    pair = make_pairs(1, low_size=40)[0]
    whole = LearnedModel(trained.network, trained.info).predict(pair.low, pair.guide)
    tiled = LearnedModel(trained.network, trained.info, tile=16, halo=8).predict(
        pair.low, pair.guide)
    assert whole.shape == tiled.shape == (80, 80)
    assert float(np.abs(whole - tiled).mean()) < 0.5  # grey levels; not exact (see docs)


def test_corrupt_and_foreign_files_give_one_line(trained: TrainingResult,
                                                 tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a model at all")
    one_line_error(garbage, "not a cmsr learned model")
    good = save_model(tmp_path / "good.pt", trained.network, trained.info)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:300])
    one_line_error(truncated, "damaged")
    one_line_error(tmp_path / "missing.pt", "does not exist")
    warp = tmp_path / "warp.pt"
    write_state_file(warp, {"format": "cmsr-warp", "version": 1})
    one_line_error(warp, "is a cmsr warp, not a cmsr learned model")


def edited(trained: TrainingResult, tmp_path: Path, name: str, **changes: object) -> Path:
    state = model_dict(trained.network, trained.info)
    for key, value in changes.items():
        state[key] = value
    return write_state_file(tmp_path / name, state)


def test_every_field_is_checked(trained: TrainingResult, tmp_path: Path) -> None:
    state = model_dict(trained.network, trained.info)
    weights = dict(state["state_dict"])
    first = next(iter(weights))
    weights[first] = torch.zeros(1)
    cases = {
        "version": ({"version": 2}, "format version 2"),
        "method": ({"method": "esrgan"}, "method 'esrgan'"),
        "newer": ({"cmsr": "99.0.0"}, "newer than this cmsr"),
        "scale": ({"scale": 1}, "scale 1"),
        "bands": ({"target_bands": 0}, "target_bands 0"),
        "arch": ({"architecture": {"blocks": 2, "colour": 1}}, "unknown architecture"),
        "arch2": ({"architecture": {**state["architecture"], "blocks": 0}}, "blocks"),
        "norm": ({"normalization": {"target": {"offset": 0.0, "span": 0.0, "dtype": "uint8"},
                                    "guide": {"offset": 0.0, "span": 1.0}}}, "span 0"),
        "weights": ({"state_dict": weights}, "do not fit its architecture"),
        "other-scale": ({"scale": 3}, "do not fit its architecture"),
    }
    for name, (changes, match) in cases.items():
        one_line_error(edited(trained, tmp_path, f"{name}.pt", **changes), match)
    broken = dict(state)
    del broken["normalization"]
    one_line_error(write_state_file(tmp_path / "incomplete.pt", broken), "no 'normalization'")
    bad = {k: v.clone() for k, v in state["state_dict"].items()}
    bad[first] = bad[first].fill_(float("nan"))
    one_line_error(edited(trained, tmp_path, "nan.pt", state_dict=bad), "non-finite")


def test_a_checkpoint_is_not_a_model_and_back(trained: TrainingResult, tmp_path: Path) -> None:
    checkpoint = tmp_path / "run.ckpt"
    train_model(make_pairs(2), config=tiny_config(), scale=2,
                settings=quick_settings(max_steps=1), checkpoint=checkpoint)
    one_line_error(checkpoint, "training checkpoint, not a cmsr learned model")
    model = save_model(tmp_path / "m.pt", trained.network, trained.info)
    with pytest.raises(InputError, match="learned model, not a cmsr training checkpoint"):
        load_checkpoint(model)
    assert isinstance(load_checkpoint(checkpoint)["network"], CrossSpectralNet)


def test_value_ranges() -> None:
    assert ValueRange.of([np.zeros(2, np.uint16)], np.dtype(np.uint16)).span == 65535.0
    constant = ValueRange.of([np.full((2, 2), 3.0)])
    assert (constant.offset, constant.span) == (3.0, 1.0)
    normalization = dataclasses.replace(constant, dtype="uint8").normalization()
    assert normalization.dtype == np.uint8
