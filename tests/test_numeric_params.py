"""Parameter values of every numeric type behave as their Python value.

Swept: every numeric parameter of :mod:`minicnn.params` x every NumPy scalar type that holds the value exactly
(int8 .. uint64, float16/32/64) x the smallest allowed value, a middle one and a large one; the outcome (the
fitted model's predictions, loss curve, saved file, or the error raised) must be the one of the Python value.
"""

import math
import os
import warnings

import numpy as np
import pytest

import minicnn
from minicnn import CNNClassifier, CNNRegressor, params

INT_TYPES = (np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64)
FLOAT_TYPES = (np.float16, np.float32, np.float64)
BASE = dict(layers=("conv2", "maxpool", "dense4"), max_iter=2, batch_size=8, random_state=0, backend="numpy",
            dropout="dense")


def numeric_parameters():
    return [p.name for p in params.PARAMS if p.kind in ("int", "float", "rates", "seed", "verbose")]


def _smallest(p):
    if p.kind in ("seed", "verbose"):
        return 0
    if p.low is None:
        return None
    if p.closed in ("left", "both"):
        return p.low
    return 1 if p.kind == "int" else 2.0 ** -14   # the smallest normal float16: exact in every float type


#: Values beyond the smallest, per parameter: a middle one and a large one that a tiny fit can still use.
MORE = {"kernel_size": (3, 9), "pool_size": (3, 100), "batch_size": (100, 2**63 - 1), "max_iter": (3, 2**63 - 1),
        "n_iter_no_change": (2, 2**63 - 1), "n_threads": (2, params.TABLE["n_threads"].high),
        "learning_rate": (0.125, 65504.0), "weight_decay": (0.5, 65504.0), "validation_fraction": (0.25, 0.875),
        "tol": (0.5, 65504.0), "dropout_rate": (0.25, 0.875), "random_state": (255, 2**32 - 1),
        "verbose": (0, 1)}


def test_more_covers_every_numeric_parameter():
    assert set(MORE) == set(numeric_parameters())


def cases():
    for name in numeric_parameters():
        p = params.TABLE[name]
        values = [v for v in (_smallest(p), *MORE[name]) if v is not None]
        integral = p.kind in ("int", "seed", "verbose")
        for value in values:
            for numpy_type in INT_TYPES + (() if integral else FLOAT_TYPES):
                if numpy_type in INT_TYPES and not float(value).is_integer():
                    continue
                try:
                    typed = numpy_type(value)
                except OverflowError:   # out of the type's range
                    continue
                if typed == value:      # the type holds the value exactly
                    yield name, value, numpy_type


def _extra(name, value):
    """Settings that keep a fit with ``name=value`` small (a huge max_iter stops by tol after 2 epochs)."""
    extra = {}
    if name == "max_iter":
        extra.update(tol=1e9, n_iter_no_change=2)
    if name == "validation_fraction":
        extra.update(early_stopping=True)
    return extra


