"""Global affine warp (the affine spatial transformer of Jaderberg et al. 2015).

The coarsest of the three CMSR alignment layers: one 2x3 matrix ``theta`` acting
on normalized points, ``p' = theta[:, :2] @ p + theta[:, 2]``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .grid import as_point_rows


def affine_matrix(
    angle_deg: float = 0.0,
    scale: float | Sequence[float] = 1.0,
    shear: float = 0.0,
    shift_xy: Sequence[float] = (0.0, 0.0),
    *,
    aspect: float = 1.0,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Build a 2x3 affine matrix acting on normalized points (for tests and set-up).

    The linear part is ``R(angle) @ [[1, shear], [0, 1]] @ diag(sx, sy)`` in a frame
    where x and y units have the same length in pixels, conjugated into normalized
    coordinates with ``aspect``; the translation is added last.

    Parameters
    ----------
    angle_deg:
        Rotation in degrees; positive turns +x towards +y (clockwise on screen,
        since image y points down).
    scale:
        Isotropic factor or ``(sx, sy)``; ``> 0``.
    shear:
        Shear factor: ``x += shear * y`` (before rotation).
    shift_xy:
        Translation ``(tx, ty)`` in normalized units (one pixel is ``2 / width`` in x,
        ``2 / height`` in y).
    aspect:
        ``width / height`` of the image the matrix is meant for, so that the
        rotation is a true rotation in pixels; ``1`` for square images.
    dtype:
        Result dtype.

    Returns
    -------
    Tensor
        ``(2, 3)`` matrix ``[A | t]``.
    """
    if isinstance(scale, (int, float)):
        sx = sy = float(scale)
    else:
        sx, sy = (float(s) for s in scale)
    a = math.radians(angle_deg)
    rotation = torch.tensor(
        [[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]], dtype=torch.float64
    )
    shearing = torch.tensor([[1.0, float(shear)], [0.0, 1.0]], dtype=torch.float64)
    scaling = torch.diag(torch.tensor([sx, sy], dtype=torch.float64))
    frame = torch.diag(torch.tensor([float(aspect), 1.0], dtype=torch.float64))
    linear = torch.linalg.inv(frame) @ rotation @ shearing @ scaling @ frame
    shift = torch.tensor([float(shift_xy[0]), float(shift_xy[1])], dtype=torch.float64)
    return torch.cat((linear, shift[:, None]), dim=1).to(dtype)


def apply_affine(matrix: Tensor, points: Tensor) -> Tensor:
    """Apply a 2x3 affine matrix to points.

    Parameters
    ----------
    matrix:
        ``(2, 3)`` ``[A | t]``.
    points:
        ``(..., 2)`` points ``(x, y)``, x first.

    Returns
    -------
    Tensor
        ``(..., 2)`` ``A @ p + t`` in the dtype of ``points``.
    """
    matrix = matrix.to(points.dtype)
    return points @ matrix[:, :2].transpose(0, 1) + matrix[:, 2]


class AffineWarp(nn.Module):
    """Learnable global affine map of normalized points, identity at initialization.

    Parameters: ``delta`` ``(2, 3)``, zeros; the matrix is ``[I | 0] + delta``.

    ``forward(points)`` maps points ``(..., 2)`` (x first, normalized, typically in
    ``[-1, 1]``) to ``(..., 2)``: the backward mapping, i.e. output pixel ``p``
    samples the guide at ``forward(p)``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.delta = nn.Parameter(torch.zeros(2, 3))

    def matrix(self) -> Tensor:
        """The current ``(2, 3)`` matrix ``[I | 0] + delta``."""
        eye = torch.eye(2, 3, dtype=self.delta.dtype, device=self.delta.device)
        return eye + self.delta

    @torch.no_grad()
    def set_matrix(self, matrix: Tensor) -> None:
        """Set the parameters so that :meth:`matrix` equals ``matrix`` ``(2, 3)``."""
        if tuple(matrix.shape) != (2, 3):
            raise ValueError(f"matrix must be (2, 3), got {tuple(matrix.shape)}")
        eye = torch.eye(2, 3, dtype=self.delta.dtype, device=self.delta.device)
        self.delta.copy_(matrix.to(self.delta) - eye)

    def forward(self, points: Tensor) -> Tensor:
        """Map points ``(..., 2)`` (x, y) to ``(..., 2)``; see the class docstring."""
        as_point_rows(points)
        return apply_affine(self.matrix(), points)

    def regularization(self) -> Tensor:
        """Scalar ``sum(delta ** 2)``; 0 at the identity."""
        return self.delta.pow(2).sum()
