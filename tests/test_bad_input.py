"""Bad input: every case raises a clear error naming the parameter and what was received; odd-but-valid input works."""

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.exceptions import NotFittedError
from sklearn.utils._param_validation import InvalidParameterError

from minicnn import CNNClassifier, CNNRegressor

SMALL = dict(layers=("conv4", "maxpool", "dense8"), max_iter=1, batch_size=32, backend="numpy", random_state=0)


N_DIGITS = 96   # samples in the digits fixture (conftest.py)


@pytest.fixture(scope="module")
def fitted(digits):
    return CNNClassifier(**SMALL).fit(*digits)


def _objects(value):
    X = np.empty((96, 64), dtype=object)
    X.fill(value)
    return X


def _with(X, index, value):
    X = X.astype(np.float64)
    X[index] = value
    return X


# ---------------------------------------------------------------- X and y at fit
# (make X and y from the digits, expected exception, regex that must name the parameter and the value/shape)
FIT_CASES = {
    "nan in X": (lambda X, y: (_with(X, (3, 2, 2, 0), np.nan), y), ValueError, r"Input X contains NaN"),
    "inf in X": (lambda X, y: (_with(X, (0, 0, 0, 0), np.inf), y), ValueError, r"Input X contains infinity"),
    "-inf in flat X": (lambda X, y: (_with(X, (5, 1, 1, 0), -np.inf).reshape(len(X), -1), y), ValueError,
                       r"Input X contains infinity"),
    "beyond float32": (lambda X, y: (_with(X, (1, 1, 1, 0), 1e300), y), ValueError,
                       r"Input X contains infinity or a value too large for dtype\('float32'\)"),
    "X 1-D": (lambda X, y: (X.ravel()[:len(X)], y), ValueError, r"received X with shape \(96,\)"),
    "X 0-D": (lambda X, y: (np.float32(3.0), y), ValueError, r"received X with shape \(\)"),
    "X 5-D": (lambda X, y: (X[..., None], y), ValueError, r"received X with shape \(96, 8, 8, 1, 1\)"),
    "X None": (lambda X, y: (None, y), ValueError, r"received X=None"),
    "empty X": (lambda X, y: (X[:0], y[:0]), ValueError, r"X has 0 samples.*shape \(0, 8, 8, 1\)"),
    "empty flat X": (lambda X, y: (X[:0].reshape(0, 64), y[:0]), ValueError, r"X has 0 samples.*\(0, 64\)"),
    "zero features": (lambda X, y: (np.zeros((96, 0)), y), ValueError, r"0 feature.*received X with shape \(96, 0\)"),
    "one sample": (lambda X, y: (X[:1], y[:1]), ValueError,
                   r"at least 2 classes; y \(shape \(1,\)\).*one class: \[0\]"),
    "single class": (lambda X, y: (X, np.full(len(y), 7)), ValueError,
                     r"y \(shape \(96,\)\) holds only one class: \[7\]"),
    "y too short": (lambda X, y: (X, y[:-1]), ValueError, r"X has 96 .*y has 95 \(shape \(95,\)\)"),
    "y too long": (lambda X, y: (X[:-3], y), ValueError, r"X has 93 \(shape \(93, 8, 8, 1\)\), y has 96"),
    "y None": (lambda X, y: (X, None), ValueError, r"requires y to be passed, but the target y is None"),
    "y 2-D": (lambda X, y: (X, np.c_[y, y]), ValueError, r"y should be a 1d array, got an array of shape \(96, 2\)"),
    "y continuous": (lambda X, y: (X, y + 0.5), ValueError, r"Unknown label type: continuous"),
    "y with nan": (lambda X, y: (X, np.where(y > 4, np.nan, 1.0)), ValueError, r"Input y contains NaN"),
    "complex X": (lambda X, y: (X.astype(np.complex128), y), ValueError,
                  r"Complex data not supported: received X with shape \(96, 8, 8, 1\) and dtype complex128"),
    "string X": (lambda X, y: (X.astype(str), y), ValueError, r"received X with shape \(96, 8, 8, 1\) and dtype <U"),
    "bytes X": (lambda X, y: (X.reshape(96, -1).astype("S8"), y), ValueError, r"received X with shape \(96, 64\) "
                r"and dtype \|S8"),
    "list of strings": (lambda X, y: ([["a"] * 64] * 96, y), ValueError,
                        r"received X with shape \(96, 64\) and dtype <U1"),
    "object X of words": (lambda X, y: (np.full((96, 64), "word", dtype=object), y), ValueError,
                          r"could not convert string to float: 'word' \(received X with shape \(96, 64\) and "
                          r"dtype object\)"),
    "object X of dicts": (lambda X, y: (_objects({"a": 1}), y), TypeError,
                          r"not 'dict' \(received X with shape \(96, 64\) and dtype object\)"),
    "datetime X": (lambda X, y: (np.zeros((96, 64), dtype="datetime64[s]"), y), ValueError,
                   r"received X with shape \(96, 64\) and dtype datetime64\[s\]"),
    "ragged list": (lambda X, y: ([[1.0, 2.0], [3.0]], [0, 1]), ValueError, r"X is a ragged nested list of length 2"),
    "csr matrix": (lambda X, y: (sp.csr_matrix(X.reshape(96, -1)), y), TypeError,
                   r"dense input is required: received X with shape \(96, 64\).*csr_matrix"),
    "csr array": (lambda X, y: (sp.csr_array(X.reshape(96, -1)), y), TypeError,
                  r"dense input is required: received X with shape \(96, 64\).*csr_array"),
    "input_shape vs width": (lambda X, y: (X.reshape(96, -1), y), ValueError,
                             r"input_shape=\(4, 4, 1\) holds 16 values per sample, but X has 64 features"),
}


