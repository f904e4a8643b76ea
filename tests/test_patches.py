"""Tests for cmsr.method.patches: exact grid crops, shared geometry, shapes, masks, gradients."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from cmsr.method.config import Config
from cmsr.method.infer import dihedral
from cmsr.method.patches import (
    crop,
    downscaling_batch,
    random_patch_affines,
    training_batch,
    upscaling_batch,
)
from cmsr.method.resample import downsample, upsample_bicubic

PLAIN = Config.preset("quick", flips=False, augment_probability=0.0, patch_size=8,
                      batch_size=6)


def _pair(h=12, w=12, scale=4, c=1, big_c=3, seed=0):
    generator = torch.Generator().manual_seed(seed)
    target = torch.rand(1, c, h, w, generator=generator)
    guide = torch.rand(1, big_c, round(h * scale), round(w * scale), generator=generator)
    return target, guide, torch.ones(1, 1, h, w)


def _starts(theta: torch.Tensor, patch: tuple[int, int], image: tuple[int, int]):
    """Top-left pixel (y, x) of an unrotated crop, from theta's translation."""
    (ph, pw), (h, w) = patch, image
    x0 = (theta[:, 0, 2].double() + 1) * w / 2 - pw / 2
    y0 = (theta[:, 1, 2].double() + 1) * h / 2 - ph / 2
    return y0, x0


def _grid_corners(theta: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The patch's outer corners (normalized patch coords +-1) in image coordinates."""
    corners = torch.tensor([[-1.0, -1.0], [1.0, -1.0], [-1.0, 1.0], [1.0, 1.0]],
                           dtype=torch.float64)
    theta = theta.double()
    return torch.einsum("bij,kj->bki", theta[:, :, :2], corners) + theta[:, None, :, 2]


# ------------------------------------------------------------------ random_patch_affines


def test_plain_affines_are_pixel_aligned_translations():
    generator = torch.Generator().manual_seed(0)
    theta = random_patch_affines(50, (8, 6), (12, 20), PLAIN, generator)
    assert theta.shape == (50, 2, 3) and theta.dtype == torch.float32
    linear = theta[:, :, :2]
    torch.testing.assert_close(linear, torch.tensor([[6 / 20, 0.0], [0.0, 8 / 12]]).expand(
        50, 2, 2))
    y0, x0 = _starts(theta, (8, 6), (12, 20))
    torch.testing.assert_close(y0, y0.round(), rtol=0, atol=1e-5)
    torch.testing.assert_close(x0, x0.round(), rtol=0, atol=1e-5)
    assert float(y0.min()) > -1e-5 and float(y0.max()) < 4 + 1e-5
    assert float(x0.min()) > -1e-5 and float(x0.max()) < 14 + 1e-5


def test_plain_affines_reach_every_position_including_last_row_and_column():
    generator = torch.Generator().manual_seed(0)
    theta = random_patch_affines(120, (8, 8), (12, 12), PLAIN, generator)
    y0, x0 = _starts(theta, (8, 8), (12, 12))
    assert set(y0.round().long().tolist()) == {0, 1, 2, 3, 4}
    assert set(x0.round().long().tolist()) == {0, 1, 2, 3, 4}


def test_patch_filling_whole_image_is_the_whole_image():
    generator = torch.Generator().manual_seed(0)
    theta = random_patch_affines(5, (12, 12), (12, 12), PLAIN, generator)
    expected = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]).expand(5, 2, 3)
    torch.testing.assert_close(theta, expected)


@pytest.mark.parametrize(("patch", "image"), [((8, 8), (16, 16)), ((6, 10), (20, 14)),
                                              ((5, 5), (9, 30))])
def test_augmented_patches_stay_inside_the_image(patch, image):
    config = Config.preset("quick", augment_probability=1.0, augment_rotation=30.0,
                           augment_shear=10.0, augment_zoom=(0.7, 1.2))
    generator = torch.Generator().manual_seed(1)
    theta = random_patch_affines(80, patch, image, config, generator)
    corners = _grid_corners(theta, patch)
    # the patch's rotated bounding box, in pixels, for those that fit
    h, w = image
    px = (corners[..., 0] + 1) * w / 2
    py = (corners[..., 1] + 1) * h / 2
    fits = ((px.amax(1) - px.amin(1)) <= w) & ((py.amax(1) - py.amin(1)) <= h)
    assert fits.sum() > 30
    tolerance = 1e-4
    assert float(px[fits].min()) >= -tolerance and float(px[fits].max()) <= w + tolerance
    assert float(py[fits].min()) >= -tolerance and float(py[fits].max()) <= h + tolerance


