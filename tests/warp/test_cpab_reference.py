"""CPAB warps against a reference written from the definition, sharing no code with the module.

The definition (Freifeld et al., TPAMI 2017, on the module's triangulated tessellation):
``[-1, 1]^2`` is cut into ``nx x ny`` rectangular cells and each cell by its two
diagonals into 4 triangles; a CPA velocity field is affine on every triangle and
continuous, i.e. fixed by its values at the cell corners and cell centres and linear
(barycentric) in between; the warp is the flow of ``dp/dt = v(p)`` for time 1 (time -1
for the inverse), the field taken at the clamped point outside the square. The
reference below evaluates that field from vertex velocities with its own cell and
triangle lookup and integrates it with SciPy's adaptive DOP853 at tight tolerances.
From the module it takes only public results: ``CpabWarp.velocity`` at the vertices
(to learn which field a random ``theta`` is), ``theta_from_affines`` (to hand it a
field the reference chose), and the flows to be checked.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp

from cmsr.method.warp.cpab import CpabWarp


class Reference:
    """A CPA field on ``nx x ny`` cells, fixed by velocities at the corners and centres."""

    def __init__(self, nx: int, ny: int, corners: np.ndarray, centres: np.ndarray) -> None:
        self.nx, self.ny = nx, ny
        self.corners = corners  # (ny + 1, nx + 1, 2): corner (i, j) at x_j, y_i
        self.centres = centres  # (ny, nx, 2)

    @staticmethod
    def corner_points(nx: int, ny: int) -> np.ndarray:
        xs, ys = np.linspace(-1, 1, nx + 1), np.linspace(-1, 1, ny + 1)
        return np.stack(np.meshgrid(xs, ys), axis=-1)  # (ny + 1, nx + 1, 2), x first

    @staticmethod
    def centre_points(nx: int, ny: int) -> np.ndarray:
        xs = -1 + (np.arange(nx) + 0.5) * 2 / nx
        ys = -1 + (np.arange(ny) + 0.5) * 2 / ny
        return np.stack(np.meshgrid(xs, ys), axis=-1)  # (ny, nx, 2)

    def triangles(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For each point, its triangle's vertices ``(N, 3, 2)`` and velocities ``(N, 3, 2)``."""
        p = np.clip(points, -1, 1)
        gx, gy = (p[:, 0] + 1) * self.nx / 2, (p[:, 1] + 1) * self.ny / 2
        col = np.minimum(np.floor(gx), self.nx - 1).astype(int)
        row = np.minimum(np.floor(gy), self.ny - 1).astype(int)
        u, w = gx - col, gy - row  # position in the cell, [0, 1]^2
        # the diagonals part the cell into the triangles nearest each edge
        distance = np.stack([w, 1 - u, 1 - w, u], axis=1)  # to the edges y0, x1, y1, x0
        edge = np.argmin(distance, axis=1)
        # each edge's two corners, as (row offset, column offset)
        ends = np.array([[(0, 0), (0, 1)], [(0, 1), (1, 1)], [(1, 1), (1, 0)], [(1, 0), (0, 0)]])
        corner_points = self.corner_points(self.nx, self.ny)
        vertices, velocities = [], []
        for k in range(2):
            r, c = row + ends[edge, k, 0], col + ends[edge, k, 1]
            vertices.append(corner_points[r, c])
            velocities.append(self.corners[r, c])
        vertices.append(self.centre_points(self.nx, self.ny)[row, col])
        velocities.append(self.centres[row, col])
        return np.stack(vertices, axis=1), np.stack(velocities, axis=1)

    def velocity(self, points: np.ndarray) -> np.ndarray:
        """``(N, 2)`` velocities: barycentric interpolation in each point's triangle."""
        p = np.clip(points, -1, 1)
        vertices, velocities = self.triangles(p)
        edges = np.stack([vertices[:, 0] - vertices[:, 2], vertices[:, 1] - vertices[:, 2]],
                         axis=2)  # (N, 2, 2): columns are the edge vectors
        lam = np.linalg.solve(edges, (p - vertices[:, 2])[..., None])[..., 0]
        weights = np.concatenate([lam, 1 - lam.sum(axis=1, keepdims=True)], axis=1)
        return np.einsum("nk,nkd->nd", weights, velocities)

    def flow(self, points: np.ndarray, time: float = 1.0) -> np.ndarray:
        """End points of ``dp/dt = v(p)`` after ``time``, by adaptive DOP853."""
        solution = solve_ivp(lambda _, y: self.velocity(y.reshape(-1, 2)).ravel(),
                             (0.0, time), points.ravel(), method="DOP853",
                             rtol=1e-10, atol=1e-11)
        assert solution.success, solution.message
        return solution.y[:, -1].reshape(-1, 2)

    def affines(self) -> np.ndarray:
        """``(4 nx ny, 2, 3)`` per-triangle matrices in the module's documented order:
        triangle ``4 (row nx + col) + k``, k = 0 top (y0), 1 right, 2 bottom, 3 left."""
        centres = self.centre_points(self.nx, self.ny)
        out = []
        for row in range(self.ny):
            for col in range(self.nx):
                for k in range(4):
                    # a point just inside triangle k, between the centre and edge k's middle
                    towards = np.array([[0, -1], [1, 0], [0, 1], [-1, 0]][k], dtype=float)
                    inside = centres[row, col] + 0.25 * towards * [1 / self.nx, 1 / self.ny]
                    vertices, velocities = self.triangles(inside[None])
                    homogeneous = np.concatenate([vertices[0].T, np.ones((1, 3))])  # (3, 3)
                    out.append(velocities[0].T @ np.linalg.inv(homogeneous))
        return np.stack(out)


