"""Georeferenced rasters (GeoTIFF) through rasterio: read them, lay two grids on each
other, and write a result on a grid with its georeferencing.

rasterio is optional (``pip install 'cmsr[geo]'``); this module imports it only when a
function needs it, and then raises a one-line :class:`~cmsr.errors.InputError` ending
in :data:`GEO_HINT` if it is missing. Plain TIFFs never need it (:mod:`.readers` reads
them with tifffile); :func:`is_georeferenced` and :func:`declares_nodata` tell the two
kinds apart from the TIFF tags alone, without rasterio.

What is kept
------------
:class:`Georeferencing` holds what a result must carry: the CRS, the affine transform,
the size, the stored dtype, nodata, and per band the description, units, scale and
offset and tags, plus the file's tags. Values are never rescaled: scale and offset
(``physical = stored * scale + offset``) travel with the stored values.

Two grids
---------
:func:`prepare_geo_pair` finds where a target and a guide overlap on the ground, from
their transforms and CRSs, never from their array sizes: different extents, pixel sizes
and origins, non-integer ratios and different CRSs are all fine. The output grid is the
guide's grid over the overlap (or, with ``resolution``, a grid of that pixel size laid
on the target's pixel corners); the target is read on a coarse grid covering exactly the
same ground, so that the output has ``scale`` times its pixels per axis. Where the
target's pixels nest exactly in the output's (integer ratio, corners on the output
grid, same CRS), that coarse grid *is* the target's own pixels, read unchanged; else
the target is resampled onto it (bilinear by default), after reprojection with
:mod:`rasterio.warp` when the CRSs differ.

Nodata
------
Pixels equal to a band's nodata value (NaN included), NaN pixels, and pixels GDAL
masks otherwise are invalid: NaN in the prepared target (left out of the training),
filled with the band's mean in the prepared guide. Output pixels with no valid target
pixel under them, or with an invalid guide, are written as nodata.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Any

import numpy as np
import tifffile

from cmsr.errors import InputError, describe_shape
from cmsr.files.atomic import atomic_path, write_atomically
from cmsr.files.checks import DTYPE_KIND_NAMES, check_band_numbers, check_declared, check_shape
from cmsr.files.readers import _tifffile_quiet, read_image, select_bands

GEO_HINT = "install cmsr[geo] to keep georeferencing"
"""The hint every message about a missing rasterio ends with."""

GEO_SUFFIXES: tuple[str, ...] = (".tif", ".tiff")
"""File extensions that can hold georeferencing (compared case-insensitively)."""

TILE_SIZE = 512
"""Block size (pixels a side) of tiled outputs."""

TILED_ABOVE = 1024
"""Outputs wider or taller than this many pixels are written tiled, else in strips."""

SCALE_TOLERANCE = 0.01
"""A given scale may differ from the grids' pixel-size ratio by this fraction (same CRS)."""

RESAMPLINGS: tuple[str, ...] = ("bilinear", "average", "cubic", "nearest")
"""Resampling methods (rasterio's names) :func:`prepare_geo_pair` accepts for the target."""

_GEO_TAGS = frozenset({33550, 33922, 34264, 34735})  # pixel scale, tie point, transform, keys
_NODATA_TAG = 42113  # GDAL_NODATA
_ON_GRID = 1e-4  # in pixels: how far a corner may lie off a grid line and count as on it
_INTEGER = 1e-6  # relative: how far a pixel-size ratio may lie off an integer and count as one

Transform = tuple[float, float, float, float, float, float]
"""An affine transform ``(a, b, c, d, e, f)``: ``x = a * col + b * row + c``,
``y = d * col + e * row + f`` (rasterio's order; GDAL's geotransform is ``(c, a, b, f, d,
e)``), for pixel corners."""


@dataclass(frozen=True)
class Georeferencing:
    """Where a raster lies on the ground and what its values mean.

    Attributes
    ----------
    crs:
        The coordinate reference system as rasterio writes it (``"EPSG:32630"``, or WKT
        for CRSs without an EPSG code); None when the file has none.
    transform:
        Pixel corners to CRS coordinates, see :data:`Transform`.
    shape:
        ``(height, width)`` in pixels.
    dtype:
        The stored values' numpy dtype name (``"int16"``, ``"float32"``, ...).
    nodata:
        The value marking "no data" (NaN allowed), or None.
    bands:
        The file's band numbers (from 1, as GDAL) these values come from.
    descriptions, units, scales, offsets, band_tags:
        Per band: description, unit (``"K"``, ``"metre"``), scale and offset
        (``physical = stored * scale + offset``) and tags.
    tags:
        The file's own tags (GDAL metadata of the default domain).
    """

    crs: str | None
    transform: Transform
    shape: tuple[int, int]
    dtype: str
    nodata: float | None = None
    bands: tuple[int, ...] = (1,)
    descriptions: tuple[str | None, ...] = (None,)
    units: tuple[str | None, ...] = (None,)
    scales: tuple[float, ...] = (1.0,)
    offsets: tuple[float, ...] = (0.0,)
    tags: tuple[tuple[str, str], ...] = ()
    band_tags: tuple[tuple[tuple[str, str], ...], ...] = ((),)

    @property
    def pixel_size(self) -> tuple[float, float]:
        """``(x, y)`` size of a pixel in CRS units (positive), for north-up grids.

        Examples
        --------
        >>> Georeferencing("EPSG:32630", (20.0, 0.0, 500.0, 0.0, -20.0, 900.0), (4, 5),
        ...                "float32").pixel_size
        (20.0, 20.0)
        """
        a, _, _, _, e, _ = self.transform
        return abs(a), abs(e)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """``(left, bottom, right, top)`` in CRS units, for north-up grids.

        Examples
        --------
        >>> Georeferencing("EPSG:32630", (20.0, 0.0, 500.0, 0.0, -20.0, 900.0), (4, 5),
        ...                "float32").bounds
        (500.0, 820.0, 600.0, 900.0)
        """
        a, _, c, _, e, f = self.transform
        height, width = self.shape
        return c, f + e * height, c + a * width, f

    def describe(self) -> str:
        """One line for messages: CRS, pixel size and size.

        Examples
        --------
        >>> Georeferencing("EPSG:32630", (20.0, 0.0, 500.0, 0.0, -20.0, 900.0), (4, 5),
        ...                "float32").describe()
        'EPSG:32630, 20 x 20 pixels, 5x4'
        """
        x, y = self.pixel_size
        crs = self.crs if self.crs is None or len(self.crs) < 40 else "a custom CRS"
        return f"{crs}, {x:.6g} x {y:.6g} pixels, {describe_shape(self.shape)}"