def test_augmented_patches_spread_over_the_image():
    config = Config.preset("quick", augment_probability=1.0)
    generator = torch.Generator().manual_seed(2)
    theta = random_patch_affines(60, (8, 8), (40, 40), config, generator)
    centres_x = theta[:, 0, 2]
    assert float(centres_x.min()) < -0.5 and float(centres_x.max()) > 0.5


def test_augmented_patches_are_not_all_rectilinear():
    config = Config.preset("quick", augment_probability=1.0, flips=False)
    generator = torch.Generator().manual_seed(3)
    theta = random_patch_affines(50, (8, 8), (40, 40), config, generator)
    assert float(theta[:, 0, 1].abs().max()) > 0.01  # some rotation or shear


def test_flipped_patches_keep_area_and_orientation_set():
    config = Config.preset("quick", augment_probability=0.0, flips=True)
    generator = torch.Generator().manual_seed(4)
    theta = random_patch_affines(64, (8, 8), (16, 16), config, generator)
    linear = (theta[:, :, :2] * 2).round()  # patch/image = 1/2 -> entries in {-1, 0, 1}
    torch.testing.assert_close(theta[:, :, :2] * 2, linear, rtol=0, atol=1e-6)
    dets = torch.linalg.det(linear)
    assert set(dets.round().tolist()) == {-1.0, 1.0}
    distinct = {tuple(m.flatten().tolist()) for m in linear}
    assert len(distinct) == 8


def test_affines_are_deterministic_for_the_same_seed():
    config = Config.preset("quick")
    first = random_patch_affines(16, (8, 8), (20, 24), config, torch.Generator().manual_seed(7))
    again = random_patch_affines(16, (8, 8), (20, 24), config, torch.Generator().manual_seed(7))
    other = random_patch_affines(16, (8, 8), (20, 24), config, torch.Generator().manual_seed(8))
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


# ------------------------------------------------------------------------------ crop


def test_plain_crop_equals_slice_of_target_and_guide():
    target, guide, _ = _pair(12, 12, 4)
    generator = torch.Generator().manual_seed(0)
    theta = random_patch_affines(6, (8, 8), (12, 12), PLAIN, generator)
    target_crops = crop(target, theta, (8, 8), mode="bicubic", padding_mode="reflection")
    guide_crops = crop(guide, theta, (32, 32))
    y0, x0 = _starts(theta, (8, 8), (12, 12))
    for b in range(6):
        y, x = round(float(y0[b])), round(float(x0[b]))
        torch.testing.assert_close(target_crops[b], target[0, :, y:y + 8, x:x + 8],
                                   rtol=0, atol=1e-5)
        torch.testing.assert_close(guide_crops[b], guide[0, :, 4 * y:4 * y + 32, 4 * x:4 * x + 32],
                                   rtol=0, atol=1e-5)


def test_flipped_crops_are_dihedral_transforms_of_the_same_slice_in_target_and_guide():
    target, guide, _ = _pair(12, 12, 2)
    config = Config.preset("quick", flips=True, augment_probability=0.0)
    generator = torch.Generator().manual_seed(5)
    theta = random_patch_affines(8, (6, 6), (12, 12), config, generator)
    target_crops = crop(target, theta, (6, 6), mode="bicubic", padding_mode="reflection")
    guide_crops = crop(guide, theta, (12, 12))
    for b in range(8):
        matches = []
        for k in range(8):
            for y in range(7):
                for x in range(7):
                    candidate = dihedral(target[..., y:y + 6, x:x + 6], k)[0]
                    if torch.allclose(target_crops[b], candidate, rtol=0, atol=1e-5):
                        matches.append((k, y, x))
        assert len(matches) == 1, matches
        k, y, x = matches[0]
        expected = dihedral(guide[..., 2 * y:2 * y + 12, 2 * x:2 * x + 12], k)[0]
        torch.testing.assert_close(guide_crops[b], expected, rtol=0, atol=1e-5)


def test_gradients_flow_into_guide_through_crop():
    _, guide, _ = _pair(12, 12, 4)
    guide.requires_grad_(True)
    config = Config.preset("quick", augment_probability=1.0)
    theta = random_patch_affines(4, (8, 8), (12, 12), config, torch.Generator().manual_seed(0))
    crop(guide, theta, (32, 32)).sum().backward()
    assert guide.grad is not None and guide.grad.abs().sum() > 0


