# cython: language_level=3
"""bfloat16 inference kernels on AVX512-BF16: rounding to bfloat16, im2col and the product with its epilogue.

Built only at the ``avx512`` level with ``-mavx512bf16`` (:data:`minicnn.backend.isa.FEATURE_MODULES`) and
loaded only where the CPU reports AVX512_BF16 (:mod:`minicnn.backend.lowp`); the NumPy twins with the same
signatures are in :mod:`minicnn.backend.reference.bf16gemm`.

Shape letters: M rows (samples x pixels), K inner size, Kp = K padded to a multiple of 2, N output columns,
Np = N padded to a multiple of 16. bfloat16 values are held as their uint16 bits; weights packed
``(Kp/2, Np, 2)``.
"""

from cython.parallel cimport prange

include "_parallel.pxi"
include "_lowp.pxi"

cdef extern from "bf16gemm_avx512.h" nogil:
    void bf16gemm_rows(const uint16_t *a, const uint16_t *bp, float *y, const float *bias, int relu,
                       Py_ssize_t m_begin, Py_ssize_t m_end, Py_ssize_t Kp, Py_ssize_t N, Py_ssize_t Np)
    uint16_t bf16_round(float x)


def to_bf16(uint16_t[:, ::1] q, const float[:, ::1] x):
    """``q[:, :K]`` = the bfloat16 bits of ``x`` rounded to nearest even, ``q[:, K:] = 0``."""
    cdef Py_ssize_t M = x.shape[0], K = x.shape[1], Kp = q.shape[1], m, k
    if q.shape[0] != M or Kp < K:
        raise ValueError(f"q ({q.shape[0]}, {Kp}) cannot hold x ({M}, {K})")
    for m in prange(M, nogil=True, schedule="static", num_threads=team(M * K)):
        for k in range(K):
            q[m, k] = bf16_round(x[m, k])
        for k in range(K, Kp):
            q[m, k] = 0


def im2col_u16(uint16_t[:, ::1] col, const uint16_t[:, :, :, ::1] x, int pad, Py_ssize_t Ho, Py_ssize_t Wo,
               Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t pt, Py_ssize_t pl,
               Py_ssize_t dh, Py_ssize_t dw):
    """The windows of ``x (N, H, W, C)`` as rows of ``col (N*Ho*Wo, Kp)``, ``pad`` outside and past ``K``."""
    _check_geometry(col.shape[0], col.shape[1], x.shape[0], x.shape[3], Ho, Wo, KH, KW)
    if col.shape[0] == 0:
        return
    with nogil:
        _im2col_lowp(&col[0, 0], &x[0, 0, 0, 0], <uint16_t>pad, x.shape[0], x.shape[1], x.shape[2], x.shape[3],
                     Ho, Wo, col.shape[1], KH, KW, sh, sw, pt, pl, dh, dw)


def gemm_bf16_bias_act(float[:, ::1] y, const uint16_t[:, ::1] a, const uint16_t[:, :, ::1] bp,
                       const float[::1] bias, int act):
    """``y = act(a @ w + bias)`` (bfloat16 inputs, float32 sums); ``act`` 0 (identity) or 1 (relu)."""
    cdef Py_ssize_t M = y.shape[0], N = y.shape[1], Kp = a.shape[1], Np = bp.shape[1], chunk, begin
    if a.shape[0] != M or Kp != 2 * bp.shape[0] or Np % 16 or Np < N or bp.shape[2] != 2 or bias.shape[0] != N:
        raise ValueError(f"shapes do not match: output ({M}, {N}), a ({a.shape[0]}, {Kp}), packed weights "
                         f"({bp.shape[0]}, {Np}, {bp.shape[2]}), bias ({bias.shape[0]},); expected a (M, Kp), "
                         f"packed weights (Kp/2, Np >= N multiple of 16, 2), bias (N,)")
    if act not in (0, 1):
        raise ValueError(f"act must be 0 (identity) or 1 (relu); received act={act!r}")
    if M == 0 or N == 0:
        return
    with nogil:
        for chunk in prange(_lowp_chunks(M), schedule="static", num_threads=team(M * Kp * N)):
            begin = chunk * LOWP_CHUNK_ROWS
            bf16gemm_rows(&a[0, 0], &bp[0, 0, 0], &y[0, 0], &bias[0], act, begin, min(begin + LOWP_CHUNK_ROWS, M),
                          Kp, N, Np)
