"""Every documented value works, numerics fail loudly, small data gets the error of the parameter that causes it.

* The edges of every parameter constraint (0, 1, the smallest and largest allowed values) fit and predict;
  dropout_rate=0 is the same model as no dropout, on every placement, kind, scaling and backend.
* Divergence is detected by the growth of the loss and names its likely cause; inputs that overflow float32 are
  refused alike on every backend, by the estimator and the Predictor; BatchNorm never trains on a one-value batch,
  and its running statistics match the data.
* early_stopping on data too small to split names early_stopping and validation_fraction.
"""

import math
import warnings
from numbers import Integral

import numpy as np
import pytest
from sklearn.utils._param_validation import Interval

import minicnn
from minicnn import CNNClassifier, CNNRegressor
from minicnn.layers import BatchNorm

from helpers import importable_backends, random_data

# Random data and 1-5 epoch fits from random weights: a regressor often ends "no better than a constant
# prediction", which is what the unstable-training warning says; the tests of that warning record it explicitly.
pytestmark = pytest.mark.filterwarnings(
    "ignore:CNN[A-Za-z]+. training was unstable:sklearn.exceptions.ConvergenceWarning")

ESTIMATORS = (CNNClassifier, CNNRegressor)
BACKENDS = importable_backends(("numpy", "numba", "cython"))
TINY = dict(layers=("conv4", "maxpool", "dense8"), padding="valid", max_iter=2, batch_size=16, random_state=0,
            backend="numpy")


def predictions(est, X):
    return est.predict_proba(X) if isinstance(est, CNNClassifier) else est.predict(X)


# ------------------------------------------------------------------------- 4. every documented value works
def edge_values(rule):
    """The smallest and largest values an Interval allows, and 0 and 1 when it allows them."""
    if rule.type is Integral:
        candidates = [rule.left, rule.right, 0, 1]
        candidates += [None if rule.left is None else rule.left + 1, None if rule.right is None else rule.right - 1]
    else:
        low = rule.left if rule.left is not None else None
        high = rule.right if rule.right is not None else None
        candidates = [0.0, 1.0, low, high,
                      None if low is None else math.nextafter(low, math.inf),
                      None if high is None else math.nextafter(high, -math.inf)]
    values = []
    for value in candidates:
        if value is not None and math.isfinite(value) and rule.is_satisfied_by(value) and value not in values:
            values.append(value)
    return values


def edge_cases():
    cases = []
    for name, rules in CNNClassifier._parameter_constraints.items():
        for rule in rules:
            if isinstance(rule, Interval):
                cases += [(name, value) for value in edge_values(rule)]
    cases += [("dropout_rate", (0.0, 0.0)), ("dropout_rate", (0.0, 0.99)), ("random_state", 0),
              ("random_state", 2**32 - 1), ("verbose", 0)]
    return cases


def test_the_edge_sweep_covers_every_numeric_parameter():
    swept = {name for name, _ in edge_cases()}
    numeric = {name for name, rules in CNNClassifier._parameter_constraints.items()
               if any(isinstance(rule, Interval) for rule in rules)}
    assert numeric <= swept
    assert ("dropout_rate", 0.0) in edge_cases() and ("n_threads", 1) in edge_cases()


@pytest.mark.parametrize("cls", ESTIMATORS)
@pytest.mark.parametrize("name, value", edge_cases(), ids=lambda v: repr(v))
def test_every_constraint_edge_fits_and_predicts(cls, name, value):
    X, y = random_data(cls)
    params = {**TINY, "dropout": "last:2", name: value}
    if name in ("validation_fraction", "n_iter_no_change", "tol"):
        params["early_stopping"] = True
    smallest = 3 if cls is CNNClassifier else 2        # 3 classes in both parts of a stratified split
    if name == "validation_fraction" and not smallest <= round(value * len(X)) <= len(X) - 3:
        # a validation set too small (or no training set left) is the data's fault: the error names the parameter
        with pytest.raises(ValueError, match="validation_fraction"):
            cls(**params).fit(X, y)
        return
    est = cls(**params).fit(X, y)
    assert np.isfinite(predictions(est, X)).all()
    assert np.isfinite(est.loss_curve_).all()


