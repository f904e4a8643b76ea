"""Every scene of the shared ``geo`` data through ``cmsr sr``, GeoTIFF in and GeoTIFF out.

Issue 12's georeferencing target: on every ``geo`` scene (the cross-CRS SRTM case
included) the written result carries the guide's CRS and transform over the overlap and
the target's nodata and dtype. Scenes whose target already lies on the guide's grid
(Landsat 5, the vineyard) get a coarse target made here by 4x4 block means on a grid 4
times coarser, as the Wald protocol does. Training is cut to 2 steps: this checks the
files, not the quality (``benchmarks/geo_sharpening.py`` does that). Skipped where the
data or rasterio is missing.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

rasterio = pytest.importorskip("rasterio")
from affine import Affine  # noqa: E402

from cmsr.cli import main  # noqa: E402
from cmsr.files.geotiff import prepare_geo_pair  # noqa: E402

GEO = Path(os.environ.get("CMSR_DATA", "/work/shared/data")) / "geo"

#: (name, folder, target file, guide file, extra cmsr sr options); a target on the
#: guide's own grid is coarsened first (see the module docstring)
SCENES = [
    ("desirex", "desirex/madrid", "target_lst_100m.tif", "guide_ndbi_20m.tif", ()),
    ("landsat8", "landsat8_decimated/l1_p016r037_20170813", "target_b10_thermal.tif",
     "guide_b8_pan.tif", ()),
    ("srtm-osgb", "srtm_s2/aberystwyth", "target_srtm_30m_osgb.tif",
     "guide_s2_b2_b3_b4_b8_10m.tif", ("--guide-bands", "3,2,1")),
    ("srtm-epsg4326", "srtm_s2/aberystwyth", "target_srtm_native_epsg4326.tif",
     "guide_s2_b2_b3_b4_b8_10m.tif", ("--guide-bands", "3,2,1")),
    ("landsat5", "landsat5_tm/p224r063_19880814", "target_tm_b6_thermal.tif",
     "guide_tm_b4.tif", ()),
    ("vineyard", "pytseb/vineyard", "target_trad_am.tif", "guide_lai.tif", ()),
]


def coarsen_by_block_means(source: Path, destination: Path, factor: int = 4) -> None:
    """Write ``source``'s first band as ``factor`` x ``factor`` block means on a grid
    ``factor`` times coarser (same CRS and origin, nodata blocks stay nodata)."""
    with rasterio.open(source) as src:
        values = src.read(1).astype(np.float64)
        profile = src.profile
        nodata = src.nodata
    invalid = ~np.isfinite(values) if nodata is None or np.isnan(nodata) else values == nodata
    values[invalid] = np.nan
    h, w = (values.shape[0] // factor) * factor, (values.shape[1] // factor) * factor
    blocks = values[:h, :w].reshape(h // factor, factor, w // factor, factor)
    means = blocks.mean(axis=(1, 3))
    fill = np.nan if nodata is None else nodata
    out = np.where(np.isfinite(means), means, fill).astype(np.float32)
    profile.update(height=out.shape[0], width=out.shape[1], count=1, dtype="float32",
                   transform=profile["transform"] @ Affine.scale(factor), nodata=fill,
                   tiled=False)
    profile.pop("blockxsize", None)
    profile.pop("blockysize", None)
    with rasterio.open(destination, "w", **profile) as dst:
        dst.write(out, 1)


@pytest.mark.parametrize("name, folder, target_name, guide_name, options", SCENES,
                         ids=[scene[0] for scene in SCENES])
def test_every_geo_scene_gives_a_geotiff_on_the_guide_grid(tmp_path, name, folder,
                                                           target_name, guide_name,
                                                           options):
    scene = GEO / folder
    if not (scene / target_name).exists():
        pytest.skip(f"{scene / target_name} is not available")
    target, guide = scene / target_name, scene / guide_name
    with rasterio.open(target) as t, rasterio.open(guide) as g:
        same_grid = t.transform.almost_equals(g.transform, precision=1e-6) and t.crs == g.crs
    if same_grid:
        coarse = tmp_path / f"{name}_coarse.tif"
        coarsen_by_block_means(target, coarse)
        target = coarse
    guide_bands = tuple(int(b) for b in options[1].split(",")) if options else None
    pair = prepare_geo_pair(target, guide, guide_bands=guide_bands, read_guide=False)
    output = tmp_path / f"{name}_sr.tif"
    code = main(["sr", "--target", str(target), "--guide", str(guide), "-o", str(output),
                 "--preset", "quick", "--iters", "2", "--no-ensemble", "--quiet",
                 *options])
    assert code == 0
    with rasterio.open(output) as out, rasterio.open(guide) as g, \
            rasterio.open(target) as t:
        assert out.crs == g.crs
        assert (out.height, out.width) == pair.output.shape
        assert out.transform.a == pytest.approx(g.transform.a)
        assert out.transform.e == pytest.approx(g.transform.e)
        # the output grid is the guide's: its origin lies on a guide pixel corner
        col, row = ~g.transform @ (out.transform.c, out.transform.f)
        assert col == pytest.approx(round(col), abs=1e-6)
        assert row == pytest.approx(round(row), abs=1e-6)
        assert tuple(out.transform)[:6] == pytest.approx(tuple(pair.output.transform))
        assert out.dtypes[0] == t.dtypes[0]
        if t.nodata is None:
            assert out.nodata is None or np.isnan(out.nodata)
        elif np.isnan(t.nodata):
            assert out.nodata is not None and np.isnan(out.nodata)
        else:
            assert out.nodata == t.nodata
        result = out.read(1, masked=True)
    assert result.count() > 0.5 * result.size  # mostly valid pixels
    assert np.isfinite(result.compressed()).all()
