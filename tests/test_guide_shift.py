"""The guide's whole-pixel offset for the guided finishes (cmsr.method.guide_shift): the
move itself, reading a moved window, the offset found on soft edges with a guide one
pixel off, the margin, the central window of a large result, and the API's use of it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import cmsr
from cmsr.evaluation.baselines.zssr import ZSSR
from cmsr.evaluation.evaluate import method_settings
from cmsr.method.guide_shift import (
    best_guide_shift,
    read_shifted,
    shift_window,
)
from cmsr.method.infer import back_project


def _scene(size: int = 64, scale: int = 4) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A piecewise-constant scene ``(1, 1, size, size)`` with steps inside measured
    pixels, its box reduction by ``scale``, and a soft result: the scene half blurred
    over 3 pixels (as a network leaves depth edges), back-projected onto the reduction."""
    yy, xx = torch.meshgrid(torch.arange(size) / size, torch.arange(size) / size,
                            indexing="ij")
    scene = ((xx >= 0.33).float() + 0.5 * (yy >= 0.55).float()
             + 0.7 * ((xx - 0.62) ** 2 + (yy - 0.3) ** 2 < 0.02).float())[None, None]
    measured = F.avg_pool2d(scene, scale)
    blurred = F.avg_pool2d(F.pad(scene, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    soft = back_project(0.5 * scene + 0.5 * blurred, measured, iterations=10, kernel="box")
    return scene, measured, soft


def test_shift_window_moves_by_whole_pixels_and_repeats_the_border():
    image = torch.arange(12.0).reshape(1, 1, 3, 4)
    moved = shift_window(image, (1, -1))
    assert moved[0, 0].tolist() == [[1.0, 2.0, 3.0, 3.0],
                                    [1.0, 2.0, 3.0, 3.0],
                                    [5.0, 6.0, 7.0, 7.0]]
    assert torch.equal(shift_window(image, (0, 0)), image)
    # a window of the moved image is the moved image's window
    assert torch.equal(shift_window(image, (1, -1), (1, 3, 1, 3)), moved[..., 1:3, 1:3])


@pytest.mark.parametrize("offset", [(0, 0), (1, 0), (-1, 1), (2, -2)])
def test_read_shifted_equals_the_moved_whole_image(offset):
    rng = np.random.default_rng(0)
    image = rng.random((9, 11, 3)).astype(np.float32)
    reads = []

    def read(box: tuple[int, int, int, int]) -> np.ndarray:
        reads.append(box)
        return image[box[0]:box[1], box[2]:box[3]]

    box = (0, 5, 6, 11)
    got = read_shifted(read, box, offset, image.shape[:2])
    whole = shift_window(torch.from_numpy(image).permute(2, 0, 1), offset).permute(1, 2, 0)
    np.testing.assert_array_equal(got, whole.numpy()[box[0]:box[1], box[2]:box[3]])
    top, bottom, left, right = reads[0]  # never more than the window's size is read
    assert len(reads) == 1 and bottom - top <= 5 and right - left <= 5


@pytest.mark.parametrize("offset", [(1, 0), (0, -1), (-1, 1), (2, 0)])
def test_a_guide_off_by_whole_pixels_is_moved_back(offset):
    scene, measured, soft = _scene()
    reach = max(abs(offset[0]), abs(offset[1]))
    found = best_guide_shift(soft, measured, _textured_guide(scene, offset), reach=reach)
    assert found.offset == (-offset[0], -offset[1]) == found.candidate
    assert found.moved
    assert found.correlations[found.offset] > 1.05 * found.correlations[(0, 0)]
    assert found.residuals[found.offset] < 0.95 * found.residuals[(0, 0)]
    assert "moved by" in found.describe()


def test_an_aligned_guide_stays_and_the_margin_holds_a_move_back():
    scene, measured, soft = _scene()
    found = best_guide_shift(soft, measured, _textured_guide(scene, (0, 0)), reach=1)
    assert found.offset == (0, 0) == found.candidate and not found.moved
    assert len(found.correlations) == 9 and not found.residuals  # no median was needed
    assert "not moved" in found.describe()
    off = _textured_guide(scene, (1, 0))
    gain = best_guide_shift(soft, measured, off, reach=1)
    assert gain.offset == (-1, 0)
    confirmed = 1 - gain.residuals[(-1, 0)] / gain.residuals[(0, 0)]
    proposed = gain.correlations[(-1, 0)] / gain.correlations[(0, 0)] - 1
    # a margin above either gain keeps the guide where it is
    for margin in (min(0.99, confirmed + 0.01), min(0.99, proposed + 0.01)):
        assert best_guide_shift(soft, measured, off, reach=1, margin=margin).offset == (0, 0)
    # reach 0 tries the unmoved guide alone
    assert list(best_guide_shift(soft, measured, off, reach=0).correlations) == [(0, 0)]


def test_a_guide_too_far_off_is_not_confirmed_by_a_lazy_median():
    # moved by 2 px with reach 1: the edges propose the 1 px that brings it nearer, but
    # the median's residual must confirm it; a guide whose edges the median never
    # reaches cannot win on the residual alone (it changes nothing)
    scene, measured, soft = _scene()
    found = best_guide_shift(soft, measured, _textured_guide(scene, (0, 2)), reach=1)
    assert found.candidate in {(0, -1), (0, 0)}
    assert found.offset in {(0, -1), (0, 0)}


def test_a_large_result_is_scored_on_a_central_window_with_the_same_answer():
    scene, measured, soft = _scene(size=128)
    guide = _textured_guide(scene, (0, 1))
    whole = best_guide_shift(soft, measured, guide, reach=1)
    windowed = best_guide_shift(soft, measured, guide, reach=1, window=48)
    assert whole.offset == windowed.offset == (0, -1)
    assert whole.correlations != windowed.correlations  # the window scores fewer pixels


def test_bad_reach_or_margin_raise():
    scene, measured, soft = _scene()
    with pytest.raises(ValueError, match="reach"):
        best_guide_shift(soft, measured, scene, reach=-1)
    with pytest.raises(ValueError, match="margin"):
        best_guide_shift(soft, measured, scene, margin=1.0)


def _textured_guide(scene: torch.Tensor, offset: tuple[int, int]) -> torch.Tensor:
    """A 3-band guide in [0, 1] with the scene's edges and a little noise (no tied
    colours), moved by ``offset``."""
    generator = torch.Generator().manual_seed(0)
    noise = 0.03 * torch.rand(1, 3, *scene.shape[-2:], generator=generator)
    return shift_window(scene.expand(1, 3, -1, -1) / 2.2 + noise, offset)


def _rolled_pair(size: int = 64, scale: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """A depth-like target and a guide whose edges lie one row lower."""
    scene, measured, _ = _scene(size, scale)
    guide = _textured_guide(scene, (1, 0))[0].permute(1, 2, 0).numpy()
    return measured[0, 0].numpy(), guide


def _finish_config(**changes: object) -> cmsr.Config:
    return cmsr.Config.preset("quick", degradation="box", guided_median_radius=1,
                              clamp_to_local_range=True, edge_sharpening=0.5,
                              block_partition=0.5, gradual=False, max_iters=6, **changes)


def test_predict_gives_the_finishes_the_guide_moved_by_the_offset_found(monkeypatch):
    # the networks' result is replaced by a soft result of the scene, so the offset is
    # the one best_guide_shift finds on it; the finishes must then read the guide moved
    # by it: what a run without the search gives when its guide is moved beforehand
    scene, measured, soft = _scene()
    target = measured[0, 0].numpy()
    guide = _textured_guide(scene, (1, 0))[0].permute(1, 2, 0).numpy()
    results = []
    for search, premoved in ((1, False), (0, True), (0, False)):
        model = cmsr.CMSR(_finish_config(guide_shift_search=search)).fit(target, guide)
        assert model.pair is not None
        unit = model.pair.normalization
        monkeypatch.setattr(model, "_network_result",
                            lambda pair, unit=unit: (soft - unit.offset) / unit.span)
        if premoved:
            moved = shift_window(model.aligned_guide(), (-1, 0))
            monkeypatch.setattr(model, "aligned_guide", lambda moved=moved: moved)
        results.append(model.predict())
        if search:
            assert model.guide_shift is not None and model.guide_shift.offset == (-1, 0)
            assert model.decide_guide_shift() == model.guide_shift
        else:
            assert model.guide_shift is None and model.decide_guide_shift() is None
    searched, premoved_result, unmoved = results
    np.testing.assert_array_equal(searched, premoved_result)
    assert float(np.abs(searched - unmoved).max()) > 1e-3


def test_the_networks_never_see_the_moved_guide():
    target, guide = _rolled_pair()
    searched = cmsr.CMSR(_finish_config(guide_shift_search=1)).fit(target, guide)
    plain = cmsr.CMSR(_finish_config()).fit(target, guide)
    assert searched.pair is not None and plain.pair is not None
    torch.testing.assert_close(searched._network_result(searched.pair),
                               plain._network_result(plain.pair))


def test_an_unmoved_guide_gives_the_result_without_the_search():
    scene, measured, _ = _scene()
    target = measured[0, 0].numpy()
    guide = _textured_guide(scene, (0, 0))[0].permute(1, 2, 0).numpy()
    base = cmsr.Config.preset("quick", degradation="box", guided_median_radius=1,
                              clamp_to_local_range=True, gradual=False, max_iters=6)
    searched = cmsr.CMSR(base.replace(guide_shift_search=1)).fit(target, guide)
    result = searched.predict()
    assert searched.guide_shift is not None and not searched.guide_shift.moved
    np.testing.assert_array_equal(result, cmsr.CMSR(base).fit(target, guide).predict())


def test_config_checks_and_the_presets():
    with pytest.raises(ValueError, match="guide_shift_search"):
        cmsr.Config(guide_shift_search=-1)
    assert cmsr.Config.preset("depth").guide_shift_search == 1
    assert cmsr.Config().guide_shift_search == 0
    # ZSSR reads no guide; a run without the guided median keeps its stored key
    assert ZSSR(cmsr.Config.preset("depth")).config.guide_shift_search == 0
    raw = cmsr.Config.preset("depth", guided_median_radius=0)
    assert "guide_shift_search" not in method_settings("cmsr", raw, {})["config"]
    assert method_settings("cmsr", cmsr.Config.preset("depth"), {})["config"][
        "guide_shift_search"] == 1
    off = cmsr.Config.preset("depth", guide_shift_search=0)
    assert "guide_shift_search" not in method_settings("cmsr", off, {})["config"]
    # ZSSR's runs keep their key: it leaves the search out whatever the preset says
    assert (method_settings("zssr", cmsr.Config.preset("depth"), {})
            == method_settings("zssr", off, {}))
