"""The dense layer on a few rows and large weights (one sample .. a small batch) against ONNX Runtime's node, 1 thread.

``python benchmarks/bench_dense.py [--rounds 15] [--rows 1,2,4,8] [--inner 9216,16384,65536] [--threads 1]
[--cold]``: for each shape ``x (M, K) @ w (K, 128) + b`` then relu (the MNIST model's dense layer at K = 9216, the
3-channel grid's at 64 px, K = 16384, and at 128 px, K = 65536), the compiled ``dense_bias_act_forward`` is checked
against the NumPy reference, then timed in interleaved rounds beside ONNX Runtime on a one-node graph
``Relu(Gemm(x, w, b))`` (it fuses them: ``FusedGemm``), NumPy's ``x @ w`` (its OpenBLAS) and, as the read bound,
NumPy reading the weights once (``np.max``, vectorized, no write). Medians and minima in ms, and the weight bytes
per second at the minimum.

``--cold``: between calls, a 48 MiB buffer is read (it evicts the weights from the 32 MiB L3 of the machine the
numbers in ``kernels/gemm.pyx`` come from), as in a whole net where the convolutions run between two dense
calls; without it the weights of the smaller shapes stay in the cache from call to call.
"""

import argparse
import time

import numpy as np

from minicnn.backend import cython_kernels as cy
from minicnn.backend import reference as ref
from minicnn.threads import thread_limits

RELU = 1
UNITS = 128


def _ort_session(w, b, threads):
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    nodes = [helper.make_node("Gemm", ["x", "w", "b"], ["g"]), helper.make_node("Relu", ["g"], ["y"])]
    graph = helper.make_graph(nodes, "dense",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["M", w.shape[0]])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["M", w.shape[1]])],
                              [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def contenders(M, K, threads, seed=0):
    """``{name: call}`` for one shape, each checked against the NumPy reference first."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((M, K), dtype=np.float32)
    w = (rng.standard_normal((K, UNITS), dtype=np.float32) / np.sqrt(K)).astype(np.float32)
    b = rng.standard_normal(UNITS, dtype=np.float32)
    want = np.full((M, UNITS), np.nan, np.float32)
    ref.dense_bias_act_forward(want, x, w, b, RELU, 0.0)
    y = np.full((M, UNITS), np.nan, np.float32)
    calls = {"minicnn": lambda: cy.dense_bias_act_forward(y, x, w, b, RELU, 0.0),
             "numpy x @ w": lambda: np.dot(x, w),
             "read bound (np.max(w))": lambda: np.max(w)}
    calls["minicnn"]()
    np.testing.assert_allclose(y, want, rtol=1e-4, atol=1e-4)
    try:
        sess = _ort_session(w, b, threads)
    except ImportError:
        return calls
    feed = {"x": x}
    np.testing.assert_allclose(sess.run(None, feed)[0], want, rtol=1e-4, atol=1e-4)
    calls["onnxruntime"] = lambda: sess.run(None, feed)
    return calls


def run(rows, inners, rounds, threads, cold):
    flush = np.ones(48 << 18, np.float32) if cold else None
    with thread_limits(threads):
        for K in inners:
            for M in rows:
                calls = contenders(M, K, threads)
                times = {name: [] for name in calls}
                for _ in range(rounds):
                    for name, call in calls.items():
                        if flush is not None:
                            flush.max()
                        start = time.perf_counter()
                        call()
                        times[name].append(time.perf_counter() - start)
                print(f"M={M} K={K} N={UNITS} ({K * UNITS * 4 / 2**20:.0f} MiB of weights), {threads} thread(s)"
                      f"{', weights evicted' if cold else ''}:")
                for name, t in times.items():
                    t = np.array(t) * 1e3
                    print(f"  {name:24s} median {np.median(t):7.3f} ms  min {t.min():7.3f} ms  "
                          f"({K * UNITS * 4 / t.min() / 1e6:5.1f} GB/s at the min)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--rows", default="1,2,4,8")
    parser.add_argument("--inner", default="9216,16384,65536")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cold", action="store_true")
    args = parser.parse_args()
    run([int(v) for v in args.rows.split(",")], [int(v) for v in args.inner.split(",")], args.rounds,
        args.threads, args.cold)


if __name__ == "__main__":
    main()
