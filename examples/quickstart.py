"""Quickstart: train a small CNN on the 8x8 digits, predict, inspect, save and reload it.

Run: ``python examples/quickstart.py`` (about 5 seconds). The environment
variable ``MINICNN_EXAMPLE_EPOCHS`` overrides the number of epochs (the tests
use 2).
"""

import os
import tempfile

import numpy as np
from sklearn.model_selection import train_test_split

import minicnn
from minicnn import CNNClassifier
from minicnn.datasets import load_digits_images

EPOCHS = int(os.environ.get("MINICNN_EXAMPLE_EPOCHS", 30))

X, y = load_digits_images()                      # (1797, 8, 8, 1) float32 in [0, 1], NHWC
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, stratify=y, random_state=0)

clf = CNNClassifier(
    layers=("conv16", "maxpool", "dense64"),
    padding="same",
    dropout="after_last_pool",                   # the blog's rule of thumb (docs/STUDY.md tests it)
    dropout_rate=0.25,
    dropout_kind="element",
    learning_rate=3e-3,
    batch_size=32,
    max_iter=EPOCHS,
    n_threads=1,                                 # 8x8 images: threads only add overhead
    random_state=0,
)
clf.fit(X_train, y_train)
print(f"test accuracy: {clf.score(X_test, y_test):.4f} after {clf.n_iter_} epochs")
print("first predictions:", clf.predict(X_test[:10]).tolist())
print("true labels:      ", y_test[:10].tolist())
print(clf.summary())

with tempfile.TemporaryDirectory() as folder:
    path = os.path.join(folder, "digits.npz")
    clf.save(path)                               # one .npz file, no pickle
    reloaded = minicnn.load(path)
same = np.array_equal(reloaded.predict_proba(X_test), clf.predict_proba(X_test))
print(f"saved and reloaded {os.path.basename(path)}; reloaded model predicts identically: {same}")
