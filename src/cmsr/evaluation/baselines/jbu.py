"""Joint bilateral upsampling (Kopf, Cohen, Lischinski and Uyttendaele, "Joint Bilateral
Upsampling", SIGGRAPH 2007 / ACM TOG 26(3)).

Each output pixel ``p`` is a normalised sum over the low-resolution samples ``q`` near
it:

    S(p) = sum_q S_lr(q) f(|p_lr - q|) g(|I(p) - I(q)|) / sum_q f(...) g(...)

``p_lr`` is ``p``'s position in low-resolution pixel units (pixel centres aligned:
``(Y + 0.5) * h / H - 0.5``), ``f`` a spatial Gaussian in low-resolution pixels,
``g`` a range Gaussian on the Euclidean distance between the guide at ``p`` and the
guide at the high-resolution position of ``q``'s centre (bilinearly sampled there).
The sum runs over the ``support x support`` low-resolution pixels around the one
nearest to ``p_lr``; samples outside the image are left out, invalid target pixels
get (almost) no weight.

Defaults: ``support = 5`` and ``sigma_spatial = 0.5`` low-resolution pixels (the 5x5
Gaussian with sigma 0.5 of Kopf et al.'s experiments, as we recall them: not checked
against the paper's text, which is not in the project's papers); ``sigma_range = 0.1``
for a guide in [0, 1] (the range kernel depends on the application; 0.1 is our
choice).

Vectorised in torch: for a block of output rows, the ``support**2`` neighbours are
gathered at once; blocks are sized so the gathered tensors stay under
``max_chunk_bytes``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cmsr.evaluation.baselines.base import Baseline
from cmsr.method.api import PreparedPair

DEFAULT_SUPPORT = 5
DEFAULT_SIGMA_SPATIAL = 0.5
DEFAULT_SIGMA_RANGE = 0.1
DEFAULT_CHUNK_BYTES = 64 * 2**20
INVALID_WEIGHT = 1e-6


def _neighbours(out_length: int, in_length: int, support: int, sigma: float,
                device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Low-resolution neighbour indices and spatial log-weights along one axis.

    Returns ``index (support, out_length)`` long, clamped into the image, and
    ``log_weight (support, out_length)`` float64: ``-d**2 / (2 sigma**2)``, ``-inf``
    for neighbours outside the image.
    """
    position = (torch.arange(out_length, dtype=torch.float64, device=device) + 0.5) \
        * (in_length / out_length) - 0.5
    nearest = torch.floor(position + 0.5)
    offsets = torch.arange(support, dtype=torch.float64, device=device) - support // 2
    index = nearest[None, :] + offsets[:, None]
    log_weight = -((position[None, :] - index) ** 2) / (2.0 * sigma**2)
    inside = (index >= 0) & (index <= in_length - 1)
    log_weight = torch.where(inside, log_weight, torch.full_like(log_weight, -torch.inf))
    return index.clamp(0, in_length - 1).long(), log_weight


