"""Tests for cmsr.method.warp.cpab: CPA velocity fields and their integration."""

from __future__ import annotations

import pytest
import torch
from torch.func import functional_call

from cmsr.method.warp.cpab import (
    CpabWarp,
    cpab_basis,
    cpab_cell_index,
    cpab_constraint_matrix,
    cpab_triangle_vertices,
    null_space,
)
from cmsr.method.warp.grid import identity_grid


def _random_warp(
    tessellation: tuple[int, int] = (4, 4), std: float = 1.0, seed: int = 0, **kwargs: object
) -> CpabWarp:
    warp = CpabWarp(tessellation, **kwargs).double()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        warp.theta.copy_(torch.randn(warp.dim, generator=generator, dtype=torch.float64) * std)
    return warp


@pytest.mark.parametrize("tessellation", [(1, 1), (2, 3), (4, 4)])
@pytest.mark.parametrize("zero_boundary", [False, True])
def test_null_space_dimension_and_orthonormality(
    tessellation: tuple[int, int], zero_boundary: bool
) -> None:
    nx, ny = tessellation
    constraints = cpab_constraint_matrix(tessellation, zero_boundary=zero_boundary)
    basis = cpab_basis(tessellation, zero_boundary=zero_boundary)
    # CPA fields on the triangulation <-> free velocities at the (inner) vertices
    vertices = (nx - 1) * (ny - 1) if zero_boundary else (nx + 1) * (ny + 1)
    assert basis.shape == (24 * nx * ny, 2 * (vertices + nx * ny))
    assert torch.allclose(basis.T @ basis, torch.eye(basis.shape[1], dtype=torch.float64))
    assert (constraints @ basis).abs().max() < 1e-12
    warp = CpabWarp(tessellation, zero_boundary=zero_boundary)
    assert warp.dim == basis.shape[1]


def test_null_space_of_small_matrix() -> None:
    matrix = torch.tensor([[1.0, 1.0, 0.0], [2.0, 2.0, 0.0]], dtype=torch.float64)
    basis = null_space(matrix)
    assert basis.shape == (3, 2)
    assert (matrix @ basis).abs().max() < 1e-12
    assert torch.allclose(basis.T @ basis, torch.eye(2, dtype=torch.float64))
    assert torch.equal(null_space(torch.zeros(0, 4)), torch.eye(4, dtype=torch.float64))


def test_cell_index_of_triangle_centroids() -> None:
    tessellation = (3, 2)
    centroids = cpab_triangle_vertices(tessellation).mean(dim=1)
    index = cpab_cell_index(centroids, tessellation)
    assert torch.equal(index, torch.arange(centroids.shape[0]))


def test_identity_at_init() -> None:
    warp = CpabWarp((4, 4))
    points = torch.rand(3, 5, 2) * 2 - 1
    assert torch.equal(warp(points), points)
    assert torch.equal(warp.velocity(points), torch.zeros_like(points))
    assert warp.displacement_on_grid(6, 7).abs().max().item() == 0.0
    assert warp.regularization().item() == 0.0


@pytest.mark.parametrize("zero_boundary", [False, True])
def test_velocity_continuous_across_cell_and_triangle_edges(zero_boundary: bool) -> None:
    nx, ny = 2, 3
    warp = _random_warp((nx, ny), zero_boundary=zero_boundary)
    t = torch.linspace(-0.97, 0.97, 23, dtype=torch.float64)
    eps = 1e-9
    checks = []
    for i in range(1, nx):  # vertical cell borders
        edge = torch.stack((torch.full_like(t, -1 + 2 * i / nx), t), dim=-1)
        checks.append((edge, torch.tensor([1.0, 0.0], dtype=torch.float64)))
    for j in range(1, ny):  # horizontal cell borders
        edge = torch.stack((t, torch.full_like(t, -1 + 2 * j / ny)), dim=-1)
        checks.append((edge, torch.tensor([0.0, 1.0], dtype=torch.float64)))
    # both diagonals of one cell (cx=1, cy=1), in local coordinates s in (0, 1)
    s = torch.linspace(0.05, 0.95, 11, dtype=torch.float64)
    x0, y0, w, h = -1 + 2 / nx, -1 + 2 / ny, 2 / nx, 2 / ny
    main = torch.stack((x0 + s * w, y0 + s * h), dim=-1)
    anti = torch.stack((x0 + s * w, y0 + (1 - s) * h), dim=-1)
    checks.append((main, torch.tensor([h, -w], dtype=torch.float64)))
    checks.append((anti, torch.tensor([h, w], dtype=torch.float64)))
    scale = warp.cell_affines().abs().max().item()
    for points, normal in checks:
        normal = normal / normal.norm()
        left = warp.velocity(points - eps * normal)
        right = warp.velocity(points + eps * normal)
        # exact in float64; the float32 basis buffer leaves ~1e-7 relative mismatch,
        # while a random (non-CPA) piecewise field would jump by O(scale)
        assert (left - right).abs().max().item() < 1e-6 * scale
    # the two sides really are different affine pieces
    index_left = cpab_cell_index(checks[-1][0] - 1e-6 * checks[-1][1], (nx, ny))
    index_right = cpab_cell_index(checks[-1][0] + 1e-6 * checks[-1][1], (nx, ny))
    assert (index_left != index_right).all()


