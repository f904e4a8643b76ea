"""A terminal progress bar for training, fed by :class:`cmsr.train.StepInfo`."""

from __future__ import annotations

import sys

from tqdm import tqdm

from cmsr.train import StepInfo


class TrainingProgress:
    """One tqdm bar per training stage: step, loss, learning rate, elapsed and time left.

    Call it with each :class:`StepInfo` (it is an ``on_step`` callback); call
    :meth:`close` when training ends (early stops leave the bar at the step reached).
    Writes to stderr; ``enabled=False`` makes it silent.
    """

    def __init__(self, *, enabled: bool = True) -> None:
        self.enabled = enabled
        self.bar: tqdm | None = None
        self.stage = -1

    def __call__(self, info: StepInfo) -> None:
        if not self.enabled:
            return
        if info.stage != self.stage:
            self.close()
            self.stage = info.stage
            label = f"train {info.stage + 1}/{info.stages}" if info.stages > 1 else "train"
            self.bar = tqdm(total=info.max_steps, desc=label, unit="step", file=sys.stderr,
                            dynamic_ncols=True, leave=True)
        assert self.bar is not None
        self.bar.update(info.step - self.bar.n)
        self.bar.set_postfix(loss=f"{info.loss:.4f}", lr=f"{info.learning_rate:.0e}",
                             refresh=False)

    def close(self) -> None:
        """Finish the current bar, if any."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None
