"""Conv training forward + weight gradient: im2col path vs Winograd + weight gradient from the input.

Run ``python benchmarks/bench_conv_wgrad.py [--rounds R]``. Per shape, float32,
fused bias + relu, inside :func:`minicnn.threads.thread_limits` with 1 and 2
threads, in interleaved rounds (a, b, a, b, ...), medians in ms:

* (a) existing path: ``conv2d_bias_act_forward`` (im2col into the ``(N, Ho*Wo,
  9*C)`` ``col``) then ``conv2d_backward_weight(dw, dy, col)``;
* (b) new path: ``conv2d_winograd_bias_act_forward`` where ``C >= 8`` (the
  direct forward into ``col`` otherwise) then
  ``conv2d_backward_weight_from_input(dw, dy, x, work)``, which rebuilds the
  columns per block into per-thread slots (``work`` sized for the thread
  count, kept between calls as a layer would);
* (c) weight gradient by Winograd F(2x2, 3x3), ``conv2d_winograd_backward_weight(dw, dy, x,
  work)``, where ``C >= 8`` (what ``Conv2D`` runs after a Winograd forward).

Every path's outputs are checked against the others first. The column "ratio"
is (a) / (b) of forward + weight gradient (> 1: the new path is faster), "b/c" the
weight gradient of (b) over that of (c), "c min" (c)'s fastest call.
Shapes: the MNIST CNN's two convs, the digits conv and the 3x3 stride-1 convs of
the ResNet-8 style zoo net (batch 64, "same"). The machine may be shared: the
load average is printed before and after; compare medians only from quiet runs.
"""

import argparse
import os
import time

import numpy as np

from minicnn.backend import cython_kernels as cy
from minicnn.threads import thread_limits

#        name            N   H   W   C   F  pad
SHAPES = [("MNIST conv2", 128, 26, 26, 32, 64, 0),
          ("MNIST conv1", 128, 28, 28, 1, 32, 0),
          ("digits conv", 64, 8, 8, 1, 16, 1),
          ("res16", 64, 32, 32, 16, 16, 1),
          ("res32", 64, 16, 16, 32, 32, 1),
          ("res64", 64, 8, 8, 64, 64, 1)]
RELU = 1
WINOGRAD_MIN_C = 8


def _arrays(N, H, W, C, F, pad, threads, rng):
    Ho, Wo = H + 2 * pad - 2, W + 2 * pad - 2
    a = dict(pad=pad, winograd=C >= WINOGRAD_MIN_C,
             x=rng.standard_normal((N, H, W, C), dtype=np.float32),
             w=rng.standard_normal((3, 3, C, F), dtype=np.float32) / np.float32(np.sqrt(9 * C)),
             b=rng.standard_normal(F, dtype=np.float32) * np.float32(0.1),
             dy=rng.standard_normal((N, Ho, Wo, F), dtype=np.float32),
             y=np.empty((N, Ho, Wo, F), np.float32), dw=np.empty((3, 3, C, F), np.float32),
             col=np.empty((N, Ho * Wo, 9 * C), np.float32),
             wgrad_work=np.empty(cy.conv_wgrad_workspace_length(N, H, W, C, 3, 3, F, Ho, Wo, threads), np.float32),
             wino_wgrad_work=np.empty(cy.conv_winograd_wgrad_workspace_length(N, C, F, Ho, Wo, threads), np.float32))
    # "col" also serves path (b)'s direct forward where C < 8
    a["wino_work"] = np.empty((threads, cy.winograd_workspace_length(H, W, C, F, Ho, Wo)), np.float32)
    return a


def _forward_a(a):
    p = a["pad"]
    cy.conv2d_bias_act_forward(a["y"], a["x"], a["w"], a["b"], a["col"], RELU, 0.0, 1, 1, p, p, 1, 1)


def _wgrad_a(a):
    cy.conv2d_backward_weight(a["dw"], a["dy"], a["col"])


