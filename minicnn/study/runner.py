"""Training the study's runs: one fit per (configuration, size, seed), in parallel with joblib.

Every worker loads (and caches) the data itself, so tasks carry only a few
small values; the held-out test set and the training pool are fixed
(``random_state=0``), the training subset of a run depends only on its seed
and size, so runs with the same seed are *paired* across configurations:
same training images, same weight initialization.
"""

import contextlib
import functools
import sys
import time
import warnings

import numpy as np

CSV_FIELDS = ("group", "model", "layers", "batch_norm", "placement", "kind", "rate", "size", "n_train",
              "seed", "epochs", "test_accuracy", "train_time_s", "same_as")


@functools.lru_cache(maxsize=2)
def load_split(data, test_size):
    """Training pool and fixed held-out test set of ``data`` (cached per process).

    Parameters
    ----------
    data : {"digits", "mnist"}
    test_size : float or None
        Held-out fraction for digits (stratified, ``random_state=0``);
        MNIST uses its standard 10000-image test set.

    Returns
    -------
    X_pool, y_pool, X_test, y_test : ndarray
    """
    from .. import datasets

    if data == "mnist":
        return datasets.load_mnist()
    from sklearn.model_selection import train_test_split

    X, y = datasets.load_digits_images()
    X_pool, X_test, y_pool, y_test = train_test_split(X, y, test_size=test_size, stratify=y, random_state=0)
    return X_pool, y_pool, X_test, y_test


def training_subset(y_pool, size, seed):
    """Indices of the training subset of a run: stratified, drawn with ``seed`` (all of the pool for "full")."""
    if size == "full" or size >= len(y_pool):
        return np.arange(len(y_pool))
    from sklearn.model_selection import train_test_split

    index, _ = train_test_split(np.arange(len(y_pool)), train_size=size, stratify=y_pool, random_state=seed)
    return np.sort(index)


def run_one(plan_data, test_size, config, size, seed, epochs, profile, n_threads):
    """Train one configuration on one subset and score it on the held-out test set.

    Returns
    -------
    dict
        A row of ``runs.csv`` (without ``same_as``).
    """
    from ..estimator import CNNClassifier

    X_pool, y_pool, X_test, y_test = load_split(plan_data, test_size)
    index = training_subset(y_pool, size, seed)
    clf = CNNClassifier(**config.estimator_params(), padding=profile.padding, batch_size=profile.batch_size,
                        learning_rate=profile.learning_rate, max_iter=epochs, n_iter_no_change=epochs,
                        n_threads=n_threads, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)   # the variance-shift lint: studied on purpose
        start = time.perf_counter()
        clf.fit(X_pool[index], y_pool[index])
        elapsed = time.perf_counter() - start
    accuracy = float(clf.score(X_test, y_test))
    return dict(group=config.group, model=config.model, layers=",".join(config.layers),
                batch_norm=config.batch_norm, placement=config.placement, kind=config.kind, rate=config.rate,
                size=str(size), n_train=len(index), seed=seed, epochs=clf.n_iter_, test_accuracy=accuracy,
                train_time_s=round(elapsed, 4))


def _tasks(plan, n_threads):
    from joblib import delayed

    X_pool = load_split(plan.data, plan.profile.test_size)[0]
    for size in plan.sizes:
        n_train = len(X_pool) if size == "full" else min(size, len(X_pool))
        for config in plan.unique_configs:
            for seed in plan.seeds:
                yield delayed(run_one)(plan.data, plan.profile.test_size, config, size, seed,
                                       plan.epochs(n_train), plan.profile, n_threads)


@contextlib.contextmanager
def _backend(scheduler):
    """joblib's default backend, or the Dask backend connected to ``scheduler``."""
    if scheduler is None:
        yield
        return
    try:
        from distributed import Client
    except ImportError as exc:
        raise ImportError(f"--scheduler needs Dask's distributed scheduler, which is not installed "
                          f"({exc}); install it with: pip install 'dask[distributed]' dask-ml "
                          f"(the distributed extra of minicnn-engine)") from None
    import joblib

    with Client(scheduler):
        with joblib.parallel_backend("dask"):
            yield


def run_plan(plan, n_jobs=-1, scheduler=None, verbose=1, stream=None):
    """Train every run of ``plan`` and return the rows of ``runs.csv``.

    Parameters
    ----------
    plan : StudyPlan
    n_jobs : int, default=-1
        joblib workers (-1: one per CPU). Each estimator gets
        ``n_threads=1`` when more than one worker runs (no oversubscription);
        with one worker, the profile's ``n_threads``.
    scheduler : str or None, default=None
        Address of a Dask scheduler (``"tcp://host:8786"``): the runs go to
        that cluster through ``joblib.parallel_backend("dask")``.
    verbose : int, default=1
        Print progress to ``stream`` every 10% of the runs.
    stream : file, default=sys.stderr

    Returns
    -------
    list of dict
        One row per (configuration, size, seed), shared runs copied under
        each name with ``same_as`` set.
    """
    from joblib import Parallel, cpu_count

    stream = sys.stderr if stream is None else stream
    effective = cpu_count() if n_jobs == -1 else n_jobs
    n_threads = 1 if (scheduler is not None or effective > 1) else plan.profile.n_threads
    total, done, start = plan.n_runs, 0, time.perf_counter()
    rows = []
    with _backend(scheduler):
        parallel = Parallel(n_jobs=n_jobs, return_as="generator_unordered")
        for row in parallel(_tasks(plan, n_threads)):
            rows.append(row)
            done += 1
            if verbose and (done == total or done % max(1, total // 10) == 0):
                print(f"study: {done}/{total} runs, {time.perf_counter() - start:.0f} s", file=stream, flush=True)
    return _expand_shared(plan, rows)


def _expand_shared(plan, rows):
    """Copy the rows of each trained configuration to every configuration sharing its network."""
    by_label = {}
    for row in rows:
        by_label.setdefault(_label(row), []).append(row)
    out = []
    for config in plan.configs:
        source = plan.shared[config.label]
        for row in by_label.get(source, ()):
            copy = dict(row, group=config.group, model=config.model, placement=config.placement,
                        kind=config.kind, rate=config.rate, same_as="" if source == config.label else source)
            out.append(copy)
    out.sort(key=lambda r: (r["group"], r["placement"], r["kind"], r["rate"], _size_key(r["size"]), r["seed"]))
    return out


def _label(row):
    if row["placement"] == "none":
        return f"{row['group']}/none"
    return f"{row['group']}/{row['placement']}/{row['kind']}/{float(row['rate']):g}"


def _size_key(size):
    return (1, 0) if size == "full" else (0, int(size))
