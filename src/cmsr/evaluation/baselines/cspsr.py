"""A learned CSPSR model (``cmsr train``) behind the evaluation's ``fit`` / ``predict`` face.

``fit`` does no fitting: it checks the pair against the model file and runs the
network once (:class:`cmsr.learned.inference.LearnedModel`). It is not in
:data:`BASELINES` (it cannot be built without a model file); ``cmsr eval`` runs it as
``--methods cspsr --option cspsr.model=MODEL.pt``.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from cmsr.errors import InputError
from cmsr.evaluation.baselines.base import Baseline
from cmsr.learned.inference import LearnedModel
from cmsr.method.api import PreparedPair


class CSPSR(Baseline):
    """Apply a trained model file to each pair.

    Parameters
    ----------
    model:
        Path of a model file written by ``cmsr train`` (read and checked now: a bad
        file is a one-line :class:`InputError`).
    """

    name = "cspsr"

    def __init__(self, model: str | os.PathLike[str] | None = None) -> None:
        super().__init__()
        if model is None:
            raise InputError("cspsr needs a model file: --option cspsr.model=MODEL.pt",
                             source="--option")
        self.model_path = str(model)
        self.model = LearnedModel.load(self.model_path)
        self.result: np.ndarray | None = None

    def fit(self, target_lr: np.ndarray, guide_hr: np.ndarray, *,
            scale: float | None = None, mask: np.ndarray | None = None,
            invalid_value: float | None = None) -> CSPSR:
        """Run the model on the pair (the guide as the model was trained: at the target's
        size or ``scale`` times it). ``mask`` and ``invalid_value`` mark target pixels
        that are filled from their neighbours; ``scale``, if given, must be the model's."""
        if scale is not None and float(scale) != float(self.model.scale):
            raise InputError(f"enlarges x{self.model.scale}, not x{scale:g}", self.model_path)
        self.result = self.model.predict(target_lr, guide_hr, mask=mask,
                                         invalid_value=invalid_value)
        return self

    def predict(self) -> np.ndarray:
        """The result of the last :meth:`fit`, in the target's units and dtype."""
        if self.result is None:
            raise RuntimeError("call fit() before predict() (cspsr)")
        return self.result

    def _fit(self, pair: PreparedPair) -> None:  # pragma: no cover - fit() is overridden
        raise NotImplementedError("CSPSR.fit runs the model directly")

    def _predict(self, pair: PreparedPair) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError("CSPSR.predict returns the model's result")

    def __repr__(self) -> str:
        return f"CSPSR(model={self.model_path!r})"
