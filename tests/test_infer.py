"""Tests for cmsr.method.infer: dihedral group, exact tiling, self-ensemble, back-projection."""

from __future__ import annotations

import itertools

import pytest
import torch

from cmsr.method.config import Config
from cmsr.method.infer import (
    back_project,
    clamp_to_input_range,
    clamp_to_local_range,
    dihedral,
    dihedral_inverse,
    predict,
    run_network,
    self_ensemble,
)
from cmsr.method.model import CMSRNet
from cmsr.method.resample import downsample, upsample_bicubic

QUICK = Config.preset("quick")


def _rand(*shape, seed=0, dtype=torch.float32):
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _trained_ish_net(target_channels=1, guide_channels=3, seed=0) -> CMSRNet:
    torch.manual_seed(seed)
    net = CMSRNet(target_channels, guide_channels, fe1_layers=QUICK.fe1_layers,
                  fe1_channels=QUICK.fe1_channels, fe2_layers=QUICK.fe2_layers,
                  fe2_channels=QUICK.fe2_channels)
    generator = torch.Generator().manual_seed(seed + 100)
    with torch.no_grad():
        for stack in (net.fe1, net.fe2):
            last = stack[-1]
            last.weight.copy_(0.1 * torch.randn(last.weight.shape, generator=generator))
            last.bias.copy_(0.05 * torch.randn(last.bias.shape, generator=generator))
    return net.eval()


# ------------------------------------------------------------------------ dihedral


@pytest.mark.parametrize("shape", [(1, 2, 5, 5), (2, 1, 4, 7), (1, 3, 6, 3)])
@pytest.mark.parametrize("k", range(8))
def test_dihedral_inverse_undoes_dihedral(shape, k):
    image = _rand(*shape)
    assert torch.equal(dihedral_inverse(dihedral(image, k), k), image)
    assert torch.equal(dihedral(dihedral_inverse(image, k), k), image)


def test_dihedral_gives_eight_distinct_images():
    image = _rand(1, 1, 4, 4)
    images = [dihedral(image, k) for k in range(8)]
    for i in range(8):
        for j in range(i + 1, 8):
            assert not torch.equal(images[i], images[j]), (i, j)


def test_dihedral_zero_is_identity_and_shapes_swap_for_odd_turns():
    image = _rand(1, 1, 4, 7)
    assert torch.equal(dihedral(image, 0), image)
    for k in range(8):
        expected = (4, 7) if k % 2 == 0 else (7, 4)
        assert dihedral(image, k).shape[-2:] == expected


def test_dihedral_set_is_closed_under_composition():
    image = _rand(1, 1, 5, 5)
    elements = [dihedral(image, k) for k in range(8)]
    for a in range(8):
        for b in range(8):
            composed = dihedral(dihedral(image, a), b)
            assert any(torch.equal(composed, e) for e in elements)


# --------------------------------------------------------------------- run_network


@pytest.mark.parametrize(("size", "tile"), [((21, 19), 8), ((16, 16), 8), ((9, 23), 5),
                                            ((13, 13), 12)])
def test_tiled_network_equals_untiled(size, tile):
    net = _trained_ish_net(2, 4)
    target_up, guide = _rand(1, 2, *size, seed=1), _rand(1, 4, *size, seed=2)
    whole = run_network(net, target_up, guide, tile_size=max(size))
    tiled = run_network(net, target_up, guide, tile_size=tile)
    assert not torch.allclose(whole, target_up, atol=1e-3)  # the net is not the identity
    assert tiled.shape == whole.shape
    torch.testing.assert_close(tiled, whole, rtol=0, atol=1e-5)


@pytest.mark.parametrize("tile", [20, 7])
@pytest.mark.parametrize("weight", [0.25, 0.5])
def test_run_network_guide_weight_blends_guided_and_guide_free(weight, tile):
    net = _trained_ish_net(1, 3)
    target_up, guide = _rand(1, 1, 17, 20, seed=3), _rand(1, 3, 17, 20, seed=4)
    guided = run_network(net, target_up, guide, tile_size=20)
    free = run_network(net, target_up, None, tile_size=20)
    assert not torch.allclose(guided, free, atol=1e-3)  # the guide branch contributes
    blended = run_network(net, target_up, guide, tile_size=tile, guide_weight=weight)
    torch.testing.assert_close(blended, free + weight * (guided - free), rtol=0, atol=1e-5)


def test_predict_guide_weight_zero_ignores_the_guide_and_one_is_the_default():
    net = _trained_ish_net(1, 3)
    target, guide = _rand(1, 1, 8, 10, seed=5), _rand(1, 3, 16, 20, seed=6)
    config = QUICK.replace(back_projection_iters=2)
    free = predict(net, target, guide, config=config, guide_weight=0.0)
    torch.testing.assert_close(
        predict(net, target, torch.rand_like(guide), config=config, guide_weight=0.0), free)
    torch.testing.assert_close(predict(net, target, guide, config=config, guide_weight=1.0),
                               predict(net, target, guide, config=config))


