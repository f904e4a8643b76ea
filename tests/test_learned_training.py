"""Tests for cmsr.learned.training: the loss falls, the budget holds, resume continues."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from learned_pairs import make_pairs, quick_settings, tiny_config

from cmsr.errors import InputError
from cmsr.learned.inference import LearnedModel
from cmsr.learned.model_file import load_checkpoint
from cmsr.learned.training import Progress, split_pairs, train_model


def frozen_clock(step: float = 0.0) -> Callable[[], float]:
    """A clock that advances ``step`` seconds each time it is read."""
    now = [0.0]

    def clock() -> float:
        now[0] += step
        return now[0]

    return clock


def reconstruction_error(model: LearnedModel, pairs: list) -> float:
    errors = [np.mean((model.predict(p.low, p.guide).astype(float) - p.truth) ** 2)
              for p in pairs]
    return float(np.mean(errors))


def test_training_lowers_the_error_on_the_training_pairs() -> None:
    pairs = make_pairs(3, disparity=2)
    untrained = train_model(pairs, config=tiny_config(), scale=2,
                            settings=quick_settings(max_steps=1, learning_rate=1e-9,
                                                    validation_fraction=0.0))
    trained = train_model(pairs, config=tiny_config(), scale=2,
                          settings=quick_settings(max_steps=40, validation_fraction=0.0))
    before = reconstruction_error(LearnedModel(untrained.network, untrained.info), pairs)
    after = reconstruction_error(LearnedModel(trained.network, trained.info), pairs)
    assert trained.steps == 40
    assert after < 0.8 * before


@pytest.mark.parametrize("variant", ["baseline", "with-guide"])
def test_ablation_variants_train(variant: str) -> None:
    result = train_model(make_pairs(2), config=tiny_config(variant), scale=2,
                         settings=quick_settings(max_steps=3))
    assert result.steps == 3 and result.info.config.variant == variant


def test_a_high_resolution_guide_model_trains() -> None:
    pairs = make_pairs(2, resolution="high", target_bands=2)
    result = train_model(pairs, config=tiny_config(resolution="high"), scale=2,
                         settings=quick_settings(max_steps=3))
    assert result.info.target_bands == 2 and result.info.guide_bands == 3
    assert result.info.target_range.dtype == "uint8"
    assert result.info.target_range.span == 255.0


def test_the_time_budget_is_respected() -> None:
    seen: list[Progress] = []
    result = train_model(make_pairs(2), config=tiny_config(), scale=2,
                         settings=quick_settings(minutes=0.1), on_progress=seen.append,
                         clock=frozen_clock(0.5))  # every step "takes" half a second
    assert result.steps == 12  # 6 s budget
    assert 6.0 <= result.seconds <= 7.0  # stops at the first step boundary after it
    assert seen[-1].budget_seconds == 6.0
    assert seen[-1].learning_rate < seen[0].learning_rate


def test_validation_keeps_the_best_weights() -> None:
    pairs = make_pairs(4)
    result = train_model(pairs, config=tiny_config(), scale=2,
                         settings=quick_settings(max_steps=15, validation_fraction=0.25))
    scores = [h["validation_psnr"] for h in result.history]
    assert len(scores) == 3 and result.best_psnr == max(scores)
    assert result.info.training["validation_pairs"] == split_pairs(
        [p.name for p in pairs], 0.25, 0)[1]
    assert math.isfinite(result.info.training["validation_bicubic_psnr"])


def test_split_holds_out_at_least_one_and_never_all() -> None:
    assert len(split_pairs(["a", "b"], 0.01, 0)[1]) == 1
    assert split_pairs(["a"], 0.5, 0) == (["a"], [])
    assert split_pairs(["a", "b", "c"], 0.0, 0)[1] == []
    train, held = split_pairs([str(i) for i in range(10)], 0.3, 5)
    assert len(held) == 3 and sorted(train + held) == sorted(str(i) for i in range(10))


def test_resume_continues_where_an_interrupted_run_stopped(tmp_path: Path) -> None:
    pairs = make_pairs(3)
    settings = quick_settings(max_steps=9)
    straight = train_model(pairs, config=tiny_config(), scale=2, settings=settings,
                           clock=frozen_clock())
    checkpoint = tmp_path / "run.ckpt"

    def stop_at_step_4(progress: Progress) -> None:
        if progress.step == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_model(pairs, config=tiny_config(), scale=2, settings=settings,
                    checkpoint=checkpoint, on_progress=stop_at_step_4, clock=frozen_clock())
    state = load_checkpoint(checkpoint)
    assert state["step"] == 4
    resumed = train_model(pairs, config=tiny_config(), scale=2, settings=settings,
                          checkpoint=checkpoint, resume=state, clock=frozen_clock())
    assert resumed.steps == 9
    assert [h["step"] for h in resumed.history] == [h["step"] for h in straight.history]
    for (name, a), b in zip(straight.network.state_dict().items(),
                            resumed.network.state_dict().values(), strict=True):
        assert torch.allclose(a.float(), b.float(), atol=1e-5), name
    assert load_checkpoint(checkpoint)["step"] == 9


def test_resume_refuses_another_architecture(tmp_path: Path) -> None:
    pairs = make_pairs(2)
    checkpoint = tmp_path / "run.ckpt"
    train_model(pairs, config=tiny_config(), scale=2, settings=quick_settings(max_steps=2),
                checkpoint=checkpoint)
    with pytest.raises(InputError, match="checkpoint holds"):
        train_model(pairs, config=tiny_config("baseline"), scale=2,
                    settings=quick_settings(max_steps=3), resume=load_checkpoint(checkpoint))


def test_unusable_pairs_are_refused() -> None:
    pairs = make_pairs(2)
    with pytest.raises(InputError, match="not 3 times"):
        train_model(pairs, config=tiny_config(), scale=3, settings=quick_settings(max_steps=1))
    with pytest.raises(InputError, match="model takes"):
        train_model(pairs, config=tiny_config(resolution="high"), scale=2,
                    settings=quick_settings(max_steps=1))
    mixed = [pairs[0], make_pairs(2, target_bands=3)[1]]
    with pytest.raises(InputError, match="band"):
        train_model(mixed, config=tiny_config(), scale=2, settings=quick_settings(max_steps=1))
    with pytest.raises(InputError, match="no training pairs"):
        train_model([], config=tiny_config(), scale=2, settings=quick_settings(max_steps=1))
