"""Tests for cmsr.method.warp.tps: thin-plate spline warp."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.func import functional_call

from cmsr.method.warp.tps import ThinPlateSpline, tps_kernel, uniform_control_points


def _random_tps(
    control_points: tuple[int, int] = (4, 4), std: float = 0.1, seed: int = 0
) -> ThinPlateSpline:
    tps = ThinPlateSpline(control_points).double()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        tps.offsets.copy_(torch.randn(tps.offsets.shape, generator=generator, dtype=torch.float64))
        tps.offsets.mul_(std)
    return tps


def test_kernel_values_and_zero() -> None:
    r2 = torch.tensor([0.0, 1.0, 4.0, 0.25], dtype=torch.float64, requires_grad=True)
    u = tps_kernel(r2)
    expected = [0.0, 0.0, 4 * math.log(4.0), 0.25 * math.log(0.25)]
    expected = torch.tensor(expected, dtype=torch.float64)
    assert torch.allclose(u, expected)
    u.sum().backward()
    assert torch.isfinite(r2.grad).all()


def test_control_points_cover_square_with_borders() -> None:
    control = uniform_control_points((3, 4))
    assert control.shape == (12, 2)
    assert control[:, 0].min() == -1 and control[:, 0].max() == 1
    assert control[:, 1].min() == -1 and control[:, 1].max() == 1
    assert torch.allclose(control[:3, 0], torch.tensor([-1.0, 0.0, 1.0], dtype=torch.float64))


def test_identity_at_init_exact() -> None:
    tps = ThinPlateSpline((4, 4))
    points = torch.rand(6, 5, 2) * 2 - 1
    assert torch.equal(tps(points), points)
    assert tps.regularization().item() == 0.0


def test_interpolates_control_points() -> None:
    tps = _random_tps((4, 3), std=0.1)
    assert torch.allclose(tps(tps.control), tps.destinations(), atol=1e-6)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), nx=st.integers(2, 5), ny=st.integers(2, 5))
def test_interpolates_control_points_any_grid(seed: int, nx: int, ny: int) -> None:
    tps = _random_tps((nx, ny), std=0.2, seed=seed)
    assert torch.allclose(tps(tps.control), tps.destinations(), atol=1e-6)


def test_same_offset_everywhere_is_pure_translation() -> None:
    tps = ThinPlateSpline((4, 4)).double()
    shift = torch.tensor([0.07, -0.12], dtype=torch.float64)
    with torch.no_grad():
        tps.offsets.copy_(shift.expand_as(tps.offsets))
    points = torch.rand(100, 2, dtype=torch.float64) * 3 - 1.5
    assert torch.allclose(tps(points), points + shift, atol=1e-6)
    assert abs(tps.bending_energy().item()) < 1e-6


def test_affine_offsets_give_affine_map_without_bending() -> None:
    tps = ThinPlateSpline((5, 4)).double()
    linear = torch.tensor([[0.05, -0.1], [0.08, 0.02]], dtype=torch.float64)
    with torch.no_grad():
        tps.offsets.copy_(tps.control @ linear.T + torch.tensor([0.01, 0.02]))
    points = torch.rand(50, 2, dtype=torch.float64) * 2 - 1
    expected = points + points @ linear.T + torch.tensor([0.01, 0.02], dtype=torch.float64)
    assert torch.allclose(tps(points), expected, atol=1e-6)
    assert abs(tps.bending_energy().item()) < 1e-6
    bent = _random_tps((5, 4), std=0.1)
    assert bent.bending_energy().item() > 0


def test_gradcheck_offsets_and_points() -> None:
    tps = _random_tps((3, 3), std=0.1)
    generator = torch.Generator().manual_seed(1)
    points = torch.rand(5, 2, generator=generator, dtype=torch.float64) * 2 - 1
    points = torch.cat((points, tps.control[:1]))  # also exactly on a control point

    def of_offsets(offsets: torch.Tensor) -> torch.Tensor:
        return functional_call(tps, {"offsets": offsets}, (points,))

    offsets = tps.offsets.detach().clone().requires_grad_()
    assert torch.autograd.gradcheck(of_offsets, (offsets,))
    assert torch.autograd.gradcheck(tps, (points.clone().requires_grad_(),))


def test_state_dict_round_trip() -> None:
    tps = _random_tps().float()
    other = ThinPlateSpline((4, 4))
    other.load_state_dict(tps.state_dict())
    points = torch.rand(10, 2) * 2 - 1
    assert torch.equal(other(points), tps(points))


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError):
        ThinPlateSpline((1, 4))
    with pytest.raises(ValueError):
        ThinPlateSpline()(torch.zeros(3))