def _vertex_points(nx: int, ny: int) -> np.ndarray:
    return np.concatenate([Reference.corner_points(nx, ny).reshape(-1, 2),
                           Reference.centre_points(nx, ny).reshape(-1, 2)])


def _reference_of(warp: CpabWarp) -> Reference:
    """The field the module's ``theta`` stands for, read at the vertices only."""
    nx, ny = warp.tessellation
    with torch.no_grad():
        at = warp.velocity(torch.from_numpy(_vertex_points(nx, ny))).numpy()
    corners = at[: (nx + 1) * (ny + 1)].reshape(ny + 1, nx + 1, 2)
    return Reference(nx, ny, corners, at[(nx + 1) * (ny + 1):].reshape(ny, nx, 2))


def _random_module_warp(tessellation, zero_boundary, seed, size, steps=64) -> CpabWarp:
    warp = CpabWarp(tessellation, zero_boundary=zero_boundary,
                    integration_steps=steps).double()
    generator = torch.Generator().manual_seed(seed)
    theta = torch.randn(warp.dim, generator=generator, dtype=torch.float64)
    with torch.no_grad():
        warp.theta.copy_(theta * size / theta.norm())
    return warp


def _points(count: int, seed: int, reach: float = 1.0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-reach, reach, size=(count, 2))


def _module(warp: CpabWarp, points: np.ndarray, **kwargs) -> np.ndarray:
    with torch.no_grad():
        return warp(torch.from_numpy(points), **kwargs).numpy()


# (tessellation, zero_boundary, seed, |theta|): the fields move points by up to 0.1 to
# 0.3 (5% to 15% of the image); without a zero boundary the points stay near the middle.
FIELDS = [((2, 2), True, 0, 2.0), ((4, 3), True, 1, 3.0), ((3, 5), True, 2, 4.0),
          ((2, 3), False, 3, 1.0), ((4, 4), False, 4, 1.5)]


@pytest.mark.parametrize(("tessellation", "zero_boundary", "seed", "size"), FIELDS)
def test_module_field_is_the_continuous_piecewise_affine_interpolant(
        tessellation, zero_boundary, seed, size):
    # Read at the vertices only, the module's field must equal the reference's
    # barycentric interpolation everywhere: affine on the same triangles, continuous.
    warp = _random_module_warp(tessellation, zero_boundary, seed, size)
    reference = _reference_of(warp)
    points = _points(400, seed + 100, reach=1.2)  # some outside: the clamped extension
    with torch.no_grad():
        got = warp.velocity(torch.from_numpy(points)).numpy()
    # The module keeps its basis in float32 (a buffer), so its field is continuous to
    # float32 precision only: measured 2.4e-8 on velocities up to 0.3; a wrong triangle
    # or a discontinuity would be off by 1e-2 or more.
    np.testing.assert_allclose(got, reference.velocity(points), rtol=0, atol=1e-7)
    if zero_boundary:
        assert np.abs(reference.corners[[0, -1]]).max() < 1e-7
        assert np.abs(reference.corners[:, [0, -1]]).max() < 1e-7


