"""Does a training-step-like mix of BLAS and OpenMP work hit the thread cliff?

Run ``python benchmarks/bench_threads.py``. Each scenario runs in a fresh
process (the OpenMP wait policy is read once, when libgomp loads):

* ``default``: no limits (OpenMP 2 threads, OpenBLAS 2 threads);
* ``passive``: same with ``OMP_WAIT_POLICY=passive`` (workers sleep at once);
* ``thread_limits``: inside :func:`minicnn.threads.thread_limits` (OpenMP owns
  the cores, BLAS one thread) -- the design used by minicnn.

For each it prints medians of: a NumPy sgemm loop before any OpenMP region,
the same sgemm right after an OpenMP region (Cython dropout), and a
training step (conv forward + max-pool + dropout, then their backward) on the
MNIST conv shape. Correctness of the step's output is checked first against
the plain-NumPy reference. The machine is shared: numbers are medians of
repeats and still vary from run to run.
"""

import json
import os
import subprocess
import sys
import time

import numpy as np

SCENARIOS = {
    "default": {},
    "passive": {"OMP_WAIT_POLICY": "passive"},
    "thread_limits": {},
}
GEMM_N = 512
REPEATS = 15


def _median_ms(fn, repeats=REPEATS, before=None):
    fn()
    times = []
    for _ in range(repeats):
        if before is not None:
            before()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(times))


def _step_arrays(rng):
    """Arrays of the MNIST conv layer 32->64 3x3 on 26x26, batch 128 (+ pool 2x2)."""
    N, H, W, C, F = 128, 26, 26, 32, 64
    x = rng.standard_normal((N, H, W, C), dtype=np.float32)
    w = rng.standard_normal((3, 3, C, F), dtype=np.float32) * np.float32(0.06)
    a = dict(x=x, w=w, y=np.empty((N, 24, 24, F), np.float32), col=np.empty((N, 576, 288), np.float32),
             p=np.empty((N, 12, 12, F), np.float32), am=np.empty((N, 12, 12, F), np.int64),
             d=np.empty(N * 12 * 12 * F, np.float32), dy=np.empty((N, 24, 24, F), np.float32),
             dx=np.empty_like(x), dcol=np.empty((N, 576, 288), np.float32), dw=np.empty_like(w))
    return a


def _step(k, a):
    """conv forward, max-pool, dropout, then dropout/pool/conv backward."""
    k.conv2d_forward(a["y"], a["x"], a["w"], a["col"], 1, 1, 0, 0, 1, 1)
    k.maxpool2d_forward(a["p"], a["am"], a["y"], 2, 2, 2, 2, 0, 0)
    k.dropout_forward(a["d"], a["p"].reshape(-1), 11, 22, 2**31, 2.0)
    k.dropout_backward(a["d"], a["d"], 11, 22, 2**31, 2.0)
    k.maxpool2d_backward(a["dy"], a["d"].reshape(a["p"].shape), a["am"])
    k.conv2d_backward_input(a["dx"], a["dcol"], a["dy"], a["w"], 1, 1, 0, 0, 1, 1)
    k.conv2d_backward_weight(a["dw"], a["dy"], a["col"])


def _check_step(k, a):
    from minicnn.backend import reference

    ref = {name: v.copy() for name, v in a.items()}
    _step(reference, ref)
    _step(k, a)
    for name in ("y", "p", "d", "dx", "dw"):
        np.testing.assert_allclose(a[name], ref[name], rtol=1e-4, atol=1e-3, err_msg=name)


def run_scenario(name):
    """Measure one scenario in this process; return a dict of medians (ms)."""
    from contextlib import nullcontext

    from minicnn.backend import cython_kernels as k
    from minicnn.threads import thread_limits

    rng = np.random.default_rng(0)
    g = rng.standard_normal((GEMM_N, GEMM_N), dtype=np.float32)
    big = rng.standard_normal(1 << 20, dtype=np.float32)
    out = np.empty_like(big)
    a = _step_arrays(rng)

    def gemm():
        g @ g

    def omp_region():
        k.dropout_forward(out, big, 1, 2, 2**31, 2.0)

    result = {"sgemm_before_omp": _median_ms(gemm)}
    ctx = thread_limits(2) if name == "thread_limits" else nullcontext()
    with ctx:
        result["sgemm_after_omp"] = _median_ms(gemm, before=omp_region)
        _check_step(k, a)
        result["train_step"] = _median_ms(lambda: _step(k, a), repeats=7)
    return result


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--scenario":
        print(json.dumps(run_scenario(sys.argv[2])))
        return
    flop = 2 * GEMM_N**3
    print(f"sgemm {GEMM_N}^3 ({flop / 1e9:.2f} GFLOP); medians of {REPEATS} (ms); step = MNIST conv layer")
    for name, env in SCENARIOS.items():
        proc = subprocess.run([sys.executable, __file__, "--scenario", name], env={**os.environ, **env},
                              capture_output=True, text=True, check=True)
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        print(f"{name:14s} sgemm before OpenMP {r['sgemm_before_omp']:8.2f} ms | "
              f"after OpenMP {r['sgemm_after_omp']:8.2f} ms | train step {r['train_step']:8.1f} ms")


if __name__ == "__main__":
    main()