def test_run_network_without_grad_and_float32():
    net = _trained_ish_net()
    out = run_network(net, _rand(1, 1, 10, 10), _rand(1, 3, 10, 10), tile_size=4)
    assert out.dtype == torch.float32
    assert not out.requires_grad


# ------------------------------------------------------------------- self_ensemble


def test_self_ensemble_of_untrained_net_returns_input():
    torch.manual_seed(0)
    net = CMSRNet(1, 3, fe1_layers=3, fe1_channels=8, fe2_layers=3, fe2_channels=8).eval()
    target_up, guide = _rand(1, 1, 9, 11), _rand(1, 3, 9, 11)
    out = self_ensemble(net, target_up, guide, tile_size=64)
    torch.testing.assert_close(out, target_up, rtol=0, atol=0)


def test_self_ensemble_is_equivariant_to_flips_and_turns():
    net = _trained_ish_net()
    target_up, guide = _rand(1, 1, 8, 8, seed=3), _rand(1, 3, 8, 8, seed=4)
    base = self_ensemble(net, target_up, guide, tile_size=64)
    for k in range(8):
        turned = self_ensemble(net, dihedral(target_up, k), dihedral(guide, k), tile_size=64)
        torch.testing.assert_close(turned, dihedral(base, k), rtol=0, atol=1e-6)


def test_self_ensemble_is_the_median_of_the_eight_outputs():
    net = _trained_ish_net()
    target_up, guide = _rand(1, 1, 7, 6, seed=5), _rand(1, 3, 7, 6, seed=6)
    outputs = torch.stack([
        dihedral_inverse(net(dihedral(target_up, k), dihedral(guide, k)), k) for k in range(8)
    ]).detach()
    sorted_outputs = outputs.sort(dim=0).values
    median = 0.5 * (sorted_outputs[3] + sorted_outputs[4])
    out = self_ensemble(net, target_up, guide, tile_size=64)
    torch.testing.assert_close(out, median, rtol=0, atol=1e-6)
    assert not torch.allclose(out, outputs[0], atol=1e-4)


def test_self_ensemble_tiled_equals_untiled():
    net = _trained_ish_net()
    target_up, guide = _rand(1, 1, 14, 11, seed=7), _rand(1, 3, 14, 11, seed=8)
    whole = self_ensemble(net, target_up, guide, tile_size=64)
    tiled = self_ensemble(net, target_up, guide, tile_size=6)
    torch.testing.assert_close(tiled, whole, rtol=0, atol=1e-5)


# -------------------------------------------------------------------- back_project


def _inconsistency(estimate, target, kernel):
    return float((downsample(estimate, target.shape[-2:], kernel=kernel) - target).abs().mean())


@pytest.mark.parametrize("kernel", ["cubic", "box"])
@pytest.mark.parametrize(("low", "high"), [((6, 6), (12, 12)), ((5, 7), (12, 17)),
                                           ((4, 4), (16, 16))])
def test_back_projection_reduces_inconsistency_monotonically(kernel, low, high):
    target = _rand(1, 1, *low, seed=1, dtype=torch.float64)
    estimate = _rand(1, 1, *high, seed=2, dtype=torch.float64)
    errors = [_inconsistency(back_project(estimate, target, iterations=k, kernel=kernel),
                             target, kernel) for k in range(8)]
    assert all(b < a for a, b in itertools.pairwise(errors)), errors
    assert errors[-1] < 0.2 * errors[0]


def test_back_projection_with_box_kernel_converges_to_consistency():
    target = _rand(1, 2, 6, 6, seed=3, dtype=torch.float64)
    estimate = _rand(1, 2, 12, 12, seed=4, dtype=torch.float64)
    result = back_project(estimate, target, iterations=60, kernel="box")
    torch.testing.assert_close(downsample(result, (6, 6), kernel="box"), target, rtol=0,
                               atol=1e-8)


def test_back_projection_keeps_a_consistent_estimate():
    target = _rand(1, 1, 6, 6, seed=5, dtype=torch.float64)
    estimate = upsample_bicubic(target, (12, 12))
    consistent = back_project(estimate, target, iterations=200, kernel="box")
    again = back_project(consistent, target, iterations=5, kernel="box")
    torch.testing.assert_close(again, consistent, rtol=0, atol=1e-9)


def test_back_projection_zero_iterations_is_identity():
    estimate = _rand(1, 1, 8, 8)
    assert torch.equal(back_project(estimate, _rand(1, 1, 4, 4), iterations=0), estimate)


