"""A message that states a rule's number takes it from the rule: the study's samples per class, and the
regressor's early-stopping split (mc-report's verdict: tests/test_mc_report.py)."""

import re
import warnings

import numpy as np
import pytest
from sklearn.model_selection import train_test_split

from minicnn.holdout import R2_MIN_SAMPLES, check_holdout, check_score_holdout, round_count


@pytest.mark.parametrize("n_classes", [2, 3, 10])
@pytest.mark.parametrize("test_size", [0.2, 0.3])
def test_the_studys_per_class_need_is_what_its_splits_take(n_classes, test_size):
    """min_per_class samples per class survive the test hold-out and the estimator's stratified validation
    split of the pool; one fewer is refused, and the refusal says the number."""
    from minicnn.tools.study.data import check_class_counts, min_per_class, pool_per_class
    from minicnn.tools.study.grid import VALIDATION_FRACTION

    need = min_per_class(test_size, n_classes)
    y = np.repeat(np.arange(n_classes), need)
    check_class_counts("d.npz", y, test_size)
    y_pool, _ = train_test_split(y, test_size=test_size, stratify=y, random_state=0)
    assert np.bincount(y_pool).min() >= pool_per_class(n_classes)
    check_holdout(y_pool, VALIDATION_FRACTION, parameter="f", count_of=round_count, stratify=True)
    short = np.concatenate([y[1:], []]).astype(int)   # class 0 one short
    with pytest.raises(ValueError) as info:
        check_class_counts("d.npz", short, test_size)
    said = re.search(r"needs at least (\d+) samples per class .* then (\d+) per class", str(info.value))
    assert said and int(said[1]) == need and int(said[2]) == pool_per_class(n_classes), str(info.value)


def test_the_pool_need_is_the_estimators_rule_not_a_copy(monkeypatch):
    import minicnn.tools.study.grid as grid
    from minicnn.holdout import _enough_per_class
    from minicnn.tools.study.data import pool_per_class

    for fraction in (0.1, 0.2, 0.3):
        monkeypatch.setattr(grid, "VALIDATION_FRACTION", fraction)
        assert pool_per_class(2) == _enough_per_class(2, fraction, round_count)


@pytest.mark.parametrize("fraction", [0.05, 0.1, 0.2, 0.5])
def test_the_regressors_early_stopping_advice_is_enough(fraction):
    """The estimator says check_score_holdout's words; the samples and fractions it suggests pass the rule, one
    sample fewer than suggested fails it."""
    for n in range(2, 60):
        try:
            check_score_holdout(n, fraction, parameter="validation_fraction")
            continue
        except ValueError as exc:
            message = str(exc)
        assert f"needs at least {R2_MIN_SAMPLES} held out" in message
        enough = int(re.search(r"at least (\d+) samples", message).group(1))
        check_score_holdout(enough, fraction, parameter="validation_fraction")
        with pytest.raises(ValueError):
            check_score_holdout(enough - 1, fraction, parameter="validation_fraction")
        suggested = re.search(r"validation_fraction=([\d.]+)(?: to ([\d.]+))?", message.split("Pass")[1])
        for value in filter(None, suggested.groups() if suggested else ()):
            check_score_holdout(n, float(value), parameter="validation_fraction")


@pytest.mark.parametrize("n", [3, 6, 12])
def test_the_regressor_refuses_with_the_rules_message(n):
    from minicnn import CNNRegressor

    X = np.random.default_rng(0).random((n, 8, 8, 1), dtype=np.float32)
    with pytest.raises(ValueError) as info, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        CNNRegressor(layers=("conv2", "maxpool"), early_stopping=True, max_iter=1, backend="numpy").fit(X, np.arange(n) * 1.0)
    with pytest.raises(ValueError) as expected:
        check_score_holdout(n, 0.1, parameter="validation_fraction", other=", or set early_stopping=False",
                            context="early_stopping=True with ")
    assert str(info.value) == str(expected.value)
