"""Which kernel modules gain from a higher instruction-set level? Every built level of each Cython module, side by side.

Run ``python benchmarks/bench_cpu_levels.py [--repeat 15] [--threads 1]``. For
each kernel case (the MNIST CNN's shapes at batch 64, the 3-channel first
convolution at 64 px) it imports every build of the kernel's module this
build and this CPU have (``minicnn.backend._<name>``,
``minicnn.backend._avx2._<name>``, ...: see :mod:`minicnn.backend.isa`),
checks each against the NumPy reference once, then times them *interleaved*
(call after call, so a load spike hits every level) inside
:func:`minicnn.threads.thread_limits` and prints the median microseconds per
level and each level's speed-up over ``baseline``. A module belongs in
:data:`minicnn.backend.isa.LEVEL_MODULES` at a level where its kernels run
clearly faster; build with every module at every level to measure them all.
"""

import argparse
import importlib
import importlib.util
import os
import sys
import time

import numpy as np

from minicnn.backend import isa, tuning
from minicnn.backend import reference as ref
from minicnn.backend.hash_rng import dropout_key, keep_threshold
from minicnn.threads import thread_limits


def _conv_case(rng, N, H, W, C, F, pad=0):
    x = rng.random((N, H, W, C), dtype=np.float32)
    w = (rng.standard_normal((3, 3, C, F)) / (3 * C ** 0.5)).astype(np.float32)
    b = rng.standard_normal(F).astype(np.float32)
    Ho, Wo = H + 2 * pad - 2, W + 2 * pad - 2
    return x, w, b, Ho, Wo


