"""scikit-learn's estimator checks on both estimators (tiny networks, few epochs)."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from minicnn import CNNClassifier, CNNRegressor

# Tiny networks that fit any input the checks use: 2-D X whose width is not a
# perfect square is read as a 1 x n_features strip, so padding="same" keeps
# the 3x3 conv and the 2x2 pool valid on 1-pixel-high inputs.
TINY = dict(layers=("conv4", "maxpool", "dense8"), padding="same", max_iter=30, batch_size=32,
            learning_rate=1e-2, backend="numpy", random_state=0)


def expected_failed_checks(estimator):
    """Checks we expect to fail, with the reason (none at the moment)."""
    return {}


@parametrize_with_checks([CNNClassifier(**TINY), CNNRegressor(**TINY)],
                         expected_failed_checks=expected_failed_checks)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
