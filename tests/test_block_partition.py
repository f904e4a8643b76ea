"""Block partition for piecewise-constant targets (cmsr.method.block_partition)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cmsr.method.block_partition import (
    END_SHARE,
    STEP_RADIUS,
    block_scale,
    gaussian_smooth,
    integer_scale,
    partition_blocks,
)


def _brute_force(estimate: np.ndarray, measured: np.ndarray, scale: int, strength: float,
                 step_share: float) -> np.ndarray:
    """Block by block from the module's definition, ranked by the value itself (no
    smoothing, no guide; ties in row order): ``(H, W)`` float64."""
    out = estimate.copy()
    padded = np.pad(measured, 1, mode="edge")
    r = STEP_RADIUS
    wide_padded = np.pad(measured, r, mode="edge")
    for i in range(measured.shape[0]):
        for j in range(measured.shape[1]):
            window = padded[i:i + 3, j:j + 3].ravel()
            low, high = window.min(), window.max()
            if high <= low:
                continue
            share = (measured[i, j] - low) / (high - low)
            if not 0.02 < share < 0.98:
                continue
            wide = wide_padded[i:i + 2 * r + 1, j:j + 2 * r + 1].ravel()
            end = END_SHARE * (wide.max() - wide.min())
            near = ((wide - wide.min()) <= end) | ((wide.max() - wide) <= end)
            if step_share > 0 and near.mean() < step_share:
                continue
            block = estimate[i * scale:(i + 1) * scale, j * scale:(j + 1) * scale].ravel()
            order = sorted(range(block.size), key=lambda k: -block[k])  # stable
            count = share * scale * scale
            whole = int(np.floor(count))
            target = np.full(block.size, low)
            for position, k in enumerate(order):
                if position < whole:
                    target[k] = high
                elif position == whole:
                    target[k] = low + (count - whole) * (high - low)
            moved = block + strength * (target - block)
            out[i * scale:(i + 1) * scale, j * scale:(j + 1) * scale] = moved.reshape(scale, scale)
    return out


def _diagonal_step(size: int = 32, low: float = 1.0, high: float = 5.0) -> torch.Tensor:
    """``(1, 1, size, size)`` float32: a step along a slanted line."""
    rows, cols = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    return torch.where(cols > 0.6 * rows + 5.3, high, low).float()[None, None]


def _blurred(truth: torch.Tensor, scale: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The box-measured truth and its bilinear enlargement (an edge blurred over pixels)."""
    measured = F.avg_pool2d(truth, scale)
    return measured, F.interpolate(measured, scale_factor=scale, mode="bilinear",
                                   align_corners=False)


@pytest.mark.parametrize(("scale", "strength", "step_share"),
                         [(2, 1.0, 0.6), (4, 0.5, 0.6), (4, 1.0, 0.0), (3, 0.3, 0.9)])
def test_matches_the_definition_block_by_block(scale, strength, step_share):
    generator = np.random.default_rng(scale)
    truth = _diagonal_step(8 * scale)[0, 0].double().numpy()
    truth += (generator.random(truth.shape) < 0.05) * 2.0  # a few specks: third levels
    measured = F.avg_pool2d(torch.from_numpy(truth)[None, None], scale)[0, 0].numpy()
    estimate = truth + generator.normal(0, 0.3, truth.shape)
    result = partition_blocks(torch.from_numpy(estimate)[None, None].float(),
                              torch.from_numpy(measured)[None, None].float(), sigma=0,
                              strength=strength, step_share=step_share)
    expected = _brute_force(estimate.astype(np.float32).astype(np.float64),
                            measured.astype(np.float32).astype(np.float64), scale, strength,
                            step_share)
    np.testing.assert_allclose(result[0, 0].double().numpy(), expected, atol=1e-4)


def test_full_strength_keeps_every_block_mean_and_sharpens_the_edge():
    truth = _diagonal_step(48)
    measured, blurred = _blurred(truth, 4)
    result = partition_blocks(blurred, measured, strength=1.0)
    moved = (F.avg_pool2d((result - blurred).abs(), 4) > 0)
    assert int(moved.sum()) >= 8  # the blocks along the edge
    # every block it moved now has the measured mean
    torch.testing.assert_close(F.avg_pool2d(result, 4)[moved], measured[moved], atol=1e-5,
                               rtol=0)
    before = (blurred - truth).abs().mean()
    after = (result - truth).abs().mean()
    assert after < 0.5 * before, (float(before), float(after))
    assert float(result.min()) >= 1.0 - 1e-6 and float(result.max()) <= 5.0 + 1e-6


