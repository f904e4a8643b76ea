"""When to lower the learning rate and when to stop, from the reconstruction error.

As in ZSSR: fit a line to the most recent reconstruction errors; if its slope is not
clearly negative (smaller in magnitude than ``ratio`` times its own standard error),
the error has stopped falling at this learning rate, so divide the rate.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def error_still_falling(errors: Sequence[float], *, ratio: float = 1.5) -> bool:
    """Whether a line fitted to ``errors`` (oldest first) falls clearly.

    Parameters
    ----------
    errors:
        At least 3 reconstruction errors taken at equal step intervals.
    ratio:
        How many standard errors of the slope the fall must exceed.

    Examples
    --------
    >>> error_still_falling([1.0, 0.9, 0.8, 0.7])
    True
    >>> error_still_falling([0.5, 0.52, 0.49, 0.51, 0.5])
    False
    """
    y = np.asarray(errors, dtype=np.float64)
    if y.size < 3:
        raise ValueError("need at least 3 errors to fit a slope")
    x = np.arange(y.size, dtype=np.float64)
    x -= x.mean()
    slope = float((x * (y - y.mean())).sum() / (x * x).sum())
    residual = y - y.mean() - slope * x
    stderr = float(np.sqrt((residual**2).sum() / (y.size - 2) / (x * x).sum()))
    return -slope > ratio * stderr


class LearningRateBySlope:
    """The learning rate over a run, lowered when the error stops falling.

    Call :meth:`update` with each new reconstruction error; read :attr:`rate` and
    :attr:`finished`. State is explicit: the errors since the last change.
    """

    def __init__(self, initial: float, minimum: float, *, decay: float = 10.0,
                 window: int = 12, ratio: float = 1.5) -> None:
        self.rate = initial
        self.minimum = minimum
        self.decay = decay
        self.window = window
        self.ratio = ratio
        self.errors: list[float] = []

    @property
    def finished(self) -> bool:
        """True once the rate has been lowered below the minimum."""
        return self.rate < self.minimum

    def update(self, error: float, *, allow_decay: bool = True) -> bool:
        """Record an error; return True when the rate was lowered by this call.

        With ``allow_decay=False`` (a warm-up) the error is only recorded.
        """
        self.errors.append(float(error))
        if not allow_decay or len(self.errors) < self.window:
            return False
        if error_still_falling(self.errors[-self.window:], ratio=self.ratio):
            return False
        self.rate /= self.decay
        self.errors = []
        return True

    def lower_to(self, ceiling: float) -> bool:
        """Lower the rate to ``ceiling`` if it is above it (a scheduled decay, e.g. for
        the last steps of a capped run); return True when it changed.

        Examples
        --------
        >>> schedule = LearningRateBySlope(1e-3, 1e-6)
        >>> schedule.lower_to(1e-4), schedule.rate, schedule.lower_to(1e-3)
        (True, 0.0001, False)
        """
        if self.rate <= ceiling:
            return False
        self.rate = ceiling
        self.errors = []
        return True