def outcome(cls, X, y, tmp_path, **kwargs):
    """What fitting, predicting, saving and loading ``cls(**kwargs)`` gives: arrays, or the error's type."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est = cls(**kwargs).fit(X, y)
            path = os.path.join(tmp_path, "m.npz")
            est.save(path)
            loaded = minicnn.load(path)
            answer = est.predict_proba(X) if cls is CNNClassifier else est.predict(X)
            mean, _ = est.predict_uncertainty(X, mc_samples=2)
            np.testing.assert_array_equal(loaded.predict(X), est.predict(X))
            return [answer, mean, np.array(est.loss_curve_), np.array(est.n_iter_)]
    except (ValueError, MemoryError) as exc:
        return type(exc).__name__


_python = {}


@pytest.mark.parametrize("cls", (CNNClassifier, CNNRegressor))
@pytest.mark.parametrize("name,value,numpy_type", list(cases()),
                         ids=lambda v: getattr(v, "__name__", str(v)))
def test_numpy_scalars_behave_as_their_python_value(cls, name, value, numpy_type, tmp_path):
    rng = np.random.default_rng(0)
    X = rng.random((30, 6, 6, 1), dtype=np.float32)
    y = np.arange(30) % 2 if cls is CNNClassifier else X.mean(axis=(1, 2, 3))
    kwargs = {**BASE, **_extra(name, value)}
    key = (cls, name, value)
    if key not in _python:
        _python[key] = outcome(cls, X, y, tmp_path, **{**kwargs, name: value})
    want = _python[key]
    got = outcome(cls, X, y, tmp_path, **{**kwargs, name: numpy_type(value)})
    if isinstance(want, str) or isinstance(got, str):
        assert got == want, f"{name}={numpy_type.__name__}({value!r})"
        return
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b, err_msg=f"{name}={numpy_type.__name__}({value!r})")


@pytest.mark.parametrize("numpy_type", INT_TYPES)
def test_a_numpy_batch_size_never_overflows(numpy_type):
    """batch_size=np.int8(100) on 300 samples: the batch arithmetic is Python's, never the scalar type's."""
    rng = np.random.default_rng(0)
    X = rng.random((300, 6, 6, 1), dtype=np.float32)
    y = np.arange(300) % 2
    est = CNNClassifier(**{**BASE, "batch_size": numpy_type(100), "max_iter": 1})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X, y)
    assert est.t_ == 300 and type(est.batch_size) is int and est.batch_size == 100


@pytest.mark.parametrize("name", ["n_threads", "random_state"])
@pytest.mark.parametrize("numpy_type", (np.uint8, np.int8, np.uint64))
def test_prediction_settings_set_after_fit_as_numpy_scalars(name, numpy_type):
    """n_threads and random_state act at predict without a refit: a NumPy scalar acts as its value there too."""
    rng = np.random.default_rng(0)
    X = rng.random((30, 6, 6, 1), dtype=np.float32)
    y = np.arange(30) % 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = CNNClassifier(**BASE).fit(X, y)
    value = 1 if name == "n_threads" else 7
    want = est.set_params(**{name: value}).predict_proba(X, mc_samples=3)
    got = est.set_params(**{name: numpy_type(value)}).predict_proba(X, mc_samples=3)
    np.testing.assert_array_equal(got, want)
    assert math.isfinite(got.sum())


# ------------------------------------------------------------------------- regression targets far from 0
def _regression_data(n=200, outputs=1):
    rng = np.random.default_rng(0)
    X = rng.random((n, 8, 8, 1), dtype=np.float32)
    left, right = X[:, :, :4].mean(axis=(1, 2, 3)), X[:, :, 4:].mean(axis=(1, 2, 3))
    y = np.stack([left - right, left + right], axis=1)[:, :outputs]
    return X, (y - y.min(axis=0)) / (y.max(axis=0) - y.min(axis=0))   # in [0, 1]


def _fit_regressor(X, y, **params):
    from sklearn.metrics import r2_score

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = CNNRegressor(layers=("conv4", "maxpool", "dense16"), max_iter=15, random_state=0, backend="numpy",
                           dropout="none", **params).fit(X, y)
    return est, r2_score(y, est.predict(X))


@pytest.mark.parametrize("outputs", [1, 2])
@pytest.mark.parametrize("shift,scale", [(1000.0, 1.0), (-1e4, 1.0), (0.0, 1e4), (0.0, 1e-3), (1000.0, 1e3)])
def test_a_regressor_fits_shifted_and_scaled_targets_as_well_as_unit_ones(outputs, shift, scale, tmp_path):
    """The targets are standardized inside: an affine change of y gives the same model, in y's units."""
    X, y = _regression_data(outputs=outputs)
    if outputs == 1:
        y = y[:, 0]
    base, r2 = _fit_regressor(X, y)
    moved, moved_r2 = _fit_regressor(X, y * scale + shift)
    assert r2 > 0.05
    assert moved_r2 == pytest.approx(r2, abs=0.01)
    # the same model up to float32 rounding of outputs near |shift| + scale
    tolerance = 1e-5 * (abs(shift) + scale) + 1e-3 * scale
    np.testing.assert_allclose((moved.predict(X) - shift) / scale, base.predict(X), atol=tolerance / scale)
    # every face answers in y's units: the model file, the Predictor
    moved.save(tmp_path / "m.npz")
    np.testing.assert_array_equal(minicnn.load(tmp_path / "m.npz").predict(X), moved.predict(X))
    np.testing.assert_array_equal(minicnn.load_predictor(tmp_path / "m.npz").predict(X), moved.predict(X))


def test_the_target_scaling_is_fitted_state_kept_by_the_model_file(tmp_path):
    X, y = _regression_data()
    est, _ = _fit_regressor(X, y[:, 0] + 1000)
    est.save(tmp_path / "m.npz")
    loaded = minicnn.load(tmp_path / "m.npz")
    np.testing.assert_array_equal(loaded._y_mean, est._y_mean)
    np.testing.assert_array_equal(loaded._y_scale, est._y_scale)
    # continuing the loaded model trains in the same standardized units (it stays a good model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded.set_params(warm_start=True, max_iter=3).fit(X, y[:, 0] + 1000)
    from sklearn.metrics import r2_score

    assert r2_score(y[:, 0] + 1000, loaded.predict(X)) > 0.3


@pytest.mark.parametrize("how", ["warm_start", "partial_fit"])
def test_continuing_a_fit_continues_from_the_trained_weights(how):
    """The continued epochs start from the model of the last fit, in standardized units (loss near its last)."""
    X, y = _regression_data()
    y = y[:, 0] * 7 + 1000
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = CNNRegressor(layers=("conv4", "maxpool", "dense16"), random_state=0, backend="numpy", dropout="none",
                           max_iter=5, warm_start=how == "warm_start").fit(X, y)
        last = est.loss_curve_[-1]
        if how == "warm_start":
            est.set_params(max_iter=1).fit(X, y)
        else:
            est.partial_fit(X, y)
    assert est.n_iter_ == 6
    assert est.loss_curve_[-1] < 1.5 * last   # a wrongly unfolded layer starts near (1000 / scale) ** 2


def test_training_reads_the_exact_standardized_weights_of_the_last_fit():
    """Unfolding an unchanged output layer restores the standardized weights bit for bit, folding them back too."""
    from minicnn._targets import standardized_output

    X, y = _regression_data()
    est, _ = _fit_regressor(X, y[:, 0] * 3 + 1000)
    layer = est.network_.layers[-1]
    folded = [layer.params["w"].copy(), layer.params["b"].copy()]
    with standardized_output(est, fresh=False):
        np.testing.assert_array_equal(layer.params["w"], est._standardized_output[0])
        np.testing.assert_array_equal(layer.params["b"], est._standardized_output[1])
    np.testing.assert_array_equal(layer.params["w"], folded[0])
    np.testing.assert_array_equal(layer.params["b"], folded[1])


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_targets_of_a_large_scale_never_diverge(optimizer):
    """y * 1e4 made SGD diverge ("the scale of y"): standardized inside, it trains as y does."""
    X, y = _regression_data()
    _, r2 = _fit_regressor(X, y[:, 0], optimizer=optimizer)
    _, big_r2 = _fit_regressor(X, y[:, 0] * 1e4, optimizer=optimizer)
    assert big_r2 == pytest.approx(r2, abs=0.01)
