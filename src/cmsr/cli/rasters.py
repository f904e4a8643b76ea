"""Band choice and georeferenced rasters on the command line: ``--target-band``,
``--guide-bands`` and ``--resolution``, reading a pair with them, and writing the result
with its georeferencing. ``eval``, ``batch`` and ``train`` take the two band options too
(:func:`add_pair_band_options`; they read pairs as plain images, through their protocol).

A pair of georeferenced files (GeoTIFFs with a CRS) is laid on matching grids by
:func:`cmsr.files.geotiff.prepare_geo_pair` and a ``.tif``/``.tiff`` result keeps the
guide's grid. Any other pair is read as images, as before, with the bands chosen and
(with rasterio) the nodata of TIFFs that declare one as the target's mask. Without
rasterio a GeoTIFF is read as a plain image after a one-line warning; ``--resolution``
then fails with the hint to install ``cmsr[geo]``.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cmsr.errors import InputError
from cmsr.files import write_image
from cmsr.files.geotiff import (
    GEO_HINT,
    GEO_SUFFIXES,
    GeoPair,
    files_losing_georeferencing,
    fill_invalid_guide,
    is_georeferenced,
    prepare_geo_pair,
    rasterio_available,
    read_raster,
    write_geotiff,
)
from cmsr.method.normalize import result_dtype, to_dtype


def band_number(text: str) -> int:
    """``--target-band``: one band number from 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a band number from 1, got {text!r}")
    return value


def band_numbers(text: str) -> tuple[int, ...]:
    """``--guide-bands``: ``"1,2,3"`` -> ``(1, 2, 3)``, band numbers from 1."""
    try:
        values = tuple(int(part) for part in text.split(","))
    except ValueError:
        values = ()
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(
            f"expected band numbers from 1 separated by commas, such as 4,3,2, got {text!r}")
    return values


