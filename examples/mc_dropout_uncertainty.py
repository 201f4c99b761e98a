"""Monte-Carlo dropout: dropout kept on at prediction time measures how unsure the model is.

``predict_uncertainty`` runs ``mc_samples`` stochastic forward passes (Gal &
Ghahramani 2016) and returns the mean class probabilities and their standard
deviation. On corrupted inputs (noise, occlusion) the passes disagree more:
the uncertainty is higher than on clean test digits.

Run: ``python examples/mc_dropout_uncertainty.py`` (about 10 seconds). The
environment variable ``MINICNN_EXAMPLE_EPOCHS`` overrides the number of epochs.
"""

import os

import numpy as np
from sklearn.model_selection import train_test_split

from minicnn import CNNClassifier
from minicnn.datasets import load_digits_images

EPOCHS = int(os.environ.get("MINICNN_EXAMPLE_EPOCHS", 30))

X, y = load_digits_images()
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, stratify=y, random_state=0)
clf = CNNClassifier(layers=("conv16", "maxpool", "dense64"), padding="same", dropout="last:2",
                    dropout_rate=0.5, dropout_kind="element", learning_rate=3e-3, batch_size=32,
                    max_iter=EPOCHS, n_threads=1, random_state=0).fit(X_train, y_train)
print(f"test accuracy: {clf.score(X_test, y_test):.4f}")

rng = np.random.default_rng(0)
corrupted = {
    "clean": X_test,
    "gaussian noise (sd 0.5)": np.clip(X_test + rng.normal(0, 0.5, X_test.shape), 0, 1).astype(np.float32),
    "left half erased": np.where(np.arange(8)[None, None, :, None] < 4, 0, X_test).astype(np.float32),
    "uniform noise images": rng.random(X_test.shape, dtype=np.float32),
}


def uncertainty(images):
    """Mean std of the predicted class and mean predictive entropy over ``mc_samples`` passes."""
    mean, std = clf.predict_uncertainty(images, mc_samples=30)
    top = mean.argmax(axis=1)
    entropy = -(mean * np.log(np.clip(mean, 1e-12, None))).sum(axis=1)
    return std[np.arange(len(top)), top].mean(), entropy.mean()


print(f"{'input':<26} {'accuracy':>8} {'MC std':>8} {'entropy':>8}")
scores = {}
for name, images in corrupted.items():
    std, entropy = uncertainty(images)
    scores[name] = entropy
    print(f"{name:<26} {clf.score(images, y_test):>8.3f} {std:>8.4f} {entropy:>8.4f}")
higher = all(scores[name] > scores["clean"] for name in corrupted if name != "clean")
print(f"uncertainty higher on every corrupted input than on clean digits: {higher}")
if not higher:
    raise SystemExit("expected higher predictive entropy on corrupted inputs")
