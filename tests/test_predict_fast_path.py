"""The prediction fast path gives the full path's outputs and errors, bit for bit, on every face.

Shortcuts of a prediction call (``minicnn.inputs.already_prepared``: a float32 C-contiguous array of the fitted
layout skips the generic checks, its range decided by one float32 sum of squares; ``log_softmax`` shifting the
rows with the backend's ``softmax_shift_rows``; the output check's ``np.vdot``; the network's recorded inference
pass, :mod:`minicnn._replay`; the compiled range and finiteness checks, ``kernels/percall.pyx``) are compared with
the path
without them (:func:`reference_path`), over estimator kinds, every prediction method of the estimators and of
the Predictor, batch sizes, dtypes, memory orders, views, layouts and backends.
"""

import os
import warnings

import numpy as np
import pytest

import minicnn._estimator_base as estimator_base
import minicnn._predict as predict_module
import minicnn.estimator as estimator_module
import minicnn.inputs as inputs
import minicnn.network as network_module
import minicnn.predictor as predictor_module
from minicnn import CNNClassifier, CNNRegressor, _replay as replay, load_predictor

from helpers import importable_backends

BACKENDS = importable_backends(("numpy", "auto"))
BATCHES = (1, 2, 7)
#: model name -> (estimator class, per-sample shape in the user's layout, data_format, layers, dropout)
MODELS = {
    "classifier": (CNNClassifier, (8, 8, 1), "channels_last", ("conv4", "maxpool", "dense16"), "after_last_pool"),
    "regressor": (CNNRegressor, (8, 8, 1), "channels_last", ("conv4", "maxpool", "dense16"), "none"),
    "rgb channels_first": (CNNClassifier, (3, 6, 6), "channels_first", ("conv4", "maxpool"), "after_last_pool"),
    "rgb channels_last": (CNNClassifier, (6, 6, 3), "channels_last", ("conv4s2", "dense8"), "after_each_layer"),
    # channels-first images whose shape reads the same in either layout: only data_format tells them apart
    "cube channels_first": (CNNClassifier, (4, 4, 4), "channels_first", ("conv4",), "none"),
}


