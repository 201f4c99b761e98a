"""Convergence signals as in scikit-learn: ConvergenceWarning, loss_, the verbose stop line."""

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from minicnn import CNNClassifier, CNNRegressor
from minicnn.datasets import load_digits_images

SMALL = dict(layers=("conv4", "maxpool", "dense16"), padding="same", backend="cython", random_state=0)


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits_images()
    return X[:120], y[:120]


@pytest.mark.parametrize("cls", [CNNClassifier, CNNRegressor])
def test_max_iter_cutting_an_improving_fit_warns(cls, digits):
    X, y = digits
    with pytest.warns(ConvergenceWarning, match=r"maximum iterations \(max_iter=3\) reached"):
        est = cls(**SMALL, max_iter=3).fit(X, y)
    assert est.loss_ == est.loss_curve_[-1] and isinstance(est.loss_, float)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        est.partial_fit(X, y)   # one epoch by design: no warning (as scikit-learn's MLP)
        # stopped by n_iter_no_change: converged, no warning
        stopped = cls(**SMALL, max_iter=50, tol=1e9, n_iter_no_change=2).fit(X, y)
    assert stopped.n_iter_ == 3   # epoch 1 improves on inf, epochs 2 and 3 do not
    assert est.loss_ == est.loss_curve_[-1] and len(est.loss_curve_) == 4


@pytest.mark.parametrize("cls", [CNNClassifier, CNNRegressor])
def test_max_iter_ending_a_flat_loss_is_silent_and_says_so_in_the_stop_line(cls, digits, capsys):
    """The max_iter policy (minicnn.convergence): a loss that no longer falls by 1% of a constant prediction's
    loss per n_iter_no_change epochs has converged for practical purposes: no warning, the stop line says why."""
    X, y = digits
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        cls(**SMALL, max_iter=3, learning_rate=1e-9, dropout="none", verbose=1).fit(X, y)   # cannot move
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last == "Training stopped after epoch 3: max_iter=3 epochs reached."


def test_max_iter_warning_with_early_stopping_watches_the_validation_score(digits):
    from minicnn.convergence import still_improving

    est = CNNClassifier(**SMALL, max_iter=2)
    est.n_iter_no_change, est.loss_curve_ = 3, [2.0, 1.0, 0.5]
    est.validation_scores_ = [0.5, 0.9, 0.905, 0.91]
    assert not still_improving(est, 2.3)    # +0.005 per epoch over the last 3: below one point
    est.validation_scores_ = [0.5, 0.9, 0.93, 0.95]
    assert still_improving(est, 2.3)
    est.validation_scores_ = []
    assert still_improving(est, 2.3) and not still_improving(est, 200.0)   # -0.75 per epoch vs 1% of the baseline
    est.loss_curve_ = [1.0, 0.30, 0.36, 0.25, 0.33]   # dropout noise: the last two epochs differ by 0.08
    assert not still_improving(est, 2.3)


def test_unfitted_estimator_has_no_loss():
    assert not hasattr(CNNClassifier(), "loss_")


@pytest.mark.parametrize("early_stopping, monitored", [(False, "training loss"), (True, "validation score")])
def test_verbose_says_why_training_stopped(digits, capsys, early_stopping, monitored):
    X, y = digits
    CNNClassifier(**SMALL, max_iter=50, tol=1e9, n_iter_no_change=2, verbose=1,
                  early_stopping=early_stopping).fit(X, y)
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last == (f"Training stopped after epoch 3: the {monitored} did not improve by more than tol=1000000000.0 "
                    f"for n_iter_no_change=2 consecutive epochs.")
    with pytest.warns(ConvergenceWarning):
        CNNClassifier(**SMALL, max_iter=2, verbose=1).fit(X, y)
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last == ("Training stopped after epoch 2: max_iter=2 epochs reached (the training loss was still "
                    "improving: more epochs may help).")
    est = CNNClassifier(**SMALL, max_iter=2)
    with pytest.warns(ConvergenceWarning):
        est.fit(X, y)
    assert capsys.readouterr().out == ""   # silent without verbose
    np.testing.assert_array_equal(est.classes_, np.arange(10))


@pytest.mark.parametrize("max_iter, window", [(3, "over all 3 epochs, fewer than n_iter_no_change=5,"),
                                              (7, "over the last n_iter_no_change=5 epochs")])
def test_the_max_iter_warning_states_the_epochs_it_read(max_iter, window):
    X, y = load_digits_images()
    with pytest.warns(ConvergenceWarning) as caught:
        CNNClassifier(max_iter=max_iter, n_iter_no_change=5, random_state=0).fit(X[:300], y[:300])
    assert any(window in str(w.message) for w in caught), [str(w.message) for w in caught]