@pytest.mark.parametrize("case", FIT_CASES)
@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")   # scikit-learn's check of 1e39
def test_bad_fit_input(digits, case):
    make, exc, match = FIT_CASES[case]
    X, y = make(*digits)
    params = dict(input_shape=(4, 4, 1)) if case == "input_shape vs width" else {}
    est = CNNClassifier(**SMALL, **params)
    with pytest.raises(exc, match=match):
        est.fit(X, y)
    assert not hasattr(est, "network_")
    with pytest.raises(NotFittedError):     # a failed fit never leaves a half-fitted estimator
        est.predict(digits[0])


def test_image_shape_inconsistent_with_input_shape(digits):
    X, y = digits
    with pytest.raises(ValueError, match=r"X holds images of shape \(height, width, channels\)=\(8, 8, 1\), but "
                                         r"input_shape expects \(4, 16, 1\)"):
        CNNClassifier(**SMALL, input_shape=(4, 16, 1)).fit(X, y)


def test_regressor_target_errors(digits):
    X, _ = digits
    with pytest.raises(ValueError, match=r"received y with shape \(96, 2, 1\)"):
        CNNRegressor(**SMALL).fit(X, np.zeros((96, 2, 1)))
    reg = CNNRegressor(**SMALL).fit(X, np.zeros((96, 2)))
    with pytest.raises(ValueError, match=r"y has 3 outputs, but the fitted model has n_outputs_=2"):
        reg.partial_fit(X, np.zeros((96, 3)))


