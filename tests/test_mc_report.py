"""The Monte-Carlo dropout report: its numbers on a planted case, on a real model, and the commands."""

import csv
import io
import math
import warnings

import numpy as np
import pytest

from minicnn import CNNClassifier, CNNRegressor, load_predictor
from minicnn.uncertainty import expected_calibration_error, format_report, mc_report

N_DIGITS = 200


class Planted:
    """A 'model' whose probabilities are given: the report's numbers can be derived by hand."""

    estimator = "CNNClassifier"

    def __init__(self, plain, mean, std):
        self.classes_ = np.array(["cat", "dog", "eel"])
        self.plain, self.mean, self.std = plain, mean, std

    def predict_proba(self, X):
        return self.plain

    def predict_uncertainty(self, X, mc_samples=30):
        return self.mean, self.std


def _planted():
    plain = np.array([[0.90, 0.05, 0.05], [0.80, 0.10, 0.10], [0.10, 0.85, 0.05], [0.20, 0.70, 0.10],
                      [0.05, 0.05, 0.90], [0.60, 0.30, 0.10]])
    y = np.array(["cat", "cat", "dog", "eel", "eel", "dog"])   # rows 3 and 5 are wrong
    mean = np.array([[0.70, 0.20, 0.10], [0.60, 0.20, 0.20], [0.20, 0.70, 0.10], [0.30, 0.45, 0.25],
                     [0.10, 0.10, 0.80], [0.45, 0.40, 0.15]])
    std = np.full_like(mean, 0.01)
    std[3, 1], std[5, 0] = 0.30, 0.25   # the MC spread of the predicted class is largest where it is wrong
    std[0, 0] = 0.27                    # ... and one right prediction more than one wrong one
    return Planted(plain, mean, std), y


def _by_hand(proba, index):
    n, k = proba.shape
    onehot = np.eye(k)[index]
    conf, correct = proba.max(axis=1), proba.argmax(axis=1) == index
    ece = 0.0
    for lo in np.arange(15) / 15:
        members = (conf >= lo) & (conf < lo + 1 / 15) if lo < 14 / 15 else conf >= lo
        if members.any():
            ece += members.sum() / n * abs(correct[members].mean() - conf[members].mean())
    return {"log_loss": -np.mean(np.log(proba[np.arange(n), index])),
            "brier": np.mean(((proba - onehot) ** 2).sum(axis=1)), "ece": ece, "accuracy": correct.mean()}


def _pairs_auroc(wrong, score):
    """Probability that a wrong prediction scores above a right one (ties count half): AUROC's definition."""
    w, r = score[wrong], score[~wrong]
    return np.mean([(a > b) + 0.5 * (a == b) for a in w for b in r])


def test_planted_numbers():
    model, y = _planted()
    index = np.searchsorted(model.classes_, y)
    report = mc_report(model, None, y, mc_samples=7)
    assert report["n_samples"] == 6 and report["mc_samples"] == 7
    for key, proba in (("deterministic", model.plain), ("mc", model.mean)):
        expected = _by_hand(proba, index)
        for name, value in expected.items():
            assert report[key][name] == pytest.approx(value, rel=1e-12), (key, name)
        wrong = proba.argmax(axis=1) != index
        assert report[key]["auroc_confidence"] == pytest.approx(_pairs_auroc(wrong, 1 - proba.max(axis=1)))
    wrong = model.mean.argmax(axis=1) != index
    spread = model.std[np.arange(6), model.mean.argmax(axis=1)]
    assert report["mc"]["auroc_std"] == pytest.approx(_pairs_auroc(wrong, spread))
    assert report["mc"]["auroc_std"] == pytest.approx(7 / 8)   # 2 wrong x 4 right pairs, one pair inverted
    assert "auroc_std" not in report["deterministic"]
    text = format_report(report)
    assert "deterministic" in text and "mc (7 passes)" in text and f"{report['mc']['log_loss']:.4f}" in text


def test_auroc_is_nan_when_every_prediction_is_right():
    model, y = _planted()
    y = model.classes_[model.mean.argmax(axis=1)]
    model.plain = model.mean
    report = mc_report(model, None, y)
    assert math.isnan(report["mc"]["auroc_std"]) and math.isnan(report["deterministic"]["auroc_confidence"])
    assert report["mc"]["accuracy"] == 1.0


def test_ece_helper_example_bins():
    proba = np.array([[0.95, 0.05], [0.95, 0.05], [0.55, 0.45]])
    assert expected_calibration_error(np.array([0, 1, 1]), proba) == pytest.approx(2 / 3 * 0.45 + 1 / 3 * 0.55)


@pytest.fixture(scope="module")
def fitted(digits, tmp_path_factory):
    X, y = digits
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = CNNClassifier(layers=("conv4", "maxpool", "dense16"), dropout="after_each_layer", dropout_rate=0.2,
                            max_iter=3, backend="numpy", random_state=0).fit(X[:150], y[:150])
    path = tmp_path_factory.mktemp("m") / "m.npz"
    clf.save(path)
    return clf, path, X[150:], y[150:]


