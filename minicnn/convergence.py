"""Why training stopped: scikit-learn's ``ConvergenceWarning`` and the ``verbose`` stop line."""

from sklearn.exceptions import ConvergenceWarning

from ._caller import warn


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
