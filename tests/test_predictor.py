"""``minicnn.load_predictor``: the scikit-learn-free prediction path predicts exactly like the saved estimator."""

import subprocess
import sys

import numpy as np
import pytest

import minicnn
from minicnn import CNNClassifier, CNNRegressor
from minicnn.predictor import PARAM_RULES, Predictor


N_DIGITS = 300   # samples in the digits fixture (conftest.py)


@pytest.fixture(scope="module")
def saved(digits, tmp_path_factory):
    X, y = digits
    clf = CNNClassifier(layers=("conv6", "maxpool", "dense16"), dropout="last:2", max_iter=2,
                        random_state=0).fit(X, y)
    path = tmp_path_factory.mktemp("predictor") / "clf.npz"
    clf.save(path)
    return clf, path


def test_param_rules_cover_exactly_the_estimator_parameters():
    assert set(PARAM_RULES) == set(CNNClassifier().get_params()) == set(CNNRegressor().get_params())


def test_classifier_predictions_are_identical(saved, digits):
    clf, path = saved
    X = digits[0][:70]
    predictor = minicnn.load_predictor(path)
    assert isinstance(predictor, Predictor)
    np.testing.assert_array_equal(predictor.classes_, clf.classes_)
    np.testing.assert_array_equal(predictor.predict(X), clf.predict(X))
    np.testing.assert_array_equal(predictor.predict_proba(X), clf.predict_proba(X))
    np.testing.assert_array_equal(predictor.predict_log_proba(X), clf.predict_log_proba(X))
    np.testing.assert_array_equal(predictor.predict_proba(X, mc_samples=3), clf.predict_proba(X, mc_samples=3))
    np.testing.assert_array_equal(predictor.predict(X[:1]), clf.predict(X[:1]))


@pytest.mark.parametrize("layout", ["nhwc", "flat", "3d", "float64", "int", "list", "strided"])
def test_every_input_layout_the_estimator_accepts(saved, digits, layout):
    clf, path = saved
    X = digits[0][:9]
    variants = {"nhwc": X, "flat": X.reshape(9, -1), "3d": X[..., 0], "float64": X.astype(np.float64),
                "int": (X * 16).round().astype(np.int64), "list": X.reshape(9, -1).tolist(),
                "strided": np.repeat(X, 2, axis=0)[::2]}
    predictor = minicnn.load_predictor(path)
    value = variants[layout]
    np.testing.assert_array_equal(predictor.predict_proba(value), clf.predict_proba(value))


def test_channels_first_and_feature_names(digits, tmp_path):
    pd = pytest.importorskip("pandas")
    X, y = digits
    X_cf = np.ascontiguousarray(np.repeat(X, 2, axis=3).transpose(0, 3, 1, 2))   # (n, 2, 8, 8)
    clf = CNNClassifier(layers=("conv4", "maxpool"), data_format="channels_first", max_iter=1, random_state=0).fit(X_cf, y)
    clf.save(tmp_path / "cf.npz")
    predictor = minicnn.load_predictor(tmp_path / "cf.npz")
    np.testing.assert_array_equal(predictor.predict_proba(X_cf[:5]), clf.predict_proba(X_cf[:5]))
    flat = X_cf.reshape(len(X_cf), -1)
    np.testing.assert_array_equal(predictor.predict_proba(flat[:5]), clf.predict_proba(flat[:5]))

    frame = pd.DataFrame(X.reshape(len(X), -1), columns=[f"p{i}" for i in range(64)])
    named = CNNClassifier(layers=("conv4", "maxpool"), max_iter=1, random_state=0).fit(frame, y)
    named.save(tmp_path / "named.npz")
    predictor = minicnn.load_predictor(tmp_path / "named.npz")
    np.testing.assert_array_equal(predictor.predict(frame[:5]), named.predict(frame[:5]))
    with pytest.raises(ValueError, match="feature names of X do not match"):
        predictor.predict(frame.rename(columns={"p0": "q0"})[:5])
    with pytest.warns(UserWarning, match="feature names"):
        predictor.predict(frame.to_numpy()[:5])


