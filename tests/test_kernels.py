"""Every fast kernel against the NumPy reference, per backend and dtype.

Backends: ``numba`` always; ``cython`` for each kernel
:mod:`minicnn.backend.cython_kernels` provides (the others skip until they
exist). Outputs are pre-filled with NaN so a kernel that leaves an element
unwritten fails. Also: bit-identical dropout masks and reductions across
backends and Numba thread counts, the Numba source under
``NUMBA_DISABLE_JIT=1``, and :mod:`minicnn.backend.jit` (cache fallback, threading
layer).

Bit-identity across thread counts is a contract per machine, backend and instruction-set level: these tests run
the compiled kernels at the level chosen for this process (the CPU's highest, or ``MINICNN_CPU_LEVEL``), and
``tests/test_dispatch.py`` runs every compiled kernel at every level the machine has. The tolerances against the
reference are the same at every level.
"""

import importlib
import os
import subprocess
import sys
import tempfile
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest

from minicnn.backend import KERNELS
from minicnn.backend import reference as ref
from minicnn.backend.activation_codes import CODES
from minicnn.backend.hash_rng import dropout_key, keep_threshold

BACKENDS = ("numba", "cython")
DTYPES = (np.float32, np.float64)
REPO = Path(__file__).resolve().parents[1]


def _module(backend):
    name = {"numba": "minicnn.backend.numba_kernels", "cython": "minicnn.backend.cython_kernels"}[backend]
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        pytest.skip(f"backend {backend!r} not importable: {exc}")


def kernel(backend, name):
    """The backend's kernel ``name``, or skip the test while it does not exist yet."""
    assert name in KERNELS
    func = getattr(_module(backend), name, None)
    if func is None:
        pytest.skip(f"backend {backend!r} does not provide {name} yet")
    return func


def nans(shape, dtype):
    return np.full(shape, np.nan, dtype=dtype)


def assert_close(got, want):
    """Tolerance relative to the largest reference magnitude (sums of many products)."""
    tol = 2e-5 if want.dtype == np.float32 else 1e-12
    scale = max(float(np.abs(want).max(initial=0.0)), 1.0)
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * scale)


def _out(size, pad_before, pad_after, kernel_size, stride, dilation=1):
    return (size + pad_before + pad_after - dilation * (kernel_size - 1) - 1) // stride + 1


# ----------------------------------------------------------------------------- conv
#        N  H  W   C  F KH KW sh sw pt pb pl pr dh dw
CONV_CASES = [
    (1, 5, 5, 1, 1, 3, 3, 1, 1, 0, 0, 0, 0, 1, 1),     # batch 1, one channel, valid
    (2, 7, 6, 3, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1),     # same padding, odd sizes
    (2, 9, 8, 3, 5, 3, 2, 2, 1, 1, 0, 0, 1, 2, 1),     # stride 2, asymmetric padding, dilation 2
    (3, 6, 7, 17, 9, 2, 2, 2, 2, 0, 1, 0, 1, 1, 1),    # many channels, stride 2, pad bottom/right
    (2, 8, 8, 4, 3, 3, 3, 1, 1, 2, 2, 2, 2, 2, 2),     # dilation 2 "same"
    (2, 5, 4, 6, 7, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1),     # 1x1
    (2, 9, 8, 1, 5, 3, 3, 2, 3, 1, 0, 2, 1, 2, 1),     # one channel: stride 2x3, dilation, asymmetric padding
    (1, 4, 5, 1, 40, 5, 5, 1, 1, 4, 4, 5, 3, 1, 1),    # one channel, padding past the kernel, K = 25, 40 filters
]


def _conv_problem(case, dtype, seed=0):
    N, H, W, C, F, KH, KW, sh, sw, pt, pb, pl, pr, dh, dw = case
    rng = np.random.default_rng(seed)
    Ho, Wo = _out(H, pt, pb, KH, sh, dh), _out(W, pl, pr, KW, sw, dw)
    x = rng.standard_normal((N, H, W, C)).astype(dtype)
    w = rng.standard_normal((KH, KW, C, F)).astype(dtype)
    dy = rng.standard_normal((N, Ho, Wo, F)).astype(dtype)
    return x, w, dy, (N, Ho * Wo, KH * KW * C), (sh, sw, pt, pl, dh, dw)


