"""A terminal progress bar for training, fed by :class:`cmsr.method.train.StepInfo`.

>>> progress = TrainingProgress(enabled=True)
>>> model = cmsr.CMSR(config).fit(target, guide, on_step=progress)    # doctest: +SKIP
>>> progress.close()                                                  # doctest: +SKIP

The bar of each training stage counts up to the step limit (``max_iters``) and shows
elapsed time, time left, the loss and the learning rate. Training may stop before the
limit when the learning-rate schedule has run out; the bar then ends at the step
reached, marked "stopped early".
"""

from __future__ import annotations

import sys
from typing import TextIO

from tqdm import tqdm

from cmsr.method.train import StepInfo


class TrainingProgress:
    """One tqdm bar per training stage: step, loss, learning rate, elapsed and time left.

    Call it with each :class:`StepInfo` (it is an ``on_step`` callback); call
    :meth:`close` when training ends (early stops leave the bar at the step reached).

    Parameters
    ----------
    enabled:
        False makes it silent (``--quiet``); steps are still counted.
    file:
        Where the bars are drawn; default ``sys.stderr``.

    Attributes
    ----------
    steps:
        Training steps taken so far, summed over the stages.
    """

    def __init__(self, *, enabled: bool = True, file: TextIO | None = None) -> None:
        self.enabled = enabled
        self.file = file
        self.bar: tqdm | None = None
        self.stage: tuple[str, int] | None = None
        self.steps = 0
        self._stage_step = 0
        self._loss = float("nan")

    def __call__(self, info: StepInfo) -> None:
        """Advance to ``info.step`` of stage ``info.stage``."""
        if (info.phase, info.stage) != self.stage:
            self.close()
            self.stage = (info.phase, info.stage)
            self._stage_step = 0
            if self.enabled:
                label = (f"{info.phase} {info.stage + 1}/{info.stages}" if info.stages > 1
                         else info.phase)
                self.bar = tqdm(total=info.max_steps, desc=label, unit="step",
                                file=self.file if self.file is not None else sys.stderr,
                                dynamic_ncols=True, leave=True)
        self.steps += info.step - self._stage_step
        self._stage_step = info.step
        self._loss = info.loss
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{info.loss:.4f}", lr=f"{info.learning_rate:.0e}",
                                 refresh=False)
            self.bar.update(info.step - self.bar.n)

    def close(self, *, finished: bool = True) -> None:
        """Finish the current bar, if any, at the step reached.

        ``finished=False`` (training was interrupted or failed) leaves out the
        "stopped early" note.
        """
        bar = self.bar
        if bar is None:
            return
        if finished and bar.total is not None and bar.n < bar.total:
            bar.set_postfix_str(f"loss={self._loss:.4f}, stopped early: learning rate "
                                "schedule ended", refresh=False)
        bar.close()
        self.bar = None


class TileProgress:
    """One tqdm bar over the output tiles of a tiled inference, fed ``(done, total)``
    (an ``on_tile`` callback of :func:`cmsr.method.streaming.super_resolve_tiled`); call
    :meth:`close` at the end.

    Parameters
    ----------
    enabled:
        False makes it silent (``--quiet``); tiles are still counted in :attr:`done`.
    file:
        Where the bar is drawn; default ``sys.stderr``.
    """

    def __init__(self, *, enabled: bool = True, file: TextIO | None = None) -> None:
        self.enabled = enabled
        self.file = file
        self.bar: tqdm | None = None
        self.done = 0

    def __call__(self, done: int, total: int) -> None:
        """``done`` of ``total`` tiles are written."""
        if self.bar is None and self.enabled:
            self.bar = tqdm(total=total, desc="inference", unit="tile",
                            file=self.file if self.file is not None else sys.stderr,
                            dynamic_ncols=True, leave=True)
        self.done = done
        if self.bar is not None:
            self.bar.update(done - self.bar.n)

    def close(self) -> None:
        """Finish the bar, if any."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None