# ---------------------------------------------------------------- every constructor parameter
PARAM_CASES = [
    ("layers", "conv4", InvalidParameterError, r"'layers' parameter.*Got 'conv4'"),
    ("layers", (4,), ValueError, r"Received: layers\[0\]=4"),
    ("layers", ("conv4", "pool"), ValueError, r"Received: layers\[1\]='pool'"),
    ("layers", ("conv0",), ValueError, r"layers\[0\]='conv0'"),
    ("layers", ("dense8", "conv4"), ValueError, r"layers\[1\]='conv4'"),
    ("kernel_size", 0, InvalidParameterError, r"'kernel_size' parameter.*Got 0"),
    ("kernel_size", 2.5, InvalidParameterError, r"'kernel_size' parameter.*Got 2.5"),
    ("padding", "full", InvalidParameterError, r"'padding' parameter.*Got 'full'"),
    ("pool_size", 0, InvalidParameterError, r"'pool_size' parameter.*Got 0"),
    ("activation", "gelu", InvalidParameterError, r"'activation' parameter.*Got 'gelu'"),
    ("batch_norm", "yes", InvalidParameterError, r"'batch_norm' parameter.*Got 'yes'"),
    ("dropout", 3, InvalidParameterError, r"'dropout' parameter.*Got 3"),
    ("dropout", "sometimes", ValueError, r"Received: dropout='sometimes'"),
    ("dropout", "last:x", ValueError, r"Received: dropout='last:x'"),
    ("dropout", (1, 0), ValueError, r"Received: dropout=\(1, 0\)"),
    ("dropout", (7,), ValueError, r"Received: dropout=\(7,\)"),
    ("dropout_rate", 1.0, InvalidParameterError, r"'dropout_rate' parameter.*Got 1.0"),
    ("dropout_rate", -0.1, InvalidParameterError, r"'dropout_rate' parameter.*Got -0.1"),
    ("dropout_rate", float("nan"), InvalidParameterError, r"'dropout_rate' parameter.*Got nan"),
    ("dropout_rate", (0.1, 0.2), ValueError, r"Received: dropout_rate=\(0.1, 0.2\)"),
    ("dropout_kind", "channel", InvalidParameterError, r"'dropout_kind' parameter.*Got 'channel'"),
    ("dropout_scaling", "x", InvalidParameterError, r"'dropout_scaling' parameter.*Got 'x'"),
    ("optimizer", "lbfgs", InvalidParameterError, r"'optimizer' parameter.*Got 'lbfgs'"),
    ("learning_rate", 0, InvalidParameterError, r"'learning_rate' parameter.*Got 0"),
    ("learning_rate", float("inf"), InvalidParameterError, r"'learning_rate' parameter.*Got inf"),
    ("learning_rate", "fast", InvalidParameterError, r"'learning_rate' parameter.*Got 'fast'"),
    ("batch_size", 0, InvalidParameterError, r"'batch_size' parameter.*Got 0"),
    ("batch_size", 1.5, InvalidParameterError, r"'batch_size' parameter.*Got 1.5"),
    ("max_iter", 0, InvalidParameterError, r"'max_iter' parameter.*Got 0"),
    ("weight_decay", -1, InvalidParameterError, r"'weight_decay' parameter.*Got -1"),
    ("early_stopping", 1, InvalidParameterError, r"'early_stopping' parameter.*Got 1"),
    ("validation_fraction", 1.0, InvalidParameterError, r"'validation_fraction' parameter.*Got 1.0"),
    ("n_iter_no_change", 0, InvalidParameterError, r"'n_iter_no_change' parameter.*Got 0"),
    ("tol", -1, InvalidParameterError, r"'tol' parameter.*Got -1"),
    ("tol", float("nan"), InvalidParameterError, r"'tol' parameter.*Got nan"),
    ("input_shape", "8x8", InvalidParameterError, r"'input_shape' parameter.*Got '8x8'"),
    ("input_shape", (8, 8, 1, 1), ValueError, r"Received: input_shape=\(8, 8, 1, 1\)"),
    ("input_shape", (8, 0, 1), ValueError, r"Received: input_shape=\(8, 0, 1\)"),
    ("data_format", "nhwc", InvalidParameterError, r"'data_format' parameter.*Got 'nhwc'"),
    ("backend", "torch", InvalidParameterError, r"'backend' parameter.*Got 'torch'"),
    ("n_threads", 0, InvalidParameterError, r"'n_threads' parameter.*Got 0"),
    ("n_threads", 100_000, InvalidParameterError, r"'n_threads' parameter.*\[1, 1024\].*Got 100000"),
    ("n_threads", 2.0, InvalidParameterError, r"'n_threads' parameter.*Got 2.0"),
    ("random_state", "a", InvalidParameterError, r"'random_state' parameter.*Got 'a'"),
    ("verbose", -1, InvalidParameterError, r"'verbose' parameter.*Got -1"),
    ("warm_start", None, InvalidParameterError, r"'warm_start' parameter.*Got None"),
    ("lr_schedule", "linear", InvalidParameterError, r"'lr_schedule' parameter.*Got 'linear'"),
    ("augment", ("shift0",), InvalidParameterError, r"'augment' parameter.*Got \('shift0',\)"),
    ("class_weight", "auto", InvalidParameterError, r"'class_weight' parameter.*Got 'auto'"),
    ("class_weight", {99: 2.0}, ValueError,
     r"class_weight has key 99, which is not a class|CNNRegressor received class_weight=\{99: 2.0\}"),
    ("checkpoint_path", 3, InvalidParameterError, r"'checkpoint_path' parameter.*Got 3"),
    ("checkpoint_path", "/nonexistent-folder/c.npz", ValueError, r"checkpoint_path=.*does not exist"),
]


@pytest.mark.parametrize("name, value, exc, match", PARAM_CASES, ids=[f"{c[0]}={c[1]!r}" for c in PARAM_CASES])
@pytest.mark.parametrize("cls", [CNNClassifier, CNNRegressor])
def test_bad_constructor_parameter(digits, cls, name, value, exc, match):
    X, y = digits
    est = cls(**{**SMALL, name: value})
    assert getattr(est, name) is value       # __init__ only stores
    with pytest.raises(exc, match=match):
        est.fit(X, y)
    assert not hasattr(est, "network_")


def test_every_constructor_parameter_has_a_bad_case():
    assert {name for name, *_ in PARAM_CASES} == set(CNNClassifier().get_params())


# ---------------------------------------------------------------- prediction and partial_fit
def test_predict_before_fit(digits):
    X, _ = digits
    for method in ("predict", "predict_proba", "predict_log_proba", "predict_uncertainty", "summary"):
        with pytest.raises(NotFittedError, match="This CNNClassifier instance is not fitted yet"):
            getattr(CNNClassifier(**SMALL), method)(*(() if method == "summary" else (X,)))
    with pytest.raises(NotFittedError, match="This CNNRegressor instance is not fitted yet"):
        CNNRegressor(**SMALL).predict(X)


