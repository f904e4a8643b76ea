"""The training progress display (cmsr.pictures.progress)."""

from __future__ import annotations

import io

from cmsr.method.train import StepInfo
from cmsr.pictures.progress import TrainingProgress


def _step(step: int, stage: int, stages: int, phase: str = "train") -> StepInfo:
    return StepInfo(step=step, max_steps=10, loss=0.1, learning_rate=1e-3, seconds=0.1,
                    stage=stage, stages=stages, phase=phase)


def test_alignment_levels_and_stages_get_their_own_labelled_bars():
    out = io.StringIO()
    progress = TrainingProgress(file=out)
    for info in (_step(5, 0, 2, "align"), _step(10, 0, 2, "align"), _step(10, 1, 2, "align"),
                 _step(10, 0, 2), _step(10, 1, 2)):
        progress(info)
    progress.close()
    text = out.getvalue()
    for label in ("align 1/2", "align 2/2", "train 1/2", "train 2/2"):
        assert label in text, label
    assert progress.steps == 40


def test_a_single_stage_is_labelled_by_its_phase_alone():
    out = io.StringIO()
    progress = TrainingProgress(file=out)
    progress(_step(3, 0, 1))
    progress.close()
    assert "train:" in out.getvalue() and "1/1" not in out.getvalue()
