"""The interface every baseline shares with :class:`cmsr.CMSR`: ``fit`` then ``predict``.

A baseline takes the same arrays as cmsr (target ``(h, w[, c])`` in its own units and
dtype, guide ``(H, W[, C])`` any real dtype), validates and normalises them with
:func:`cmsr.method.api.prepare_pair` (so masks, ``invalid_value`` and ``scale`` mean the
same), works on unit-range tensors, and returns ``(H, W[, c])`` in the target's units
and dtype. Subclasses implement :meth:`Baseline._fit` and :meth:`Baseline._predict`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar, TypeVar

import numpy as np
import torch

from cmsr.method.api import PreparedPair, prepare_pair

B = TypeVar("B", bound="Baseline")


class Baseline(ABC):
    """A super-resolution method behind cmsr's ``fit`` / ``predict`` interface.

    Attributes
    ----------
    name:
        The method's command-line name (``"bicubic"``, ``"jbu"``, ...).
    pair:
        The prepared pair of the last :meth:`fit` (tensors on the CPU), or None.
    """

    name: ClassVar[str] = ""

    def __init__(self) -> None:
        self.pair: PreparedPair | None = None

    def fit(self: B, target_lr: np.ndarray, guide_hr: np.ndarray, *,
            scale: float | None = None, mask: np.ndarray | None = None,
            invalid_value: float | None = None) -> B:
        """Validate and normalise the pair, then fit the method to it.

        Parameters
        ----------
        target_lr:
            ``(h, w)`` or ``(h, w, c)``, any real dtype, own units; NaN = invalid.
        guide_hr:
            ``(H, W)`` or ``(H, W, C)``, any real dtype.
        scale:
            Force this scale (the guide is resized to ``target size * scale``);
            default: guide size / target size, per axis.
        mask:
            ``(h, w)`` bool, True for valid target pixels.
        invalid_value:
            A target value meaning "no measurement" (e.g. 0 in depth maps).

        Returns
        -------
        ``self``, fitted.

        Raises
        ------
        cmsr.InputError
            When the arrays are unusable (see :func:`cmsr.method.api.prepare_pair`).
        """
        pair = prepare_pair(target_lr, guide_hr, scale=scale, mask=mask,
                            invalid_value=invalid_value, device=torch.device("cpu"))
        self.pair = pair
        self._fit(pair)
        return self

    def predict_tensor(self) -> torch.Tensor:
        """The result for the fitted pair, ``(1, c, H, W)`` float32 in unit range."""
        if self.pair is None:
            raise RuntimeError(f"call fit() before predict() ({self.name})")
        return self._predict(self.pair).detach().float()

    def predict(self) -> np.ndarray:
        """The super-resolved target, ``(H, W)`` or ``(H, W, c)`` in its units and dtype."""
        result = self.predict_tensor()
        assert self.pair is not None
        return self.pair.normalization.from_unit(result.cpu())

    @abstractmethod
    def _fit(self, pair: PreparedPair) -> None:
        """Fit to ``pair`` (a no-op for the fixed filters)."""

    @abstractmethod
    def _predict(self, pair: PreparedPair) -> torch.Tensor:
        """``(1, c, H, W)`` float tensor in the target's unit range."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
