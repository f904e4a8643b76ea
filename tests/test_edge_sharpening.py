"""Edge sharpening for piecewise-constant targets (cmsr.method.edge_sharpening)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cmsr.method.edge_sharpening import END_SHARE, MIDDLE, sharpen_edges


def _brute_force(image: np.ndarray, radius: int, strength: float, step_share: float
                 ) -> np.ndarray:
    """Pixel by pixel from the module's definition: ``(H, W)`` float64, mirrored borders."""
    padded = np.pad(image, radius, mode="reflect")
    out = image.copy()
    height, width = image.shape
    for i in range(height):
        for j in range(width):
            window = padded[i:i + 2 * radius + 1, j:j + 2 * radius + 1].ravel()
            low, high = window.min(), window.max()
            if high <= low:
                continue
            position = (window - low) / (high - low)
            lows, highs = window[position < END_SHARE], window[position > 1 - END_SHARE]
            if (len(lows) + len(highs)) / window.size < step_share:
                continue
            own = (image[i, j] - low) / (high - low)
            if not MIDDLE[0] < own < MIDDLE[1]:
                continue
            side_low, side_high = lows.mean(), highs.mean()
            side = (side_high if abs(image[i, j] - side_low) > abs(image[i, j] - side_high)
                    else side_low)
            out[i, j] = image[i, j] + strength * (side - image[i, j])
    return out


def _tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image)[None, None]


@pytest.mark.parametrize("radius, strength, step_share", [(2, 0.4, 0.5), (1, 1.0, 0.0),
                                                          (3, 0.25, 0.6)])
def test_matches_the_definition_pixel_by_pixel(radius, strength, step_share):
    rng = np.random.default_rng(5)
    # blocks of constant depth, blurred a little, plus noise: steps and flat parts
    image = np.kron(rng.integers(0, 4, (4, 5)), np.ones((4, 4))).astype(np.float64)
    image[1:-1, 1:-1] = (image[:-2, 1:-1] + image[2:, 1:-1] + 2 * image[1:-1, 1:-1]) / 4
    image += 0.01 * rng.standard_normal(image.shape)
    result = sharpen_edges(_tensor(image), radius=radius, strength=strength,
                           step_share=step_share)
    expected = _brute_force(image, radius, strength, step_share)
    np.testing.assert_allclose(result[0, 0].numpy(), expected, rtol=0, atol=1e-12)
    assert not np.array_equal(expected, image)  # the case moves some pixels


def test_row_blocks_give_the_same_result(monkeypatch):
    image = torch.rand(1, 2, 37, 20, generator=torch.Generator().manual_seed(1))
    whole = sharpen_edges(image, strength=0.5)
    monkeypatch.setattr("cmsr.method.edge_sharpening.ROWS_PER_BLOCK", 5)
    torch.testing.assert_close(sharpen_edges(image, strength=0.5), whole, rtol=0, atol=1e-6)


def test_bands_are_sharpened_each_on_its_own():
    image = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    together = sharpen_edges(image, strength=0.7)
    for band in range(3):
        alone = sharpen_edges(image[:, band:band + 1], strength=0.7)
        torch.testing.assert_close(together[:, band:band + 1], alone, rtol=0, atol=0)


@pytest.mark.parametrize("direction", ["rows", "columns", "diagonal"])
def test_flat_regions_and_ramps_do_not_change(direction):
    y, x = torch.meshgrid(torch.arange(20.0), torch.arange(24.0), indexing="ij")
    ramp = {"rows": 0.3 * y, "columns": 2.0 * x, "diagonal": x + y}[direction][None, None]
    torch.testing.assert_close(sharpen_edges(ramp, strength=1.0), ramp, rtol=0, atol=0)
    flat = torch.full((1, 1, 12, 12), 0.4)
    torch.testing.assert_close(sharpen_edges(flat, strength=1.0), flat, rtol=0, atol=0)


def test_a_blurred_step_gets_closer_to_the_step_and_stays_in_range():
    truth = torch.zeros(1, 1, 16, 16)
    truth[..., 8:] = 10.0
    blurred = truth.clone()
    blurred[..., 7], blurred[..., 8] = 3.0, 7.0  # the edge spread over two pixels
    for strength in (0.25, 0.5, 1.0):
        result = sharpen_edges(blurred, strength=strength)
        assert float((result - truth).abs().sum()) < float((blurred - truth).abs().sum())
        assert float(result.min()) >= 0.0 and float(result.max()) <= 10.0
    full = sharpen_edges(blurred, strength=1.0)
    torch.testing.assert_close(full, truth, rtol=0, atol=0)


def test_strength_zero_is_the_identity_and_bad_arguments_are_refused():
    image = torch.rand(1, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    assert sharpen_edges(image, strength=0.0) is image
    with pytest.raises(ValueError, match="strength"):
        sharpen_edges(image, strength=1.5)
    with pytest.raises(ValueError, match="radius"):
        sharpen_edges(image, radius=0)


def test_tiny_images_are_repeated_at_the_border():
    image = torch.tensor([[[[0.0, 5.0], [0.0, 10.0]]]])
    result = sharpen_edges(image, radius=2, strength=1.0)
    assert result.shape == image.shape
    assert float(result.min()) >= 0.0 and float(result.max()) <= 10.0
