"""Why training stopped: scikit-learn's ``ConvergenceWarning`` and the ``verbose`` stop line.

The ``max_iter`` warning policy. A warning is for something the user should
act on. A fit that ran all ``max_iter`` epochs warns only when more epochs
would clearly still pay: when the training loss still fell by more than
``STILL_FALLING`` (1%) of a constant prediction's loss per epoch (the
least-squares slope over the last ``n_iter_no_change`` epochs, which the
noise of dropout does not fool as a difference of two epochs would); with
``early_stopping``, when the validation score still rose by more than
``STILL_FALLING`` (one point of accuracy or R^2) per epoch. At that rate ten
more epochs would remove another tenth of the chance-level loss. A fit whose
loss creeps down by ``tol``-sized steps has converged for every practical
purpose and is silent; scikit-learn's MLP warns there too, which buried the
few useful warnings under dozens in agrid search. The ``verbose`` stop line always says that ``max_iter`` ended the
fit, and whether the loss was still falling; the ``minicnn`` command, whose
``--epochs`` states the stop, shows that line instead of the warning.
"""

import math

from sklearn.exceptions import ConvergenceWarning

from ._caller import warn

#: An epoch whose mean training loss exceeds this multiple of a constant prediction's loss was unstable (an
#: epoch mean far worse than chance, below the ``DIVERGENCE_GROWTH`` that stops a fit).
UNSTABLE_GROWTH = 2.0
#: The ``max_iter`` warning's threshold: an improvement per epoch (over the last ``n_iter_no_change`` epochs) larger
#: than this fraction of a constant prediction's loss (or than this much validation score) means training still paid.
STILL_FALLING = 0.01
#: The text that starts the ``max_iter`` warning (the test suite filters it for its deliberately short fits).
MAX_ITER_WARNING = "maximum iterations"


def still_improving(estimator, baseline):
    """Whether the last ``n_iter_no_change`` epochs of ``estimator`` still improved clearly (see the module doc).

    Parameters
    ----------
    estimator : BaseCNN
        A fitted estimator with ``loss_curve_`` (and ``validation_scores_``
        when it monitored a validation split).
    baseline : float or None
        The loss of a constant prediction; None: any decrease counts.

    Returns
    -------
    bool
    """
    scores = getattr(estimator, "validation_scores_", None) or []
    if scores:
        window = scores[-estimator.n_iter_no_change:]
        return len(window) < 2 or _slope(window) > STILL_FALLING
    curve = estimator.loss_curve_[-estimator.n_iter_no_change:]
    scale = baseline if baseline is not None and baseline > 0 else 0.0
    return len(curve) < 2 or -_slope(curve) > STILL_FALLING * scale


def _slope(values):
    """Least-squares slope of ``values`` against 0, 1, 2, ... (0 for fewer than 2 values)."""
    n = len(values)
    if n < 2:
        return 0.0
    mean_x, mean_y = (n - 1) / 2, sum(values) / n
    return (sum((i - mean_x) * (v - mean_y) for i, v in enumerate(values))
            / sum((i - mean_x) ** 2 for i in range(n)))


def no_improvement_reason(estimator, validated):
    """The stop reason of the ``n_iter_no_change`` rule, naming the monitored quantity."""
    monitored = "validation score" if validated else "training loss"
    return (f"the {monitored} did not improve by more than tol={estimator.tol} for "
            f"n_iter_no_change={estimator.n_iter_no_change} consecutive epochs")


def report_stop(estimator, stop, incremental, baseline=None):
    """After the epoch loop of a fit: print the stop reason (``verbose``) and warn when ``max_iter`` cut it short.

    Parameters
    ----------
    estimator : BaseCNN
    stop : str or None
        Why the loop ended early; None when it ran all its epochs.
    incremental : bool
        ``partial_fit`` (one epoch by design: no warning and no line, as scikit-learn's MLP).
    baseline : float or None, default=None
        The loss of a constant prediction (the scale of "clearly falling").

    Warns
    -----
    ConvergenceWarning
        When a ``fit`` ran ``max_iter`` epochs without the ``n_iter_no_change``
        rule stopping it and the monitored quantity was still clearly
        improving (:func:`still_improving`).
    """
    if incremental:
        return
    if stop is None:
        stop = f"max_iter={estimator.max_iter} epochs reached"
        monitored = "validation score" if getattr(estimator, "validation_scores_", None) else "training loss"
        if still_improving(estimator, baseline):
            stop += f" (the {monitored} was still improving: more epochs may help)"
            unit = "a point" if monitored == "validation score" else "a constant prediction's loss"
            span = len((getattr(estimator, "validation_scores_", None) or estimator.loss_curve_)
                       [-estimator.n_iter_no_change:])
            window = (f"over the last n_iter_no_change={estimator.n_iter_no_change} epochs"
                      if span >= estimator.n_iter_no_change else
                      f"over all {span} epoch{'s' if span != 1 else ''}, fewer than n_iter_no_change="
                      f"{estimator.n_iter_no_change},")
            warn(f"{type(estimator).__name__}: {MAX_ITER_WARNING} (max_iter={estimator.max_iter}) reached and "
                 f"the optimization hasn't converged yet ({window} the {monitored} still improved by more than "
                 f"{STILL_FALLING:.0%} of {unit} per epoch); consider a larger max_iter.",
                 ConvergenceWarning)
    if estimator.verbose:
        print(f"Training stopped after epoch {estimator.n_iter_}: {stop}.", flush=True)


def warn_if_unstable(estimator, curve, baseline, untrained, causes):
    """Warn when a fit was unstable and never did better than a constant prediction.

    Parameters
    ----------
    estimator : BaseCNN
    curve : list of float
        The mean training losses of this fit's epochs.
    baseline : float
        The loss of a constant prediction (``log(n_classes)``, or the
        variance of the targets).
    untrained : float
        The loss of an all-zero output (``log(n_classes)``, or the mean
        square of the targets): where a fit starts.
    causes : callable
        ``causes() -> list of str``, the likely causes (names the parameter,
        e.g. ``learning_rate``).

    Warns
    -----
    ConvergenceWarning
        When at least 2 epochs ran, one epoch's mean loss exceeded
        ``UNSTABLE_GROWTH`` times ``max(baseline, untrained)`` (the loss
        grew, rather than starting high) and no epoch's mean loss was
        below ``baseline``: the fitted model is no better than predicting a
        constant (a divergence that stayed below the growth that raises).
        Never when the loss fell in every epoch (a high start, e.g. of a
        regressor's random output layer on standardized targets, that
        training is still bringing down).
    """
    if len(curve) < 2 or not baseline > 0:
        return
    worst = max(curve)
    steady = all(b < a for a, b in zip(curve, curve[1:]))   # a loss falling every epoch is not unstable
    if worst > UNSTABLE_GROWTH * max(baseline, untrained) and min(curve) >= baseline and not steady:
        warn(f"{type(estimator).__name__}: training was unstable and the model is no better than a constant "
             f"prediction: the mean training loss reached {worst:.4g} in epoch {curve.index(worst) + 1} of this fit "
             f"and never fell below {baseline:.4g}, the loss of a constant prediction (last epoch: "
             f"{curve[-1]:.4g}). Likely cause: {'; also '.join(causes())}.", ConvergenceWarning)
