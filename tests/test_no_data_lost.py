"""No data lost: atomic saves, KeyboardInterrupt keeps the last complete epoch, divergence stops with a clear error."""

import os
import warnings

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

import minicnn
from minicnn import CNNClassifier, CNNRegressor, _estimator_base
from minicnn import io as mio

from helpers import weights

SMALL = dict(layers=("conv4", "maxpool", "dense8"), max_iter=3, batch_size=32, backend="numpy", random_state=0,
             dropout="last:1")


N_DIGITS = 160   # samples in the digits fixture (conftest.py)


# ---------------------------------------------------------------- atomic save
def test_failed_save_keeps_the_old_file_and_leaves_no_temporary(digits, tmp_path, monkeypatch):
    X, y = digits
    old = CNNClassifier(**SMALL).fit(X, y)
    path = tmp_path / "model.npz"
    old.save(path)
    before = path.read_bytes()
    new = CNNClassifier(**{**SMALL, "random_state": 1}).fit(X, y)
    written = []

    def half_then_fail(f, arrays):
        f.write(before[: len(before) // 2])           # a partial write ...
        written.append(f.name)
        raise OSError("disk full (simulated)")       # ... then the writer dies

    monkeypatch.setattr(mio, "_write_arrays", half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        new.save(path)
    assert written, "the failing writer was not called"
    assert path.read_bytes() == before                # old file intact
    assert sorted(os.listdir(tmp_path)) == ["model.npz"]   # no temporary file left
    np.testing.assert_array_equal(minicnn.load(path).predict_proba(X), old.predict_proba(X))

    def interrupted(f, arrays):
        f.write(b"PK\x03\x04 partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(mio, "_write_arrays", interrupted)
    with pytest.raises(KeyboardInterrupt):
        new.save(path)
    assert path.read_bytes() == before and sorted(os.listdir(tmp_path)) == ["model.npz"]
    monkeypatch.undo()
    new.save(path)                                    # a successful save replaces it
    np.testing.assert_array_equal(minicnn.load(path).predict_proba(X), new.predict_proba(X))
    assert sorted(os.listdir(tmp_path)) == ["model.npz"]


# ---------------------------------------------------------------- KeyboardInterrupt
def interrupt_during(monkeypatch, epoch, after_batches):
    """Make the ``epoch``-th call of train_epoch raise KeyboardInterrupt after ``after_batches`` batches."""
    real = _estimator_base.train_epoch
    calls = []

    def train_epoch(*args, on_batch=None, **kwargs):
        calls.append(1)
        batches = []

        def hook(done, loss):
            on_batch(done, loss)
            batches.append(done)
            if len(calls) == epoch and len(batches) == after_batches:
                raise KeyboardInterrupt

        return real(*args, on_batch=hook, **kwargs)

    monkeypatch.setattr(_estimator_base, "train_epoch", train_epoch)
    return calls


@pytest.mark.parametrize("cls", [CNNClassifier, CNNRegressor])
def test_keyboard_interrupt_keeps_the_last_complete_epoch(digits, monkeypatch, cls):
    X, y = digits
    one_epoch = cls(**{**SMALL, "max_iter": 1}).fit(X, y)
    calls = interrupt_during(monkeypatch, epoch=2, after_batches=2)
    est = cls(**SMALL)
    with pytest.warns(UserWarning, match=r"interrupted \(KeyboardInterrupt\) during epoch 2; kept the weights "
                                         r"of epoch 1"):
        assert est.fit(X, y) is est
    assert len(calls) == 2
    assert est.n_iter_ == 1 and len(est.loss_curve_) == 1 and est.t_ == len(X)
    for p, q in zip(weights(est), weights(one_epoch)):       # the two batches of epoch 2 were rolled back
        np.testing.assert_array_equal(p, q)
    np.testing.assert_array_equal(est.predict(X), one_epoch.predict(X))
    monkeypatch.undo()
    est.set_params(warm_start=True, max_iter=1).fit(X, y)      # and it can keep training
    assert est.n_iter_ == 2 and np.isfinite(est.loss_curve_).all()


def test_keyboard_interrupt_rolls_back_batchnorm_dropout_steps_and_rng(digits, monkeypatch):
    X, y = digits
    params = {**SMALL, "batch_norm": True, "max_iter": 2}
    reference = CNNClassifier(**params).fit(X, y)
    interrupt_during(monkeypatch, epoch=3, after_batches=1)
    est = CNNClassifier(**{**params, "max_iter": 3})
    with pytest.warns(UserWarning, match="during epoch 3"):
        est.fit(X, y)
    for a, b in zip(est.network_.layers, reference.network_.layers):
        for k in a.params:
            np.testing.assert_array_equal(a.params[k], b.params[k])
        for k, v in getattr(a, "state", {}).items():
            np.testing.assert_array_equal(v, b.state[k])
        if a.stochastic:
            assert a.step == b.step
    assert est._rng.bit_generator.state == reference._rng.bit_generator.state
    monkeypatch.undo()
    reference.set_params(warm_start=True, max_iter=1).fit(X, y)     # continuing gives identical models
    est.set_params(warm_start=True, max_iter=1).fit(X, y)
    for p, q in zip(weights(est), weights(reference)):
        np.testing.assert_array_equal(p, q)


def test_keyboard_interrupt_in_the_first_epoch_leaves_the_estimator_unfitted(digits, monkeypatch):
    X, y = digits
    interrupt_during(monkeypatch, epoch=1, after_batches=1)
    est = CNNClassifier(**SMALL)
    with pytest.raises(KeyboardInterrupt):
        est.fit(X, y)
    with pytest.raises(NotFittedError):
        est.predict(X)


def test_keyboard_interrupt_in_partial_fit_keeps_the_previous_model(digits, monkeypatch):
    X, y = digits
    est = CNNClassifier(**SMALL).fit(X, y)
    before, proba = weights(est), est.predict_proba(X)
    interrupt_during(monkeypatch, epoch=1, after_batches=3)
    with pytest.warns(UserWarning, match="during epoch 4; kept the weights of epoch 3"):
        est.partial_fit(X, y)
    assert est.n_iter_ == 3
    for p, q in zip(weights(est), before):
        np.testing.assert_array_equal(p, q)
    np.testing.assert_array_equal(est.predict_proba(X), proba)


# ---------------------------------------------------------------- divergence
def test_divergence_stops_with_a_clear_error(digits):
    X, y = digits
    est = CNNRegressor(**{**SMALL, "optimizer": "sgd", "learning_rate": 1e3})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)      # NumPy's overflow warnings on the way to inf
        with pytest.raises(ValueError, match=r"Training diverged in epoch 1: the loss of a batch became (inf|nan) "
                                             r".*learning rate is probably too high \(received "
                                             r"learning_rate=1000.0\).*left unfitted"):
            est.fit(X, y * 1e3)
    with pytest.raises(NotFittedError):
        est.predict(X)
    clf = CNNClassifier(**{**SMALL, "optimizer": "sgd", "learning_rate": 1e6})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(ValueError, match=r"diverged.*received learning_rate=1000000.0"):
            clf.fit(X * 1e10, y)


def test_divergence_in_a_warm_start_keeps_the_fitted_model(digits):
    X, y = digits
    reg = CNNRegressor(**{**SMALL, "optimizer": "sgd", "learning_rate": 1e-3}).fit(X, y)
    before, prediction = weights(reg), reg.predict(X)
    reg.set_params(warm_start=True, learning_rate=1e3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(ValueError, match=r"diverged in epoch 4.*weights of epoch 3 were kept \(n_iter_=3\)"):
            reg.fit(X, y * 1e3)
    for p, q in zip(weights(reg), before):
        np.testing.assert_array_equal(p, q)
    np.testing.assert_array_equal(reg.predict(X), prediction)
    assert np.isfinite(reg.predict(X)).all()
