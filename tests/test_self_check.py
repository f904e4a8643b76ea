"""Tests for cmsr.method.self_check: held-out blocks, the decision, and fit() acting on it."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from cmsr import CMSR, Config
from cmsr.method.model import CMSRNet
from cmsr.method.self_check import decide, held_out_errors, held_out_mask

TINY = Config.preset("quick", max_iters=20, eval_every=5, min_iters=5)


@pytest.mark.parametrize(("guided", "blended", "choice", "weight"), [
    (0.97, (0.95, 0.90, 0.97), "blend", 0.5),         # the best blend beats both ends
    (0.97, (1.10, 1.05, 0.975), "guided", 1.0),       # guided is best: as without blends
    (0.999, (0.995, 0.99, 0.999), "guide-free", 0.0),  # the best blend misses the margin
])
def test_decide_with_blend(guided, blended, choice, weight):
    check = decide(guided, 1.0, 2.0, 10, 0.02, blended, blend=True)
    assert (check.choice, check.guide_weight) == (choice, weight)
    assert check.blended == blended
    assert ("guide weight 0.5" in check.describe()) == (choice == "blend")


def test_decide_ignores_the_blends_unless_asked():
    check = decide(0.99, 1.0, 2.0, 10, 0.02, (0.5, 0.5, 0.5))
    assert (check.choice, check.guide_weight, check.blended) == ("guide-free", 0.0, ())
    assert check.describe().count("%") == 2  # guided and guide-free only


def test_held_out_mask_is_blocky_and_sized():
    mask = held_out_mask((40, 40), 0.2, 8, torch.Generator().manual_seed(3))
    assert set(mask.unique().tolist()) <= {0.0, 1.0}
    assert float(mask.mean()) == pytest.approx(0.2, abs=0.01)  # 5 of 25 blocks
    blocks = mask[0, 0].reshape(5, 8, 5, 8)
    assert torch.all(blocks.amax(dim=(1, 3)) == blocks.amin(dim=(1, 3)))  # whole blocks


def test_held_out_mask_keeps_at_least_one_block():
    assert float(held_out_mask((6, 6), 0.01, 4, torch.Generator().manual_seed(0)).sum()) > 0


@pytest.mark.parametrize(("guided", "free", "bicubic", "choice"), [
    (0.5, 1.0, 2.0, "guided"), (0.99, 1.0, 2.0, "guide-free"), (3.0, 2.5, 2.0, "bicubic"),
    (1.5, 2.5, 2.0, "guided"), (2.1, 2.5, 2.0, "bicubic"),
    # the guide beats a guide-free network that lost to bicubic by more than the
    # margin, but bicubic by less: bicubic is what it has to beat
    (1.98, 2.05, 2.0, "bicubic"), (1.95, 2.05, 2.0, "guided")])
def test_decide(guided, free, bicubic, choice):
    check = decide(guided, free, bicubic, 10, margin=0.02)
    assert check.choice == choice
    assert choice in check.describe()


def test_held_out_errors_of_an_untrained_network_are_bicubic():
    net = CMSRNet(1, 3, fe1_layers=2, fe1_channels=4, fe2_layers=2, fe2_channels=4)
    target = torch.rand(1, 1, 16, 16)
    held = held_out_mask((16, 16), 0.25, 4, torch.Generator().manual_seed(0))
    guided, free, bicubic, blended = held_out_errors(
        net, target, torch.rand(1, 3, 32, 32), held, (2.0, 2.0),
        TINY.replace(precision="float32"))
    assert guided == pytest.approx(bicubic) and free == pytest.approx(bicubic)
    assert blended == pytest.approx((bicubic,) * 3)
    assert bicubic > 0


def _pair(useful: bool):
    rng = np.random.default_rng(0)
    y, x = np.mgrid[:64, :64] / 64
    truth = ((x - 0.5) ** 2 + (y - 0.5) ** 2 < 0.08).astype(float) + 0.3 * np.sin(9 * x)
    guide_band = truth if useful else rng.random((64, 64))
    guide = np.stack([guide_band] * 3, axis=-1)
    target = truth.reshape(16, 4, 16, 4).mean(axis=(1, 3)).astype(np.float32)
    return target, guide


def test_fit_records_a_decision_and_follows_it():
    target, guide = _pair(useful=False)
    model = CMSR(TINY.replace(self_check=True, guide_dropout=0.3)).fit(target, guide)
    assert model.self_check is not None
    assert model.uses_guide == (model.self_check.choice == "guided")
    out = model.predict()
    if model.self_check.choice == "bicubic":
        from cmsr.method.resample import upsample_bicubic
        expected = upsample_bicubic(model.pair.target, (64, 64))
        np.testing.assert_allclose(model.predict_tensor(), expected)
    assert out.shape == (64, 64)


def test_guide_free_choice_ignores_the_guide():
    target, guide = _pair(useful=False)
    model = CMSR(TINY.replace(self_check=True, guide_dropout=0.3,
                              self_check_margin=0.99)).fit(target, guide)
    assert model.self_check.choice in ("guide-free", "bicubic")
    first = model.predict_tensor()
    model.pair = model.pair.__class__(model.pair.target, model.pair.valid,
                                      torch.rand_like(model.pair.guide), model.pair.scale,
                                      model.pair.normalization)
    torch.testing.assert_close(model.predict_tensor(), first)


def test_fit_with_blend_predicts_with_the_chosen_guide_weight():
    target, guide = _pair(useful=True)
    model = CMSR(TINY.replace(self_check=True, guide_dropout=0.3, self_check_blend=True,
                              self_check_margin=0.0)).fit(target, guide)
    check = model.self_check
    assert check is not None and len(check.blended) == 3
    expected = {"guided": 1.0, "guide-free": 0.0, "bicubic": 0.0}.get(check.choice)
    if expected is None:
        assert check.choice == "blend" and 0 < check.guide_weight < 1
    else:
        assert check.guide_weight == expected
    assert model.guide_weight == check.guide_weight
    assert model.uses_guide == (check.guide_weight > 0)
    # the result is the prediction at that weight: forcing each other weight changes it
    chosen = model.predict_tensor()
    for weight in {0.0, 0.5, 1.0} - {check.guide_weight}:
        model.self_check = dataclasses.replace(check, choice="blend", guide_weight=weight)
        assert not torch.allclose(model.predict_tensor(), chosen)


def test_without_self_check_nothing_is_held_out():
    target, guide = _pair(useful=True)
    model = CMSR(TINY).fit(target, guide)
    assert model.self_check is None and model.uses_guide


@pytest.mark.parametrize("free_stages", [False, True])
def test_free_stages_train_the_later_networks_without_their_guide_branch(free_stages):
    target, guide = _pair(useful=False)
    config = TINY.replace(self_check=True, guide_dropout=0.3, self_check_margin=0.99,
                          gradual=True, self_check_free_stages=free_stages)
    model = CMSR(config).fit(target, guide)
    assert model.self_check is not None and model.self_check.guide_weight == 0
    assert len(model.networks) == 2
    fresh = CMSRNet.from_config(config, 1, 3, seed=config.seed + 1)
    first_fresh = CMSRNet.from_config(config, 1, 3, seed=config.seed)
    for trained, untouched in ((model.networks[1], fresh), (model.networks[0], first_fresh)):
        same = all(torch.equal(a, b) for a, b in zip(trained.fe2.parameters(),
                                                      untouched.fe2.parameters(),
                                                      strict=True))
        # the first stage always trains its guide branch; a later one only without
        # free stages
        assert same == (free_stages and trained is model.networks[1])


def test_free_share_trains_the_first_network_further_without_its_guide():
    target, guide = _pair(useful=False)
    config = TINY.replace(self_check=True, guide_dropout=0.3, self_check_margin=0.99,
                          self_check_free_share=0.5)
    model = CMSR(config).fit(target, guide)
    assert model.self_check is not None and model.self_check.guide_weight == 0
    assert model.guide_free_records and model.guide_free_records[-1].step == 10
    assert model.training_steps == model.records[0][-1].step + 10
    # without a check that chose it, nothing trains further
    unchecked = CMSR(config.replace(self_check=False)).fit(target, guide)
    assert unchecked.guide_free_records == []
    assert unchecked.training_steps == unchecked.records[0][-1].step


def test_history_shows_the_guide_free_training_between_the_stages():
    from cmsr.cli.sr import history_rows

    target, guide = _pair(useful=False)
    model = CMSR(TINY.replace(self_check=True, guide_dropout=0.3, self_check_margin=0.99,
                              self_check_free_share=0.5, gradual=True)).fit(target, guide)
    rows = history_rows(model)
    phases = list(dict.fromkeys(row[0] for row in rows))
    assert phases == ["stage 1", "guide-free", "stage 2"]
    steps = [row[1] for row in rows]
    assert steps == sorted(steps) and steps[-1] == model.training_steps


@pytest.mark.parametrize(("warped", "kept", "margin"), [
    (None, True, 0.02), (0.2, True, 0.2), (0.2, False, 0.02), (0.2, None, 0.02),
])
def test_the_margin_is_the_warped_one_only_where_the_coarse_warp_was_kept(warped, kept,
                                                                         margin):
    from cmsr.method.alignment_check import AlignmentCheck

    model = CMSR(TINY.replace(self_check_margin=0.02, self_check_margin_warped=warped))
    model.alignment_check = None if kept is None else AlignmentCheck(0.5, 0.3, kept)
    assert model._self_check_margin() == margin
    check = decide(0.9, 1.0, 2.0, 10, model._self_check_margin())
    assert check.choice == ("guide-free" if margin == 0.2 else "guided")
    assert f"had to win by {margin:g} of the error" in check.describe()


def test_thermal_demands_more_of_the_guide_where_the_warp_was_kept():
    assert Config.preset("thermal").self_check_margin_warped == 0.2
    assert Config.preset("nir").self_check_margin_warped is None
    with pytest.raises(ValueError, match="self_check_margin_warped"):
        Config(self_check_margin_warped=1.0)


@pytest.mark.parametrize(("free", "choice"), [(0.9, "guide-free"), (1.0, "bicubic"),
                                              (1.2, "bicubic")])
def test_a_check_that_chose_bicubic_is_asked_again(monkeypatch, free, choice):
    import cmsr.method.self_check as module

    monkeypatch.setattr(module, "held_out_errors", lambda *args: (2.0, free, 1.0, ()))
    first = decide(2.0, 1.5, 1.0, 10, 0.02)
    assert first.choice == "bicubic" and first.rechecked is None
    net = CMSRNet(1, 3, fe1_layers=2, fe1_channels=4, fe2_layers=2, fe2_channels=4)
    again = module.recheck_guide_free(first, net, torch.rand(1, 1, 8, 8),
                                      torch.rand(1, 3, 8, 8), torch.ones(1, 1, 8, 8),
                                      (2.0, 2.0), TINY)
    assert (again.choice, again.guide_weight, again.rechecked) == (choice, 0.0, free)
    assert (again.guided, again.guide_free, again.bicubic) == (2.0, 1.5, 1.0)  # the first
    assert "after training alone" in again.describe() and choice in again.describe()
    with pytest.raises(ValueError, match="only a check that chose bicubic"):
        module.recheck_guide_free(again if choice == "guide-free" else decide(0.5, 1, 2, 9, 0),
                                  net, torch.rand(1, 1, 8, 8), torch.rand(1, 3, 8, 8),
                                  torch.ones(1, 1, 8, 8), (2.0, 2.0), TINY)


@pytest.mark.parametrize("first_choice", ["bicubic", "guide-free"])
def test_the_guide_free_training_after_a_bicubic_choice_leaves_the_held_out_pixels_out(
        monkeypatch, first_choice):
    import cmsr.method.api as api

    decided = []

    def forced(*args, **kwargs):
        check = dataclasses.replace(decide(*args, **kwargs), choice=first_choice,
                                    guide_weight=0.0)
        decided.append(check)
        return check

    refits = []
    train = api.train

    def recording(net, target, guide, *, valid, use_guide=True, **kwargs):
        if not use_guide and not refits and decided:
            refits.append(valid.clone())
        return train(net, target, guide, valid=valid, use_guide=use_guide, **kwargs)

    monkeypatch.setattr(api, "decide", forced)
    monkeypatch.setattr(api, "train", recording)
    target, guide = _pair(useful=False)
    model = CMSR(TINY.replace(self_check=True, guide_dropout=0.3,
                              self_check_free_share=0.5)).fit(target, guide)
    assert len(refits) == 1
    held_out_seen = float(refits[0].min()) == 1.0  # every pixel weighed
    assert held_out_seen == (first_choice == "guide-free")
    check = model.self_check
    assert check is not None
    if first_choice == "guide-free":
        assert check is decided[0] and check.rechecked is None
    else:
        assert check.rechecked is not None
        assert check.choice == ("guide-free" if check.rechecked < check.bicubic else "bicubic")
