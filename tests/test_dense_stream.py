"""The dense product of a few rows on large weights (``kernels/stream_gemm.h``, through ``kernels/gemm.pyx``).

Swept: every row count from 1 to 9 and around the route's bound (1-16 = the streamed product where the module has
its vector path, gemv or BLAS at the baseline level, 17 = BLAS), column counts with and without the vector and
scalar tails (odd ones included), odd inner sizes across the chunk length (64) and the weight bound (2^18
weights), every fused activation, float32 and float64; against the NumPy reference (NaN-prefilled outputs), 1 vs 2
threads bit-identical, and each row's bits independent of the rows beside it. The other instruction-set levels run
the same contract in ``tests/level_check.py`` (a subprocess per level, ``tests/test_dispatch.py``).
"""

import numpy as np
import pytest

from minicnn.backend import reference as ref
from minicnn.backend.activation_codes import CODES
from minicnn.threads import thread_limits

from helpers import kernel_module

BACKENDS = ("numpy", "numba", "cython")
# (K, N): N*K >= 2^18 takes the streamed route for 1-16 rows; (300, 70) stays below the bound
SHAPES = [(4096, 70), (2049, 128), (16384, 16), (257, 1031), (2731, 97), (300, 70)]
ROWS = [1, 2, 3, 4, 5, 6, 7, 8, 9, 16, 17]


def _case(M, K, N, dtype, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((M, K)).astype(dtype)
    w = (rng.standard_normal((K, N)) / np.sqrt(K)).astype(dtype)
    b = rng.standard_normal(N).astype(dtype)
    return x, w, b


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("K, N", SHAPES)
@pytest.mark.parametrize("M", ROWS)
def test_dense_products_match_reference_and_threads(backend, dtype, K, N, M):
    x, w, b = _case(M, K, N, dtype, M * 7 + N)
    module = kernel_module(backend)
    tol = 1e-4 if dtype == np.float32 else 1e-10
    plain = np.empty((M, N), dtype)
    ref.matmul(plain, x, w, 0, 0)
    for act in CODES.values():
        alpha = 0.1
        expected = plain.copy()
        ref.bias_act_forward(expected, expected, b, act, alpha)
        got = {}
        for n_threads in (1, 2):
            y = np.full((M, N), np.nan, dtype)
            with thread_limits(n_threads):
                module.dense_bias_act_forward(y, x, w, b, act, alpha)
            got[n_threads] = y
        np.testing.assert_allclose(got[1], expected, rtol=tol, atol=tol)
        np.testing.assert_array_equal(got[1], got[2])
    for n_threads in (1, 2):
        c = np.full((M, N), np.nan, dtype)
        with thread_limits(n_threads):
            module.matmul(c, x, w, 0, 0)
        np.testing.assert_allclose(c, plain, rtol=tol, atol=tol)
        if n_threads == 1:
            first = c
    np.testing.assert_array_equal(c, first)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("K, N", SHAPES[:5])
def test_streamed_rows_do_not_depend_on_the_rows_beside_them(K, N, dtype):
    """One sample gives the bits it gets inside a batch of up to 16 (a prediction does not depend on its batch)."""
    x, w, b = _case(16, K, N, dtype, 11)
    module = kernel_module("cython")   # the compiled streamed route promises it (BLAS may not)
    if module.MODULE_LEVELS["gemm"] == "baseline":
        pytest.skip("the baseline build of the dense kernels has no streamed route (BLAS only)")
    full = np.full((16, N), np.nan, dtype)
    module.dense_bias_act_forward(full, x, w, b, 1, 0.0)
    for rows in (slice(0, 1), slice(7, 8), slice(0, 2), slice(3, 8), slice(5, 16), slice(1, 10)):
        part = np.full((rows.stop - rows.start, N), np.nan, dtype)
        with thread_limits(2):
            module.dense_bias_act_forward(part, np.ascontiguousarray(x[rows]), w, b, 1, 0.0)
        np.testing.assert_array_equal(part, full[rows])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("K, N", [(2048, 128), (2049, 128), (9216, 128), (4099, 97), (16384, 16)])
def test_streamed_product_bits_do_not_depend_on_the_team(K, N, dtype):
    """The streamed product splits its inner dimension into slices fixed by the weights' shape (2 slices at the
    2^18-weight bound, up to 8 from 2^20), spread over the team: teams of 1, 2, 3 and 5 threads (fewer threads than
    slices, and not dividing them) give the same bits, one row or a batch."""
    module = kernel_module("cython")
    if module.MODULE_LEVELS["gemm"] == "baseline":
        pytest.skip("the baseline build of the dense kernels has no streamed route (BLAS only)")
    for M in (1, 3, 16):
        x, w, b = _case(M, K, N, dtype, K + M)
        expected = np.empty((M, N), dtype)
        ref.matmul(expected, x, w, 0, 0)
        ref.bias_act_forward(expected, expected, b, 2, 0.1)
        runs = []
        for n_threads in (1, 2, 3, 5):
            y = np.full((M, N), np.nan, dtype)
            with thread_limits(n_threads):
                module.dense_bias_act_forward(y, x, w, b, 2, 0.1)
            runs.append(y)
        tol = 1e-4 if dtype == np.float32 else 1e-10
        np.testing.assert_allclose(runs[0], expected, rtol=tol, atol=tol)
        for y in runs[1:]:
            np.testing.assert_array_equal(y, runs[0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_streamed_product_has_the_same_bits_at_avx2_and_avx512(dtype):
    """The avx512 build runs groups of 8 rows as blocks of 8 rows x 4 vectors (``STREAM_ROWS8``), the avx2 build
    blocks of 4 rows: the same sums in the same order, so the same bits, for every row count 1-16 (groups of 8 with
    0-7 rows left) and columns with vector and scalar tails."""
    import importlib

    from minicnn.backend import isa

    if isa.choose_level(environ={}) != "avx512":
        pytest.skip("this CPU has no AVX-512")
    try:
        builds = [importlib.import_module(isa.module_name("gemm", level)) for level in ("avx2", "avx512")]
    except ModuleNotFoundError:
        pytest.skip("the avx2 and avx512 builds of the dense kernels are not both built")
    for K, N in [(4096, 70), (2731, 131), (16384, 16)]:
        for M in range(1, 17):
            x, w, b = _case(M, K, N, dtype, M + K)
            got = []
            for module in builds:
                y = np.full((M, N), np.nan, dtype)
                with thread_limits(2):
                    module.dense_bias_act_forward(y, x, w, b, 2, 0.1)
                got.append(y)
            assert not np.isnan(got[1]).any()
            np.testing.assert_array_equal(got[1], got[0])
