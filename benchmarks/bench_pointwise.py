"""The pointwise (1x1) conv's inference kernel against the dense product it replaced, 1 thread.

``python benchmarks/bench_pointwise.py [--rounds 41] [--batch 64]``: the MobileNet-style zoo net's five 1x1 convs
(``pixels x C -> F``: 16 -> 32 on 16x16, 32 -> 64 on 8x8, 64 -> 64 on 8x8, 64 -> 128 on 4x4, 128 -> 128 on 4x4),
float32, relu. The compiled ``pointwise_conv2d_bias_act_forward`` and ``dense_bias_act_forward`` (SciPy's
OpenBLAS sgemm, then the epilogue) are checked against the NumPy reference, then timed in interleaved rounds;
medians in ms, the ratio dense / pointwise (above 1: the pointwise kernel ahead), and the pointwise kernel's
multiply-adds per second. The figures in ``kernels/pointwise.pyx`` came from this comparison.
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


def _timed(call):
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=41)
    p.add_argument("--batch", type=int, default=64)
    args = p.parse_args(argv)
    if "pointwise_conv2d_bias_act_forward" not in cy.EXPORTS.get("pointwise", ()):
        raise SystemExit("the compiled pointwise module is not built")
    rng = np.random.default_rng(0)
    print(f"batch {args.batch}, 1 thread, medians of {args.rounds} interleaved rounds (ms)")
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
        times = {name: [] for name in calls}
        with thread_limits(1):
            for name, call in calls.items():
                call()
                np.testing.assert_allclose(ys[name], want, rtol=1e-4, atol=1e-4 * float(np.abs(want).max()))
            for _ in range(args.rounds):
                for name, call in calls.items():
                    times[name].append(_timed(call))
        pw, dense = (1e3 * float(np.median(times[name])) for name in ("pointwise", "dense"))
        print(f"{f'{C}->{F} on {side}x{side}':>22} {pw:10.3f} {dense:8.3f} {dense / pw:9.2f} "
              f"{P * C * F / pw / 1e6:7.1f}")


if __name__ == "__main__":
    main()
