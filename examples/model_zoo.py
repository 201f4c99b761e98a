"""Residual and depthwise-separable networks from layer tokens: the zoo's sizes, then a small residual net trained.

Part 1 prints the weights and multiply-adds of the zoo in ``docs/LAYERS.md``
(ResNet-8 and ResNet-20 style, a MobileNet-style net and a plain net of the
ResNet-8 shape, for 32x32 RGB images). Part 2 trains a residual net, a
MobileNet-style net and a plain net of about the same size on the 8x8 digits
and prints their test accuracy and the summary of the residual one (each block
shows its inner layers).

Run: ``python examples/model_zoo.py``. The environment variable
``MINICNN_EXAMPLE_EPOCHS`` overrides the number of epochs (the tests use 2).
"""

import os
import time

import numpy as np
from sklearn.model_selection import train_test_split

from minicnn import CNNClassifier
from minicnn.architecture import build_network, parse_layers
from minicnn.datasets import load_digits_images
from minicnn.tools.bench import ZOO, macs_per_sample

EPOCHS = int(os.environ.get("MINICNN_EXAMPLE_EPOCHS", 20))

print("32x32 RGB input, 10 classes, batch_norm=True:")
for name, layers in ZOO.items():
    network, _ = build_network(parse_layers(layers), [], n_outputs=10, input_shape=(32, 32, 3),
                               rng=np.random.default_rng(0), backend="numpy", padding="same", batch_norm=True)
    print(f"  {name:22s} {network.n_params:>8,} weights {macs_per_sample(network) / 1e6:6.2f} M multiply-adds  "
          f"{','.join(layers)}")

X, y = load_digits_images()                      # (1797, 8, 8, 1)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, stratify=y, random_state=0)
DIGITS = {
    "residual": ("conv16", "res16", "res32s2", "gap"),
    "separable": ("conv16", "sep32", "sep32s2", "sep64", "gap"),
    "plain": ("conv16", "conv16", "conv16", "conv32s2", "conv32", "gap"),
}
models = {}
for name, layers in DIGITS.items():
    clf = CNNClassifier(layers=layers, padding="same", batch_norm=True, dropout="none", max_iter=EPOCHS,
                        batch_size=32, n_threads=1, random_state=0)
    start = time.perf_counter()
    clf.fit(X_train, y_train)
    models[name] = clf
    print(f"{name:9s} {','.join(layers):38s} {clf.network_.n_params:>6,} weights  test accuracy "
          f"{clf.score(X_test, y_test):.4f}  fit {time.perf_counter() - start:.1f} s ({clf.n_iter_} epochs)")
print(models["residual"].summary())
