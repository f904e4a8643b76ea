"""Tests for cmsr.learned.matching: shifts, warps, the cost volume, and the CVM."""

from __future__ import annotations

import torch

from cmsr.learned.loss import matching_loss
from cmsr.learned.matching import (
    CrossViewMatching,
    cost_volume,
    shift_horizontally,
    upsample_disparity,
    warp_by_disparity,
)


def texture(height: int = 16, width: int = 24, seed: int = 0) -> torch.Tensor:
    """A smooth random texture ``(1, 1, h, w)`` in [0, 1]."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 1, height // 2, width // 2, generator=generator)
    return torch.nn.functional.interpolate(coarse, size=(height, width), mode="bilinear",
                                           align_corners=False)


def test_shift_moves_content_and_repeats_the_border() -> None:
    row = torch.arange(5.0).view(1, 1, 1, 5)
    assert shift_horizontally(row, 2).flatten().tolist() == [0, 0, 0, 1, 2]
    assert shift_horizontally(row, -1).flatten().tolist() == [1, 2, 3, 4, 4]
    assert shift_horizontally(row, 9).flatten().tolist() == [0] * 5


def test_warp_by_an_integer_disparity_is_a_shift_with_a_validity_mask() -> None:
    image = texture()
    warped, valid = warp_by_disparity(image, torch.full((1, 1, 16, 24), 3.0))
    assert torch.allclose(warped[..., 3:], image[..., :-3], atol=1e-6)
    assert valid[..., :3].sum() == 0 and bool((valid[..., 3:] == 1).all())


def test_upsampled_disparity_is_scaled() -> None:
    field = torch.full((1, 1, 4, 5), 1.5)
    big = upsample_disparity(field, 4)
    assert big.shape == (1, 1, 16, 20) and torch.allclose(big, torch.full_like(big, 6.0))


def test_cost_volume_peaks_at_the_true_disparity() -> None:
    features = torch.nn.functional.normalize(torch.randn(1, 8, 10, 20), dim=1)
    right = shift_horizontally(features, -2)  # right(x) = left(x + 2): d_left = 2
    cost = cost_volume(features, right, 3)
    assert cost.shape == (1, 7, 10, 20)
    assert bool((cost[..., 3:-3].argmax(dim=1) == 2 + 3).all())


def _shifted_pair(shift: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A target and a guide showing it from a view ``shift`` pixels to the side, in another
    'modality' (contrast inverted and squared)."""
    scene = texture(24, 40, seed=3)
    target = scene
    guide = (1.0 - shift_horizontally(scene, -shift)) ** 2
    return target, guide


def test_cvm_recovers_an_integer_disparity_by_construction() -> None:
    """With the same feature extractor for both views, a sharp soft arg-max of the raw
    correlation lands on the true disparity."""
    torch.manual_seed(0)
    cvm = CrossViewMatching(1, 1, features=8, max_disparity=3)
    cvm.guide_features.load_state_dict(cvm.target_features.state_dict())
    with torch.no_grad():
        cvm.log_sharpness.fill_(torch.log(torch.tensor(1000.0)))
    scene = torch.rand(1, 1, 24, 40, generator=torch.Generator().manual_seed(1))
    guide = shift_horizontally(scene, -2)  # guide(x) = scene(x + 2): scene(x) = guide(x - 2)
    fields = cvm(scene, guide)
    assert torch.allclose(fields.left[..., 4:-4, 6:-6], torch.full((1, 1, 16, 28), 2.0),
                          atol=0.05)
    assert torch.allclose(fields.right[..., 4:-4, 6:-6], torch.full((1, 1, 16, 28), 2.0),
                          atol=0.05)


def test_cvm_learns_a_cross_modal_disparity_in_a_few_steps() -> None:
    torch.manual_seed(0)
    target, guide = _shifted_pair(2)
    cvm = CrossViewMatching(1, 1, features=8, max_disparity=3)
    optimizer = torch.optim.Adam(cvm.parameters(), lr=1e-2)
    for _ in range(60):
        fields = cvm(target, guide)
        aligned, _ = warp_by_disparity(guide, fields.left)
        loss = matching_loss(target, aligned)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    inner = cvm(target, guide).left[..., 4:-4, 6:-6]
    assert abs(float(inner.detach().median()) - 2.0) < 0.25
