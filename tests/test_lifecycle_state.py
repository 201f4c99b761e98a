"""A fitted estimator is consistent, atomic and thread-safe.

* Every view (predict, MC dropout, summary, save -> load / load_predictor) describes the fitted model until the
  next fit, whatever ``set_params`` changed since.
* A fit or partial_fit that raises leaves the estimator exactly as it was before the call.
* fit, partial_fit and predict on one estimator from several threads are serialized.
"""

import copy
import threading
import io
import json
import zipfile

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError
from sklearn.utils._param_validation import Interval

import minicnn
from minicnn import CNNClassifier, CNNRegressor, training

from helpers import importable_backends, random_data, run_at_once

# Random data and a few epochs from random weights: "no better than a constant prediction" is expected here, and
# switching batch_norm on under the default dropout provokes the placement lint (tested in test_placement.py).
pytestmark = [pytest.mark.filterwarnings("ignore:CNN[A-Za-z]+. training was unstable:sklearn.exceptions."
                                         "ConvergenceWarning"),
              pytest.mark.filterwarnings("ignore:Dropout after layers.*feeds the BatchNorm:UserWarning")]

ESTIMATORS = (CNNClassifier, CNNRegressor)
TINY = dict(layers=("conv4", "maxpool", "dense8"), max_iter=2, batch_size=16, random_state=0, dropout="last:2",
            backend="numpy")


def outputs(model, X):
    """Everything a fitted model predicts (deterministic: random_state is fixed)."""
    if getattr(model, "estimator", type(model).__name__) == "CNNClassifier":
        return [model.predict(X), model.predict_proba(X), model.predict_proba(X, mc_samples=3)]
    return [model.predict(X), model.predict(X, mc_samples=3)]


def assert_same(a, b):
    assert len(a) == len(b)
    for p, q in zip(a, b):
        np.testing.assert_array_equal(p, q)


# ------------------------------------------------------------------------- 1. views describe the fitted model
#: A valid new value for every parameter that shapes the network (the fitted values are TINY's and the defaults).
CHANGES = {"layers": ("conv2", "dense8"), "kernel_size": 2, "padding": "valid", "pool_size": 3, "activation": "tanh",
           "batch_norm": True, "dropout": "none", "dropout_rate": 0.1, "dropout_kind": "auto",
           "dropout_scaling": "test_time", "input_shape": (4, 16, 1), "data_format": "channels_first"}


def test_changes_cover_every_architecture_parameter():
    from minicnn._estimator_base import ARCHITECTURE_PARAMS

    assert set(CHANGES) == set(ARCHITECTURE_PARAMS)


@pytest.mark.parametrize("cls", ESTIMATORS)
@pytest.mark.parametrize("name", sorted(CHANGES))
@pytest.mark.parametrize("scaling", ["inverted", "test_time"])
def test_every_view_reports_the_fitted_model_after_set_params(cls, name, scaling, tmp_path):
    if name == "dropout_scaling" and scaling == "test_time":
        pytest.skip("the change is the scaling itself")
    X, y = random_data(cls)
    est = cls(**TINY, dropout_scaling=scaling).fit(X, y)
    before, summary = outputs(est, X), est.summary()
    est.set_params(**{name: CHANGES[name]})
    assert_same(outputs(est, X), before)
    assert est.summary() == summary
    est.save(tmp_path / "m.npz")
    loaded = minicnn.load(tmp_path / "m.npz")
    assert_same(outputs(loaded, X), before)
    assert loaded.summary() == summary
    assert_same(outputs(minicnn.load_predictor(tmp_path / "m.npz"), X), before)
    assert est.get_params()[name] == CHANGES[name]          # the parameter itself is what was set ...
    if name not in ("data_format", "input_shape"):
        est.fit(X, y)                                         # ... and takes effect at the next fit
        assert est.summary() != summary


# ------------------------------------------------------------------------- 2. a failed fit changes nothing
def numeric_parameters():
    """Every parameter whose constraints hold an int or real Interval."""
    return sorted(name for name, rules in CNNClassifier._parameter_constraints.items()
                  if any(isinstance(rule, Interval) for rule in rules))


@pytest.mark.parametrize("cls", ESTIMATORS)
@pytest.mark.parametrize("name", numeric_parameters())
@pytest.mark.parametrize("value", [True, False, np.bool_(True)])
def test_bools_are_refused_for_every_numeric_parameter(cls, name, value):
    X, y = random_data(cls)
    est = cls(**TINY).fit(X, y)
    twin = copy.deepcopy(est)
    with pytest.raises(ValueError, match=rf"The '{name}' parameter .* not a bool"):
        est.set_params(**{name: value}).fit(X, y)
    est.set_params(**{name: twin.get_params()[name]})        # the parameter was set by the user, not by fit
    assert_same_state(est, twin)
    assert_same(outputs(est, X), outputs(twin, X))


