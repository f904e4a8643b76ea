"""Learnable warp layers that align the RGB guide to the target (CMSR section 3.1).

Points are ``(..., 2)`` ``(x, y)`` in normalized image coordinates (``[-1, 1]``,
``align_corners=False``); every layer maps output points to the guide points they
sample (backward mapping) and starts as the identity.

- :class:`AffineWarp`: global affine map.
- :class:`CpabWarp`: diffeomorphism from a continuous piecewise-affine velocity field.
- :class:`ThinPlateSpline`: TPS with learned control-point offsets.
- :class:`GuideWarp`: the three chained coarse to fine, ``affine(cpab(tps(p)))``.
"""

from __future__ import annotations

from .affine import AffineWarp, affine_matrix, apply_affine
from .chain import LAYER_NAMES, LAYER_PRESETS, GuideWarp
from .cpab import (
    CpabWarp,
    cpa_velocity,
    cpab_basis,
    cpab_cell_index,
    cpab_constraint_matrix,
    cpab_triangle_vertices,
    integrate_cpa,
    null_space,
)
from .grid import identity_grid, pixel_centers, sample, spanning_grid, upsample_displacement
from .tps import (
    ThinPlateSpline,
    tps_features,
    tps_kernel,
    tps_system_matrix,
    uniform_control_points,
)

__all__ = [
    "LAYER_NAMES",
    "LAYER_PRESETS",
    "AffineWarp",
    "CpabWarp",
    "GuideWarp",
    "ThinPlateSpline",
    "affine_matrix",
    "apply_affine",
    "cpa_velocity",
    "cpab_basis",
    "cpab_cell_index",
    "cpab_constraint_matrix",
    "cpab_triangle_vertices",
    "identity_grid",
    "integrate_cpa",
    "null_space",
    "pixel_centers",
    "sample",
    "spanning_grid",
    "tps_features",
    "tps_kernel",
    "tps_system_matrix",
    "uniform_control_points",
    "upsample_displacement",
]
