"""Tests for cmsr.learned.loss."""

from __future__ import annotations

import pytest
import torch

from cmsr.learned.loss import (
    consistency_loss,
    masked_mean_square,
    matching_loss,
    reconstruction_loss,
    total_loss,
)
from cmsr.learned.matching import Disparities, shift_horizontally
from cmsr.learned.network import NetworkOutput


def test_cssc_is_zero_for_consistent_inputs() -> None:
    guide_right = torch.rand(1, 2, 16, 32)
    # 1 low-resolution pixel at x2: the left view sees the right one moved 2 px right
    guide_left = shift_horizontally(guide_right, 2)
    field = torch.ones(1, 1, 8, 16)
    loss = consistency_loss(guide_left, guide_right, Disparities(field, field), scale=2)
    assert float(loss) == pytest.approx(0.0, abs=1e-10)


def test_cssc_is_positive_for_inconsistent_inputs() -> None:
    guide_right = torch.rand(1, 1, 16, 32)
    field = torch.ones(1, 1, 8, 16)
    wrong = consistency_loss(guide_right, guide_right, Disparities(field, field), scale=2)
    assert float(wrong) > 0.01
    assert float(consistency_loss(guide_right, guide_right, None, 2)) == 0.0
    assert float(consistency_loss(guide_right + 0.1, guide_right, None, 2)) == \
        pytest.approx(0.02, rel=1e-5)


def test_masked_mean_square_ignores_invalid_pixels() -> None:
    a, b = torch.zeros(1, 1, 2, 2), torch.tensor([[[[1.0, 9.0], [1.0, 9.0]]]])
    valid = torch.tensor([[[[1.0, 0.0], [1.0, 0.0]]]])
    assert float(masked_mean_square(a, b, valid)) == 1.0
    assert float(masked_mean_square(a, b, torch.zeros_like(valid))) == 0.0


def test_matching_loss_prefers_the_aligned_guide() -> None:
    torch.manual_seed(0)
    image = torch.nn.functional.interpolate(torch.rand(1, 1, 8, 12), size=(16, 24),
                                            mode="bilinear")
    other = 0.3 + 0.5 * image  # another modality: an affine change of intensity
    assert float(matching_loss(image, other)) < 0.05
    assert float(matching_loss(image, shift_horizontally(other, 3))) > 0.2


def test_reconstruction_losses() -> None:
    a, b = torch.zeros(4), torch.full((4,), 0.5)
    assert float(reconstruction_loss(a, b, "mse")) == 0.25
    assert float(reconstruction_loss(a, b, "l1")) == 0.5
    with pytest.raises(ValueError):
        reconstruction_loss(a, b, "huber")


def test_total_loss_adds_the_weighted_terms() -> None:
    truth = torch.rand(1, 1, 8, 8)
    output = NetworkOutput(truth + 0.1, guide=torch.zeros(1, 1, 8, 8))
    terms = total_loss(output, target_low=torch.rand(1, 1, 4, 4), truth=truth,
                       guide_truth=torch.full((1, 1, 8, 8), 0.5), scale=2,
                       consistency_weight=0.5, matching_weight=1.0)
    assert terms.reconstruction == pytest.approx(0.01, rel=1e-4)
    assert terms.consistency == pytest.approx(0.5, rel=1e-5)
    assert terms.matching == 0.0  # no CVM output
    assert float(terms.total) == pytest.approx(0.01 + 0.25, rel=1e-4)
