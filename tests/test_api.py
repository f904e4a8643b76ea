"""Tests for cmsr.method.api: end-to-end runs on tiny pairs, dtypes, masks, seeds and stages."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

import cmsr
from cmsr import CMSR, Config, InputError, super_resolve
from cmsr.method.api import gradual_scales, prepare_pair, resolve_device
from cmsr.method.edge_sharpening import sharpen_edges
from cmsr.method.self_check import SelfCheck

FAST = Config.preset("quick", max_iters=10, eval_every=5, min_iters=5)




def _scene(size=48, seed=0):
    """A smooth RGB guide with edges, and a thermal-like band of the same scene."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:size, :size] / size
    base = 0.5 + 0.3 * np.sin(6 * x + 2 * y) * np.cos(4 * y)
    base += 0.2 * ((x - 0.5) ** 2 + (y - 0.4) ** 2 < 0.06)
    guide = np.stack([base, 0.8 * base + 0.1, 1 - 0.5 * base], axis=-1)
    guide += 0.01 * rng.standard_normal(guide.shape)
    return np.clip(guide, 0, 1), base


def _target(base, factor=4, low=0.0, high=1.0, dtype=np.float32):
    h, w = base.shape
    small = base.reshape(h // factor, factor, w // factor, factor).mean(axis=(1, 3))
    small = (small - small.min()) / (small.max() - small.min())
    return (low + (high - low) * small).astype(dtype)


# ------------------------------------------------------------------ super_resolve


@pytest.mark.parametrize(("dtype", "low", "high"), [(np.uint8, 10, 240), (np.uint16, 1000, 60000),
                                                    (np.float32, -3.0, 40.0),
                                                    (np.float64, 280.0, 310.0)])
def test_super_resolve_returns_guide_size_and_target_dtype(dtype, low, high):
    guide, base = _scene()
    target = _target(base, low=low, high=high, dtype=dtype)
    out = super_resolve(target, guide, config=FAST)
    assert out.shape == (48, 48)
    assert out.dtype == dtype
    assert np.all(np.isfinite(out.astype(np.float64)))
    # the result stays in the target's units: its mean is close to the target's
    span = float(high - low)
    assert abs(float(out.mean()) - float(target.mean())) < 0.05 * span


def test_super_resolve_result_is_consistent_with_target():
    guide, base = _scene()
    target = _target(base)
    out = super_resolve(target, guide, config=FAST)
    reduced = out.reshape(12, 4, 12, 4).mean(axis=(1, 3))
    assert np.abs(reduced - target).mean() < 0.05


def test_super_resolve_two_band_target():
    guide, base = _scene()
    target = np.stack([_target(base), _target(1 - base, low=5, high=9)], axis=-1)
    out = super_resolve(target, guide, config=FAST)
    assert out.shape == (48, 48, 2) and out.dtype == np.float32
    # each band keeps its own range (one normalisation, no band mixing into garbage)
    assert abs(out[..., 1].mean() - target[..., 1].mean()) < 0.5
    assert abs(out[..., 0].mean() - target[..., 0].mean()) < 0.1


def test_super_resolve_keeps_explicit_single_band_axis():
    guide, base = _scene()
    out = super_resolve(_target(base)[..., None], guide, config=FAST)
    assert out.shape == (48, 48, 1)


def test_super_resolve_four_band_and_grey_guides():
    guide, base = _scene()
    target = _target(base)
    four = np.concatenate([guide, base[..., None]], axis=-1)
    assert super_resolve(target, four, config=FAST).shape == (48, 48)
    assert super_resolve(target, guide[..., 0], config=FAST).shape == (48, 48)


def test_nan_pixels_in_target_give_finite_output():
    guide, base = _scene()
    target = _target(base)
    target[3:5, 6:8] = np.nan
    target[0, 0] = np.nan
    out = super_resolve(target, guide, config=FAST)
    assert out.shape == (48, 48)
    assert np.all(np.isfinite(out))
    # the hole is filled from its surroundings, not from 0 or from the NaN
    hole = out[12:20, 24:32]
    assert np.nanmin(target) - 0.2 < hole.mean() < np.nanmax(target) + 0.2


def test_invalid_value_zero_in_uint16_depth():
    guide, base = _scene()
    depth = _target(base, low=1000, high=2000, dtype=np.uint16)
    depth[5:7, 5:7] = 0
    out = super_resolve(depth, guide, config=FAST.replace(degradation="box"), invalid_value=0)
    assert out.shape == (48, 48) and out.dtype == np.uint16
    # holes are not pulled towards 0: every output pixel stays near the valid range
    assert int(out.min()) > 800
    assert int(out.max()) < 2200


def test_clip_to_input_range_keeps_an_int64_result_inside_what_was_measured():
    guide, base = _scene()
    target = np.where(_target(base) > 0.5, 5000, 0).astype(np.int64)  # sharp steps
    target[0, 0] = 2500
    model = CMSR(FAST).fit(target, guide)
    free = model.predict()
    assert free.dtype == np.int64
    assert free.min() < 0 and free.max() > 5000  # sharpening overshoots the steps
    clipped = CMSR(FAST.replace(clip_to_input_range=True)).fit(target, guide).predict()
    np.testing.assert_array_equal(clipped, np.clip(free, 0, 5000))
    # also when the self-check keeps plain bicubic enlargement
    model.config = model.config.replace(clip_to_input_range=True)
    model.self_check = SelfCheck(0.3, 0.2, 0.1, 10, "bicubic", 0.0)
    bicubic = model.predict()
    assert bicubic.min() == 0 and bicubic.max() == 5000


def test_no_valid_pixels_rather_than_constant():
    guide, _ = _scene()
    with pytest.raises(InputError, match=r"^target: has no valid pixels"):
        super_resolve(np.full((12, 12), 77, np.uint16), guide, config=FAST,
                      invalid_value=77)
    with pytest.raises(InputError, match=r"^target: has no valid pixels"):
        super_resolve(np.full((12, 12), 77, np.uint16), guide, config=FAST,
                      mask=np.zeros((12, 12), bool))


def test_mask_argument_marks_pixels_invalid():
    guide, base = _scene()
    target = _target(base)
    spoiled = target.copy()
    spoiled[2:4, 2:4] = 1000.0  # would dominate the normalisation if used
    mask = np.ones(target.shape, dtype=bool)
    mask[2:4, 2:4] = False
    out = super_resolve(spoiled, guide, config=FAST, mask=mask)
    assert float(out.max()) < 2.0


def test_mask_of_another_size_is_a_one_line_input_error():
    guide, base = _scene()
    target = _target(base)
    with pytest.raises(InputError, match=r"^mask: the mask is 5x5 but the target is"):
        super_resolve(target, guide, config=FAST, mask=np.ones((5, 5), dtype=bool))


def test_same_seed_same_output_different_seed_different_output():
    guide, base = _scene()
    target = _target(base)
    first = super_resolve(target, guide, config=FAST.replace(seed=1))
    again = super_resolve(target, guide, config=FAST.replace(seed=1))
    other = super_resolve(target, guide, config=FAST.replace(seed=2))
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)


