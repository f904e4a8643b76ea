"""GeoTIFF to GeoTIFF: :func:`super_resolve_geotiff` lays a georeferenced pair on
matching grids, fits, and writes the result with its georeferencing; results too large to
hold are streamed window by window (:func:`stream_geotiff`)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from cmsr.errors import InputError
from cmsr.files.atomic import same_file
from cmsr.files.geotiff import (
    GeoPair,
    Georeferencing,
    GuideWindows,
    TiledGeoTiff,
    fill_invalid_guide,
    fine_mask,
    guide_means,
    prepare_geo_pair,
    write_geotiff,
)
from cmsr.method.api import CMSR
from cmsr.method.config import Config
from cmsr.method.normalize import result_dtype, to_dtype
from cmsr.method.resample import Box
from cmsr.method.streaming import super_resolve_tiled
from cmsr.method.train import StepInfo


def super_resolve_geotiff(target_path: str | os.PathLike[str],
                          guide_path: str | os.PathLike[str],
                          output_path: str | os.PathLike[str], config: Config | None = None,
                          *, target_bands: tuple[int, ...] | None = None,
                          guide_bands: tuple[int, ...] | None = None,
                          scale: float | None = None, resolution: float | None = None,
                          invalid_value: float | None = None, overwrite: bool = False,
                          on_step: Callable[[StepInfo], None] | None = None,
                          on_tile: Callable[[int, int], None] | None = None
                          ) -> Georeferencing:
    """Super-resolve a georeferenced target with a georeferenced guide, GeoTIFF to GeoTIFF.

    The two are laid on matching grids from their CRSs and transforms
    (:func:`cmsr.files.geotiff.prepare_geo_pair`: the overlap, the target resampled or
    reprojected unless its pixels nest exactly in the guide's), and the result is
    written on the guide's grid over the overlap (or one of pixel size ``resolution``)
    with the guide's CRS and the target's dtype, nodata, units, scale/offset, band
    descriptions and tags (:func:`cmsr.files.geotiff.write_geotiff`). Needs rasterio
    (``pip install 'cmsr[geo]'``).

    Parameters
    ----------
    target_path, guide_path:
        Georeferenced rasters (north-up, with a CRS); their nodata and NaN pixels are
        invalid.
    output_path:
        ``.tif`` / ``.tiff`` file to write (atomically); never an input.
    config:
        Settings; default ``Config()``.
    target_bands, guide_bands:
        Band numbers from 1, as GDAL; default all bands.
    scale:
        Output pixels per target pixel; default the ratio of the pixel sizes (a
        contradicting value raises, see ``prepare_geo_pair``).
    resolution:
        Output pixel size in the guide CRS's units; default the guide's.
    invalid_value:
        A target value meaning "no measurement" besides nodata (and the output's nodata
        if the target declares none).
    overwrite:
        Replace an existing output file.
    on_step:
        Called after each training step (see :meth:`CMSR.fit`).
    on_tile:
        For outputs of more than ``config.stream_above`` pixels, which are computed and
        written tile by tile (:func:`stream_geotiff`): called with ``(tiles done,
        tiles)`` after each tile.

    Returns
    -------
    Georeferencing
        The written file's grid and metadata.

    Examples
    --------
    >>> import cmsr                                                     # doctest: +SKIP
    >>> cmsr.super_resolve_geotiff("lst_100m.tif", "ndbi_20m.tif", "lst_20m.tif",
    ...                            cmsr.Config.preset("thermal"))       # doctest: +SKIP
    """
    output = Path(output_path)
    for source in (target_path, guide_path):
        if same_file(output, source):
            raise InputError("is also an input; refusing to overwrite it", os.fspath(output))
    if output.exists() and not overwrite:
        raise InputError("already exists; pass --overwrite to replace it", os.fspath(output))
    config = config or Config()
    pair = prepare_geo_pair(target_path, guide_path, target_bands=target_bands,
                            guide_bands=guide_bands, scale=scale, resolution=resolution,
                            invalid_value=invalid_value, read_guide=False)
    if streams(pair, config):
        return stream_geotiff(pair, target_path, guide_path, output, config,
                              invalid_value=invalid_value, overwrite=overwrite,
                              on_step=on_step, on_tile=on_tile)
    pair = prepare_geo_pair(target_path, guide_path, target_bands=target_bands,
                            guide_bands=guide_bands, scale=scale, resolution=resolution,
                            invalid_value=invalid_value)
    assert pair.guide is not None
    model = CMSR(config).fit(pair.target, pair.guide, on_step=on_step,
                             target_name=os.fspath(target_path),
                             guide_name=os.fspath(guide_path))
    result = to_dtype(model.predict(), np.dtype(pair.output.dtype))
    return write_geotiff(output, result, pair.output, invalid=pair.invalid,
                         overwrite=overwrite)


def streams(pair: GeoPair, config: Config) -> bool:
    """Whether ``pair``'s result is computed and written tile by tile: more than
    ``config.stream_above`` output pixels, and a guide that can be read by windows (on
    the output grid, i.e. not resampled by ``resolution``)."""
    height, width = pair.output.shape
    return height * width > config.stream_above and pair.guide_origin is not None


def stream_geotiff(pair: GeoPair, target_path: str | os.PathLike[str],
                   guide_path: str | os.PathLike[str], output_path: str | os.PathLike[str],
                   config: Config, *, invalid_value: float | None = None,
                   overwrite: bool = False,
                   on_step: Callable[[StepInfo], None] | None = None,
                   on_tile: Callable[[int, int], None] | None = None) -> Georeferencing:
    """:func:`super_resolve_tiled` from a :class:`GeoPair` prepared with
    ``read_guide=False``: the guide read window by window
    (:class:`cmsr.files.geotiff.GuideWindows`; invalid guide pixels filled with the
    training part's band means), the result written window by window into a tiled
    GeoTIFF (:class:`cmsr.files.geotiff.TiledGeoTiff`), output pixels over an invalid
    target or guide pixel as nodata. Returns the written file's georeferencing."""
    guide_source = os.fspath(guide_path)
    coarse_valid = np.isfinite(pair.target)
    coarse_invalid = ~(coarse_valid if coarse_valid.ndim == 2 else coarse_valid.all(axis=-1))
    dtype = result_dtype(np.dtype(pair.output.dtype))
    count = 1 if pair.target.ndim == 2 else pair.target.shape[2]
    means: list[np.ndarray] = []
    last: dict[str, Any] = {}
    with GuideWindows(guide_path, pair) as guide, TiledGeoTiff(
            output_path, pair.output, dtype, count, overwrite=overwrite) as out:

        def read_guide(box: Box) -> np.ndarray:
            pixels, valid = guide.read(box)
            if not means:
                means.append(guide_means(pixels, valid, guide_source))
            last.update(box=box, valid=valid)
            return fill_invalid_guide(pixels, valid, guide_source, means[0])

        def write_tile(box: Box, tile: np.ndarray) -> None:
            read, valid = last["box"], last["valid"]
            guide_valid = valid[box[0] - read[0]:box[1] - read[0],
                                box[2] - read[2]:box[3] - read[2]]
            invalid = ~guide_valid | fine_mask(coarse_invalid, pair.output.shape, box)
            out.write(box, to_dtype(tile, dtype), invalid)

        super_resolve_tiled(pair.target, read_guide, pair.output.shape, write_tile, config,
                            invalid_value=invalid_value, on_step=on_step, on_tile=on_tile,
                            target_name=os.fspath(target_path), guide_name=guide_source)
    return out.written
