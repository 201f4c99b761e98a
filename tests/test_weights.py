"""sample_weight and class_weight: normalization, identities, errors, metadata routing."""

import numpy as np
import pytest
import sklearn
from sklearn.model_selection import GridSearchCV
from sklearn.utils._param_validation import InvalidParameterError
from sklearn.utils.class_weight import compute_sample_weight

from minicnn import CNNClassifier, CNNRegressor
from minicnn.datasets import load_digits_images

SMALL = dict(layers=("conv4", "maxpool", "dense16"), padding="same", max_iter=2, batch_size=32, backend="cython",
             random_state=0)


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits_images()
    return X[:150], y[:150]


def params(est):
    return [p.copy() for p, _ in est.network_.params_and_grads()]


def assert_same_model(a, b):
    for p, q in zip(params(a), params(b)):
        np.testing.assert_array_equal(p, q)
    assert a.loss_curve_ == b.loss_curve_


def targets(cls, y):
    return y if cls is CNNClassifier else np.stack([y / 9.0, (y % 2).astype(float)], axis=1)


@pytest.mark.parametrize("cls", [CNNClassifier, CNNRegressor])
@pytest.mark.parametrize("method", ["fit", "partial_fit"])
def test_weight_identities(cls, method, digits):
    X, y = digits
    t = targets(cls, y)
    extra = {"classes": np.arange(10)} if cls is CNNClassifier and method == "partial_fit" else {}

    def fitted(sample_weight, target=t):
        return getattr(cls(**SMALL), method)(X, target, sample_weight=sample_weight, **extra)

    plain = fitted(None)
    assert_same_model(fitted(np.ones(len(X))), plain)                 # all ones: bit-identical to no weights
    w = np.random.default_rng(0).random(len(X))
    assert_same_model(fitted(4 * w), fitted(w))                       # weighted average: the scale cancels
    w[::3] = 0                                                        # zero weight: the sample has no influence
    other = t.copy()
    other[::3] = t[1::3][:len(other[::3])] if cls is CNNRegressor else (t[::3] + 1) % 10
    assert_same_model(fitted(w, other), fitted(w))
    assert not np.array_equal(params(fitted(w))[0], params(plain)[0])


def test_weighted_loss_is_the_weighted_average(digits):
    X, y = digits
    w = np.linspace(0, 3, len(X))
    one_batch = {**SMALL, "batch_size": len(X), "max_iter": 1, "dropout": "none"}
    est = CNNClassifier(**one_batch).fit(X, y, sample_weight=w)
    # the only batch's loss is sum(w * l) / sum(w), l the per-sample cross-entropy of the initial weights
    init = CNNClassifier(**{**one_batch, "learning_rate": 1e-30}).fit(X, y)
    logp = init.predict_log_proba(X)
    expected = -(w * logp[np.arange(len(X)), y]).sum() / w.sum()
    assert est.loss_ == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("cls", [CNNClassifier, CNNRegressor])
@pytest.mark.parametrize("bad, match", [
    (-np.ones(150), r"sample_weight must hold finite values >= 0; received 150 other values, the first "
                    r"sample_weight\[0\]=-1.0"),
    (np.r_[np.ones(149), np.nan], r"received 1 other values, the first sample_weight\[149\]=nan"),
    (np.r_[np.ones(9), np.inf, np.ones(140)], r"sample_weight\[9\]=inf"),
    (np.ones(149), r"sample_weight.shape == \(149,\), expected \(150,\)"),
    (np.ones((150, 2)), "Sample weights must be 1D"),
])
def test_bad_sample_weight_is_a_clear_error(cls, digits, bad, match):
    X, y = digits
    with pytest.raises(ValueError, match=match):
        cls(**SMALL).fit(X, targets(cls, y), sample_weight=bad)
    with pytest.raises(ValueError, match=match):
        cls(**SMALL).partial_fit(X, targets(cls, y), sample_weight=bad,
                                 **({"classes": np.arange(10)} if cls is CNNClassifier else {}))