def test_forced_scale_with_guide_one_pixel_off():
    guide, base = _scene(49)
    target = _target(base[:48, :48])
    out = super_resolve(target, guide[:47], scale=4, config=FAST)
    assert out.shape == (48, 48)


def test_forced_non_integer_scale_sets_output_size():
    guide, base = _scene()
    target = _target(base)
    out = super_resolve(target, guide[:30, :30], scale=2.5, config=FAST)
    assert out.shape == (30, 30)


def test_bad_pair_raises_input_error():
    guide, base = _scene()
    target = _target(base)
    with pytest.raises(InputError, match="guide"):
        super_resolve(target, guide[:12, :12], config=FAST)
    with pytest.raises(InputError, match="target"):
        super_resolve(np.full((12, 12), np.nan), guide, config=FAST)


def test_four_dimensional_target_error_names_its_shape():
    guide, base = _scene()
    target = _target(base)[None, ..., None]
    with pytest.raises(InputError, match=r"\(1, 12, 12, 1\)"):
        super_resolve(target, guide, config=FAST)


def test_non_array_target_raises_input_error():
    guide, base = _scene()
    with pytest.raises(InputError):
        super_resolve(_target(base).tolist(), guide, config=FAST)


# ------------------------------------------------------------------------- CMSR


def test_gradual_x4_trains_two_stages():
    guide, base = _scene()
    target = _target(base)
    model = CMSR(FAST.replace(gradual=True)).fit(target, guide)
    assert len(model.records) == 2
    assert len(model.networks) == 2
    assert model.networks[0] is not model.networks[1]
    assert all(len(stage) >= 1 for stage in model.records)
    assert len(model.history) == sum(len(stage) for stage in model.records)
    assert model._stages(model.pair) == [(24, 24), (48, 48)]
    out = model.predict()
    assert out.shape == (48, 48) and out.dtype == np.float32
    assert np.all(np.isfinite(out))


