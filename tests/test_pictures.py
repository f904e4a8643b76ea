"""Tests for cmsr.pictures: shapes, dtypes, colour scales and that drawings draw."""

from __future__ import annotations

import numpy as np
import pytest

from cmsr.errors import InputError
from cmsr.pictures.curves import CURVE_COLOUR, LR_MARK_COLOUR, loss_curve
from cmsr.pictures.display import (
    COLORMAPS,
    apply_colormap,
    error_map,
    red_green_overlay,
    to_display,
)
from cmsr.pictures.panels import colorbar, panel_grid


def _is_rgb8(image: np.ndarray, shape: tuple[int, int] | None = None) -> bool:
    ok = image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    return ok and (shape is None or image.shape[:2] == shape)


def _count(image: np.ndarray, colour: tuple[int, int, int]) -> int:
    return int(np.all(image == np.asarray(colour, dtype=np.uint8), axis=2).sum())


# ------------------------------------------------------------------ to_display


@pytest.mark.parametrize(
    "image",
    [
        np.zeros((5, 7), dtype=np.uint8),
        np.arange(35, dtype=np.uint16).reshape(5, 7),
        np.linspace(-3, 3, 35).reshape(5, 7).astype(np.float32),
        np.ones((5, 7, 1)),
        np.ones((5, 7, 2)),
        np.ones((5, 7, 3), dtype=np.uint8),
        np.random.default_rng(0).random((5, 7, 4)),
        np.eye(5, 7, dtype=bool),
        np.full((5, 7), np.nan),
    ],
)
def test_to_display_shape_and_dtype(image: np.ndarray) -> None:
    assert _is_rgb8(to_display(image), (5, 7))


def test_to_display_maps_vmin_vmax_to_black_and_white() -> None:
    image = np.array([[10.0, 20.0, 30.0, 5.0, 40.0]])
    out = to_display(image, vmin=10.0, vmax=30.0)
    assert out[0, :, 0].tolist() == [0, 128, 255, 0, 255]
    assert np.all(out[..., 0] == out[..., 1]) and np.all(out[..., 1] == out[..., 2])


def test_to_display_default_percentiles() -> None:
    image = np.linspace(0.0, 1.0, 101).reshape(1, 101)
    out = to_display(image)
    assert out[0, 1, 0] == 0 and out[0, 99, 0] == 255
    assert 0 < out[0, 50, 0] < 255


def test_to_display_nan_is_black() -> None:
    image = np.array([[0.0, np.nan, 1.0]])
    for colormap in (None, "viridis", "inferno", "turbo"):
        out = to_display(image, vmin=0.0, vmax=1.0, colormap=colormap)
        assert out[0, 1].tolist() == [0, 0, 0]
    rgb = np.ones((2, 2, 3))
    rgb[0, 0, 1] = np.nan
    assert to_display(rgb)[0, 0].tolist() == [0, 0, 0]


def test_to_display_colormap_ends() -> None:
    image = np.array([[0.0, 1.0]])
    for name, anchors in COLORMAPS.items():
        out = to_display(image, vmin=0.0, vmax=1.0, colormap=name)
        assert out[0, 0].tolist() == list(anchors[0])
        assert out[0, 1].tolist() == list(anchors[-1])


def test_to_display_uint8_rgb_unchanged_and_constant_image() -> None:
    rgb = np.random.default_rng(1).integers(0, 256, (4, 4, 3), dtype=np.uint8)
    np.testing.assert_array_equal(to_display(rgb), rgb)
    flat = to_display(np.full((3, 3), 7.0))
    assert np.all(flat == flat[0, 0])


def test_to_display_errors() -> None:
    with pytest.raises(InputError):
        to_display(np.zeros((2, 2)), colormap="jet")
    with pytest.raises(InputError):
        to_display(np.zeros((2, 2, 3)), colormap="viridis")
    with pytest.raises(InputError):
        to_display(np.zeros(4))


def test_apply_colormap_is_monotone_in_inferno_brightness() -> None:
    colours = apply_colormap(np.linspace(0, 1, 50), "inferno").astype(int).sum(axis=1)
    assert np.all(np.diff(colours) >= 0)


