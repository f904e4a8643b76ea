"""cmsr: single-pair cross-modality super-resolution (Shacht et al., CVPR 2021).

A low-resolution thermal, near-infrared or depth image is enlarged with the help of a
high-resolution RGB photo of the same scene, learning from that one pair at run time.

>>> import cmsr
>>> high = cmsr.super_resolve(target_lr, guide_hr)                      # doctest: +SKIP
>>> model = cmsr.CMSR(cmsr.Config.preset("thermal")).fit(target_lr, guide_hr)  # doctest: +SKIP
>>> cmsr.super_resolve_geotiff("lst_100m.tif", "ndbi_20m.tif", "lst_20m.tif")  # doctest: +SKIP
"""

from cmsr.errors import InputError
from cmsr.method.api import CMSR, super_resolve
from cmsr.method.config import PRESETS, Config
from cmsr.method.georeferenced import super_resolve_geotiff

__all__ = ["CMSR", "PRESETS", "Config", "InputError", "super_resolve", "super_resolve_geotiff"]
__version__ = "0.19.0"