def _fit(name, backend, flat=False):
    cls, shape, data_format, layers, dropout = MODELS[name]
    rng = np.random.default_rng(7)
    X = rng.random((40, *shape), dtype=np.float32)
    y = (np.arange(40) % 3) if cls is CNNClassifier else rng.standard_normal((40, 2))
    if flat:
        X = X.reshape(len(X), -1)
    model = cls(layers=layers, dropout=dropout, data_format=data_format, input_shape=shape if flat else None, max_iter=2,
                batch_size=16, backend=backend, n_threads=1, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # two iterations never converge
        return model.fit(X, y)


@pytest.fixture(scope="module", params=[(name, backend) for name in MODELS for backend in BACKENDS],
                ids=lambda p: f"{p[0]}-{p[1]}")
def fitted(request, tmp_path_factory):
    """``(model, predictor, per-sample shape)``: a fitted model and the Predictor of its saved file."""
    name, backend = request.param
    model = _fit(name, backend)
    path = os.path.join(tmp_path_factory.mktemp("fast"), "model.npz")
    model.save(path)
    return model, load_predictor(path), MODELS[name][1]


def reference_path(monkeypatch):
    """Disable every shortcut: the full input checks, NumPy's log-softmax, the output check's reduction (NumPy's,
    not the compiled loop) and the recorded inference pass (:mod:`minicnn._replay`: the layers run their own pass)."""
    monkeypatch.setattr(network_module, "replayed_forward", lambda net, x: replay._run(net._inference_plan(), x, 0))
    monkeypatch.setitem(predict_module._checks, "module", None)   # NumPy's reductions decide range and finiteness
    for module in (inputs, estimator_base, predictor_module):
        monkeypatch.setattr(module, "already_prepared", lambda model, X: None)
    real = predict_module.log_softmax
    for module in (estimator_module, predictor_module):
        monkeypatch.setattr(module, "log_softmax", lambda logits, kernels=None: real(logits))
    monkeypatch.setattr(predict_module, "_FLOAT64", object())   # never the output's dtype: np.add.reduce


def _inputs(shape, n):
    """Every form of the same ``n`` samples a caller may pass: ``{name: X}``."""
    base = np.random.default_rng(n).random((n, *shape), dtype=np.float32)
    wide = np.zeros((2 * n, *shape[:-1], shape[-1] + 2), dtype=np.float32)
    wide[::2, ..., 1:-1] = base
    forms = {
        "float32 C": base,
        "float64": base.astype(np.float64),
        "int64": (base > 0.5).astype(np.int64),
        "uint8 zeros and ones": (base > 0.5).astype(np.uint8),
        "float32 F": np.asfortranarray(base),
        "float32 strided view": wide[::2, ..., 1:-1],
        "float32 flat": base.reshape(n, -1),
        "float64 flat": base.reshape(n, -1).astype(np.float64),
        "float32 flat F": np.asfortranarray(base.reshape(n, -1)),
        "float32 big-endian": base.astype(">f4"),
        "list": base.tolist(),
    }
    if shape[-1] == 1:
        forms["float32 3-D"] = base[..., 0]
    return forms


def _calls(model, predictor, X):
    """``{face.method: callable}`` of every prediction method of both faces on ``X``."""
    calls = {"predict": lambda: model.predict(X), "transform": lambda: model.transform(X),
             "P.predict": lambda: predictor.predict(X), "P.transform": lambda: predictor.transform(X)}
    if isinstance(model, CNNClassifier):
        labels = model.classes_[np.arange(len(X)) % len(model.classes_)]
        calls.update({"predict_proba": lambda: model.predict_proba(X),
                      "predict_log_proba": lambda: model.predict_log_proba(X),
                      "score": lambda: model.score(X, labels),
                      "P.predict_proba": lambda: predictor.predict_proba(X),
                      "P.predict_log_proba": lambda: predictor.predict_log_proba(X)})
    else:
        targets = np.zeros((len(X), model.n_outputs_))
        calls["score"] = lambda: model.score(X, targets)
    return calls


def _outcome(call):
    """What a call gives: its value, or the type and message of the exception it raised; no warning allowed."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            return "value", call()
        except Exception as exc:   # the comparison is the point: every kind must match
            return type(exc).__name__, str(exc)


def _assert_same(fast, slow, what):
    assert fast[0] == slow[0], (what, fast, slow)
    if fast[0] != "value":
        assert fast[1] == slow[1], what
        return
    a, b = np.asarray(fast[1]), np.asarray(slow[1])
    assert a.dtype == b.dtype and a.shape == b.shape, what
    assert a.tobytes() == b.tobytes(), what   # bit for bit (signed zeros and NaN payloads included)


@pytest.mark.parametrize("n", BATCHES)
def test_every_face_and_input_form_matches_the_path_without_shortcuts(fitted, n, monkeypatch):
    model, predictor, shape = fitted
    for form, X in _inputs(shape, n).items():
        if form.startswith("float32 3-D") and model.data_format != "channels_last":
            continue
        fast = {name: _outcome(call) for name, call in _calls(model, predictor, X).items()}
        with monkeypatch.context() as patch:
            reference_path(patch)
            slow = {name: _outcome(call) for name, call in _calls(model, predictor, X).items()}
        for name in fast:
            _assert_same(fast[name], slow[name], (form, name))
        if form == "float32 C" and isinstance(model, CNNClassifier):
            assert fast["predict_proba"][0] == "value"   # the sweep compares outputs, not only errors


#: Values around the range limit and non-finite ones, placed in an otherwise valid sample.
EDGES = [np.nan, np.inf, -np.inf, inputs.MAX_ABS, -inputs.MAX_ABS,
         float(np.nextafter(np.float32(inputs.MAX_ABS), np.float32(np.inf))), 1e19, -1e19, 3e18, 1e30]


@pytest.mark.parametrize("value", EDGES, ids=repr)
@pytest.mark.parametrize("count", [1, 64])
def test_edge_values_give_the_full_paths_error_or_output(fitted, value, count, monkeypatch):
    """Out-of-range values give the full checks' error; in-range huge ones (whose float32 sum of squares
    overflows) pass as on the full path, without a floating-point warning from the range check."""
    model, predictor, shape = fitted
    X = np.random.default_rng(3).random((2, *shape), dtype=np.float32)
    X.reshape(2, -1)[1, :count] = value
    if not isinstance(model, CNNClassifier):
        calls = {"predict": lambda: model.predict(X), "P.predict": lambda: predictor.predict(X)}
    else:
        calls = {"predict_proba": lambda: model.predict_proba(X), "P.predict_proba": lambda: predictor.predict_proba(X)}
    fast = {name: _outcome(call) for name, call in calls.items()}
    with monkeypatch.context() as patch:
        reference_path(patch)
        slow = {name: _outcome(call) for name, call in calls.items()}
    for name in calls:
        _assert_same(fast[name], slow[name], name)


@pytest.mark.parametrize("size", [1, 10, 8192, 8193, 30000])
def test_the_range_gate_never_passes_what_the_full_check_refuses(size):
    """``_within_max_abs`` True implies ``_check_values`` accepts; every refused value makes the gate False."""
    rng = np.random.default_rng(size)
    limit = np.float32(inputs.MAX_ABS)
    above = np.nextafter(limit, np.float32(np.inf))
    for value in (0.5, limit, -limit, above, -above, np.float32(1e19), np.nan, np.inf, -np.inf):
        for where in (0, size - 1):
            X = rng.random(size, dtype=np.float32)
            X[where] = value
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                gate = bool(inputs._within_max_abs(X))
            try:
                inputs._check_values(X, X)
                accepted = True
            except ValueError:
                accepted = False
            assert not gate or accepted, (value, where)
            if abs(float(value)) <= 1 and np.isfinite(value):
                assert gate   # the usual input takes the fast path
    assert inputs._SQUARES_LIMIT <= float(np.finfo(np.float32).max)


@pytest.mark.parametrize("name, fast_lane", [("classifier", True), ("rgb channels_last", True),
                                             ("rgb channels_first", False)])
def test_a_model_fitted_on_flat_rows_predicts_flat_rows_as_the_full_path(name, fast_lane, monkeypatch):
    """Flat float32 rows skip the checks where they only need a reshape (channels-last, or one channel);
    channels-first rows of several channels need a transpose: the full path."""
    model = _fit(name, BACKENDS[-1], flat=True)
    X = np.random.default_rng(5).random((3, model.n_features_in_), dtype=np.float32)
    assert (inputs.already_prepared(model, X) is not None) == fast_lane
    fast = _outcome(lambda: model.predict(X))
    with monkeypatch.context() as patch:
        reference_path(patch)
        slow = _outcome(lambda: model.predict(X))
    _assert_same(fast, slow, "flat rows")
    assert fast[0] == "value"


def test_the_fast_path_is_taken_only_for_the_fitted_float32_layout(fitted):
    model, _, shape = fitted
    X = np.random.default_rng(1).random((3, *shape), dtype=np.float32)
    ready = inputs.already_prepared(model, X)
    assert (ready is not None) == (model.data_format == "channels_last")
    for other in (X.astype(np.float64), np.asfortranarray(X), X[:, ::-1], X[:0], X[0], X.reshape(3, -1)[:, :-1]):
        assert inputs.already_prepared(model, other) is None


#: Every value kind around the checks' limits: in range, the limit itself, just above, huge, non-finite, subnormal.
CHECK_VALUES = [0.5, -0.0, 1e-45, float(np.float32(inputs.MAX_ABS)), -float(np.float32(inputs.MAX_ABS)),
                float(np.nextafter(np.float32(inputs.MAX_ABS), np.float32(np.inf))), 1e19, -3e38, np.inf, -np.inf,
                np.nan]


@pytest.mark.parametrize("size", [1, 7, 64, 8192])
def test_the_compiled_checks_decide_exactly_as_the_full_checks(size):
    """``float32_within`` accepts exactly what ``_check_values`` accepts; ``float64_finite`` is ``isfinite().all()``;
    each gives None for an array it does not read (another dtype, byte order, memory order), never a guess."""
    pytest.importorskip("minicnn.backend.cython_kernels")   # (the checks are used once compiled kernels are)
    checks = predict_module.compiled_checks()
    if checks is None:
        pytest.skip("compiled kernels not built")
    rng = np.random.default_rng(size)
    for value in CHECK_VALUES:
        for where in (0, size - 1):
            X = rng.random(size, dtype=np.float32)
            X[where] = value
            try:
                inputs._check_values(X, X)
                accepted = True
            except ValueError:
                accepted = False
            assert checks.float32_within(X, inputs.MAX_ABS) is accepted, (value, where)
            assert inputs._within_max_abs(X) == accepted, (value, where)
            Y = X.astype(np.float64)
            assert checks.float64_finite(Y) is bool(np.isfinite(Y).all()), (value, where)
    X = rng.random((size, 2), dtype=np.float32)
    for other in (X.astype(np.float64), X.astype(">f4"), X[:, ::-1], X.tolist(), np.ma.masked_array(X)):
        assert checks.float32_within(other, inputs.MAX_ABS) is None
    for other in (X, X.astype(">f8"), X.astype(np.float64)[:, ::-1]):
        assert checks.float64_finite(other) is None
