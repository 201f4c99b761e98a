"""Train the model zoo of docs/LAYERS.md on a Fashion-MNIST subset: accuracy, weights, multiply-adds, fit time.

Fashion-MNIST (Xiao, Rasul and Vollgraf 2017; ``minicnn.datasets.load_fashion_mnist``)
images are zero-padded from 28x28 to 32x32 and replicated to 3 channels, so the
nets see the 32x32 RGB input they were designed for. A stratified subset keeps the
run short: ``--train`` images drawn from the training set, ``--test`` from the
test set (seed 0). Every net trains with the same settings (Adam, batch 64,
``batch_norm=True``, ``padding="same"``, no dropout, ``random_state=0``) for
``--epochs`` epochs; the plain net is the ResNet-8 shape without skips (same
weights budget).

Usage: ``python benchmarks/train_zoo.py [--train 5000] [--test 2000] [--epochs 3] [--threads 1]``
"""

import argparse
import os
import platform
import time
import warnings

import numpy as np

TRAINED = ("ResNet-8 style", "plain, ResNet-8 shape", "MobileNet style")   # keys of minicnn.tools.bench.ZOO


def to_32x32_rgb(X):
    """(n, 28, 28, 1) images -> (n, 32, 32, 3): 2 zero pixels on each side, the grey channel replicated."""
    return np.ascontiguousarray(np.repeat(np.pad(X, ((0, 0), (2, 2), (2, 2), (0, 0))), 3, axis=3))


def subset(X, y, n, rng):
    """``n`` rows drawn without replacement, stratified by class (equal share per class, remainder at random)."""
    per_class = [rng.permutation(np.flatnonzero(y == c)) for c in np.unique(y)]
    take = np.concatenate([idx[: n // len(per_class)] for idx in per_class])
    rest = np.setdiff1d(np.arange(len(y)), take)
    take = np.concatenate([take, rng.choice(rest, n - len(take), replace=False)])
    return X[np.sort(take)], y[np.sort(take)]


def main(argv=None):
    from sklearn.exceptions import ConvergenceWarning

    from minicnn import CNNClassifier
    from minicnn.datasets import load_fashion_mnist
    from minicnn.tools.bench import ZOO, macs_per_sample

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=5000)
    parser.add_argument("--test", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--only", choices=TRAINED, action="append", help="train only these nets (repeatable)")
    args = parser.parse_args(argv)

    X_train, y_train, X_test, y_test = load_fashion_mnist()
    rng = np.random.default_rng(0)
    X_train, y_train = subset(X_train, y_train, args.train, rng)
    X_test, y_test = subset(X_test, y_test, args.test, rng)
    X_train, X_test = to_32x32_rgb(X_train), to_32x32_rgb(X_test)
    print(f"Fashion-MNIST padded to 32x32x3: {len(y_train)} train / {len(y_test)} test images, {args.epochs} epochs, "
          f"{args.threads} thread(s), {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"{time.strftime('%Y-%m-%d %H:%M')}")
    print(f"{'model':22s} {'weights':>8s} {'M MACs':>7s} {'test acc':>8s} {'fit s':>7s}  layers")
    for name in args.only or TRAINED:
        layers = ZOO[name]
        clf = CNNClassifier(layers=layers, padding="same", batch_norm=True, dropout="none", max_iter=args.epochs,
                            batch_size=64, n_threads=args.threads, random_state=0)
        start = time.perf_counter()
        with warnings.catch_warnings():        # a few epochs of a subset: not converged, by design
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.fit(X_train, y_train)
        seconds = time.perf_counter() - start
        print(f"{name:22s} {clf.network_.n_params:>8,} {macs_per_sample(clf.network_) / 1e6:7.2f} "
              f"{clf.score(X_test, y_test):8.4f} {seconds:7.1f}  {','.join(layers)}", flush=True)


if __name__ == "__main__":
    main()
