"""ZSSR, "Zero-Shot" Super-Resolution (Shocher, Cohen and Irani, CVPR 2018), as CMSR's
own single-image baseline: CMSR minus the guide.

CMSR extends ZSSR to a second modality (Shacht et al., section 3), so the fair
single-image reference is cmsr itself with the guide branch removed:
:class:`GuideFreeNet` is :class:`cmsr.method.model.CMSRNet` without Feature-Extractor 2
(``output = up(target) + FE1(up(target))``, the ZSSR residual network on the bicubic
enlargement), and :class:`ZSSR` runs :class:`cmsr.CMSR` with that network. Training
(patches, down-sampling/up-sampling schemes, augmentation, L1 loss, the learning-rate
schedule and stop), gradual stages and inference (self-ensemble, back-projection)
are cmsr's own code with the same :class:`cmsr.Config`, so any difference to cmsr
is the guide's. (The guide is still cropped with each patch but never read.)
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from cmsr.evaluation.baselines.base import Baseline
from cmsr.method.api import CMSR, PreparedPair
from cmsr.method.config import Config
from cmsr.method.model import CMSRNet


class GuideFreeNet(CMSRNet):
    """:class:`cmsr.method.model.CMSRNet` whose output ignores the guide (no Feature-Extractor 2).

    Same constructor; ``fe2`` is an empty stack, so it has no parameters and no halo.
    """

    def __init__(self, target_channels: int, guide_channels: int, *, fe1_layers: int = 8,
                 fe1_channels: int = 64, fe2_layers: int = 6, fe2_channels: int = 64) -> None:
        super().__init__(target_channels, guide_channels, fe1_layers=fe1_layers,
                         fe1_channels=fe1_channels, fe2_layers=fe2_layers,
                         fe2_channels=fe2_channels)
        self.fe2 = nn.Sequential()

    def forward(self, target_up: torch.Tensor, guide: torch.Tensor | None,
                guide_weight: torch.Tensor | None = None) -> torch.Tensor:
        """``target_up + FE1(target_up)``; ``guide`` and ``guide_weight`` are ignored."""
        return target_up + self.fe1(target_up)


class _GuideFreeCMSR(CMSR):
    """:class:`cmsr.CMSR` building :class:`GuideFreeNet` instead of ``CMSRNet``."""

    def _new_network(self, target_channels: int, guide_channels: int, seed: int) -> CMSRNet:
        net = GuideFreeNet.from_config(self.config, target_channels, guide_channels, seed=seed)
        return net.to(self.device)


class ZSSR(Baseline):
    """Zero-shot single-image super-resolution: cmsr's training without the guide.

    Parameters
    ----------
    config:
        cmsr's settings, used unchanged (``fe2_*`` are ignored) except ``align``,
        always ``"none"`` (a guide that is never read needs no alignment),
        ``guide_dropout`` and ``self_check``, always off (it trains on every pixel), and
        the finishes that read the guide: ``guided_median_radius`` 0 and
        ``guide_shift_search`` 0, and ``block_partition_guide`` 0 (the partition still
        runs, ranked by the result alone; before 0.14 the ``depth`` preset's guided
        median read the guide); default
        ``Config()``, the same default as :class:`cmsr.CMSR`. The seed, device,
        iterations and inference options therefore match a cmsr run with the same
        config.
    """

    name = "zssr"

    def __init__(self, config: Config | None = None) -> None:
        super().__init__()
        # no guide: nothing to align, to drop or to check against
        self.config = (config or Config()).replace(align="none", guide_dropout=0.0,
                                                   self_check=False, guided_median_radius=0,
                                                   guide_shift_search=0,
                                                   block_partition_guide=0.0)
        self.model: CMSR | None = None

    def fit(self, target_lr: np.ndarray, guide_hr: np.ndarray, *,
            scale: float | None = None, mask: np.ndarray | None = None,
            invalid_value: float | None = None) -> ZSSR:
        """Train the guide-free network on the pair (see :meth:`Baseline.fit`).

        The pair is prepared by :meth:`cmsr.CMSR.fit` itself (on ``config.device``),
        so validation, normalisation and gradual stages are exactly cmsr's.
        """
        model = _GuideFreeCMSR(self.config)
        model.fit(target_lr, guide_hr, scale=scale, mask=mask, invalid_value=invalid_value)
        self.model, self.pair = model, model.pair
        return self

    def _fit(self, pair: PreparedPair) -> None:  # pragma: no cover - fit() is overridden
        raise NotImplementedError("ZSSR.fit trains through cmsr.CMSR.fit")

    def _predict(self, pair: PreparedPair) -> torch.Tensor:
        assert self.model is not None
        return self.model.predict_tensor()

    def __repr__(self) -> str:
        return f"ZSSR(config={self.config!r})"
