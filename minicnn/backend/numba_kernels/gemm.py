"""Dense matrix products in Numba: ``matmul`` and the fused ``dense_bias_act_forward``.

Shape letters: M, N, K of ``c (M, N) = op(a) (M, K) @ op(b) (K, N)``; G blocks of output rows (one per
thread, at least ``GEMM_MIN_BLOCK_ROWS`` rows each); for the dense layer ``x (M, K)``, ``w (K, N)``,
``b (N,)``, ``y (M, N)``.
"""

import numba
import numpy as np
from numba import prange

from ..jit import jit
from ..tuning import GEMM_MIN_BLOCK_ROWS, PARALLEL_WORK_THRESHOLD
from ._bias_act_rows import _bias_act_rows
from ._blas import _XXGEMM, _address
from .bias_act import bias_act_forward

__all__ = ["matmul", "dense_bias_act_forward"]


@jit(parallel=True)
def _matmul_blocks(c, a, b, trans_a, trans_b, G, bias, act, alpha, epilogue):
    """``c = op(a) @ op(b)`` as ``G`` blocks of output rows in ``prange``, one single-threaded BLAS gemm each.

    Row-major ``c`` is column-major ``c^T = op(b)^T @ op(a)^T``: nothing is copied or transposed (gemm.pyx).
    """
    M, N = c.shape
    K = a.shape[0] if trans_a else a.shape[1]
    lda, ldb = a.shape[1], b.shape[1]
    kind = np.int8(115) if c.itemsize == 4 else np.int8(100)   # s(gemm) or d(gemm)
    ta = np.int8(116) if trans_a else np.int8(110)
    tb = np.int8(116) if trans_b else np.int8(110)
    for g in prange(G):
        m0, m1 = g * M // G, (g + 1) * M // G
        scal = np.empty(2, dtype=c.dtype)
        scal[0] = 1
        scal[1] = 0
        ablock = a[:, m0:] if trans_a else a[m0:]
        _XXGEMM(kind, tb, ta, N, m1 - m0, K, _address(scal[0:1]), _address(b), ldb, _address(ablock), lda,
                _address(scal[1:2]), _address(c[m0:]), N)
        if epilogue:
            _bias_act_rows(c, c, bias, act, alpha, m0, m1)


def _blocks(M, N, K):
    """Row blocks of a dense product: one per thread when the work is worth a parallel region."""
    if numba.config.DISABLE_JIT or M * N * K // 16 < PARALLEL_WORK_THRESHOLD:
        return 1
    return max(1, min(numba.get_num_threads(), M // GEMM_MIN_BLOCK_ROWS))


def matmul(c, a, b, trans_a, trans_b):
    """``c = op(a) @ op(b)``: one BLAS call from Python for a one-thread team (a jitted ``np.dot`` on a
    transposed view measured 5-12 ms for a 64x256x64 product; this is ~20 us); with more threads, one
    single-threaded gemm per thread's block of output rows (BLAS is held at one thread inside
    ``thread_limits``: a single call would use one core)."""
    K = a.shape[0] if trans_a else a.shape[1]
    G = _blocks(c.shape[0], c.shape[1], K)
    if G == 1 or K == 0:
        np.dot(a.T if trans_a else a, b.T if trans_b else b, out=c)
    else:
        _matmul_blocks(c, a, b, bool(trans_a), bool(trans_b), G, c[0], 0, 0.0, False)


def dense_bias_act_forward(y, x, w, b, act, alpha):
    """``y = f(x @ w + b)``: BLAS product and epilogue per thread's block of rows (see :func:`matmul`)."""
    G = _blocks(y.shape[0], y.shape[1], x.shape[1])
    if G == 1 or x.shape[1] == 0:
        np.dot(x, w, out=y)
        bias_act_forward(y, y, b, act, alpha)
    else:
        _matmul_blocks(y, x, w, False, False, G, b, act, alpha, True)
