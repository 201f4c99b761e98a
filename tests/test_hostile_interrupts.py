"""Ctrl-C at any point of an epoch (a batch, the validation score, the report line, the checkpoint, a callback) keeps
the completed epochs with consistent records, or, in the first epoch of a first fit, undoes the fit."""

import warnings

import numpy as np
import pytest

import minicnn._estimator_base as base
from minicnn import CNNClassifier, CNNRegressor, checkpoint

N_DIGITS = 64
COMMON = dict(layers=("conv4", "res4", "gmp"), max_iter=3, backend="numpy", n_threads=1, random_state=2,
              batch_size=32, early_stopping=True, validation_fraction=0.25, n_iter_no_change=50,
              dropout="after_each_layer", dropout_rate=0.2)


class _Stop:
    """A callback raising KeyboardInterrupt at the end of epoch ``at``."""

    def __init__(self, at):
        self.at, self.seen = at, 0

    def setup(self, estimator, context):
        pass

    def teardown(self, estimator, context):
        pass

    def on_fit_task_begin(self, estimator, context, **kw):
        pass

    def on_fit_task_end(self, estimator, context, **kw):
        if context.task_name == "epoch":
            self.seen += 1
            if self.seen == self.at:
                raise KeyboardInterrupt
        return False


def _on_call(owner, name, at, monkeypatch):
    """Make ``owner.name`` raise KeyboardInterrupt on its ``at``-th call."""
    original = getattr(owner, name)
    calls = []

    def wrapper(*args, **kwargs):
        calls.append(1)
        if len(calls) == at:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, wrapper)


#: Where the interrupt arrives in an epoch, and how to make it arrive there on that epoch.
POINTS = {
    "batch": lambda est, at, mp, tmp: _on_call(base, "train_epoch", at, mp),
    "validation score": lambda est, at, mp, tmp: _on_call(type(est), "_validation_metrics", at, mp),
    "report line": lambda est, at, mp, tmp: _on_call(base.EpochReporter, "end_epoch", at, mp),
    "checkpoint write": lambda est, at, mp, tmp: (est.set_params(checkpoint_path=tmp / "c.npz"),
                                                  _on_call(checkpoint.Checkpoint, "write", at, mp)),
    "callback": lambda est, at, mp, tmp: est.set_callbacks(_Stop(at)),
}


def _target(cls, y):
    return y if cls is CNNClassifier else y.astype(np.float32) / 9


@pytest.mark.parametrize("point", list(POINTS))
@pytest.mark.parametrize("cls", [CNNClassifier, CNNRegressor])
def test_ctrl_c_anywhere_in_epoch_2_keeps_epoch_1_whole(digits, tmp_path, monkeypatch, point, cls):
    X, y = digits
    y = _target(cls, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = cls(**dict(COMMON, max_iter=1)).fit(X, y)
    est = cls(**COMMON)
    POINTS[point](est, 2, monkeypatch, tmp_path)
    with pytest.warns(UserWarning, match="interrupted.*kept the weights of epoch 1"):
        est.fit(X, y)
    assert est.n_iter_ == 1 and est.t_ == reference.t_
    assert est.loss_curve_ == reference.loss_curve_
    assert est.validation_scores_ == reference.validation_scores_
    assert est.validation_loss_curve_ == reference.validation_loss_curve_
    assert est.best_validation_score_ == reference.best_validation_score_
    assert est._lr_state.epoch == reference._lr_state.epoch == 1
    for a, b in zip(est._snapshot()[1], reference._snapshot()[1]):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(est.predict(X), reference.predict(X))


@pytest.mark.parametrize("point", list(POINTS))
def test_ctrl_c_anywhere_in_the_first_epoch_undoes_the_fit(digits, tmp_path, monkeypatch, point):
    X, y = digits
    est = CNNClassifier(**COMMON)
    POINTS[point](est, 1, monkeypatch, tmp_path)
    with pytest.raises(KeyboardInterrupt):
        est.fit(X, y)
    assert not hasattr(est, "network_") and not hasattr(est, "n_iter_")