def test_strength_moves_part_of_the_way():
    truth = _diagonal_step(32)
    measured, blurred = _blurred(truth, 4)
    full = partition_blocks(blurred, measured, strength=1.0)
    half = partition_blocks(blurred, measured, strength=0.5)
    torch.testing.assert_close(half, blurred + 0.5 * (full - blurred), atol=1e-5, rtol=0)
    assert partition_blocks(blurred, measured, strength=0.0) is blurred


def test_flat_and_ramps_are_left_alone():
    flat = torch.full((1, 1, 16, 16), 3.0)
    assert torch.equal(partition_blocks(flat, F.avg_pool2d(flat, 4), strength=1.0), flat)
    ramp = torch.arange(32.0).repeat(32, 1)[None, None]
    assert torch.equal(partition_blocks(ramp, F.avg_pool2d(ramp, 4), strength=1.0), ramp)


def test_the_guide_decides_where_the_result_cannot():
    # the truth steps inside blocks; the estimate is flat within each block (every rank a
    # tie) and the guide is bright exactly where the truth is high
    truth = _diagonal_step(32)
    measured = F.avg_pool2d(truth, 4)
    flat = measured.repeat_interleave(4, -2).repeat_interleave(4, -1)
    guide = (truth > 3).float().repeat(1, 3, 1, 1)
    guided = partition_blocks(flat, measured, guide=guide, strength=1.0, sigma=0)
    blind = partition_blocks(flat, measured, strength=1.0, sigma=0)
    guided_error = float((guided - truth).abs().mean())
    assert guided_error < 0.01
    assert float((blind - truth).abs().mean()) > 10 * max(guided_error, 1e-3)
    off = partition_blocks(flat, measured, guide=guide, strength=1.0, sigma=0,
                           guide_weight=0.0)
    assert torch.equal(off, blind)


def test_blocks_beside_an_unmeasured_pixel_are_left_alone():
    truth = _diagonal_step(32)
    measured, blurred = _blurred(truth, 4)
    valid = torch.ones_like(measured)
    valid[..., 3, 3] = 0.0  # a filled hole
    everywhere = partition_blocks(blurred, measured, strength=1.0)
    result = partition_blocks(blurred, measured, valid=valid, strength=1.0)
    near = torch.zeros_like(measured, dtype=torch.bool)
    near[..., 2:5, 2:5] = True
    near = near.repeat_interleave(4, -2).repeat_interleave(4, -1)
    assert not torch.equal(everywhere[near], blurred[near])  # it would have moved them
    assert torch.equal(result[near], blurred[near])
    assert torch.equal(result[~near], everywhere[~near])


def test_bands_are_partitioned_each_on_their_own():
    truth = torch.cat([_diagonal_step(32), 7.0 - _diagonal_step(32).transpose(-1, -2)], 1)
    measured, blurred = _blurred(truth, 4)
    together = partition_blocks(blurred, measured, strength=0.7)
    for band in range(2):
        alone = partition_blocks(blurred[:, band:band + 1], measured[:, band:band + 1],
                                 strength=0.7)
        torch.testing.assert_close(together[:, band:band + 1], alone, atol=0, rtol=0)


def test_sizes_and_strength_are_checked():
    image = torch.zeros(1, 1, 16, 16)
    assert block_scale(image, torch.zeros(1, 1, 4, 4)) == 4
    assert block_scale(image, torch.zeros(1, 1, 5, 4)) is None
    assert block_scale(image, torch.zeros(1, 1, 4, 8)) is None
    assert block_scale(image, image) is None
    assert integer_scale((12, 18), (4, 6)) == 3 and integer_scale((12, 18), (0, 6)) is None
    with pytest.raises(ValueError, match="no integer multiple"):
        partition_blocks(image, torch.zeros(1, 1, 5, 5))
    with pytest.raises(ValueError, match="strength"):
        partition_blocks(image, torch.zeros(1, 1, 4, 4), strength=1.5)


def test_gaussian_smooth_keeps_constants_and_spreads_a_point():
    constant = torch.full((1, 2, 9, 9), 4.0)
    torch.testing.assert_close(gaussian_smooth(constant, 1.5), constant)
    point = torch.zeros(1, 1, 15, 15)
    point[..., 7, 7] = 1.0
    smooth = gaussian_smooth(point, 1.0)
    assert abs(float(smooth.sum()) - 1.0) < 1e-5
    assert float(smooth[..., 7, 7]) < 0.2 and torch.equal(smooth, smooth.transpose(-1, -2))
    assert gaussian_smooth(point, 0) is point
