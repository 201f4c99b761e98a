"""Each inference route of a 3x3 "same" conv + relu (+ 2x2 max-pool) against ONNX Runtime's node, 1 thread.

``python benchmarks/bench_conv_routes.py [--rounds 5] [--only rgb64]``: for each shape (the
3-channel grid's two convs at 28/64/128 px, batch 1/8/64) it checks every compiled route against the
im2col route, then times them in interleaved rounds, medians in ms: ``im2col`` (+ ``maxpool2d_forward``),
``winograd`` (+ pool), the fused ``winograd+pool`` and ``direct+pool`` kernels, and ONNX Runtime on a
one-node graph ``MaxPool(Relu(Conv(x)))`` (NCHW input, its own layout work included: it is what a model
file costs it). The route table of ``minicnn.backend.tuning`` is drawn from these numbers.
"""

import argparse
import os
import time

import numpy as np

from minicnn.backend import cython_kernels as cy
from minicnn.threads import thread_limits

RELU = 1
GRID = [(f"rgb{s} conv{i} b{n}", n, s >> i, s >> i, C, F)
        for s in (28, 64, 128) for i, (C, F) in enumerate(((3, 32), (32, 64))) for n in (1, 8, 64)]


def _ort_session(C, F, w, b):
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("MaxPool", ["r"], ["y"], kernel_shape=[2, 2], strides=[2, 2])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                         ["N", C, "H", "W"])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(np.ascontiguousarray(w.transpose(3, 2, 0, 1)), "w"),
                               numpy_helper.from_array(b, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = 1, 1
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def routes(N, H, W, C, F, rng):
    x = rng.standard_normal((N, H, W, C), dtype=np.float32)
    w = rng.standard_normal((3, 3, C, F), dtype=np.float32) / np.float32(np.sqrt(9 * C))
    b = rng.standard_normal(F, dtype=np.float32) * np.float32(0.1)
    y = np.empty((N, H, W, F), np.float32)
    yp = np.empty((N, H // 2, W // 2, F), np.float32)
    am = np.empty((N, H // 2, W // 2, F), np.int64)
    col = np.empty((N, H * W, 9 * C), np.float32)
    work = np.empty((1, cy.winograd_workspace_length(H, W, C, F, H, W)), np.float32)
    out = {}

    def pool():
        cy.maxpool2d_forward(yp, am, y, 2, 2, 2, 2, 0, 0)

    def im2col():
        cy.conv2d_bias_act_forward(y, x, w, b, col, RELU, 0.0, 1, 1, 1, 1, 1, 1)
        pool()

    def winograd():
        cy.conv2d_winograd_bias_act_forward(y, x, w, b, work, RELU, 0.0, 1, 1)
        pool()

    def winograd_pool():
        cy.conv2d_winograd_bias_act_maxpool2_forward(yp, x, w, b, work, RELU, 0.0, 1, 1, H, W)

    def direct_pool():
        cy.conv2d_direct_bias_act_maxpool2_forward(yp, x, w, b, RELU, 0.0, 1, 1, 1, 1, 1, 1)

    calls = {"im2col+pool": im2col, "winograd,pool": winograd, "winograd+pool": winograd_pool,
             "direct+pool": direct_pool}
    im2col()
    want = yp.copy()
    for name, call in calls.items():
        yp.fill(np.nan)
        call()
        np.testing.assert_allclose(yp, want, rtol=1e-4, atol=1e-4, err_msg=name)
    try:
        sess = _ort_session(C, F, w, b)
        xn = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
        got = sess.run(None, {"x": xn})[0]
        np.testing.assert_allclose(got.transpose(0, 2, 3, 1), want, rtol=1e-4, atol=1e-4, err_msg="ort")
        calls["onnxruntime"] = lambda: sess.run(None, {"x": xn})
    except ImportError:
        pass
    return calls


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--only", default="", help="substring of the shape names to run")
    args = p.parse_args(argv)
    rng = np.random.default_rng(0)
    print(f"load average {os.getloadavg()[0]:.2f}, cpu level {cy.CPU_LEVEL}")
    with thread_limits(1):
        for name, N, H, W, C, F in GRID:
            if args.only not in name:
                continue
            calls = routes(N, H, W, C, F, rng)
            times = {k: [] for k in calls}
            for _ in range(args.rounds):
                for k, call in calls.items():
                    start = time.perf_counter()
                    call()
                    times[k].append(time.perf_counter() - start)
            med = {k: 1e3 * float(np.median(v)) for k, v in times.items()}
            best = min((v, k) for k, v in med.items() if k != "onnxruntime")
            print(f"{name:<18s} " + "  ".join(f"{k} {v:7.3f}" for k, v in med.items())
                  + f"  | best {best[1]}", flush=True)


if __name__ == "__main__":
    main()