PLACEMENTS = ["after_last_pool", "after_each_layer", "last:2", "dense", (0, 2)]


@pytest.mark.parametrize("cls", ESTIMATORS)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dropout", PLACEMENTS, ids=str)
def test_rate_zero_is_the_model_without_dropout(cls, backend, dropout):
    X, y = random_data(cls)
    params = {**TINY, "backend": backend}
    reference = predictions(cls(**params, dropout="none").fit(X, y), X)
    for kind in ("auto", "element", "spatial"):
        for scaling in ("inverted", "test_time"):
            try:
                est = cls(**params, dropout=dropout, dropout_rate=0.0, dropout_kind=kind, dropout_scaling=scaling)
                est.fit(X, y)
            except ValueError as exc:      # spatial dropout after a dense layer is refused by placement
                assert "spatial" in str(exc) and kind == "spatial"
                continue
            np.testing.assert_array_equal(predictions(est, X), reference)


def test_rate_zero_in_a_grid_search_scores_like_any_rate():
    from sklearn.model_selection import GridSearchCV

    X, y = random_data(CNNClassifier, n=60)
    search = GridSearchCV(CNNClassifier(**TINY), {"dropout_rate": [0.0, 0.3]}, cv=2, error_score="raise")
    search.fit(X, y)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()


# ------------------------------------------------------------------------- 5. numerics fail loudly
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("value", [3e38, -3e38, 3.4e38, 1e38, 1e30, 1e20, -5e19])
def test_values_that_overflow_float32_are_refused_on_every_backend(backend, value, tmp_path):
    X, y = random_data(CNNClassifier)
    clf = CNNClassifier(**{**TINY, "backend": backend}).fit(X, y)
    clf.save(tmp_path / "m.npz")
    predictor = minicnn.load_predictor(tmp_path / "m.npz")
    huge = X[:3].copy()
    huge[1, 2, 3, 0] = value
    for model in (clf, predictor):
        for layout in (huge, huge.reshape(3, -1), huge.astype(np.float64)):
            with pytest.raises(ValueError, match=r"X .*too large for float32"):
                model.predict_proba(layout)
    for cls in ESTIMATORS:
        Xf, yf = random_data(cls)
        Xf[5, 1, 1, 0] = value
        with pytest.raises(ValueError, match=r"X .*too large for float32"):
            cls(**{**TINY, "backend": backend}).fit(Xf, yf)
    # just below the limit, every backend gives the same finite answer
    ok = X[:3] * np.float32(1e6)
    assert np.isfinite(clf.predict_proba(ok)).all()


DIVERGING = [
    # (estimator, params, data scaling of X, of y, the parameter the message must blame, blames not allowed)
    (CNNClassifier, {"optimizer": "adam", "learning_rate": 1e3}, 1, 1, "learning_rate", ("weight_decay", "scale")),
    (CNNRegressor, {"optimizer": "adam", "learning_rate": 1e3}, 1, 1, "learning_rate", ("weight_decay", "scale")),
    (CNNClassifier, {"optimizer": "sgd", "learning_rate": 1e2}, 1, 1, "learning_rate", ("weight_decay", "scale")),
    (CNNClassifier, {"optimizer": "adam", "learning_rate": 0.01, "weight_decay": 300.0}, 1, 1, "weight_decay",
     ("too high",)),
    (CNNRegressor, {"optimizer": "sgd", "learning_rate": 0.01, "weight_decay": 500.0}, 1, 1, "weight_decay",
     ("too high",)),
    (CNNClassifier, {"optimizer": "sgd", "learning_rate": 3e-3}, 1e4, 1, "the scale of X", ("weight_decay",)),
]


