"""The measurements behind CNNClassifier's defaults and the README's example options, on digits.

Each comparison trains ``CNNClassifier()``'s defaults with one change, on the same 75/25 stratified splits
(``random_state`` 0..4 for split and model), and prints one markdown row per configuration: mean and worst test
accuracy and the median fit time (times are only comparable within one run on one machine). Re-run with
``python benchmarks/bench_defaults.py [comparison ...]`` (all of them: about 5 minutes on a quiet 2-core machine);
benchmarks/RESULTS.md ("Defaults and example options on digits") holds the latest output.
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
}
SEEDS = (0, 1, 2, 3, 4)


def run(options, seeds=SEEDS):
    """Test accuracies and fit times of the defaults plus ``options`` over ``seeds``."""
    X, y = load_digits_images()
    scores, times = [], []
    for seed in seeds:
        Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, stratify=y, random_state=seed)
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est = CNNClassifier(random_state=seed, **options).fit(Xtr, ytr)
        times.append(time.perf_counter() - start)
        scores.append(est.score(Xte, yte))
    return scores, times


def main(names):
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{time.strftime('%Y-%m-%d')}, {platform.machine()}, {os.cpu_count()} CPUs, load average {load:.1f}, "
          f"Python {platform.python_version()}; digits 75/25 stratified, random_state {SEEDS[0]}..{SEEDS[-1]}")
    for name in names:
        print(f"\n{name}\n\n| configuration | mean test accuracy | worst | median fit (s) |\n|---|---|---|---|")
        for config, options in COMPARISONS[name].items():
            scores, times = run(options)
            print(f"| {config} | {np.mean(scores):.4f} | {min(scores):.4f} | {np.median(times):.1f} |", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:] or list(COMPARISONS))