@pytest.mark.parametrize("two_d", [False, True])
def test_regressor_predictions_are_identical(digits, tmp_path, two_d):
    X, y = digits
    target = np.stack([y, -y], axis=1).astype(float) if two_d else y.astype(float)
    reg = CNNRegressor(layers=("conv4", "maxpool"), dropout="last:1", max_iter=1, random_state=0).fit(X, target)
    reg.save(tmp_path / "reg.npz")
    predictor = minicnn.load_predictor(tmp_path / "reg.npz")
    np.testing.assert_array_equal(predictor.predict(X[:11]), reg.predict(X[:11]))
    np.testing.assert_array_equal(predictor.predict(X[:11], mc_samples=2), reg.predict(X[:11], mc_samples=2))
    with pytest.raises(AttributeError, match="only available for a CNNClassifier"):
        predictor.predict_proba(X[:2])


@pytest.mark.parametrize("bad, match", [
    (np.full((2, 64), np.nan), "Input X contains NaN"),
    (np.full((2, 64), np.inf), "Input X contains infinity"),
    (np.full((2, 64), 1e38), "too large for float32 arithmetic"),
    (np.full((2, 64), 1e39), "too large for float32"),
    (np.zeros((2, 10)), "X has 10 features, but CNNClassifier is expecting 64"),
    (np.zeros((2, 9, 9)), r"images of shape \(height, width, channels\)=\(9, 9, 1\)"),
    (np.zeros((0, 64)), "X has 0 samples"),
    (np.zeros(64), "Expected X with 2 to 4 dimensions"),
    (np.array([["a"] * 64]), "Expected numeric X"),
    (np.zeros((2, 64), dtype=complex), "Complex data not supported"),
    ([[1.0] * 64, [1.0] * 3], "ragged"),
    (None, "X=None"),
])
def test_bad_inputs_name_x_and_what_was_received(saved, bad, match):
    predictor = minicnn.load_predictor(saved[1])
    with pytest.raises(ValueError, match=match):
        predictor.predict(bad)


def test_bad_arguments(saved):
    with pytest.raises(ValueError, match="backend must be one of .* received backend='gpu'"):
        minicnn.load_predictor(saved[1], backend="gpu")
    predictor = minicnn.load_predictor(saved[1], backend="numpy")
    assert predictor.backend == "numpy"
    with pytest.raises(ValueError, match="mc_samples=0"):
        predictor.predict_proba(np.zeros((1, 64)), mc_samples=0)
    with pytest.raises(ValueError, match="use predict_proba"):
        predictor.predict(np.zeros((1, 64)), mc_samples=2)


#: Modules a fresh process that loads a model with load_predictor and predicts must not import (scikit-learn,
#: Numba and SciPy's linear algebra each cost a large share of a cold start; see minicnn/backend/blas.py).
COLD_START_ABSENT = ('sklearn', 'numba', 'pandas', 'scipy.linalg', 'scipy')


@pytest.mark.parametrize("size", ["small", "threaded"])
def test_a_fresh_process_predicts_without_importing_scikit_learn_or_scipy(saved, digits, tmp_path, size):
    # "small": one digits batch below the kernels' parallel threshold (no thread limits); "threaded": a 3-channel
    # model on 24 px images whose batch enters thread_limits (threadpoolctl, OpenMP), with Winograd and dense GEMMs.
    if size == "small":
        clf, path = saved
        X = digits[0][:4]
    else:
        rng = np.random.default_rng(0)
        X = rng.random((40, 24, 24, 3), dtype=np.float32)
        clf = CNNClassifier(layers=("conv8", "conv16", "maxpool", "dense32"), max_iter=1, random_state=0)
        with pytest.warns(Warning):   # one iteration does not converge
            clf.fit(X, np.arange(40) % 3)
        path = tmp_path / "threaded.npz"
        clf.save(path)
    np.save(tmp_path / "x.npy", X)
    code = ("import sys, numpy as np, minicnn\n"
            f"p = minicnn.load_predictor({str(path)!r})\n"
            f"print(p.predict(np.load({str(tmp_path / 'x.npy')!r})).tolist())\n"
            f"print(sorted(m for m in {COLD_START_ABSENT!r} if m in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    labels, modules = done.stdout.strip().splitlines()
    assert labels == str(clf.predict(X).tolist())
    assert modules == "[]"