def _conv_all(module, x, w, dy, col_shape, geom):
    dtype = x.dtype
    y, col = nans(dy.shape, dtype), nans(col_shape, dtype)
    dx, dcol, dw = nans(x.shape, dtype), nans(col_shape, dtype), nans(w.shape, dtype)
    module.conv2d_forward(y, x, w, col, *geom)
    module.conv2d_backward_input(dx, dcol, dy, w, *geom)
    module.conv2d_backward_weight(dw, dy, col)
    return {"y": y, "col": col, "dx": dx, "dcol": dcol, "dw": dw}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CONV_CASES)
@pytest.mark.parametrize("backend", BACKENDS)
def test_conv_matches_reference(backend, case, dtype):
    fast = [kernel(backend, k) for k in ("conv2d_forward", "conv2d_backward_input", "conv2d_backward_weight")]
    x, w, dy, col_shape, geom = _conv_problem(case, dtype)
    want = _conv_all(ref, x, w, dy, col_shape, geom)
    got = _conv_all(type("M", (), dict(zip(("conv2d_forward", "conv2d_backward_input",
                                            "conv2d_backward_weight"), map(staticmethod, fast)))),
                    x, w, dy, col_shape, geom)
    np.testing.assert_array_equal(got["col"], want["col"])  # im2col is a pure copy
    for name in ("y", "dx", "dcol", "dw"):
        assert got[name].dtype == dtype
        assert_close(got[name], want[name])


