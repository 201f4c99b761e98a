"""Test accuracy on digits of the options the README's example commands show, side by side.

Every configuration trains ``CNNClassifier()``'s defaults plus the options named, on the same 75/25 stratified
splits (random_state 0..2 for split and model), and prints one markdown row per configuration: mean and worst
test accuracy. Re-run: ``python benchmarks/bench_options_digits.py`` (about 2 minutes on 2 cores).
"""
import platform
import time
import warnings

import numpy as np
from sklearn.model_selection import train_test_split

from minicnn import CNNClassifier
from minicnn.datasets import load_digits_images

CONFIGS = {
    "defaults": {},
    "augment crop1,hflip": {"augment": ("crop1", "hflip")},
    "augment shift1": {"augment": ("shift1",)},
    "lr_schedule cosine": {"lr_schedule": "cosine"},
    "augment shift1, lr_schedule cosine": {"augment": ("shift1",), "lr_schedule": "cosine"},
}
SEEDS = (0, 1, 2)


def main():
    X, y = load_digits_images()
    print(f"digits, CNNClassifier() defaults + options, seeds {SEEDS}; {time.strftime('%Y-%m-%d')}, "
          f"{platform.machine()}, {platform.python_version()}")
    print("| options | mean test accuracy | worst |\n|---|---|---|")
    for name, options in CONFIGS.items():
        scores = []
        for seed in SEEDS:
            Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, stratify=y, random_state=seed)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                scores.append(CNNClassifier(random_state=seed, **options).fit(Xtr, ytr).score(Xte, yte))
        print(f"| {name} | {np.mean(scores):.4f} | {min(scores):.4f} |", flush=True)


if __name__ == "__main__":
    main()
