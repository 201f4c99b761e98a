"""Why training stopped: scikit-learn's ``ConvergenceWarning`` and the ``verbose`` stop line."""

from sklearn.exceptions import ConvergenceWarning

from ._caller import warn

#: An epoch whose mean training loss exceeds this multiple of a constant prediction's loss was unstable (an
#: epoch mean far worse than chance, below the ``DIVERGENCE_GROWTH`` that stops a fit).
UNSTABLE_GROWTH = 2.0


def no_improvement_reason(estimator, validated):
    """The stop reason of the ``n_iter_no_change`` rule, naming the monitored quantity."""
    monitored = "validation score" if validated else "training loss"
    return (f"the {monitored} did not improve by more than tol={estimator.tol} for "
            f"n_iter_no_change={estimator.n_iter_no_change} consecutive epochs")


def report_stop(estimator, stop, incremental):
    """After the epoch loop of a fit: print the stop reason (``verbose``) and warn when ``max_iter`` cut it short.

    Parameters
    ----------
    estimator : BaseCNN
    stop : str or None
        Why the loop ended early; None when it ran all its epochs.
    incremental : bool
        ``partial_fit`` (one epoch by design: no warning and no line, as scikit-learn's MLP).

    Warns
    -----
    ConvergenceWarning
        When a ``fit`` ran ``max_iter`` epochs without the ``n_iter_no_change``
        rule stopping it (the monitored score was still improving), as
        scikit-learn's ``MLPClassifier``.
    """
    if incremental:
        return
    if stop is None:
        stop = f"max_iter={estimator.max_iter} epochs reached"
        warn(f"{type(estimator).__name__}: maximum iterations (max_iter={estimator.max_iter}) reached and "
             f"the optimization hasn't converged yet (the monitored score improved within the last "
             f"n_iter_no_change={estimator.n_iter_no_change} epochs); consider a larger max_iter.",
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
