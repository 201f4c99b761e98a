"""Is Monte-Carlo dropout worth it here? Deterministic vs MC predictions of a classifier, measured on held-out data.

:func:`mc_report` compares the plain (deterministic) probabilities with the
mean of ``mc_samples`` Monte-Carlo dropout passes (Gal & Ghahramani 2016) on
the same held-out samples, with scikit-learn's metrics: log loss, Brier score,
expected calibration error, accuracy, and how well the uncertainty ranks the
wrong predictions above the right ones (AUROC: 1 separates perfectly, 0.5 is
chance). MC dropout does not always help: averaging dropped-out passes of a
network trained with heavy dropout can make its probabilities *less* sharp
and raise the log loss. When the goal is calibrated probabilities, calibrate
the fitted model instead: ``CalibratedClassifierCV(FrozenEstimator(clf),
method="temperature")`` (scikit-learn >= 1.8) fits one temperature on
held-out data.
"""

import math

import numpy as np

#: Equal-width confidence bins of the expected calibration error.
ECE_BINS = 15


def expected_calibration_error(y_true, proba, n_bins=ECE_BINS):
    """Top-label expected calibration error (Guo et al. 2017): ``sum_b |B|/n * |accuracy(B) - confidence(B)|``.

    Parameters
    ----------
    y_true : ndarray of shape (n,)
        Class indices (columns of ``proba``).
    proba : ndarray of shape (n, n_classes)
    n_bins : int, default=15
        Equal-width bins of the confidence (the top probability) over [0, 1].

    Returns
    -------
    float

    Examples
    --------
    >>> import numpy as np
    >>> proba = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.6, 0.4]])
    >>> round(expected_calibration_error(np.array([0, 1, 0, 0]), proba), 6)   # |0.5-0.9|/2 + |1-0.6|/2
    0.4
    """
    confidence = proba.max(axis=1)
    correct = proba.argmax(axis=1) == np.asarray(y_true)
    bins = np.minimum((confidence * n_bins).astype(np.int64), n_bins - 1)
    total = 0.0
    for b in np.unique(bins):
        members = bins == b
        total += members.mean() * abs(correct[members].mean() - confidence[members].mean())
    return float(total)


def _auroc(wrong, score):
    """AUROC of ``score`` ranking the wrong predictions first; NaN when all are right or all wrong."""
    from sklearn.metrics import roc_auc_score

    if wrong.all() or not wrong.any():
        return math.nan
    return float(roc_auc_score(wrong, score))


def _metrics(y_index, proba, n_classes):
    from sklearn.metrics import accuracy_score, brier_score_loss, log_loss

    labels = np.arange(n_classes)
    return {"log_loss": float(log_loss(y_index, proba, labels=labels)),
            "brier": float(brier_score_loss(y_index, proba, labels=labels)),
            "ece": expected_calibration_error(y_index, proba),
            "accuracy": float(accuracy_score(y_index, proba.argmax(axis=1)))}


