"""Where f32 inference spends its time: minicnn's leaf layers against ONNX Runtime's node profile (1 thread, or --threads).

For each net (the 3-channel grid of ``compare.py --grid`` at a size, the zoo nets of ``bench_zoo.py``, the reference
models ``digits`` and ``mnist`` of ``minicnn bench``) and batch:
the fitted-once minicnn network (backend auto), its own ONNX export (``export_onnx``) run by ONNX Runtime
(every graph optimization on, ``enable_profiling``), outputs checked equal first. minicnn's time per leaf
(``walk()``; a conv fused with its max-pool is one row, "Conv2D+pool") is taken by wrappers around ``forward``
and ``forward_pooled`` (and ``forward_add``: a conv with its residual block's merge, "+add"); ONNX Runtime's per node from its JSON profile (``kernel_time`` events), summed by
operator (its fused nodes carry the fused name: ``FusedConv``...). The minimum over ``--steps`` calls
(per layer / node and for the whole call): on a shared machine the minimum is the least disturbed. The whole call
is minicnn's forward as ``predict`` runs it (its recorded kernel calls replayed, :mod:`minicnn._replay`); the rows
come from the layers' own pass (a replay calls no layer method), whose whole time is the last row.

Usage: ``python benchmarks/profile_inference.py [--nets rgb28,rgb64,rgb128,resnet8,mobilenet,digits,mnist] [--batches 8,64]
[--steps 5] [--size 32] [--threads 1]``
"""

import argparse
import json
import os
import sys
import tempfile
import time
import warnings

import numpy as np

ZOO = {"resnet8": ("conv16", "res16", "res32s2", "res64s2", "gap"),
       "mobilenet": ("conv16s2", "sep32", "sep64s2", "sep64", "sep128s2", "sep128", "gap")}
GRID = ("conv32", "maxpool", "conv64", "maxpool", "dense128")
#: ``digits`` and ``mnist``: the reference models of ``minicnn bench`` (minicnn.tools.bench.MODELS)
REFERENCE_MODELS = {"digits": None, "mnist": None}
#: The inference entry points of a leaf that are timed (method -> suffix of its row): the plain forward, a conv
#: fused with its max-pool, a conv with a residual block's merge in its epilogue.
METHODS = {"forward": "", "forward_pooled": " +pool", "forward_add": " +add"}


def build(net, zoo_size):
    """A fitted-once CNNClassifier (1 thread) and its input shape."""
    from sklearn.exceptions import ConvergenceWarning

    from minicnn import CNNClassifier
    from minicnn.tools.bench import MODELS

    REFERENCE_MODELS.update({name: MODELS[name] for name in REFERENCE_MODELS})

    if net.startswith("rgb"):
        size = int(net[3:])
        shape, kw = (size, size, 3), dict(layers=GRID, padding="same", dropout="none")
    elif net in REFERENCE_MODELS:   # the reference models of ``minicnn bench``, as it builds them
        spec = REFERENCE_MODELS[net]
        shape = spec["input_shape"]
        kw = dict(layers=spec["layers"], padding=spec["padding"], dropout=spec["dropout"],
                  dropout_rate=spec["dropout_rate"], dropout_kind="element")
    else:
        shape, kw = (zoo_size, zoo_size, 3), dict(layers=ZOO[net], padding="same", batch_norm=True, dropout="none")
    rng = np.random.default_rng(0)
    X = rng.random((16, *shape), dtype=np.float32)
    clf = CNNClassifier(**kw, batch_size=16, max_iter=1, n_threads=1, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, np.arange(16) % 10)
    return clf, shape