def test_conv_backward_weight_independent_of_thread_counts(numba_threads):
    """Bit-identical dw for Numba 1 vs 2 threads and for BLAS 1 vs 2 threads."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    nk = _module("numba")
    x, w, dy, col_shape, geom = _conv_problem((16, 12, 12, 8, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1), np.float32)
    col = nans(col_shape, np.float32)
    nk.conv2d_forward(nans(dy.shape, np.float32), x, w, col, *geom)
    results = []
    for threads in (1, 2):
        with numba_threads(threads), threadpoolctl.threadpool_limits(threads):
            dw = nans(w.shape, np.float32)
            nk.conv2d_backward_weight(dw, dy, col)
            results.append(dw)
    np.testing.assert_array_equal(results[0], results[1])


def test_numba_conv_and_pool_independent_of_thread_counts(numba_threads):
    """Bit-identical conv forward (one-channel small-K route and BLAS route, with the fused epilogue)
    and max-pool forward/backward for Numba 1 vs 2 threads, outputs pre-filled with NaN."""
    nk = _module("numba")
    rng = np.random.default_rng(5)
    xs = [rng.standard_normal((6, 10, 9, C)).astype(np.float32) for C in (1, 8)]
    results = []
    for threads in (1, 2):
        got = []
        with numba_threads(threads):
            for x, F in zip(xs, (32, 16)):
                C = x.shape[3]
                w = np.random.default_rng(C).standard_normal((3, 3, C, F)).astype(np.float32)
                b = np.linspace(-1, 1, F, dtype=np.float32)
                y, col = nans((6, 8, 7, F), np.float32), nans((6, 56, 9 * C), np.float32)
                nk.conv2d_bias_act_forward(y, x, w, b, col, CODES["relu"], 0.0, 1, 1, 0, 0, 1, 1)
                yp, am = nans((6, 4, 3, F), np.float32), np.full((6, 4, 3, F), -7, np.int64)
                nk.maxpool2d_forward(yp, am, y, 2, 2, 2, 2, 0, 0)
                dx = nans(y.shape, np.float32)
                nk.maxpool2d_backward(dx, yp, am)
                got += [y, col, yp, am, dx]
        results.append(got)
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


# ----------------------------------------------------------------------------- pooling
#        N  H  W  C  k  k  s  s pt pb pl pr
POOL_CASES = [
    (2, 6, 6, 3, 2, 2, 2, 2, 0, 0, 0, 0),      # classic 2x2/2
    (2, 7, 5, 3, 3, 3, 2, 2, 1, 1, 1, 1),      # odd sizes, padding 1, stride 2
    (1, 7, 7, 1, 3, 3, 1, 1, 1, 1, 1, 1),      # batch 1, one channel, overlapping windows
    (2, 5, 6, 20, 3, 2, 2, 1, 0, 1, 1, 0),     # asymmetric windows and padding, many channels
    (3, 9, 9, 2, 2, 2, 2, 2, 0, 1, 0, 1),      # "same" pooling of odd sizes (pad bottom/right)
]


def _pool_problem(case, dtype, ties, seed=1):
    N, H, W, C, kh, kw, sh, sw, pt, pb, pl, pr = case
    rng = np.random.default_rng(seed)
    Ho, Wo = _out(H, pt, pb, kh, sh), _out(W, pl, pr, kw, sw)
    x = rng.integers(-2, 3, (N, H, W, C)) if ties else rng.standard_normal((N, H, W, C))
    dy = rng.standard_normal((N, Ho, Wo, C))
    return x.astype(dtype), dy.astype(dtype), (kh, kw, sh, sw, pt, pl)


@pytest.mark.parametrize("ties", [False, True], ids=["distinct", "ties"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", POOL_CASES)
@pytest.mark.parametrize("backend", BACKENDS)
def test_maxpool_matches_reference(backend, case, dtype, ties):
    forward, backward = kernel(backend, "maxpool2d_forward"), kernel(backend, "maxpool2d_backward")
    x, dy, geom = _pool_problem(case, dtype, ties)
    outs = []
    for fwd, bwd in ((ref.maxpool2d_forward, ref.maxpool2d_backward), (forward, backward)):
        y, argmax, dx = nans(dy.shape, dtype), np.full(dy.shape, -7, dtype=np.int64), nans(x.shape, dtype)
        fwd(y, argmax, x, *geom)
        bwd(dx, dy, argmax)
        outs.append((y, argmax, dx))
    (y0, a0, dx0), (y1, a1, dx1) = outs
    np.testing.assert_array_equal(y1, y0)
    np.testing.assert_array_equal(a1, a0)       # first maximum wins on ties
    assert_close(dx1, dx0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", POOL_CASES)
@pytest.mark.parametrize("backend", BACKENDS)
def test_avgpool_matches_reference(backend, case, dtype):
    forward, backward = kernel(backend, "avgpool2d_forward"), kernel(backend, "avgpool2d_backward")
    x, dy, geom = _pool_problem(case, dtype, ties=False)
    outs = []
    for fwd, bwd in ((ref.avgpool2d_forward, ref.avgpool2d_backward), (forward, backward)):
        y, dx = nans(dy.shape, dtype), nans(x.shape, dtype)
        fwd(y, x, *geom)
        bwd(dx, dy, *geom)
        outs.append((y, dx))
    for got, want in zip(outs[1], outs[0]):
        assert_close(got, want)


# ----------------------------------------------------------------------------- dropout
def _dropout_input(shape, dtype, seed=2):
    x = np.random.default_rng(seed).standard_normal(shape).astype(dtype)
    flat = x.reshape(-1)
    flat[::97] = np.nan                      # dropped NaNs must become exactly 0
    flat[1::89] = np.inf
    return x


def _run_dropout(func, x, key0, key1, threshold, scale):
    y = nans(x.shape, x.dtype)
    func(y, x, key0, key1, threshold, scale)
    return y


DROPOUT_KERNELS = {"dropout_forward": [(1,), (1001,), (40_000,)],
                   "spatial_dropout_forward": [(1, 1, 1), (3, 10, 7), (5, 4, 64)]}


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.9])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["dropout_forward", "dropout_backward",
                                  "spatial_dropout_forward", "spatial_dropout_backward"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_dropout_bit_identical_to_reference(backend, name, dtype, rate):
    func = kernel(backend, name)
    key0, key1 = dropout_key(11, 3, 7)
    threshold, scale = keep_threshold(rate), 1.0 / (1.0 - rate)
    for shape in DROPOUT_KERNELS[name.replace("backward", "forward")]:
        x = _dropout_input(shape, dtype)
        want = _run_dropout(getattr(ref, name), x, key0, key1, threshold, scale)
        got = _run_dropout(func, x, key0, key1, threshold, scale)
        assert got.dtype == dtype
        # bitwise: same mask, same single multiplication by dtype(scale), dropped == +0.0
        np.testing.assert_array_equal(got.view(np.uint8), want.view(np.uint8))


def test_dropout_mask_is_what_the_rate_says():
    """Guards the reference itself: about ``rate`` of the elements are dropped."""
    x = np.ones(200_000, dtype=np.float32)
    y = _run_dropout(ref.dropout_forward, x, *dropout_key(0, 0, 0), keep_threshold(0.3), 1 / 0.7)
    assert abs((y == 0).mean() - 0.3) < 0.01


@pytest.mark.parametrize("name,shape", [("dropout_forward", (100_003,)),
                                        ("spatial_dropout_forward", (64, 9, 33))])
def test_dropout_independent_of_numba_threads(numba_threads, name, shape):
    func = kernel("numba", name)
    x = _dropout_input(shape, np.float32)
    args = (*dropout_key(5, 1, 2), keep_threshold(0.5), 2.0)
    results = []
    for threads in (1, 2):
        with numba_threads(threads):
            results.append(_run_dropout(func, x, *args))
    np.testing.assert_array_equal(results[0].view(np.uint32), results[1].view(np.uint32))


# ----------------------------------------------------------------------------- bias + activation
@pytest.mark.parametrize("shape", [(1, 1), (37, 5), (600, 64)])
@pytest.mark.parametrize("act", sorted(CODES))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend", BACKENDS)
def test_bias_act_matches_reference(backend, dtype, act, shape):
    forward, backward = kernel(backend, "bias_act_forward"), kernel(backend, "bias_act_backward")
    rng = np.random.default_rng(3)
    x = rng.standard_normal(shape).astype(dtype)
    b = rng.standard_normal(shape[1]).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    code, alpha = CODES[act], 0.1
    outs = []
    for fwd, bwd in ((ref.bias_act_forward, ref.bias_act_backward), (forward, backward)):
        y, dx, db = nans(shape, dtype), nans(shape, dtype), nans(shape[1], dtype)
        fwd(y, x, b, code, alpha)
        bwd(dx, db, dy, y, code, alpha)
        outs.append((y, dx, db))
    for got, want in zip(outs[1], outs[0]):
        assert got.dtype == dtype
        assert_close(got, want)


@pytest.mark.parametrize("backend", BACKENDS)
def test_bias_act_in_place(backend):
    """``y`` may alias ``x`` in the forward; ``dx`` may alias ``dy`` in the backward."""
    forward, backward = kernel(backend, "bias_act_forward"), kernel(backend, "bias_act_backward")
    rng = np.random.default_rng(4)
    x = rng.standard_normal((50, 6)).astype(np.float32)
    b = rng.standard_normal(6).astype(np.float32)
    dy = rng.standard_normal((50, 6)).astype(np.float32)
    code = CODES["leaky_relu"]
    y_want, dx_want, db_want = nans(x.shape, np.float32), nans(x.shape, np.float32), nans(6, np.float32)
    ref.bias_act_forward(y_want, x, b, code, 0.2)
    ref.bias_act_backward(dx_want, db_want, dy, y_want, code, 0.2)
    y, g, db = x.copy(), dy.copy(), nans(6, np.float32)
    forward(y, y, b, code, 0.2)
    backward(g, db, g, y, code, 0.2)
    assert_close(y, y_want)
    assert_close(g, dx_want)
    assert_close(db, db_want)


def test_bias_act_db_independent_of_numba_threads(numba_threads):
    backward = kernel("numba", "bias_act_backward")
    rng = np.random.default_rng(5)
    dy = rng.standard_normal((5000, 24)).astype(np.float32)
    y = rng.standard_normal((5000, 24)).astype(np.float32)
    results = []
    for threads in (1, 2):
        with numba_threads(threads):
            dx, db = nans(dy.shape, np.float32), nans(24, np.float32)
            backward(dx, db, dy, y, CODES["relu"], 0.0)
            results.append(db)
    np.testing.assert_array_equal(results[0], results[1])


# ----------------------------------------------------------------------------- Numba source, config
def _python(code, env_update=(), cwd=None):
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_THREADING_LAYER"}
    env.update(env_update)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def test_numba_source_without_jit():
    """The kernels as plain Python (``NUMBA_DISABLE_JIT=1``) match the reference too."""
    code = """
        import warnings
        import numpy as np
        warnings.simplefilter("ignore", RuntimeWarning)   # uint32 scalar wrap-around is intended
        from minicnn.backend import numba_kernels as nk, reference as ref
        from minicnn.backend.hash_rng import dropout_key, keep_threshold
        rng = np.random.default_rng(0)
        x = rng.standard_normal((2, 5, 4, 3)); w = rng.standard_normal((3, 2, 3, 2))
        outs = []
        for m in (ref, nk):
            y = np.empty((2, 3, 4, 2)); col = np.empty((2, 12, 18)); dx = np.empty_like(x)
            dcol = np.empty_like(col); dw = np.empty_like(w)
            m.conv2d_forward(y, x, w, col, 2, 1, 1, 1, 1, 1)
            m.conv2d_backward_input(dx, dcol, y, w, 2, 1, 1, 1, 1, 1)
            m.conv2d_backward_weight(dw, y, col)
            yp = np.empty((2, 3, 2, 3)); am = np.empty(yp.shape, np.int64); dxp = np.empty_like(x)
            m.maxpool2d_forward(yp, am, x, 2, 2, 2, 2, 1, 0); m.maxpool2d_backward(dxp, yp, am)
            ya = np.empty((2, 3, 2, 3)); dxa = np.empty_like(x)
            m.avgpool2d_forward(ya, x, 2, 2, 2, 2, 1, 0); m.avgpool2d_backward(dxa, ya, 2, 2, 2, 2, 1, 0)
            yd = np.empty(120); m.dropout_forward(yd, x.ravel(), *dropout_key(1, 2, 3), keep_threshold(0.5), 2.0)
            ys = np.empty((2, 20, 3)); m.spatial_dropout_forward(ys, x.reshape(2, 20, 3), 9, 8, keep_threshold(0.5), 2.0)
            z = x.reshape(40, 3); yb = np.empty_like(z); dxb = np.empty_like(z); db = np.empty(3)
            m.bias_act_forward(yb, z, np.ones(3), 4, 0.0); m.bias_act_backward(dxb, db, z, yb, 4, 0.0)
            outs.append([y, dx, dw, yp, am, dxp, ya, dxa, yd, ys, yb, dxb, db])
        for a, b in zip(*outs):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
        print("ok")
    """
    result = _python(code, {"NUMBA_DISABLE_JIT": "1"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_jit_falls_back_when_no_cache_directory_is_writable():
    """A read-only install: no writable ``__pycache__`` and no user cache directory.

    Works as root too: the cache paths lie below regular files, so creating
    them fails for everyone. The subprocess first checks that plain
    ``njit(cache=True)`` really fails there, then that :func:`minicnn.backend.jit.jit`
    compiles and runs the same function without a cache.
    """
    with tempfile.TemporaryDirectory() as tmp:
        pkg = Path(tmp, "site")
        pkg.mkdir()
        Path(pkg, "__pycache__").write_text("a file, so no cache directory can be created here\n")
        blocker = Path(tmp, "not_a_dir")
        blocker.write_text("")
        Path(pkg, "ro_kernels.py").write_text(textwrap.dedent("""
            from minicnn.backend.jit import jit

            def plain(a):
                return 2 * a

            @jit(parallel=True)
            def twice(a):
                return 2 * a
        """))
        code = """
            import numba, ro_kernels
            try:
                numba.njit(cache=True)(ro_kernels.plain)
            except RuntimeError as exc:
                assert "no locator available" in str(exc), exc
            else:
                raise AssertionError("setup failed: Numba found a writable cache directory")
            assert ro_kernels.twice(21) == 42
            assert not ro_kernels.twice._cache_hits and type(ro_kernels.twice._cache).__name__ == "NullCache"
            print("ok")
        """
        env = {"HOME": str(blocker), "XDG_CACHE_HOME": str(blocker / "cache"),
               "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": str(pkg)}
        os_env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
        os_env.update(env)
        os_env["PYTHONPATH"] = os.pathsep.join([str(pkg), str(REPO)])
        result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=os_env, cwd=pkg,
                                capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_threading_layer_is_thread_safe_and_user_choice_wins():
    """Default: a thread-safe layer (``omp``/``tbb``); an explicit env var is respected."""
    code = """
        import numpy as np, numba
        from minicnn.backend import numba_kernels as nk
        x = np.ones(10_000, np.float32); y = np.empty_like(x)
        nk.dropout_forward(y, x, 1, 2, 2**31, 2.0)
        print(numba.threading_layer())
    """
    chosen = _python(code)
    assert chosen.returncode == 0, chosen.stderr
    assert chosen.stdout.strip() in ("omp", "tbb")
    forced = _python(code, {"NUMBA_THREADING_LAYER": "workqueue"})
    assert forced.returncode == 0, forced.stderr
    assert forced.stdout.strip() == "workqueue"


def test_concurrent_calls_from_python_threads():
    """Several Python threads calling parallel kernels at once must not abort (workqueue would)."""
    dropout = kernel("numba", "dropout_forward")
    bias_act = kernel("numba", "bias_act_forward")
    x = _dropout_input((30_000,), np.float32)
    want = _run_dropout(ref.dropout_forward, x, 1, 2, keep_threshold(0.5), 2.0)
    z = np.ones((300, 8), np.float32)
    errors = []

    def work():
        try:
            for _ in range(20):
                got = _run_dropout(dropout, x, 1, 2, keep_threshold(0.5), 2.0)
                np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
                out = np.empty_like(z)
                bias_act(out, z, np.ones(8, np.float32), CODES["relu"], 0.0)
                assert (out == 2).all()
        except Exception as exc:  # surfaced in the main thread below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