def test_zero_boundary_keeps_border_fixed() -> None:
    warp = _random_warp((4, 4), std=2.0, zero_boundary=True)
    t = torch.linspace(-1, 1, 17, dtype=torch.float64)
    one = torch.ones_like(t)
    border = torch.cat([torch.stack(p, dim=-1) for p in ((t, -one), (t, one), (-one, t), (one, t))])
    outside = border * 1.3
    assert warp.velocity(border).abs().max().item() < 1e-6
    assert (warp(border) - border).abs().max().item() < 1e-6
    assert (warp(outside) - outside).abs().max().item() < 1e-6


def test_constant_translation_moves_points_by_velocity() -> None:
    warp = CpabWarp((4, 4), zero_boundary=False).double()
    shift = torch.tensor([0.3, -0.2], dtype=torch.float64)
    affines = torch.zeros(warp.num_triangles, 2, 3, dtype=torch.float64)
    affines[:, :, 2] = shift
    with torch.no_grad():
        warp.theta.copy_(warp.theta_from_affines(affines))
    assert torch.allclose(warp.cell_affines(), affines, atol=1e-6)
    points = torch.rand(50, 2, dtype=torch.float64) * 2 - 1
    assert torch.allclose(warp.velocity(points), shift.expand_as(points), atol=1e-6)
    assert torch.allclose(warp(points), points + shift, atol=1e-6)  # v * T with T = 1
    assert torch.allclose(warp(points, inverse=True), points - shift, atol=1e-6)


def test_global_linear_field_flows_by_matrix_exponential() -> None:
    warp = CpabWarp((2, 3), zero_boundary=False, integration_steps=8).double()
    generator_matrix = torch.tensor([[0.1, -0.6], [0.6, -0.05]], dtype=torch.float64)
    affines = torch.zeros(warp.num_triangles, 2, 3, dtype=torch.float64)
    affines[:, :, :2] = generator_matrix
    with torch.no_grad():
        warp.theta.copy_(warp.theta_from_affines(affines))
    points = (torch.rand(40, 2, dtype=torch.float64) - 0.5) * 1.0  # trajectories stay inside
    expected = points @ torch.linalg.matrix_exp(generator_matrix).T
    assert torch.allclose(warp(points), expected, atol=1e-5)


def test_inverse_round_trip() -> None:
    warp = _random_warp((4, 4), std=1.0, seed=1)
    points = identity_grid(24, 24, dtype=torch.float64)
    forward = warp(points)
    assert (forward - points).abs().max().item() > 0.1  # a sizeable deformation
    back = warp(forward, inverse=True)
    assert (back - points).abs().max().item() < 1e-4
    again = warp(warp(points, inverse=True))
    assert (again - points).abs().max().item() < 1e-4


@pytest.mark.parametrize("zero_boundary", [False, True])
def test_warp_is_diffeomorphic_jacobian_positive(zero_boundary: bool) -> None:
    warp = _random_warp((4, 4), std=1.5, seed=2, zero_boundary=zero_boundary)
    size = 41
    mapped = warp(identity_grid(size, size, dtype=torch.float64))[0]  # (H, W, 2)
    assert (mapped - identity_grid(size, size, dtype=torch.float64)[0]).abs().max() > 0.1
    spacing = 2.0 / size
    d_dx = (mapped[1:-1, 2:] - mapped[1:-1, :-2]) / (2 * spacing)
    d_dy = (mapped[2:, 1:-1] - mapped[:-2, 1:-1]) / (2 * spacing)
    det = d_dx[..., 0] * d_dy[..., 1] - d_dx[..., 1] * d_dy[..., 0]
    assert det.min().item() > 0.0