def joint_bilateral_upsample(target: torch.Tensor, guide: torch.Tensor, *,
                             sigma_spatial: float = DEFAULT_SIGMA_SPATIAL,
                             sigma_range: float = DEFAULT_SIGMA_RANGE,
                             support: int = DEFAULT_SUPPORT,
                             valid: torch.Tensor | None = None,
                             max_chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> torch.Tensor:
    """Kopf et al.'s joint bilateral upsampling of ``target`` to the guide's size.

    Parameters
    ----------
    target:
        ``(B, c, h, w)`` float, the low-resolution image (any units).
    guide:
        ``(B, C, H, W)`` float, the high-resolution guide (units of ``sigma_range``).
    sigma_spatial:
        Standard deviation of the spatial Gaussian, in low-resolution pixels (> 0).
    sigma_range:
        Standard deviation of the range Gaussian on the guide distance (> 0).
    support:
        Odd side of the low-resolution neighbourhood (>= 1).
    valid:
        ``(B, 1, h, w)`` in {0, 1}; invalid samples are weighted by 1e-6, so they only
        matter where a whole neighbourhood is invalid.
    max_chunk_bytes:
        Approximate memory bound of the gathered neighbourhoods per block of rows.

    Returns
    -------
    ``(B, c, H, W)`` float with ``target``'s dtype.
    """
    if support < 1 or support % 2 == 0:
        raise ValueError(f"support must be odd and >= 1, got {support}")
    if sigma_spatial <= 0 or sigma_range <= 0:
        raise ValueError("sigma_spatial and sigma_range must be > 0")
    batch, channels, h, w = target.shape
    bands, height, width = guide.shape[1:]
    dtype = target.dtype
    target64, guide64 = target.double(), guide.double()
    # the guide at the high-resolution position of each low-resolution pixel centre
    guide_lr = F.interpolate(guide64, size=(h, w), mode="bilinear", align_corners=False)
    log_valid = torch.zeros(batch, 1, h, w, dtype=torch.float64, device=target.device)
    if valid is not None:
        log_valid = torch.log(valid.double().clamp(min=INVALID_WEIGHT))
    rows, log_rows = _neighbours(height, h, support, sigma_spatial, target.device)
    cols, log_cols = _neighbours(width, w, support, sigma_spatial, target.device)
    stacked = torch.cat([target64, guide_lr, log_valid], dim=1)          # (B, c+C+1, h, w)
    per_row = support * support * width * (channels + bands + 4) * batch * 8
    block = max(1, int(max_chunk_bytes // per_row))
    out = torch.empty(batch, channels, height, width, dtype=dtype, device=target.device)
    cols_flat = cols.reshape(-1)
    for top in range(0, height, block):
        bottom = min(height, top + block)
        n = bottom - top
        gathered = stacked[:, :, rows[:, top:bottom].reshape(-1)][..., cols_flat]
        gathered = gathered.view(batch, -1, support, n, support, width)   # (B, F, K, n, K, W)
        values = gathered[:, :channels]
        difference = gathered[:, channels:channels + bands] \
            - guide64[:, :, None, top:bottom, None, :]
        logit = -(difference**2).sum(dim=1) / (2.0 * sigma_range**2)      # (B, K, n, K, W)
        logit = logit + gathered[:, -1] + log_rows[None, :, top:bottom, None, None] \
            + log_cols[None, None, None, :, :]
        logit = logit - logit.amax(dim=(1, 3), keepdim=True)
        weight = logit.exp()
        weight = weight / weight.sum(dim=(1, 3), keepdim=True)
        out[:, :, top:bottom] = (values * weight[:, None]).sum(dim=(2, 4)).to(dtype)
    return out


class JointBilateralUpsampling(Baseline):
    """Kopf et al.'s joint bilateral upsampling with the high-resolution guide.

    Parameters
    ----------
    sigma_spatial:
        Spatial Gaussian, in low-resolution pixels; default 0.5.
    sigma_range:
        Range Gaussian on the guide's colour distance, guide in [0, 1]; default 0.1.
    support:
        Odd neighbourhood side in low-resolution pixels; default 5.
    """

    name = "jbu"

    def __init__(self, sigma_spatial: float = DEFAULT_SIGMA_SPATIAL,
                 sigma_range: float = DEFAULT_SIGMA_RANGE,
                 support: int = DEFAULT_SUPPORT) -> None:
        super().__init__()
        if support < 1 or support % 2 == 0:
            raise ValueError(f"support must be odd and >= 1, got {support}")
        if sigma_spatial <= 0 or sigma_range <= 0:
            raise ValueError("sigma_spatial and sigma_range must be > 0")
        self.sigma_spatial = sigma_spatial
        self.sigma_range = sigma_range
        self.support = support

    def _fit(self, pair: PreparedPair) -> None:
        return None

    def _predict(self, pair: PreparedPair) -> torch.Tensor:
        return joint_bilateral_upsample(pair.target, pair.guide,
                                        sigma_spatial=self.sigma_spatial,
                                        sigma_range=self.sigma_range,
                                        support=self.support, valid=pair.valid)

    def __repr__(self) -> str:
        return (f"JointBilateralUpsampling(sigma_spatial={self.sigma_spatial}, "
                f"sigma_range={self.sigma_range}, support={self.support})")
