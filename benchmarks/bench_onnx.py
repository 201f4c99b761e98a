"""Latency of an exported model in ONNX Runtime next to minicnn's own Predictor (the numbers of docs/EMBEDDING.md).

For the digits and MNIST networks of ``minicnn bench`` (weights do not change
the cost: one quick fit), one sample and a batch of 64, at 1 and 2 threads:
calls of the two runtimes are interleaved (one of each per round, the order
alternating) so both see the same machine load; medians over the rounds.
Outputs are checked equal first (labels exactly, probabilities within 1e-5).

Usage: ``python benchmarks/bench_onnx.py [--rounds 300]``
"""

import argparse
import os
import tempfile
import time

import numpy as np

NETS = {
    "digits": dict(shape=(8, 8, 1), layers=("conv16", "maxpool", "dense64"), padding="same"),
    "mnist": dict(shape=(28, 28, 1), layers=("conv32", "conv64", "maxpool", "dense128"), padding="valid"),
}


def build(name, folder):
    """A fitted CNNClassifier of network ``name``, saved and reloaded as a Predictor; its ONNX file."""
    from minicnn import CNNClassifier, export_onnx, load_predictor

    spec = NETS[name]
    rng = np.random.default_rng(0)
    X = rng.random((256, *spec["shape"]), dtype=np.float32)
    y = np.arange(256) % 10
    clf = CNNClassifier(layers=spec["layers"], padding=spec["padding"], max_iter=1, random_state=0).fit(X, y)
    path = os.path.join(folder, f"{name}.npz")
    clf.save(path)
    return load_predictor(path), export_onnx(clf, os.path.join(folder, f"{name}.onnx")), X


def timed(call):
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def measure(predictor, session, X, rounds):
    """Median seconds per call of each runtime on ``X`` (interleaved, order alternating)."""
    ours = lambda: predictor.predict_proba(X)          # noqa: E731
    theirs = lambda: session.run(None, {"X": X})       # noqa: E731
    for _ in range(10):                                # warm-up: workspaces, JIT caches, ORT arena
        ours(), theirs()
    a, b = [], []
    for r in range(rounds):
        if r % 2:
            a.append(timed(ours)), b.append(timed(theirs))
        else:
            b.append(timed(theirs)), a.append(timed(ours))
    return float(np.median(a)), float(np.median(b))


def main(argv=None):
    import onnxruntime as ort

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=300)
    args = parser.parse_args(argv)
    print(f"onnxruntime {ort.__version__}, {os.cpu_count()} CPUs, {args.rounds} interleaved rounds, medians")
    print(f"{'net':8} {'batch':>5} {'threads':>7} {'Predictor us':>13} {'ORT us':>10} {'ORT/Predictor':>14}")
    with tempfile.TemporaryDirectory() as folder:
        for name in NETS:
            predictor, path, X = build(name, folder)
            for threads in (1, 2):
                options = ort.SessionOptions()
                options.intra_op_num_threads = threads
                options.inter_op_num_threads = 1
                session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
                predictor.n_threads = threads
                for batch in (1, 64):
                    xb = np.ascontiguousarray(X[:batch])
                    label, proba = session.run(None, {"X": xb})
                    assert (label == predictor.predict(xb)).all()
                    assert np.abs(proba - predictor.predict_proba(xb)).max() < 1e-5
                    ours, theirs = measure(predictor, session, xb, args.rounds)
                    print(f"{name:8} {batch:>5} {threads:>7} {ours * 1e6:>13.1f} {theirs * 1e6:>10.1f} "
                          f"{theirs / ours:>14.2f}", flush=True)


if __name__ == "__main__":
    main()
