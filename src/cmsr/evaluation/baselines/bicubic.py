"""Bicubic enlargement: the reference every guided method must beat.

MATLAB's ``imresize(..., "bicubic")`` (Keys' cubic kernel, a = -0.5, symmetric
borders), as implemented in :func:`cmsr.method.resample.upsample_bicubic`. It is also the
input of CMSR, ZSSR and the guided filter, so it isolates what the guide adds.
"""

from __future__ import annotations

import torch

from cmsr.evaluation.baselines.base import Baseline
from cmsr.method.api import PreparedPair
from cmsr.method.resample import upsample_bicubic


class Bicubic(Baseline):
    """MATLAB-style bicubic enlargement of the target to the guide's size; no options."""

    name = "bicubic"

    def _fit(self, pair: PreparedPair) -> None:
        return None

    def _predict(self, pair: PreparedPair) -> torch.Tensor:
        return upsample_bicubic(pair.target, tuple(pair.guide.shape[-2:]))