def test_report_on_a_fitted_model_and_its_predictor(fitted):
    from sklearn.metrics import log_loss

    clf, path, X, y = fitted
    report = mc_report(clf, X, y, mc_samples=5)
    assert report["deterministic"]["accuracy"] == pytest.approx(clf.score(X, y))
    assert report["deterministic"]["log_loss"] == pytest.approx(log_loss(y, clf.predict_proba(X),
                                                                         labels=clf.classes_))
    mean, _ = clf.predict_uncertainty(X, mc_samples=5)
    assert report["mc"]["log_loss"] == pytest.approx(log_loss(y, mean, labels=clf.classes_))
    assert mc_report(load_predictor(path), X, y, mc_samples=5) == report   # the Predictor predicts exactly alike


def test_report_refusals(digits, fitted):
    clf, _, X, y = fitted
    with pytest.raises(ValueError, match="not in the model's classes_"):
        mc_report(clf, X, y + 100)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reg = CNNRegressor(layers=("conv4", "gap"), max_iter=1, backend="numpy").fit(X, y.astype(float))
        plain = CNNClassifier(layers=("conv4", "gap"), dropout="none", max_iter=1, backend="numpy").fit(X, y)
    with pytest.raises(ValueError, match="needs a fitted classifier"):
        mc_report(reg, X, y)
    with pytest.warns(UserWarning, match="without dropout"):
        report = mc_report(plain, X, y, mc_samples=2)
    assert report["mc"]["log_loss"] == pytest.approx(report["deterministic"]["log_loss"])


def test_cli_predict_mc_samples_and_mc_report(fitted, tmp_path):
    from helpers import run_cli

    clf, path, X, y = fitted
    np.savez(tmp_path / "in.npz", X=X)
    code, out, err = run_cli("predict", "--model", str(path), "--mc-samples", "4", str(tmp_path / "in.npz"))
    assert code == 0, err
    rows = list(csv.reader(io.StringIO(out)))
    names = [str(c) for c in clf.classes_]
    assert rows[0] == ["id", "prediction"] + [f"mean_{c}" for c in names] + [f"std_{c}" for c in names]
    mean, std = clf.predict_uncertainty(X, mc_samples=4)
    k = len(names)
    table = np.array([[float(v) for v in r[2:]] for r in rows[1:]])
    assert np.allclose(table[:, :k], mean, rtol=1e-5, atol=1e-6) and np.allclose(table[:, k:], std, atol=1e-6)
    assert [r[1] for r in rows[1:]] == [str(c) for c in clf.classes_[mean.argmax(axis=1)]]
    code, _, err = run_cli("predict", "--model", str(path), "--mc-samples", "0", str(tmp_path / "in.npz"))
    assert code == 2 and "--mc-samples" in err
    np.savez(tmp_path / "test.npz", X=X, y=y)
    code, out, err = run_cli("mc-report", "--model", str(path), "--test-data", str(tmp_path / "test.npz"),
                             "--mc-samples", "5")
    assert code == 0, err
    report = mc_report(clf, X, y, mc_samples=5)
    assert out.strip() == format_report(report)


# ------------------------------------------------------------------ the verdict's rule is one table
def _verdict_report(changes):
    """A report whose MC metrics change by ``changes`` (relative, per verdict metric) from the plain ones."""
    from minicnn.uncertainty import VERDICT_METRICS

    plain = dict(log_loss=0.2, brier=0.1, ece=0.02, accuracy=0.9, auroc_confidence=0.9)
    mc = dict(plain, auroc_std=0.8)
    for (key, _), change in zip(VERDICT_METRICS, changes):
        mc[key] = plain[key] * (1 + change)
    return {"deterministic": plain, "mc": mc, "n_samples": 100, "mc_samples": 30}


@pytest.mark.parametrize("metric", [0, 1])
@pytest.mark.parametrize("direction", [-1, 1])
def test_every_verdict_metric_decides_and_is_named(metric, direction):
    """Each metric of VERDICT_METRICS alone beyond VERDICT_TOLERANCE turns the verdict; each is named."""
    from minicnn.uncertainty import VERDICT_METRICS, VERDICT_TOLERANCE, verdict

    changes = [0.0] * len(VERDICT_METRICS)
    changes[metric] = direction * 2 * VERDICT_TOLERANCE
    text = verdict(_verdict_report(changes))
    assert f"made the probabilities {'better' if direction < 0 else 'worse'} (" in text, text
    assert all(f"{name} " in text for _, name in VERDICT_METRICS), text
    changes[metric] = direction * VERDICT_TOLERANCE / 2   # within the tolerance: no change
    assert "no better or worse" in verdict(_verdict_report(changes))


def test_metrics_that_disagree_give_a_mixed_verdict_that_does_not_advise_mc():
    from minicnn.uncertainty import VERDICT_METRICS, VERDICT_TOLERANCE, verdict

    changes = [-2 * VERDICT_TOLERANCE] + [2 * VERDICT_TOLERANCE] * (len(VERDICT_METRICS) - 1)
    text = verdict(_verdict_report(changes))
    assert "made the probabilities mixed (log loss better, Brier score worse)" in text, text
    assert "predict with --mc-samples" not in text


def test_the_rule_in_the_help_follows_the_constants(monkeypatch):
    import minicnn.uncertainty as uncertainty
    from minicnn.cli import build_parser, commands_parser

    monkeypatch.setattr(uncertainty, "VERDICT_TOLERANCE", 0.05)
    text = " ".join(commands_parser(build_parser(), "mc-report").format_help().split())
    assert "by more than 5% (relative)" in text and " ".join(uncertainty.verdict_rule().split()) in text
    # and the verdict follows the changed tolerance: a 3% rise is now no change
    assert "no better or worse" in uncertainty.verdict(_verdict_report([0.03, 0.0]))
