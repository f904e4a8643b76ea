"""Guided filter upsampling (He, Sun and Tang, "Guided Image Filtering", ECCV 2010 /
TPAMI 2013).

The target is enlarged by bicubic interpolation, then filtered with the
high-resolution guide: in every ``(2r + 1) x (2r + 1)`` window the output is a linear
function of the guide, ``q = a^T I + b``, fitted to the enlarged target by ridge
regression with regulariser ``eps``; each pixel averages the models of the windows
that contain it (the paper's colour version solves a ``C x C`` system per window, so
RGB and other multi-band guides keep their colour edges; a grey guide is the case
``C = 1``).
All window means are box filters computed from cumulative sums: O(1) per pixel,
whatever the radius.

Defaults (our choice, stated): ``radius = round(2 * scale)`` output pixels (the
bicubic kernel's reach, two low-resolution pixels, so a window spans the whole
blurred transition of an edge; it grows with the scale and hence with the output
size), ``eps = 1e-3`` for a guide and target in [0, 1] (He et al. use ``0.1**2`` to
``0.4**2`` for edge-preserving smoothing; transferring edges needs less
regularisation).
"""

from __future__ import annotations

import torch

from cmsr.evaluation.baselines.base import Baseline
from cmsr.method.api import PreparedPair
from cmsr.method.resample import upsample_bicubic

DEFAULT_EPS = 1e-3
RADIUS_PER_SCALE = 2.0


def _window_sum_1d(x: torch.Tensor, radius: int, dim: int) -> torch.Tensor:
    """Sum over ``[i - radius, i + radius]`` along ``dim``, clipped at the borders."""
    length = x.shape[dim]
    zero = torch.zeros_like(x.narrow(dim, 0, 1))
    cumulative = torch.cat([zero, x.cumsum(dim)], dim=dim)
    index = torch.arange(length, device=x.device)
    upper = (index + radius + 1).clamp(max=length)
    lower = (index - radius).clamp(min=0)
    return cumulative.index_select(dim, upper) - cumulative.index_select(dim, lower)


def box_filter(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Mean over each pixel's ``(2 radius + 1)**2`` window, windows clipped at the borders.

    Cumulative sums along each axis: O(1) per pixel for any radius.

    Parameters
    ----------
    x:
        ``(..., H, W)`` float tensor (float64 recommended for large images).
    radius:
        Window half-size in pixels, >= 0.

    Returns
    -------
    Same shape and dtype: the mean of the window's pixels that lie inside the image.

    Examples
    --------
    >>> box_filter(torch.arange(4.0).reshape(1, 1, 1, 4), 1)
    tensor([[[[0.5000, 1.0000, 2.0000, 2.5000]]]])
    """
    if radius < 0:
        raise ValueError(f"radius must be >= 0, got {radius}")
    height, width = x.shape[-2:]
    total = _window_sum_1d(_window_sum_1d(x, radius, x.ndim - 2), radius, x.ndim - 1)
    ones = torch.ones(height, width, dtype=x.dtype, device=x.device)
    count = _window_sum_1d(_window_sum_1d(ones, radius, 0), radius, 1)
    return total / count


def guided_filter(guide: torch.Tensor, source: torch.Tensor, radius: int, eps: float
                  ) -> torch.Tensor:
    """He et al.'s guided filter of ``source`` by ``guide`` (grey or multi-band guide).

    Parameters
    ----------
    guide:
        ``(B, C, H, W)`` float, the guidance image ``I`` (any C >= 1; C > 1 uses the
        paper's colour form with the C x C covariance of each window).
    source:
        ``(B, c, H, W)`` float, the image ``p`` to filter; each band is filtered
        separately with the same guide.
    radius:
        Window half-size ``r`` in pixels (windows are ``(2r + 1) x (2r + 1)``).
    eps:
        Regulariser of the local linear fits, in squared guide units (> 0; the
        limit 0 is allowed where the guide varies in every window).

    Returns
    -------
    ``(B, c, H, W)`` with ``source``'s dtype. Computed in float64.
    """
    if guide.ndim != 4 or source.ndim != 4 or guide.shape[0] != source.shape[0] \
            or guide.shape[-2:] != source.shape[-2:]:
        raise ValueError(f"guide {tuple(guide.shape)} and source {tuple(source.shape)} "
                         "must be (B, C, H, W) and (B, c, H, W) of the same size")
    dtype = source.dtype
    guide, source = guide.double(), source.double()
    bands = guide.shape[1]
    mean_i = box_filter(guide, radius)                                   # (B, C, H, W)
    mean_p = box_filter(source, radius)                                  # (B, c, H, W)
    # cov(I_k, p_m) for every guide band k and source band m: (B, c, C, H, W)
    cov_ip = box_filter(guide[:, None] * source[:, :, None], radius) \
        - mean_i[:, None] * mean_p[:, :, None]
    # covariance of the guide bands plus eps on the diagonal: (B, C, C, H, W)
    sigma = box_filter(guide[:, :, None] * guide[:, None], radius) \
        - mean_i[:, :, None] * mean_i[:, None]
    sigma = sigma + eps * torch.eye(bands, dtype=sigma.dtype, device=sigma.device)[
        None, :, :, None, None]
    if bands == 1:
        a = cov_ip / sigma                                               # (B, c, 1, H, W)
    else:
        system = sigma.permute(0, 3, 4, 1, 2)                            # (B, H, W, C, C)
        rhs = cov_ip.permute(0, 3, 4, 2, 1)                              # (B, H, W, C, c)
        a = torch.linalg.solve(system, rhs).permute(0, 4, 3, 1, 2)      # (B, c, C, H, W)
    b = mean_p - (a * mean_i[:, None]).sum(dim=2)                        # (B, c, H, W)
    mean_a = box_filter(a, radius)
    mean_b = box_filter(b, radius)
    return ((mean_a * guide[:, None]).sum(dim=2) + mean_b).to(dtype)


class GuidedFilter(Baseline):
    """Bicubic enlargement followed by He et al.'s guided filter with the HR guide.

    Parameters
    ----------
    radius:
        Window half-size in output pixels; default ``round(2 * scale)`` (at least 1).
    eps:
        Regulariser in squared guide units (guide in [0, 1]); default ``1e-3``.
    grey:
        Use the mean of the guide's bands (the paper's grey-guide form) instead of
        the colour form.
    """

    name = "guided-filter"

    def __init__(self, radius: int | None = None, eps: float = DEFAULT_EPS,
                 grey: bool = False) -> None:
        super().__init__()
        if radius is not None and radius < 1:
            raise ValueError(f"radius must be >= 1, got {radius}")
        if eps <= 0:
            raise ValueError(f"eps must be > 0, got {eps}")
        self.radius = radius
        self.eps = eps
        self.grey = grey

    def window_radius(self, pair: PreparedPair) -> int:
        """The radius used for ``pair``: the given one, or ``round(2 * scale)``."""
        if self.radius is not None:
            return self.radius
        return max(1, round(RADIUS_PER_SCALE * max(pair.scale)))

    def _fit(self, pair: PreparedPair) -> None:
        return None

    def _predict(self, pair: PreparedPair) -> torch.Tensor:
        guide = pair.guide.mean(dim=1, keepdim=True) if self.grey else pair.guide
        enlarged = upsample_bicubic(pair.target, tuple(guide.shape[-2:]))
        return guided_filter(guide, enlarged, self.window_radius(pair), self.eps)

    def __repr__(self) -> str:
        return f"GuidedFilter(radius={self.radius}, eps={self.eps}, grey={self.grey})"
