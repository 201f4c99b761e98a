"""The register-tile Winograd forward (``conv2d_winograd16_*``) against the Winograd + 16 products it replaces.

Both kernels of the compiled backend on the same input and transformed weights, checked equal first, then timed
interleaved in one process: minimum / median ms of ``--rounds`` calls, plain and with the residual add, per shape,
batch and thread count. The route in :mod:`minicnn.layers.conv` (``WINOGRAD16_SHAPES``) holds the shapes where the
register tiles were ahead at batch 8 and 64 on 1 and 2 threads.

Usage: ``python benchmarks/bench_winograd16.py [--rounds 15] [--batches 64 8] [--threads 1 2]``
"""

import argparse
import os
import time

import numpy as np

from minicnn.backend import cython_kernels as ck
from minicnn.backend.tuning import winograd_workspace_length
from minicnn.threads import thread_limits

#: (map size, input channels, filters): ResNet-8's convs of each stage (3x3, stride 1, padding 1)
SHAPES = ((32, 16, 16), (16, 32, 32), (8, 64, 64))


def _ms(times):
    return f"{1e3 * min(times):7.3f} / {1e3 * float(np.median(times)):7.3f}"


def run(N, H, C, F, n_threads, rounds, rng):
    x = rng.standard_normal((N, H, H, C)).astype(np.float32)
    w = (rng.standard_normal((3, 3, C, F)) / np.sqrt(9 * C)).astype(np.float32)
    b = rng.standard_normal(F).astype(np.float32)
    s = rng.standard_normal((N, H, H, F)).astype(np.float32)
    u = np.empty((4, 4, C, F), np.float32)
    ck.winograd_weight_transform(u, w)
    y0, y1 = np.full((2, N, H, H, F), np.nan, np.float32)
    work = np.empty((n_threads, winograd_workspace_length(H, H, C, F, H, H)), np.float32)
    calls = {
        "winograd": lambda: ck.conv2d_winograd_bias_act_forward(y0, x, u, b, work, 1, 0.0, 1, 1),
        "registers": lambda: ck.conv2d_winograd16_bias_act_forward(y1, x, u, b, 1, 0.0, 1, 1),
        "winograd +add": lambda: ck.conv2d_winograd_bias_add_act_forward(y0, x, u, b, s, work, 1, 0.0, 1, 1),
        "registers +add": lambda: ck.conv2d_winograd16_bias_add_act_forward(y1, x, u, b, s, 1, 0.0, 1, 1),
    }
    times = {name: [] for name in calls}
    with thread_limits(n_threads):
        for plain, fused in (("winograd", "registers"), ("winograd +add", "registers +add")):
            calls[plain](), calls[fused]()
            np.testing.assert_allclose(y1, y0, atol=1e-4, err_msg=f"{fused} disagrees")
        for _ in range(rounds):
            for name, call in calls.items():
                start = time.perf_counter()
                call()
                times[name].append(time.perf_counter() - start)
    print(f"{N:5d} {H:3d} {C:3d} {F:3d} {n_threads:3d}  " + "  ".join(_ms(times[k]) for k in calls), flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--batches", type=int, nargs="+", default=[64, 8])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args(argv)
    print(f"{time.strftime('%Y-%m-%d %H:%M')}, load {os.getloadavg()[0]:.1f}, winograd16 built at "
          f"{ck.MODULE_LEVELS.get('winograd16')}; min / median ms")
    print(f"{'N':>5s} {'H':>3s} {'C':>3s} {'F':>3s} {'thr':>3s}  " + "  ".join(
        f"{k:>17s}" for k in ("winograd", "registers", "winograd +add", "registers +add")))
    rng = np.random.default_rng(0)
    for N in args.batches:
        for n in args.threads:
            for H, C, F in SHAPES:
                run(N, H, C, F, n, args.rounds, rng)


if __name__ == "__main__":
    main()
