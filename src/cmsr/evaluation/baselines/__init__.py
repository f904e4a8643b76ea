"""Baselines behind cmsr's interface: ``make_baseline(name, **options).fit(t, g).predict()``.

======================  =====================================================  ========
name                    method                                                 learned
======================  =====================================================  ========
``bicubic``             MATLAB bicubic enlargement                             no
``guided-filter``       He et al., guided filter (ECCV 2010 / TPAMI 2013)      no
``jbu``                 Kopf et al., joint bilateral upsampling (SIGGRAPH 07)  no
``zssr``                Shocher et al., ZSSR (CVPR 2018) = cmsr minus guide    yes
``p2p``                 de Lutio et al., pixel-to-pixel transform (ICCV 2019)  yes
``mmsr``                Dong et al., mutual modulation (ECCV 2022)             yes
======================  =====================================================  ========

Arrays in and out follow :class:`cmsr.CMSR`: target ``(h, w[, c])`` in its units and
dtype, guide ``(H, W[, C])``, result ``(H, W[, c])`` with the target's dtype.
"""

from __future__ import annotations

import inspect
from typing import Any

from cmsr.errors import InputError
from cmsr.evaluation.baselines.base import Baseline
from cmsr.evaluation.baselines.bicubic import Bicubic
from cmsr.evaluation.baselines.guided_filter import GuidedFilter
from cmsr.evaluation.baselines.jbu import JointBilateralUpsampling
from cmsr.evaluation.baselines.mmsr import MMSR
from cmsr.evaluation.baselines.p2p import P2P
from cmsr.evaluation.baselines.zssr import ZSSR

BASELINES: dict[str, type[Baseline]] = {
    cls.name: cls
    for cls in (Bicubic, GuidedFilter, JointBilateralUpsampling, ZSSR, P2P, MMSR)
}


def make_baseline(name: str, **options: Any) -> Baseline:
    """The baseline called ``name`` (a key of :data:`BASELINES`), built with ``options``.

    Raises
    ------
    cmsr.InputError
        For an unknown name or an option the method does not take (the message lists
        the valid ones).

    Examples
    --------
    >>> make_baseline("jbu", sigma_range=0.2)
    JointBilateralUpsampling(sigma_spatial=0.5, sigma_range=0.2, support=5)
    """
    if name not in BASELINES:
        raise InputError(f"unknown baseline {name!r}; choose from {', '.join(BASELINES)}",
                         source="--baseline")
    cls = BASELINES[name]
    accepted = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        choices = ", ".join(accepted) if accepted else "none"
        raise InputError(f"baseline {name!r} takes no option {', '.join(unknown)}; "
                         f"options: {choices}", source="--baseline")
    return cls(**options)


__all__ = [
    "BASELINES",
    "MMSR",
    "P2P",
    "ZSSR",
    "Baseline",
    "Bicubic",
    "GuidedFilter",
    "JointBilateralUpsampling",
    "make_baseline",
]
