"""Concurrency: predictions from 8 Python threads at once equal a sequential run (one or several estimators)."""

import functools

import numpy as np
import pytest

from minicnn import CNNClassifier, CNNRegressor, _estimator_base

from helpers import importable_backends, run_at_once

N_THREADS = 8
BACKENDS = importable_backends()
N_DIGITS = 300   # samples in the digits fixture (conftest.py)


@pytest.mark.parametrize("backend", BACKENDS)
def test_one_estimator_from_eight_threads(digits, backend, monkeypatch):
    X, y = digits
    est = CNNClassifier(layers=("conv8", "maxpool", "dense16"), dropout="last:1", max_iter=1, backend=backend,
                        random_state=0).fit(X, y)
    monkeypatch.setattr(_estimator_base, "PREDICT_BATCH", 64)   # many batches: the threads interleave
    expected = est.predict_proba(X), est.predict(X), est.predict_proba(X, mc_samples=2)

    def predict():
        return est.predict_proba(X), est.predict(X), est.predict_proba(X, mc_samples=2)

    for got in run_at_once([predict] * N_THREADS):
        for g, e in zip(got, expected):
            np.testing.assert_array_equal(g, e)


def test_eight_estimators_on_every_backend_at_once(digits):
    """Kernels of every backend run concurrently from 8 threads (Numba's threading layer must not abort)."""
    X, y = digits
    names = BACKENDS
    estimators = []
    for i in range(N_THREADS):
        cls = CNNClassifier if i % 2 == 0 else CNNRegressor
        target = y if cls is CNNClassifier else y.astype(float)
        estimators.append(cls(layers=("conv4", "maxpool", "dense8"), padding="same", dropout="last:1", max_iter=1,
                              backend=names[i % len(names)], n_threads=1 + i % 2, random_state=i).fit(X, target))
    expected = [est.predict(X) for est in estimators]

    def work(i):
        return [estimators[i].predict(X) for _ in range(3)]

    for i, outputs in enumerate(run_at_once([functools.partial(work, i) for i in range(N_THREADS)])):
        for out in outputs:
            np.testing.assert_array_equal(out, expected[i])


def test_fits_in_threads_equal_sequential_fits(digits):
    """Several fits at once (each thread its own estimator) give the same models as sequential fits."""
    X, y = digits
    names = [b for b in BACKENDS if b != "numpy"] or ["numpy"]

    def make(i):
        return CNNClassifier(layers=("conv4", "maxpool", "dense8"), max_iter=1, backend=names[i % len(names)],
                             n_threads=1 + i % 2, random_state=i)

    sequential = [make(i).fit(X, y).predict_proba(X) for i in range(4)]
    parallel = run_at_once([lambda i=i: make(i % 4).fit(X, y).predict_proba(X) for i in range(N_THREADS)])
    for i, proba in enumerate(parallel):
        np.testing.assert_array_equal(proba, sequential[i % 4])