@pytest.mark.parametrize("name", sorted(COLORMAPS))
def test_colormaps_match_matplotlib_tables(name: str) -> None:
    matplotlib = pytest.importorskip(
        "matplotlib", reason="matplotlib (a dev dependency) holds the reference tables")
    # matplotlib's 256 entries sit at i / 255 (an integer indexes its table directly)
    table = matplotlib.colormaps[name](np.arange(256))[:, :3] * 255
    ours = apply_colormap(np.arange(256) / 255, name).astype(np.float64)
    # Every 5th entry, rounded to 8 bits, linear in between: measured at most 1.32
    # levels of 255 off (0.3 on average); the former 9 or 15 anchors, up to 18.
    assert np.abs(ours - table).max() <= 1.5
    assert np.abs(ours - table).mean() <= 0.4


# ------------------------------------------------------------------ error_map, overlay


def test_error_map_identical_is_zero_colour() -> None:
    truth = np.random.default_rng(2).random((6, 8)) * 300
    out = error_map(truth.copy(), truth, vmax=2.0)
    assert _is_rgb8(out, (6, 8))
    zero = apply_colormap(np.array(0.0), "inferno")
    assert np.all(out == zero)


def test_error_map_fixed_scale() -> None:
    truth = np.zeros((1, 3))
    prediction = np.array([[-1.0, 0.5, 5.0]])
    out = error_map(prediction, truth, vmax=1.0)
    assert out[0, 0].tolist() == list(COLORMAPS["inferno"][-1])
    assert out[0, 2].tolist() == list(COLORMAPS["inferno"][-1])
    assert out[0, 1].tolist() == apply_colormap(np.array(0.5), "inferno").tolist()
    assert _is_rgb8(error_map(np.zeros((3, 3, 3)), np.ones((3, 3, 3)), vmax=1.0), (3, 3))
    with pytest.raises(InputError):
        error_map(np.zeros((3, 3)), np.zeros((3, 4)), vmax=1.0)
    with pytest.raises(InputError):
        error_map(np.zeros((3, 3)), np.zeros((3, 3)), vmax=0.0)


def test_red_green_overlay_channels() -> None:
    rng = np.random.default_rng(3)
    guide = rng.integers(0, 256, (8, 10, 3), dtype=np.uint8)
    target = rng.random((8, 10)) * 40 + 280
    out = red_green_overlay(guide, target)
    assert _is_rgb8(out, (8, 10))
    assert np.all(out[..., 2] == 0)
    luma = guide.astype(float) @ np.array([0.299, 0.587, 0.114])
    expected_red = np.rint((luma - luma.min()) / (luma.max() - luma.min()) * 255)
    np.testing.assert_array_equal(out[..., 0], expected_red)
    expected_green = np.rint((target - target.min()) / (target.max() - target.min()) * 255)
    np.testing.assert_array_equal(out[..., 1], expected_green)
    with pytest.raises(InputError):
        red_green_overlay(guide, target[:, :5])


# ------------------------------------------------------------------ panel_grid


def test_panel_grid_shapes_and_labels() -> None:
    panels = [
        ("guide", np.random.default_rng(4).integers(0, 256, (32, 40, 3), dtype=np.uint8)),
        ("target", np.random.default_rng(5).random((8, 10))),
        ("", np.zeros((8, 10))),
    ]
    grid = panel_grid(panels, columns=3, cell_size=40)
    assert _is_rgb8(grid)
    # Layout: gap 8, label strip, cell 40x32, gap 8 (one row of three cells).
    assert grid.shape[1] == 8 + 3 * (40 + 8)
    strip_h = grid.shape[0] - 8 - 32 - 8
    strip = grid[8 : 8 + strip_h]
    first, third = strip[:, 8:48], strip[:, 8 + 2 * 48 : 8 + 2 * 48 + 40]
    assert np.any(first != 255)  # a label was drawn
    assert np.all(third == 255)  # empty label: blank strip
    # The small target is enlarged with nearest neighbour: 4x4 blocks.
    cell = grid[8 + strip_h : 8 + strip_h + 32, 56:96]
    assert np.all(cell[0:4, 0:4] == cell[0, 0])


