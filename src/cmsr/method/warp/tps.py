"""Thin-plate spline warp with freely learned control-point displacements.

Classic 2-D TPS (Bookstein, TPAMI 1989): a fixed grid of ``K`` source control
points ``c_k`` spread uniformly over ``[-1, 1]^2`` (borders included) is moved to
``c_k + offsets_k``; every other point follows the minimum-bending-energy
interpolant

    f(p) = p + a_0 + a_x x + a_y y + sum_k w_k U(|p - c_k|^2),  U(r^2) = r^2 log r^2,

where ``[w; a] = L^{-1} [offsets; 0]`` and ``L = [[U(|c_i - c_j|^2), P], [P^T, 0]]``,
``P = [1, x, y]``. ``L`` depends only on the fixed source points, so the needed
block of ``L^{-1}`` is computed once (float64) and stored as a buffer. Interpolating
the *offsets* (not the destinations) makes the map exactly the identity when the
offsets are zero.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .grid import as_point_rows

OFFSET_PENALTY = 0.1


def tps_kernel(r2: Tensor) -> Tensor:
    """TPS radial basis ``U = r^2 log r^2`` of squared distances, with ``U(0) = 0``.

    Parameters
    ----------
    r2:
        Squared distances ``>= 0``, any shape.

    Returns
    -------
    Tensor
        Same shape; finite value and gradient everywhere (also at ``r2 = 0``).
    """
    tiny = torch.finfo(r2.dtype).tiny
    return r2 * torch.log(r2.clamp_min(tiny))


def uniform_control_points(
    control_points: Sequence[int] = (4, 4), *, dtype: torch.dtype = torch.float64
) -> Tensor:
    """A regular ``nx x ny`` grid of points over ``[-1, 1]^2``, borders included.

    Returns
    -------
    Tensor
        ``(nx * ny, 2)`` ``(x, y)``, x varying fastest.
    """
    nx, ny = (int(n) for n in control_points)
    if nx < 2 or ny < 2:
        raise ValueError(f"control_points must be >= 2 per axis, got {tuple(control_points)}")
    xs = torch.linspace(-1.0, 1.0, nx, dtype=torch.float64)
    ys = torch.linspace(-1.0, 1.0, ny, dtype=torch.float64)
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack((grid_x, grid_y), dim=-1).reshape(-1, 2).to(dtype)


def tps_features(points: Tensor, control: Tensor) -> Tensor:
    """Design matrix ``[U(|p - c_k|^2) for k, 1, x, y]``.

    Parameters
    ----------
    points:
        ``(N, 2)``.
    control:
        ``(K, 2)`` same dtype.

    Returns
    -------
    Tensor
        ``(N, K + 3)``.
    """
    r2 = (points[:, None, :] - control[None, :, :]).pow(2).sum(dim=-1)
    ones = torch.ones_like(points[:, :1])
    return torch.cat((tps_kernel(r2), ones, points), dim=1)


def tps_system_matrix(control: Tensor) -> Tensor:
    """The TPS system ``L = [[U(|c_i - c_j|^2), P], [P^T, 0]]``, ``(K + 3, K + 3)``."""
    features = tps_features(control, control)  # (K, K + 3) = [K | P]
    k = control.shape[0]
    bottom = torch.cat((features[:, k:].transpose(0, 1), control.new_zeros(3, 3)), dim=1)
    return torch.cat((features, bottom), dim=0)


class ThinPlateSpline(nn.Module):
    """Learnable TPS warp of normalized points, exactly the identity at initialization.

    Parameters
    ----------
    control_points:
        ``(nx, ny)`` source control points along x and y, uniform over
        ``[-1, 1]^2`` including the borders; ``K = nx * ny``.

    Attributes
    ----------
    offsets:
        ``(K, 2)`` parameter, zeros: destination minus source of each control point.
    control:
        ``(K, 2)`` buffer, the fixed source points.
    solve:
        ``(K + 3, K)`` buffer, the first ``K`` columns of ``L^{-1}``.
    bending:
        ``(K, K)`` buffer, the bending-energy matrix (upper-left block of
        ``L^{-1}``; positive semi-definite, null on affine offset patterns).

    ``forward(points)`` maps points ``(..., 2)`` (x first, normalized) to
    ``(..., 2)``: the backward mapping, output pixel ``p`` samples at ``forward(p)``.
    """

    control: Tensor
    solve: Tensor
    bending: Tensor

    def __init__(self, control_points: Sequence[int] = (4, 4)) -> None:
        super().__init__()
        self.grid_size = (int(control_points[0]), int(control_points[1]))
        control = uniform_control_points(self.grid_size)
        inverse = torch.linalg.inv(tps_system_matrix(control))
        k = control.shape[0]
        self.register_buffer("control", control.to(torch.float32))
        self.register_buffer("solve", inverse[:, :k].contiguous().to(torch.float32))
        self.register_buffer("bending", inverse[:k, :k].contiguous().to(torch.float32))
        self.offsets = nn.Parameter(torch.zeros(k, 2))

    @property
    def num_control_points(self) -> int:
        """``K``."""
        return int(self.offsets.shape[0])

    def destinations(self) -> Tensor:
        """Destination control points ``(K, 2)`` = source + offsets."""
        return self.control + self.offsets

    def weights(self) -> Tensor:
        """Spline coefficients ``(K + 3, 2)``: kernel weights ``w`` then ``a_0, a_x, a_y``."""
        return self.solve @ self.offsets

    def interpolation_matrix(self, points: Tensor) -> Tensor:
        """``S`` ``(N, K)`` with ``forward(points) = points + S @ offsets`` for rows ``(N, 2)``.

        Depends only on the points and the fixed control points: callers that warp
        the same points at every step compute it once (see
        :meth:`cmsr.method.warp.GuideWarp.local_displacement`).
        """
        rows = as_point_rows(points)
        return tps_features(rows, self.control.to(rows.dtype)) @ self.solve.to(rows.dtype)

    def forward(self, points: Tensor) -> Tensor:
        """Map points ``(..., 2)`` to ``(..., 2)``; see the class docstring."""
        rows = as_point_rows(points)
        features = tps_features(rows, self.control.to(rows.dtype))
        displacement = features @ self.weights().to(rows.dtype)
        return points + displacement.reshape(points.shape)

    def bending_energy(self) -> Tensor:
        """Scalar TPS bending energy of the offsets (summed over x and y), ``>= 0``."""
        return (self.offsets * (self.bending @ self.offsets)).sum()

    def regularization(self) -> Tensor:
        """Scalar ``bending_energy() + OFFSET_PENALTY * sum(offsets ** 2)``; 0 at identity."""
        return self.bending_energy() + OFFSET_PENALTY * self.offsets.pow(2).sum()

    def extra_repr(self) -> str:
        return f"control_points={self.grid_size}"
