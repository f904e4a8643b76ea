"""cmsr: single-pair cross-modality super-resolution (Shacht et al., CVPR 2021).

A low-resolution thermal, near-infrared or depth image is enlarged with the help of a
high-resolution RGB photo of the same scene, learning from that one pair at run time.

>>> import cmsr
>>> high = cmsr.super_resolve(target_lr, guide_hr)                      # doctest: +SKIP
>>> model = cmsr.CMSR(cmsr.Config.preset("thermal")).fit(target_lr, guide_hr)  # doctest: +SKIP
"""

from cmsr.errors import InputError
from cmsr.method.api import CMSR, super_resolve
from cmsr.method.config import PRESETS, Config

__all__ = ["CMSR", "PRESETS", "Config", "InputError", "super_resolve"]
__version__ = "0.5.0"