def test_gradients_flow_into_point_map_parameter():
    _, guide, _ = _pair(12, 12, 4)
    shift = torch.nn.Parameter(torch.zeros(2))
    theta = random_patch_affines(4, (8, 8), (12, 12), PLAIN, torch.Generator().manual_seed(0))
    out = crop(guide, theta, (32, 32), point_map=lambda grid: grid + shift)
    out.square().sum().backward()
    assert shift.grad is not None and bool((shift.grad != 0).all())


def test_point_map_shift_moves_the_crop_by_whole_pixels():
    _, guide, _ = _pair(12, 12, 4)
    theta = random_patch_affines(3, (8, 8), (12, 12), PLAIN, torch.Generator().manual_seed(1))
    step = 2.0 / guide.shape[-1]  # one guide pixel in normalized x
    shifted = crop(guide, theta, (32, 32), point_map=lambda g: g + torch.tensor([step, 0.0]))
    plain = crop(guide, theta, (32, 32))
    _, x0 = _starts(theta, (8, 8), (12, 12))
    for b in range(3):
        x = 4 * round(float(x0[b]))
        if x + 33 <= guide.shape[-1]:
            torch.testing.assert_close(shifted[b, ..., :-1], plain[b, ..., 1:], rtol=0,
                                       atol=1e-5)


def test_downscaling_batch_gradients_reach_guide_and_guide_map():
    target, guide, valid = _pair(12, 12, 4)
    guide.requires_grad_(True)
    shift = torch.nn.Parameter(torch.zeros(2))
    config = Config.preset("quick", patch_size=8)
    batch = downscaling_batch(target, guide, valid, (4.0, 4.0), config,
                              torch.Generator().manual_seed(0), lambda g: g + shift)
    (batch.guide * torch.randn_like(batch.guide)).sum().backward()
    assert guide.grad.abs().sum() > 0
    assert shift.grad.abs().sum() > 0


# ------------------------------------------------------------------------- batches


def test_downscaling_batch_plain_geometry():
    target, guide, valid = _pair(12, 12, 4)
    batch = downscaling_batch(target, guide, valid, (4.0, 4.0), PLAIN,
                              torch.Generator().manual_seed(3))
    theta = random_patch_affines(6, (8, 8), (12, 12), PLAIN, torch.Generator().manual_seed(3))
    y0, x0 = _starts(theta, (8, 8), (12, 12))
    for b in range(6):
        y, x = round(float(y0[b])), round(float(x0[b]))
        piece = target[..., y:y + 8, x:x + 8]
        torch.testing.assert_close(batch.supervision[b], piece[0], rtol=0, atol=1e-5)
        expected_up = upsample_bicubic(downsample(piece, (2, 2)), (8, 8))
        torch.testing.assert_close(batch.target_up[b], expected_up[0], rtol=0, atol=1e-5)
        guide_piece = guide[..., 4 * y:4 * y + 32, 4 * x:4 * x + 32]
        torch.testing.assert_close(batch.guide[b], downsample(guide_piece, (8, 8))[0],
                                   rtol=0, atol=1e-5)


def test_downscaling_batch_guide_shows_the_same_scene_as_target():
    yy, xx = torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="ij")
    target = (0.5 + 0.25 * torch.sin(xx / 2.5) + 0.2 * torch.cos(yy / 3.0))[None, None]
    guide = upsample_bicubic(target, (64, 64)).expand(1, 3, 64, 64)
    config = Config.preset("quick", patch_size=8, batch_size=8)  # flips and warps on
    batch = downscaling_batch(target, guide, torch.ones(1, 1, 16, 16), (4.0, 4.0), config,
                              torch.Generator().manual_seed(0))
    error = (batch.guide[:, :1] - batch.supervision).abs()
    assert float(error.max()) < 0.03
    # and a mismatched pairing would be much worse
    wrong = (batch.guide[:, :1] - batch.supervision.roll(1, dims=0)).abs()
    assert float(wrong.mean()) > 5 * float(error.mean())


@pytest.mark.parametrize(("size", "scale"), [((12, 12), (4.0, 4.0)), ((12, 12), (2.5, 2.5)),
                                             ((12, 10), (3.0, 2.0)), ((10, 14), (1.5, 1.5))])