def test_panel_grid_defaults_and_errors() -> None:
    panels = [(f"p{i}", np.full((6, 6), float(i))) for i in range(5)]
    grid = panel_grid(panels)
    assert _is_rgb8(grid)
    assert grid.shape[1] == 8 + 3 * (6 + 8)  # ceil(sqrt(5)) = 3 columns, cell = 6
    with pytest.raises(InputError):
        panel_grid([])
    with pytest.raises(InputError):
        panel_grid(panels, columns=0)


# ------------------------------------------------------------------ loss_curve


def test_loss_curve_draws_decreasing_series() -> None:
    steps = np.arange(0, 500, 5)
    losses = 1.0 / (1.0 + steps / 50.0)
    image = loss_curve(steps, losses, size=(400, 300))
    assert _is_rgb8(image, (300, 400))
    inner = image[40:250, 80:380]
    assert np.any(np.any(inner != 255, axis=2))
    assert _count(inner, CURVE_COLOUR) > 100


def test_loss_curve_learning_rate_marks_change_pixels() -> None:
    steps = list(range(100))
    losses = [1.0 / (i + 1) for i in steps]
    rates = [1e-3 if i < 60 else 1e-4 for i in steps]
    plain = loss_curve(steps, losses, size=(400, 300))
    marked = loss_curve(steps, losses, learning_rates=rates, size=(400, 300))
    assert np.any(plain != marked)
    assert _count(plain, LR_MARK_COLOUR) == 0
    assert _count(marked, LR_MARK_COLOUR) > 20
    constant = loss_curve(steps, losses, learning_rates=[1e-3] * 100, size=(400, 300))
    changed = np.argwhere(np.any(constant != plain, axis=2))
    # a constant rate is only written once, at the top left of the plot
    assert changed.size and changed[:, 0].max() < 60 and changed[:, 1].max() < 160


def test_loss_curve_stage_marks_are_drawn():
    steps = list(range(100))
    losses = [1.0 / (i + 1) for i in steps]
    plain = loss_curve(steps, losses, size=(400, 300))
    marked = loss_curve(steps, losses, stage_marks=[(50.0, "stage 2"), (500.0, "outside")],
                        size=(400, 300))
    columns = np.argwhere(np.any(marked != plain, axis=2))[:, 1]
    assert columns.size and abs(np.median(columns) - (72 + 0.5 * (400 - 92))) < 40


@pytest.mark.parametrize(
    ("steps", "losses"),
    [
        ([7], [0.3]),
        ([0, 1, 2, 3], [0.5, 0.5, 0.5, 0.5]),
        ([0, 1, 2, 3, 4], [1.0, np.nan, 0.5, np.inf, 0.2]),
        ([0, 1, 2], [np.nan, np.nan, np.nan]),
        ([0, 1, 2], [0.0, -1.0, 0.1]),
        ([], []),
        ([3, 3, 3], [1e-8, 1e3, 1.0]),
        ([0.0, 0.5, 1.5], [2.0, 1.0, 1.5]),
    ],
)
def test_loss_curve_odd_inputs_do_not_crash(steps: list[float], losses: list[float]) -> None:
    image = loss_curve(steps, losses, size=(300, 200))
    assert _is_rgb8(image, (200, 300))


def test_loss_curve_single_point_is_drawn() -> None:
    image = loss_curve([7], [0.3], size=(300, 200))
    assert _count(image, CURVE_COLOUR) > 0


def test_loss_curve_errors() -> None:
    with pytest.raises(InputError):
        loss_curve([0, 1], [1.0])
    with pytest.raises(InputError):
        loss_curve([0, 1], [1.0, 0.5], learning_rates=[1e-3])
    with pytest.raises(InputError):
        loss_curve([0], [1.0], size=(50, 50))


def test_colorbar() -> None:
    bar = colorbar(0.0, 3.0, "turbo", 120)
    assert _is_rgb8(bar, (120, 80))
    assert bar[6, 2].tolist() == list(COLORMAPS["turbo"][-1])  # vmax at the top
    assert _is_rgb8(colorbar(-1.0, 1.0, None, 64, width=60), (64, 60))
