"""Tests for cmsr.method.warp.chain: the affine -> CPAB -> TPS guide alignment."""

from __future__ import annotations

import pytest
import torch
from torch.func import functional_call

from cmsr.method.warp.chain import LAYER_PRESETS, GuideWarp
from cmsr.method.warp.grid import identity_grid, spanning_grid


def _perturbed(preset: str = "full", seed: int = 0, **kwargs: object) -> GuideWarp:
    warp = GuideWarp(preset, **kwargs)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in warp.parameters():
            param.copy_(torch.randn(param.shape, generator=generator) * 0.05)
    return warp


@pytest.mark.parametrize("preset", sorted(LAYER_PRESETS))
def test_identity_at_init(preset: str) -> None:
    warp = GuideWarp(preset)
    expected = identity_grid(20, 24)
    assert torch.allclose(warp.grid(20, 24, coarse=None), expected, atol=1e-6)
    assert torch.allclose(warp.grid(80, 96, coarse=16), identity_grid(80, 96), atol=1e-6)
    guide = torch.rand(2, 3, 20, 24, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(warp(guide), guide, atol=1e-6)
    bicubic = GuideWarp(preset, mode="bicubic")
    assert torch.allclose(bicubic(guide), guide, atol=1e-6)
    assert warp.regularization().item() == 0.0


def test_presets_build_the_right_layers() -> None:
    assert set(GuideWarp("none").layers) == set()
    assert set(GuideWarp("affine").layers) == {"affine"}
    assert set(GuideWarp("affine+cpab").layers) == {"affine", "cpab"}
    assert set(GuideWarp("full").layers) == {"affine", "cpab", "tps"}
    with pytest.raises(ValueError):
        GuideWarp("tps")
    with pytest.raises(ValueError):
        GuideWarp(mode="nearest")


def test_grid_composes_tps_then_cpab_then_affine() -> None:
    warp = _perturbed("full")
    base = identity_grid(10, 12)
    layers = warp.layers
    expected = layers["affine"](layers["cpab"](layers["tps"](base)))
    assert torch.allclose(warp.grid(10, 12, coarse=None), expected, atol=1e-6)
    assert torch.allclose(warp.forward_points(base), expected, atol=1e-6)
    other_order = layers["tps"](layers["cpab"](layers["affine"](base)))
    assert (other_order - expected).abs().max() > 1e-3  # the order matters


def test_coarse_grid_close_to_exact() -> None:
    warp = _perturbed("full", seed=1)
    exact = warp.grid(96, 120, coarse=None)
    coarse = warp.grid(96, 120, coarse=32)
    assert coarse.shape == exact.shape == (1, 96, 120, 2)
    # normalized units: 3e-3 is 0.18 px at 120 px width (measured 1.4e-3; the error
    # is first order in the coarse spacing, from CPAB's kinks along cell edges)
    assert (coarse - exact).abs().max().item() < 3e-3
    # nodes at every pixel: TPS exact there, only CPAB's raster flow approximates
    every_pixel = warp.grid(96, 120, coarse=128)
    assert (every_pixel - exact).abs().max().item() < 1e-3


def test_local_displacement_is_what_grid_upsamples() -> None:
    warp = _perturbed("full", seed=2)
    shift = warp.local_displacement(96, 120, coarse=16)
    assert shift.shape == (1, 16, 16, 2)
    nodes = spanning_grid(96, 120, 16, 16)
    exact = warp.local(nodes) - nodes
    assert (shift - exact).abs().max().item() < 1e-3
    warp.set_active({"affine"})
    assert warp.grid(96, 120, coarse=16).shape == (1, 96, 120, 2)
    warp.set_active({"affine", "tps"})  # TPS alone: exact at the nodes
    torch.testing.assert_close(warp.local_displacement(96, 120, coarse=16),
                               warp.layers["tps"](nodes) - nodes, atol=1e-6, rtol=0)


def test_set_active_skips_layers() -> None:
    warp = _perturbed("full")
    warp.set_active({"affine"})
    base = identity_grid(8, 9)
    assert torch.allclose(warp.grid(8, 9), warp.layers["affine"](base), atol=1e-6)
    warp.grid(8, 9).sum().backward()
    assert warp.layers["affine"].delta.grad is not None
    assert warp.layers["cpab"].theta.grad is None
    assert warp.layers["tps"].offsets.grad is None
    expected = warp.layers["affine"].regularization()
    assert torch.allclose(warp.regularization(), expected)
    warp.set_active(["affine", "cpab", "tps"])
    assert not torch.allclose(warp.grid(8, 9), warp.layers["affine"](base))
    with pytest.raises(ValueError):
        warp.set_active({"affine", "bogus"})
    with pytest.raises(ValueError):
        GuideWarp("affine").set_active({"tps"})


def test_freeze_keeps_layer_applied_but_untrained() -> None:
    warp = _perturbed("full")
    before = warp.grid(8, 9).detach()
    warp.freeze({"cpab", "tps"})
    assert not warp.layers["cpab"].theta.requires_grad
    assert torch.equal(warp.grid(8, 9).detach(), before)
    warp.grid(8, 9).sum().backward()
    assert warp.layers["tps"].offsets.grad is None
    assert warp.layers["affine"].delta.grad is not None
    warp.unfreeze({"cpab"})
    assert warp.layers["cpab"].theta.requires_grad


def test_parameter_groups_per_layer_lr() -> None:
    warp = GuideWarp("full")
    groups = warp.parameter_groups(1e-3, {"affine": 10.0, "tps": 0.5})
    by_name = {g["name"]: g for g in groups}
    assert set(by_name) == {"affine", "cpab", "tps"}
    assert by_name["affine"]["lr"] == pytest.approx(1e-2)
    assert by_name["cpab"]["lr"] == pytest.approx(1e-3)
    assert by_name["tps"]["lr"] == pytest.approx(5e-4)
    assert by_name["tps"]["params"] == [warp.layers["tps"].offsets]
    optimizer = torch.optim.Adam(groups)
    warp(torch.rand(1, 1, 12, 12)).mean().backward()
    optimizer.step()
    assert GuideWarp("none").parameter_groups(1.0) == []
    with pytest.raises(ValueError):
        warp.parameter_groups(1e-3, {"rgb": 2.0})


def test_regularization_positive_and_weighted() -> None:
    warp = _perturbed("full")
    total = warp.regularization()
    assert total.item() > 0
    parts = {name: layer.regularization() for name, layer in warp.layers.items()}
    assert torch.allclose(total, sum(parts.values()))
    weighted = warp.regularization({"cpab": 0.0, "tps": 2.0})
    assert torch.allclose(weighted, parts["affine"] + 2.0 * parts["tps"])
    total.backward()
    assert all(p.grad is not None for p in warp.parameters())


def test_gradients_reach_every_layer_through_the_image() -> None:
    warp = GuideWarp("full", coarse=8)
    y, x = torch.meshgrid(torch.linspace(-1, 1, 24), torch.linspace(-1, 1, 20), indexing="ij")
    guide = torch.sin(3 * x + 2 * y)[None, None] + torch.cos(4 * y - x)[None, None]
    target = torch.roll(guide, 1, dims=-1)
    (warp(guide) - target).abs().mean().backward()
    for name, layer in warp.layers.items():
        grads = [p.grad for p in layer.parameters()]
        assert all(g is not None and g.abs().sum() > 0 for g in grads), name


class _GridOf(torch.nn.Module):
    """Wraps GuideWarp.grid as a module forward, for functional_call."""

    def __init__(self, warp: GuideWarp) -> None:
        super().__init__()
        self.warp = warp

    def forward(self) -> torch.Tensor:
        return self.warp.grid(5, 6, coarse=4)


def test_gradcheck_chain_parameters() -> None:
    warp = _perturbed("full", integration_steps=2, tessellation=(2, 3)).double()
    wrapper = _GridOf(warp)
    names = [name for name, _ in wrapper.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_() for p in wrapper.parameters())

    def of_params(*values: torch.Tensor) -> torch.Tensor:
        return functional_call(wrapper, dict(zip(names, values, strict=True)), ())

    assert torch.autograd.gradcheck(of_params, params)


def test_state_dict_round_trip() -> None:
    warp = _perturbed("full")
    other = GuideWarp("full")
    other.load_state_dict(warp.state_dict())
    assert torch.equal(other.grid(16, 20), warp.grid(16, 20))
    assert {"layers.affine.delta", "layers.cpab.theta", "layers.tps.offsets"} <= set(
        warp.state_dict()
    )


def test_caches_made_under_inference_mode_serve_autograd_later() -> None:
    warp = _perturbed("full")
    with torch.inference_mode():
        warp.grid(40, 48, coarse=16)  # fills the node and raster caches
    warp.grid(40, 48, coarse=16).sum().backward()
    assert all(p.grad is not None for p in warp.parameters())