def _rewrite_param(path, name, value):
    """Rewrite one parameter in a saved file's header (the archive is otherwise unchanged)."""
    with zipfile.ZipFile(path) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    header = json.loads(np.load(io.BytesIO(members["header.npy"])).tobytes())
    header["params"][name] = value
    buf = io.BytesIO()
    np.save(buf, np.frombuffer(json.dumps(header).encode(), dtype=np.uint8))
    members["header.npy"] = buf.getvalue()
    with zipfile.ZipFile(path, "w") as zf:
        for n, b in members.items():
            zf.writestr(n, b)


@pytest.mark.parametrize("name", numeric_parameters())
def test_load_and_load_predictor_refuse_bools_like_the_estimator(name, tmp_path):
    X, y = random_data(CNNClassifier)
    path = tmp_path / "m.npz"
    CNNClassifier(**TINY).fit(X, y).save(path)
    _rewrite_param(path, name, True)
    with pytest.raises(ValueError, match=name):
        minicnn.load(path)
    with pytest.raises(ValueError, match=name):
        minicnn.load_predictor(path)


class Boom(Exception):
    pass


def fail_at_batch(monkeypatch, k, exc=MemoryError):
    """The ``k``-th training batch (0-based, counted from now) raises ``exc``."""
    real, calls = training.train_step, [0]

    def step(*args, **kwargs):
        calls[0] += 1
        if calls[0] == k + 1:
            raise exc("injected")
        return real(*args, **kwargs)

    monkeypatch.setattr(training, "train_step", step)


def _state(est):
    """The estimator's attributes, with arrays, lists and the network expanded into comparable values."""
    state = {}
    for key, value in vars(est).items():
        if key == "_fit_lock":
            continue
        if key == "network_":
            value = ([p.copy() for p, _ in value.params_and_grads()]
                     + [a.copy() for layer in value.layers for a in getattr(layer, "state", {}).values()]
                     + [layer.step for layer in value.layers if layer.stochastic])
        elif key == "_rng":
            value = value.bit_generator.state
        elif key == "_optimizer":
            value = {k: copy.deepcopy(v) for k, v in vars(value).items()}
        state[key] = value
    return state


def assert_same_state(a, b):
    sa, sb = _state(a), _state(b)
    assert sorted(sa) == sorted(sb)
    for key in sa:
        np.testing.assert_equal(sa[key], sb[key], err_msg=key)


SCENARIOS = ["fit_unfitted", "refit", "warm_start", "partial_fit", "partial_fit_unfitted", "early_stopping"]


def _prepare(cls, scenario, X, y):
    est = cls(**TINY, early_stopping=scenario == "early_stopping")
    if scenario not in ("fit_unfitted", "partial_fit_unfitted"):
        est.fit(X, y)
    if scenario == "warm_start":
        est.set_params(warm_start=True)
    return est


def _call(est, scenario, X, y):
    if scenario.startswith("partial_fit"):
        extra = {"classes": np.unique(y)} if isinstance(est, CNNClassifier) else {}
        return est.partial_fit(X, y, **extra)
    return est.fit(X, y)


@pytest.mark.parametrize("cls", ESTIMATORS)
@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("batch", [0, 1, 4])          # first batch, mid first epoch, second epoch
@pytest.mark.parametrize("exc", [MemoryError, Boom, KeyboardInterrupt])
def test_any_exception_during_fit_rolls_back_exactly(cls, scenario, batch, exc, monkeypatch):
    X, y = random_data(cls)
    est = _prepare(cls, scenario, X, y)
    twin = copy.deepcopy(est)
    if scenario.startswith("partial_fit") and batch >= 3:
        pytest.skip("partial_fit runs one epoch of 3 batches")
    fail_at_batch(monkeypatch, batch, exc)
    refit = scenario in ("fit_unfitted", "refit", "partial_fit_unfitted", "early_stopping")
    if exc is KeyboardInterrupt and (batch >= 3 or not refit):
        # documented: an interrupt keeps the complete epochs of this call (none here when batch < 3), warning
        with pytest.warns(UserWarning, match="interrupted"):
            _call(est, scenario, X, y)
        assert est.interrupted_ is True   # the caller can tell that the call was cut short
        if batch >= 3:
            assert est.n_iter_ == (1 if refit else twin.n_iter_ + 1)
            return
        twin.interrupted_ = True          # nothing else of the call is kept
    else:
        with pytest.raises(exc):
            _call(est, scenario, X, y)
    monkeypatch.undo()
    assert_same_state(est, twin)
    if not hasattr(twin, "network_"):
        with pytest.raises(NotFittedError):
            est.predict(X)
        return
    assert_same(outputs(est, X), outputs(twin, X))
    # the hidden state (optimizer, rng, dropout steps) is the same too: continuing gives the same model
    _call(est, "partial_fit", X, y)
    _call(twin, "partial_fit", X, y)
    assert_same(outputs(est, X), outputs(twin, X))


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_a_failing_validation_score_rolls_back(cls, monkeypatch):
    X, y = random_data(cls)
    est = cls(**TINY, early_stopping=True).fit(X, y)
    twin = copy.deepcopy(est)

    def fail(*args):
        raise Boom("injected")

    monkeypatch.setattr(cls, "_internal_score", fail)
    with pytest.raises(Boom):
        est.fit(X, y)
    monkeypatch.undo()
    assert_same_state(est, twin)


