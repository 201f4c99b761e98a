"""Every view of a fitted model is the fitted model, and runs the same input checks.

The views: the estimator's predict / predict_proba / predict_log_proba / score, the ONNX export (``export_onnx``
and skl2onnx), the Dask wrappers (``ParallelPostFit``, ``Incremental``), the Predictor and the ``minicnn``
command. Swept against every parameter that shapes the fitted model (``ARCHITECTURE_PARAMS``, changed with
``set_params`` after the fit) and against the same changes made from another thread while a fit runs.
"""

import copy
import threading
import warnings

import numpy as np
import pytest

import minicnn
from minicnn import CNNClassifier, CNNRegressor
from minicnn._estimator_base import ARCHITECTURE_PARAMS

from helpers import random_data

ESTIMATORS = (CNNClassifier, CNNRegressor)
SHAPE = (8, 8, 2)    # two channels: a channels-first reading of the images is a different model
TINY = dict(layers=("conv4", "maxpool", "dense8"), max_iter=2, batch_size=16, random_state=0, dropout="last:2",
            backend="numpy")
#: A valid new value for every parameter that shapes the network (the fitted values are TINY's and the defaults).
CHANGES = {"layers": ("conv2", "dense8"), "kernel_size": 2, "padding": "valid", "pool_size": 3, "activation": "tanh",
           "batch_norm": True, "dropout": "none", "dropout_rate": 0.1, "dropout_kind": "element",
           "dropout_scaling": "test_time", "input_shape": (4, 16, 2), "data_format": "channels_first"}


def test_changes_cover_every_architecture_parameter():
    assert set(CHANGES) == set(ARCHITECTURE_PARAMS)


@pytest.fixture(scope="module")
def fitted():
    """One fitted estimator of each class on (48, 8, 8, 2) images, with its data."""
    out = {}
    for cls in ESTIMATORS:
        X, y = random_data(cls, shape=SHAPE)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")   # 2 epochs: ConvergenceWarning
            out[cls] = (cls(**TINY).fit(X, y), X, y)
    return out


def expected(est, X):
    """The fitted model's answer: probabilities (classifier) or predictions (regressor), float32 like ONNX."""
    out = est.predict_proba(X) if isinstance(est, CNNClassifier) else est.predict(X)
    return out.astype(np.float32)


# ------------------------------------------------------------------------- ONNX
def run_onnx(proto, X):
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    outputs = session.run(None, {session.get_inputs()[0].name: X})
    return outputs[-1]


def export_plain(est, input_ndim):
    from minicnn.onnx import to_onnx_model

    return to_onnx_model(est, input_ndim=input_ndim)


def export_skl2onnx(est, input_ndim):
    skl2onnx = pytest.importorskip("skl2onnx")
    from minicnn.onnx import register_skl2onnx

    register_skl2onnx()
    sample = np.zeros((1, est.n_features_in_), np.float32)
    options = {"zipmap": False} if isinstance(est, CNNClassifier) else None
    return skl2onnx.to_onnx(est, sample, options=options)


def onnx_input(est, X, input_ndim, data_format="channels_last"):
    if input_ndim == 2:
        return X.reshape(len(X), -1) if data_format == "channels_last" else X.transpose(0, 3, 1, 2).reshape(len(X), -1)
    return X


@pytest.mark.parametrize("cls", ESTIMATORS)
@pytest.mark.parametrize("name", sorted(CHANGES))
@pytest.mark.parametrize("exporter", [export_plain, export_skl2onnx], ids=["export_onnx", "skl2onnx"])
def test_onnx_exports_the_fitted_model_after_set_params(fitted, cls, name, exporter):
    pytest.importorskip("onnx")
    est, X, _ = fitted[cls]
    est = copy.deepcopy(est)
    before = expected(est, X)
    est.set_params(**{name: CHANGES[name]})
    ndims = (2,) if exporter is export_skl2onnx else (2, 4)
    for input_ndim in ndims:
        got = run_onnx(exporter(est, input_ndim), onnx_input(est, X, input_ndim))
        np.testing.assert_allclose(got.reshape(before.shape), before, atol=1e-5,
                                   err_msg=f"{name}={CHANGES[name]!r}, input_ndim={input_ndim}")


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_an_export_taken_while_another_thread_fits_is_the_model_before_or_after(fitted, cls):
    """export_onnx waits for a running fit (it takes the estimator's lock) and snapshots the weights."""
    pytest.importorskip("onnx")
    from minicnn.onnx import to_onnx_model

    est, X, y = fitted[cls]
    est = copy.deepcopy(est).set_params(max_iter=1, batch_size=8, warm_start=True)
    before = expected(est, X)
    est.set_params(max_iter=10)
    protos, errors = [], []

    def fit():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                est.fit(X, y)
        except BaseException as exc:   # pragma: no cover - reported below
            errors.append(exc)
    thread = threading.Thread(target=fit)
    thread.start()
    while thread.is_alive() and len(protos) < 50:
        protos.append(to_onnx_model(est))
    thread.join(timeout=300)
    assert not thread.is_alive() and not errors
    after = expected(est, X)
    assert not np.allclose(before, after, atol=1e-4)   # the fit changed the model
    for i, proto in enumerate(protos):
        got = run_onnx(proto, X).reshape(before.shape)
        assert np.allclose(got, before, atol=1e-5) or np.allclose(got, after, atol=1e-5), \
            f"export {i} of {len(protos)} holds weights of neither the model before nor after the fit"


