"""Sizes of a fitted model as it travels to Dask workers: its pickle, its weights, its model file.

The default architecture on 28x28x1 images (one epoch on 256 random images, batch_size 64). Re-run with
``python benchmarks/bench_pickle_size.py``; docs/CLUSTER.md quotes its output, and tests/test_doc_figures.py
re-runs :func:`sizes` and compares.
"""
import io
import os
import pickle
import tempfile
import warnings

import numpy as np

from minicnn import CNNClassifier


def sizes():
    """``{"pickle": MB, "weights": MB, "file": MB}`` of the default CNNClassifier fitted on 28x28 images."""
    rng = np.random.default_rng(0)
    X, y = rng.random((256, 28, 28, 1), dtype=np.float32), np.arange(256) % 10
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = CNNClassifier(max_iter=1, random_state=0).fit(X, y)
    weights = sum(p.nbytes for p, _ in est.network_.params_and_grads())
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "m.npz")
        est.save(path)
        on_disk = os.path.getsize(path)
    buffer = io.BytesIO()
    pickle.dump(est, buffer)
    return {name: size / 1e6 for name, size in
            (("pickle", buffer.getbuffer().nbytes), ("weights", weights), ("file", on_disk))}


if __name__ == "__main__":
    print(", ".join(f"{name} {mb:.1f} MB" for name, mb in sizes().items()))