# ------------------------------------------------------------------------- 3. threads are serialized
@pytest.mark.parametrize("cls", ESTIMATORS)
@pytest.mark.parametrize("backend", importable_backends(("numpy", "cython")))
def test_fit_partial_fit_and_predict_from_threads_never_give_a_wrong_answer(cls, backend):
    X, y = random_data(cls, n=96)
    params = {**TINY, "backend": backend, "max_iter": 3}
    est = cls(**params).fit(X, y)
    expected = outputs(est, X)          # every refit with the same seed gives this model again
    seen = []

    def refit():
        est.fit(X, y)

    def predict():
        seen.append(outputs(est, X))

    run_at_once([refit, predict, predict], rounds=4)
    assert len(seen) == 8
    for got in seen:
        assert_same(got, expected)
    # partial_fit from two threads: each call is one whole epoch, so two calls give exactly two epochs
    twin = copy.deepcopy(est)
    extra = {"classes": np.unique(y)} if cls is CNNClassifier else {}
    run_at_once([lambda: est.partial_fit(X, y, **extra), lambda: est.partial_fit(X, y, **extra)])
    twin.partial_fit(X, y, **extra).partial_fit(X, y, **extra)
    assert est.n_iter_ == twin.n_iter_ == 5
    assert_same(outputs(est, X), outputs(twin, X))


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_copies_and_pickles_get_their_own_lock(cls):
    import pickle

    X, y = random_data(cls)
    est = cls(**TINY).fit(X, y)
    est.predict(X)                                   # the lock exists now
    for other in (copy.deepcopy(est), pickle.loads(pickle.dumps(est))):
        assert other._lock() is not est._lock()
        assert_same(outputs(other, X), outputs(est, X))


def _pickle_copy(est):
    import pickle

    return pickle.loads(pickle.dumps(est))


def _joblib_copy(est):
    import joblib

    buffer = io.BytesIO()
    joblib.dump(est, buffer)
    buffer.seek(0)
    return joblib.load(buffer)


@pytest.mark.parametrize("how", [_pickle_copy, copy.deepcopy, _joblib_copy], ids=["pickle", "deepcopy", "joblib"])
@pytest.mark.parametrize("cls", ESTIMATORS)
def test_a_copy_taken_during_a_fit_in_another_thread_is_never_torn(cls, how, tmp_path):
    """pickle / deepcopy / joblib.dump while another thread fits: every copy is the model before or after the fit."""
    X, y = random_data(cls, n=96)
    est = cls(**{**TINY, "max_iter": 1, "batch_size": 8, "warm_start": True}).fit(X, y)
    before, fitted_before = outputs(est, X), (est.n_iter_, list(est.loss_curve_))
    est.set_params(max_iter=12)
    copies, errors = [], []

    def fit():
        try:
            est.fit(X, y)
        except BaseException as exc:   # pragma: no cover - reported below
            errors.append(exc)
    thread = threading.Thread(target=fit)
    thread.start()
    while thread.is_alive() and len(copies) < 200:
        copies.append(how(est))
    thread.join(timeout=120)
    assert not thread.is_alive() and not errors
    after = outputs(est, X)
    assert copies
    for i, twin in enumerate(copies):
        got = outputs(twin, X)
        is_before = all(np.array_equal(a, b) for a, b in zip(got, before))
        is_after = all(np.array_equal(a, b) for a, b in zip(got, after))
        assert is_before or is_after, f"copy {i} of {len(copies)} is torn (n_iter_={twin.n_iter_})"
        assert (twin.n_iter_, twin.loss_curve_) == ((est.n_iter_, est.loss_curve_) if is_after else fitted_before)
    copies[-1].save(tmp_path / "m.npz")
