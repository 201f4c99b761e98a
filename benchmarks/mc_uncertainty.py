"""Deterministic vs Monte-Carlo dropout vs temperature scaling on MNIST and Fashion-MNIST (docs/UNCERTAINTY.md).

Trains one small CNN per data set on the first ``--train`` training images,
then reports (``minicnn.uncertainty.mc_report``) on the first ``--test`` test
images, and fits ``CalibratedClassifierCV(FrozenEstimator(clf),
method="temperature")`` on the next ``--test`` test images (a calibration
split disjoint from the report's) to compare its log loss, Brier score and
ECE on the same report images.

Run: ``nice python benchmarks/mc_uncertainty.py`` (a few minutes on one core).
"""

import argparse
import time
import warnings

import numpy as np

from minicnn import CNNClassifier, datasets
from minicnn.uncertainty import _metrics, format_report, mc_report


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", default=["mnist", "fashion-mnist"])
    parser.add_argument("--train", type=int, default=6000)
    parser.add_argument("--test", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--mc-samples", type=int, default=30)
    parser.add_argument("--rate", type=float, default=0.2)
    args = parser.parse_args(argv)
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.frozen import FrozenEstimator

    loaders = {"mnist": datasets.load_mnist, "fashion-mnist": datasets.load_fashion_mnist}
    for name in args.data:
        X_train, y_train, X_test, y_test = loaders[name]()
        clf = CNNClassifier(layers=("conv16", "maxpool", "conv32", "maxpool", "dense64"),
                            dropout="after_each_layer", dropout_rate=args.rate, max_iter=args.epochs,
                            n_threads=1, random_state=0)
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")   # ConvergenceWarning of the short fit
            clf.fit(X_train[:args.train], y_train[:args.train])
        seconds = time.perf_counter() - start
        X_rep, y_rep = X_test[:args.test], y_test[:args.test]
        X_cal, y_cal = X_test[args.test:2 * args.test], y_test[args.test:2 * args.test]
        print(f"## {name}: {args.train} training images, {args.epochs} epochs ({seconds:.0f} s), dropout "
              f"after_each_layer rate {args.rate}; report on test images 0..{args.test - 1}")
        print(format_report(mc_report(clf, X_rep, y_rep, mc_samples=args.mc_samples)))
        calibrated = CalibratedClassifierCV(FrozenEstimator(clf), method="temperature").fit(X_cal, y_cal)
        row = _metrics(np.searchsorted(clf.classes_, y_rep), calibrated.predict_proba(X_rep), len(clf.classes_))
        print(f"temperature (CalibratedClassifierCV, fitted on test images {args.test}..{2 * args.test - 1}): "
              + ", ".join(f"{k} {v:.4f}" for k, v in row.items()))
        print()


if __name__ == "__main__":
    main()
