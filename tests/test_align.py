"""The learnable guide alignment wired into training (cmsr.method.train / cmsr.method.api)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import cmsr
from cmsr.method.train import release_warp_layers, warp_point_map
from cmsr.method.warp import GuideWarp, affine_matrix, apply_affine, identity_grid


def _scene(size: int = 64, shift: int = 0) -> np.ndarray:
    """A smooth-edged scene of discs, ``(size, size)`` float32 in [0, 1], moved by ``shift`` px."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    x = x - shift
    image = 0.2 + 0.1 * x / size
    for cx, cy, r, v in [(20, 22, 10, 0.9), (44, 40, 12, 0.5), (30, 50, 7, 0.7)]:
        inside = 1.0 / (1.0 + np.exp(((x - cx) ** 2 + (y - cy) ** 2) ** 0.5 - r))
        image = image * (1 - inside) + v * inside
    return image.astype(np.float32)


def test_no_alignment_means_no_warp():
    model = cmsr.CMSR(cmsr.Config.preset("quick", max_iters=2, align="none"))
    guide = np.repeat(_scene()[..., None], 3, axis=2)
    model.fit(_scene()[::4, ::4], guide)
    assert model.warp is None
    torch.testing.assert_close(model.aligned_guide(), model.pair.guide)


@pytest.mark.parametrize("align", ["affine", "affine+cpab", "full"])
def test_each_alignment_trains_its_layers_and_predicts(align):
    guide = np.repeat(_scene(shift=2)[..., None], 3, axis=2)
    config = cmsr.Config.preset("quick", max_iters=12, align=align, warp_release=(0.0, 0.0))
    model = cmsr.CMSR(config).fit(_scene()[::4, ::4], guide)
    expected = {"affine": ["affine"], "affine+cpab": ["affine", "cpab"],
                "full": ["affine", "cpab", "tps"]}[align]
    assert sorted(model.warp.layers.keys()) == expected
    moved = [name for name, layer in model.warp.layers.items()
             if any(float(p.detach().abs().sum()) > 0 for p in layer.parameters())]
    assert sorted(moved) == sorted(model.warp.layers.keys())
    result = model.predict()
    assert result.shape == (64, 64) and np.isfinite(result).all()


def test_warp_point_map_is_identity_at_init_and_carries_gradients():
    warp = GuideWarp("full")
    points = torch.rand(2, 5, 7, 2) * 2 - 1
    point_map = warp_point_map(warp, (32, 48))
    torch.testing.assert_close(point_map(points), points, atol=1e-5, rtol=0)
    shifted = warp_point_map(warp, (32, 48))(points)
    shifted.sum().backward()
    assert warp.layers["affine"].delta.grad is not None
    assert float(warp.layers["affine"].delta.grad.abs().sum()) > 0


def test_layers_are_released_coarse_to_fine():
    warp = GuideWarp("full")
    config = cmsr.Config(max_iters=100, warp_release=(0.2, 0.5))
    release_warp_layers(warp, 1, config)
    assert warp.active == {"affine"}
    release_warp_layers(warp, 30, config)
    assert warp.active == {"affine", "cpab"}
    release_warp_layers(warp, 60, config)
    assert warp.active == {"affine", "cpab", "tps"}


def _rendered(points: torch.Tensor) -> torch.Tensor:
    """A smooth scene with soft-edged discs, drawn at normalized points ``(..., 2)``."""
    x, y = points[..., 0], points[..., 1]
    value = 0.3 + 0.2 * torch.sin(3 * x + 1) * torch.cos(2 * y)
    for cx, cy, r, a in [(-0.4, -0.3, 0.25, 0.5), (0.35, 0.25, 0.3, -0.3),
                         (0.1, -0.5, 0.15, 0.4), (-0.3, 0.5, 0.2, 0.3)]:
        value = value + a * torch.sigmoid((r - ((x - cx) ** 2 + (y - cy) ** 2).sqrt()) / 0.03)
    value = value + 0.2 * torch.sigmoid((x + 0.5 * y - 0.2) / 0.02) * (y > 0.2)
    return value.clamp(0, 1)