@pytest.mark.parametrize("patch_size", [8, 32])
def test_batch_shapes(size, scale, patch_size):
    h, w = size
    target = torch.rand(1, 2, h, w)
    guide = torch.rand(1, 4, round(h * scale[0]), round(w * scale[1]))
    valid = torch.ones(1, 1, h, w)
    config = Config.preset("quick", patch_size=patch_size, batch_size=3)
    side = min(patch_size, h, w)
    down = downscaling_batch(target, guide, valid, scale, config, torch.Generator())
    assert down.supervision.shape == (3, 2, side, side)
    assert down.target_up.shape == (3, 2, side, side)
    assert down.guide.shape == (3, 4, side, side)
    assert down.valid.shape == (3, 1, side, side)
    up = upscaling_batch(target, guide, valid, scale, config, torch.Generator())
    small = (max(2, round(side / scale[0])), max(2, round(side / scale[1])))
    big = (round(small[0] * scale[0]), round(small[1] * scale[1]))
    assert up.supervision.shape == (3, 2, *big)
    assert up.target_up.shape == (3, 2, *big)
    assert up.guide.shape == (3, 4, *big)
    assert up.valid.shape == (3, 1, *big)
    for batch in (down, up):
        for tensor in (batch.supervision, batch.target_up, batch.guide, batch.valid):
            assert tensor.dtype == torch.float32
            assert bool(torch.isfinite(tensor).all())


def test_upscaling_batch_plain_geometry():
    target, guide, valid = _pair(12, 12, 2)
    config = Config.preset("quick", flips=False, augment_probability=0.0, patch_size=8,
                           batch_size=4)
    batch = upscaling_batch(target, guide, valid, (2.0, 2.0), config,
                            torch.Generator().manual_seed(3))
    theta = random_patch_affines(4, (4, 4), (12, 12), config, torch.Generator().manual_seed(3))
    y0, x0 = _starts(theta, (4, 4), (12, 12))
    for b in range(4):
        y, x = round(float(y0[b])), round(float(x0[b]))
        low = target[..., y:y + 4, x:x + 4]
        supervision = upsample_bicubic(low, (8, 8))
        torch.testing.assert_close(batch.supervision[b], supervision[0], rtol=0, atol=1e-5)
        expected_up = upsample_bicubic(downsample(supervision, (4, 4)), (8, 8))
        torch.testing.assert_close(batch.target_up[b], expected_up[0], rtol=0, atol=1e-5)
        torch.testing.assert_close(batch.guide[b], guide[0, :, 2 * y:2 * y + 8, 2 * x:2 * x + 8],
                                   rtol=0, atol=1e-5)


def test_box_degradation_reduces_patches_by_averaging():
    target, guide, valid = _pair(12, 12, 2)
    config = PLAIN.replace(degradation="box", batch_size=2)
    batch = downscaling_batch(target, guide, valid, (2.0, 2.0), config,
                              torch.Generator().manual_seed(0))
    reduced = F.avg_pool2d(batch.supervision, 2)
    torch.testing.assert_close(batch.target_up, upsample_bicubic(reduced, (8, 8)), rtol=0,
                               atol=1e-5)


def test_valid_mask_in_plain_crops_equals_valid_slice():
    target, guide, _ = _pair(12, 12, 4)
    generator = torch.Generator().manual_seed(11)
    valid = (torch.rand(1, 1, 12, 12, generator=generator) > 0.3).float()
    batch = downscaling_batch(target, guide, valid, (4.0, 4.0), PLAIN,
                              torch.Generator().manual_seed(1))
    theta = random_patch_affines(6, (8, 8), (12, 12), PLAIN, torch.Generator().manual_seed(1))
    y0, x0 = _starts(theta, (8, 8), (12, 12))
    for b in range(6):
        y, x = round(float(y0[b])), round(float(x0[b]))
        assert torch.equal(batch.valid[b], valid[0, :, y:y + 8, x:x + 8])


def test_valid_mask_excludes_invalid_pixels_in_warped_crops():
    target, guide, _ = _pair(16, 16, 2)
    valid = torch.ones(1, 1, 16, 16)
    valid[..., :, :8] = 0  # left half invalid
    config = Config.preset("quick", patch_size=8, batch_size=16, augment_probability=1.0)
    batch = downscaling_batch(target, guide, valid, (2.0, 2.0), config,
                              torch.Generator().manual_seed(2))
    theta = random_patch_affines(16, (8, 8), (16, 16), config, torch.Generator().manual_seed(2))
    grid = F.affine_grid(theta, [16, 1, 8, 8], align_corners=False)
    column = (grid[..., 0] + 1) * 16 / 2  # continuous x in pixels
    assert set(batch.valid.unique().tolist()) <= {0.0, 1.0}
    clearly_left = column < 7.9
    clearly_right = (column > 8.1) & (grid.abs() < 1 - 1 / 16).all(dim=-1)
    assert clearly_left.any() and clearly_right.any()
    assert not batch.valid[:, 0][clearly_left].any()
    assert batch.valid[:, 0][clearly_right].all()


