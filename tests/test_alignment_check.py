"""The network-free alignment check after the coarse fits (cmsr.method.alignment_check)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from test_align import _displaced_pair

import cmsr
from cmsr.method.alignment_check import AlignmentCheck, check_alignment, unexplained_share
from cmsr.method.resample import downsample
from cmsr.method.warp import affine_matrix


def _pair(size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """A ``(1, 1, s/4, s/4)`` target and the ``(1, 3, s, s)`` guide it lies on."""
    target, guide = _displaced_pair(size, torch.eye(2, 3, dtype=torch.float64))
    return (torch.from_numpy(target)[None, None],
            torch.from_numpy(guide).permute(2, 0, 1)[None].contiguous())


def _shifted(image: torch.Tensor, dx: int) -> torch.Tensor:
    """``image`` moved right by ``dx`` pixels (edges replicated)."""
    padded = F.pad(image, (dx, 0, 0, 0), mode="replicate")
    return padded[..., :image.shape[-1]]


def test_a_guide_that_is_a_local_affine_function_of_the_target_explains_it_all():
    target = torch.rand(1, 1, 20, 24, generator=torch.Generator().manual_seed(0))
    guide = (0.2 + 0.5 * target).expand(1, 3, 20, 24)
    assert unexplained_share(target, guide) < 0.01
    assert unexplained_share(target, 1 - guide) < 0.01  # contrast inverted: same
    assert unexplained_share(target, torch.full_like(guide, 0.5)) == 1.0
    assert unexplained_share(torch.zeros(1, 1, 8, 8), guide[..., :8, :8]) == 1.0


def test_moving_the_guide_raises_the_unexplained_share():
    target, guide = _pair(128)
    low = downsample(guide, tuple(target.shape[-2:]))
    scores = [unexplained_share(target, _shifted(low, dx)) for dx in (0, 1, 2)]
    assert scores[0] < scores[1] < scores[2], scores


def test_only_windows_of_valid_pixels_count():
    target, guide = _pair(128)
    low = downsample(guide, tuple(target.shape[-2:]))
    valid = torch.ones_like(target)
    valid[..., :, :10] = 0
    spoiled = target.clone()
    spoiled[..., :, :9] = torch.rand(spoiled[..., :, :9].shape,
                                     generator=torch.Generator().manual_seed(1))
    assert (unexplained_share(spoiled, low, valid=valid)
            == unexplained_share(target, low, valid=valid))
    assert unexplained_share(spoiled, low) > unexplained_share(target, low)


def test_check_keeps_a_warp_that_undoes_a_move_and_drops_one_that_adds_it():
    target, guide = _pair(128)
    moved = _shifted(guide, 6)
    kept = check_alignment(target, moved, guide, margin=0.05)
    assert kept.kept and kept.warped < 0.95 * kept.identity
    dropped = check_alignment(target, guide, moved, margin=0.05)
    assert not dropped.kept and dropped.warped > dropped.identity
    same = check_alignment(target, guide, guide, margin=0.0)
    assert same.kept and same.warped == same.identity  # margin 0: a tie keeps it
    assert not check_alignment(target, guide, guide, margin=0.05).kept
    assert "dropped" in dropped.describe() and "by 5%" in dropped.describe()
    assert "kept" in kept.describe()


def test_a_dropped_check_gives_the_fit_without_coarse_levels():
    """After a dropped check the first stage starts from the identity and frees the
    warp's layers coarse to fine, as with ``align_levels=0``: same result to the bit
    (the levels draw from their own seeds)."""
    target, guide = _displaced_pair(256, torch.eye(2, 3, dtype=torch.float64))
    config = cmsr.Config.preset("quick", align="full", max_iters=12, min_iters=12,
                                align_level_iters=10)
    dropped = cmsr.CMSR(config.replace(align_check_margin=0.99)).fit(target, guide)
    assert isinstance(dropped.alignment_check, AlignmentCheck)
    assert not dropped.alignment_check.kept and len(dropped.alignment_records) == 2
    without = cmsr.CMSR(config.replace(align_levels=0)).fit(target, guide)
    assert without.alignment_check is None
    np.testing.assert_array_equal(dropped.predict(), without.predict())


def test_a_dropped_check_with_no_warp_after_it_gives_the_fit_without_alignment():
    """``align_when_dropped="none"``: after a dropped check no warp is learned at all,
    the same result to the bit as ``align="none"``; a kept check still carries its warp."""
    target, guide = _displaced_pair(256, torch.eye(2, 3, dtype=torch.float64))
    config = cmsr.Config.preset("quick", align="full", max_iters=12, min_iters=12,
                                align_level_iters=10, align_when_dropped="none")
    dropped = cmsr.CMSR(config.replace(align_check_margin=0.99)).fit(target, guide)
    assert dropped.alignment_check is not None and not dropped.alignment_check.kept
    assert dropped.warp is None and len(dropped.alignment_records) == 2
    unaligned = cmsr.CMSR(config.replace(align="none")).fit(target, guide)
    np.testing.assert_array_equal(dropped.predict(), unaligned.predict())
    # the rig's warp to keep for the next frame is the identity
    identity = cmsr.CMSR(config.replace(align_check_margin=-1.0, align_levels=0,
                                        freeze_warp=True)).fit(target, guide)
    state = dropped.warp_state()
    for name, value in identity.warp_state()["state_dict"].items():
        torch.testing.assert_close(state["state_dict"][name], value)
    kept = cmsr.CMSR(config.replace(align_check_margin=0.0, max_iters=1, min_iters=1,
                                    align_level_iters=150)).fit(
        *_displaced_pair(256, affine_matrix(3.0, shift_xy=(2 * 8.0 / 256, 0.0))))
    assert kept.alignment_check is not None and kept.alignment_check.kept
    assert kept.warp is not None


def test_a_kept_check_carries_the_coarse_warp_on_and_no_check_is_made_when_off():
    true = affine_matrix(3.0, shift_xy=(2 * 8.0 / 256, 2 * -6.0 / 256))
    target, guide = _displaced_pair(256, true)
    config = cmsr.Config.preset("quick", align="affine", max_iters=1, min_iters=1,
                                align_level_iters=150)
    model = cmsr.CMSR(config).fit(target, guide)
    assert model.alignment_check is not None and model.alignment_check.kept
    assert float(model.warp.layers["affine"].delta.detach().abs().sum()) > 0.0
    unchecked = cmsr.CMSR(config.replace(align_check_margin=-1.0)).fit(target, guide)
    assert unchecked.alignment_check is None
    small = cmsr.CMSR(config).fit(*_displaced_pair(64, true))  # too small for a level
    assert small.alignment_records == [] and small.alignment_check is None
