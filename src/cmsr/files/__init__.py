"""Files in and out: image readers and writers, atomic writes, the store of finished runs.

==================  =================================================================
module              job
==================  =================================================================
:mod:`.checks`      size limits, shape and dtype checks shared by readers and writers
:mod:`.atomic`      atomic writes (:func:`write_text`, :func:`write_bytes`), :func:`same_file`
:mod:`.png16`       16-bit PNGs, read and written with pypng
:mod:`.readers`     :func:`read_image`: PNG 8/16, TIFF (any real type), NPY, JPEG, BMP
:mod:`.writers`     :func:`write_image`: PNG 8/16, TIFF, NPY
:mod:`.geotiff`     GeoTIFFs via rasterio (optional): read, match two grids, write
:mod:`.runs`        the store of finished runs shared by ``cmsr eval`` and ``cmsr batch``
==================  =================================================================

Images are NumPy arrays ``(H, W)`` or ``(H, W, C)`` in the file's own dtype and units.
Every problem with a file raises :class:`~cmsr.errors.InputError` naming the file.
"""

from __future__ import annotations

from cmsr.files.atomic import same_file, write_bytes, write_text
from cmsr.files.checks import MAX_BYTES, MAX_CHANNELS, MAX_PIXELS, describe
from cmsr.files.readers import SUPPORTED_READ, read_image
from cmsr.files.writers import SUPPORTED_WRITE, write_image

__all__ = [
    "MAX_BYTES",
    "MAX_CHANNELS",
    "MAX_PIXELS",
    "SUPPORTED_READ",
    "SUPPORTED_WRITE",
    "describe",
    "read_image",
    "same_file",
    "write_bytes",
    "write_image",
    "write_text",
]
