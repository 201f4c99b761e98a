"""Kernel benchmarks: verify against the NumPy reference, then time (``pytest benchmarks/``).

Shapes: the MNIST model's second conv (32->64, 3x3 valid, 26x26, batch 128),
the digits model's conv (1->16, 3x3 same, 8x8, batch 64), and dropout on
2.8M float32 elements. Each result carries its throughput in
``benchmark.extra_info`` (GFLOP/s with 2*N*Ho*Wo*K*F flops per GEMM; ns per
element and GB/s moved for dropout) next to references measured in the same
run: NumPy's sgemm on the same GEMM shape and a memcpy of the same bytes.
torch (when importable) is timed on the same problems as an outside yardstick.
Conv runs once with the default BLAS threads and once with BLAS limited to one
thread: OpenMP threads (Numba, Cython) and OpenBLAS threads interfere (see
``minicnn/threads.py`` and ``minicnn/backend/numba_kernels/``).
"""

import contextlib
import importlib
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from minicnn.backend import reference as ref
from minicnn.backend.hash_rng import dropout_key, keep_threshold

threadpoolctl = pytest.importorskip("threadpoolctl")

REPO = Path(__file__).resolve().parents[1]
BACKENDS = ("numpy", "numba", "cython")
CONV_SHAPES = {
    # N, H, W, C, F, KH, KW, pad
    "mnist_conv2": (128, 26, 26, 32, 64, 3, 3, 0),
    "digits_conv1": (64, 8, 8, 1, 16, 3, 3, 1),
}
DROPOUT_SIZE = 2_800_000
DROPOUT_RATE = 0.5


def _module(backend, name):
    module = {"numpy": "minicnn.backend.reference", "numba": "minicnn.backend.numba_kernels",
              "cython": "minicnn.backend.cython_kernels"}[backend]
    try:
        func = getattr(importlib.import_module(module), name, None)
    except ImportError:
        func = None
    if func is None:
        pytest.skip(f"backend {backend!r} does not provide {name}")
    return func


def _median(func, repeat=7):
    func()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def _context():
    return {"loadavg_1min": os.getloadavg()[0],
            "blas": [(i["internal_api"], i["num_threads"]) for i in threadpoolctl.threadpool_info()]}


# ----------------------------------------------------------------------------- conv
class ConvProblem:
    """Inputs, workspaces and reference outputs of one conv layer (float32)."""

    def __init__(self, N, H, W, C, F, KH, KW, pad):
        rng = np.random.default_rng(0)
        self.Ho, self.Wo = H + 2 * pad - KH + 1, W + 2 * pad - KW + 1
        self.geom = (1, 1, pad, pad, 1, 1)
        self.x = rng.standard_normal((N, H, W, C), dtype=np.float32)
        self.w = rng.standard_normal((KH, KW, C, F), dtype=np.float32)
        self.dy = rng.standard_normal((N, self.Ho, self.Wo, F), dtype=np.float32)
        self.y = np.empty_like(self.dy)
        self.col = np.empty((N, self.Ho * self.Wo, KH * KW * C), np.float32)
        self.dx, self.dcol, self.dw = np.empty_like(self.x), np.empty_like(self.col), np.empty_like(self.w)
        self.flops_per_gemm = 2 * N * self.Ho * self.Wo * KH * KW * C * F
        self.want = self.run(ref.conv2d_forward, ref.conv2d_backward_input, ref.conv2d_backward_weight)

    def run(self, forward, backward_input, backward_weight):
        forward(self.y, self.x, self.w, self.col, *self.geom)
        backward_input(self.dx, self.dcol, self.dy, self.w, *self.geom)
        backward_weight(self.dw, self.dy, self.col)
        return [a.copy() for a in (self.y, self.dx, self.dw)]

    def sgemm_gflops(self):
        """NumPy sgemm on the forward GEMM shape, measured now (the BLAS yardstick)."""
        a = np.ascontiguousarray(self.col.reshape(-1, self.col.shape[2]))
        b = np.ascontiguousarray(self.w.reshape(-1, self.w.shape[3]))
        out = np.empty((a.shape[0], b.shape[1]), np.float32)
        return self.flops_per_gemm / _median(lambda: np.dot(a, b, out)) / 1e9


@pytest.fixture(scope="module", params=sorted(CONV_SHAPES))
def conv_problem(request):
    return request.param, ConvProblem(*CONV_SHAPES[request.param])