def test_gradual_back_projects_only_onto_the_measurement():
    """Stage 2 is not back-projected onto stage 1's estimate; the whole result is
    back-projected onto the measured target once at the end."""
    from cmsr.method.infer import back_project, predict

    guide, base = _scene()
    target = _target(base)
    config = FAST.replace(gradual=True, back_projection_iters=5, align="none")
    model = CMSR(config).fit(target, guide)
    pair = model.pair
    sizes = model._stages(pair)

    def finish(stage_iters: list[int]) -> torch.Tensor:
        current, valid = pair.target, pair.valid
        for net, size, iters in zip(model.networks, sizes, stage_iters, strict=True):
            current = predict(net, current, model._stage_guide(pair.guide, size),
                              config=config.replace(back_projection_iters=iters), valid=valid)
            valid = torch.ones_like(current[:, :1])
        return back_project(current, pair.target, iterations=5, kernel=config.degradation,
                            valid=pair.valid)

    result = model.predict_tensor()
    assert torch.allclose(result, finish([5, 0]), atol=1e-6)
    assert not torch.allclose(result, finish([5, 5]), atol=1e-4)


def test_gradual_at_x2_is_one_stage():
    guide, base = _scene()
    target = _target(base, factor=2)
    model = CMSR(FAST.replace(gradual=True)).fit(target, guide)
    assert len(model.records) == 1


def test_fit_then_predict_is_repeatable_and_matches_super_resolve():
    guide, base = _scene()
    target = _target(base)
    model = CMSR(FAST).fit(target, guide)
    first = model.predict()
    assert np.array_equal(first, model.predict())
    assert np.array_equal(first, super_resolve(target, guide, config=FAST))
    assert model.predict_tensor().shape == (1, 1, 48, 48)


def test_on_step_called_every_step():
    guide, base = _scene()
    steps = []
    CMSR(FAST).fit(_target(base), guide, on_step=lambda info: steps.append(info.step))
    assert steps == list(range(1, FAST.max_iters + 1))


def test_predict_before_fit_raises():
    model = CMSR(FAST)
    with pytest.raises(RuntimeError, match="fit"):
        model.predict()
    with pytest.raises(RuntimeError, match="fit"):
        model.predict_tensor()


def test_default_config():
    assert CMSR().config == Config()
    assert cmsr.super_resolve is super_resolve


# -------------------------------------------------------------------- prepare_pair


def test_prepare_pair_normalises_and_fills():
    guide, base = _scene()
    target = _target(base, low=100, high=200, dtype=np.uint8)
    target[1, 1] = 0
    pair = prepare_pair(target, guide, scale=None, mask=None, invalid_value=0,
                        device=torch.device("cpu"))
    assert pair.target.shape == (1, 1, 12, 12)
    assert pair.guide.shape == (1, 3, 48, 48)
    assert pair.scale == (4.0, 4.0)
    assert float(pair.valid[0, 0, 1, 1]) == 0.0 and float(pair.valid.sum()) == 143
    assert float(pair.target.min()) >= 0.0 and float(pair.target.max()) <= 1.0
    assert float(pair.guide.min()) >= 0.0 and float(pair.guide.max()) <= 1.0
    assert 0.0 <= float(pair.target[0, 0, 1, 1]) <= 1.0  # filled, not the unit value of 0


# ------------------------------------------------------------------------- helpers


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if gpus >= 2:
        assert resolve_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(InputError, match=r"^device: 'mps' is not a device cmsr runs on"):
        resolve_device("mps")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_a_device_this_machine_lacks_is_refused_when_the_model_is_made(device):
    with pytest.raises(InputError, match=f"^device: {device} is not available on this machine"):
        CMSR(FAST.replace(device=device))
    assert FAST.replace(device=device).device == device  # a config may name it


@pytest.mark.parametrize(("changes", "message"), [
    ({"seed": 10**20}, r"seed must be an integer in \[0, 2\*\*63\), got 100000000000000000000"),
    ({"seed": 2**63}, "seed must be an integer"),
    ({"seed": -1}, "seed must be an integer"),
    ({"seed": 1.5}, "seed must be an integer"),
    ({"threads": 0}, "threads must be an integer >= 1"),
    ({"threads": -3}, "threads must be an integer >= 1"),
    ({"device": "mps"}, "'mps' is not a device cmsr runs on"),
    ({"device": "cuda:x"}, "'cuda:x' is not a device cmsr runs on"),
])
def test_config_refuses_run_settings_torch_would_choke_on(changes, message):
    with pytest.raises(ValueError, match=message):
        Config.preset("quick", **changes)