def cases(rng, threads):
    """``[(module, kernel, label, make_args)]``: ``make_args()`` returns fresh arguments, outputs first."""
    out = []
    N = 64
    # MNIST conv1 (1 -> 32, 28 px) and the 3-channel first conv (3 -> 32, 64 px): direct conv + pool
    for label, (n, H, C, F) in (("mnist conv1 1->32 28px", (N, 28, 1, 32)), ("rgb conv1 3->32 64px", (16, 64, 3, 32))):
        x, w, b, Ho, Wo = _conv_case(rng, n, H, H, C, F)
        out.append(("conv", "conv2d_direct_bias_act_maxpool2_forward", label,
                    lambda x=x, w=w, b=b, Ho=Ho, Wo=Wo: (np.full((x.shape[0], Ho // 2, Wo // 2, w.shape[3]), np.nan,
                                                                  np.float32), x, w, b, 1, 0.0, 1, 1, 0, 0, 1, 1)))
    # MNIST conv2 (32 -> 64, 26 px): im2col + GEMM forward, both backward passes, Winograd forward (+ pool)
    x, w, b, Ho, Wo = _conv_case(rng, N, 26, 26, 32, 64)
    col = np.empty((N, Ho * Wo, 9 * 32), np.float32)
    dy = rng.standard_normal((N, Ho, Wo, 64)).astype(np.float32)
    ref.conv2d_forward(np.empty((N, Ho, Wo, 64), np.float32), x, w, col, 1, 1, 0, 0, 1, 1)
    out.append(("conv", "conv2d_bias_act_forward", "mnist conv2 32->64",
                lambda: (np.full((N, Ho, Wo, 64), np.nan, np.float32), x, w, b, np.empty_like(col), 1, 0.0,
                         1, 1, 0, 0, 1, 1)))
    out.append(("conv", "conv2d_backward_input", "mnist conv2 32->64",
                lambda: (np.full_like(x, np.nan), np.empty_like(col), dy, w, 1, 1, 0, 0, 1, 1)))
    out.append(("conv", "conv2d_backward_weight", "mnist conv2 32->64",
                lambda: (np.full_like(w, np.nan), dy, col)))
    slots = threads
    length = tuning.winograd_workspace_length(26, 26, 32, 64, Ho, Wo)
    out.append(("winograd", "conv2d_winograd_bias_act_forward", "mnist conv2 32->64",
                lambda: (np.full((N, Ho, Wo, 64), np.nan, np.float32), x, w, b,
                         np.empty((slots, length), np.float32), 1, 0.0, 0, 0)))
    out.append(("winograd", "conv2d_winograd_bias_act_maxpool2_forward", "mnist conv2 32->64",
                lambda: (np.full((N, Ho // 2, Wo // 2, 64), np.nan, np.float32), x, w, b,
                         np.empty((slots, length), np.float32), 1, 0.0, 0, 0, Ho, Wo)))
    wlen = tuning.conv_wgrad_workspace_length(N, 26, 26, 32, 3, 3, 64, Ho, Wo, slots)
    out.append(("conv_wgrad", "conv2d_backward_weight_from_input", "mnist conv2 32->64",
                lambda: (np.full_like(w, np.nan), dy, x, np.empty(wlen, np.float32), 1, 1, 0, 0, 1, 1)))
    # pooling, bias + activation on the conv2 output
    y = rng.standard_normal((N, 24, 24, 64)).astype(np.float32)
    yp = np.empty((N, 12, 12, 64), np.float32)
    am = np.empty(yp.shape, np.int64)
    ref.maxpool2d_forward(yp, am, y, 2, 2, 2, 2, 0, 0)
    out.append(("pool", "maxpool2d_forward", "mnist 24x24x64",
                lambda: (np.full_like(yp, np.nan), np.empty_like(am), y, 2, 2, 2, 2, 0, 0)))
    out.append(("pool", "maxpool2d_backward", "mnist 24x24x64", lambda: (np.full_like(y, np.nan), yp, am)))
    z, bz = y.reshape(-1, 64), b
    out.append(("bias_act", "bias_act_forward", "mnist conv2 out",
                lambda: (np.full_like(z, np.nan), z, bz, 1, 0.0)))
    out.append(("bias_act", "bias_act_backward", "mnist conv2 out",
                lambda: (np.full_like(z, np.nan), np.full_like(bz, np.nan), z, np.abs(z), 1, 0.0)))
    # dropout on the flattened features, Adam on the MNIST CNN's parameters, dense layer, loss, augmentation
    key, thr = dropout_key(1, 2, 3), keep_threshold(0.25)
    flat = rng.standard_normal(N * 9216).astype(np.float32)
    out.append(("dropout", "dropout_forward", f"{N}x9216",
                lambda: (np.full_like(flat, np.nan), flat, *key, thr, 4 / 3)))
    sx = y
    out.append(("dropout", "spatial_dropout_forward", "mnist 24x24x64",
                lambda: (np.full_like(sx, np.nan).reshape(N, -1, 64), sx.reshape(N, -1, 64), *key, thr, 4 / 3)))
    p = rng.standard_normal(1_199_882).astype(np.float32)
    out.append(("optim", "adam_update", "1.2M params",
                lambda: (p.copy(), np.zeros_like(p), np.zeros_like(p), p, 0.01, 0.9, 0.999, 0.001, 1e-8, 1.0)))
    a = flat.reshape(N, 9216)
    wd = (rng.standard_normal((9216, 128)) / 96).astype(np.float32)
    bd = rng.standard_normal(128).astype(np.float32)
    out.append(("gemm", "dense_bias_act_forward", f"{N}x9216x128",
                lambda: (np.full((N, 128), np.nan, np.float32), a, wd, bd, 1, 0.0)))
    logits = rng.standard_normal((N, 10)).astype(np.float32)
    labels = (np.arange(N) % 10).astype(np.int64)
    out.append(("loss", "softmax_xent", f"{N}x10", lambda: (np.full_like(logits, np.nan), logits, labels)))
    images = rng.random((256, 28, 28, 1), dtype=np.float32)
    index = rng.permutation(256)[:N].astype(np.int64)
    out.append(("augment", "augment_batch", f"{N} 28px",
                lambda: (np.full((N, 28, 28, 1), np.nan, np.float32), images, index, 5, 6, 2, 2, 1)))
    return out


def builds(module, top):
    """``{level: module object}`` for every build of kernel module ``module`` at a level up to ``top``."""
    found = {}
    for level in isa.LEVELS[:isa.LEVELS.index(top) + 1]:
        name = isa.module_name(module, level)
        if importlib.util.find_spec(name) is not None:
            found[level] = importlib.import_module(name)
    return found


def _agree(kernel, got, want):
    for g, w in zip(got, want):
        if isinstance(w, np.ndarray) and w.dtype.kind == "f":
            np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-4 * max(1.0, float(np.abs(w).max(initial=0))),
                                       err_msg=kernel)
            break   # the first float array is the output


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--only", default="", help="comma list of kernel modules to time (default: all)")
    args = parser.parse_args(argv)
    top = isa.choose_level()
    print(f"CPU level {top}; load average {os.getloadavg()}", flush=True)
    only = set(filter(None, args.only.split(",")))
    rng = np.random.default_rng(0)
    rows = []
    for module, kernel, label, make in cases(rng, args.threads):
        if only and module not in only:
            continue
        levels = builds(module, top)
        want = make()
        getattr(ref, kernel)(*want)
        prepared = {}
        for level, mod in levels.items():
            prepared[level] = make()
            with thread_limits(args.threads):
                getattr(mod, kernel)(*prepared[level])
            _agree(f"{kernel} at {level}", prepared[level], want)
        times = {level: [] for level in levels}
        with thread_limits(args.threads):
            for _ in range(args.repeat):
                for level, mod in levels.items():
                    fn, a = getattr(mod, kernel), prepared[level]
                    start = time.perf_counter()
                    fn(*a)
                    times[level].append(time.perf_counter() - start)
        med = {level: 1e6 * float(np.median(t)) for level, t in times.items()}
        rows.append((module, kernel, label, med))
        cells = "  ".join(f"{level} {us:9.1f} us ({med['baseline'] / us:4.2f}x)" for level, us in med.items())
        print(f"{module:10s} {kernel:42s} {label:24s} {cells}", flush=True)
    print(f"load average {os.getloadavg()}")
    return rows


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