def _forward_b(a):
    p = a["pad"]
    if a["winograd"]:
        cy.conv2d_winograd_bias_act_forward(a["y"], a["x"], a["w"], a["b"], a["wino_work"], RELU, 0.0, p, p)
    else:
        _forward_a(a)


def _wgrad_b(a):
    p = a["pad"]
    cy.conv2d_backward_weight_from_input(a["dw"], a["dy"], a["x"], a["wgrad_work"], 1, 1, p, p, 1, 1)


def _wgrad_c(a):
    p = a["pad"]
    if a["winograd"]:
        cy.conv2d_winograd_backward_weight(a["dw"], a["dy"], a["x"], a["wino_wgrad_work"], p, p)
    else:
        _wgrad_b(a)


def _check(a):
    _forward_a(a)
    _wgrad_a(a)
    y, dw = a["y"].copy(), a["dw"].copy()
    a["y"].fill(np.nan)
    a["dw"].fill(np.nan)
    _forward_b(a)
    _wgrad_b(a)
    got = [(a["y"].copy(), y), (a["dw"].copy(), dw)]
    a["dw"].fill(np.nan)
    _wgrad_c(a)
    for got, want in got + [(a["dw"], dw)]:
        scale = max(float(np.abs(want).max()), 1.0)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * scale)


def _time(fn, a):
    t0 = time.perf_counter()
    fn(a)
    return time.perf_counter() - t0


def bench(shape, threads, rounds, rng):
    """Median ms of (forward a, wgrad a, sum a, forward b, wgrad b, sum b, wgrad c), and wgrad c's minimum,
    over interleaved rounds."""
    _, N, H, W, C, F, pad = shape
    a = _arrays(N, H, W, C, F, pad, threads, rng)
    steps = (_forward_a, _wgrad_a, _forward_b, _wgrad_b, _wgrad_c)
    with thread_limits(threads):
        _check(a)
        for _ in range(2):   # warm-up: first touch of every buffer
            for step in steps:
                step(a)
        times = np.empty((rounds, len(steps)))
        for r in range(rounds):
            for i, step in enumerate(steps):
                times[r, i] = _time(step, a)
    times *= 1e3
    fa, ga, fb, gb, gc = np.median(times, axis=0)
    return (fa, ga, float(np.median(times[:, 0] + times[:, 1])), fb, gb, float(np.median(times[:, 2] + times[:, 3])),
            gc, float(times[:, 4].min()))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=21, help="interleaved timing rounds per cell")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}; "
          f"medians of {args.rounds} interleaved rounds (ms), float32, fused bias + relu")
    print("(a) conv2d_bias_act_forward (writes col) + conv2d_backward_weight(dw, dy, col)")
    print("(b) conv2d_winograd_bias_act_forward (C >= 8; else the direct forward) + "
          "conv2d_backward_weight_from_input")
    print("(c) conv2d_winograd_backward_weight (C >= 8; else b's)")
    print(f"{'shape':12s} {'N':>4s} {'HxWxC -> F, pad':>18s} {'T':>2s} | {'a fwd':>7s} {'a wgrad':>7s} {'a sum':>7s} | "
          f"{'b fwd':>7s} {'b wgrad':>7s} {'b sum':>7s} | {'ratio':>5s} | {'c wgrad':>7s} {'c min':>7s} {'b/c':>5s}")
    for shape in SHAPES:
        name, N, H, W, C, F, pad = shape
        for t in (1, 2):
            fa, ga, sa, fb, gb, sb, gc, gc_min = bench(shape, t, args.rounds, rng)
            print(f"{name:12s} {N:4d} {f'{H}x{W}x{C} -> {F}, {pad}':>18s} {t:2d} | {fa:7.3f} {ga:7.3f} {sa:7.3f} | "
                  f"{fb:7.3f} {gb:7.3f} {sb:7.3f} | {sa / sb:5.2f} | {gc:7.3f} {gc_min:7.3f} {gb / gc:5.2f}",
                  flush=True)
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
