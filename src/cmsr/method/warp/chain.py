"""The CMSR guide alignment: affine -> CPAB -> TPS, coarse to fine.

Order. The paper applies the affine layer to the RGB guide first, then CPAB to the
result, then TPS. With backward mappings (``warped(p) = image(layer(p))``),
applying warp ``a`` and then warp ``c`` to an image gives
``image(a(c(p)))``: the layers compose in reverse on points. So the sampling grid
is

    grid(p) = affine(cpab(tps(p)))

a point of the output (target frame) goes through the fine TPS first and the global
affine last, which then lands in the guide's own frame.

Speed. CPAB and TPS vary slowly, so :meth:`GuideWarp.grid` evaluates
``cpab(tps(q))`` only at a coarse grid of at most ``coarse x coarse`` nodes spanning
the output's pixel centres (corners included) and upsamples its displacement
bilinearly; the affine map is applied exactly at full resolution. At the nodes
TPS is exact (its interpolation matrix for the nodes is computed once and cached)
and CPAB is read from its raster flow (:meth:`CpabWarp.raster_flow`, scaling and
squaring instead of RK4 per point: a fifth of the time). For a CPAB field moving
points by up to 32 px at 640 x 512 and coarse 64, the grid is 0.1 px (mean),
0.7 px (99th percentile) and 1.1 px (maximum) from the exact RK4 map (RK4 at the
nodes: 0.05, 0.5, 1.1 px); at 98 px displacement 0.4, 2.3, 4.3 px. The warp being
learned is this cheap form, the same at training (:func:`cmsr.method.train.warp_point_map`)
and inference as long as ``coarse`` and the image size are; ``coarse=None`` gives
the exact map at every pixel.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import cast

import torch
from torch import Tensor, nn

from .affine import AffineWarp
from .cpab import CpabWarp
from .grid import identity_grid, sample, spanning_grid, upsample_displacement
from .tps import ThinPlateSpline

LAYER_NAMES = ("affine", "cpab", "tps")
#: Node sets (with their TPS matrices) kept per GuideWarp: one per image size in use.
NODE_CACHE_SIZE = 8
LAYER_PRESETS: dict[str, tuple[str, ...]] = {
    "none": (),
    "affine": ("affine",),
    "affine+cpab": ("affine", "cpab"),
    "full": ("affine", "cpab", "tps"),
}


def _check_names(names: Iterable[str], present: Iterable[str]) -> set[str]:
    names = {names} if isinstance(names, str) else set(names)
    unknown = names - set(present)
    if unknown:
        raise ValueError(
            f"unknown or absent warp layer(s) {sorted(unknown)}; present: {sorted(present)}"
        )
    return names


class GuideWarp(nn.Module):
    """Learnable alignment of the RGB guide to the target, identity at initialization.

    Parameters
    ----------
    layers:
        ``"none"``, ``"affine"``, ``"affine+cpab"`` or ``"full"`` (affine + CPAB + TPS).
    tessellation:
        CPAB cells ``(nx, ny)``.
    control_points:
        TPS control grid ``(nx, ny)``.
    zero_boundary:
        CPAB velocity pinned to zero on the border.
    integration_steps:
        CPAB RK4 steps.
    coarse:
        Coarse grid size used by :meth:`forward` (see :meth:`grid`); ``None`` for
        exact evaluation at every pixel.
    mode:
        Sampling used by :meth:`forward`: ``"bilinear"`` or ``"bicubic"``.

    Attributes
    ----------
    layers:
        ``nn.ModuleDict`` with the present layers among ``"affine"``
        (:class:`AffineWarp`), ``"cpab"`` (:class:`CpabWarp`), ``"tps"``
        (:class:`ThinPlateSpline`). The default ``nn.Module`` ``state_dict`` saves and
        loads them (keys ``layers.affine.delta``, ``layers.cpab.theta``, ...).
    active:
        Names of the layers applied; the others are skipped (identity). All present
        layers at construction; change with :meth:`set_active`. Not part of the
        ``state_dict``.
    """

    def __init__(
        self,
        layers: str = "full",
        *,
        tessellation: Sequence[int] = (4, 4),
        control_points: Sequence[int] = (4, 4),
        zero_boundary: bool = True,
        integration_steps: int = 8,
        coarse: int | None = 64,
        mode: str = "bilinear",
    ) -> None:
        super().__init__()
        if layers not in LAYER_PRESETS:
            raise ValueError(f"layers must be one of {sorted(LAYER_PRESETS)}, got {layers!r}")
        if mode not in ("bilinear", "bicubic"):
            raise ValueError(f"mode must be 'bilinear' or 'bicubic', got {mode!r}")
        if coarse is not None and coarse < 2:
            raise ValueError(f"coarse must be >= 2 or None, got {coarse}")
        self.preset = layers
        self.coarse = coarse
        self.mode = mode
        modules: dict[str, nn.Module] = {}
        names = LAYER_PRESETS[layers]
        if "affine" in names:
            modules["affine"] = AffineWarp()
        if "cpab" in names:
            modules["cpab"] = CpabWarp(
                tessellation, zero_boundary=zero_boundary, integration_steps=integration_steps
            )
        if "tps" in names:
            modules["tps"] = ThinPlateSpline(control_points)
        self.layers = nn.ModuleDict(modules)
        self.active: set[str] = set(names)
        self._node_cache: dict[tuple, tuple[Tensor, Tensor | None]] = {}

    def _tps(self) -> ThinPlateSpline:
        return cast(ThinPlateSpline, self.layers["tps"])

    # ------------------------------------------------------------------ state
    def set_active(self, names: Iterable[str]) -> None:
        """Apply only the layers in ``names`` (e.g. ``{"affine"}`` early in training).

        Skipped layers act as the identity whatever their parameters, get no
        gradient, and add nothing to :meth:`regularization`.
        """
        self.active = _check_names(names, self.layers.keys())

    def freeze(self, names: Iterable[str]) -> None:
        """Stop training the named layers (``requires_grad=False``); they still apply."""
        for name in _check_names(names, self.layers.keys()):
            self.layers[name].requires_grad_(False)

    def unfreeze(self, names: Iterable[str]) -> None:
        """Undo :meth:`freeze` for the named layers."""
        for name in _check_names(names, self.layers.keys()):
            self.layers[name].requires_grad_(True)

    def _is_on(self, name: str) -> bool:
        return name in self.active and name in self.layers

    # ------------------------------------------------------------------ maps
    def local(self, points: Tensor) -> Tensor:
        """The non-affine part ``cpab(tps(points))`` for points ``(..., 2)``."""
        if self._is_on("tps"):
            points = self.layers["tps"](points)
        if self._is_on("cpab"):
            points = self.layers["cpab"](points)
        return points

    def forward_points(self, points: Tensor) -> Tensor:
        """The exact composed map ``affine(cpab(tps(points)))``, ``(..., 2) -> (..., 2)``."""
        points = self.local(points)
        if self._is_on("affine"):
            points = self.layers["affine"](points)
        return points

    def _reference(self) -> Tensor | None:
        return next(iter(self.parameters()), None)

    def _nodes(self, height: int, width: int, rows: int, columns: int, device: torch.device | None,
               dtype: torch.dtype) -> tuple[Tensor, Tensor | None]:
        """Coarse nodes ``(1, rows, columns, 2)`` and their TPS interpolation matrix
        (None without TPS), cached: they depend only on the sizes."""
        key = (height, width, rows, columns, device, dtype)
        if key not in self._node_cache:
            # normal tensors even under inference_mode: they are reused with autograd later
            with torch.inference_mode(False), torch.no_grad():
                nodes = spanning_grid(height, width, rows, columns, device=device, dtype=dtype)
                matrix = None
                if "tps" in self.layers:
                    matrix = self._tps().interpolation_matrix(nodes)
            if len(self._node_cache) >= NODE_CACHE_SIZE:
                self._node_cache.pop(next(iter(self._node_cache)))
            self._node_cache[key] = (nodes, matrix)
        return self._node_cache[key]

    def local_displacement(self, height: int, width: int, *, coarse: int | None = 64
                           ) -> Tensor:
        """Displacement ``cpab(tps(q)) - q`` of the local layers at coarse nodes ``q``.

        Parameters
        ----------
        height, width:
            Size of the image the warp is for.
        coarse:
            The nodes are ``spanning_grid(height, width, min(height, coarse),
            min(width, coarse))`` (corners on the outer pixel centres); TPS is applied
            exactly there and CPAB read from its raster flow
            (:meth:`CpabWarp.raster_flow`, when ``zero_boundary``), the cheap form used
            in training and inference. ``None``: every pixel centre, TPS and CPAB
            (RK4) exact.

        Returns
        -------
        Tensor
            ``(1, rows, columns, 2)`` offsets ``(dx, dy)`` in normalized units, the
            parameters' dtype; zeros when neither local layer is active.
        """
        ref = self._reference()
        device = None if ref is None else ref.device
        dtype = torch.float32 if ref is None else ref.dtype
        if coarse is None:
            base = identity_grid(height, width, device=device, dtype=dtype)
            return self.local(base) - base
        nodes, matrix = self._nodes(height, width, min(height, coarse), min(width, coarse),
                                    device, dtype)
        points = nodes
        if self._is_on("tps"):
            assert matrix is not None
            points = nodes + (matrix @ self._tps().offsets).view(nodes.shape)
        if self._is_on("cpab"):
            cpab = cast(CpabWarp, self.layers["cpab"])
            points = cpab.forward_raster(points) if cpab.zero_boundary else cpab(points)
        return points - nodes

    def grid(self, height: int, width: int, *, coarse: int | None = 64) -> Tensor:
        """Composed sampling grid for an output of ``height x width`` pixels.

        Parameters
        ----------
        height, width:
            Output size.
        coarse:
            If given, ``cpab(tps(.))`` is evaluated on at most ``coarse x coarse``
            nodes spanning the output's pixel centres, in its cheap form (see
            :meth:`local_displacement`), and its displacement upsampled bilinearly;
            ``None``: exact at every pixel.

        Returns
        -------
        Tensor
            ``(1, height, width, 2)`` sampling points ``(x, y)`` into the guide
            (normalized, x first), in the parameters' dtype and device.
        """
        ref = self._reference()
        device = None if ref is None else ref.device
        dtype = torch.float32 if ref is None else ref.dtype
        points = identity_grid(height, width, device=device, dtype=dtype)
        if self._is_on("tps") or self._is_on("cpab"):
            displacement = self.local_displacement(height, width, coarse=coarse)
            points = points + upsample_displacement(displacement, height, width)
        if self._is_on("affine"):
            points = self.layers["affine"](points)
        return points

    def forward(self, guide: Tensor) -> Tensor:
        """Warp the guide ``(B, C, H, W)`` onto the target frame; returns ``(B, C, H, W)``.

        Uses ``self.mode`` sampling with border padding and ``self.coarse``; with no
        active layer the guide is returned as is.
        """
        if guide.dim() != 4:
            raise ValueError(f"guide must be (B, C, H, W), got shape {tuple(guide.shape)}")
        if not any(self._is_on(name) for name in LAYER_NAMES):
            return guide
        height, width = guide.shape[-2:]
        grid = self.grid(height, width, coarse=self.coarse)
        return sample(guide, grid, mode=self.mode, padding_mode="border")

    # ------------------------------------------------------------------ training
    def regularization(self, weights: Mapping[str, float] | None = None) -> Tensor:
        """Sum of the active layers' penalties, a scalar ``>= 0``, 0 at the identity.

        ``affine``: ``sum(delta ** 2)``; ``cpab``: ``sum(theta ** 2)`` (squared norm of
        the cell matrices); ``tps``: bending energy ``+ 0.1 sum(offsets ** 2)``. Each
        is multiplied by ``weights[name]`` (default 1).
        """
        weights = dict(weights or {})
        _check_names(weights.keys(), LAYER_NAMES)
        ref = self._reference()
        total = torch.zeros((), device=None if ref is None else ref.device)
        for name in LAYER_NAMES:
            if self._is_on(name):
                layer = cast(AffineWarp | CpabWarp | ThinPlateSpline, self.layers[name])
                term = layer.regularization()
                total = total + weights.get(name, 1.0) * term
        return total

    def parameter_groups(
        self, lr: float, multipliers: Mapping[str, float] | None = None
    ) -> list[dict]:
        """Optimizer parameter groups, one per present layer.

        Parameters
        ----------
        lr:
            Base learning rate.
        multipliers:
            Per-layer factors by name (``"affine"``, ``"cpab"``, ``"tps"``), default 1.

        Returns
        -------
        list of dict
            ``{"name": name, "params": [...], "lr": lr * multiplier}``, usable as
            ``torch.optim.Adam(warp.parameter_groups(1e-4, {"affine": 10}))``.
        """
        multipliers = dict(multipliers or {})
        _check_names(multipliers.keys(), LAYER_NAMES)
        return [
            {
                "name": name,
                "params": list(self.layers[name].parameters()),
                "lr": lr * float(multipliers.get(name, 1.0)),
            }
            for name in LAYER_NAMES
            if name in self.layers
        ]

    def extra_repr(self) -> str:
        return (
            f"preset={self.preset!r}, active={sorted(self.active)}, coarse={self.coarse}, "
            f"mode={self.mode!r}"
        )