@pytest.mark.parametrize(("tessellation", "zero_boundary", "seed", "size"), FIELDS)
def test_module_flow_matches_reference_integration(tessellation, zero_boundary, seed, size):
    warp = _random_module_warp(tessellation, zero_boundary, seed, size)
    reference = _reference_of(warp)
    points = _points(30, seed + 200, reach=1.0 if zero_boundary else 0.5)
    expected = reference.flow(points)
    moved = np.abs(expected - points).max()
    # the fields do move points (by 0.04 to 0.3 here: the basis of the velocity fields
    # comes from an SVD, so theta's direction, and how far it moves, varies by machine)
    assert 0.02 < moved < 0.4
    # RK4 with 64 steps; the field has kinks on the triangle edges, where RK4 falls to
    # low order: measured at most 1.0e-6 (normalized units; 3e-4 px at 640 px), forward
    # and inverse (the flow of -v). A wrong field or time moves points by ~1e-2 or more.
    np.testing.assert_allclose(_module(warp, points), expected, rtol=0, atol=1e-5)
    np.testing.assert_allclose(_module(warp, expected, inverse=True), points, rtol=0,
                               atol=1e-5)
    # and the reference's own round trip (adaptive steps across the kinks): measured 4e-7
    np.testing.assert_allclose(reference.flow(expected, time=-1.0), points, rtol=0,
                               atol=2e-6)


@pytest.mark.parametrize(("tessellation", "zero_boundary", "seed", "size"), FIELDS[:3])
def test_default_steps_and_raster_flow_against_reference(tessellation, zero_boundary, seed,
                                                         size):
    warp = _random_module_warp(tessellation, zero_boundary, seed, size, steps=8)
    reference = _reference_of(warp)
    points = _points(30, seed + 300)
    expected = reference.flow(points)
    # the default 8 RK4 steps: measured at most 4.5e-5 (0.015 px at 640 px)
    np.testing.assert_allclose(_module(warp, points), expected, rtol=0, atol=2e-4)
    # scaling and squaring on the raster (the module's docstring: 0.7 px at 640 px for
    # displacements of 19 px): measured at most 4.1e-3 here (1.3 px at 640 px, for
    # displacements of 0.15 = 48 px), on the coarsest raster (2 x 2 cells, 49 x 49)
    with torch.no_grad():
        raster = warp.forward_raster(torch.from_numpy(points)).numpy()
    np.testing.assert_allclose(raster, expected, rtol=0, atol=8e-3)


def test_a_field_chosen_by_the_reference_is_one_the_module_represents():
    # Random velocities at the inner vertices (zero on the border): the module's basis
    # must hold this field exactly, and flow it as the reference does.
    nx, ny = 3, 2
    rng = np.random.default_rng(7)
    corners = np.zeros((ny + 1, nx + 1, 2))
    corners[1:-1, 1:-1] = rng.normal(scale=0.15, size=(ny - 1, nx - 1, 2))
    reference = Reference(nx, ny, corners, rng.normal(scale=0.15, size=(ny, nx, 2)))
    affines = torch.from_numpy(reference.affines())
    warp = CpabWarp((nx, ny), zero_boundary=True, integration_steps=64).double()
    with torch.no_grad():
        warp.theta.copy_(warp.theta_from_affines(affines))
        np.testing.assert_allclose(warp.cell_affines().numpy(), affines.numpy(), rtol=0,
                                   atol=1e-7)  # the float32 basis
    points = _points(30, 8)
    np.testing.assert_allclose(_module(warp, points), reference.flow(points), rtol=0,
                               atol=1e-5)
