"""GeoTIFFs in and out (cmsr.files.geotiff, cmsr sr on georeferenced pairs).

Synthetic rasters are made here with rasterio, tiny (targets of 8x8, guides of 32x32);
the real ones are read from the shared data folder and skipped when it is absent.
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

import numpy as np
import pytest

rasterio = pytest.importorskip("rasterio")
from affine import Affine  # noqa: E402
from rasterio.warp import transform as transform_points  # noqa: E402

import cmsr  # noqa: E402
from cmsr.cli import main  # noqa: E402
from cmsr.errors import InputError  # noqa: E402
from cmsr.files import write_image  # noqa: E402
from cmsr.files.geotiff import (  # noqa: E402
    GEO_HINT,
    Georeferencing,
    declares_nodata,
    fill_invalid_guide,
    is_georeferenced,
    prepare_geo_pair,
    rasterio_available,
    read_geotiff,
    read_raster,
    write_geotiff,
)

GEO = Path(os.environ.get("CMSR_DATA", "/work/shared/data")) / "geo"
QUICK = ["--preset", "quick", "--iters", "4", "--align", "none", "--quiet"]
LEFT, TOP = 440000.0, 4500000.0  # a corner in UTM zone 30N (EPSG:32630)
UTM = "EPSG:32630"


def _write(path: Path, data: np.ndarray, *, left: float = LEFT, top: float = TOP,
           pixel: float | tuple[float, float] = 10.0, crs: str | None = UTM,
           nodata: float | None = None, descriptions=None, units=None, scales=None,
           offsets=None, tags=None) -> Path:
    """A GeoTIFF of ``data`` ``(H, W)`` or ``(C, H, W)`` with its corner at (left, top)."""
    stack = data[None] if data.ndim == 2 else data
    px, py = (pixel, pixel) if isinstance(pixel, float) else pixel
    with rasterio.open(path, "w", driver="GTiff", width=stack.shape[2], height=stack.shape[1],
                       count=stack.shape[0], dtype=stack.dtype.name, crs=crs,
                       transform=Affine(px, 0.0, left, 0.0, -py, top), nodata=nodata) as dataset:
        dataset.write(stack)
        for band, text in enumerate(descriptions or [], start=1):
            dataset.set_band_description(band, text)
        for band, unit in enumerate(units or [], start=1):
            dataset.set_band_unit(band, unit)
        if scales:
            dataset.scales = scales
        if offsets:
            dataset.offsets = offsets
        if tags:
            dataset.update_tags(**tags)
    return path


def _ramp(shape: tuple[int, int], left: float, top: float, pixel: float) -> np.ndarray:
    """A linear field of the ground coordinates, sampled at pixel centres (float32)."""
    rows, cols = np.mgrid[0:shape[0], 0:shape[1]]
    x = left + (cols + 0.5) * pixel
    y = top - (rows + 0.5) * pixel
    return (0.01 * (x - LEFT) - 0.02 * (y - TOP) + 280.0).astype(np.float32)


def _guide(shape=(32, 32), bands=3, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.random((bands, *shape)) * 200 + 20).astype(np.uint8)


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("cmsr: error:")
    return err[0]


def _profile(path: Path) -> dict:
    with rasterio.open(path) as dataset:
        return {"crs": dataset.crs, "transform": dataset.transform, "nodata": dataset.nodata,
                "dtype": dataset.dtypes[0], "shape": (dataset.height, dataset.width),
                "count": dataset.count, "descriptions": dataset.descriptions,
                "units": dataset.units, "scales": dataset.scales, "offsets": dataset.offsets,
                "tags": dataset.tags(), "compression": dataset.compression,
                "tiled": dataset.profile.get("tiled"), "blocks": dataset.block_shapes,
                "values": dataset.read()}


# --------------------------------------------------------------------------- reading


def test_read_geotiff_keeps_crs_transform_nodata_and_band_metadata(tmp_path):
    data = np.arange(3 * 8 * 8, dtype=np.int16).reshape(3, 8, 8)
    data[1, 2, 3] = -999
    path = _write(tmp_path / "t.tif", data, pixel=40.0, nodata=-999,
                  descriptions=["a", "b", "c"], units=["K", "K", "m"],
                  scales=[0.1, 0.2, 0.3], offsets=[1.0, 2.0, 3.0], tags={"SENSOR": "x"})
    pixels, valid, info = read_geotiff(path, bands=(2, 3))
    assert pixels.shape == (8, 8, 2) and pixels.dtype == np.int16
    assert (pixels[..., 0] == data[1]).all() and (pixels[..., 1] == data[2]).all()
    assert not valid[2, 3] and valid.sum() == 63
    assert info.crs == UTM and info.transform == (40.0, 0.0, LEFT, 0.0, -40.0, TOP)
    assert info.nodata == -999 and info.bands == (2, 3) and info.dtype == "int16"
    assert info.descriptions == ("b", "c") and info.units == ("K", "m")
    assert info.scales == (0.2, 0.3) and info.offsets == (2.0, 3.0)
    assert ("SENSOR", "x") in info.tags
    assert info.bounds == (LEFT, TOP - 320.0, LEFT + 320.0, TOP)


def test_plain_tiff_is_read_by_tifffile_without_georeferencing(tmp_path):
    plain = write_image(tmp_path / "plain.tif", np.ones((8, 8), np.float32))
    geo = _write(tmp_path / "geo.tif", np.ones((8, 8), np.float32))
    assert not is_georeferenced(plain) and not declares_nodata(plain)
    assert is_georeferenced(geo)
    assert not is_georeferenced(write_image(tmp_path / "p.png", np.ones((8, 8), np.uint8)))
    image, valid, info = read_raster(plain)
    assert image.shape == (8, 8) and valid is None and info is None
    _, valid, info = read_raster(geo)
    assert valid is not None and info is not None and info.crs == UTM


def test_nodata_without_crs_still_becomes_a_mask(tmp_path):
    data = np.full((8, 8), 5.0, np.float32)
    data[0, 0] = -1
    path = _write(tmp_path / "t.tif", data, crs=None, nodata=-1)
    assert declares_nodata(path)
    _, valid, info = read_raster(path)
    assert valid is not None and not valid[0, 0] and valid.sum() == 63
    assert info is not None and info.crs is None


def test_fill_invalid_guide_uses_band_means():
    guide = np.stack([np.full((4, 4), 10, np.uint8), np.full((4, 4), 30, np.uint8)], -1)
    guide[0, 0] = 0
    valid = np.ones((4, 4), bool)
    valid[0, 0] = False
    filled = fill_invalid_guide(guide, valid, "g.tif")
    assert filled[0, 0].tolist() == [10, 30] and filled.dtype == np.uint8
    with pytest.raises(InputError, match=r"g\.tif: has no valid pixels"):
        fill_invalid_guide(guide, np.zeros((4, 4), bool), "g.tif")


# --------------------------------------------------------------------------- two grids


def test_exactly_nested_grids_keep_the_target_as_it_is(tmp_path):
    target = _ramp((8, 8), LEFT, TOP, 40.0)
    t = _write(tmp_path / "t.tif", target, pixel=40.0)
    g = _write(tmp_path / "g.tif", _guide())
    pair = prepare_geo_pair(t, g)
    assert pair.scale == (4.0, 4.0)
    assert np.array_equal(pair.target, target.astype(np.float64))
    assert pair.output.transform == (10.0, 0.0, LEFT, 0.0, -10.0, TOP)
    assert pair.output.shape == (32, 32) and pair.output.crs == UTM
    assert pair.coarse.bounds == pair.output.bounds
    assert pair.output.dtype == "float32"
    assert not pair.invalid.any()
    assert not any("resampled" in note for note in pair.notes)
    assert any("scale x4 from the pixel sizes" in note for note in pair.notes)


def test_guide_larger_than_target_is_cropped_to_the_overlap(tmp_path):
    target = _ramp((8, 8), LEFT, TOP, 40.0)
    t = _write(tmp_path / "t.tif", target, pixel=40.0)
    guide = _guide((48, 44))
    g = _write(tmp_path / "g.tif", guide, left=LEFT - 60.0, top=TOP + 30.0)  # 6 and 3 px out
    pair = prepare_geo_pair(t, g)
    assert pair.output.shape == (32, 32)
    assert pair.output.transform == (10.0, 0.0, LEFT, 0.0, -10.0, TOP)
    assert np.array_equal(pair.guide, np.moveaxis(guide, 0, -1)[3:35, 6:38])
    assert np.array_equal(pair.target, target.astype(np.float64))


def test_target_larger_than_guide_is_cropped_to_the_overlap(tmp_path):
    target = _ramp((14, 12), LEFT - 80.0, TOP + 120.0, 40.0)  # 2 and 3 target px out
    t = _write(tmp_path / "t.tif", target, left=LEFT - 80.0, top=TOP + 120.0, pixel=40.0)
    g = _write(tmp_path / "g.tif", _guide())
    pair = prepare_geo_pair(t, g)
    assert pair.output.shape == (32, 32)
    assert pair.output.transform == (10.0, 0.0, LEFT, 0.0, -10.0, TOP)
    assert np.array_equal(pair.target, target[3:11, 2:10].astype(np.float64))
    assert pair.target.shape == (8, 8)


def test_sub_pixel_origin_offset_resamples_the_target_onto_the_guide_grid(tmp_path):
    target = _ramp((8, 8), LEFT, TOP, 40.0)
    t = _write(tmp_path / "t.tif", target, pixel=40.0)
    g_left, g_top = LEFT + 2.5, TOP - 5.0  # a quarter and a half guide pixel
    g = _write(tmp_path / "g.tif", _guide(), left=g_left, top=g_top)
    pair = prepare_geo_pair(t, g)
    assert any("resampled (bilinear)" in note for note in pair.notes)
    a, _, c, _, e, f = pair.output.transform
    assert (a, e) == (10.0, -10.0)
    assert math.isclose(c, g_left) and math.isclose(f, g_top)  # on the guide's grid
    assert pair.scale == (4.0, 4.0)  # cut to whole 40 m pixels: 28x28 of the guide's 32x32
    assert pair.output.shape == (28, 28) and pair.target.shape == (7, 7)
    assert pair.coarse.pixel_size == (40.0, 40.0)
    # a linear field is resampled exactly away from the edges
    expected = _ramp((7, 7), g_left, g_top, 40.0)
    assert np.allclose(pair.target[1:-1, 1:-1], expected[1:-1, 1:-1], atol=1e-3)


def test_non_integer_ratio(tmp_path):
    target = _ramp((8, 8), LEFT, TOP, 25.0)
    t = _write(tmp_path / "t.tif", target, pixel=25.0)
    g = _write(tmp_path / "g.tif", _guide((21, 21)))  # 210 m: cut to 20 px = 8 target px
    pair = prepare_geo_pair(t, g)
    assert pair.scale == (2.5, 2.5)
    assert pair.output.shape == (20, 20) and pair.target.shape == (8, 8)
    assert pair.coarse.pixel_size == (25.0, 25.0)
    assert np.allclose(pair.target, target, atol=1e-4)  # the same grid: values unchanged


def test_another_crs_is_reprojected_onto_a_grid_aligned_with_the_guide(tmp_path):
    lon0, lat0, step = -3.45, 40.61, 0.0005
    rows = np.mgrid[0:8, 0:8][0]
    lat = lat0 - (rows + 0.5) * step
    target = ((lat - 40.6) * 10000).astype(np.float32)  # metres north of 40.6 N, roughly
    t = _write(tmp_path / "t.tif", target, left=lon0, top=lat0, pixel=step, crs="EPSG:4326")
    (cx,), (cy,) = transform_points("EPSG:4326", UTM, [lon0 + 4 * step], [lat0 - 4 * step])
    g_left, g_top = round(cx - 160.0), round(cy + 160.0)
    g = _write(tmp_path / "g.tif", _guide(), left=g_left, top=g_top)
    pair = prepare_geo_pair(t, g)
    assert any("reprojected from EPSG:4326 to EPSG:32630" in note for note in pair.notes)
    assert pair.output.crs == UTM
    assert pair.output.transform == (10.0, 0.0, g_left, 0.0, -10.0, g_top)
    assert pair.output.shape == (32, 32)  # the guide lies inside the target
    assert not pair.invalid.any() and np.isfinite(pair.target).all()
    px, py = pair.coarse.pixel_size  # 0.0005 deg: about 42 m east, 55 m north
    assert 38.0 < px < 46.0 and 50.0 < py < 60.0
    assert pair.scale == (32 / pair.target.shape[0], 32 / pair.target.shape[1])
    # the coarse values are the field at the coarse pixel centres, found through 4326
    (h, w), (a, _, c, _, e, f) = pair.coarse.shape, pair.coarse.transform
    centres_y = f + e * (np.arange(h) + 0.5)
    _, lats = transform_points(UTM, "EPSG:4326", [c + a * (w / 2)] * h, list(centres_y))
    column = pair.target[:, w // 2]
    assert np.allclose(column[1:-1], (np.array(lats)[1:-1] - 40.6) * 10000, atol=0.5)


def test_grids_that_do_not_overlap_are_refused(tmp_path):
    t = _write(tmp_path / "t.tif", _ramp((8, 8), LEFT, TOP, 40.0), pixel=40.0)
    g = _write(tmp_path / "g.tif", _guide(), left=LEFT + 5000.0)
    with pytest.raises(InputError, match=r"g\.tif: does not overlap the target"):
        prepare_geo_pair(t, g)


def test_nodata_becomes_the_mask_and_nodata_in_the_output(tmp_path):
    target = _ramp((8, 8), LEFT, TOP, 40.0)
    target[2, 5] = -9999
    t = _write(tmp_path / "t.tif", target, pixel=40.0, nodata=-9999)
    guide = _guide(bands=1)
    guide[0, 30, 1] = 0
    g = _write(tmp_path / "g.tif", guide, nodata=0)
    pair = prepare_geo_pair(t, g)
    assert np.isnan(pair.target[2, 5]) and np.isfinite(pair.target).sum() == 63
    assert pair.invalid[8:12, 20:24].all() and pair.invalid[30, 1]
    assert pair.invalid.sum() == 16 + 1
    assert pair.guide[30, 1] != 0  # filled with the band's mean
    assert pair.output.nodata == -9999
    result = np.full((32, 32), 300.0, np.float32)
    written = write_geotiff(tmp_path / "o.tif", result, pair.output, invalid=pair.invalid)
    values = _profile(tmp_path / "o.tif")["values"][0]
    assert written.nodata == -9999 and (values[pair.invalid] == -9999).all()
    assert (values[~pair.invalid] == 300.0).all()


def test_nan_nodata_and_nan_pixels_are_invalid(tmp_path):
    target = _ramp((8, 8), LEFT, TOP, 40.0)
    target[0, 0] = np.nan
    t = _write(tmp_path / "t.tif", target, pixel=40.0, nodata=np.nan)
    pair = prepare_geo_pair(t, _write(tmp_path / "g.tif", _guide()))
    assert np.isnan(pair.target[0, 0]) and np.isfinite(pair.target).sum() == 63
    assert pair.output.nodata is not None and math.isnan(pair.output.nodata)
    assert pair.invalid[:4, :4].all() and pair.invalid.sum() == 16
    # a float target without any nodata gets NaN where the output is invalid
    no_tag = _write(tmp_path / "t2.tif", target, pixel=40.0)
    pair = prepare_geo_pair(no_tag, tmp_path / "g.tif")
    assert pair.output.nodata is None and pair.invalid.sum() == 16
    written = write_geotiff(tmp_path / "o.tif", np.ones((32, 32), np.float32), pair.output,
                            invalid=pair.invalid)
    assert written.nodata is not None and math.isnan(written.nodata)
    assert np.isnan(_profile(tmp_path / "o.tif")["values"][0, :4, :4]).all()


def test_invalid_value_is_left_out_before_resampling(tmp_path):
    target = _ramp((8, 8), LEFT, TOP, 40.0)
    target[4, 4] = 0.0
    t = _write(tmp_path / "t.tif", target, pixel=40.0)
    g = _write(tmp_path / "g.tif", _guide(), left=LEFT + 2.5)
    pair = prepare_geo_pair(t, g, invalid_value=0.0)
    finite = pair.target[np.isfinite(pair.target)]
    assert finite.min() > 250  # no 0 blended into its neighbours
    assert pair.output.nodata == 0.0


def test_band_choice(tmp_path):
    target = np.stack([_ramp((8, 8), LEFT, TOP, 40.0) + k for k in range(3)])
    t = _write(tmp_path / "t.tif", target, pixel=40.0, descriptions=["a", "b", "c"])
    guide = _guide(bands=4)
    g = _write(tmp_path / "g.tif", guide)
    pair = prepare_geo_pair(t, g, target_bands=(2,), guide_bands=(3, 1))
    assert pair.target.shape == (8, 8) and np.array_equal(pair.target, target[1])
    assert pair.guide.shape == (32, 32, 2)
    assert np.array_equal(pair.guide[..., 0], guide[2])
    assert np.array_equal(pair.guide[..., 1], guide[0])
    assert pair.output.descriptions == ("b",) and pair.output.bands == (2,)
    with pytest.raises(InputError, match=r"t\.tif: has no band 4 \(it has 3 bands"):
        prepare_geo_pair(t, g, target_bands=(4,))
    with pytest.raises(InputError, match=r"g\.tif: has no band 5 \(it has 4 bands"):
        prepare_geo_pair(t, g, guide_bands=(1, 5))


def test_resolution_sets_the_output_pixel_size(tmp_path):
    target = _ramp((8, 8), LEFT, TOP, 40.0)
    t = _write(tmp_path / "t.tif", target, pixel=40.0)
    guide = _guide(bands=1)
    g = _write(tmp_path / "g.tif", guide)
    pair = prepare_geo_pair(t, g, resolution=20.0)
    assert pair.output.transform == (20.0, 0.0, LEFT, 0.0, -20.0, TOP)
    assert pair.output.shape == (16, 16) and pair.scale == (2.0, 2.0)
    assert np.array_equal(pair.target, target.astype(np.float64))  # nested: unchanged
    blocks = guide[0].astype(np.float64).reshape(16, 2, 16, 2).mean(axis=(1, 3))
    assert np.allclose(pair.guide, blocks)  # averaged onto 20 m
    with pytest.raises(InputError, match="resolution: must be a positive"):
        prepare_geo_pair(t, g, resolution=-1.0)


def test_a_scale_that_contradicts_the_grids_is_refused(tmp_path):
    t = _write(tmp_path / "t.tif", _ramp((8, 8), LEFT, TOP, 40.0), pixel=40.0)
    g = _write(tmp_path / "g.tif", _guide())
    assert prepare_geo_pair(t, g, scale=4.0).scale == (4.0, 4.0)
    with pytest.raises(InputError, match="scale 3 contradicts the grids"):
        prepare_geo_pair(t, g, scale=3.0)


def test_rotated_grids_and_missing_crs_are_refused(tmp_path):
    t = _write(tmp_path / "t.tif", _ramp((8, 8), LEFT, TOP, 40.0), pixel=40.0, crs=None)
    g = _write(tmp_path / "g.tif", _guide())
    with pytest.raises(InputError, match=r"t\.tif: has no coordinate reference system"):
        prepare_geo_pair(t, g)


# --------------------------------------------------------------------------- writing


def test_write_keeps_georeferencing_dtype_units_and_compresses(tmp_path):
    info = Georeferencing(UTM, (10.0, 0.0, LEFT, 0.0, -10.0, TOP), (32, 32), "uint16",
                          nodata=0.0, descriptions=("LST",), units=("K",), scales=(0.01,),
                          offsets=(200.0,), tags=(("AREA_OR_POINT", "Point"), ("SRC", "x")),
                          band_tags=((("WAVELENGTH", "10.9"),),))
    image = np.arange(32 * 32, dtype=np.uint16).reshape(32, 32) + 1
    invalid = np.zeros((32, 32), bool)
    invalid[0, :3] = True
    written = write_geotiff(tmp_path / "o.tif", image, info, invalid=invalid)
    p = _profile(tmp_path / "o.tif")
    assert p["crs"].to_string() == UTM and tuple(p["transform"])[:6] == info.transform
    assert p["dtype"] == "uint16" and p["nodata"] == 0.0 and written.nodata == 0.0
    assert p["descriptions"] == ("LST",) and p["units"] == ("K",)
    assert p["scales"] == (0.01,) and p["offsets"] == (200.0,)
    assert p["tags"]["SRC"] == "x" and p["tags"].get("AREA_OR_POINT") == "Area"
    with rasterio.open(tmp_path / "o.tif") as dataset:
        assert dataset.tags(1)["WAVELENGTH"] == "10.9"
    assert p["compression"].name.lower() == "deflate" and not p["tiled"]
    assert (p["values"][0, 0, :3] == 0).all() and (p["values"][0, 1:] == image[1:]).all()
    with pytest.raises(InputError, match="already exists; pass --overwrite"):
        write_geotiff(tmp_path / "o.tif", image, info)
    write_geotiff(tmp_path / "o.tif", image * 0 + 7, info, overwrite=True)
    assert (_profile(tmp_path / "o.tif")["values"] == 7).all()
    assert not list(tmp_path.glob(".*.part"))


def test_large_outputs_are_tiled(tmp_path):
    info = Georeferencing(UTM, (10.0, 0.0, LEFT, 0.0, -10.0, TOP), (16, 1100), "float32")
    write_geotiff(tmp_path / "wide.tif", np.zeros((16, 1100), np.float32), info)
    p = _profile(tmp_path / "wide.tif")
    assert p["tiled"] and p["blocks"] == [(512, 512)]
    with pytest.raises(InputError, match=r"o\.png: georeferenced rasters are written as"):
        write_geotiff(tmp_path / "o.png", np.zeros((16, 1100), np.float32), info)


# --------------------------------------------------------------------------- without rasterio


@pytest.fixture
def no_rasterio(monkeypatch):
    """Make ``import rasterio`` fail, as where cmsr[geo] is not installed."""
    for name in [n for n in sys.modules if n == "rasterio" or n.startswith("rasterio.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "rasterio", None)
    assert not rasterio_available()


def test_missing_rasterio_gives_the_install_hint(tmp_path, no_rasterio):
    t = tmp_path / "t.tif"
    t.write_bytes(b"")
    with pytest.raises(InputError, match=r"t\.tif: .*install cmsr\[geo\] to keep"):
        read_geotiff(t)
    with pytest.raises(InputError, match=r"install cmsr\[geo\] to keep georeferencing"):
        prepare_geo_pair(t, t)


def test_cli_without_rasterio_warns_once_and_reads_plain_images(tmp_path, capsys,
                                                                monkeypatch):
    t = _write(tmp_path / "t.tif", _ramp((8, 8), LEFT, TOP, 40.0), pixel=40.0)
    g = _write(tmp_path / "g.tif", _guide())
    for name in [n for n in sys.modules if n == "rasterio" or n.startswith("rasterio.")]:
        monkeypatch.setitem(sys.modules, name, None)
    code = main(["sr", "--target", str(t), "--guide", str(g), "-o", str(tmp_path / "o.tif"),
                 *QUICK])
    err = capsys.readouterr().err.splitlines()
    assert code == 0
    warnings = [line for line in err if "warning" in line]
    assert len(warnings) == 1 and GEO_HINT in warnings[0] and "t.tif" in warnings[0]
    assert not is_georeferenced(tmp_path / "o.tif")
    code = main(["sr", "--target", str(t), "--guide", str(g), "-o", str(tmp_path / "p.tif"),
                 "--resolution", "20", *QUICK])
    assert code == 2
    line = _error_line(capsys)
    assert "--resolution" in line and GEO_HINT in line


# --------------------------------------------------------------------------- command line


def test_cli_geotiff_pair_end_to_end_keeps_the_guide_grid(tmp_path, capsys):
    target = _ramp((8, 8), LEFT, TOP, 40.0)
    target[7, 7] = -9999
    t = _write(tmp_path / "t.tif", target, pixel=40.0, nodata=-9999, descriptions=["LST"],
               units=["K"], tags={"SENSOR": "test"})
    guide = _guide((36, 36))
    g = _write(tmp_path / "g.tif", guide, left=LEFT - 20.0, top=TOP + 20.0)  # 2 px larger
    out = tmp_path / "out.tif"
    assert main(["sr", "--target", str(t), "--guide", str(g), "-o", str(out), "--preset",
                 "quick", "--iters", "4", "--align", "none"]) == 0
    err = capsys.readouterr().err
    assert "scale x4 from the pixel sizes" in err and "on EPSG:32630" in err
    p = _profile(out)
    assert p["crs"].to_string() == UTM
    assert tuple(p["transform"])[:6] == (10.0, 0.0, LEFT, 0.0, -10.0, TOP)
    assert p["shape"] == (32, 32) and p["dtype"] == "float32" and p["nodata"] == -9999
    assert p["descriptions"] == ("LST",) and p["units"] == ("K",)
    assert p["tags"]["SENSOR"] == "test"
    values = p["values"][0]
    assert (values[28:, 28:] == -9999).all() and (values[:28] > 200).all()


def test_cli_resolution_and_bands(tmp_path, capsys):
    target = np.stack([_ramp((8, 8), LEFT, TOP, 40.0), _ramp((8, 8), LEFT, TOP, 40.0) * 2])
    t = _write(tmp_path / "t.tif", target, pixel=40.0)
    g = _write(tmp_path / "g.tif", _guide(bands=4))
    out = tmp_path / "out.tif"
    assert main(["sr", "--target", str(t), "--guide", str(g), "-o", str(out),
                 "--target-band", "2", "--guide-bands", "3,2,1", "--resolution", "20",
                 *QUICK]) == 0
    p = _profile(out)
    assert tuple(p["transform"])[:6] == (20.0, 0.0, LEFT, 0.0, -20.0, TOP)
    assert p["shape"] == (16, 16) and p["count"] == 1
    assert p["values"].min() > 500  # band 2 (twice band 1's ~280 K)


def test_cli_geotiff_result_written_as_png_or_npy_says_it_has_no_georeferencing(tmp_path,
                                                                               capsys):
    t = _write(tmp_path / "t.tif", (_ramp((8, 8), LEFT, TOP, 40.0)).astype(np.float32),
               pixel=40.0)
    g = _write(tmp_path / "g.tif", _guide())
    assert main(["sr", "--target", str(t), "--guide", str(g), "-o", str(tmp_path / "o.npy"),
                 "--preset", "quick", "--iters", "4", "--align", "none"]) == 0
    assert "o.npy: written without georeferencing" in capsys.readouterr().err
    assert np.load(tmp_path / "o.npy").shape == (32, 32)


@pytest.mark.parametrize(("option", "value", "needle"), [
    ("--target-band", "2", "t.tif: has no band 2 (it has 1 band, numbered from 1)"),
    ("--guide-bands", "1,7", "g.tif: has no band 7 (it has 3 bands, numbered from 1)"),
    ("--scale", "3", "scale 3 contradicts the grids"),
])
def test_cli_bad_band_or_scale_is_one_line(tmp_path, capsys, option, value, needle):
    t = _write(tmp_path / "t.tif", _ramp((8, 8), LEFT, TOP, 40.0), pixel=40.0)
    g = _write(tmp_path / "g.tif", _guide())
    code = main(["sr", "--target", str(t), "--guide", str(g), "-o", str(tmp_path / "o.tif"),
                 option, value, *QUICK])
    assert code == 2
    assert needle in _error_line(capsys)
    assert not (tmp_path / "o.tif").exists()


def test_cli_bands_of_plain_images_and_resolution_refused_for_them(tmp_path, capsys):
    rng = np.random.default_rng(1)
    guide = write_image(tmp_path / "g.png", (rng.random((32, 32, 3)) * 255).astype(np.uint8))
    target = write_image(tmp_path / "t.tif", rng.random((8, 8, 2)).astype(np.float32))
    out = tmp_path / "o.tif"
    assert main(["sr", "--target", str(target), "--guide", str(guide), "-o", str(out),
                 "--target-band", "2", "--guide-bands", "1", *QUICK]) == 0
    capsys.readouterr()
    assert not is_georeferenced(out)
    assert read_raster(out)[0].shape == (32, 32)  # one band of the two
    code = main(["sr", "--target", str(target), "--guide", str(guide), "-o",
                 str(tmp_path / "p.tif"), "--guide-bands", "4", *QUICK])
    assert code == 2 and "g.png: has no band 4 (it has 3 bands" in _error_line(capsys)
    code = main(["sr", "--target", str(target), "--guide", str(guide), "-o",
                 str(tmp_path / "p.tif"), "--resolution", "5", *QUICK])
    line = _error_line(capsys)
    assert code == 2 and "--resolution: needs a georeferenced target and guide" in line


def test_super_resolve_geotiff_python_function(tmp_path):
    t = _write(tmp_path / "t.tif", (_ramp((8, 8), LEFT, TOP, 40.0) * 100).astype(np.uint16),
               pixel=40.0, nodata=0)
    g = _write(tmp_path / "g.tif", _guide())
    config = cmsr.Config.preset("quick", max_iters=4, min_iters=1, align="none")
    info = cmsr.super_resolve_geotiff(t, g, tmp_path / "o.tif", config)
    p = _profile(tmp_path / "o.tif")
    assert info.shape == p["shape"] == (32, 32) and p["dtype"] == "uint16"
    assert tuple(p["transform"])[:6] == info.transform == (10.0, 0.0, LEFT, 0.0, -10.0, TOP)
    assert p["nodata"] == 0
    with pytest.raises(InputError, match="already exists"):
        cmsr.super_resolve_geotiff(t, g, tmp_path / "o.tif", config)
    with pytest.raises(InputError, match="is also an input"):
        cmsr.super_resolve_geotiff(t, g, t, config, overwrite=True)


# --------------------------------------------------------------------------- real rasters


def _real(*parts: str) -> Path:
    path = GEO.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is not available")
    return path


def test_desirex_overlap_is_the_exact_five_to_one_grid():
    folder = _real("desirex", "madrid")
    pair = prepare_geo_pair(folder / "target_lst_100m.tif", folder / "guide_ndbi_20m.tif")
    _, _, guide = read_geotiff(folder / "guide_ndbi_20m.tif")
    target, _, _ = read_geotiff(folder / "target_lst_100m.tif")
    assert pair.scale == (5.0, 5.0)
    assert pair.output.transform == guide.transform and pair.output.shape == (150, 150)
    assert np.array_equal(pair.target, target.astype(np.float64))  # read, not resampled
    assert not pair.invalid.any() and pair.output.descriptions == ("LST (K)",)


def test_srtm_native_4326_target_is_reprojected_onto_the_27700_guide_grid():
    folder = _real("srtm_s2", "aberystwyth")
    guide_path = folder / "guide_s2_b2_b3_b4_b8_10m.tif"
    pair = prepare_geo_pair(folder / "target_srtm_native_epsg4326.tif", guide_path,
                            guide_bands=(3, 2, 1))
    _, _, guide = read_geotiff(guide_path)
    assert pair.output.crs == "EPSG:27700"
    assert pair.output.transform == guide.transform and pair.output.shape == (480, 480)
    assert pair.coarse.bounds == pytest.approx(pair.output.bounds)
    assert not pair.invalid.any() and np.isfinite(pair.target).all()  # it covers the guide
    assert pair.output.dtype == "int16" and pair.output.nodata == -32767
    # against the 30 m OSGB crop of the same SRTM data (a different resampling of it)
    osgb = prepare_geo_pair(folder / "target_srtm_30m_osgb.tif", guide_path)
    assert osgb.scale == (3.0, 3.0) and osgb.target.shape == (160, 160)
    assert abs(np.nanmean(pair.target) - np.nanmean(osgb.target)) < 5.0  # metres


def test_landsat8_sub_pixel_offset_and_odd_sizes():
    folder = _real("landsat8_decimated", "l1_p016r037_20170813")
    pair = prepare_geo_pair(folder / "target_b10_thermal.tif", folder / "guide_b8_pan.tif")
    assert pair.scale == (2.0, 2.0) and pair.coarse.pixel_size == (900.0, 900.0)
    assert pair.output.shape == (516, 508) and pair.target.shape == (258, 254)
    assert pair.output.transform[2] == 471592.5  # the pan grid, 7.5 m off the target's
