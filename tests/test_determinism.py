"""Determinism: the same random_state gives bit-identical weights across runs and thread counts, per backend."""

import numpy as np
import pytest

from minicnn import CNNClassifier, CNNRegressor
from minicnn.datasets import load_digits_images

from helpers import importable_backends, weights_and_state



BACKENDS = importable_backends(("numpy", "numba", "cython"))


N_DIGITS = 200   # samples in the digits fixture (conftest.py)


# Every kernel family: conv (3x3 and 5x5, same padding), max and avg pooling, GAP, dense, BatchNorm,
# element and spatial dropout.
CONFIGS = {
    "conv-pool-dense": dict(layers=("conv6", "conv4x5", "maxpool", "dense12"), padding="same",
                            dropout="after_each_layer", dropout_rate=0.2),
    "batchnorm-avgpool-gap": dict(layers=("conv6", "avgpool", "conv4", "gap"), batch_norm=True, dropout="last:1"),
}


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_bit_identical_across_runs_and_thread_counts(digits, backend, config):
    X, y = digits
    params = dict(CONFIGS[config], max_iter=2, batch_size=32, backend=backend, random_state=7)
    runs = [CNNClassifier(**params, n_threads=n).fit(X, y) for n in (1, 2, 2, 1)]
    reference = weights_and_state(runs[0])
    for run in runs[1:]:
        for i, (a, b) in enumerate(zip(weights_and_state(run), reference)):
            assert np.array_equal(a, b), f"array {i} differs (max {np.abs(a - b).max()}) on backend {backend}"
    proba = runs[0].predict_proba(X)
    for run in runs[1:]:
        np.testing.assert_array_equal(run.predict_proba(X), proba)
        np.testing.assert_array_equal(run.predict_proba(X, mc_samples=2), runs[0].predict_proba(X, mc_samples=2))
    other = CNNClassifier(**{**params, "random_state": 8}).fit(X, y)
    assert not all(np.array_equal(a, b) for a, b in zip(weights_and_state(other), reference))


@pytest.mark.parametrize("backend", BACKENDS)
def test_regressor_and_partial_fit_are_deterministic(digits, backend):
    X, y = digits
    params = dict(layers=("conv4", "maxpool", "dense8"), dropout="last:2", max_iter=1, backend=backend,
                  random_state=3)
    a = CNNRegressor(**params, n_threads=1)
    b = CNNRegressor(**params, n_threads=2)
    for est in (a, b):
        est.partial_fit(X, y.astype(float))
        est.partial_fit(X[::-1], y[::-1].astype(float))
    for p, q in zip(weights_and_state(a), weights_and_state(b)):
        np.testing.assert_array_equal(p, q)


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_bit_identical_on_the_full_digits_with_the_default_network(backend):
    X, y = load_digits_images()
    params = dict(max_iter=3, backend=backend, random_state=0)
    a = CNNClassifier(**params, n_threads=1).fit(X, y)
    b = CNNClassifier(**params, n_threads=2).fit(X, y)
    for p, q in zip(weights_and_state(a), weights_and_state(b)):
        np.testing.assert_array_equal(p, q)
