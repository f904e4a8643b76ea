"""The guided weighted median (cmsr.method.guided_median)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cmsr.method.guided_median import guided_median, weighted_median
from cmsr.method.infer import back_project, clamp_to_local_range


def _brute_force(image: np.ndarray, guide: np.ndarray, radius: int, sigma: float) -> np.ndarray:
    """Pixel by pixel from the definition: (H, W) image, (H, W, C) guide."""
    height, width = image.shape
    out = np.empty_like(image)
    for i in range(height):
        for j in range(width):
            values, weights = [], []
            for di in range(-radius, radius + 1):
                for dj in range(-radius, radius + 1):
                    y = min(max(i + di, 0), height - 1)
                    x = min(max(j + dj, 0), width - 1)
                    distance = float(((guide[y, x] - guide[i, j]) ** 2).sum())
                    values.append(image[y, x])
                    weights.append(np.exp(-distance / (2 * sigma ** 2)))
            order = np.argsort(values, kind="stable")
            cumulative = np.cumsum(np.asarray(weights)[order])
            index = min(int((cumulative < cumulative[-1] / 2).sum()), len(values) - 1)
            out[i, j] = np.asarray(values)[order][index]
    return out


def _tensors(image: np.ndarray, guide: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    return (torch.from_numpy(image)[None, None],
            torch.from_numpy(guide).permute(2, 0, 1)[None].contiguous())


@pytest.mark.parametrize("radius, sigma", [(1, 0.07), (2, 0.2), (1, 10.0)])
def test_matches_the_definition_pixel_by_pixel(radius, sigma):
    rng = np.random.default_rng(3)
    image = rng.random((9, 11)).astype(np.float32)
    guide = rng.random((9, 11, 3)).astype(np.float32)
    result = guided_median(*_tensors(image, guide), radius=radius, sigma=sigma)
    np.testing.assert_array_equal(result[0, 0].numpy(), _brute_force(image, guide, radius, sigma))


def test_row_blocks_give_the_same_result(monkeypatch):
    rng = np.random.default_rng(4)
    image = rng.random((37, 20)).astype(np.float32)
    guide = rng.random((37, 20, 3)).astype(np.float32)
    whole = guided_median(*_tensors(image, guide))
    monkeypatch.setattr("cmsr.method.guided_median.ROWS_PER_BLOCK", 5)
    torch.testing.assert_close(guided_median(*_tensors(image, guide)), whole, rtol=0, atol=0)


def test_flat_regions_stay_flat_whatever_the_guide_texture():
    guide = torch.rand(1, 3, 24, 24, generator=torch.Generator().manual_seed(0))
    image = torch.full((1, 1, 24, 24), 0.4)
    torch.testing.assert_close(guided_median(image, guide), image, rtol=0, atol=0)


def test_values_come_from_the_neighbourhood():
    generator = torch.Generator().manual_seed(1)
    image = torch.rand(1, 2, 16, 16, generator=generator)
    guide = torch.rand(1, 1, 16, 16, generator=generator)
    result = guided_median(image, guide, radius=1)
    pad = torch.nn.functional.pad(image, (1, 1, 1, 1), mode="replicate")
    neighbours = torch.nn.functional.unfold(pad, 3).view(1, 2, 9, 16, 16)
    assert ((neighbours == result.unsqueeze(2)).any(dim=2)).all()


def test_a_uniform_guide_gives_the_plain_median():
    image = torch.rand(1, 1, 12, 12, generator=torch.Generator().manual_seed(2))
    pad = torch.nn.functional.pad(image, (1, 1, 1, 1), mode="replicate")
    plain = torch.nn.functional.unfold(pad, 3).view(1, 1, 9, 12, 12).median(dim=2).values
    torch.testing.assert_close(guided_median(image, torch.zeros(1, 3, 12, 12)), plain)


def test_a_blurred_edge_moves_onto_the_guide_edge():
    truth = torch.zeros(1, 1, 16, 16)
    truth[..., 7:] = 1.0
    blurred = truth.clone()
    blurred[..., 6] = 0.5  # the estimate's edge spills one pixel onto the left side
    guide = truth.repeat(1, 3, 1, 1) * 0.8 + 0.1
    result = guided_median(blurred, guide)
    torch.testing.assert_close(result, truth)


def test_radius_zero_is_the_identity_and_bad_arguments_raise():
    image, guide = torch.rand(1, 1, 5, 5), torch.rand(1, 3, 5, 5)
    assert guided_median(image, guide, radius=0) is image
    with pytest.raises(ValueError, match="pixel grid"):
        guided_median(image, torch.rand(1, 3, 5, 6))
    with pytest.raises(ValueError, match="sigma"):
        guided_median(image, guide, sigma=0.0)


def test_weighted_median_heavy_weight_wins():
    values = torch.tensor([[1.0, 5.0, 2.0, 4.0]])
    assert weighted_median(values, torch.tensor([[1.0, 1.0, 1.0, 1.0]]), 1).item() == 2.0
    assert weighted_median(values, torch.tensor([[0.1, 9.0, 0.1, 0.1]]), 1).item() == 5.0


def test_cmsr_applies_it_with_the_aligned_guide_then_back_projects_and_clips():
    import cmsr

    rng = np.random.default_rng(5)
    target = rng.random((12, 12)).astype(np.float32)
    guide = rng.random((48, 48, 3)).astype(np.float32)
    config = cmsr.Config.preset("quick", max_iters=6, min_iters=2, align="affine",
                                clamp_to_local_range=True)
    model = cmsr.CMSR(config).fit(target, guide)
    plain = model.predict_tensor()
    model.config = config.replace(guided_median_radius=1, guided_median_sigma=0.1)
    median = guided_median(plain, model.aligned_guide(), radius=1, sigma=0.1)
    assert model.pair is not None
    target = model.pair.target
    expected = clamp_to_local_range(
        back_project(median, target, iterations=config.back_projection_iters,
                     kernel=config.degradation, valid=model.pair.valid), target)
    torch.testing.assert_close(model.predict_tensor(), expected, rtol=0, atol=0)
    assert not torch.equal(expected, plain)
