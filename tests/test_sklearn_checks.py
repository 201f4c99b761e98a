"""scikit-learn's estimator checks on both estimators: the default constructors, and a tiny fast configuration."""

import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from minicnn import CNNClassifier, CNNRegressor

# scikit-learn's checks feed small random and integer arrays of odd widths: the input warnings and the
# unstable-training warning on such data are expected (each is tested where it is provoked on purpose).
pytestmark = [pytest.mark.filterwarnings(f"ignore:{message}") for message in (
    "X holds integer values", "X has [0-9]+ features per sample, not a perfect square",
    "CNN[A-Za-z]+. training was unstable")]

# A tiny network that fits any input the checks use (a fast second configuration, e.g. for the
# parameters the defaults do not exercise: numpy backend, a higher learning rate).
TINY = dict(layers=("conv4", "maxpool", "dense8"), max_iter=30, batch_size=32, learning_rate=1e-2,
            backend="numpy", random_state=0)


def expected_failed_checks(estimator):
    """Checks we expect to fail, with the reason (the same as scikit-learn's for MLPClassifier and SGD)."""
    return {
        "check_sample_weight_equivalence_on_dense_data":
            "mini-batch training: an integer sample weight is not equivalent to repeating the sample (the batches "
            "differ); weights scale each sample's loss term, see tests/test_weights.py",
    }


@parametrize_with_checks([CNNClassifier(), CNNRegressor(), CNNClassifier(**TINY), CNNRegressor(**TINY)],
                         expected_failed_checks=expected_failed_checks)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
