"""Monte-Carlo uncertainty under hostile inputs: the spread of equal passes, every face, every bad y of mc_report."""

import warnings

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

from minicnn import CNNClassifier, CNNRegressor, load_predictor
from minicnn._predict import softmax
from minicnn.uncertainty import mc_report

N_DIGITS = 80
COMMON = dict(max_iter=1, backend="numpy", random_state=0, n_threads=1)
#: Dropout nowhere, at the top level, and only inside a residual block.
DROPOUTS = {"none": dict(layers=("conv4", "gap"), dropout="none"),
            "top": dict(layers=("conv4", "maxpool", "dense8"), dropout="after_each_layer", dropout_rate=0.3),
            "inner": dict(layers=("res4", "gap"), dropout=[0], dropout_rate=0.5)}


@pytest.fixture(scope="module", params=[(c, d) for c in ("classifier", "regressor") for d in DROPOUTS])
def faces(request, digits, tmp_path_factory):
    kind, dropout = request.param
    X, y = digits
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # ConvergenceWarning of the 1-epoch fits
        est = (CNNClassifier(**COMMON, **DROPOUTS[dropout]).fit(X, y) if kind == "classifier"
               else CNNRegressor(**COMMON, **DROPOUTS[dropout]).fit(X, y.astype(np.float32) / 9))
    path = tmp_path_factory.mktemp("m") / "m.npz"
    est.save(path)
    return dropout, est, load_predictor(path), X[:9]


def test_mc_spread_is_the_exact_standard_deviation_of_the_passes(faces):
    """Equal passes (no dropout) give a std of exactly 0; with dropout, the float64 std of the passes."""
    dropout, est, pred, X = faces
    k = 5
    network = est.network_
    passes = []
    for i in range(k):   # int random_state: the passes of one batch are keyed 0 .. k-1
        raw = network.forward(X, training=False, mc_pass=i)
        passes.append(softmax(raw) if isinstance(est, CNNClassifier) else raw.astype(np.float64))
    expected = np.std(passes, axis=0)
    for face in (est, pred):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            mean, std = face.predict_uncertainty(X, mc_samples=k)
        assert len([w for w in caught if "without dropout" in str(w.message)]) == (dropout == "none")
        std = std.reshape(expected.shape)
        if dropout == "none":
            assert np.all(std == 0.0)
        else:
            assert std.max() > 0
            np.testing.assert_allclose(std, expected, rtol=1e-7, atol=1e-12)


def _classifier(digits):
    X, y = digits
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return CNNClassifier(**COMMON, **DROPOUTS["top"]).fit(X, y), X[:10], y[:10]


def test_mc_report_without_dropout_has_no_spread_to_rank(digits):
    X, y = digits
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = CNNClassifier(**COMMON, **DROPOUTS["none"]).fit(X, y)
    with pytest.warns(UserWarning, match="without dropout"):
        report = mc_report(clf, X[:30], y[:30], mc_samples=3)
    assert report["mc"]["auroc_std"] in (0.5,) or np.isnan(report["mc"]["auroc_std"])
    for key in ("log_loss", "brier", "ece", "accuracy", "auroc_confidence"):
        np.testing.assert_allclose(report["mc"][key], report["deterministic"][key], rtol=1e-9, equal_nan=True)


#: Held-out labels of every wrong kind, with what the error must say.
BAD_Y = {
    "None": (lambda y: None, r"y=None"),
    "column": (lambda y: y[:, None], r"1-D.*\(10, 1\)"),
    "row": (lambda y: y[None, :], r"1-D.*\(1, 10\)"),
    "scalar": (lambda y: np.int64(3), r"1-D.*\(\)"),
    "longer": (lambda y: np.concatenate([y, y[:1]]), r"X has 10, y has 11"),
    "shorter": (lambda y: y[:9], r"X has 10, y has 9"),
    "unknown label": (lambda y: np.where(np.arange(10) == 0, 42, y), r"not in the model's classes_"),
    "strings": (lambda y: y.astype(str), r"not in the model's classes_"),
    "nan": (lambda y: np.where(np.arange(10) == 0, np.nan, y), r"not in the model's classes_"),
}


@pytest.mark.parametrize("kind", list(BAD_Y))
def test_mc_report_refuses_every_bad_y_before_any_monte_carlo_pass(digits, tmp_path, kind):
    clf, X, y = _classifier(digits)
    clf.save(tmp_path / "m.npz")
    make, message = BAD_Y[kind]
    for face in (clf, load_predictor(tmp_path / "m.npz")):
        passes = []
        original = face.predict_uncertainty
        face.predict_uncertainty = lambda *a, **k: passes.append(1) or original(*a, **k)
        with pytest.raises(ValueError, match=message):
            mc_report(face, X, make(y), mc_samples=3)
        assert passes == []


@pytest.mark.parametrize("value", [0, -1, True, 2.0, "3", None])
def test_mc_report_refuses_bad_mc_samples_before_predicting(digits, value):
    clf, X, y = _classifier(digits)
    calls = []
    clf.predict_proba = lambda *a, **k: calls.append(1)
    with pytest.raises(ValueError, match=r"Received: mc_samples="):
        mc_report(clf, X, y, mc_samples=value)
    assert calls == []


@pytest.mark.parametrize("model", [CNNClassifier(), CNNClassifier(**COMMON, **DROPOUTS["top"])])
def test_mc_report_on_an_unfitted_classifier_is_not_fitted_error(digits, model):
    X, y = digits
    with pytest.raises(NotFittedError, match="not fitted"):
        mc_report(model, X[:5], y[:5], mc_samples=2)


def test_mc_report_refuses_regressors_on_every_face(digits, tmp_path):
    X, y = digits
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reg = CNNRegressor(**COMMON, **DROPOUTS["top"]).fit(X, y.astype(np.float32))
    reg.save(tmp_path / "r.npz")
    for face in (reg, load_predictor(tmp_path / "r.npz"), CNNRegressor()):
        with pytest.raises(ValueError, match="needs a fitted classifier"):
            mc_report(face, X[:5], y[:5], mc_samples=2)