@pytest.mark.parametrize("cls, params, x_scale, y_scale, blamed, not_blamed", DIVERGING)
def test_divergence_is_detected_by_growth_and_names_the_likely_cause(cls, params, x_scale, y_scale, blamed,
                                                                   not_blamed):
    X, y = random_data(cls, n=64)
    X = X * np.float32(x_scale)
    if cls is CNNRegressor:
        y = y * y_scale
    est = cls(**{**TINY, "max_iter": 6, "dropout": "none", **params})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(ValueError, match="Training diverged") as info:
            est.fit(X, y)
    message = str(info.value)
    assert f"Likely cause: {blamed}" in message
    for other in not_blamed:
        assert other not in message.split("Likely cause:")[1]
    assert not hasattr(est, "network_")


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_a_healthy_fit_is_not_called_divergent(cls):
    X, y = random_data(cls, n=96)
    est = cls(**{**TINY, "max_iter": 15, "learning_rate": 0.03}).fit(X, y)
    assert est.n_iter_ >= 1 and np.isfinite(est.loss_curve_).all()


@pytest.mark.parametrize("cls", ESTIMATORS)
@pytest.mark.parametrize("layers", [("dense8",), ("conv4", "gap"), ("conv4", "maxpool", "dense8")], ids=str)
def test_batchnorm_never_trains_on_one_value_per_channel(cls, layers):
    X, y = random_data(cls, n=65)
    one_value = any(t.startswith("dense") for t in layers)   # a BatchNorm over vectors (dense8 has one)
    params = {**TINY, "layers": layers, "batch_norm": True, "dropout": "none"}
    if one_value:
        with pytest.raises(ValueError, match=r"Expected more than 1 value per channel when training.*batch_size=1"):
            cls(**{**params, "batch_size": 1}).fit(X, y)
        fitted = cls(**params).fit(X[:4], y[:4])
        with pytest.raises(ValueError, match=r"Expected more than 1 value per channel.*1 training sample"):
            fitted.partial_fit(X[:1], y[:1])
    else:                      # a conv map has height x width values per channel: batches of one image are fine
        cls(**{**params, "batch_size": 1, "max_iter": 1}).fit(X[:8], y[:8])
    cls(**{**params, "batch_size": 64}).fit(X, y)     # 65 = 64 + 1: the trailing sample joins the last batch


def _batchnorm_inputs(est, X):
    """What the (first) BatchNorm of ``est`` saw: the forward pass up to it, in inference mode."""
    h = X
    for layer in est.network_.layers:
        if isinstance(layer, BatchNorm):
            return h.reshape(-1, h.shape[-1]).astype(np.float64)
        h = layer.forward(h, training=False)
    raise AssertionError("no BatchNorm")


@pytest.mark.parametrize("cls", ESTIMATORS)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("n, batch_size", [(65, 64), (33, 16), (40, 13)])
def test_batchnorm_running_statistics_match_the_data(cls, backend, n, batch_size):
    X, y = random_data(cls, n=n)
    # a learning rate so small that the layers before the BatchNorm do not move: its running estimates must
    # converge to the mean and the unbiased variance of what it sees (momentum 0.1: 0.9**80 ~ 2e-4)
    est = cls(layers=("dense8",), batch_norm=True, dropout="none", learning_rate=1e-9, max_iter=80,
              n_iter_no_change=1000, batch_size=batch_size, backend=backend, random_state=0).fit(X, y)
    seen = _batchnorm_inputs(est, X)
    bn = next(layer for layer in est.network_.layers if isinstance(layer, BatchNorm))
    np.testing.assert_allclose(bn.running_mean, seen.mean(axis=0), rtol=0.05, atol=1e-3)
    np.testing.assert_allclose(bn.running_var, seen.var(axis=0, ddof=1), rtol=0.25)


# ------------------------------------------------------------------------- 6. small data: the parameter's error
@pytest.mark.parametrize("n", [3, 6, 12, 20, 40])
@pytest.mark.parametrize("fraction", [0.01, 0.1, 0.2, 0.5, 0.9])
@pytest.mark.parametrize("cls", ESTIMATORS)
def test_early_stopping_on_small_data_names_its_parameters(cls, n, fraction):
    X, y = random_data(cls, n=n)
    n_val = max(1, round(fraction * n))
    k = len(np.unique(y)) if cls is CNNClassifier else 0
    feasible = n_val < n and (n_val >= 2 if cls is CNNRegressor
                              else (n_val >= k and n - n_val >= k and np.bincount(y).min() >= 2))
    est = cls(**{**TINY, "early_stopping": True, "validation_fraction": fraction, "batch_size": 4})
    if not feasible:
        with pytest.raises(ValueError, match=r"early_stopping=True with validation_fraction=") as info:
            est.fit(X, y)
        assert "train_test_split" not in str(info.value) and "test_size" not in str(info.value)
        assert not hasattr(est, "network_")
        return
    est.fit(X, y)
    assert all(np.isfinite(est.validation_scores_)) and np.isfinite(est.best_validation_score_)


