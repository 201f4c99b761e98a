"""Each inference route of a 3x3 "same" conv + relu (+ 2x2 max-pool) against ONNX Runtime's node, 1 thread.

``python benchmarks/bench_conv_routes.py [--rounds 5] [--only rgb64] [--stems]``: for each shape (the
3-channel grid's two convs at 28/64/128 px, batch 1/8/64) it checks every compiled route against the
im2col route, then times them in interleaved rounds, medians in ms: ``im2col`` (+ ``maxpool2d_forward``),
``winograd`` (+ pool), the fused ``winograd+pool`` and ``direct+pool`` kernels, and ONNX Runtime on a
one-node graph ``MaxPool(Relu(Conv(x)))`` (NCHW input, its own layout work included: it is what a model
file costs it). The route table of ``minicnn.backend.tuning`` is drawn from these numbers.

``--stems``: the convs of the zoo nets not followed by a pool (``STEMS``: the RGB stems at stride 1 and 2, the
stride-2 3x3 convs, the 1x1 stride-2 projections and pointwise convs, batch 8 and 64), each route checked against
im2col then timed: ``direct`` (``conv2d_direct_bias_act_forward``), ``im2col``, for a 1x1 conv ``gather+dense``
(the strided pixels copied, then one dense product) and ONNX Runtime's ``Relu(Conv(x))``. Minima are printed
beside the medians (on a shared machine the least disturbed call).
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


def _ort_session(C, F, w, b, pads=(1, 1, 1, 1), strides=(1, 1), pool=True):
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    KH, KW = w.shape[:2]
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=list(pads), kernel_shape=[KH, KW],
                              strides=list(strides)),
             helper.make_node("Relu", ["c"], ["r" if pool else "y"])]
    if pool:
        nodes.append(helper.make_node("MaxPool", ["r"], ["y"], kernel_shape=[2, 2], strides=[2, 2]))
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
    return _checked(calls, yp, x, lambda: _ort_session(C, F, w, b))


def _checked(calls, out, x, session):
    """``calls`` (each writing ``out``), each checked against the first (``out`` NaN-filled before), and ONNX
    Runtime's ``session()`` on ``x`` (NCHW) added as "onnxruntime" when it is installed."""
    next(iter(calls.values()))()
    want = out.copy()
    for name, call in calls.items():
        out.fill(np.nan)
        call()
        np.testing.assert_allclose(out, want, rtol=1e-4, atol=1e-4, err_msg=name)
    try:
        sess = session()
        xn = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
        got = sess.run(None, {"x": xn})[0]
        np.testing.assert_allclose(got.transpose(0, 2, 3, 1), want, rtol=1e-4, atol=1e-4, err_msg="ort")
        calls["onnxruntime"] = lambda: sess.run(None, {"x": xn})
    except ImportError:
        pass
    return calls


#: (name, N, H, W, C, F, kernel, stride): the zoo nets' convs without a pool after them ("same" padding).
STEMS = [(f"{name} b{n}", n, H, H, C, F, k, s) for n in (8, 64) for name, H, C, F, k, s in (
    ("stem 3->16", 32, 3, 16, 3, 1), ("stem 3->16 s2", 32, 3, 16, 3, 2), ("3x3 s2 16->32", 32, 16, 32, 3, 2),
    ("3x3 s2 32->64", 16, 32, 64, 3, 2), ("1x1 s2 16->32", 32, 16, 32, 1, 2), ("1x1 s2 32->64", 16, 32, 64, 1, 2),
    ("1x1 16->32", 16, 16, 32, 1, 1), ("1x1 32->64", 8, 32, 64, 1, 1), ("1x1 64->128", 4, 64, 128, 1, 1),
    # the blocked route's bounds: more weights, fewer filters, a shallow stride-1 conv off the Winograd route
    ("3x3 s2 64->128", 8, 64, 128, 3, 2), ("3x3 s2 32->32", 16, 32, 32, 3, 2), ("3x3 4->32", 32, 4, 32, 3, 1),
    ("3x3 s2 16->16", 32, 16, 16, 3, 2), ("5x5 s2 16->32", 32, 16, 32, 5, 2), ("stem 3->32", 32, 3, 32, 3, 1))]


def stem_routes(N, H, W, C, F, k, s, rng):
    """The inference routes of a "same" k x k stride-s conv + relu with no pool after it, checked first."""
    x = rng.standard_normal((N, H, W, C), dtype=np.float32)
    w = rng.standard_normal((k, k, C, F), dtype=np.float32) / np.float32(np.sqrt(k * k * C))
    b = rng.standard_normal(F, dtype=np.float32) * np.float32(0.1)
    Ho, Wo = -(-H // s), -(-W // s)
    pad_h, pad_w = max((Ho - 1) * s + k - H, 0), max((Wo - 1) * s + k - W, 0)
    geometry = (s, s, pad_h // 2, pad_w // 2, 1, 1)
    y = np.empty((N, Ho, Wo, F), np.float32)
    col = np.empty((N, Ho * Wo, k * k * C), np.float32)
    calls = {"im2col": lambda: cy.conv2d_bias_act_forward(y, x, w, b, col, RELU, 0.0, *geometry),
             "direct": lambda: cy.conv2d_direct_bias_act_forward(y, x, w, b, RELU, 0.0, *geometry)}
    if hasattr(cy, "conv2d_blocked_bias_act_forward"):
        calls["blocked"] = lambda: cy.conv2d_blocked_bias_act_forward(y, x, w, b, RELU, 0.0, *geometry)
    if k == 1:
        gathered = np.empty((N, Ho, Wo, C), np.float32)

        def gather_dense():
            np.copyto(gathered, x[:, ::s, ::s, :])
            cy.dense_bias_act_forward(y.reshape(-1, F), gathered.reshape(-1, C), w.reshape(C, F), b, RELU, 0.0)

        calls["gather+dense"] = gather_dense
    pads = (pad_h // 2, pad_w // 2, pad_h - pad_h // 2, pad_w - pad_w // 2)
    return _checked(calls, y, x, lambda: _ort_session(C, F, w, b, pads, (s, s), pool=False))


def _time(name, calls, rounds):
    times = {k: [] for k in calls}
    for _ in range(rounds):
        for k, call in calls.items():
            start = time.perf_counter()
            call()
            times[k].append(time.perf_counter() - start)
    med = {k: 1e3 * float(np.median(v)) for k, v in times.items()}
    best = min((v, k) for k, v in med.items() if k != "onnxruntime")
    print(f"{name:<18s} " + "  ".join(f"{k} {v:7.3f} ({1e3 * min(times[k]):.3f})" for k, v in med.items())
          + f"  | best {best[1]}", flush=True)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--only", default="", help="substring of the shape names to run")
    p.add_argument("--stems", action="store_true", help="the zoo nets' convs without a pool (STEMS) instead")
    args = p.parse_args(argv)
    rng = np.random.default_rng(0)
    print(f"load average {os.getloadavg()[0]:.2f}, cpu level {cy.CPU_LEVEL}; ms, median (minimum)")
    with thread_limits(1):
        for name, *shape in (STEMS if args.stems else GRID):
            if args.only in name:
                _time(name, (stem_routes if args.stems else routes)(*shape, rng), args.rounds)


if __name__ == "__main__":
    main()
