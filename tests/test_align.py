"""The learnable guide alignment wired into training (cmsr.train / cmsr.api)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import cmsr
from cmsr.train import release_warp_layers, warp_point_map
from cmsr.warp import GuideWarp


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
    model = cmsr.CMSR(cmsr.Config.preset("quick", max_iters=2))
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


def test_affine_alignment_moves_toward_a_known_shift():
    """A guide displaced by 3 px: the affine layer learns to read it to the right.

    Full recovery is not asserted: the network's own convolutions absorb part of a
    small shift (here the layer learns about 1.5 of the 3 px; issue 3 tracks it).
    """
    shift = 3
    target = _scene()
    guide = np.repeat(_scene(shift=shift)[..., None], 3, axis=2)
    config = cmsr.Config.preset("quick", max_iters=200, align="affine", warp_lr_affine=50.0,
                                alternating_scales=0.0, augment_probability=0.0,
                                learning_rate=1e-3, min_iters=1000)
    model = cmsr.CMSR(config).fit(target[::4, ::4], guide)
    learned_px = float(model.warp.layers["affine"].matrix().detach()[0, 2]) * 64 / 2
    assert 1.0 < learned_px < shift + 1.0, learned_px
