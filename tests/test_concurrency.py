"""Concurrency: predictions from 8 Python threads at once equal a sequential run (one or several estimators)."""

import threading

import numpy as np
import pytest

from minicnn import CNNClassifier, CNNRegressor, _estimator_base
from minicnn.datasets import load_digits_images

from helpers import importable_backends

N_THREADS = 8



def backends():
    return importable_backends(("numpy", "numba", "cython", "auto"))


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits_images()
    return X[:300], y[:300]


def run_at_once(work):
    """Run ``work(i)`` in N_THREADS threads released together; re-raise the first error."""
    results, errors, barrier = [None] * N_THREADS, [], threading.Barrier(N_THREADS)

    def target(i):
        try:
            barrier.wait()
            results[i] = work(i)
        except BaseException as exc:   # noqa: BLE001 - reported to the main thread
            errors.append(exc)

    threads = [threading.Thread(target=target, args=(i,)) for i in range(N_THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


@pytest.mark.parametrize("backend", backends())
def test_one_estimator_from_eight_threads(digits, backend, monkeypatch):
    X, y = digits
    est = CNNClassifier(layers=("conv8", "maxpool", "dense16"), dropout="last:1", max_iter=1, backend=backend,
                        random_state=0).fit(X, y)
    monkeypatch.setattr(_estimator_base, "PREDICT_BATCH", 64)   # many batches: the threads interleave
    expected = est.predict_proba(X), est.predict(X), est.predict_proba(X, mc_samples=2)
    for got in run_at_once(lambda i: (est.predict_proba(X), est.predict(X), est.predict_proba(X, mc_samples=2))):
        for g, e in zip(got, expected):
            np.testing.assert_array_equal(g, e)


def test_eight_estimators_on_every_backend_at_once(digits):
    """Kernels of every backend run concurrently from 8 threads (Numba's threading layer must not abort)."""
    X, y = digits
    names = backends()
    estimators = []
    for i in range(N_THREADS):
        cls = CNNClassifier if i % 2 == 0 else CNNRegressor
        target = y if cls is CNNClassifier else y.astype(float)
        estimators.append(cls(layers=("conv4", "maxpool", "dense8"), padding="same", dropout="last:1", max_iter=1,
                              backend=names[i % len(names)], n_threads=1 + i % 2, random_state=i).fit(X, target))
    expected = [est.predict(X) for est in estimators]

    def work(i):
        return [estimators[i].predict(X) for _ in range(3)]

    for i, outputs in enumerate(run_at_once(work)):
        for out in outputs:
            np.testing.assert_array_equal(out, expected[i])


def test_fits_in_threads_equal_sequential_fits(digits):
    """Several fits at once (each thread its own estimator) give the same models as sequential fits."""
    X, y = digits
    names = [b for b in backends() if b != "numpy"] or ["numpy"]

    def make(i):
        return CNNClassifier(layers=("conv4", "maxpool", "dense8"), max_iter=1, backend=names[i % len(names)],
                             n_threads=1 + i % 2, random_state=i)

    sequential = [make(i).fit(X, y).predict_proba(X) for i in range(4)]
    parallel = run_at_once(lambda i: make(i % 4).fit(X, y).predict_proba(X))
    for i, proba in enumerate(parallel):
        np.testing.assert_array_equal(proba, sequential[i % 4])