def test_valid_mask_zero_outside_the_image():
    target, guide, valid = _pair(12, 12, 2)
    config = Config.preset("quick", patch_size=12, batch_size=8, augment_probability=1.0,
                           augment_rotation=45.0, augment_zoom=(1.0, 1.0), flips=False)
    batch = downscaling_batch(target, guide, valid, (2.0, 2.0), config,
                              torch.Generator().manual_seed(0))
    theta = random_patch_affines(8, (12, 12), (12, 12), config, torch.Generator().manual_seed(0))
    grid = F.affine_grid(theta, [8, 1, 12, 12], align_corners=False)
    outside = (grid.abs() > 1 + 1 / 12).any(dim=-1)
    inside = (grid.abs() < 1 - 1 / 12).all(dim=-1)
    assert outside.any()
    assert not batch.valid[:, 0][outside].any()
    assert batch.valid[:, 0][inside].all()
    assert bool(torch.isfinite(batch.supervision).all())


def test_upscaling_valid_mask_follows_nearest_low_res_pixel_at_non_integer_scale():
    target, guide, _ = _pair(12, 12, 2.5)
    valid = torch.ones(1, 1, 12, 12)
    valid[..., :, 5] = 0
    valid[..., 7, :] = 0
    config = Config.preset("quick", flips=False, augment_probability=0.0, patch_size=12,
                           batch_size=6)
    batch = upscaling_batch(target, guide, valid, (2.5, 2.5), config,
                            torch.Generator().manual_seed(0))
    theta = random_patch_affines(6, (5, 5), (12, 12), config, torch.Generator().manual_seed(0))
    y0, x0 = _starts(theta, (5, 5), (12, 12))
    size = batch.valid.shape[-1]  # 12 supervision pixels for 5 low-res pixels
    nearest = [math.floor((j + 0.5) * 5 / size) for j in range(size)]
    for b in range(6):
        y, x = round(float(y0[b])), round(float(x0[b]))
        low = valid[0, 0, y:y + 5, x:x + 5]
        expected = low[nearest][:, nearest]
        assert torch.equal(batch.valid[b, 0], expected)


def test_upscaling_valid_mask_at_integer_scale_is_pixel_replication():
    target, guide, _ = _pair(12, 12, 2)
    generator = torch.Generator().manual_seed(4)
    valid = (torch.rand(1, 1, 12, 12, generator=generator) > 0.3).float()
    config = Config.preset("quick", flips=False, augment_probability=0.0, patch_size=8,
                           batch_size=4)
    batch = upscaling_batch(target, guide, valid, (2.0, 2.0), config,
                            torch.Generator().manual_seed(9))
    theta = random_patch_affines(4, (4, 4), (12, 12), config, torch.Generator().manual_seed(9))
    y0, x0 = _starts(theta, (4, 4), (12, 12))
    for b in range(4):
        y, x = round(float(y0[b])), round(float(x0[b]))
        low = valid[0, 0, y:y + 4, x:x + 4]
        expected = low.repeat_interleave(2, 0).repeat_interleave(2, 1)
        assert torch.equal(batch.valid[b, 0], expected)


def test_training_batch_is_deterministic_for_the_same_generator_seed():
    target, guide, valid = _pair(12, 12, 4)
    config = Config.preset("quick", patch_size=8)

    def draw(seed):
        generator = torch.Generator().manual_seed(seed)
        return [training_batch(target, guide, valid, (4.0, 4.0), config, generator)
                for _ in range(4)]

    first, again, other = draw(3), draw(3), draw(4)
    for a, b in zip(first, again, strict=True):
        for name in ("target_up", "guide", "supervision", "valid"):
            assert torch.equal(getattr(a, name), getattr(b, name))
    assert any(not torch.equal(a.supervision, b.supervision)
               or a.supervision.shape != b.supervision.shape
               for a, b in zip(first, other, strict=True))


@pytest.mark.parametrize(("probability", "expected_size"), [(0.0, 10), (1.0, 8)])
def test_training_batch_scheme_follows_alternating_scales(probability, expected_size):
    target, guide, valid = _pair(12, 12, 4)
    config = Config.preset("quick", patch_size=10, alternating_scales=probability)
    generator = torch.Generator().manual_seed(0)
    for _ in range(3):
        batch = training_batch(target, guide, valid, (4.0, 4.0), config, generator)
        # down-sampling scheme: P x P = 10; up-sampling: round(P / 4) * 4 = 8
        assert batch.supervision.shape[-1] == expected_size