@dataclass(frozen=True)
class GeoPair:
    """A target and a guide laid on matching grids by :func:`prepare_geo_pair`.

    Attributes
    ----------
    target:
        ``(h, w)`` or ``(h, w, c)`` float64 on the coarse grid, in the target's stored
        units (scale and offset not applied); NaN where invalid.
    guide:
        ``(H, W)`` or ``(H, W, C)`` on the output grid: the guide's stored dtype when read
        unchanged, float64 when resampled; invalid pixels filled with their band's mean.
        None when :func:`prepare_geo_pair` was asked not to read it (``read_guide=False``,
        for large outputs read window by window with :class:`GuideWindows`).
    output:
        The output grid, with the target's dtype, nodata and band metadata.
    invalid:
        ``(H, W)`` bool: output pixels without a valid target pixel under them or without
        a valid guide; written as nodata. None when the guide was not read.
    coarse:
        The coarse grid the target was read on.
    scale:
        ``(y, x)`` output pixels per coarse pixel, ``(H / h, W / w)``.
    notes:
        What was done to the inputs (cropped, resampled, reprojected, the scale
        derived), one line each, for people.
    guide_origin:
        ``(row, column)`` of the output grid's first pixel in the guide's own grid when
        the guide is read unchanged (a window of the file), else None (resampled).
    guide_bands:
        The guide's band numbers (from 1) used.
    """

    target: np.ndarray
    guide: np.ndarray | None
    output: Georeferencing
    invalid: np.ndarray | None
    coarse: Georeferencing
    scale: tuple[float, float]
    notes: tuple[str, ...] = ()
    guide_origin: tuple[int, int] | None = None
    guide_bands: tuple[int, ...] = (1,)


# --------------------------------------------------------------------------- rasterio


def rasterio_available() -> bool:
    """Whether rasterio can be imported (``pip install 'cmsr[geo]'``)."""
    try:
        import rasterio  # noqa: F401
    except ImportError:
        return False
    return True


def require_rasterio(source: str) -> ModuleType:
    """rasterio, with :mod:`rasterio.warp` loaded; a one-line :class:`InputError` naming
    ``source`` and ending in :data:`GEO_HINT` when it is missing."""
    try:
        import rasterio
        import rasterio.io
        import rasterio.warp
    except ImportError:
        raise InputError(f"reading and writing georeferencing needs rasterio; {GEO_HINT}",
                         source) from None
    return rasterio


def _tiff_tag_codes(path: str | os.PathLike[str]) -> frozenset[int]:
    """The tag codes of a TIFF's first page; empty for other files and unreadable TIFFs."""
    if Path(path).suffix.lower() not in GEO_SUFFIXES:
        return frozenset()
    try:
        with _tifffile_quiet(), tifffile.TiffFile(path) as tif:
            return frozenset(int(tag.code) for tag in tif.pages.first.tags.values())
    except Exception:  # the reader that follows reports a broken file in one line
        return frozenset()