def mc_report(model, X, y, mc_samples=30):
    """Deterministic vs Monte-Carlo dropout predictions of a fitted classifier on held-out ``(X, y)``.

    Parameters
    ----------
    model : CNNClassifier or Predictor
        A fitted classifier with dropout.
    X : array-like
        Held-out inputs (never the training data).
    y : array-like of shape (n,)
        Their labels (from ``classes_``).
    mc_samples : int, default=30
        Monte-Carlo passes.

    Returns
    -------
    dict
        ``{"deterministic": {...}, "mc": {...}, "n_samples": n, "mc_samples": k}``;
        each row holds ``log_loss``, ``brier`` (multiclass Brier score,
        scikit-learn's ``brier_score_loss``), ``ece`` (15 bins),
        ``accuracy`` and ``auroc_confidence`` (AUROC of ``1 - max
        probability`` separating wrong from right predictions); the MC row
        also ``auroc_std`` (AUROC of the MC standard deviation of the
        predicted class's probability). AUROCs are NaN when every
        prediction is right (or every one wrong).

    Raises
    ------
    NotFittedError
        If ``model`` is an unfitted ``CNNClassifier``.
    ValueError
        If ``model`` is not a classifier, ``mc_samples`` is not a positive
        int, ``y`` is None, not 1-D, of another length than ``X`` or holds
        labels not in ``classes_``. A model without dropout gets a
        ``UserWarning`` (both rows are then the same).
    """
    from ._predict import check_mc_samples

    mc_samples = check_mc_samples(mc_samples, allow_none=False)   # before any pass: a bad value costs nothing
    if type(model).__name__ == "CNNClassifier" and "network_" not in model.__dict__:
        from sklearn.exceptions import NotFittedError

        raise NotFittedError("This CNNClassifier instance is not fitted yet: mc_report needs a fitted classifier. "
                             "Call 'fit' first.")
    is_classifier = getattr(model, "estimator", type(model).__name__) == "CNNClassifier" or (
        getattr(model, "classes_", None) is not None)
    if not is_classifier:
        raise ValueError(f"mc_report needs a fitted classifier; received a {type(model).__name__} without classes_")
    classes = model.classes_
    if y is None:
        raise ValueError("mc_report needs the held-out labels: received y=None")
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"Expected y to be 1-D (one label per sample). Received: y with shape {y.shape}")
    unknown = np.setdiff1d(y, classes)
    if unknown.size:
        raise ValueError(f"y holds labels {unknown.tolist()[:5]} that are not in the model's classes_ "
                         f"{classes.tolist()[:10]}")
    plain = model.predict_proba(X)
    if len(plain) != len(y):
        raise ValueError(f"X and y have inconsistent numbers of samples: X has {len(plain)}, y has {len(y)}")
    y_index = np.searchsorted(classes, y)
    n_classes = len(classes)
    mean, std = model.predict_uncertainty(X, mc_samples=mc_samples)
    report = {"deterministic": _metrics(y_index, plain, n_classes), "mc": _metrics(y_index, mean, n_classes),
              "n_samples": int(len(y_index)), "mc_samples": int(mc_samples)}
    report["deterministic"]["auroc_confidence"] = _auroc(plain.argmax(axis=1) != y_index, 1 - plain.max(axis=1))
    predicted = mean.argmax(axis=1)
    wrong = predicted != y_index
    report["mc"]["auroc_confidence"] = _auroc(wrong, 1 - mean.max(axis=1))
    report["mc"]["auroc_std"] = _auroc(wrong, std[np.arange(len(predicted)), predicted])
    return report


_COLUMNS = ("log_loss", "brier", "ece", "accuracy", "auroc_confidence", "auroc_std")


#: The verdict's rule, one table: the proper scoring rules of the probabilities it weighs (key, name as said),
#: and the relative change beyond which one counts as better or worse.
VERDICT_METRICS = (("log_loss", "log loss"), ("brier", "Brier score"))
VERDICT_TOLERANCE = 0.01


def _changes(report):
    """``{key: -1 | 0 | 1}`` per verdict metric: lower (better), within the tolerance, higher (worse)."""
    plain, mc = report["deterministic"], report["mc"]
    signs = {}
    for key, _ in VERDICT_METRICS:
        change = (mc[key] - plain[key]) / max(abs(plain[key]), 1e-12)
        signs[key] = -1 if change < -VERDICT_TOLERANCE else 1 if change > VERDICT_TOLERANCE else 0
    return signs


def verdict_rule():
    """The verdict's rule in words, from :data:`VERDICT_METRICS` and :data:`VERDICT_TOLERANCE`."""
    names = " and ".join(name for _, name in VERDICT_METRICS)
    return (f"the probabilities count as better when one of {names} falls by more than "
            f"{VERDICT_TOLERANCE:.0%} (relative) and none rises by more, worse in the opposite case, mixed when "
            f"one falls and another rises, and no better or worse otherwise")