@pytest.mark.parametrize("make, exc, match", [
    (lambda X: X[:, :, :4], ValueError, r"X has 32 features, but CNNClassifier is expecting 64"),
    (lambda X: X.reshape(len(X), -1)[:, :63], ValueError, r"X has 63 features, but CNNClassifier is expecting 64"),
    (lambda X: X.reshape(len(X), 4, 16, 1), ValueError, r"images of shape .*\(4, 16, 1\).*expects \(8, 8, 1\)"),
    (lambda X: np.full_like(X, np.nan), ValueError, r"Input X contains NaN"),
    (lambda X: X[:0], ValueError, r"X has 0 samples.*\(0, 8, 8, 1\)"),
    (lambda X: X[0, :, :, 0].ravel(), ValueError, r"received X with shape \(64,\)"),
    (lambda X: sp.csr_matrix(X.reshape(len(X), -1)), TypeError, r"dense input is required.*\(96, 64\)"),
], ids=["fewer-features-4d", "fewer-features-flat", "other-image-shape", "nan", "empty", "1-D", "sparse"])
def test_bad_predict_input(fitted, digits, make, exc, match):
    with pytest.raises(exc, match=match):
        fitted.predict(make(digits[0]))


def test_partial_fit_errors(fitted, digits):
    X, y = digits
    with pytest.raises(ValueError, match=r"y contains labels \[100, 101\] not in classes_=\[0, 1, 2"):
        fitted.partial_fit(X[:2], np.array([100, 101]))
    with pytest.raises(ValueError, match=r"classes must be passed on the first call.*received classes=None"):
        CNNClassifier(**SMALL).partial_fit(X, y)
    with pytest.raises(ValueError, match=r"classes=\[3\] holds only one class"):
        CNNClassifier(**SMALL).partial_fit(X, np.full(len(X), 3), classes=[3])
    with pytest.raises(ValueError, match=r"Received: mc_samples=0"):
        fitted.predict_proba(X, mc_samples=0)


# ---------------------------------------------------------------- odd but valid input works, with the same result
def test_fortran_and_non_contiguous_inputs_give_the_same_model(digits, fitted):
    X, y = digits
    expected = fitted.predict_proba(X)
    wide = np.repeat(X, 2, axis=2)[:, :, ::2]                 # a strided view
    assert not wide.flags.c_contiguous
    for variant in (np.asfortranarray(X), wide, np.asfortranarray(X.reshape(len(X), -1)), X[::-1][::-1]):
        est = CNNClassifier(**SMALL).fit(variant, y)
        np.testing.assert_array_equal(est.predict_proba(variant), expected)
        np.testing.assert_array_equal(fitted.predict_proba(variant), expected)


@pytest.mark.filterwarnings("ignore:X holds integer values")   # unscaled 0..16 on purpose (asserted in test_estimator)
def test_uint8_and_list_inputs_work(digits):
    X, y = digits
    raw = np.round(X * 16).astype(np.uint8)
    a = CNNClassifier(**SMALL).fit(raw, y)
    b = CNNClassifier(**SMALL).fit(raw.astype(np.float32), y)
    np.testing.assert_array_equal(a.predict_proba(raw), b.predict_proba(raw))
    c = CNNClassifier(**SMALL).fit(raw.reshape(len(X), -1).tolist(), y.tolist())
    np.testing.assert_array_equal(c.predict_proba(raw), b.predict_proba(raw))


def test_huge_values_keep_the_loss_finite(digits):
    X, y = digits
    est = CNNClassifier(**SMALL).fit(X * 1e6, y)            # logits ~1e6: a naive softmax would overflow
    assert np.isfinite(est.loss_curve_).all()
    proba = est.predict_proba(X * 1e6)
    assert np.isfinite(proba).all()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert np.isfinite(est.predict_log_proba(X * 1e6)).all() or (est.predict_log_proba(X * 1e6) <= 0).all()


@pytest.mark.parametrize("cls", [CNNClassifier, CNNRegressor])
def test_batch_size_larger_than_the_data(digits, cls):
    X, y = digits
    est = cls(**{**SMALL, "batch_size": 10_000}).fit(X[:10], y[:10])
    assert est.n_iter_ == 1 and est.t_ == 10
    assert est.predict(X[:3]).shape == (3,)


def test_object_array_of_numbers_is_accepted(digits):
    X, y = digits
    a = CNNClassifier(**SMALL).fit(X.reshape(len(X), -1).astype(object), y)
    b = CNNClassifier(**SMALL).fit(X.reshape(len(X), -1), y)
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))
