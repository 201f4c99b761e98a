"""Learning-rate schedules: the factor applied to ``learning_rate`` in each epoch.

The schedule sets the optimizer's step size at the start of every epoch; the
fused update kernels take the step size as an argument on every call, so
nothing is baked into the optimizer state.

* ``"constant"``: factor 1.
* ``"cosine"``: ``0.5 * (1 + cos(pi * e / max_iter))`` for the ``e``-th epoch
  (0-based) of a cycle of ``max_iter`` epochs: from 1 towards 0 (Loshchilov &
  Hutter 2017, SGDR, without restarts inside a fit).
* ``"step"``: factor ``STEP_GAMMA ** k`` where ``k`` counts the milestones
  ``STEP_MILESTONES`` (fractions of ``max_iter``, rounded down) already
  reached: 0.1x at half of ``max_iter``, 0.01x at three quarters (the
  ResNet / PyTorch ``MultiStepLR`` recipe).
* ``"adaptive"``: starts at 1 and is divided by ``ADAPTIVE_DIVISOR`` each time
  ``ADAPTIVE_PATIENCE`` consecutive epochs fail to improve the monitored
  score by ``tol`` (the validation score with early stopping, else the
  training loss), as scikit-learn's ``MLPClassifier(learning_rate="adaptive")``.

Continuing training: a ``fit`` (warm-started or not) starts a new cycle at
the full ``learning_rate``; ``partial_fit`` continues the current cycle, one
epoch per call (``cosine`` and ``step`` restart every ``max_iter`` calls,
``adaptive`` keeps its reduced factor).
"""

import math
from dataclasses import dataclass

SCHEDULES = ("constant", "cosine", "step", "adaptive")
STEP_MILESTONES = (0.5, 0.75)
STEP_GAMMA = 0.1
ADAPTIVE_DIVISOR = 5.0
ADAPTIVE_PATIENCE = 2


def schedule_factor(schedule, epoch, max_iter):
    """Factor of a fixed schedule for the ``epoch``-th (0-based) epoch of a cycle of ``max_iter`` epochs.

    Parameters
    ----------
    schedule : {"constant", "cosine", "step"}
    epoch : int >= 0
        Position in the cycle (taken modulo ``max_iter``).
    max_iter : int >= 1

    Returns
    -------
    float in (0, 1]

    Examples
    --------
    >>> [round(schedule_factor("cosine", e, 4), 3) for e in range(4)]
    [1.0, 0.854, 0.5, 0.146]
    >>> [round(schedule_factor("step", e, 4), 3) for e in range(4)]
    [1.0, 1.0, 0.1, 0.01]
    """
    e = epoch % max_iter
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * e / max_iter))
    if schedule == "step":
        return STEP_GAMMA ** sum(e >= int(m * max_iter) for m in STEP_MILESTONES)
    return 1.0


@dataclass
class LRSchedule:
    """The state of a schedule across the epochs of one estimator (a dataclass: compared by value).

    Parameters
    ----------
    schedule : {"constant", "cosine", "step", "adaptive"}
    max_iter : int
        Epochs of one cycle.

    Attributes
    ----------
    epoch : int
        Epochs completed in the current cycle.

    Examples
    --------
    >>> s = LRSchedule("adaptive", 10)
    >>> for improved in (True, False, False):
    ...     s.end_epoch(improved)
    >>> s.factor
    0.2
    """

    schedule: str
    max_iter: int
    epoch: int = 0
    _stalled: int = 0
    _adaptive: float = 1.0

    @property
    def factor(self):
        """Factor of the next epoch (``learning_rate * factor`` is used); unchanged until :meth:`end_epoch`."""
        if self.schedule == "adaptive":
            return self._adaptive
        return schedule_factor(self.schedule, self.epoch, self.max_iter)

    def end_epoch(self, improved):
        """Advance after a completed epoch; ``improved``: the monitored score improved by ``tol``."""
        self.epoch += 1
        self._stalled = 0 if improved else self._stalled + 1
        if self.schedule == "adaptive" and self._stalled >= ADAPTIVE_PATIENCE:
            self._adaptive /= ADAPTIVE_DIVISOR
            self._stalled = 0
