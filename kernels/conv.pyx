# cython: language_level=3
"""2-D convolution kernels (NHWC, im2col + BLAS GEMM), Cython + OpenMP.

Same contract as ``minicnn.backend.reference`` (outputs first, preallocated,
every element written). Strategy, chosen by measurement on the MNIST conv
shape (as fast as one big 2-thread GEMM within noise, and free of the
OpenMP-then-OpenBLAS thread cliff, see ``minicnn.threads``): OpenMP owns the cores and parallelizes over the
batch; each thread runs im2col (or col2im) for one sample and a single-threaded
BLAS GEMM on it while that sample's columns are still in cache. BLAS must
therefore be limited to one thread while these kernels run
(:func:`minicnn.threads.thread_limits` does it); results are correct either way.

Row-major ``C = A @ B`` is computed by column-major BLAS as ``C^T = B^T @ A^T``,
so no array is ever transposed in memory.

``conv2d_backward_weight`` sums per-group partial products in a fixed order
(groups depend only on the batch size), so it is bit-identical for any OpenMP
thread count.
"""

from cython.parallel cimport prange
from libc.string cimport memcpy, memset
from scipy.linalg.cython_blas cimport dgemm, sgemm

import numpy as np

ctypedef fused floating:
    float
    double

# Number of fixed sample groups whose partial weight gradients are summed in
# order by conv2d_backward_weight (independent of the thread count).
DW_GROUPS = 8


cdef inline void _gemm(char transa, char transb, int m, int n, int k,
                       floating *a, int lda, floating *b, int ldb,
                       floating beta, floating *c, int ldc) noexcept nogil:
    """Column-major ``c = op(a) @ op(b) + beta * c`` in the precision of ``floating``."""
    cdef floating one = 1
    if floating is float:
        sgemm(&transa, &transb, &m, &n, &k, &one, a, &lda, b, &ldb, &beta, c, &ldc)
    else:
        dgemm(&transa, &transb, &m, &n, &k, &one, a, &lda, b, &ldb, &beta, c, &ldc)


cdef inline void _im2col(floating *col, const floating *x,
                         Py_ssize_t H, Py_ssize_t W, Py_ssize_t C,
                         Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t Ho, Py_ssize_t Wo,
                         int sh, int sw, int pt, int pl, int dh, int dw) noexcept nogil:
    """Fill one sample's ``(Ho*Wo, KH*KW*C)`` column block from its ``(H, W, C)`` image."""
    cdef Py_ssize_t oh, ow, i, j, ih, iw, c
    cdef floating *dst = col
    for oh in range(Ho):
        for ow in range(Wo):
            for i in range(KH):
                ih = oh * sh - pt + i * dh
                for j in range(KW):
                    iw = ow * sw - pl + j * dw
                    if 0 <= ih < H and 0 <= iw < W:
                        if C >= 16:
                            memcpy(dst, x + (ih * W + iw) * C, C * sizeof(floating))
                        else:
                            for c in range(C):
                                dst[c] = x[(ih * W + iw) * C + c]
                    else:
                        for c in range(C):
                            dst[c] = 0
                    dst += C


cdef inline void _col2im(floating *dx, const floating *dcol,
                         Py_ssize_t H, Py_ssize_t W, Py_ssize_t C,
                         Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t Ho, Py_ssize_t Wo,
                         int sh, int sw, int pt, int pl, int dh, int dw) noexcept nogil:
    """Scatter-add one sample's ``(Ho*Wo, KH*KW*C)`` column gradient into ``(H, W, C)``."""
    cdef Py_ssize_t oh, ow, i, j, ih, iw, c
    cdef const floating *src = dcol
    cdef floating *dst
    memset(dx, 0, H * W * C * sizeof(floating))
    for oh in range(Ho):
        for ow in range(Wo):
            for i in range(KH):
                ih = oh * sh - pt + i * dh
                for j in range(KW):
                    iw = ow * sw - pl + j * dw
                    if 0 <= ih < H and 0 <= iw < W:
                        dst = dx + (ih * W + iw) * C
                        for c in range(C):
                            dst[c] += src[c]
                    src += C