def _displaced_pair(size: int, matrix: torch.Tensor, factor: int = 4
                    ) -> tuple[np.ndarray, np.ndarray]:
    """A thermal-like target (area-reduced by ``factor``) and an RGB guide of the same
    scene whose content is moved so that ``guide(matrix @ p) = scene(p)``."""
    full = torch.cat((matrix.double(), torch.tensor([[0.0, 0.0, 1.0]], dtype=torch.float64)))
    inverse = torch.linalg.inv(full)[:2]
    grey = _rendered(apply_affine(inverse, identity_grid(size, size, dtype=torch.float64)[0]))
    guide = torch.stack((grey, 0.7 * grey + 0.2, 1 - grey), dim=-1).numpy().astype(np.float32)
    fine = _rendered(identity_grid(4 * size, 4 * size, dtype=torch.float64)[0]).numpy()
    low = fine.reshape(size // factor, 4 * factor, size // factor, 4 * factor).mean(axis=(1, 3))
    return ((1 - low) ** 1.5).astype(np.float32), guide


def test_affine_layer_alone_recovers_a_known_shift_and_rotation():
    """Guide rotated by 2 degrees and moved by (3, -2) px against the target: in 300
    quick steps the affine layer alone finds the map. Measured over seeds 0-4: shift
    within 0.11 px, angle within 0.5 degrees, every point within 0.45 px (mean 0.13 to
    0.21 px) of the truth, from up to 4.7 px.

    The target is an area reduction of the scene. (An earlier version of this test
    point-sampled it, ``scene[::4, ::4]``, which moves the target by 1.5 px, so the
    layer rightly found 1.5 of a nominal 3 px.) Alternating scales are off: with the
    presets' 0.3 the alignment is worse although the warp learns from down-sampling
    steps only (here every point within 1.15 px, mean 0.3-0.6 px; on the same scene
    at 256 px the mean error late in a 300-step run is 1.9 px against 0.8 px, and 6 px
    against 1.3 px without its one hard edge). The up-sampling steps seem to teach
    the guide branch to answer guide edges weakly, so the alignment signal drowns in
    noise that Adam turns into full-size steps.
    """
    size, angle, shift = 64, 2.0, (3.0, -2.0)
    true = affine_matrix(angle, shift_xy=tuple(2 * s / size for s in shift))
    target, guide = _displaced_pair(size, true)
    config = cmsr.Config.preset("quick", align="affine", max_iters=300, min_iters=150,
                                alternating_scales=0.0)
    model = cmsr.CMSR(config).fit(target, guide)
    learned = model.warp.layers["affine"].matrix().detach().double()
    learned_angle = math.degrees(math.atan2(float(learned[1, 0]), float(learned[0, 0])))
    learned_shift = (learned[:, 2] * size / 2).tolist()
    assert abs(learned_angle - angle) < 0.75, learned_angle
    assert np.allclose(learned_shift, shift, atol=0.4), learned_shift
    grid = identity_grid(size, size, dtype=torch.float64)
    error_px = (apply_affine(learned, grid) - apply_affine(true.double(), grid)) * size / 2
    assert float(error_px.norm(dim=-1).max()) < 0.75


def test_warp_learns_from_down_sampling_steps_only():
    guide = np.repeat(_scene(shift=2)[..., None], 3, axis=2)
    config = cmsr.Config.preset("quick", max_iters=6, align="full", warp_release=(0.0, 0.0),
                                alternating_scales=1.0)  # up-sampling steps only
    model = cmsr.CMSR(config).fit(_scene()[::4, ::4], guide)
    assert all(float(p.detach().abs().sum()) == 0.0 for p in model.warp.parameters())
    moved = cmsr.CMSR(config.replace(alternating_scales=0.0)).fit(_scene()[::4, ::4], guide)
    assert float(moved.warp.layers["affine"].delta.detach().abs().sum()) > 0.0


def test_full_warp_stays_put_on_an_aligned_pair_of_any_size():
    """On an aligned pair the learned warp must not wander. Its learning rates are in
    pixels of the stage's target: with rates in normalized units (2 = the width) a
    large guide moved by several pixels per Adam step, and on EPFL NIR (1024 px) an
    aligned guide ended up to 9 px off. Here (256 px, seed 0) the rates in normalized
    units left the guide 2.6 px off on average, the rates in pixels 0.75 px (1.01 px
    since TPS has 6 x 6 points and the guide is warped bicubically; seeds 1, 2: 1.07,
    1.61 px). The stage training alone: no coarse alignment levels (see
    tests/test_coarse_alignment.py for those)."""
    size = 256
    target, guide = _displaced_pair(size, torch.eye(2, 3, dtype=torch.float64))
    config = cmsr.Config.preset("quick", align="full", max_iters=150, min_iters=150,
                                alternating_scales=0.0, warp_release=(0.0, 0.0),
                                align_levels=0)
    model = cmsr.CMSR(config).fit(target, guide)
    grid = model.warp.grid(size, size).detach()
    moved_px = ((grid - identity_grid(size, size)) * size / 2).norm(dim=-1)
    assert float(moved_px.mean()) < 1.25, float(moved_px.mean())