def test_back_projection_ignores_target_values_at_invalid_pixels():
    target = _rand(1, 1, 6, 6, seed=6)
    valid = torch.ones(1, 1, 6, 6)
    valid[..., 2:4, 1:3] = 0
    garbage = target.clone()
    garbage[..., 2:4, 1:3] = 1e6
    estimate = _rand(1, 1, 12, 12, seed=7)
    clean = back_project(estimate, target, iterations=5, valid=valid)
    dirty = back_project(estimate, garbage, iterations=5, valid=valid)
    assert torch.equal(clean, dirty)
    assert float(dirty.abs().max()) < 10


def test_back_projection_with_mask_fits_the_valid_pixels():
    target = _rand(1, 1, 6, 6, seed=8, dtype=torch.float64)
    valid = torch.ones(1, 1, 6, 6, dtype=torch.float64)
    valid[..., 0, :3] = 0
    estimate = _rand(1, 1, 12, 12, seed=9, dtype=torch.float64)
    result = back_project(estimate, target, iterations=60, kernel="box", valid=valid)
    residual = (downsample(result, (6, 6), kernel="box") - target) * valid
    before = (downsample(estimate, (6, 6), kernel="box") - target) * valid
    assert float(residual.abs().max()) < 1e-3 * float(before.abs().max())


# ------------------------------------------------------------------------- predict


def test_predict_with_untrained_net_and_no_extras_is_bicubic():
    torch.manual_seed(0)
    net = CMSRNet(1, 3, fe1_layers=3, fe1_channels=8, fe2_layers=3, fe2_channels=8)
    target, guide = _rand(1, 1, 6, 5), _rand(1, 3, 12, 10)
    config = QUICK.replace(self_ensemble=False, back_projection_iters=0)
    out = predict(net, target, guide, config=config)
    torch.testing.assert_close(out, upsample_bicubic(target, (12, 10)), rtol=0, atol=0)
    assert not net.training


def test_predict_back_projection_makes_the_result_consistent():
    net = _trained_ish_net()
    target, guide = _rand(1, 1, 6, 6, seed=1), _rand(1, 3, 12, 12, seed=2)
    loose = predict(net, target, guide, config=QUICK.replace(back_projection_iters=0,
                                                             degradation="box"))
    tight = predict(net, target, guide, config=QUICK.replace(back_projection_iters=20,
                                                             degradation="box"))
    assert _inconsistency(tight, target, "box") < 0.1 * _inconsistency(loose, target, "box")


def test_clamp_to_local_range_removes_overshoot_beside_a_thin_bar():
    low = torch.zeros(1, 1, 6, 6)
    low[..., 2] = 1.0  # a bar one measured pixel wide
    high = upsample_bicubic(low, (24, 24)) * 1.2 - 0.1  # a sharpened bar over/undershoots
    assert high.min() < -0.1 and high.max() > 1.0
    clipped = clamp_to_local_range(high, low)
    assert clipped.min() >= 0.0 and clipped.max() <= 1.0
    # far from the bar (more than one measured pixel away) the range is flat: 0
    torch.testing.assert_close(clipped[..., 20:], torch.zeros(1, 1, 24, 4))
    inside = (high >= 0) & (high <= 1)
    torch.testing.assert_close(clipped[inside], high[inside])  # in range: untouched


def test_clamp_to_local_range_per_channel_and_non_integer_scale():
    low = torch.rand(1, 2, 5, 7)
    high = torch.randn(1, 2, 13, 17) * 3
    clipped = clamp_to_local_range(high, low)
    assert clipped.shape == high.shape
    assert torch.all(clipped <= low.amax(dim=(2, 3), keepdim=True) + 1e-6)
    assert torch.all(clipped >= low.amin(dim=(2, 3), keepdim=True) - 1e-6)


def test_clamp_to_input_range_per_band_and_only_over_valid_pixels():
    low = torch.tensor([[[[0.2, 0.5], [0.8, 5.0]], [[-1.0, 0.0], [1.0, 2.0]]]])
    valid = torch.tensor([[[[1.0, 1.0], [1.0, 0.0]]]])  # the 5.0 is no measurement
    high = torch.linspace(-3, 3, 16).reshape(1, 1, 4, 4).repeat(1, 2, 1, 1)
    clipped = clamp_to_input_range(high, low, valid)
    assert clipped[0, 0].min() == pytest.approx(0.2) and clipped[0, 0].max() == pytest.approx(0.8)
    assert clipped[0, 1].min() == pytest.approx(-1.0) and clipped[0, 1].max() == pytest.approx(1.0)
    inside = (high[0, 1] >= -1) & (high[0, 1] <= 1)
    torch.testing.assert_close(clipped[0, 1][inside], high[0, 1][inside])  # untouched
    assert clamp_to_input_range(high, low)[0, 0].max() == 3.0  # all count: up to 5