def pixel_size(text: str) -> float:
    """``--resolution``: a positive, finite size in CRS units."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"expected a positive pixel size, got {text!r}")
    return value


def _add_band_arguments(group: argparse._ArgumentGroup, *, as_used: bool) -> None:
    """``--target-band`` and ``--guide-bands``; ``as_used``: say that they choose bands
    of the images in their roles after ``--swap`` (eval, batch, train)."""
    target_role = guide_role = ""
    if as_used:
        target_role = ("; of the image used as the target, after --swap: its ground truth "
                       "and low-resolution capture alike")
        guide_role = "; of the image used as the guide, after --swap"
    group.add_argument("--target-band", type=band_number, default=None, metavar="N",
                       help="use band N of a multi-band target (from 1, as GDAL; default: "
                            f"all bands){target_role}")
    group.add_argument("--guide-bands", type=band_numbers, default=None, metavar="LIST",
                       help="use these bands of the guide, e.g. 4,3,2 (default: all "
                            f"bands){guide_role}")


def add_pair_band_options(parser: argparse.ArgumentParser) -> None:
    """``--target-band`` and ``--guide-bands`` for ``eval``, ``batch`` and ``train``, where
    they become the protocol's ``target_band`` and ``guide_bands``
    (:class:`cmsr.evaluation.protocols.EvalProtocol`)."""
    group = parser.add_argument_group(
        "bands",
        "Bands of multi-band files, numbered from 1, of the images in their roles as\n"
        "used (after --swap). Pairs are read as plain images: a GeoTIFF's grid and nodata\n"
        "are not used here (cmsr sr matches georeferenced pairs).")
    _add_band_arguments(group, as_used=True)


def add_raster_options(parser: argparse.ArgumentParser) -> None:
    """``--target-band``, ``--guide-bands`` and ``--resolution``."""
    group = parser.add_argument_group(
        "bands and georeferenced rasters",
        "GeoTIFF pairs (with a CRS; needs pip install 'cmsr[geo]') are matched on the\n"
        "ground from their grids, and a .tif result keeps the guide's grid and CRS and\n"
        "the target's nodata, units and dtype; nodata is the invalid mask.")
    _add_band_arguments(group, as_used=False)
    group.add_argument("--resolution", type=pixel_size, default=None, metavar="SIZE",
                       help="output pixel size in the guide CRS's units, for georeferenced "
                            "inputs (default: the guide's pixel size)")
    group.add_argument("--stream-above", type=int, default=None, metavar="PIXELS",
                       help="GeoTIFF outputs of more output pixels than this are computed "
                            "and written tile by tile, training on the central part "
                            "(default: 4096*4096 = 16777216)")
    group.add_argument("--stream-tile", type=int, default=None, metavar="N",
                       help="side of those tiles in output pixels (default: 1024)")


@dataclass(frozen=True)
class LoadedPair:
    """What ``cmsr sr`` trains on.

    ``target`` ``(h, w[, c])`` and ``guide`` ``(H, W[, C])``; ``mask`` ``(h, w)`` bool,
    True for valid target pixels (None: decided by NaN and ``--invalid`` alone); ``geo``
    the matched grids of a georeferenced pair (then ``target`` is float64 with NaN where
    invalid, and the result takes the target's stored dtype).
    """

    target: np.ndarray
    guide: np.ndarray
    mask: np.ndarray | None
    geo: GeoPair | None

    def result_layout(self) -> tuple[np.dtype, int]:
        """The result's dtype and band count, for :func:`cmsr.cli.outputs.check_output` (the
        target's dtype as :meth:`cmsr.CMSR.predict` gives it)."""
        bands = 1 if self.target.ndim == 2 else self.target.shape[2]
        dtype = self.target.dtype if self.geo is None else np.dtype(self.geo.output.dtype)
        return result_dtype(dtype), bands

    def finish(self, result: np.ndarray) -> np.ndarray:
        """The fitted model's result in the dtype it is written in (the target's stored
        dtype for a georeferenced pair, already so otherwise)."""
        return result if self.geo is None else to_dtype(result, np.dtype(self.geo.output.dtype))


def streaming_pair(args: argparse.Namespace, stream_above: int) -> GeoPair | None:
    """The GeoTIFF pair, its guide unread, when its ``.tif`` result is to be computed and
    written tile by tile (more than ``stream_above`` output pixels, guide on the output
    grid); None otherwise (then :func:`read_pair` reads it whole). Prints the notes."""
    if (args.output.suffix.lower() not in GEO_SUFFIXES or not rasterio_available()
            or not (is_georeferenced(args.target) and is_georeferenced(args.guide))):
        return None
    target_bands = (args.target_band,) if args.target_band is not None else None
    pair = prepare_geo_pair(args.target, args.guide, target_bands=target_bands,
                            guide_bands=args.guide_bands, scale=args.scale,
                            resolution=args.resolution, invalid_value=args.invalid,
                            read_guide=False)
    height, width = pair.output.shape
    if height * width <= stream_above or pair.guide_origin is None:
        return None
    if not args.quiet:
        for note in pair.notes:
            print(f"cmsr: {note}", file=sys.stderr)
    return pair


def read_pair(args: argparse.Namespace) -> LoadedPair:
    """Read ``--target`` and ``--guide`` with the band and grid options; print what was
    done to them (unless ``--quiet``) and the warning when rasterio is missing."""
    target_bands = (args.target_band,) if args.target_band is not None else None
    files = (args.target, args.guide)
    plain = [path for path in files if not is_georeferenced(path)]
    if args.resolution is not None and plain:
        raise InputError(f"needs a georeferenced target and guide (GeoTIFFs with a CRS); "
                         f"{plain[0]} has no georeferencing", source="--resolution")
    lost = files_losing_georeferencing(files)
    if lost and args.resolution is not None:
        raise InputError(f"needs rasterio to read the grid of {lost[0]}; {GEO_HINT}",
                         source="--resolution")
    if lost:
        print(f"cmsr: warning: {', '.join(lost)}: read as a plain image, so the "
              f"georeferencing and nodata are lost; {GEO_HINT}", file=sys.stderr)
    if not plain and rasterio_available():
        pair = prepare_geo_pair(args.target, args.guide, target_bands=target_bands,
                                guide_bands=args.guide_bands, scale=args.scale,
                                resolution=args.resolution, invalid_value=args.invalid)
        notes = list(pair.notes)
        if args.output.suffix.lower() not in GEO_SUFFIXES:
            notes.append(f"{args.output}: written without georeferencing (only .tif and "
                         ".tiff keep it)")
        if not args.quiet:
            for note in notes:
                print(f"cmsr: {note}", file=sys.stderr)
        assert pair.guide is not None  # read_guide=True
        return LoadedPair(pair.target, pair.guide, None, pair)
    target, target_valid, _ = read_raster(args.target, target_bands)
    guide, guide_valid, _ = read_raster(args.guide, args.guide_bands)
    if guide_valid is not None:
        guide = fill_invalid_guide(guide, guide_valid, str(args.guide))
    if len(plain) == 1 and not lost and not args.quiet:
        print(f"cmsr: {plain[0]} has no georeferencing: the pair is matched by image size "
              "and the result has none", file=sys.stderr)
    return LoadedPair(target, guide, target_valid, None)


def write_result(path: Path, result: np.ndarray, pair: LoadedPair, *, overwrite: bool
                 ) -> str:
    """Write ``result`` (georeferenced for a GeoTIFF pair and a ``.tif`` name); return how
    the success line describes where it lies (empty for plain images)."""
    if pair.geo is None or path.suffix.lower() not in GEO_SUFFIXES:
        write_image(path, result, overwrite=overwrite)
        return ""
    written = write_geotiff(path, result, pair.geo.output, invalid=pair.geo.invalid,
                            overwrite=overwrite)
    nodata = "" if written.nodata is None else f", nodata {written.nodata:g}"
    return f" on {written.describe()}{nodata}"