def verdict(report):
    """One plain sentence saying whether Monte-Carlo dropout helped on the held-out data of ``report``.

    The probabilities are judged by every metric of :data:`VERDICT_METRICS` (:func:`verdict_rule`): better when
    one improves by more than :data:`VERDICT_TOLERANCE` (relative) and none worsens by more, worse in the
    opposite case, mixed when they disagree. The spread is compared with the plain confidence by their AUROCs of
    separating wrong from right predictions.

    Examples
    --------
    >>> row = dict(log_loss=0.14, brier=0.05, ece=0.02, accuracy=0.95, auroc_confidence=0.96)
    >>> print(verdict({"deterministic": row, "mc": dict(row, log_loss=0.18, auroc_std=0.92), "n_samples": 2000,
    ...                "mc_samples": 30}))  # doctest: +NORMALIZE_WHITESPACE
    Verdict: on these 2000 held-out samples Monte-Carlo dropout made the probabilities worse (log loss 0.1400 ->
    0.1800, Brier score 0.0500 -> 0.0500), and its spread told wrong predictions from right ones less well than
    the plain confidence (AUROC 0.920 vs 0.960): predict without --mc-samples (for calibrated probabilities see
    docs/UNCERTAINTY.md).
    """
    plain, mc = report["deterministic"], report["mc"]
    signs = _changes(report)
    if 1 in signs.values() and -1 in signs.values():
        names = {key: name for key, name in VERDICT_METRICS}
        better = "mixed"
        said = (f"mixed ({', '.join(names[k] for k, v in signs.items() if v < 0)} better, "
                f"{', '.join(names[k] for k, v in signs.items() if v > 0)} worse)")
    else:
        better = "better" if -1 in signs.values() else "worse" if 1 in signs.values() else "about as good"
        said = "no better or worse" if better == "about as good" else better
    loss = "(" + ", ".join(f"{name} {plain[key]:.4f} -> {mc[key]:.4f}" for key, name in VERDICT_METRICS) + ")"
    spread, confidence = mc.get("auroc_std"), plain.get("auroc_confidence")
    if spread is None or confidence is None or spread != spread or confidence != confidence:
        flags, spread_helps = "its spread could not be scored (every prediction right, or every one wrong)", False
    else:
        spread_helps = spread > confidence
        flags = (f"its spread told wrong predictions from right ones {'better' if spread_helps else 'less well'} "
                 f"than the plain confidence (AUROC {spread:.3f} vs {confidence:.3f})")
    if better == "better":
        advice = f"predict with --mc-samples {report['mc_samples']} on data like this"
    elif spread_helps:
        advice = "use the MC spread to flag doubtful inputs, the plain predictions for the probabilities"
    else:
        advice = "predict without --mc-samples (for calibrated probabilities see docs/UNCERTAINTY.md)"
    return (f"Verdict: on these {report['n_samples']} held-out samples Monte-Carlo dropout made the probabilities "
            f"{said} {loss}, and {flags}: {advice}.")


def format_report(report):
    """:func:`mc_report`'s result as a text table (one row per prediction kind) and its :func:`verdict`.

    Examples
    --------
    >>> row = dict(log_loss=0.1, brier=0.05, ece=0.01, accuracy=0.97, auroc_confidence=0.9)
    >>> print(format_report({"deterministic": row, "mc": dict(row, auroc_std=0.88), "n_samples": 100,
    ...                      "mc_samples": 30}))  # doctest: +NORMALIZE_WHITESPACE
    held-out samples: 100, Monte-Carlo passes: 30
    predictions     log_loss   brier     ece  accuracy  auroc_confidence  auroc_std
    deterministic     0.1000  0.0500  0.0100    0.9700            0.9000          -
    mc (30 passes)    0.1000  0.0500  0.0100    0.9700            0.9000     0.8800
    Verdict: on these 100 held-out samples Monte-Carlo dropout made the probabilities no better or worse (log
    loss 0.1000 -> 0.1000, Brier score 0.0500 -> 0.0500), and its spread told wrong predictions from right ones
    less well than the plain confidence (AUROC 0.880 vs 0.900): predict without --mc-samples (for calibrated
    probabilities see docs/UNCERTAINTY.md).
    """
    head = f"{'predictions':<14}  " + "  ".join(f"{c:>{max(len(c), 6)}}" for c in _COLUMNS)
    lines = [f"held-out samples: {report['n_samples']}, Monte-Carlo passes: {report['mc_samples']}", head]
    for key, name in (("deterministic", "deterministic"), ("mc", f"mc ({report['mc_samples']} passes)")):
        row = report[key]
        cells = [(f"{row[c]:.4f}" if c in row else "-").rjust(max(len(c), 6)) for c in _COLUMNS]
        lines.append(f"{name:<14}  " + "  ".join(cells))
    return "\n".join(lines + [verdict(report)])
