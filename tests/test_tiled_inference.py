"""Large outputs computed tile by tile: the same result as the whole image (up to the
stated seam error), tiles handed over one by one, a tiled GeoTIFF written, a progress
callback per tile.

The tiling threshold is forced low on small synthetic pairs (96x96 outputs); one test
measures the seam error on a 2048x2048 output.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import cmsr
from cmsr.method.api import CMSR, stage_sizes
from cmsr.method.guide_shift import GuideShift
from cmsr.method.resample import (
    downsample,
    downsample_window,
    resize,
    resize_matrix,
    resize_window,
    window_matrix,
)
from cmsr.method.self_check import SelfCheck
from cmsr.method.streaming import super_resolve_tiled, training_window
from cmsr.method.tiled_inference import map_box, plan_tiles, predict_window
from cmsr.pictures.progress import TileProgress

TOLERANCE = 1e-4
"""Largest tiled-minus-whole difference accepted, in the target's units (its values span
about 2); measured 1.7e-6 on the 96x96 pair with every inference step on."""


def _pair(size: int, scale: int = 4, bands: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """A guide ``(size, size, bands)`` float32 and a target reduced from a scene sharing
    its edges ``(size / scale,) * 2`` float32."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    scene = np.sin(7 * xx) + (yy > 0.5) + 0.3 * np.cos(13 * xx * yy)
    guide = np.stack([scene, np.cos(5 * yy), xx * yy][:bands], axis=-1).astype(np.float32)
    target = scene.reshape(size // scale, scale, size // scale, scale).mean(axis=(1, 3))
    return target.astype(np.float32), guide


def _tiled(target: np.ndarray, guide: np.ndarray, config: cmsr.Config
           ) -> tuple[np.ndarray, list[tuple[tuple[int, int, int, int], tuple[int, ...]]],
                      list[tuple[int, int]]]:
    """Run :func:`super_resolve_tiled` into an array; also return the tiles' windows and
    shapes and the progress calls."""
    height, width = guide.shape[:2]
    out = np.full((height, width), np.nan, np.float32)
    received: list[tuple[tuple[int, int, int, int], tuple[int, ...]]] = []
    calls: list[tuple[int, int]] = []

    def write(box: tuple[int, int, int, int], tile: np.ndarray) -> None:
        received.append((box, tile.shape))
        assert np.isnan(out[box[0]:box[1], box[2]:box[3]]).all(), "a pixel written twice"
        out[box[0]:box[1], box[2]:box[3]] = tile

    super_resolve_tiled(target, lambda b: guide[b[0]:b[1], b[2]:b[3]], (height, width),
                        write, config, on_tile=lambda done, total: calls.append((done, total)))
    return out, received, calls


# ------------------------------------------------------------------ windows


@pytest.mark.parametrize(("n_in", "n_out", "kernel", "antialias"), [
    (24, 96, "cubic", True), (96, 24, "cubic", True), (96, 24, "box", True),
    (96, 40, "box", True), (30, 75, "cubic", True), (96, 24, "cubic", False)])
def test_window_matrix_equals_the_whole_matrix_inside(n_in, n_out, kernel, antialias):
    whole = resize_matrix(n_in, n_out, kernel=kernel, antialias=antialias)
    assert np.allclose(window_matrix(n_in, n_out, (0, n_in), (0, n_out), kernel=kernel,
                                     antialias=antialias), whole, atol=1e-6)
    # an inner output window from an input window wide enough for its taps
    first, last = n_out // 3, 2 * n_out // 3
    start = max(0, int(first * n_in / n_out) - 6)
    stop = min(n_in, int(last * n_in / n_out) + 7)
    part = window_matrix(n_in, n_out, (start, stop), (first, last), kernel=kernel,
                         antialias=antialias)
    assert np.allclose(part, whole[first:last, start:stop], atol=1e-6)
    assert np.allclose(part.sum(dim=1), 1.0, atol=1e-6)


@pytest.mark.parametrize("kernel", ["cubic", "box", "cubic-aliased",
                                    ((1.0, 2.0, 1.0), (2.0, 4.0, 2.0), (1.0, 2.0, 1.0))])
def test_windowed_resizes_equal_the_whole_image_away_from_the_edge(kernel):
    import torch

    image = torch.rand(1, 2, 40, 48, generator=torch.Generator().manual_seed(0))
    small = downsample(image, (10, 12), kernel=kernel)
    # x4 antialiased cubic reads 8 input pixels either side of an output pixel's centre
    part = downsample_window(image[..., 4:40, 8:48], (40, 48), (10, 12), (4, 8),
                             (4, 7, 5, 9), kernel=kernel)
    assert torch.allclose(part, small[..., 4:7, 5:9], atol=1e-5)
    big = resize(small, (40, 48))
    up = resize_window(small[..., 1:9, 2:11], (10, 12), (40, 48), (1, 2), (12, 28, 16, 36))
    assert torch.allclose(up, big[..., 12:28, 16:36], atol=1e-5)


def test_tiles_cover_the_output_once_and_map_boxes_cover_their_ground():
    tiles = plan_tiles((100, 70), 32, 5)
    covered = np.zeros((100, 70), int)
    for tile in tiles:
        covered[tile.core[0]:tile.core[1], tile.core[2]:tile.core[3]] += 1
        assert tile.read[0] == max(0, tile.core[0] - 5)
        assert tile.read[3] == min(70, tile.core[3] + 5)
    assert (covered == 1).all()
    assert map_box((5, 10, 0, 3), (100, 70), (25, 35)) == (1, 3, 0, 2)


def test_training_window_is_central_whole_target_pixels_and_bounded():
    coarse, out = training_window((2500, 2500), (10000, 10000), 2048 * 2048)
    assert out[1] - out[0] <= 2048 and out[3] - out[2] <= 2048
    assert [v * 4 for v in coarse] == list(out)
    assert coarse[0] + coarse[1] == 2500  # centred
    assert training_window((24, 24), (96, 96), 96 * 96) == ((0, 24, 0, 24), (0, 96, 0, 96))


# ------------------------------------------------------------------ tiled = whole


@pytest.mark.parametrize("options", [
    {},
    {"self_ensemble": True, "back_projection_iters": 10, "gradual": True,
     "clamp_to_local_range": True},
    {"degradation": "box", "back_projection_iters": 10, "gradual": True},
    {"degradation": "box", "back_projection_iters": 10, "clamp_to_local_range": True,
     "guided_median_radius": 1},
    {"degradation": "box", "back_projection_iters": 10, "clamp_to_local_range": True,
     "guided_median_radius": 1, "edge_sharpening": 0.5},
    {"degradation": "box", "back_projection_iters": 10, "clamp_to_local_range": True,
     "guided_median_radius": 1, "edge_sharpening": 0.5, "block_partition": 0.5},
    {"degradation": ((1.0, 2.0, 1.0), (2.0, 4.0, 2.0), (1.0, 2.0, 1.0)),
     "back_projection_iters": 5},
])
def test_tiled_equals_whole_image_within_tolerance(options):
    target, guide = _pair(96)
    config = cmsr.Config.preset("quick", align="none", max_iters=8, stream_tile=32, **options)
    whole = CMSR(config).fit(target, guide).predict()
    tiled, received, calls = _tiled(target, guide, config)
    assert not np.isnan(tiled).any()
    difference = float(np.abs(tiled - whole).max())
    assert difference <= TOLERANCE, difference
    assert float(np.abs(whole - np.repeat(np.repeat(target, 4, 0), 4, 1)).max()) > 0.05
    assert len(received) == 9 and calls == [(k, 9) for k in range(1, 10)]


def test_tiled_equals_whole_image_with_the_partition_at_a_non_integer_scale():
    # 24 -> 84 (x3.5): no partition, and no extra back-projection in the tiles either
    target, guide = _pair(96)
    guide = guide[:84, :84]
    config = cmsr.Config.preset("quick", align="none", max_iters=8, stream_tile=32,
                                degradation="box", back_projection_iters=10,
                                block_partition=0.5)
    whole = CMSR(config).fit(target, guide).predict()
    tiled, _, _ = _tiled(target, guide, config)
    assert float(np.abs(tiled - whole).max()) <= TOLERANCE


def test_streaming_never_hands_over_more_than_a_tile():
    target, guide = _pair(96)
    config = cmsr.Config.preset("quick", align="none", max_iters=4, stream_tile=40)
    _, received, calls = _tiled(target, guide, config)
    assert {shape for _, shape in received} == {(40, 40), (40, 16), (16, 40), (16, 16)}
    assert max(shape[0] * shape[1] for _, shape in received) < 96 * 96
    assert calls[-1] == (len(received), len(received))


def test_training_part_is_used_when_the_pair_is_large():
    target, guide = _pair(96)
    config = cmsr.Config.preset("quick", align="none", max_iters=4, stream_tile=48,
                                train_max_pixels=48 * 48)
    model = super_resolve_tiled(target, lambda b: guide[b[0]:b[1], b[2]:b[3]], (96, 96),
                                lambda box, tile: None, config)
    assert model.pair is not None and tuple(model.pair.guide.shape[-2:]) == (48, 48)


def test_tile_progress_counts_tiles(capsys):
    progress = TileProgress(enabled=True)
    for done in range(1, 4):
        progress(done, 3)
    progress.close()
    assert progress.done == 3
    assert "3/3" in capsys.readouterr().err


def test_seam_error_on_a_2048_output():
    """Tiles of 1024 (2x2) against the whole image at 2048x2048, x4 in two stages, 10
    back-projection steps: the seam error stays below the stated bound."""
    target, guide = _pair(2048, bands=1)
    config = cmsr.Config.preset("quick", align="none", max_iters=4, back_projection_iters=10,
                                gradual=True)
    whole = CMSR(config).fit(target, guide[..., 0]).predict()
    tiled, received, _ = _tiled(target, guide[..., 0], config)
    difference = float(np.abs(tiled - whole).max())
    print(f"seam error at 2048x2048: max abs {difference:.3g} (values span "
          f"{float(whole.max() - whole.min()):.3g})")
    assert len(received) == 4
    assert difference <= TOLERANCE, difference


# ------------------------------------------------------------------ GeoTIFF


rasterio = pytest.importorskip("rasterio")


def _geotiff(path: Path, data: np.ndarray, pixel: float) -> Path:
    from affine import Affine

    stack = data[None] if data.ndim == 2 else np.moveaxis(data, -1, 0)
    with rasterio.open(path, "w", driver="GTiff", width=stack.shape[2], height=stack.shape[1],
                       count=stack.shape[0], dtype=stack.dtype.name, crs="EPSG:32630",
                       transform=Affine(pixel, 0.0, 440000.0, 0.0, -pixel, 4500000.0)) as out:
        out.write(stack)
    return path


def test_cli_streams_a_tiled_geotiff_equal_to_the_whole_result(tmp_path, capsys):
    from cmsr.cli import main

    target, guide = _pair(96)
    target_path = _geotiff(tmp_path / "t.tif", target, 40.0)
    guide_path = _geotiff(tmp_path / "g.tif", (guide * 100).astype(np.uint8), 10.0)
    common = ["sr", "--target", str(target_path), "--guide", str(guide_path), "--preset",
              "quick", "--iters", "6", "--align", "none"]
    assert main([*common, "-o", str(tmp_path / "whole.tif"), "--quiet"]) == 0
    assert main([*common, "-o", str(tmp_path / "tiled.tif"), "--stream-above", "1000",
                 "--stream-tile", "32"]) == 0
    err = capsys.readouterr().err
    assert "inference" in err and "9/9" in err and "9 tiles" in err
    with rasterio.open(tmp_path / "tiled.tif") as tiled, \
            rasterio.open(tmp_path / "whole.tif") as whole:
        assert tiled.profile["tiled"] and tiled.block_shapes == [(512, 512)]
        assert tiled.compression.name.lower() == "deflate"
        assert tiled.crs == whole.crs and tiled.transform == whole.transform
        assert tiled.dtypes == whole.dtypes == ("float32",)
        difference = np.abs(tiled.read(1) - whole.read(1)).max()
    assert difference <= TOLERANCE, difference
    assert not list(tmp_path.glob(".*.part"))


def test_cli_refuses_figures_for_streamed_outputs(tmp_path, capsys):
    from cmsr.cli import main

    target, guide = _pair(96)
    target_path = _geotiff(tmp_path / "t.tif", target, 40.0)
    guide_path = _geotiff(tmp_path / "g.tif", (guide * 100).astype(np.uint8), 10.0)
    code = main(["sr", "--target", str(target_path), "--guide", str(guide_path), "-o",
                 str(tmp_path / "o.tif"), "--stream-above", "1000", "--save-figures",
                 str(tmp_path / "figs"), "--quiet"])
    assert code == 2
    assert "--save-figures: is not available for outputs computed tile by tile" in \
        capsys.readouterr().err
    assert not (tmp_path / "o.tif").exists()


@pytest.mark.parametrize("weight", [0.0, 0.5, 1.0])
def test_window_at_a_guide_weight_equals_the_whole_result_at_that_weight(weight):
    target, guide = _pair(64)
    config = cmsr.Config.preset("quick", align="none", max_iters=6, gradual=True,
                                back_projection_iters=3)
    model = CMSR(config).fit(target, guide)
    assert model.pair is not None
    model.self_check = SelfCheck(0.0, 0.0, 0.0, 0, "blend", weight)
    whole = model.predict_tensor()
    stages = stage_sizes((16, 16), (64, 64), gradual=True)
    window = predict_window(model.networks, stages, model.pair.target, model.pair.valid,
                            model.aligned_guide(), (0, 64, 0, 64), config=config,
                            guide_weight=weight)
    torch.testing.assert_close(window, whole, rtol=0, atol=2e-4)
    if weight != 1.0:  # the weight acts: the guided result differs
        guided = predict_window(model.networks, stages, model.pair.target, model.pair.valid,
                                model.aligned_guide(), (0, 64, 0, 64), config=config)
        assert float((guided - window).abs().max()) > 1e-4


@pytest.mark.parametrize("offset", [(1, 0), (-1, 1)])
def test_tiled_finishes_read_the_guide_moved_as_the_whole_image_does(monkeypatch, offset):
    # whatever offset the search finds (forced here), the tiles' finishes read the guide
    # moved by it, as the whole image's do, and that changes the result
    target, guide = _pair(96)
    config = cmsr.Config.preset("quick", align="none", max_iters=8, stream_tile=32,
                                degradation="box", back_projection_iters=10,
                                clamp_to_local_range=True, guided_median_radius=1,
                                guide_shift_search=1, edge_sharpening=0.5,
                                block_partition=0.5)
    monkeypatch.setattr(CMSR, "_search_guide_shift", lambda self, *args: (
        GuideShift(offset) if self.config.guide_shift_search else None))
    model = CMSR(config).fit(target, guide)
    whole = model.predict()
    assert model.guide_shift == GuideShift(offset)
    tiled, _, _ = _tiled(target, guide, config)
    assert float(np.abs(tiled - whole).max()) <= TOLERANCE
    unmoved = CMSR(config.replace(guide_shift_search=0)).fit(target, guide).predict()
    assert float(np.abs(unmoved - whole).max()) > 1e-3
