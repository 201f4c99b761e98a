"""The measurements behind CNNClassifier's defaults and the README's example options.

Each comparison trains ``CNNClassifier()``'s defaults with one change, on the same splits per seed, and prints
one markdown row per configuration: mean and worst test accuracy, the mean number of epochs the fit ran and the
median fit time (times are only comparable within one run on one machine).

Data sets: ``digits`` (75/25 stratified splits, ``random_state`` = seed for split and model) and, for the
comparisons of the training-budget defaults (``max_iter``, ``batch_size``, ``layers``), also ``fashion`` -- a
Fashion-MNIST subset (``FASHION_TRAIN`` training images drawn per seed from the 60,000, stratified, scored on
the first ``FASHION_TEST`` images of the standard test set), so that a default chosen on 8x8 digits is checked
on 28x28 images too.

Re-run with ``python benchmarks/bench_defaults.py [comparison ...] [--seeds N|A-B] [--data digits|fashion]``; benchmarks/RESULTS.md
("Defaults and example options on digits") holds the output of the first three comparisons, docs/TRAINING.md
("Why these defaults") the output of ``max_iter``, ``batch_size`` and ``layers``.
"""
import os
import platform
import sys
import time
import warnings

import numpy as np
from sklearn.model_selection import train_test_split

from minicnn import CNNClassifier
from minicnn.datasets import load_digits_images

SMALL = {"layers": ("conv16", "maxpool", "dense64")}
#: comparison -> {configuration name: options added to the defaults}
COMPARISONS = {
    "padding": {"padding='valid'": {"padding": "valid"}, "padding='same' (default)": {}},
    "learning_rate": {"learning_rate=1e-3": {"learning_rate": 1e-3}, "learning_rate=3e-3 (default)": {},
                      "conv16,maxpool,dense64, learning_rate=1e-3": {**SMALL, "learning_rate": 1e-3},
                      "conv16,maxpool,dense64, learning_rate=3e-3": SMALL},
    "options": {"defaults": {}, "augment crop1,hflip": {"augment": ("crop1", "hflip")},
                "augment shift1": {"augment": ("shift1",)}, "lr_schedule cosine": {"lr_schedule": "cosine"},
                "augment shift1, lr_schedule cosine": {"augment": ("shift1",), "lr_schedule": "cosine"}},
    "max_iter": {"max_iter=10": {"max_iter": 10}, "max_iter=20 (default)": {}, "max_iter=40": {"max_iter": 40}},
    "batch_size": {"batch_size=32": {"batch_size": 32}, "batch_size=64 (default)": {},
                   "batch_size=128": {"batch_size": 128}},
    "layers": {"conv16,maxpool,dense64": SMALL,
               "conv32,maxpool,dense128": {"layers": ("conv32", "maxpool", "dense128")},
               "conv32,conv64,maxpool,dense128 (default)": {},
               "conv32,maxpool,conv64,maxpool,dense128": {"layers": ("conv32", "maxpool", "conv64", "maxpool",
                                                                     "dense128")}},
}
#: The comparisons that also run on the Fashion-MNIST subset (the training-budget and architecture defaults).
ON_FASHION = ("max_iter", "batch_size", "layers")
SEEDS = (0, 1, 2, 3, 4)
FASHION_TRAIN, FASHION_TEST = 1000, 2000


def splits(data, seed):
    """``(X_train, X_test, y_train, y_test)`` of ``data`` ("digits" or "fashion") for ``seed``."""
    if data == "digits":
        X, y = load_digits_images()
        return train_test_split(X, y, test_size=0.25, stratify=y, random_state=seed)
    from minicnn.datasets import load_fashion_mnist

    X, y, X_test, y_test = load_fashion_mnist()
    X_train, _, y_train, _ = train_test_split(X, y, train_size=FASHION_TRAIN, stratify=y, random_state=seed)
    return X_train, X_test[:FASHION_TEST], y_train, y_test[:FASHION_TEST]