def test_class_weight_equals_the_sample_weights_it_stands_for(digits):
    X, y = digits
    labels = np.array(list("abcdefghij"))[y]
    cw = {"a": 3.0, "c": 0.5}
    w = np.where(labels == "a", 3.0, np.where(labels == "c", 0.5, 1.0))
    assert_same_model(CNNClassifier(**SMALL, class_weight=cw).fit(X, labels),
                      CNNClassifier(**SMALL).fit(X, labels, sample_weight=w))
    assert_same_model(CNNClassifier(**SMALL, class_weight="balanced").fit(X[:100], labels[:100]),
                      CNNClassifier(**SMALL).fit(X[:100], labels[:100],
                                                 sample_weight=compute_sample_weight("balanced", labels[:100])))
    s = np.random.default_rng(1).random(len(X))   # multiplicative with sample_weight
    assert_same_model(CNNClassifier(**SMALL, class_weight=cw).fit(X, labels, sample_weight=s),
                      CNNClassifier(**SMALL).fit(X, labels, sample_weight=s * w))
    est = CNNClassifier(**SMALL, class_weight=cw)   # partial_fit: dicts work, applied per call
    est.partial_fit(X, labels, classes=np.unique(labels))
    assert_same_model(est, CNNClassifier(**SMALL).partial_fit(X, labels, classes=np.unique(labels),
                                                               sample_weight=w))


@pytest.mark.parametrize("bad, error, match", [
    ({"z": 2.0}, ValueError, r"class_weight has key 'z', which is not a class"),
    ({0: 2.0}, ValueError, r"class_weight has key 0, which is not a class"),
    ({"a": -1.0}, InvalidParameterError, r"'class_weight' parameter.*Got \{'a': -1.0\}"),
    ({"a": np.nan}, InvalidParameterError, r"'class_weight' parameter"),
    ("auto", InvalidParameterError, r"'class_weight' parameter.*Got 'auto'"),
    ([1.0, 2.0], InvalidParameterError, r"'class_weight' parameter.*Got \[1.0, 2.0\]"),
])
def test_bad_class_weight_is_an_error_naming_it(digits, bad, error, match):
    X, y = digits
    labels = np.array(list("abcdefghij"))[y]
    with pytest.raises(error, match=match):
        CNNClassifier(**SMALL, class_weight=bad).fit(X, labels)


def test_class_weight_errors_of_the_regressor_and_partial_fit(digits):
    X, y = digits
    with pytest.raises(ValueError, match=r"class_weight applies to classifiers only.*class_weight='balanced'"):
        CNNRegressor(**SMALL, class_weight="balanced").fit(X, y.astype(float))
    with pytest.raises(ValueError, match=r"class_weight='balanced' is not supported by partial_fit"):
        CNNClassifier(**SMALL, class_weight="balanced").partial_fit(X, y, classes=np.arange(10))


def test_score_takes_sample_weight(digits):
    X, y = digits
    est = CNNClassifier(**SMALL).fit(X, y)
    right = est.predict(X) == y
    w = right.astype(float) + 0.5
    assert est.score(X, y, sample_weight=w) == pytest.approx((w * right).sum() / w.sum())


class Recording(CNNClassifier):
    """Records the sample weights each fit receives (through metadata routing)."""

    received = []

    def fit(self, X, y, sample_weight=None):
        Recording.received.append(None if sample_weight is None else len(sample_weight))
        return super().fit(X, y, sample_weight=sample_weight)


def test_metadata_routing_through_grid_search(digits):
    X, y = digits
    w = np.random.default_rng(0).random(len(X)) + 0.5
    with sklearn.config_context(enable_metadata_routing=True):
        est = Recording(**SMALL).set_fit_request(sample_weight=True).set_score_request(sample_weight=True)
        Recording.received = []
        search = GridSearchCV(est, {"lr_schedule": ["constant", "cosine"]}, cv=2).fit(X, y, sample_weight=w)
        assert Recording.received == [75, 75, 75, 75, len(X)]   # 2 candidates x 2 folds, then the refit
        assert search.best_estimator_.lr_schedule in ("constant", "cosine")
        unrequested = GridSearchCV(Recording(**SMALL), {"max_iter": [1]}, cv=2)
        with pytest.raises(ValueError, match="sample_weight"):
            unrequested.fit(X, y, sample_weight=w)   # routing on: an unrequested weight is an error, not dropped