def test_a_one_sample_class_with_early_stopping_names_the_class():
    X, y = random_data(CNNClassifier, n=30)
    y = y.copy()
    y[0] = 7
    with pytest.raises(ValueError, match=r"early_stopping=True .*class 7 has 1"):
        CNNClassifier(**TINY, early_stopping=True).fit(X, y)
    CNNClassifier(**TINY).fit(X, y)               # without early stopping the same data fits
    reg_X, reg_y = random_data(CNNRegressor, n=12)
    with pytest.raises(ValueError, match=r"validation_fraction=0.1 holds out 1 of 12 samples.*\(R\^2\)"):
        CNNRegressor(**TINY, early_stopping=True).fit(reg_X, reg_y)


def _unstable_data(cls):
    rng = np.random.default_rng(0)
    X = rng.random((64, 6, 6, 1)).astype(np.float32)
    means = X.mean(axis=(1, 2, 3))
    if cls is CNNClassifier:
        return X, (means > means.mean()).astype(int)
    return X, (means - means.mean()) / means.std()


@pytest.mark.parametrize("cls, optimizer, learning_rate, warns", [
    (CNNClassifier, "sgd", 1.0, True), (CNNClassifier, "adam", 1.0, True), (CNNClassifier, "adam", 0.3, True),
    (CNNClassifier, "adam", 3e-3, False), (CNNClassifier, "sgd", 0.05, False),
    (CNNRegressor, "sgd", 0.2, True), (CNNRegressor, "adam", 0.3, True),
    (CNNRegressor, "adam", 0.03, False), (CNNRegressor, "adam", 3e-3, False),
])
def test_a_divergence_below_the_raising_growth_warns_naming_learning_rate(cls, optimizer, learning_rate, warns):
    """Epoch losses well above a constant prediction's, never below it: ConvergenceWarning naming learning_rate."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    X, y = _unstable_data(cls)
    est = cls(layers=("conv3", "maxpool", "dense5"), batch_size=8, max_iter=8, optimizer=optimizer,
              learning_rate=learning_rate, backend="numpy", random_state=0, n_iter_no_change=100,
              dropout_rate=0.5, dropout_kind="auto")   # the rates above were tuned to this dropout, not the default
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        est.fit(X, y)
    hits = [w for w in caught if "no better than a constant prediction" in str(w.message)]
    if warns:
        assert len(hits) == 1 and issubclass(hits[0].category, ConvergenceWarning)
        assert "learning_rate" in str(hits[0].message) and hits[0].filename == __file__
        assert max(est.loss_curve_) < 100 * math.log(2) if cls is CNNClassifier else True   # below the raising rule
    else:
        assert not hits, [str(w.message) for w in hits]


@pytest.mark.parametrize("y_scale", [1e4, 1e10, 1e20, 1e30, 1e36, -1e30])
def test_targets_of_any_finite_scale_train_without_diverging(y_scale):
    """The targets are standardized inside (measured in float64): y * 1e36 trains like y, in y's units."""
    X, y = random_data(CNNRegressor, n=64)
    params = {**TINY, "max_iter": 6, "dropout": "none", "optimizer": "sgd", "learning_rate": 3e-3}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # ConvergenceWarning: 6 epochs
        unit = CNNRegressor(**params).fit(X, y)
        scaled = CNNRegressor(**params).fit(X, (y * y_scale).astype(np.float64))
    assert scaled.n_iter_ == unit.n_iter_ == 6 and np.isfinite(scaled.predict(X)).all()
    # the same model up to the float32 rounding of the scaled targets
    assert scaled.score(X, y * y_scale) == pytest.approx(unit.score(X, y), abs=0.05)
