"""scikit-learn 1.9 callbacks on the epochs (plain fit, Pipeline, GridSearchCV), and the validation loss curve."""

import warnings

import numpy as np
import pytest
from sklearn.callback import ScoringMonitor
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from minicnn import CNNClassifier, CNNRegressor

N_DIGITS = 120
SMALL = dict(layers=("conv4", "maxpool", "dense8"), max_iter=3, backend="numpy", random_state=0)
ESTIMATORS = [CNNClassifier, CNNRegressor]


def _target(cls, y):
    return y if cls is CNNClassifier else y.astype(np.float32) / 9


def _quiet_fit(est, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # ConvergenceWarning of the 3-epoch fits
        return est.fit(X, y)


def _epoch_rows(monitor):
    return [row for row in monitor.get_logs().data if row["task_name"] == "epoch"]


class Recorder:
    """A FitCallback that records the hooks, optionally raising or asking to stop at one epoch's end."""

    def __init__(self, raise_at=None, stop_at=None):
        self.calls, self.raise_at, self.stop_at, self.weights = [], raise_at, stop_at, []

    def setup(self, estimator, context):
        self.calls.append("setup")

    def teardown(self, estimator, context):
        self.calls.append("teardown")

    def on_fit_task_begin(self, estimator, context, *, X=None, y=None, metadata=None, fitted_estimator=None):
        self.calls.append(f"begin {context.task_name}")

    def on_fit_task_end(self, estimator, context, *, X=None, y=None, metadata=None, fitted_estimator=None):
        self.calls.append(f"end {context.task_name}")
        if context.task_name != "epoch":
            return False
        self.weights.append(fitted_estimator.predict(X[:5]))
        epoch = sum(c == "end epoch" for c in self.calls)
        if epoch == self.raise_at:
            raise RuntimeError(f"callback failed at epoch {epoch}")
        return epoch == self.stop_at


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_scoring_monitor_scores_every_epoch_of_a_plain_fit(digits, cls):
    X, y = digits
    monitor = ScoringMonitor(scoring="neg_mean_squared_error" if cls is CNNRegressor else "accuracy")
    est = _quiet_fit(cls(**SMALL).set_callbacks(monitor), X, _target(cls, y))
    rows = _epoch_rows(monitor)
    assert [r["task_id"] for r in rows] == [0, 1, 2]
    key = "neg_mean_squared_error" if cls is CNNRegressor else "accuracy"
    assert rows[-1][key] == pytest.approx(est.score(X, _target(cls, y)) if cls is CNNClassifier
                                          else -np.mean((est.predict(X) - _target(cls, y)) ** 2))


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_hooks_order_stop_and_the_epoch_models(digits, cls):
    X, y = digits
    recorder = Recorder(stop_at=2)
    est = _quiet_fit(cls(**{**SMALL, "max_iter": 5}).set_callbacks(recorder), X, _target(cls, y))
    assert est.n_iter_ == 2   # stopped by the callback after the second epoch
    assert recorder.calls == ["setup", "begin fit", "begin epoch", "end epoch", "begin epoch", "end epoch",
                              "end fit", "teardown"]
    assert np.array_equal(recorder.weights[-1], est.predict(X[:5]))


@pytest.mark.parametrize("cls", ESTIMATORS)
@pytest.mark.parametrize("warm", [False, True])
def test_a_callback_that_raises_leaves_the_estimator_as_before(digits, cls, warm):
    X, y = digits
    target = _target(cls, y)
    est = cls(**SMALL)
    if warm:
        _quiet_fit(est, X, target)
        est.set_params(warm_start=True)
        before = [a.copy() for a in est._snapshot()[1]], est.n_iter_, list(est.loss_curve_)
    recorder = Recorder(raise_at=2)
    est.set_callbacks(recorder)
    with pytest.raises(RuntimeError, match="callback failed at epoch 2"):
        _quiet_fit(est, X, target)
    assert recorder.calls[-1] == "teardown"
    if warm:
        weights, n_iter, curve = before
        assert all(np.array_equal(a, b) for a, b in zip(est._snapshot()[1], weights))
        assert (est.n_iter_, est.loss_curve_) == (n_iter, curve)
    else:
        assert not hasattr(est, "network_") and not hasattr(est, "n_iter_")


def test_callbacks_inside_pipeline_and_grid_search(digits):
    X, y = digits
    flat = X.reshape(len(X), -1)
    monitor = ScoringMonitor(scoring="accuracy")
    pipe = make_pipeline(StandardScaler(), CNNClassifier(**SMALL, input_shape=(8, 8, 1)).set_callbacks(monitor))
    _quiet_fit(pipe, flat, y)
    rows = _epoch_rows(monitor)
    assert len(rows) == 3 and all(len(r["task_id_path"]) == 3 for r in rows)   # pipeline > step fit > epoch
    monitor = ScoringMonitor(scoring="accuracy")
    search = GridSearchCV(CNNClassifier(**SMALL).set_callbacks(monitor), {"dropout_rate": [0.1, 0.3]}, cv=2)
    _quiet_fit(search, X, y)
    rows = _epoch_rows(monitor)
    assert len(rows) == 3 * (2 * 2 + 1)   # 3 epochs of each of the 4 split fits and of the refit


def test_progress_bar_on_a_fit_a_pipeline_and_a_grid_search(digits, capsys):
    pytest.importorskip("rich")   # scikit-learn's ProgressBar draws with rich
    from sklearn.callback import ProgressBar

    X, y = digits
    _quiet_fit(CNNClassifier(**SMALL).set_callbacks(ProgressBar()), X, y)
    pipe = make_pipeline(StandardScaler(), CNNClassifier(**SMALL, input_shape=(8, 8, 1)))
    _quiet_fit(pipe.set_callbacks(ProgressBar(max_propagation_depth=None)), X.reshape(len(X), -1), y)
    search = GridSearchCV(CNNClassifier(**SMALL), {"dropout_rate": [0.1, 0.3]}, cv=2)
    _quiet_fit(search.set_callbacks(ProgressBar(max_propagation_depth=None)), X, y)
    out = capsys.readouterr().out
    assert "CNNClassifier - fit" in out and "Pipeline - fit" in out and "GridSearchCV - fit" in out


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_validation_loss_curve_beside_validation_scores(digits, cls):
    """One validation loss per epoch: log loss (MSE) of that epoch's model on the held-out split."""
    from sklearn.metrics import log_loss, mean_squared_error

    X, y = digits
    target = _target(cls, y)
    est = cls(**{**SMALL, "max_iter": 4}, early_stopping=True, validation_fraction=0.25)
    expected = []
    original = est._validation_metrics

    def independent(images, targets):   # scikit-learn's metrics on the model of this epoch
        if cls is CNNClassifier:
            proba = est.predict_proba(images)
            expected.append(log_loss(targets, proba, labels=np.arange(proba.shape[1])))
        else:
            expected.append(mean_squared_error(targets, est.predict(images).reshape(targets.shape)))
        return original(images, targets)

    est._validation_metrics = independent
    _quiet_fit(est, X, target)
    assert len(est.validation_loss_curve_) == len(est.validation_scores_) == len(est.loss_curve_) == est.n_iter_
    assert est.validation_loss_curve_ == pytest.approx(expected, rel=1e-6)
    without = _quiet_fit(cls(**SMALL), X, target)
    assert without.validation_loss_curve_ is None and without.validation_scores_ is None