def is_georeferenced(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a TIFF with GeoTIFF tags (a CRS, a transform or tie points).

    Read from the TIFF tags with tifffile: works without rasterio. False for other
    files, and for files that cannot be read (their reader says why).
    """
    return bool(_tiff_tag_codes(path) & _GEO_TAGS)


def declares_nodata(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a TIFF with GDAL's nodata tag (works without rasterio)."""
    return _NODATA_TAG in _tiff_tag_codes(path)


def files_losing_georeferencing(paths: Sequence[str | os.PathLike[str]]) -> list[str]:
    """Those of ``paths`` whose georeferencing or nodata would be lost because rasterio is
    missing (empty when it is installed)."""
    lost = [os.fspath(p) for p in paths if is_georeferenced(p) or declares_nodata(p)]
    return lost if lost and not rasterio_available() else []


# --------------------------------------------------------------------------- reading


@contextmanager
def _open(source: str) -> Iterator[Any]:
    """A rasterio dataset for reading; unreadable files end in a one-line InputError."""
    rasterio = require_rasterio(source)
    file = Path(source)
    if not file.exists():
        raise InputError("no such file", source)
    if not file.is_file():
        raise InputError("is not a regular file", source)
    try:
        dataset = rasterio.open(source)
    except rasterio.errors.RasterioError as exc:
        raise InputError(f"cannot be read as a raster ({_first_line(exc)})", source) from None
    try:
        with dataset:
            yield dataset
    except rasterio.errors.RasterioError as exc:
        raise InputError(f"cannot decode the raster data ({_first_line(exc)})",
                         source) from None


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def _georeferencing(dataset: Any, bands: Sequence[int] | None, source: str) -> Georeferencing:
    """What :class:`Georeferencing` holds, for ``bands`` (all when None) of ``dataset``."""
    chosen = tuple(int(b) for b in bands) if bands is not None else tuple(
        range(1, dataset.count + 1))
    check_band_numbers(chosen, dataset.count, source)
    dtype = np.dtype(dataset.dtypes[chosen[0] - 1])
    shape = (dataset.height, dataset.width)
    check_declared(shape if len(chosen) == 1 else (*shape, len(chosen)), dtype, source)
    nodata = dataset.nodatavals[chosen[0] - 1]
    t = dataset.transform
    return Georeferencing(
        crs=dataset.crs.to_string() if dataset.crs else None,
        transform=(float(t.a), float(t.b), float(t.c), float(t.d), float(t.e), float(t.f)),
        shape=shape,
        dtype=dtype.name,
        nodata=None if nodata is None else float(nodata),
        bands=chosen,
        descriptions=tuple(dataset.descriptions[b - 1] for b in chosen),
        units=tuple(dataset.units[b - 1] or None for b in chosen),
        scales=tuple(float(dataset.scales[b - 1]) for b in chosen),
        offsets=tuple(float(dataset.offsets[b - 1]) for b in chosen),
        tags=tuple(sorted(dataset.tags().items())),
        band_tags=tuple(tuple(sorted(dataset.tags(b).items())) for b in chosen),
    )


def _read(dataset: Any, bands: Sequence[int], window: Any = None
          ) -> tuple[np.ndarray, np.ndarray]:
    """``(pixels, valid)``: ``(H, W[, C])`` stored values and ``(H, W)`` bool, True where
    every band is unmasked (not nodata) and finite."""
    data = dataset.read(list(bands), window=window)
    valid = (dataset.read_masks(list(bands), window=window) > 0).all(axis=0)
    if data.dtype.kind == "f":
        valid &= np.isfinite(data).all(axis=0)
    pixels = np.moveaxis(data, 0, -1)
    pixels = pixels[:, :, 0] if pixels.shape[2] == 1 else pixels
    return np.ascontiguousarray(pixels), valid


def read_geotiff(path: str | os.PathLike[str], bands: Sequence[int] | None = None
                 ) -> tuple[np.ndarray, np.ndarray, Georeferencing]:
    """Read a (Geo)TIFF with rasterio: pixels, valid mask and georeferencing.

    Parameters
    ----------
    path:
        A raster file GDAL reads (a GeoTIFF, typically).
    bands:
        Band numbers from 1 (as GDAL); None: all bands.

    Returns
    -------
    pixels:
        ``(H, W)`` (one band) or ``(H, W, C)``, the stored dtype and values (scale and
        offset not applied).
    valid:
        ``(H, W)`` bool: False where any chosen band is nodata, masked or NaN.
    georeferencing:
        CRS, transform, nodata and band metadata (``crs`` None for files without one).

    Raises
    ------
    InputError
        rasterio missing (with :data:`GEO_HINT`), a missing or unreadable file, a band
        the file lacks, or a size beyond the limits of :mod:`.checks`.
    """
    source = os.fspath(path)
    with _open(source) as dataset:
        info = _georeferencing(dataset, bands, source)
        pixels, valid = _read(dataset, info.bands)
    return pixels, valid, info


def read_raster(path: str | os.PathLike[str], bands: Sequence[int] | None = None
                ) -> tuple[np.ndarray, np.ndarray | None, Georeferencing | None]:
    """Any image file, with its nodata mask and georeferencing where it has them.

    TIFFs that are georeferenced or declare nodata are read with rasterio when it is
    installed (:func:`read_geotiff`); everything else, and those when rasterio is
    missing, with :func:`~cmsr.files.read_image` (then ``valid`` and
    ``georeferencing`` are None). ``bands`` are numbered from 1 in both cases.
    """
    geo = is_georeferenced(path) or declares_nodata(path)
    if geo and rasterio_available():
        return read_geotiff(path, bands)
    image = read_image(path)
    return select_bands(image, None if bands is None else tuple(bands), os.fspath(path)), \
        None, None


# --------------------------------------------------------------------------- two grids


def _check_north_up(info: Georeferencing, source: str) -> None:
    a, b, _, d, e, _ = info.transform
    if info.crs is None:
        raise InputError("has no coordinate reference system (CRS), so its grid cannot be "
                         "laid on the other file's", source)
    if b != 0.0 or d != 0.0 or a <= 0.0 or e >= 0.0:
        raise InputError("its grid is rotated or flipped; cmsr needs north-up rasters "
                         "(warp it first, e.g. with gdalwarp)", source)


def _pixel_size_in(info: Georeferencing, crs: str) -> tuple[float, float]:
    """``(x, y)`` size in ``crs`` units of the pixel at the centre of ``info``'s grid."""
    from rasterio.warp import transform as transform_points

    a, _, c, _, e, f = info.transform
    height, width = info.shape
    x0, y0 = c + a * (width / 2), f + e * (height / 2)
    xs, ys = transform_points(info.crs, crs, [x0, x0 + a, x0], [y0, y0, y0 + e])
    return (math.hypot(xs[1] - xs[0], ys[1] - ys[0]),
            math.hypot(xs[2] - xs[0], ys[2] - ys[0]))


def _integer(ratio: float) -> int | None:
    """``round(ratio)`` when ``ratio`` is an integer up to float noise, else None."""
    nearest = round(ratio)
    return nearest if nearest >= 1 and abs(ratio - nearest) <= _INTEGER * ratio else None


def _on_grid(offset: float) -> bool:
    """Whether ``offset`` (in pixels) is a whole number up to :data:`_ON_GRID`."""
    return abs(offset - round(offset)) <= _ON_GRID


def _inside(low: float, high: float, origin: float, step: float) -> tuple[int, int]:
    """First and last+1 index of the grid cells ``origin + k * step`` lying within
    ``[low, high]`` (a corner within :data:`_ON_GRID` of a bound counts as on it)."""
    first = math.ceil((low - origin) / step - _ON_GRID)
    last = math.floor((high - origin) / step + _ON_GRID)
    return first, last


def _whole_pixels(size: int, factor: float) -> tuple[int, int]:
    """``(output pixels, coarse pixels)`` along one axis for ``size`` output pixels of
    the overlap and ``factor`` output pixels per coarse pixel.

    The output is cut by a few pixels (at most ``4 * ceil(factor)``) where that makes it
    a whole number of coarse pixels (factors 2, 2.5, 4/3, ...), so the coarse pixels keep
    their size; otherwise it is kept and the coarse pixels stretch slightly.

    Examples
    --------
    >>> _whole_pixels(509, 2.0), _whole_pixels(37, 2.5), _whole_pixels(480, 3.7795)
    ((508, 254), (35, 14), (480, 127))
    """
    for candidate in range(size, max(size - 4 * math.ceil(factor), 0), -1):
        coarse = round(candidate / factor)
        if coarse >= 1 and abs(candidate - coarse * factor) <= _INTEGER * candidate:
            return candidate, coarse
    return max(size, 0), max(1, round(size / factor))


def _grid(left: float, top: float, size_x: float, size_y: float) -> Transform:
    return (size_x, 0.0, left, 0.0, -size_y, top)


def _to_float(pixels: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Stored values as float64 with NaN where ``valid`` is False."""
    values = pixels.astype(np.float64)
    values[~valid] = np.nan
    return values


def _bands_first(image: np.ndarray) -> np.ndarray:
    return image[None] if image.ndim == 2 else np.moveaxis(image, -1, 0)


def _bands_last(image: np.ndarray) -> np.ndarray:
    return image[0] if image.shape[0] == 1 else np.ascontiguousarray(np.moveaxis(image, 0, -1))


def _reproject(values: np.ndarray, source: Georeferencing, grid: Georeferencing,
               resampling: str) -> np.ndarray:
    """``(H, W[, C])`` float64 (NaN = invalid) on ``source``'s grid -> ``grid``, NaN
    where no valid source pixel contributes."""
    from affine import Affine
    from rasterio.enums import Resampling
    from rasterio.warp import reproject

    stack = _bands_first(values)
    out = np.full((stack.shape[0], *grid.shape), np.nan)
    reproject(stack, out, src_transform=Affine(*source.transform), src_crs=source.crs,
              src_nodata=np.nan, dst_transform=Affine(*grid.transform), dst_crs=grid.crs,
              dst_nodata=np.nan, resampling=Resampling[resampling])
    return _bands_last(out)


def fill_invalid_guide(guide: np.ndarray, valid: np.ndarray, source: str,
                       means: np.ndarray | None = None) -> np.ndarray:
    """``guide`` ``(H, W[, C])`` with pixels where ``valid`` is False set to their band's
    mean over the valid pixels (a flat patch without edges), in the guide's dtype; or to
    ``means`` ``(C,)`` when given (for windows of a guide: the means of one window, the
    same in every window; see :func:`guide_means`).

    Raises :class:`InputError` naming ``source`` when no pixel is valid.

    Examples
    --------
    >>> guide = np.array([[0, 10], [20, 30]], np.uint8)
    >>> fill_invalid_guide(guide, guide > 0, "g.tif").tolist()
    [[20, 10], [20, 30]]
    """
    if valid.all():
        return guide
    stack = guide[:, :, None] if guide.ndim == 2 else guide
    if means is None:
        means = guide_means(guide, valid, source)
    if np.dtype(guide.dtype).kind in "iub":
        means = np.rint(means)
    filled = np.where(valid[:, :, None], stack, means.astype(guide.dtype))
    return filled[:, :, 0] if guide.ndim == 2 else filled


def guide_means(guide: np.ndarray, valid: np.ndarray, source: str) -> np.ndarray:
    """``(C,)`` float64: each band's mean over the valid pixels of ``guide`` ``(H, W[, C])``;
    :class:`InputError` naming ``source`` when no pixel is valid."""
    if not valid.any():
        raise InputError("has no valid pixels (all nodata) where it overlaps the target",
                         source)
    stack = guide[:, :, None] if guide.ndim == 2 else guide
    return np.asarray(stack[valid].astype(np.float64).mean(axis=0))


def fine_mask(coarse: np.ndarray, shape: tuple[int, int],
              box: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """``(h, w)`` bool -> ``(H, W)``: each fine pixel takes the coarse pixel its centre
    lies in; only the rows ``box[0]..box[1]-1`` and columns ``box[2]..box[3]-1`` of the
    fine grid when ``box`` is given.

    Examples
    --------
    >>> fine_mask(np.array([[True, False]]), (2, 4), (0, 1, 1, 3)).tolist()
    [[True, False]]
    """
    h, w = coarse.shape
    top, bottom, left, right = box if box is not None else (0, shape[0], 0, shape[1])
    rows = np.minimum(((np.arange(top, bottom) + 0.5) * h / shape[0]).astype(int), h - 1)
    cols = np.minimum(((np.arange(left, right) + 0.5) * w / shape[1]).astype(int), w - 1)
    return coarse[np.ix_(rows, cols)]


def prepare_geo_pair(target_path: str | os.PathLike[str], guide_path: str | os.PathLike[str],
                     *, target_bands: Sequence[int] | None = None,
                     guide_bands: Sequence[int] | None = None, scale: float | None = None,
                     resolution: float | None = None, invalid_value: float | None = None,
                     resampling: str = "bilinear", read_guide: bool = True) -> GeoPair:
    """Lay a georeferenced target and guide on matching grids (see the module docs).

    Parameters
    ----------
    target_path, guide_path:
        Georeferenced rasters (north-up, with a CRS), e.g. GeoTIFFs.
    target_bands, guide_bands:
        Band numbers from 1 (as GDAL); None: all bands.
    scale:
        Output pixels per coarse target pixel. Default: the ratio of the target's pixel
        size to the output's, per axis (said in :attr:`GeoPair.notes`). In one CRS a
        given scale must agree with that ratio within :data:`SCALE_TOLERANCE`; across
        CRSs (where the target is resampled anyway) it sets the coarse grid's pixel to
        the output's times ``scale``.
    resolution:
        Output pixel size in the guide CRS's units; default: the guide's pixel size
        (the output grid is then the guide's own grid). The grid is laid on the
        target's pixel corners (same CRS) or the guide's (other CRS); the guide is
        resampled onto it (average when coarser than the guide, bilinear when finer).
    invalid_value:
        A target value meaning "no measurement" besides nodata and NaN; also the output's
        nodata when the target declares none.
    resampling:
        How the target is resampled when its grid does not nest in the output's: one of
        :data:`RESAMPLINGS`.
    read_guide:
        False: leave the guide unread when it can be read window by window later (its
        pixels lie on the output grid; :attr:`GeoPair.guide_origin` says where), for
        outputs too large to hold; ``guide`` and ``invalid`` are then None. A guide that
        must be resampled (``resolution``) is always read.

    Returns
    -------
    GeoPair
        Coarse target (float64, NaN invalid), guide on the output grid, the output
        grid's :class:`Georeferencing` (the target's dtype, nodata and band metadata on
        the guide's CRS), its invalid pixels, the scale per axis and notes.

    Raises
    ------
    InputError
        rasterio missing, a file without a CRS or with a rotated grid, files that do
        not overlap or overlap by less than 2x2 target pixels, a scale that contradicts
        the grids, a band the file lacks, a bad ``resolution`` or ``resampling``.
    """
    target_source, guide_source = os.fspath(target_path), os.fspath(guide_path)
    require_rasterio(target_source)
    from rasterio.crs import CRS
    from rasterio.warp import transform_bounds
    from rasterio.windows import Window

    if resampling not in RESAMPLINGS:
        raise InputError(f"unknown resampling {resampling!r}; use one of "
                         f"{', '.join(RESAMPLINGS)}", source="resampling")
    if resolution is not None and not (0 < resolution < math.inf):
        raise InputError(f"must be a positive number of CRS units, not {resolution:g}",
                         source="resolution")
    if scale is not None and not (0 < scale < math.inf):
        raise InputError(f"must be a positive number, not {scale:g}", source="scale")
    notes: list[str] = []
    with _open(target_source) as target_set, _open(guide_source) as guide_set:
        target = _georeferencing(target_set, target_bands, target_source)
        guide = _georeferencing(guide_set, guide_bands, guide_source)
        _check_north_up(target, target_source)
        _check_north_up(guide, guide_source)
        assert guide.crs is not None
        same_crs = CRS.from_user_input(target.crs) == CRS.from_user_input(guide.crs)

        # pixel sizes and the target's footprint, in the guide's CRS
        out_x, out_y = (resolution, resolution) if resolution else guide.pixel_size
        if same_crs:
            target_px, footprint = target.pixel_size, target.bounds
        else:
            target_px = _pixel_size_in(target, guide.crs)
            footprint = transform_bounds(target.crs, guide.crs, *target.bounds, densify_pts=21)
        natural = (target_px[1] / out_y, target_px[0] / out_x)
        if scale is None:
            factors = natural
            notes.append(f"scale x{_ratio(natural)} from the pixel sizes (target "
                         f"{target_px[0]:.6g} x {target_px[1]:.6g}, output {out_x:.6g} x "
                         f"{out_y:.6g} in the guide's CRS units)")
        else:
            if same_crs and any(abs(scale / n - 1) > SCALE_TOLERANCE for n in natural):
                raise InputError(
                    f"scale {scale:g} contradicts the grids: the target's pixels are "
                    f"x{_ratio(natural)} the output's ({target_px[0]:.6g} against "
                    f"{out_x:.6g}); leave the scale out to use the grids' ratio",
                    source=target_source)
            factors = (scale, scale)

        # the overlap on the ground
        left = max(footprint[0], guide.bounds[0])
        bottom = max(footprint[1], guide.bounds[1])
        right = min(footprint[2], guide.bounds[2])
        top = min(footprint[3], guide.bounds[3])
        if left >= right or bottom >= top:
            raise InputError(f"does not overlap the target {target_source} on the ground "
                             f"(guide bounds {_bounds(guide.bounds)}, target "
                             f"{_bounds(footprint)} in the guide's CRS)", source=guide_source)

        # the output grid's anchor: the guide's corner, or the target's with --resolution
        anchor_x, anchor_y = guide.transform[2], guide.transform[5]
        if resolution is not None and same_crs:
            anchor_x, anchor_y = target.transform[2], target.transform[5]
        steps = (_integer(natural[0]), _integer(natural[1]))
        nested = (same_crs and steps[0] is not None and steps[1] is not None
                  and (scale is None or (abs(scale - steps[0]) <= _INTEGER * scale
                                         and abs(scale - steps[1]) <= _INTEGER * scale))
                  and _on_grid((target.transform[2] - anchor_x) / out_x)
                  and _on_grid((anchor_y - target.transform[5]) / out_y))
        if nested:
            assert steps[0] is not None and steps[1] is not None
            tx, ty = target.pixel_size
            col0, col1 = _inside(left, right, target.transform[2], tx)
            row0, row1 = _inside(target.transform[5] - top, target.transform[5] - bottom,
                                 0.0, ty)
            h, w = row1 - row0, col1 - col0
            out_left = target.transform[2] + col0 * tx
            out_top = target.transform[5] - row0 * ty
            out_shape = (h * steps[0], w * steps[1])
            coarse_transform = _grid(out_left, out_top, tx, ty)
        else:
            col0, col1 = _inside(left, right, anchor_x, out_x)
            row0, row1 = _inside(anchor_y - top, anchor_y - bottom, 0.0, out_y)
            (height, h), (width, w) = (_whole_pixels(row1 - row0, factors[0]),
                                       _whole_pixels(col1 - col0, factors[1]))
            out_shape = (height, width)
            out_left, out_top = anchor_x + col0 * out_x, anchor_y - row0 * out_y
            coarse_transform = _grid(out_left, out_top, out_shape[1] * out_x / w,
                                     out_shape[0] * out_y / h)
        if h < 2 or w < 2 or min(out_shape) < 2:
            raise InputError(f"overlaps the target {target_source} by too little to work "
                             f"on ({w}x{h} target pixels)", source=guide_source)
        output = replace(target, crs=guide.crs, transform=_grid(out_left, out_top, out_x,
                                                                 out_y), shape=out_shape)
        coarse = replace(target, crs=guide.crs, transform=coarse_transform, shape=(h, w))

        # the guide on the output grid
        guide_col = (out_left - guide.transform[2]) / guide.pixel_size[0]
        guide_row = (guide.transform[5] - out_top) / guide.pixel_size[1]
        if resolution is None or (
                abs(out_x - guide.pixel_size[0]) <= _ON_GRID * out_x
                and abs(out_y - guide.pixel_size[1]) <= _ON_GRID * out_y
                and _on_grid(guide_col) and _on_grid(guide_row)):
            guide_origin: tuple[int, int] | None = (round(guide_row), round(guide_col))
            guide_pixels: np.ndarray | None = None
            guide_valid: np.ndarray | None = None
            if read_guide:
                window = Window(round(guide_col), round(guide_row), out_shape[1],
                                out_shape[0])
                guide_pixels, guide_valid = _read(guide_set, guide.bands, window)
        else:
            guide_origin = None
            pixels, valid = _read(guide_set, guide.bands)
            coarser = out_x >= guide.pixel_size[0] and out_y >= guide.pixel_size[1]
            method = "average" if coarser else "bilinear"
            guide_pixels = _reproject(_to_float(pixels, valid), guide,
                                      replace(output, crs=guide.crs), method)
            finite = np.isfinite(guide_pixels)
            guide_valid = finite if finite.ndim == 2 else np.all(finite, axis=-1)
            notes.append(f"{guide_source}: resampled ({method}) to {out_x:.6g} x "
                         f"{out_y:.6g} pixels")
        # cannot happen for grids inside the guide
        if guide_pixels is not None and guide_pixels.shape[:2] != out_shape:
            raise InputError(f"cannot be read over the target's area (got "
                             f"{describe_shape(guide_pixels.shape)})", source=guide_source)

        # the target on the coarse grid
        if nested:
            pixels, valid = _read(target_set, target.bands, Window(col0, row0, w, h))
            target_values = _to_float(pixels, valid)
        else:
            pixels, valid = _read(target_set, target.bands)
            values = _to_float(pixels, valid)
            if invalid_value is not None:
                _mark_invalid(values, invalid_value)
            target_values = _reproject(values, target, coarse, resampling)
            what = (f"reprojected from {target.crs} to {guide.crs}" if not same_crs
                    else "resampled")
            notes.append(f"{target_source}: {what} ({resampling}) onto a {w}x{h} grid of "
                         f"{coarse.pixel_size[0]:.6g} x {coarse.pixel_size[1]:.6g} pixels "
                         "aligned with the output's")
    if invalid_value is not None:
        _mark_invalid(target_values, invalid_value)
    target_valid = np.isfinite(target_values)
    target_valid = target_valid if target_valid.ndim == 2 else target_valid.all(axis=-1)
    if not target_valid.any():
        raise InputError("has no valid pixels (all nodata) where it overlaps the guide",
                         source=target_source)
    if out_shape != guide.shape:
        notes.append(f"output grid: the overlap, {describe_shape(out_shape)} pixels of "
                     f"{out_x:.6g} x {out_y:.6g} (guide {describe_shape(guide.shape)}, target "
                     f"{describe_shape(target.shape)})")
    guide_filled, invalid = None, None
    if guide_pixels is not None and guide_valid is not None:
        guide_filled = fill_invalid_guide(guide_pixels, guide_valid, guide_source)
        invalid = ~guide_valid | fine_mask(~target_valid, out_shape)
    nodata = target.nodata if target.nodata is not None else invalid_value
    return GeoPair(target=target_values, guide=guide_filled,
                   output=replace(output, nodata=nodata), invalid=invalid,
                   coarse=replace(coarse, nodata=nodata),
                   scale=(out_shape[0] / h, out_shape[1] / w), notes=tuple(notes),
                   guide_origin=guide_origin, guide_bands=guide.bands)


def _mark_invalid(values: np.ndarray, invalid_value: float) -> None:
    """Set every band of the pixels where any band equals ``invalid_value`` to NaN."""
    hit = values == invalid_value
    if values.ndim == 3:
        hit = np.broadcast_to(hit.any(axis=-1, keepdims=True), values.shape)
    values[hit] = np.nan


def _ratio(factors: tuple[float, float]) -> str:
    """``"5"``, or ``"3.77 (x) / 3.09 (y)"`` when the axes differ."""
    y, x = factors
    if abs(x - y) <= _INTEGER * max(x, y):
        return f"{x:.4g}"
    return f"{x:.4g} (x) / {y:.4g} (y)"


def _bounds(bounds: Sequence[float]) -> str:
    return "(" + ", ".join(f"{v:.6g}" for v in bounds) + ")"


# --------------------------------------------------------------------------- writing


def write_geotiff(path: str | os.PathLike[str], image: np.ndarray,
                  georeferencing: Georeferencing, *, invalid: np.ndarray | None = None,
                  overwrite: bool = False) -> Georeferencing:
    """Write ``image`` as a GeoTIFF on ``georeferencing``'s grid, atomically.

    Parameters
    ----------
    path:
        A ``.tif`` / ``.tiff`` file; missing folders are created.
    image:
        ``(H, W)`` or ``(H, W, C)`` real numbers, ``(H, W)`` = ``georeferencing.shape``;
        written in its own dtype (bool as uint8, float16 as float32), unscaled.
    georeferencing:
        CRS, transform, nodata and band metadata (descriptions, units, scale and offset,
        tags) to write; the band metadata is used when it has one entry per band.
    invalid:
        ``(H, W)`` bool: pixels to write as nodata. Without a nodata value a float image
        gets NaN; an integer image without one keeps its values there.
    overwrite:
        Replace an existing file; without it an existing file is never touched.

    Returns
    -------
    Georeferencing
        What was written (dtype and nodata as stored).

    Notes
    -----
    DEFLATE compression with the predictor that suits the dtype (horizontal
    differencing for integers, floating point for floats); outputs more than
    :data:`TILED_ABOVE` pixels wide or tall are tiled in :data:`TILE_SIZE`-pixel blocks
    (strips otherwise). ``AREA_OR_POINT`` is not copied: the transform always gives
    pixel corners, and the output's pixels are areas.

    Raises
    ------
    InputError
        rasterio missing, a path not ending in ``.tif``/``.tiff``, an image of the wrong
        size or kind, a nodata value its dtype cannot hold, an existing file without
        ``overwrite``, or a failed write.
    """
    source = os.fspath(path)
    final = Path(path)
    if final.suffix.lower() not in GEO_SUFFIXES:
        raise InputError("georeferenced rasters are written as GeoTIFF: use a .tif or .tiff "
                         "name", source)
    rasterio = require_rasterio(source)
    from rasterio.io import MemoryFile

    data = np.asarray(image)
    if data.dtype.kind not in "biuf":
        what = DTYPE_KIND_NAMES.get(data.dtype.kind, "non-numeric data")
        raise InputError(f"cannot save {what} (dtype {data.dtype}) as a GeoTIFF", source)
    check_shape(data.shape, source)
    if data.shape[:2] != georeferencing.shape:
        raise InputError(f"the image is {describe_shape(data.shape)} but its grid is "
                         f"{describe_shape(georeferencing.shape)}", source)
    if data.dtype == np.bool_:
        data = data.astype(np.uint8)
    elif data.dtype == np.float16:
        data = data.astype(np.float32)
    stack = _bands_first(data)
    count = stack.shape[0]
    nodata = georeferencing.nodata
    if invalid is not None and invalid.any():
        if nodata is None and data.dtype.kind == "f":
            nodata = math.nan
        if nodata is not None:
            stack = stack.copy()
            stack[:, invalid] = nodata
    if nodata is not None and not math.isnan(nodata) and not rasterio.dtypes.in_dtype_range(
            nodata, data.dtype.name):
        raise InputError(f"nodata {nodata:g} does not fit the result's dtype {data.dtype}",
                         source)
    profile = _profile(georeferencing, data.dtype, count, nodata,
                       tiled=max(data.shape[:2]) > TILED_ABOVE)

    def write(fh: Any) -> None:
        with MemoryFile() as memory:
            with memory.open(**profile) as dataset:
                dataset.write(stack)
                _write_metadata(dataset, georeferencing, count)
            fh.write(memory.getbuffer())

    try:
        write_atomically(final, write, overwrite=overwrite)
    except rasterio.errors.RasterioError as exc:
        raise InputError(f"could not write the GeoTIFF ({_first_line(exc)})", source) from None
    return _written(georeferencing, data.dtype, count, nodata)


def _profile(georeferencing: Georeferencing, dtype: np.dtype, count: int,
             nodata: float | None, *, tiled: bool) -> dict[str, Any]:
    """rasterio's creation options for a result: DEFLATE with the dtype's predictor,
    BigTIFF when needed, :data:`TILE_SIZE`-pixel blocks when ``tiled``."""
    from affine import Affine
    from rasterio.crs import CRS

    profile: dict[str, Any] = {
        "driver": "GTiff", "width": georeferencing.shape[1],
        "height": georeferencing.shape[0], "count": count, "dtype": dtype.name,
        "transform": Affine(*georeferencing.transform),
        "crs": CRS.from_user_input(georeferencing.crs) if georeferencing.crs else None,
        "nodata": nodata, "compress": "deflate", "predictor": 3 if dtype.kind == "f" else 2,
        "BIGTIFF": "IF_SAFER",
    }
    if tiled:
        profile.update(tiled=True, blockxsize=TILE_SIZE, blockysize=TILE_SIZE)
    return profile


def _write_metadata(dataset: Any, georeferencing: Georeferencing, count: int) -> None:
    """The file's tags and, when there is one entry per band, the band metadata."""
    tags = {k: v for k, v in georeferencing.tags if k != "AREA_OR_POINT"}
    if tags:
        dataset.update_tags(**tags)
    if len(georeferencing.bands) != count:
        return
    for band in range(1, count + 1):
        if georeferencing.descriptions[band - 1]:
            dataset.set_band_description(band, georeferencing.descriptions[band - 1])
        if georeferencing.units[band - 1]:
            dataset.set_band_unit(band, georeferencing.units[band - 1])
        if georeferencing.band_tags[band - 1]:
            dataset.update_tags(band, **dict(georeferencing.band_tags[band - 1]))
    dataset.scales = georeferencing.scales
    dataset.offsets = georeferencing.offsets


def _written(georeferencing: Georeferencing, dtype: np.dtype, count: int,
             nodata: float | None) -> Georeferencing:
    """What a result written on ``georeferencing`` with ``count`` bands carries."""
    if len(georeferencing.bands) == count:
        return replace(georeferencing, dtype=dtype.name, nodata=nodata,
                       bands=tuple(range(1, count + 1)))
    return Georeferencing(georeferencing.crs, georeferencing.transform, georeferencing.shape,
                          dtype.name, nodata, tuple(range(1, count + 1)),
                          (None,) * count, (None,) * count, (1.0,) * count, (0.0,) * count,
                          georeferencing.tags, ((),) * count)


def _result_nodata(georeferencing: Georeferencing, dtype: np.dtype, source: str
                   ) -> float | None:
    """The nodata value a result of ``dtype`` is written with (NaN for floats without
    one); an InputError when ``dtype`` cannot hold it."""
    import rasterio

    nodata = georeferencing.nodata
    if nodata is None and dtype.kind == "f":
        nodata = math.nan
    if nodata is not None and not math.isnan(nodata) and not rasterio.dtypes.in_dtype_range(
            nodata, dtype.name):
        raise InputError(f"nodata {nodata:g} does not fit the result's dtype {dtype}", source)
    return nodata


# --------------------------------------------------------------------------- windows

Box = tuple[int, int, int, int]
"""A window ``(top, bottom, left, right)`` of the output grid (rows ``top..bottom-1``)."""


class GuideWindows:
    """Windows of a guide file on the output grid of :func:`prepare_geo_pair`, read one at
    a time (``read_guide=False``), for outputs too large to hold.

    Use as a context manager: ``with GuideWindows(path, pair) as guide:
    pixels, valid = guide.read(box)``. ``pixels`` ``(H', W'[, C])`` in the stored dtype,
    ``valid`` ``(H', W')`` bool (False where nodata, masked or NaN).
    """

    def __init__(self, path: str | os.PathLike[str], pair: GeoPair) -> None:
        if pair.guide_origin is None:
            raise ValueError("the guide is resampled onto the output grid; it cannot be "
                             "read window by window")
        self.source = os.fspath(path)
        self.origin = pair.guide_origin
        self.bands = pair.guide_bands
        self._stack = contextlib.ExitStack()
        self._dataset: Any = None

    def __enter__(self) -> GuideWindows:
        self._dataset = self._stack.enter_context(_open(self.source))
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()
        self._dataset = None

    def read(self, box: Box) -> tuple[np.ndarray, np.ndarray]:
        """The guide's pixels and validity in output window ``box``."""
        from rasterio.windows import Window

        top, bottom, left, right = box
        window = Window(self.origin[1] + left, self.origin[0] + top, right - left,
                        bottom - top)
        return _read(self._dataset, self.bands, window)


class TiledGeoTiff:
    """A GeoTIFF written window by window, so the whole result is never in memory.

    Tiled in :data:`TILE_SIZE`-pixel blocks, DEFLATE with the dtype's predictor, BigTIFF
    when needed, with ``georeferencing``'s CRS, transform and metadata (as
    :func:`write_geotiff`). Written to a hidden temporary file beside ``path`` and moved
    into place when the ``with`` block ends without error (removed otherwise). GDAL's
    block cache is capped at ``cache_mb`` megabytes.

    Use: ``with TiledGeoTiff(path, grid, dtype, bands) as out: out.write(box, tile)``.
    """

    def __init__(self, path: str | os.PathLike[str], georeferencing: Georeferencing,
                 dtype: np.dtype, count: int, *, overwrite: bool = False,
                 cache_mb: int = 256) -> None:
        self.source = os.fspath(path)
        self.final = Path(path)
        if self.final.suffix.lower() not in GEO_SUFFIXES:
            raise InputError("georeferenced rasters are written as GeoTIFF: use a .tif or "
                             ".tiff name", self.source)
        require_rasterio(self.source)
        self.georeferencing = georeferencing
        self.dtype = np.dtype(dtype)
        self.count = count
        self.overwrite = overwrite
        self.cache_mb = cache_mb
        self.nodata = _result_nodata(georeferencing, self.dtype, self.source)
        self._stack = contextlib.ExitStack()
        self._dataset: Any = None

    def __enter__(self) -> TiledGeoTiff:
        import rasterio

        try:
            temp = self._stack.enter_context(atomic_path(self.final, overwrite=self.overwrite))
            self._stack.enter_context(rasterio.Env(GDAL_CACHEMAX=self.cache_mb))
            profile = _profile(self.georeferencing, self.dtype, self.count, self.nodata,
                               tiled=True)
            self._dataset = rasterio.open(temp, "w", **profile)
        except BaseException:
            self._stack.close()
            raise
        return self

    def write(self, box: Box, tile: np.ndarray, invalid: np.ndarray | None = None) -> None:
        """Write ``tile`` ``(H', W'[, c])`` (this file's dtype) at output window ``box``;
        pixels where ``invalid`` ``(H', W')`` is True as nodata (kept when there is none)."""
        from rasterio.windows import Window

        top, bottom, left, right = box
        stack = _bands_first(np.asarray(tile, dtype=self.dtype))
        if stack.shape != (self.count, bottom - top, right - left):
            raise ValueError(f"tile of shape {tile.shape} does not fit window {box}")
        if invalid is not None and self.nodata is not None and invalid.any():
            stack = stack.copy()
            stack[:, invalid] = self.nodata
        self._dataset.write(stack, window=Window(left, top, right - left, bottom - top))

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        import rasterio

        try:
            if kind is None:
                _write_metadata(self._dataset, self.georeferencing, self.count)
            self._dataset.close()
        except rasterio.errors.RasterioError as exc:
            self._stack.__exit__(type(exc), exc, None)
            raise InputError(f"could not write the GeoTIFF ({_first_line(exc)})",
                             self.source) from None
        except BaseException as exc:
            self._stack.__exit__(type(exc), exc, None)
            raise
        self._stack.__exit__(kind, error, trace)

    @property
    def written(self) -> Georeferencing:
        """What the file carries (dtype and nodata as stored)."""
        return _written(self.georeferencing, self.dtype, self.count, self.nodata)
