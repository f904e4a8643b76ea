"""Tests for cmsr.method.warp.grid: pixel-centre grids and sampling."""

from __future__ import annotations

import pytest
import torch

from cmsr.method.warp.grid import (
    identity_grid,
    pixel_centers,
    sample,
    spanning_grid,
    upsample_displacement,
)


def test_pixel_centers_align_corners_false() -> None:
    centres = pixel_centers(4, dtype=torch.float64)
    assert torch.allclose(centres, torch.tensor([-0.75, -0.25, 0.25, 0.75], dtype=torch.float64))


def test_identity_grid_shape_and_order() -> None:
    grid = identity_grid(3, 5)
    assert grid.shape == (1, 3, 5, 2)
    assert grid.dtype == torch.float32
    # x varies along the width, y along the height
    assert torch.allclose(grid[0, 0, :, 0], pixel_centers(5))
    assert torch.allclose(grid[0, :, 0, 1], pixel_centers(3))


@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
def test_sample_identity_reproduces_image(mode: str) -> None:
    image = torch.rand(2, 3, 7, 9, generator=torch.Generator().manual_seed(0))
    out = sample(image, identity_grid(7, 9), mode=mode)
    assert out.shape == image.shape
    assert torch.allclose(out, image, atol=1e-6)


def test_sample_one_pixel_shift() -> None:
    image = torch.arange(12.0).reshape(1, 1, 3, 4)
    grid = identity_grid(3, 4)
    grid = grid + torch.tensor([2.0 / 4, 0.0])  # one pixel right in x
    out = sample(image, grid)
    assert torch.allclose(out[..., :3], image[..., 1:], atol=1e-5)
    assert torch.allclose(out[..., 3], image[..., 3], atol=1e-5)  # border padding


def test_sample_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError):
        sample(torch.zeros(1, 1, 4, 4), torch.zeros(1, 4, 4, 3))
    with pytest.raises(ValueError):
        sample(torch.zeros(3, 1, 4, 4), torch.zeros(2, 4, 4, 2))
    with pytest.raises(ValueError):
        sample(torch.zeros(1, 1, 4, 4), torch.zeros(1, 4, 4, 2), mode="area")


def test_spanning_grid_corners_and_identity_case() -> None:
    coarse = spanning_grid(30, 40, 4, 5, dtype=torch.float64)
    fine = identity_grid(30, 40, dtype=torch.float64)
    assert coarse.shape == (1, 4, 5, 2)
    for corner in ((0, 0), (0, -1), (-1, 0), (-1, -1)):
        assert torch.allclose(coarse[0, corner[0], corner[1]], fine[0, corner[0], corner[1]])
    assert torch.equal(spanning_grid(6, 7, 6, 7), identity_grid(6, 7))


def test_upsample_displacement_reproduces_affine_field() -> None:
    def field(grid: torch.Tensor) -> torch.Tensor:
        x, y = grid[..., 0], grid[..., 1]
        return torch.stack((0.1 * x - 0.05 * y + 0.02, 0.03 * x + 0.2 * y), dim=-1)

    coarse = field(spanning_grid(32, 40, 8, 10, dtype=torch.float64))
    fine = upsample_displacement(coarse, 32, 40)
    expected = field(identity_grid(32, 40, dtype=torch.float64))
    assert torch.allclose(fine, expected, atol=1e-12)  # everywhere, borders included