# ------------------------------------------------------------------------- set_params from another thread
@pytest.mark.parametrize("cls", ESTIMATORS)
@pytest.mark.parametrize("name", ["layers", "data_format", "input_shape", "pool_size"])
def test_set_params_from_another_thread_never_leaves_an_unloadable_model(fitted, cls, name, tmp_path):
    """set_params waits for a running fit: the fit reads one set of parameters, save writes a file load takes."""
    est, X, y = fitted[cls]
    est = copy.deepcopy(est)
    values = [est.get_params()[name], CHANGES[name]]
    if name == "input_shape":
        values = [None, SHAPE]
    stop, errors = threading.Event(), []

    def toggle():
        i = 0
        while not stop.is_set():
            est.set_params(**{name: values[i % 2]})
            i += 1

    thread = threading.Thread(target=toggle)
    thread.start()
    try:
        for k in range(3):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    est.fit(X, y)
                except ValueError as exc:   # a value that does not fit these images is refused, never half-used
                    errors.append(str(exc))
                    continue
            with est._lock():   # the saved file and the answer of the same fitted model
                answer = expected(est, X)
                est.save(tmp_path / f"m{k}.npz")
            loaded = minicnn.load(tmp_path / f"m{k}.npz")
            np.testing.assert_array_equal(expected(loaded, X), answer)
            predictor = minicnn.load_predictor(tmp_path / f"m{k}.npz")
            got = predictor.predict_proba(X) if cls is CNNClassifier else predictor.predict(X)
            np.testing.assert_array_equal(got.astype(np.float32), answer)
    finally:
        stop.set()
        thread.join(timeout=60)
    assert len(errors) < 3, errors


# ------------------------------------------------------------------------- Dask
def _dask_faces(est, X, y):
    pytest.importorskip("dask_ml")
    from minicnn.dask_wrappers import Incremental, ParallelPostFit

    incremental = Incremental(copy.deepcopy(est), shuffle_blocks=False)
    incremental.estimator_ = copy.deepcopy(est)    # a fitted Incremental predicts with estimator_
    return {"ParallelPostFit": ParallelPostFit(est), "Incremental": incremental}


METHODS = {
    CNNClassifier: ("predict", "predict_proba", "predict_log_proba", "score"),
    CNNRegressor: ("predict",),   # dask-ml's r2 of a dask regressor's predictions fails on unknown chunk sizes
}


def _call(model, method, X, y):
    if method == "score":
        return model.score(X, y)
    out = getattr(model, method)(X)
    return out.compute() if hasattr(out, "compute") else out


def _dask(X, y=None):
    da = pytest.importorskip("dask.array", reason="the Dask wrappers need the distributed extra")

    chunks = (16,) + (-1,) * (X.ndim - 1)
    return da.from_array(X, chunks=chunks), (None if y is None else da.from_array(np.asarray(y), chunks=16))


@pytest.mark.parametrize("cls", ESTIMATORS)
@pytest.mark.parametrize("name", sorted(CHANGES))
def test_dask_wrappers_predict_the_fitted_model_after_set_params(fitted, cls, name):
    est, X, y = fitted[cls]
    est = copy.deepcopy(est)
    want = {m: _call(est, m, X, y) for m in METHODS[cls]}
    est.set_params(**{name: CHANGES[name]})
    dX, dy = _dask(X, y)
    for face, model in _dask_faces(est, X, y).items():
        for method in METHODS[cls]:
            np.testing.assert_allclose(_call(model, method, dX, dy), want[method], rtol=1e-6, atol=1e-12,
                                       err_msg=f"{face}.{method} after set_params({name}=...)")


def bad_shapes(X):
    """Image arrays that hold the values of ``X``'s images in a shape the fitted model refuses."""
    n = len(X)
    return {
        "channels_first": np.ascontiguousarray(X.transpose(0, 3, 1, 2)),
        "transposed": np.ascontiguousarray(X.transpose(0, 2, 1, 3))[:, :, :4].copy(),   # (8, 4, 2)
        "same_size_other_shape": X.reshape(n, 4, 16, 2),
        "3-D_of_a_2-channel_model": X.reshape(n, 8, 16),
        "5-D": X.reshape(n, 8, 8, 2, 1),
        "one_channel_more": np.concatenate([X, X[..., :1]], axis=3),
    }


@pytest.mark.parametrize("cls", ESTIMATORS)
@pytest.mark.parametrize("face", ["estimator", "predictor"])
@pytest.mark.parametrize("case", sorted(bad_shapes(np.zeros((2, *SHAPE), np.float32))))
def test_dask_wrappers_refuse_what_predict_refuses(fitted, cls, face, case, tmp_path):
    """A dask image array is checked like the in-memory one before its blocks are flattened."""
    est, X, y = fitted[cls]
    if face == "predictor":
        est.save(tmp_path / "m.npz")
        est = minicnn.load_predictor(tmp_path / "m.npz")
    bad = bad_shapes(X)[case]
    dX, dy = _dask(bad, y)
    methods = [m for m in METHODS[cls] if hasattr(est, m)]
    for method in methods:
        with pytest.raises(ValueError) as in_memory:
            _call(est, method, bad, y)
        for name, model in _dask_faces(est, X, y).items():
            if face == "predictor" and name == "Incremental":
                continue   # Incremental trains its own estimator: a Predictor cannot be one
            with pytest.raises(ValueError) as on_dask:
                _call(model, method, dX, dy)
            assert str(on_dask.value) == str(in_memory.value), f"{name}.{method}"