def _fit_scored(options, seed, data):
    """One fit of the defaults plus ``options``: ``(test accuracy, time)`` after each epoch, and ``n_iter_``.

    The test set is scored by a scikit-learn callback (``sklearn.callback.ScoringMonitor``) at the end of every
    epoch; its scoring time is not counted in the fit time.
    """
    from sklearn.callback import ScoringMonitor

    Xtr, Xte, ytr, yte = splits(data, seed)
    trace, scoring = [], [0.0]

    def test_accuracy(est, X, y):
        start = time.perf_counter()
        score = est.score(Xte, yte)
        scoring[0] += time.perf_counter() - start
        trace.append((score, time.perf_counter() - begin - scoring[0]))
        return {"test_accuracy": score}

    est = CNNClassifier(random_state=seed, **options).set_callbacks(ScoringMonitor(scoring=test_accuracy))
    begin = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(Xtr, ytr)
    return trace[:est.n_iter_], est.n_iter_


_CACHE = {}


def run(options, seeds=SEEDS, data="digits"):
    """Test accuracies, epochs run and fit times of the defaults plus ``options`` over ``seeds``.

    With a constant learning rate (the default schedule) a fit with ``max_iter=K`` is the first ``K`` epochs of a
    longer fit (the same batches, masks and stopping rule), so the ``max_iter`` rows read one ``max_iter=40`` fit
    per seed at epoch ``min(K, n_iter_)``; the ``max_iter=20`` point is the defaults' row of every comparison.
    """
    budget = options.get("max_iter", 20)
    base = {k: v for k, v in options.items() if k != "max_iter"}
    longest = 40 if not base and options.get("lr_schedule", "constant") == "constant" else budget
    key = (data, repr(sorted(base.items())), seeds, longest)
    if key not in _CACHE:
        _CACHE[key] = [_fit_scored(dict(base, max_iter=longest), seed, data) for seed in seeds]
    scores, epochs, times = [], [], []
    for trace, n_iter in _CACHE[key]:
        ran = min(budget, n_iter)
        scores.append(trace[ran - 1][0])
        epochs.append(ran)
        times.append(trace[ran - 1][1])
    return scores, epochs, times


def _cpu_model():
    """The CPU's model name (Linux), for the record of where the numbers were measured."""
    try:
        with open("/proc/cpuinfo") as info:
            return next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown CPU"


def main(argv):
    seeds = SEEDS
    if "--seeds" in argv:
        i = argv.index("--seeds")
        first, _, last = argv[i + 1].partition("-")   # N (seeds 0..N-1) or A-B (seeds A..B)
        seeds = tuple(range(int(first), int(last) + 1)) if last else tuple(range(int(first)))
        argv = argv[:i] + argv[i + 2:]
    datasets = ("digits", "fashion")
    if "--data" in argv:
        i = argv.index("--data")
        datasets, argv = (argv[i + 1],), argv[:i] + argv[i + 2:]
    names = argv or list(COMPARISONS)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{time.strftime('%Y-%m-%d')}, {platform.machine()}, {_cpu_model()}, {os.cpu_count()} "
          f"CPUs, load average {load:.1f}, Python {platform.python_version()}; digits 75/25 stratified, Fashion-MNIST "
          f"{FASHION_TRAIN} training images (stratified per seed) / first {FASHION_TEST} test images; "
          f"random_state {seeds[0]}..{seeds[-1]}")
    for name in names:
        for data in [d for d in datasets if d == "digits" or name in ON_FASHION]:
            print(f"\n{name} ({data})\n\n| configuration | mean test accuracy | worst | mean epochs | median fit (s) |"
                  f"\n|---|---|---|---|---|")
            for config, options in COMPARISONS[name].items():
                scores, epochs, times = run(options, seeds, data)
                print(f"| {config} | {np.mean(scores):.4f} | {min(scores):.4f} | {np.mean(epochs):.1f} | "
                      f"{np.median(times):.1f} |", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