def test_the_largest_seed_runs():
    guide, base = _scene(size=16)
    out = super_resolve(_target(base), guide,
                        config=Config.preset("quick", max_iters=1, seed=2**63 - 1))
    assert out.shape == (16, 16)


@pytest.mark.parametrize(("scale", "stages"), [(4.0, [2.0, 4.0]), (2.0, [2.0]), (1.5, [1.5]),
                                               (16.0, [2.0, 4.0, 8.0, 16.0]),
                                               (3.0, [math.sqrt(3.0), 3.0])])
def test_gradual_scales_known_values(scale, stages):
    assert gradual_scales(scale) == pytest.approx(stages)


@pytest.mark.parametrize("scale", [1.1, 2.0, 2.0001, 3.0, 5.5, 8.0, 9.0, 16.0])
def test_gradual_scales_steps_at_most_two_and_end_at_scale(scale):
    stages = gradual_scales(scale)
    assert stages[-1] == pytest.approx(scale)
    ratios = [stages[0]] + [b / a for a, b in itertools.pairwise(stages)]
    assert all(r <= 2.0 + 1e-9 for r in ratios)
    assert all(r > 1.0 for r in ratios)
    # as few stages as possible: one fewer would need a step above 2
    assert scale ** (1 / max(1, len(stages) - 1)) > 2.0 - 1e-9 or len(stages) == 1
    assert len(set(np.round(ratios, 9))) == 1  # equal steps


def test_gradual_scales_custom_step():
    assert gradual_scales(9.0, step=3.0) == pytest.approx([3.0, 9.0])


def test_non_square_non_divisible_anisotropic_sizes():
    rng = np.random.default_rng(5)
    guide = rng.random((50, 31, 3)).astype(np.float32)
    target = rng.random((13, 10)).astype(np.float32)
    result = super_resolve(target, guide, config=FAST)
    assert result.shape == (50, 31)
    assert np.isfinite(result).all()


def test_tiled_inference_matches_whole_image():
    rng = np.random.default_rng(6)
    guide = rng.random((40, 56, 3)).astype(np.float32)
    target = rng.random((10, 14)).astype(np.float32)
    whole = CMSR(FAST.replace(tile_size=512)).fit(target, guide)
    tiled = CMSR(FAST.replace(tile_size=16)).fit(target, guide)
    np.testing.assert_allclose(tiled.predict(), whole.predict(), atol=1e-5)


def test_edge_sharpening_finishes_the_result_after_the_guided_median():
    """With ``edge_sharpening`` the result is the one without it, sharpened, then
    back-projected and clipped once more; the networks are the same."""
    guide, depth = _scene(48, seed=3)
    target = _target(np.round(depth * 4) / 4)
    config = FAST.replace(degradation="box", clamp_to_local_range=True,
                          guided_median_radius=1, back_projection_iters=5)
    model = CMSR(config).fit(target, guide)
    plain = model.predict_tensor()
    model.config = config.replace(edge_sharpening=0.5)
    sharpened = model.predict_tensor()
    assert model.pair is not None
    expected = model._back_project_and_clip(sharpen_edges(plain, strength=0.5), model.pair)
    torch.testing.assert_close(sharpened, expected, rtol=0, atol=1e-6)
    assert float((sharpened - plain).abs().max()) > 1e-3


# ------------------------------------------------------------------ threads


def test_fit_and_predict_use_config_threads_and_restore_them(monkeypatch):
    guide, base = _scene()
    target = _target(base)
    before = torch.get_num_threads()
    wanted = 1 if before != 1 else 2
    seen: list[int] = []
    model = CMSR(FAST.replace(threads=wanted))
    model.fit(target, guide, on_step=lambda info: seen.append(torch.get_num_threads()))
    assert seen and set(seen) == {wanted}
    assert torch.get_num_threads() == before
    # prediction: record the count where the networks run
    networks = CMSR._predict_networks

    def recording(self, pair):
        seen.append(torch.get_num_threads())
        return networks(self, pair)

    monkeypatch.setattr(CMSR, "_predict_networks", recording)
    monkeypatch.setattr(model, "self_check", None)  # the networks run whatever it chose
    seen.clear()
    model.predict()
    assert seen and set(seen) == {wanted}
    assert torch.get_num_threads() == before
