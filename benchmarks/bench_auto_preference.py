"""Which backend should ``"auto"`` pick for each kernel? Numba vs Cython on the reference models' shapes.

Run ``python benchmarks/bench_auto_preference.py [--repeat 30]``. For every
kernel of :data:`minicnn.backend.KERNELS` it builds the arguments of the
MNIST CNN (batch 128) and digits CNN (batch 64) layers, checks each backend
against the NumPy reference once, then times Numba and Cython *interleaved*
(call after call, so a load spike hits both) inside
:func:`minicnn.threads.thread_limits` at 1 and 2 threads, and prints the
median microseconds and the ratio. The table feeds the comment next to
``AUTO_PREFERENCE`` in ``minicnn/backend/__init__.py``.
"""

import argparse
import os
import sys
import time

import numpy as np

from minicnn.backend import get_backend
from minicnn.backend.hash_rng import dropout_key, keep_threshold
from minicnn.threads import thread_limits


def _conv_args(rng, N, H, W, C, F, pad):
    Ho, Wo = H + 2 * pad - 2, W + 2 * pad - 2
    x = rng.random((N, H, W, C), dtype=np.float32)
    w = rng.standard_normal((3, 3, C, F)).astype(np.float32)
    y = np.empty((N, Ho, Wo, F), np.float32)
    col = np.empty((N, Ho * Wo, 9 * C), np.float32)
    geometry = (1, 1, pad, pad, 1, 1)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    get_backend("numpy").conv2d_forward(y, x, w, col, *geometry)
    return {
        "conv2d_forward": lambda: (y.copy(), x, w, np.empty_like(col), *geometry),
        "conv2d_backward_input": lambda: (np.empty_like(x), np.empty_like(col), dy, w, *geometry),
        "conv2d_backward_weight": lambda: (np.empty_like(w), dy, col),
    }


def _cases(model, rng):
    """``{kernel: [(label, make_args)]}`` for one reference model."""
    if model == "mnist":
        N, convs, pool, flat, dense, params = 128, [(28, 28, 1, 32, 0), (26, 26, 32, 64, 0)], (24, 64), 9216, 128, 1_199_882
    else:
        N, convs, pool, flat, dense, params = 64, [(8, 8, 1, 16, 1)], (8, 16), 256, 64, 17_226
    cases = {}
    for H, W, C, F, pad in convs:
        for kernel, make in _conv_args(rng, N, H, W, C, F, pad).items():
            if kernel == "conv2d_backward_input" and C == 1:
                continue   # a first layer never needs it
            cases.setdefault(kernel, []).append((f"{model} conv {C}->{F}", make))
    S, C = pool
    x = rng.standard_normal((N, S, S, C)).astype(np.float32)
    y = np.empty((N, S // 2, S // 2, C), np.float32)
    am = np.empty(y.shape, np.int64)
    get_backend("numpy").maxpool2d_forward(y, am, x, 2, 2, 2, 2, 0, 0)
    cases["maxpool2d_forward"] = [(f"{model} pool", lambda: (np.empty_like(y), np.empty_like(am), x, 2, 2, 2, 2, 0, 0))]
    cases["maxpool2d_backward"] = [(f"{model} pool", lambda: (np.empty_like(x), y, am))]
    cases["avgpool2d_forward"] = [(f"{model} pool", lambda: (np.empty_like(y), x, 2, 2, 2, 2, 0, 0))]
    cases["avgpool2d_backward"] = [(f"{model} pool", lambda: (np.empty_like(x), y, 2, 2, 2, 2, 0, 0))]
    key, thr = dropout_key(1, 2, 3), keep_threshold(0.25)
    flat_x = rng.standard_normal(N * flat).astype(np.float32)
    for kernel in ("dropout_forward", "dropout_backward"):
        cases[kernel] = [(f"{model} {N}x{flat}", lambda: (np.empty_like(flat_x), flat_x, *key, thr, 4 / 3))]
    sx = flat_x.reshape(N, -1, C)
    for kernel in ("spatial_dropout_forward", "spatial_dropout_backward"):
        cases[kernel] = [(f"{model} {sx.shape}", lambda: (np.empty_like(sx), sx, *key, thr, 4 / 3))]
    z = rng.standard_normal((N * (S - 2 + 2 * (model == 'digits')) ** 2, C)).astype(np.float32)
    b = rng.standard_normal(C).astype(np.float32)
    cases["bias_act_forward"] = [(f"{model} conv out {z.shape}", lambda: (np.empty_like(z), z, b, 1, 0.01))]
    cases["bias_act_backward"] = [(f"{model} conv out {z.shape}",
                                   lambda: (np.empty_like(z), np.empty_like(b), z, np.abs(z), 1, 0.01))]
    a = flat_x.reshape(N, flat)
    wd = rng.standard_normal((flat, dense)).astype(np.float32)
    dz = rng.standard_normal((N, dense)).astype(np.float32)
    cases["matmul"] = [(f"{model} x@W {N}x{flat}x{dense}", lambda: (np.empty((N, dense), np.float32), a, wd, 0, 0)),
                       (f"{model} x.T@dz", lambda: (np.empty((flat, dense), np.float32), a, dz, 1, 0)),
                       (f"{model} dz@W.T", lambda: (np.empty((N, flat), np.float32), dz, wd, 0, 1))]
    p = rng.standard_normal(params).astype(np.float32)
    cases["adam_update"] = [(f"{model} {params} params", lambda: (p.copy(), np.zeros_like(p), np.zeros_like(p), p,
                                                                   0.01, 0.9, 0.999, 0.001, 1e-8, 1.0))]
    logits = rng.standard_normal((N, 10)).astype(np.float32)
    labels = (np.arange(N) % 10).astype(np.int64)
    cases["softmax_xent"] = [(f"{model} {N}x10", lambda: (np.empty_like(logits), logits, labels))]
    return cases


def _check(kernel, args_numpy, args_other):
    """Outputs (the arrays among the first arguments) agree with the reference."""
    for a, b in zip(args_numpy, args_other):
        if isinstance(a, np.ndarray) and a.dtype.kind == "f":
            np.testing.assert_allclose(b, a, rtol=2e-4, atol=2e-4, err_msg=kernel)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--threads", default="1,2")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    backends = {name: get_backend(name) for name in ("numba", "cython")}
    print(f"load average {os.getloadavg()}", flush=True)
    rows = []
    for model in ("mnist", "digits"):
        for kernel, cases in _cases(model, rng).items():
            for label, make in cases:
                ref_args = make()
                getattr(get_backend("numpy"), kernel)(*ref_args)
                prepared = {}
                for name, be in backends.items():
                    prepared[name] = make()
                    getattr(be, kernel)(*prepared[name])   # also compiles Numba
                    if kernel not in ("adam_update",):
                        _check(kernel, ref_args, prepared[name])
                for n in [int(t) for t in args.threads.split(",")]:
                    times = {name: [] for name in backends}
                    with thread_limits(n):
                        for _ in range(args.repeat):
                            for name, be in backends.items():
                                fn, a = getattr(be, kernel), prepared[name]
                                start = time.perf_counter()
                                fn(*a)
                                times[name].append(time.perf_counter() - start)
                    med = {name: 1e6 * float(np.median(t)) for name, t in times.items()}
                    rows.append((kernel, label, n, med["numba"], med["cython"]))
                    print(f"{kernel:26s} {label:32s} {n}t  numba {med['numba']:10.1f} us  cython {med['cython']:10.1f} us"
                          f"  numba/cython {med['numba'] / med['cython']:6.2f}", flush=True)
    print(f"load average {os.getloadavg()}")
    return rows


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
