"""The Python work around the engine on small calls: each prediction face against the engine alone, 1 thread.

For each model (the two reference models of ``minicnn bench``, ``digits`` and ``mnist``; the grid's ``rgb28``;
the default ``CNNClassifier()`` on 8x8x1 images) and batch, in one process, **interleaved** (round after
round, every path in turn, so a load spike hits them all), the time per call of:

* ``engine``: ``network_.forward`` inside :func:`minicnn.threads.kernel_thread_limits` entered once (the
  kernels alone);
* ``limits+engine``: the same with the limits entered per call (what a prediction pays for its thread
  team);
* ``predict``, ``predict_proba``, ``predict_log_proba``: the estimator;
* ``P.predict``, ``P.predict_proba``: the :class:`~minicnn.predictor.Predictor` of the saved model;
* ``onnxruntime``: ONNX Runtime on the model's own export (``export_onnx``, channels-last input, every graph
  optimization on, one thread), when installed.

It checks first that every face returns the engine's values, then prints the median and the minimum per call
in microseconds and the overhead of each face over the engine's median.

Usage: ``python benchmarks/bench_percall.py [--models digits,mnist,rgb28,default] [--batches 1,8,64]
[--rounds 5] [--steps 200] [--threads 1]``
"""

import argparse
import os
import sys
import tempfile
import warnings

import numpy as np

GRID = ("conv32", "maxpool", "conv64", "maxpool", "dense128")
#: name -> (per-sample shape, CNNClassifier keyword arguments)
MODELS = {
    "digits": ((8, 8, 1), dict(layers=("conv16", "maxpool", "dense64"), padding="same", dropout=(1, 2),
                               dropout_rate=(0.25, 0.5), dropout_kind="element")),
    "mnist": ((28, 28, 1), dict(layers=("conv32", "conv64", "maxpool", "dense128"), padding="valid",
                                dropout=(2, 3), dropout_rate=(0.25, 0.5), dropout_kind="element")),
    "rgb28": ((28, 28, 3), dict(layers=GRID, padding="same", dropout="none")),
    "default": ((8, 8, 1), {}),
}


def build(model, n_threads):
    """A CNNClassifier fitted one iteration on random data of the model's shape."""
    from sklearn.exceptions import ConvergenceWarning

    from minicnn import CNNClassifier

    shape, kw = MODELS[model]
    rng = np.random.default_rng(0)
    X = rng.random((32, *shape), dtype=np.float32)
    clf = CNNClassifier(**kw, batch_size=16, max_iter=1, n_threads=n_threads, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, np.arange(32) % 10)
    return clf, shape


def ort_session(clf, folder):
    """ONNX Runtime's session on the model's export (one thread), or None without onnxruntime/onnx."""
    try:
        import onnxruntime as ort

        from minicnn import export_onnx

        path = export_onnx(clf, os.path.join(folder, "net.onnx"))
    except ImportError:
        return None
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = 1, 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def paths(clf, predictor, session, x, n_threads):
    """``{name: call}`` of every face on batch ``x``, after checking that each returns the engine's values."""
    from minicnn._predict import softmax
    from minicnn.threads import kernel_thread_limits

    net = clf.network_
    work = len(x) * net.forward_work_per_sample()
    kernels = net.kernels
    with kernel_thread_limits(n_threads, work, kernels):
        logits = net.forward(x, training=False).copy()
    assert np.array_equal(clf.predict_proba(x), softmax(logits, kernels))
    assert np.array_equal(predictor.predict_proba(x), clf.predict_proba(x))
    assert np.array_equal(clf.predict(x), clf.classes_[logits.argmax(axis=1)])
    assert np.array_equal(predictor.predict(x), clf.predict(x))

    def limits_engine():
        with kernel_thread_limits(n_threads, work, kernels):
            net.forward(x, training=False)

    calls = {"limits+engine": limits_engine,
             "predict": lambda: clf.predict(x), "predict_proba": lambda: clf.predict_proba(x),
             "predict_log_proba": lambda: clf.predict_log_proba(x),
             "P.predict": lambda: predictor.predict(x), "P.predict_proba": lambda: predictor.predict_proba(x)}
    if session is not None:
        name, feed = session.get_inputs()[0].name, {session.get_inputs()[0].name: x}
        proba = session.run(None, feed)[-1]
        if isinstance(proba, list):   # a ZipMap output: one dict per sample
            proba = np.array([[row[k] for k in sorted(row)] for row in proba])
        np.testing.assert_allclose(proba, clf.predict_proba(x), atol=1e-4)
        calls["onnxruntime"] = lambda: session.run(None, feed)
    return calls, work, kernels, net


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="digits,mnist,rgb28,default")
    p.add_argument("--batches", default="1,8,64")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    from minicnn import load_predictor
    from minicnn.threads import kernel_thread_limits
    from minicnn.tools.bench import _timed as timed

    print(f"load average at start {os.getloadavg()[0]:.2f}", flush=True)
    cases = []
    with tempfile.TemporaryDirectory() as folder:
        for model in args.models.split(","):
            clf, shape = build(model, args.threads)
            path = os.path.join(folder, f"{model}.npz")
            clf.save(path)
            predictor = load_predictor(path)
            session = ort_session(clf, folder)
            for batch in map(int, args.batches.split(",")):
                x = np.random.default_rng(1).random((batch, *shape), dtype=np.float32)
                calls, work, kernels, net = paths(clf, predictor, session, x, args.threads)
                cases.append((model, batch, calls, work, kernels, net, x))
        samples = {}
        for _ in range(args.rounds):
            for model, batch, calls, work, kernels, net, x in cases:
                steps = max(5, args.steps // batch)
                with kernel_thread_limits(args.threads, work, kernels):
                    net.forward(x, training=False)
                    samples.setdefault((model, batch, "engine"), []).extend(
                        timed(lambda: net.forward(x, training=False), steps))
                for name, call in calls.items():
                    call()
                    samples.setdefault((model, batch, name), []).extend(timed(call, steps))
    print(f"load average at end {os.getloadavg()[0]:.2f}; microseconds per call, median / minimum; "
          f"+: median over the engine's")
    last = None
    for (model, batch, name), values in samples.items():
        if (model, batch) != last:
            engine = 1e6 * float(np.median(samples[(model, batch, "engine")]))
            print(f"\n## {model} {MODELS[model][0]} batch {batch}, {args.threads} thread(s)")
            last = (model, batch)
        median, least = 1e6 * float(np.median(values)), 1e6 * float(np.min(values))
        print(f"  {name:<18s} {median:9.2f} {least:9.2f}   +{median - engine:8.2f}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