def conv2d_forward(floating[:, :, :, ::1] y, const floating[:, :, :, ::1] x,
                   const floating[:, :, :, ::1] w, floating[:, :, ::1] col,
                   int sh, int sw, int pt, int pl, int dh, int dw):
    """``y = conv(x, w)`` (no bias): im2col into ``col`` then GEMM, per sample in parallel."""
    cdef Py_ssize_t N = x.shape[0], H = x.shape[1], W = x.shape[2], C = x.shape[3]
    cdef Py_ssize_t KH = w.shape[0], KW = w.shape[1], F = w.shape[3]
    cdef Py_ssize_t Ho = y.shape[1], Wo = y.shape[2]
    cdef Py_ssize_t P = Ho * Wo, K = KH * KW * C, n
    if N == 0 or P == 0 or F == 0:
        return
    if K == 0:
        y[...] = 0
        return
    cdef floating *wp = <floating *>&w[0, 0, 0, 0]
    for n in prange(N, nogil=True, schedule="dynamic"):
        _im2col(&col[n, 0, 0], &x[n, 0, 0, 0], H, W, C, KH, KW, Ho, Wo,
                sh, sw, pt, pl, dh, dw)
        # y[n] (P, F) = col[n] (P, K) @ w (K, F)
        _gemm(c'N', c'N', <int>F, <int>P, <int>K, wp, <int>F, &col[n, 0, 0], <int>K,
              0, &y[n, 0, 0, 0], <int>F)


def conv2d_backward_input(floating[:, :, :, ::1] dx, floating[:, :, ::1] dcol,
                          const floating[:, :, :, ::1] dy, const floating[:, :, :, ::1] w,
                          int sh, int sw, int pt, int pl, int dh, int dw):
    """Gradient with respect to the input: ``dcol = dy @ w.T`` then col2im, per sample."""
    cdef Py_ssize_t N = dx.shape[0], H = dx.shape[1], W = dx.shape[2], C = dx.shape[3]
    cdef Py_ssize_t KH = w.shape[0], KW = w.shape[1], F = w.shape[3]
    cdef Py_ssize_t Ho = dy.shape[1], Wo = dy.shape[2]
    cdef Py_ssize_t P = Ho * Wo, K = KH * KW * C, n
    if N == 0 or H * W * C == 0:
        return
    if P == 0 or F == 0 or K == 0:
        dx[...] = 0
        dcol[...] = 0
        return
    cdef floating *wp = <floating *>&w[0, 0, 0, 0]
    for n in prange(N, nogil=True, schedule="dynamic"):
        # dcol[n] (P, K) = dy[n] (P, F) @ w.T (F, K)
        _gemm(c'T', c'N', <int>K, <int>P, <int>F, wp, <int>F,
              <floating *>&dy[n, 0, 0, 0], <int>F, 0, &dcol[n, 0, 0], <int>K)
        _col2im(&dx[n, 0, 0, 0], &dcol[n, 0, 0], H, W, C, KH, KW, Ho, Wo,
                sh, sw, pt, pl, dh, dw)


def conv2d_backward_weight(floating[:, :, :, ::1] dw, const floating[:, :, :, ::1] dy,
                           const floating[:, :, ::1] col):
    """Gradient with respect to the weights, ``col.T @ dy``, in a fixed summation order.

    The batch is cut into ``min(N, DW_GROUPS)`` contiguous groups; each group's
    partial product is one GEMM (groups run in parallel), then the partials are
    added in group order. The result depends on the batch size only, never on
    the number of threads.
    """
    cdef Py_ssize_t N = dy.shape[0], F = dy.shape[3], P = dy.shape[1] * dy.shape[2]
    cdef Py_ssize_t K = col.shape[2], KF = K * F
    cdef Py_ssize_t G = min(N, DW_GROUPS), g, n0, n1, e
    if KF == 0:
        return
    if N == 0 or P == 0:
        dw[...] = 0
        return
    cdef floating[:, ::1] part = np.empty((G, KF), dtype=np.float32 if floating is float else np.float64)
    cdef floating *out = &dw[0, 0, 0, 0]
    cdef floating acc
    for g in prange(G, nogil=True, schedule="static", chunksize=1):
        n0 = g * N // G
        n1 = (g + 1) * N // G
        # part[g] (K, F) = col[n0:n1].T (K, rows) @ dy[n0:n1] (rows, F)
        _gemm(c'N', c'T', <int>F, <int>K, <int>((n1 - n0) * P),
              <floating *>&dy[n0, 0, 0, 0], <int>F, <floating *>&col[n0, 0, 0], <int>K,
              0, &part[g, 0], <int>F)
    for e in prange(KF, nogil=True, schedule="static"):
        acc = part[0, e]
        for g in range(1, G):
            acc = acc + part[g, e]
        out[e] = acc
