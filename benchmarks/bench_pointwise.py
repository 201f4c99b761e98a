"""The pointwise (1x1) conv's inference kernel against the dense product it replaced, 1 thread (or --threads).

``python benchmarks/bench_pointwise.py [--rounds 41] [--batch 64] [--separable [--minima]] [--threads 1]``: the MobileNet-style zoo net's five 1x1 convs
(``pixels x C -> F``: 16 -> 32 on 16x16, 32 -> 64 on 8x8, 64 -> 64 on 8x8, 64 -> 128 on 4x4, 128 -> 128 on 4x4),
float32, relu. The compiled ``pointwise_conv2d_bias_act_forward`` and ``dense_bias_act_forward`` (SciPy's
OpenBLAS sgemm, then the epilogue) are checked against the NumPy reference, then timed in interleaved rounds;
medians in ms, the ratio dense / pointwise (above 1: the pointwise kernel ahead), and the pointwise kernel's
multiply-adds per second. The figures in ``kernels/pointwise.pyx`` came from this comparison.

``--separable``: instead, the zoo net's five depthwise-separable blocks (3x3 depthwise, stride 1 or 2, "same", relu,
then the 1x1 conv, relu) at inference: the fused ``separable_conv2d_bias_act_forward`` against the depthwise kernel
followed by the pointwise kernel or by the dense product (the routes ``minicnn.layers.separable`` chooses between),
each checked against the NumPy reference of the two steps first; medians in ms of interleaved rounds, and the best
route's time over the fused kernel's.
"""

import argparse
import time

import numpy as np

from minicnn.backend import cython_kernels as cy
from minicnn.backend import reference as ref
from minicnn.threads import thread_limits

RELU = 1
#: (map side, input channels, output channels) of the zoo net's pointwise convs at 32x32 input.
SHAPES = ((16, 16, 32), (8, 32, 64), (8, 64, 64), (4, 64, 128), (4, 128, 128))
#: (input side, channels, output channels, stride) of the zoo net's separable blocks (their 1x1 convs: SHAPES).
BLOCKS = ((16, 16, 32, 1), (16, 32, 64, 2), (8, 64, 64, 1), (8, 64, 128, 2), (4, 128, 128, 1))


def _timed(call):
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def _interleaved(calls, rounds, threads, statistic=np.median):
    """``statistic`` (default the median) in ms of ``rounds`` interleaved rounds of ``calls`` (name -> callable) on
    ``threads`` threads, after one warm call."""
    times = {name: [] for name in calls}
    with thread_limits(threads):
        for call in calls.values():
            call()
        for _ in range(rounds):
            for name, call in calls.items():
                times[name].append(_timed(call))
    return {name: 1e3 * float(statistic(v)) for name, v in times.items()}


