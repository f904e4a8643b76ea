"""The built-in example pair (cmsr.demo) and the ``cmsr demo`` command."""

from __future__ import annotations

import numpy as np
import pytest

from cmsr.cli import main
from cmsr.demo import BOARD, DISC, DemoPair, make_demo_pair
from cmsr.files import read_image

DEMO_FILES = ("target_lr.png", "guide.png", "ground_truth.png", "result.png",
              "comparison.png", "loss_curve.png")




@pytest.fixture(scope="module")
def pair() -> DemoPair:
    return make_demo_pair()


def _detail(image: np.ndarray) -> np.ndarray:
    """``(H-2, W-2)`` absolute discrete Laplacian, the largest over channels."""
    values = image.astype(np.float64)
    if values.ndim == 2:
        values = values[:, :, None]
    laplace = (values[:-2, 1:-1] + values[2:, 1:-1] + values[1:-1, :-2] + values[1:-1, 2:]
               - 4.0 * values[1:-1, 1:-1])
    return np.abs(laplace).max(axis=2)


def _plane_residual(image: np.ndarray) -> float:
    """Largest distance of ``(H, W)`` values from their least-squares plane."""
    yy, xx = np.mgrid[0:image.shape[0], 0:image.shape[1]]
    design = np.stack([np.ones(image.size), yy.ravel(), xx.ravel()], axis=1)
    values = image.astype(np.float64).ravel()
    coefficients, *_ = np.linalg.lstsq(design, values, rcond=None)
    return float(np.abs(design @ coefficients - values).max())


def _windows(height: int, width: int) -> dict[str, tuple[slice, slice]]:
    """A square inside the printed disc and a strip of painted wall above everything."""
    cy, cx, r = DISC
    half = int(0.55 * r * height)
    disc = (slice(int(cy * height) - half, int(cy * height) + half),
            slice(int(cx * width) - half, int(cx * width) + half))
    wall_bottom = min(BOARD[0], cy - r) - 0.03
    wall = (slice(2, int(wall_bottom * height)), slice(int(0.1 * width), int(0.9 * width)))
    return {"disc": disc, "wall": wall}


def test_shapes_and_dtypes(pair):
    assert pair.scale == 4
    assert pair.target_lr.shape == (48, 64) and pair.target_lr.dtype == np.uint8
    assert pair.guide.shape == (192, 256, 3) and pair.guide.dtype == np.uint8
    assert pair.ground_truth.shape == (192, 256) and pair.ground_truth.dtype == np.uint8
    assert pair.texture_mask.shape == (192, 256) and pair.texture_mask.dtype == np.bool_


def test_other_sizes_and_scales():
    small = make_demo_pair((48, 72), scale=3, seed=2)
    assert small.target_lr.shape == (16, 24)
    assert small.guide.shape == (48, 72, 3)
    with pytest.raises(ValueError, match="multiples"):
        make_demo_pair((50, 64), scale=4)
    with pytest.raises(ValueError, match="scale"):
        make_demo_pair((64, 64), scale=1)


def test_deterministic(pair):
    again = make_demo_pair()
    for name in ("target_lr", "guide", "ground_truth", "texture_mask"):
        assert np.array_equal(getattr(pair, name), getattr(again, name)), name
    other = make_demo_pair(seed=1)
    assert not np.array_equal(pair.guide, other.guide)


def test_target_is_the_area_average_of_the_truth(pair):
    h, w = pair.target_lr.shape
    blocks = pair.ground_truth.astype(np.float64).reshape(h, 4, w, 4).mean(axis=(1, 3))
    assert np.array_equal(pair.target_lr, np.rint(blocks).astype(np.uint8))


def test_truth_is_piecewise_smooth_with_several_depths(pair):
    truth = pair.ground_truth
    assert len(np.unique(truth)) > 20  # slanted planes
    assert int(truth.max()) - int(truth.min()) > 150  # far wall to near ball
    # sharp edges: some neighbouring pixels differ by many levels
    assert np.abs(np.diff(truth.astype(int), axis=1)).max() > 40


def test_depth_edges_are_colour_edges(pair):
    truth = pair.ground_truth.astype(np.float64)
    depth_edge = np.abs(np.diff(truth, axis=1)) > 15
    colour_step = np.abs(np.diff(pair.guide.astype(np.float64), axis=1)).max(axis=2)
    # the guide is slightly blurred: look one pixel either side
    nearby = np.maximum(colour_step, np.maximum(np.roll(colour_step, 1, axis=1),
                                                np.roll(colour_step, -1, axis=1)))
    assert depth_edge.sum() > 100
    assert np.mean(nearby[depth_edge] > 12) > 0.95


@pytest.mark.parametrize("region", ["disc", "wall"])
def test_rgb_only_texture_is_in_the_guide_not_in_the_truth(pair, region):
    rows, cols = _windows(*pair.ground_truth.shape)[region]
    truth = pair.ground_truth[rows, cols]
    guide = pair.guide[rows, cols]
    assert _plane_residual(truth) <= 1.0  # a plane (up to rounding): no texture
    assert pair.texture_mask[rows, cols].mean() > 0.1
    guide_detail = _detail(guide).mean()
    truth_detail = _detail(truth).mean()
    assert guide_detail > 20.0
    assert truth_detail < 1.0
    assert guide_detail > 30 * truth_detail


def test_demo_command_writes_inputs_results_and_figures(tmp_path, capsys):
    folder = tmp_path / "demo"
    assert main(["demo", "-o", str(folder), "--preset", "quick", "--iters", "5",
                 "--quiet"]) == 0
    for name in DEMO_FILES:
        assert (folder / name).is_file(), name
    assert read_image(folder / "result.png").shape == (192, 256)
    assert read_image(folder / "result.png").dtype == np.uint8
    assert np.array_equal(read_image(folder / "guide.png"), make_demo_pair().guide)
    comparison = read_image(folder / "comparison.png")
    assert comparison.ndim == 3 and comparison.shape[2] == 3
    err = capsys.readouterr().err
    assert "RMSE" in err and "bicubic" in err and "Traceback" not in err

    # a second run without --overwrite stops before touching anything
    before = {name: (folder / name).read_bytes() for name in DEMO_FILES}
    assert main(["demo", "-o", str(folder), "--preset", "quick", "--iters", "5",
                 "--quiet"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cmsr: error:")
    assert "--overwrite" in lines[0]
    assert {name: (folder / name).read_bytes() for name in DEMO_FILES} == before
