"""Winograd F(2x2, 3x3) vs the direct (im2col + GEMM) Cython conv forward, fused bias + relu.

Run ``python benchmarks/bench_winograd.py [--rounds R] [--no-sweep]``. For each
shape it checks that both kernels agree, then times them in interleaved rounds
(direct, Winograd, direct, ...) inside :func:`minicnn.threads.thread_limits`
with 1 and 2 threads and prints the medians (ms) and the ratio direct /
Winograd (> 1: Winograd is faster). Both kernels get their preallocated
workspaces (``col`` for direct, ``(threads, L)`` for Winograd), as a layer
keeps them between calls. The shapes are those of the example models (the
MNIST CNN's two convs, the digits conv) plus, unless ``--no-sweep``, a sweep
over the input channels to find where Winograd starts to pay. Unless
``--no-pool``, it then times the conv fused with the 2x2 stride-2 max-pool
(``conv2d_winograd_bias_act_maxpool2_forward``) against the Winograd conv
followed by the Cython ``maxpool2d_forward`` (its output and int64 argmax
preallocated), on the MNIST conv2 shape, after checking that both give the
same bits. The machine may be shared: the load average is printed before
and after; compare medians only from quiet runs.
"""

import argparse
import os
import time

import numpy as np

from minicnn.backend import cython_kernels as cy
from minicnn.threads import thread_limits

#        name              N   H   W   C   F  pad
SHAPES = [("MNIST conv2", 128, 26, 26, 32, 64, 0),
          ("digits conv", 64, 8, 8, 1, 16, 1),
          ("MNIST conv1", 128, 28, 28, 1, 32, 0)]
SWEEP = [(f"sweep C={C}", 128, 26, 26, C, 32, 1) for C in (1, 2, 3, 4, 6, 8, 16)]
RELU = 1


def _arrays(N, H, W, C, F, pad, threads, rng):
    Ho, Wo = H + 2 * pad - 2, W + 2 * pad - 2
    x = rng.standard_normal((N, H, W, C), dtype=np.float32)
    w = (rng.standard_normal((3, 3, C, F), dtype=np.float32) / np.float32(np.sqrt(9 * C)))
    b = rng.standard_normal(F, dtype=np.float32) * np.float32(0.1)
    return dict(x=x, w=w, b=b, pad=pad, y=np.empty((N, Ho, Wo, F), np.float32),
                col=np.empty((N, Ho * Wo, 9 * C), np.float32),
                work=np.empty((threads, cy.winograd_workspace_length(H, W, C, F, Ho, Wo)), np.float32))


def _direct(a):
    p = a["pad"]
    cy.conv2d_bias_act_forward(a["y"], a["x"], a["w"], a["b"], a["col"], RELU, 0.0, 1, 1, p, p, 1, 1)


def _winograd(a):
    p = a["pad"]
    cy.conv2d_winograd_bias_act_forward(a["y"], a["x"], a["w"], a["b"], a["work"], RELU, 0.0, p, p)


def _check(a):
    _direct(a)
    want = a["y"].copy()
    a["y"].fill(np.nan)
    _winograd(a)
    scale = max(float(np.abs(want).max()), 1.0)
    np.testing.assert_allclose(a["y"], want, rtol=1e-5, atol=1e-5 * scale)


def _time(fn, a):
    t0 = time.perf_counter()
    fn(a)
    return time.perf_counter() - t0


def bench(shape, threads, rounds, rng):
    """Median ms of (direct, Winograd) over ``rounds`` interleaved rounds with ``threads`` threads."""
    _, N, H, W, C, F, pad = shape
    a = _arrays(N, H, W, C, F, pad, threads, rng)
    with thread_limits(threads):
        _check(a)
        for _ in range(2):   # warm-up: first touch of y, col and work
            _direct(a)
            _winograd(a)
        direct, wino = [], []
        for _ in range(rounds):
            direct.append(_time(_direct, a))
            wino.append(_time(_winograd, a))
    return 1e3 * float(np.median(direct)), 1e3 * float(np.median(wino))


#        name              N   H   W   C   F  pad
POOL_SHAPES = [("MNIST conv2", 128, 26, 26, 32, 64, 0)]


def _pool_arrays(a):
    N, Ho, Wo, F = a["y"].shape
    a["pooled"] = np.empty((N, Ho // 2, Wo // 2, F), np.float32)
    a["argmax"] = np.empty((N, Ho // 2, Wo // 2, F), np.int64)
    a["fused"] = np.empty((N, Ho // 2, Wo // 2, F), np.float32)
    return a


def _unfused_pool(a):
    _winograd(a)
    cy.maxpool2d_forward(a["pooled"], a["argmax"], a["y"], 2, 2, 2, 2, 0, 0)


def _fused_pool(a):
    p = a["pad"]
    Ho, Wo = a["y"].shape[1:3]
    cy.conv2d_winograd_bias_act_maxpool2_forward(a["fused"], a["x"], a["w"], a["b"], a["work"], RELU, 0.0,
                                                 p, p, Ho, Wo)


def bench_pool(shape, threads, rounds, rng):
    """Median ms of (Winograd + max-pool, fused) over ``rounds`` interleaved rounds."""
    _, N, H, W, C, F, pad = shape
    a = _pool_arrays(_arrays(N, H, W, C, F, pad, threads, rng))
    with thread_limits(threads):
        a["fused"].fill(np.nan)
        _unfused_pool(a)
        _fused_pool(a)
        np.testing.assert_array_equal(a["fused"], a["pooled"])
        for _ in range(2):
            _unfused_pool(a)
            _fused_pool(a)
        unfused, fused = [], []
        for _ in range(rounds):
            unfused.append(_time(_unfused_pool, a))
            fused.append(_time(_fused_pool, a))
    return 1e3 * float(np.median(unfused)), 1e3 * float(np.median(fused))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=21, help="interleaved timing rounds per cell")
    parser.add_argument("--no-sweep", action="store_true", help="skip the input-channel sweep")
    parser.add_argument("--no-conv", action="store_true", help="skip the direct vs Winograd table")
    parser.add_argument("--no-pool", action="store_true", help="skip the fused conv + max-pool rows")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    shapes = [] if args.no_conv else SHAPES + ([] if args.no_sweep else SWEEP)
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}; "
          f"medians of {args.rounds} interleaved rounds (ms), fused bias + relu, float32")
    head = f"{'shape':14s} {'N':>4s} {'HxWxC -> F, pad':>20s}"
    for t in (1, 2):
        head += f" | {t}T direct {t}T wino  ratio"
    if shapes:
        print(head)
    for shape in shapes:
        name, N, H, W, C, F, pad = shape
        line = f"{name:14s} {N:4d} {f'{H}x{W}x{C} -> {F}, {pad}':>20s}"
        for t in (1, 2):
            d, w = bench(shape, t, args.rounds, rng)
            line += f" | {d:9.3f} {w:7.3f} {d / w:6.2f}"
        print(line, flush=True)
    if not args.no_pool:
        head = f"{'conv+maxpool2':14s} {'N':>4s} {'HxWxC -> F, pad':>20s}"
        for t in (1, 2):
            head += f" | {t}T wino+pool {t}T fused  ratio"
        print(head)
        for shape in POOL_SHAPES:
            name, N, H, W, C, F, pad = shape
            line = f"{name:14s} {N:4d} {f'{H}x{W}x{C} -> {F}, {pad}':>20s}"
            for t in (1, 2):
                u, f = bench_pool(shape, t, args.rounds, rng)
                line += f" | {u:12.3f} {f:8.3f} {u / f:6.2f}"
            print(line, flush=True)
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