def test_gradcheck_theta_and_points() -> None:
    warp = _random_warp((2, 3), std=0.5, seed=3, integration_steps=3)
    generator = torch.Generator().manual_seed(4)
    points = torch.rand(6, 2, generator=generator, dtype=torch.float64) * 1.6 - 0.8

    def of_theta(theta: torch.Tensor) -> torch.Tensor:
        return functional_call(warp, {"theta": theta}, (points,))

    theta = warp.theta.detach().clone().requires_grad_()
    assert torch.autograd.gradcheck(of_theta, (theta,))
    assert torch.autograd.gradcheck(warp, (points.clone().requires_grad_(),))
    assert torch.autograd.gradcheck(warp.velocity, (points.clone().requires_grad_(),))


def test_parameters_receive_gradient_and_state_dict_round_trip() -> None:
    warp = _random_warp((4, 4), std=0.3).float()
    warp(identity_grid(8, 8)).pow(2).sum().backward()
    assert warp.theta.grad is not None and warp.theta.grad.abs().sum() > 0
    other = CpabWarp((4, 4))
    other.load_state_dict(warp.state_dict())
    points = torch.rand(10, 2) * 2 - 1
    assert torch.equal(other(points), warp(points))
    assert set(warp.state_dict()) == {"theta", "basis"}


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError):
        CpabWarp((0, 3))
    with pytest.raises(ValueError):
        CpabWarp(integration_steps=0)
    with pytest.raises(ValueError):
        CpabWarp().velocity(torch.zeros(4, 3))


def test_raster_flow_matches_rk4() -> None:
    # a field moving points by up to ~0.06 (19 px at 640 px): bilinear raster error only
    warp = _random_warp((4, 4), std=0.3, seed=5)
    assert warp.raster_shape() == (97, 97)
    points = torch.rand(2000, 2, generator=torch.Generator().manual_seed(6),
                        dtype=torch.float64) * 2 - 1
    reference = warp(points)  # RK4
    fast = warp.forward_raster(points)
    error = (fast - reference).norm(dim=1)
    assert (reference - points).abs().max().item() > 0.03
    assert error.mean().item() < 2e-4 and error.max().item() < 3e-3


def test_raster_flow_identity_border_and_reuse() -> None:
    warp = CpabWarp((3, 2))
    assert warp.raster_shape() == (49, 73)
    points = torch.rand(3, 4, 2) * 2 - 1
    assert torch.equal(warp.forward_raster(points), points)
    moved = _random_warp((3, 2), std=1.0, seed=1)
    flow = moved.raster_flow()
    assert flow.shape == (1, 2, 49, 73)
    assert flow[..., 0, :].abs().max() < 1e-9 and flow[..., :, -1].abs().max() < 1e-9
    assert torch.equal(moved.forward_raster(points.double(), flow),
                       moved.forward_raster(points.double()))
    with pytest.raises(ValueError):
        CpabWarp(zero_boundary=False).forward_raster(points)


class _Raster(torch.nn.Module):
    """CpabWarp.forward_raster as a module forward, for functional_call."""

    def __init__(self, warp: CpabWarp) -> None:
        super().__init__()
        self.warp = warp

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        return self.warp.forward_raster(points)


def test_gradcheck_raster_flow() -> None:
    wrapper = _Raster(_random_warp((2, 2), std=0.5, seed=7))
    points = torch.rand(6, 2, generator=torch.Generator().manual_seed(8),
                        dtype=torch.float64) * 1.6 - 0.8

    def of_theta(theta: torch.Tensor) -> torch.Tensor:
        return functional_call(wrapper, {"warp.theta": theta}, (points,))

    theta = wrapper.warp.theta.detach().clone().requires_grad_()
    assert torch.autograd.gradcheck(of_theta, (theta,))
    assert torch.autograd.gradcheck(wrapper, (points.clone().requires_grad_(),))