def separable(batch, rounds, threads, statistic, rng):
    """The separable blocks' table (see the module)."""
    print(f"batch {batch}, {threads} thread(s), {statistic.__name__}s of {rounds} interleaved rounds (ms); separable "
          f"blocks, relu + relu")
    print(f"{'block':>24} {'depthwise':>9} {'fused':>7} {'dw+pw':>7} {'dw+dense':>8} {'best 2/fused':>12}")
    for side, C, F, stride in BLOCKS:
        Ho, pad = side // stride, 1 if stride == 1 else 0   # "same" on an even side: (1, 1) at 1, (0, 1) at 2
        geometry = (stride, stride, pad, pad, 1, 1)
        x = rng.standard_normal((batch, side, side, C)).astype(np.float32)
        wd, bd = rng.standard_normal((3, 3, C)).astype(np.float32), rng.standard_normal(C).astype(np.float32)
        wp, bp = (0.1 * rng.standard_normal((C, F))).astype(np.float32), rng.standard_normal(F).astype(np.float32)
        z = np.empty((batch, Ho, Ho, C), np.float32)
        ref.depthwise_conv2d_bias_act_forward(z, x, wd, bd, RELU, 0.0, *geometry)
        want = np.empty((batch * Ho * Ho, F), np.float32)
        ref.pointwise_conv2d_bias_act_forward(want, z.reshape(-1, C), wp, bp, RELU, 0.0)
        mid = np.full_like(z, np.nan)
        ys = {name: np.full((batch * Ho * Ho, F), np.nan, np.float32) for name in ("fused", "dw+pw", "dw+dense")}
        calls = {"depthwise": lambda: cy.depthwise_conv2d_bias_act_forward(mid, x, wd, bd, RELU, 0.0, *geometry),
                 "fused": lambda: cy.separable_conv2d_bias_act_forward(ys["fused"].reshape(batch, Ho, Ho, F), x, wd,
                                                                       bd, RELU, 0.0, wp, bp, RELU, 0.0, *geometry),
                 "dw+pw": lambda: (calls["depthwise"](), cy.pointwise_conv2d_bias_act_forward(
                     ys["dw+pw"], mid.reshape(-1, C), wp, bp, RELU, 0.0)),
                 "dw+dense": lambda: (calls["depthwise"](), cy.dense_bias_act_forward(
                     ys["dw+dense"], mid.reshape(-1, C), wp, bp, RELU, 0.0))}
        with thread_limits(1):
            for name, y in ys.items():
                calls[name]()
                np.testing.assert_allclose(y, want, rtol=1e-4, atol=1e-4 * float(np.abs(want).max()), err_msg=name)
        ms = _interleaved(calls, rounds, threads, statistic)
        best = min(ms["dw+pw"], ms["dw+dense"])
        print(f"{f'{side}x{side}x{C} -> {F} s{stride}':>24} {ms['depthwise']:9.3f} {ms['fused']:7.3f} "
              f"{ms['dw+pw']:7.3f} {ms['dw+dense']:8.3f} {best / ms['fused']:12.2f}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=41)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--separable", action="store_true", help="time the separable blocks' routes instead")
    p.add_argument("--threads", type=int, default=1, help="threads of every kernel (default 1)")
    p.add_argument("--minima", action="store_true",
                   help="--separable: minima instead of medians (on a shared machine, the least disturbed call)")
    args = p.parse_args(argv)
    if "pointwise_conv2d_bias_act_forward" not in cy.EXPORTS.get("pointwise", ()):
        raise SystemExit("the compiled pointwise module is not built")
    rng = np.random.default_rng(0)
    if args.separable:
        separable(args.batch, args.rounds, args.threads, np.min if args.minima else np.median, rng)
        return
    print(f"batch {args.batch}, {args.threads} thread(s), medians of {args.rounds} interleaved rounds (ms)")
    print(f"{'shape':>22} {'pointwise':>10} {'dense':>8} {'dense/pw':>9} {'GMAC/s':>7}")
    for side, C, F in SHAPES:
        P = args.batch * side * side
        x = rng.standard_normal((P, C)).astype(np.float32)
        w = rng.standard_normal((C, F)).astype(np.float32)
        b = rng.standard_normal(F).astype(np.float32)
        want = np.empty((P, F), np.float32)
        ref.pointwise_conv2d_bias_act_forward(want, x, w, b, RELU, 0.0)
        ys = {name: np.full((P, F), np.nan, np.float32) for name in ("pointwise", "dense")}
        calls = {"pointwise": lambda: cy.pointwise_conv2d_bias_act_forward(ys["pointwise"], x, w, b, RELU, 0.0),
                 "dense": lambda: cy.dense_bias_act_forward(ys["dense"], x, w, b, RELU, 0.0)}
        with thread_limits(1):
            for name, call in calls.items():
                call()
                np.testing.assert_allclose(ys[name], want, rtol=1e-4, atol=1e-4 * float(np.abs(want).max()))
        ms = _interleaved(calls, args.rounds, args.threads)
        pw, dense = ms["pointwise"], ms["dense"]
        print(f"{f'{C}->{F} on {side}x{side}':>22} {pw:10.3f} {dense:8.3f} {dense / pw:9.2f} "
              f"{P * C * F / pw / 1e6:7.1f}")


if __name__ == "__main__":
    main()