@pytest.mark.parametrize("threads", ["knob1", "knob2", "unmanaged"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_conv_fwd_bwd(benchmark, conv_problem, backend, threads):
    """``knobN``: inside ``minicnn.threads.thread_limits(N)`` (what fit/predict run: N kernel
    threads, one BLAS thread); ``unmanaged``: library defaults (2 OpenMP/Numba, 2 BLAS threads).
    The sgemm yardstick is measured at the same number of threads, with BLAS owning them."""
    from minicnn.threads import thread_limits

    name, problem = conv_problem
    kernels = [_module(backend, k) for k in
               ("conv2d_forward", "conv2d_backward_input", "conv2d_backward_weight")]
    n = int(threads[-1]) if threads.startswith("knob") else 2
    with threadpoolctl.threadpool_limits(n, user_api="blas"):
        sgemm = problem.sgemm_gflops()
    context = thread_limits(n) if threads.startswith("knob") else contextlib.nullcontext()
    with context:
        for got, want in zip(problem.run(*kernels), problem.want):
            np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-4 * np.abs(want).max())
        parts = {part: _median(lambda k=k, a=a: k(*a)) for part, k, a in (
            ("fwd", kernels[0], (problem.y, problem.x, problem.w, problem.col, *problem.geom)),
            ("bwd_input", kernels[1], (problem.dx, problem.dcol, problem.dy, problem.w, *problem.geom)),
            ("bwd_weight", kernels[2], (problem.dw, problem.dy, problem.col)))}
        benchmark(problem.run, *kernels)
    seconds = benchmark.stats.stats.median
    gflops = 3 * problem.flops_per_gemm / seconds / 1e9
    benchmark.extra_info.update(
        shape=name, threads=n, gflops_fwd_bwd=gflops,
        **{f"gflops_{part}": problem.flops_per_gemm / t / 1e9 for part, t in parts.items()},
        numpy_sgemm_gflops=sgemm, share_of_sgemm_peak=gflops / sgemm, **_context())


@pytest.mark.parametrize("part", ["fwd", "fwd_bwd"])
def test_conv_torch(benchmark, conv_problem, part):
    torch = pytest.importorskip("torch")
    name, problem = conv_problem
    x = torch.from_numpy(problem.x.transpose(0, 3, 1, 2).copy()).requires_grad_(part == "fwd_bwd")
    w = torch.from_numpy(problem.w.transpose(3, 2, 0, 1).copy()).requires_grad_(part == "fwd_bwd")
    dy = torch.from_numpy(problem.dy.transpose(0, 3, 1, 2).copy())
    pad = problem.geom[2]
    y = torch.nn.functional.conv2d(x, w, padding=pad)
    np.testing.assert_allclose(y.detach().numpy().transpose(0, 2, 3, 1), problem.want[0], rtol=2e-4,
                               atol=2e-4 * np.abs(problem.want[0]).max())

    def step():
        x.grad = w.grad = None
        out = torch.nn.functional.conv2d(x, w, padding=pad)
        if part == "fwd_bwd":
            out.backward(dy)

    benchmark(step)
    gemms = 1 if part == "fwd" else 3
    benchmark.extra_info.update(shape=name, torch_threads=torch.get_num_threads(),
                                gflops=gemms * problem.flops_per_gemm / benchmark.stats.stats.median / 1e9,
                                **_context())


# ----------------------------------------------------------------------------- dropout
@pytest.fixture(scope="module")
def dropout_problem():
    x = np.random.default_rng(1).standard_normal(DROPOUT_SIZE, dtype=np.float32)
    args = (*dropout_key(0, 1, 2), keep_threshold(DROPOUT_RATE), 1.0 / (1.0 - DROPOUT_RATE))
    want = np.empty_like(x)
    ref.dropout_forward(want, x, *args)
    copy_dst = np.empty_like(x)
    memcpy = _median(lambda: np.copyto(copy_dst, x))
    return x, args, want, memcpy


def _dropout_extra(benchmark, seconds, passes, memcpy):
    moved = passes * 2 * DROPOUT_SIZE * 4           # read x, write y per pass
    benchmark.extra_info.update(
        ns_per_element=seconds / (passes * DROPOUT_SIZE) * 1e9, gbytes_per_s=moved / seconds / 1e9,
        memcpy_gbytes_per_s=2 * DROPOUT_SIZE * 4 / memcpy / 1e9, memcpy_ms=memcpy * 1e3, **_context())


@pytest.mark.parametrize("part", ["fwd", "fwd_bwd"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_dropout(benchmark, dropout_problem, backend, part):
    x, args, want, memcpy = dropout_problem
    forward, backward = _module(backend, "dropout_forward"), _module(backend, "dropout_backward")
    y, dx = np.empty_like(x), np.empty_like(x)
    forward(y, x, *args)
    backward(dx, x, *args)
    np.testing.assert_array_equal(y, want)
    np.testing.assert_array_equal(dx, want)

    def step():
        forward(y, x, *args)
        if part == "fwd_bwd":
            backward(dx, y, *args)

    benchmark(step)
    _dropout_extra(benchmark, benchmark.stats.stats.median, 1 if part == "fwd" else 2, memcpy)


@pytest.mark.parametrize("part", ["fwd", "fwd_bwd"])
def test_dropout_torch(benchmark, dropout_problem, part):
    torch = pytest.importorskip("torch")
    x_np, _, _, memcpy = dropout_problem
    x = torch.from_numpy(x_np.copy()).requires_grad_(part == "fwd_bwd")
    g = torch.ones_like(x)
    kept = (torch.nn.functional.dropout(x, DROPOUT_RATE, training=True) != 0).float().mean().item()
    assert abs(kept - (1 - DROPOUT_RATE)) < 0.01

    def step():
        x.grad = None
        out = torch.nn.functional.dropout(x, DROPOUT_RATE, training=True)
        if part == "fwd_bwd":
            out.backward(g)

    benchmark(step)
    _dropout_extra(benchmark, benchmark.stats.stats.median, 1 if part == "fwd" else 2, memcpy)
    benchmark.extra_info["torch_threads"] = torch.get_num_threads()


# ----------------------------------------------------------------------------- JIT cost
_FIRST_CALLS = """
    import time
    t0 = time.perf_counter()
    import numpy as np
    from minicnn.backend import numba_kernels as nk
    t1 = time.perf_counter()
    f = np.float32
    x = np.ones((2, 5, 5, 3), f); w = np.ones((3, 3, 3, 4), f)
    y = np.empty((2, 3, 3, 4), f); col = np.empty((2, 9, 27), f)
    nk.conv2d_forward(y, x, w, col, 1, 1, 0, 0, 1, 1)
    nk.conv2d_backward_input(np.empty_like(x), np.empty_like(col), y, w, 1, 1, 0, 0, 1, 1)
    nk.conv2d_backward_weight(np.empty_like(w), y, col)
    yp = np.empty((2, 2, 2, 3), f); am = np.empty(yp.shape, np.int64)
    nk.maxpool2d_forward(yp, am, x, 2, 2, 2, 2, 0, 0); nk.maxpool2d_backward(np.empty_like(x), yp, am)
    nk.avgpool2d_forward(yp, x, 2, 2, 2, 2, 0, 0); nk.avgpool2d_backward(np.empty_like(x), yp, 2, 2, 2, 2, 0, 0)
    v = x.reshape(-1); nk.dropout_forward(np.empty_like(v), v, 1, 2, 2**31, 2.0)
    nk.dropout_backward(np.empty_like(v), v, 1, 2, 2**31, 2.0)
    s = x.reshape(2, 25, 3); nk.spatial_dropout_forward(np.empty_like(s), s, 1, 2, 2**31, 2.0)
    nk.spatial_dropout_backward(np.empty_like(s), s, 1, 2, 2**31, 2.0)
    m = x.reshape(50, 3); b = np.ones(3, f)
    nk.bias_act_forward(np.empty_like(m), m, b, 1, 0.0)
    nk.bias_act_backward(np.empty_like(m), np.empty_like(b), m, m, 1, 0.0)
    t2 = time.perf_counter()
    print(t1 - t0, t2 - t1)
"""


def test_numba_jit_cost(benchmark):
    """Cold compile of every kernel (float32) and warm-cache import + first calls, in fresh processes."""
    with tempfile.TemporaryDirectory() as cache_dir:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir,
                   PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))

        def run():
            out = subprocess.run([sys.executable, "-c", textwrap.dedent(_FIRST_CALLS)], env=env,
                                 capture_output=True, text=True, check=True, timeout=900)
            return [float(v) for v in out.stdout.split()]

        cold_import, cold_calls = run()
        warm = [run() for _ in range(3)]
        benchmark.pedantic(run, rounds=1, iterations=1)
    benchmark.extra_info.update(
        cold_import_s=cold_import, cold_first_calls_s=cold_calls,
        warm_import_s=float(np.median([w[0] for w in warm])),
        warm_first_calls_s=float(np.median([w[1] for w in warm])), **_context())
