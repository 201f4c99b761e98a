"""Winograd at inference on one image and small batches, and the residual merge fused into the second conv.

Two parts, each checking its results first, then timing (medians and minima of interleaved calls):

* ``--part kernel``: the fused Winograd conv + 2x2 max-pool (Cython) on the shapes of the MNIST CNN's
  second conv (26x26x32 -> 64, valid) and the 3-channel grid's second conv at 28 and 64 px (14x14 and
  32x32, 32 -> 64, "same"), batch 1 and 2, 1 and 2 threads; results checked against the NumPy twin.
* ``--part residual``: the ResNet-8-style zoo net (``benchmarks/profile_inference.py``'s, 32x32x3,
  BatchNorm folded) at batch 1, 8 and 64, its inference forward with every block's merge fused into the
  second conv against the same network with the fusion turned off (the separate add + activation pass),
  outputs checked equal within 1e-5 first.

Usage: ``python benchmarks/bench_winograd_small.py [--part kernel|residual|both] [--rounds 15]``
"""

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

#: name -> (H, W, C, F, padding): conv input size, channels, filters, top/left (= bottom/right) padding.
KERNEL_SHAPES = {"mnist conv2": (26, 26, 32, 64, 0), "grid 28px conv2": (14, 14, 32, 64, 1),
                 "grid 64px conv2": (32, 32, 32, 64, 1)}


def _timed(call, rounds):
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return times


def kernel_part(rounds):
    from minicnn.backend import get_backend, reference
    from minicnn.backend.tuning import winograd_workspace_length
    from minicnn.threads import thread_limits

    kernel = get_backend("cython").conv2d_winograd_bias_act_maxpool2_forward
    rng = np.random.default_rng(0)
    for name, (H, W, C, F, pad) in KERNEL_SHAPES.items():
        Ho, Wo = H + 2 * pad - 2, W + 2 * pad - 2
        w = (rng.standard_normal((3, 3, C, F)) * 0.1).astype(np.float32)
        b = rng.standard_normal(F).astype(np.float32)
        work = np.empty((2, winograd_workspace_length(H, W, C, F, Ho, Wo)), np.float32)
        for N in (1, 2):
            x = rng.random((N, H, W, C), dtype=np.float32)
            y = np.full((N, Ho // 2, Wo // 2, F), np.nan, np.float32)
            want = np.empty_like(y)
            reference.conv2d_winograd_bias_act_maxpool2_forward(want, x, w, b, None, 1, 0.0, pad, pad, Ho, Wo)
            times = {}
            for _ in range(rounds):
                for n_threads in (1, 2):
                    with thread_limits(n_threads):
                        times.setdefault(n_threads, []).extend(_timed(
                            lambda: kernel(y, x, w, b, work, 1, 0.0, pad, pad, Ho, Wo), 20))
                    np.testing.assert_allclose(y, want, rtol=1e-4, atol=1e-4)
            t1, t2 = (np.median(times[n]) * 1e6 for n in (1, 2))
            print(f"{name:16s} batch {N}: 1 thread {t1:7.1f} us (min {min(times[1]) * 1e6:7.1f}), 2 threads "
                  f"{t2:7.1f} us (min {min(times[2]) * 1e6:7.1f}); 2t speed-up {t1 / t2:.2f} "
                  f"(minima {min(times[1]) / min(times[2]):.2f})", flush=True)


def residual_part(rounds):
    from profile_inference import build

    from minicnn.layers.composite import Residual
    from minicnn.threads import kernel_thread_limits

    clf, shape = build("resnet8", 32)
    net = clf.network_
    blocks = [block for block in net.walk() if isinstance(block, Residual)]
    print(f"blocks whose merge fuses: {sum(b._fused_inference() is not None for b in blocks)} of {len(blocks)}")

    def unfused(on):
        for block in blocks:
            if on:
                block._fused_inference = lambda: None
            else:
                del block._fused_inference

    for batch in (1, 8, 64):
        X = np.random.default_rng(1).random((batch, *shape), dtype=np.float32)
        for n_threads in (1, 2):
            with kernel_thread_limits(n_threads, 10**9, net.kernels):
                fused_out = net.forward(X).copy()
                unfused(True)
                plain_out = net.forward(X).copy()
                unfused(False)
                np.testing.assert_allclose(fused_out, plain_out, rtol=1e-5, atol=1e-5)
                times = {"fused": [], "unfused": []}
                for _ in range(rounds if batch < 64 else max(3, rounds // 2)):
                    times["fused"] += _timed(lambda: net.forward(X), 1)
                    unfused(True)
                    times["unfused"] += _timed(lambda: net.forward(X), 1)
                    unfused(False)
            f, u = np.median(times["fused"]), np.median(times["unfused"])
            print(f"ResNet-8 batch {batch:3d}, {n_threads} thread(s): fused {f * 1e3:7.3f} ms (min "
                  f"{min(times['fused']) * 1e3:7.3f}), unfused {u * 1e3:7.3f} ms (min {min(times['unfused']) * 1e3:7.3f})"
                  f"; unfused / fused {u / f:.3f} (minima {min(times['unfused']) / min(times['fused']):.3f})",
                  flush=True)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--part", choices=("kernel", "residual", "both"), default="both")
    p.add_argument("--rounds", type=int, default=15)
    args = p.parse_args(argv)
    print(f"load average {os.getloadavg()[0]:.2f}", flush=True)
    if args.part in ("kernel", "both"):
        kernel_part(args.rounds)
    if args.part in ("residual", "both"):
        residual_part(args.rounds)


if __name__ == "__main__":
    main()
