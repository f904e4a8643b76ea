"""Saved state: warp files, checkpoints, warm starts (cmsr.method.checkpoint and CMSR.fit)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cmsr import CMSR, Config, InputError
from cmsr.method.checkpoint import (
    MODEL_FORMAT,
    WARP_FORMAT,
    load_checkpoint,
    load_warp,
    save_warp,
)

QUICK = Config.preset("quick", max_iters=12, min_iters=4, eval_every=4)


def _pair(size: int = 48, shift: int = 0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A thermal-like ``(size/4, size/4)`` target and an RGB guide moved by ``shift`` px."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:size, :size] / size
    base = 0.5 + 0.3 * np.sin(6 * x + 2 * y) * np.cos(4 * y)
    base += 0.2 * ((x - 0.5) ** 2 + (y - 0.4) ** 2 < 0.06)
    moved = np.roll(base, shift, axis=1)
    guide = np.stack([moved, 0.8 * moved + 0.1, 1 - 0.5 * moved], axis=-1)
    guide = np.clip(guide + 0.01 * rng.standard_normal(guide.shape), 0, 1)
    target = base.reshape(size // 4, 4, size // 4, 4).mean(axis=(1, 3)).astype(np.float32)
    return target, guide


def _params(model: CMSR) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.warp.named_parameters()}


@pytest.fixture(scope="module")
def fitted() -> CMSR:
    target, guide = _pair(shift=2)
    return CMSR(QUICK.replace(align="full", warp_release=(0.0, 0.0))).fit(target, guide)


# ------------------------------------------------------------------ warp files


def test_warp_file_round_trip_is_small_and_exact(tmp_path, fitted):
    path = fitted.save_warp(tmp_path / "rig.pt")
    assert path.stat().st_size < 200_000
    state = load_warp(path)
    assert state["format"] == WARP_FORMAT and state["align"] == "full"
    assert state["guide_size"] == [48, 48]
    for name, value in fitted.warp.state_dict().items():
        assert torch.equal(state["state_dict"][name], value.cpu())
    assert not list(tmp_path.glob(".*.part"))  # the temporary file is gone


def test_save_warp_refuses_to_overwrite(tmp_path, fitted):
    path = fitted.save_warp(tmp_path / "rig.pt")
    with pytest.raises(InputError, match="already exists"):
        fitted.save_warp(path)
    fitted.save_warp(path, overwrite=True)


def test_frozen_loaded_warp_is_applied_unchanged(tmp_path, fitted):
    path = fitted.save_warp(tmp_path / "rig.pt")
    target, guide = _pair(shift=2, seed=1)
    config = QUICK.replace(align="full", freeze_warp=True)
    model = CMSR(config).fit(target, guide, warp_init=path)
    for name, value in _params(model).items():
        assert torch.equal(value, dict(fitted.warp.named_parameters())[name].detach()), name
    torch.testing.assert_close(model.aligned_guide(), fitted.warp(model.pair.guide).clamp(0, 1))


def test_loaded_warp_keeps_training_with_all_layers_from_the_first_step(fitted):
    target, guide = _pair(shift=2, seed=1)
    model = CMSR(QUICK.replace(align="full"))
    active = []
    model.fit(target, guide, warp_init=fitted.warp_state(),
              on_step=lambda info: active.append(set(model.warp.active)))
    assert active[0] == {"affine", "cpab", "tps"}  # no coarse-to-fine release
    before, after = _params(fitted), _params(model)
    assert all(not torch.equal(before[name], after[name]) for name in before)


def test_warp_from_a_checkpoint(tmp_path, fitted):
    path = fitted.save_checkpoint(tmp_path / "model.pt")
    target, guide = _pair(shift=2, seed=1)
    model = CMSR(QUICK.replace(align="full", freeze_warp=True)).fit(target, guide,
                                                                     warp_init=path)
    assert torch.equal(model.warp.layers["tps"].offsets, fitted.warp.layers["tps"].offsets)


@pytest.mark.parametrize(("config", "match"), [
    (QUICK.replace(align="affine"), "learned with align full.*this run uses align affine"),
    (QUICK.replace(align="full", cpab_cells=3), "4 CPAB cells.*3 CPAB cells"),
    (QUICK.replace(align="none"), "this run has align none"),
])
def test_warp_of_another_structure_is_refused(fitted, config, match):
    target, guide = _pair()
    with pytest.raises(InputError, match=match):
        CMSR(config).fit(target, guide, warp_init=fitted.warp_state())


def test_warp_for_another_aspect_ratio_is_refused(fitted):
    target, guide = _pair()
    with pytest.raises(InputError, match="48x48 guide; this guide is 24x48"):
        CMSR(QUICK.replace(align="full")).fit(target[:, :6], guide[:, :24],
                                              warp_init=fitted.warp_state())


def test_a_warm_start_on_frames_of_another_aspect_ratio_keeps_the_networks_not_the_warp(
        fitted):
    """A chain over frames of other sizes: the networks start from the checkpoint, the
    warp (another field of view) starts afresh and the model says why."""
    target, guide = _pair()
    state = fitted.state()
    model = CMSR(QUICK.replace(align="full")).fit(target[:, :6], guide[:, :24], init=state)
    assert "48x48 guide; this guide is 24x48" in model.init_warp_skipped
    same = CMSR(QUICK.replace(align="full")).fit(target, guide, init=state)
    assert same.init_warp_skipped == ""


def test_not_a_warp_file(tmp_path, fitted):
    png = tmp_path / "photo.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    with pytest.raises(InputError, match=r"photo\.png: is not a cmsr warp"):
        load_warp(png)
    with pytest.raises(InputError, match="does not exist"):
        load_warp(tmp_path / "missing.pt")
    truncated = tmp_path / "cut.pt"
    truncated.write_bytes(fitted.save_warp(tmp_path / "rig.pt").read_bytes()[:400])
    with pytest.raises(InputError, match=r"cut\.pt: is not a cmsr warp or is damaged"):
        load_warp(truncated)
    model_file = fitted.save_checkpoint(tmp_path / "model.pt")
    with pytest.raises(InputError, match="is a cmsr checkpoint, not a cmsr warp"):
        load_warp(model_file)
    with pytest.raises(InputError, match="is a cmsr warp, not a cmsr checkpoint"):
        load_checkpoint(tmp_path / "rig.pt")


@pytest.mark.parametrize(("change", "match"), [
    ({"version": 99}, "format version 99"),
    ({"align": "tps"}, "unknown align"),
    ({"cpab_cells": 10**6}, "broken cpab_cells"),
    ({"guide_size": [0, 4]}, "broken guide size"),
])
def test_damaged_warp_dicts(tmp_path, fitted, change, match):
    state = {**fitted.warp_state(), **change}
    with pytest.raises(InputError, match=match):
        save_warp(tmp_path / "w.pt", state)


def test_warp_with_wrong_tensors_is_corrupt(tmp_path, fitted):
    state = fitted.warp_state()
    state["state_dict"] = {**state["state_dict"], "layers.tps.offsets": torch.zeros(3, 2)}
    torch.save(state, tmp_path / "w.pt")
    with pytest.raises(InputError, match=r"w\.pt: is a corrupt cmsr warp"):
        load_warp(tmp_path / "w.pt")
    offsets = fitted.warp_state()["state_dict"]["layers.tps.offsets"]
    state["state_dict"]["layers.tps.offsets"] = torch.full_like(offsets, float("nan"))
    torch.save(state, tmp_path / "nan.pt")
    with pytest.raises(InputError, match="non-finite"):
        load_warp(tmp_path / "nan.pt")


def test_state_before_fit_or_without_warp():
    with pytest.raises(RuntimeError, match="fit"):
        CMSR(QUICK).state()
    target, guide = _pair()
    model = CMSR(QUICK.replace(max_iters=2, align="none")).fit(target, guide)
    with pytest.raises(RuntimeError, match="no warp"):
        model.warp_state()
    assert model.state()["warp"] is None


# ------------------------------------------------------------------ warm start


def test_state_is_plain_and_checkpoint_round_trips(tmp_path, fitted):
    state = fitted.state()
    assert state["format"] == MODEL_FORMAT and state["stage_sizes"] == [[48, 48]]
    assert all(t.device.type == "cpu" for t in state["networks"][0].values())
    loaded = load_checkpoint(fitted.save_checkpoint(tmp_path / "m.pt"))
    for name, value in state["networks"][0].items():
        assert torch.equal(loaded["networks"][0][name], value)
    assert loaded["warp"]["align"] == "full"


def test_warm_start_uses_the_saved_networks_and_fewer_steps(fitted):
    target, guide = _pair(shift=2, seed=1)
    config = QUICK.replace(align="full", warm_start_iters=5, warm_learning_rate=1e-9,
                          min_learning_rate=1e-10)
    model = CMSR(config).fit(target, guide, init=fitted.state())
    assert model.records[0][-1].step == 5
    assert model.records[0][0].learning_rate == pytest.approx(1e-9)
    for name, value in model.networks[0].state_dict().items():  # barely moved at 1e-9
        torch.testing.assert_close(value, fitted.networks[0].state_dict()[name],
                                   atol=1e-6, rtol=0)
    cold = CMSR(config).fit(target, guide)
    assert cold.records[0][-1].step == config.max_iters


def test_warm_start_never_takes_more_steps_than_max_iters(fitted):
    target, guide = _pair(shift=2, seed=1)
    model = CMSR(QUICK.replace(align="full", max_iters=3, warm_start_iters=50)).fit(
        target, guide, init=fitted.state())
    assert model.records[0][-1].step == 3


def test_warm_start_of_gradual_stages_and_mismatches():
    target, guide = _pair(size=64)
    gradual = QUICK.replace(gradual=True, align="affine", max_iters=4, warm_start_iters=3)
    first = CMSR(gradual).fit(target, guide, scale=4.0)
    assert len(first.networks) == 2
    again = CMSR(gradual).fit(target, guide, scale=4.0, init=first.state())
    assert [stage[-1].step for stage in again.records] == [3, 3]
    with pytest.raises(InputError, match=r"2 gradual stage.*needs 1"):
        CMSR(gradual).fit(target, guide[:32, :32], init=first.state())
    with pytest.raises(InputError, match="feature extractors"):
        CMSR(Config.preset("thermal", max_iters=2, align="affine")).fit(
            target, guide, scale=4.0, init=first.state())
    grey = guide[..., 0]
    with pytest.raises(InputError, match="3-band guide; this pair has 1 and 1"):
        CMSR(gradual).fit(target, grey, scale=4.0, init=first.state())


def test_later_gradual_stages_keep_every_warp_layer_on():
    target, guide = _pair(size=64)
    config = QUICK.replace(gradual=True, align="full", max_iters=8)
    model = CMSR(config)
    seen: dict[int, set[str]] = {}
    model.fit(target, guide, scale=4.0,
              on_step=lambda info: seen.setdefault(info.stage, set(model.warp.active)))
    assert seen[0] == {"affine"}  # stage 0 starts coarse
    assert seen[1] == {"affine", "cpab", "tps"}  # stage 1 does not switch layers off


def test_config_checks_the_warm_start_fields():
    with pytest.raises(ValueError, match="warm_learning_rate must be >= min_learning_rate"):
        Config(warm_learning_rate=1e-7)
    with pytest.raises(ValueError, match="warm_start_iters"):
        Config(warm_start_iters=0)