def minicnn_profile(clf, X, steps, n_threads=1):
    """``({row: ms per call}, ms per whole forward)`` of the engine's inference forward."""
    from minicnn.layers.composite import Composite
    from minicnn.layers.separable import SeparableInference
    from minicnn.threads import kernel_thread_limits

    net, times, names = clf.network_, {}, {}

    def wrapped(method, suffix):
        def call(self, *args, **kwargs):
            start = time.perf_counter()
            out = method(self, *args, **kwargs)
            spent = time.perf_counter() - start
            key = names.get((id(self), suffix))
            if key is None:   # the row's name and its per-step lists, made once (later calls only append)
                key = names[id(self), suffix] = (f"{type(self).__name__} {getattr(self, 'describe', lambda: '')()} "
                                                 f"{self.input_shape} -> {self.output_shape}{suffix}")
            if key not in times:
                times[key] = [[] for _ in range(steps)]
            times[key][len(whole)].append(spent)
            return out
        return call

    # wrap the classes, not the instances: the BatchNorm folds run copies of the conv layers
    classes = {type(layer) for layer in net.walk() if not isinstance(layer, Composite)}
    classes.add(SeparableInference)   # a separable block's depthwise + pointwise convs, one row when fused
    saved = {cls: {k: cls.__dict__[k] for k in METHODS if k in cls.__dict__}
             for cls in classes}
    from minicnn import _replay

    with kernel_thread_limits(n_threads, len(X) * net.forward_work_per_sample(), net.kernels):   # as predict on X
        net.forward(X, training=False)   # plans, folds BatchNorm, records the pass
        replayed = []   # the whole forward as predict runs it (its recorded kernel calls replayed)
        for _ in range(steps):
            start = time.perf_counter()
            net.forward(X, training=False)
            replayed.append(time.perf_counter() - start)
        for cls in classes:
            cls.forward = wrapped(cls.forward, "")
            for k, suffix in METHODS.items():
                if k != "forward" and hasattr(cls, k):
                    setattr(cls, k, wrapped(getattr(cls, k), suffix))
        whole = []   # (defined before the wrappers run: they index the step by its length)
        try:
            for _ in range(steps):   # the layers' own pass (a replay calls the kernels, not the layers' methods)
                start = time.perf_counter()
                _replay._run(net._inference_plan(), X, 0)
                whole.append(time.perf_counter() - start)
        finally:
            for cls in classes:
                for k in METHODS:
                    if k in saved[cls]:
                        setattr(cls, k, saved[cls][k])
                    elif k in cls.__dict__:
                        delattr(cls, k)
    per_call = {k: 1e3 * min(sum(step) for step in v) for k, v in times.items()}
    # the residual merges, BatchNorm fold checks and the Python between the leaves, in the same calls
    per_call["rest (between the leaves)"] = 1e3 * min(
        whole[i] - sum(sum(v[i]) for v in times.values()) for i in range(steps))
    per_call["(the layers' own pass, whole)"] = 1e3 * float(min(whole))
    return per_call, 1e3 * float(min(replayed))


def ort_profile(clf, X, steps, folder, n_threads=1):
    """``({node name (op): ms per call}, ms per run)`` from ONNX Runtime's profile, ``n_threads`` intra-op threads."""
    import onnxruntime as ort

    from minicnn import export_onnx

    path = export_onnx(clf, os.path.join(folder, "net.onnx"))
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = n_threads, 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.enable_profiling = True
    options.profile_file_prefix = os.path.join(folder, "ort")
    sess = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    out = sess.run(None, {name: X})
    proba = out[1] if len(out) > 1 else out[0]
    if isinstance(proba, list):
        proba = np.array([[row[k] for k in sorted(row)] for row in proba], dtype=np.float32)
    np.testing.assert_allclose(clf.predict_proba(X), proba, atol=1e-4)
    whole = []
    for _ in range(steps):
        start = time.perf_counter()
        sess.run(None, {name: X})
        whole.append(time.perf_counter() - start)
    with open(sess.end_profiling()) as f:
        events = json.load(f)
    nodes = {}
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            key = f"{e['name'][:-len('_kernel_time')]} ({e['args'].get('op_name', '?')})"
            nodes.setdefault(key, []).append(e["dur"] / 1e3)
    per_call = {k: min(v[-steps:]) for k, v in nodes.items()}
    return per_call, 1e3 * float(min(whole))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nets", default="rgb28,rgb64,rgb128,resnet8,mobilenet")
    p.add_argument("--batches", default="8,64")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--size", type=int, default=32, help="image size of the zoo nets")
    p.add_argument("--threads", type=int, default=1, help="threads of both engines (minicnn's n_threads)")
    args = p.parse_args(argv)
    from minicnn.backend.levels import describe

    print(f"load average {os.getloadavg()[0]:.2f}; {describe({'cython', 'numba'})}", flush=True)
    for net in args.nets.split(","):
        clf, shape = build(net, args.size)
        for batch in map(int, args.batches.split(",")):
            X = np.random.default_rng(1).random((batch, *shape), dtype=np.float32)
            with tempfile.TemporaryDirectory() as folder:
                theirs, ort_ms = ort_profile(clf, X, args.steps, folder, args.threads)
            ours, our_ms = minicnn_profile(clf, X, args.steps, args.threads)
            print(f"\n## {net} {shape} batch {batch}, {args.threads} thread(s): minicnn {our_ms:.2f} ms, ONNX Runtime {ort_ms:.2f} ms "
                  f"(x ORT {ort_ms / our_ms:.2f})")
            for k, v in ours.items():
                print(f"  minicnn  {k:<48s} {v:8.3f} ms")
            for k, v in theirs.items():
                print(f"  ort      {k:<48s} {v:8.3f} ms")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
