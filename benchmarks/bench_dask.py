"""Same grid search, three ways to use 2 cores: Dask workers, joblib processes, or kernel threads.

Run ``python benchmarks/bench_dask.py`` (needs ``pip install ".[distributed]"``).
A GridSearchCV over dropout placement x rate (digits, cv=3) runs:

* ``dask 2w x 1t``: ``LocalCluster(n_workers=2, threads_per_worker=1)`` and
  ``joblib.parallel_backend("dask")``; each fit uses ``n_threads=None``, which
  resolves to 1 thread in a nanny worker (``OMP_NUM_THREADS=1``);
* ``loky 2p x 1t``: ``GridSearchCV(n_jobs=2)`` (joblib's process pool,
  which caps OMP/NUMBA/BLAS threads at ``cpus // n_jobs`` in its workers);
* ``seq 1p x 2t``: ``GridSearchCV(n_jobs=None)``, each fit with ``n_threads=2``
  (parallelism inside the kernels).

Correctness first: all three must give the same ``cv_results_`` test scores
(training is deterministic for any thread count). Then each is timed
``--repeats`` times after one warm-up (imports, Numba cache loads in fresh
workers; cluster and pool start-up are excluded) and the median is printed.
The machine is shared: numbers are medians and still vary between runs.
"""

import argparse
import os
import statistics
import time

import numpy as np


def _search(n_threads, max_iter, n_jobs=None):
    from sklearn.model_selection import GridSearchCV

    from minicnn import CNNClassifier

    estimator = CNNClassifier(layers=("conv16", "maxpool", "dense32"), max_iter=max_iter, batch_size=64,
                              learning_rate=0.01, n_threads=n_threads, random_state=0)
    grid = {"dropout": ["after_last_pool", "dense"], "dropout_rate": [0.1, 0.3, 0.5]}
    return GridSearchCV(estimator, grid, cv=3, n_jobs=n_jobs)


def _timed(run, repeats):
    result = run()   # warm-up (also the result checked for correctness)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return result, times


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-iter", type=int, default=4)
    parser.add_argument("--n-samples", type=int, default=1797)
    args = parser.parse_args()

    import joblib
    from distributed import Client, LocalCluster

    from minicnn.datasets import load_digits_images

    X, y = load_digits_images()
    X, y = X[:args.n_samples], y[:args.n_samples]
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count()
    n_fits = 6 * 3
    print(f"grid search: {n_fits} fits (2 placements x 3 rates, cv=3), {len(X)} digits, "
          f"max_iter={args.max_iter}; {cpus} CPUs; medians of {args.repeats} after a warm-up")

    results = {}
    start = time.perf_counter()
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster, Client(cluster):
        print(f"  (cluster start-up {time.perf_counter() - start:.1f} s, not timed)")

        def on_dask():
            with joblib.parallel_backend("dask"):
                return _search(None, args.max_iter).fit(X, y)

        results["dask 2w x 1t"] = _timed(on_dask, args.repeats)
    results["loky 2p x 1t"] = _timed(lambda: _search(None, args.max_iter, n_jobs=2).fit(X, y), args.repeats)
    results["seq 1p x 2t"] = _timed(lambda: _search(2, args.max_iter).fit(X, y), args.repeats)

    reference = results["seq 1p x 2t"][0]
    for name, (search, _) in results.items():
        for key in ("mean_test_score", "split0_test_score", "split1_test_score", "split2_test_score"):
            if not np.array_equal(search.cv_results_[key], reference.cv_results_[key]):
                raise SystemExit(f"{name}: {key} differs from the sequential run")
        assert search.best_params_ == reference.best_params_
    print(f"  correctness: identical cv_results_ test scores, best_params_={reference.best_params_}")

    base = statistics.median(results["seq 1p x 2t"][1])
    for name, (_, times) in results.items():
        median = statistics.median(times)
        print(f"  {name:13s} median {median:6.2f} s  ({1e3 * median / n_fits:5.0f} ms/fit, "
              f"{base / median:4.2f}x vs seq)  runs: {', '.join(f'{t:.2f}' for t in times)}")


if __name__ == "__main__":
    main()
