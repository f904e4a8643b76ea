"""Tests for cmsr.method.consistency: crops on the low-resolution grid, and the fine-tuning
lowering its own loss."""

from __future__ import annotations

import numpy as np
import torch

from cmsr import CMSR, Config
from cmsr.method.consistency import fine_tune_consistency, grid_crops
from cmsr.method.model import CMSRNet
from cmsr.method.resample import downsample, upsample_bicubic

TINY = Config.preset("quick", max_iters=10, eval_every=5, min_iters=5)


def test_grid_crops_cover_the_same_scene_part():
    generator = torch.Generator().manual_seed(1)
    for low_rows, low_cols, high_rows, high_cols in grid_crops((20, 30), (80, 120), 6, 20,
                                                               generator):
        assert high_rows.start == 4 * low_rows.start and high_rows.stop == 4 * low_rows.stop
        assert high_cols.start == 4 * low_cols.start and high_cols.stop == 4 * low_cols.stop
        assert low_rows.start >= 0 and low_rows.stop <= 20 and low_cols.stop <= 30


def test_grid_crops_never_exceed_a_small_image():
    crops = grid_crops((3, 5), (12, 20), 16, 2, torch.Generator().manual_seed(0))
    assert all((c[0].stop - c[0].start, c[1].stop - c[1].start) == (3, 5) for c in crops)


def _consistency_loss(net, stage_input, guide, measured):
    with torch.no_grad():
        out = net(upsample_bicubic(stage_input, tuple(guide.shape[-2:])), guide)
        return float((downsample(out, tuple(measured.shape[-2:]), kernel="box")
                      - measured).abs().mean())


def test_fine_tuning_lowers_the_consistency_error():
    torch.manual_seed(0)
    measured = torch.rand(1, 1, 12, 12)
    guide = torch.rand(1, 3, 48, 48)
    net = CMSRNet(1, 3, fe1_layers=3, fe1_channels=8, fe2_layers=2, fe2_channels=8)
    # a network that starts off consistent is pushed away first, so there is work to do
    with torch.no_grad():
        net.fe2[-1].weight.normal_(0, 0.3)
    config = TINY.replace(degradation="box", consistency_iters=60, consistency_batch=2,
                          consistency_patch=6, consistency_learning_rate=3e-3,
                          precision="float32")
    before = _consistency_loss(net, measured, guide, measured)
    records = fine_tune_consistency(net, measured, guide, measured, torch.ones(1, 1, 12, 12),
                                    config=config, generator=torch.Generator().manual_seed(0))
    after = _consistency_loss(net, measured, guide, measured)
    assert after < 0.7 * before
    assert records[-1].step == 60 and records[-1].loss < records[0].loss


def test_fit_runs_the_fine_tuning_and_records_it():
    rng = np.random.default_rng(0)
    guide = rng.random((32, 32, 3))
    target = guide[::4, ::4, 0].astype(np.float32)
    model = CMSR(TINY.replace(consistency_iters=5)).fit(target, guide)
    assert [r.step for r in model.consistency_records] == [5]
    assert model.predict().shape == (32, 32)
