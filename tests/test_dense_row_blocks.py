"""Dense products of small weights run as sgemm calls of at most ``SGEMM_SMALL_MNK`` multiply-adds (``kernels/gemm.pyx``:
a batch's rows in blocks of at least 32), and their neighbours, against the NumPy reference.

Sweeps the row counts around the blocks (1 to 13, 64, 1027), inner sizes (1, 2, 17, 256, 1024, 1025), column counts
(multiples of 16 and not), every activation, float32 and float64, through ``dense_bias_act_forward`` and ``matmul``
(either operand transposed or not). Outputs are NaN-prefilled; a sample computed alone equals the same sample in a
batch bit for bit where each block is one small-matrix call, and 1 and 2 threads give the same bits.
"""

import numpy as np
import pytest

from minicnn.backend import reference as ref
from minicnn.threads import thread_limits

from helpers import kernel_module

ACTS = [(0, 0.0), (1, 0.0), (2, 0.1), (3, 0.0), (4, 0.0)]
ROWS = list(range(1, 14)) + [64]
INNER = [1, 2, 17, 256, 1024, 1025]
COLUMNS = [16, 32, 48, 64, 80, 128, 10]


def _tol(dtype, K):
    return (1e-5 if dtype == np.float32 else 1e-12) * max(1.0, np.sqrt(K))


@pytest.mark.parametrize("backend", ["numba", "cython"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("K", INNER)
def test_dense_bias_act_forward_small_weights_match_reference(backend, dtype, K):
    rng = np.random.default_rng(K)
    f = kernel_module(backend).dense_bias_act_forward
    for N in COLUMNS:
        w = rng.standard_normal((K, N)).astype(dtype)
        b = rng.standard_normal(N).astype(dtype)
        for i, M in enumerate(ROWS):
            x = (rng.standard_normal((M, K)) / np.sqrt(K)).astype(dtype)   # sums of unit scale: no overflow
            act, alpha = ACTS[(i + N) % len(ACTS)]
            want = np.full((M, N), np.nan, dtype)
            ref.dense_bias_act_forward(want, x, w, b, act, alpha)
            got = np.full((M, N), np.nan, dtype)
            f(got, x, w, b, act, alpha)
            tol = _tol(dtype, K)
            np.testing.assert_allclose(got, want, rtol=tol, atol=tol, err_msg=f"M={M} K={K} N={N} act={act}")


@pytest.mark.parametrize("backend", ["numba", "cython"])
@pytest.mark.parametrize("trans_a", [0, 1])
@pytest.mark.parametrize("trans_b", [0, 1])
def test_matmul_small_weights_every_transpose_matches_reference(backend, trans_a, trans_b):
    rng = np.random.default_rng(10 * trans_a + trans_b)
    f = kernel_module(backend).matmul
    for M, K, N in [(1, 256, 64), (7, 256, 64), (64, 256, 64), (13, 17, 48), (64, 64, 10), (6, 1024, 16)]:
        a = rng.standard_normal((K, M) if trans_a else (M, K)).astype(np.float32)
        b = rng.standard_normal((N, K) if trans_b else (K, N)).astype(np.float32)
        want = np.full((M, N), np.nan, np.float32)
        ref.matmul(want, a, b, trans_a, trans_b)
        got = np.full((M, N), np.nan, np.float32)
        f(got, a, b, trans_a, trans_b)
        tol = _tol(np.float32, K)
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol, err_msg=f"M={M} K={K} N={N}")


@pytest.mark.parametrize("K, N", [(256, 64), (64, 16), (128, 128), (17, 48)])
def test_cython_dense_one_sample_equals_the_same_sample_in_a_batch(K, N):
    """Every row of a batch split into row blocks (64 x 256 @ 256 x 64: 61 + 3 rows) has the bits of that row alone."""
    rng = np.random.default_rng(K + N)
    f = kernel_module("cython").dense_bias_act_forward
    x = rng.standard_normal((64, K)).astype(np.float32)
    w = rng.standard_normal((K, N)).astype(np.float32)
    b = rng.standard_normal(N).astype(np.float32)
    batch = np.full((64, N), np.nan, np.float32)
    f(batch, x, w, b, 2, 0.1)
    for m in range(64):
        one = np.full((1, N), np.nan, np.float32)
        f(one, x[m:m + 1], w, b, 2, 0.1)
        np.testing.assert_array_equal(one[0].view(np.uint32), batch[m].view(np.uint32), err_msg=f"row {m}")


@pytest.mark.parametrize("backend", ["numba", "cython"])
def test_dense_small_weights_same_bits_for_1_and_2_threads(backend):
    """1027 x 256 @ 256 x 64: work above the 2**18 threshold, so the rows really split over 2 threads (then in
    blocks of 61 rows)."""
    rng = np.random.default_rng(3)
    f = kernel_module(backend).dense_bias_act_forward
    x = rng.standard_normal((1027, 256)).astype(np.float32)
    w = rng.standard_normal((256, 64)).astype(np.float32)
    b = rng.standard_normal(64).astype(np.float32)
    out = []
    for n in (1, 2):
        y = np.full((1027, 64), np.nan, np.float32)
        with thread_limits(n):
            f(y, x, w, b, 1, 0.0)
        out.append(y)
    assert not np.isnan(out[0]).any()
    np.testing.assert_array_equal(out[0].view(np.uint32), out[1].view(np.uint32))
