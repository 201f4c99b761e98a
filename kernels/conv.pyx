# cython: language_level=3
"""2-D convolution kernels (NHWC, im2col + BLAS GEMM), Cython + OpenMP.

Same contract as ``minicnn.backend.reference`` (outputs first, preallocated,
every element written). Strategy, chosen by measurement on the MNIST conv
shape (as fast as one big 2-thread GEMM within noise, and free of the
OpenMP-then-OpenBLAS thread cliff, see ``minicnn.threads``): OpenMP owns the cores and parallelizes over the
batch; each thread runs im2col (or col2im) for one sample (in the forward: for a group of samples
with at least ``GROUP_ROWS`` output pixels together) and a single-threaded BLAS GEMM on it while
those columns are still in cache. BLAS must
therefore be limited to one thread while these kernels run
(:func:`minicnn.threads.thread_limits` does it); results are correct either way.

Row-major ``C = A @ B`` is computed by column-major BLAS as ``C^T = B^T @ A^T``,
so no array is ever transposed in memory.

``conv2d_backward_weight`` sums per-group partial products in a fixed order
(groups depend only on the batch size), so it is bit-identical for any OpenMP
thread count.
"""

from cython.parallel cimport prange
from libc.stdint cimport int64_t
from openmp cimport omp_get_thread_num
from libc.string cimport memcpy, memset

import numpy as np

ctypedef fused floating:
    float
    double

include "_parallel.pxi"
include "_bias_act_rows.pxi"
include "_ndarray.pxi"
include "_im2col.pxi"
include "_blas.pxi"

# Number of fixed sample groups whose partial weight gradients are summed in
# order by conv2d_backward_weight (independent of the thread count).
DW_GROUPS = 8


# The optional second sgemm (_sgemm64.pxi): for the weight gradient's shape (a long inner
# dimension, 64 x 288 output on the MNIST model) NumPy's OpenBLAS 0.3.31 measured 38-45 ms against
# 53-62 ms for SciPy's OpenBLAS 0.3.30, one thread, same call.
include "_sgemm64.pxi"


cdef inline void _sgemm64_call(char transa, char transb, int64_t m, int64_t n, int64_t k,
                               const float *a, int64_t lda, const float *b, int64_t ldb,
                               float *c, int64_t ldc) noexcept nogil:
    cdef float one = 1, zero = 0
    _sgemm64(&transa, &transb, &m, &n, &k, &one, a, &lda, b, &ldb, &zero, c, &ldc)


# Below this inner dimension K = KH*KW*C (e.g. a first layer on 1-channel images,
# K = 9) the forward product runs as a plain vectorized loop instead of sgemm:
# a shallow K leaves BLAS mostly call and packing overhead. Measured on the
# digits conv (64 samples, 8x8, K=9, F=16): 147 us per forward with one sgemm
# per sample, see RESULTS.md for the loop's time.
cdef enum:
    SMALL_K = 32


cdef extern from "small_gemm.h" nogil:
    void small_gemm_f32(float *c, const float *a, const float *b, Py_ssize_t P, Py_ssize_t K, Py_ssize_t F)
    void small_gemm_f64(double *c, const double *a, const double *b, Py_ssize_t P, Py_ssize_t K, Py_ssize_t F)


cdef inline void _small_matmul(floating *c, const floating *a, const floating *b,
                               Py_ssize_t P, Py_ssize_t K, Py_ssize_t F) noexcept nogil:
    """Row-major ``c (P, F) = a (P, K) @ b (K, F)``, summing over k in order (``small_gemm.h``).

    Register-blocked AVX loops over 16/8 output channels (the Cython loop with a
    local accumulator array measured 118 us for the digits conv forward,
    mostly here; see RESULTS.md for the new time).
    """
    if floating is float:
        small_gemm_f32(c, a, b, P, K, F)
    else:
        small_gemm_f64(c, a, b, P, K, F)


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


# Fewest product rows (output pixels) per im2col + product step of the forward: a sample with fewer
# output pixels than this is grouped with the samples after it (whole samples, the group size a function
# of the shapes only, so every team gives the same bits) and the group runs one sgemm. Per-sample calls
# on small maps were mostly BLAS call and packing overhead: the ResNet-8 style net's stride-2 convs
# (16x16 and 8x8 outputs, batch 64) took 2.2-2.6 ms against ONNX Runtime's 1.4-1.6 ms (RESULTS.md).
cdef enum:
    GROUP_ROWS = 512


cdef void _conv_forward(floating *y, const floating *x, const floating *w, floating *col,
                        const floating *bias, int act, floating alpha,
                        Py_ssize_t N, Py_ssize_t H, Py_ssize_t W, Py_ssize_t C,
                        Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t F, Py_ssize_t Ho, Py_ssize_t Wo,
                        int sh, int sw, int pt, int pl, int dh, int dw) noexcept nogil:
    """im2col + product per group of samples (:data:`GROUP_ROWS`) in parallel; with ``bias`` the
    bias+activation epilogue too."""
    cdef Py_ssize_t P = Ho * Wo, K = KH * KW * C, n, e, g, G
    if N == 0 or P == 0 or F == 0:
        return
    if K == 0:
        for e in range(N * P * F):
            y[e] = 0
        if bias != NULL:
            _bias_act_rows(y, bias, N * P, F, act, alpha)
        return
    g = GROUP_ROWS // P if P < GROUP_ROWS else 1
    if g > N:
        g = N
    G = (N + g - 1) // g
    cdef int nt = team(N * P * K * F // 16)
    if nt > G:
        nt = <int>G
    if nt <= 1:   # no parallel region at all: entering one costs ~1 us even for a team of one
        for n in range(G):
            _conv_group(y, x, w, col, bias, act, alpha, n * g, min(N, (n + 1) * g),
                        H, W, C, KH, KW, F, Ho, Wo, sh, sw, pt, pl, dh, dw)
        return
    for n in prange(G, schedule="dynamic", num_threads=nt):
        _conv_group(y, x, w, col, bias, act, alpha, n * g, min(N, (n + 1) * g),
                    H, W, C, KH, KW, F, Ho, Wo, sh, sw, pt, pl, dh, dw)


cdef inline void _conv_group(floating *y, const floating *x, const floating *w, floating *col,
                             const floating *bias, int act, floating alpha, Py_ssize_t n0, Py_ssize_t n1,
                             Py_ssize_t H, Py_ssize_t W, Py_ssize_t C, Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t F,
                             Py_ssize_t Ho, Py_ssize_t Wo, int sh, int sw, int pt, int pl, int dh,
                             int dw) noexcept nogil:
    """Samples ``[n0, n1)`` of :func:`_conv_forward`: their im2col, one product, the epilogue."""
    cdef Py_ssize_t P = Ho * Wo, K = KH * KW * C, n, M = (n1 - n0) * P
    cdef floating *yg = y + n0 * P * F
    cdef floating *cg = col + n0 * P * K
    for n in range(n0, n1):
        _im2col(col + n * P * K, x + n * H * W * C, H, W, C, KH, KW, Ho, Wo, sh, sw, pt, pl, dh, dw)
    # y (M, F) = col (M, K) @ w (K, F)
    if K < SMALL_K:
        _small_matmul(yg, cg, w, M, K, F)
    else:
        _gemm(c'N', c'N', <int>F, <int>M, <int>K, <floating *>w, <int>F, cg, <int>K, 0, yg, <int>F)
    if bias != NULL:
        # epilogue while this group's output is still in cache
        _bias_act_rows(yg, bias, M, F, act, alpha)


def conv2d_forward(floating[:, :, :, ::1] y, const floating[:, :, :, ::1] x,
                   const floating[:, :, :, ::1] w, floating[:, :, ::1] col,
                   int sh, int sw, int pt, int pl, int dh, int dw):
    """``y = conv(x, w)`` (no bias): im2col into ``col`` then GEMM, per group of samples in parallel."""
    if x.shape[0] == 0 or y.shape[1] * y.shape[2] * w.shape[3] == 0:
        return
    _conv_forward(&y[0, 0, 0, 0], &x[0, 0, 0, 0] if x.shape[1] * x.shape[2] * x.shape[3] else NULL,
                  &w[0, 0, 0, 0] if w.shape[0] * w.shape[1] * w.shape[2] else NULL,
                  &col[0, 0, 0] if col.shape[1] * col.shape[2] else NULL, NULL, 0, 0,
                  x.shape[0], x.shape[1], x.shape[2], x.shape[3], w.shape[0], w.shape[1], w.shape[3],
                  y.shape[1], y.shape[2], sh, sw, pt, pl, dh, dw)


def conv2d_bias_act_forward(y, x, w, b, col, int act, double alpha,
                            int sh, int sw, int pt, int pl, int dh, int dw):
    """``y = f(conv(x, w) + b)``: the conv and the bias+activation epilogue in one pass per sample.

    Takes plain ndarrays (checked against the contract, see ``_ndarray.pxi``):
    on a one-sample prediction the memoryview set-up cost more than the work.
    """
    cdef int t = _float_type(x, "x")
    cdef cnp.ndarray xa = _array(x, t, 4, False, "x"), ya = _array(y, t, 4, True, "y")
    cdef cnp.ndarray wa = _array(w, t, 4, False, "w"), ba = _array(b, t, 1, False, "b")
    cdef cnp.ndarray ca = _array(col, t, 3, True, "col")
    cdef cnp.npy_intp *xd = cnp.PyArray_DIMS(xa)
    cdef cnp.npy_intp *yd = cnp.PyArray_DIMS(ya)
    cdef cnp.npy_intp *wd = cnp.PyArray_DIMS(wa)
    cdef cnp.npy_intp *cd = cnp.PyArray_DIMS(ca)
    if (yd[0] != xd[0] or wd[2] != xd[3] or yd[3] != wd[3] or cnp.PyArray_DIMS(ba)[0] != wd[3]
            or cd[0] != xd[0] or cd[1] != yd[1] * yd[2] or cd[2] != wd[0] * wd[1] * wd[2]):
        raise ValueError(f"conv2d_bias_act_forward shapes do not match: y {y.shape}, x {x.shape}, w {w.shape}, "
                         f"b {b.shape}, col {col.shape}")
    if t == cnp.NPY_FLOAT:
        _conv_forward(<float *>cnp.PyArray_DATA(ya), <const float *>cnp.PyArray_DATA(xa),
                      <const float *>cnp.PyArray_DATA(wa), <float *>cnp.PyArray_DATA(ca),
                      <const float *>cnp.PyArray_DATA(ba), act, <float>alpha,
                      xd[0], xd[1], xd[2], xd[3], wd[0], wd[1], wd[3], yd[1], yd[2], sh, sw, pt, pl, dh, dw)
    else:
        _conv_forward(<double *>cnp.PyArray_DATA(ya), <const double *>cnp.PyArray_DATA(xa),
                      <const double *>cnp.PyArray_DATA(wa), <double *>cnp.PyArray_DATA(ca),
                      <const double *>cnp.PyArray_DATA(ba), act, alpha,
                      xd[0], xd[1], xd[2], xd[3], wd[0], wd[1], wd[3], yd[1], yd[2], sh, sw, pt, pl, dh, dw)


def conv2d_backward_input(floating[:, :, :, ::1] dx, floating[:, :, ::1] dcol,
                          const floating[:, :, :, ::1] dy, const floating[:, :, :, ::1] w,
                          int sh, int sw, int pt, int pl, int dh, int dw):
    """Gradient with respect to the input: ``dcol = dy @ w.T`` then col2im, per sample.

    ``dcol`` is either the full ``(N, P, K)`` workspace (filled, as by the
    reference) or ``S < N`` per-thread slots ``(S, P, K)``: each thread then
    reuses its own slot for every sample it handles (at most ``S`` threads
    run). The slots keep the workspace at a few samples instead of the batch
    (85 MB -> 1.3 MB on the MNIST model's second conv) with the same result.
    """
    cdef Py_ssize_t N = dx.shape[0], H = dx.shape[1], W = dx.shape[2], C = dx.shape[3]
    cdef Py_ssize_t KH = w.shape[0], KW = w.shape[1], F = w.shape[3]
    cdef Py_ssize_t Ho = dy.shape[1], Wo = dy.shape[2]
    cdef Py_ssize_t P = Ho * Wo, K = KH * KW * C, n, slot
    cdef Py_ssize_t S = dcol.shape[0]
    cdef int nt
    if N == 0 or H * W * C == 0:
        return
    if P == 0 or F == 0 or K == 0:
        dx[...] = 0
        dcol[...] = 0
        return
    if S < 1:
        raise ValueError("dcol needs at least one slot")
    nt = team(N * P * K * F // 16)
    if S < N and nt > S:
        nt = <int>S
    cdef floating *wp = <floating *>&w[0, 0, 0, 0]
    for n in prange(N, nogil=True, schedule="dynamic", num_threads=nt):
        slot = n if S >= N else omp_get_thread_num()
        # dcol[slot] (P, K) = dy[n] (P, F) @ w.T (F, K)
        _gemm(c'T', c'N', <int>K, <int>P, <int>F, wp, <int>F,
              <floating *>&dy[n, 0, 0, 0], <int>F, 0, &dcol[slot, 0, 0], <int>K)
        _col2im(&dx[n, 0, 0, 0], &dcol[slot, 0, 0], H, W, C, KH, KW, Ho, Wo,
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
    for g in prange(G, nogil=True, schedule="static", chunksize=1, num_threads=team(N * P * KF // 16)):
        n0 = g * N // G
        n1 = (g + 1) * N // G
        # part[g] (K, F) = col[n0:n1].T (K, rows) @ dy[n0:n1] (rows, F)
        if floating is float and _sgemm64 != NULL:
            _sgemm64_call(c'N', c'T', F, K, (n1 - n0) * P,
                          <const float *>&dy[n0, 0, 0, 0], F, <const float *>&col[n0, 0, 0], K,
                          <float *>&part[g, 0], F)
        else:
            _gemm(c'N', c'T', <int>F, <int>K, <int>((n1 - n0) * P),
                  <floating *>&dy[n0, 0, 0, 0], <int>F, <floating *>&col[n0, 0, 0], <int>K,
                  0, &part[g, 0], <int>F)
    for e in prange(KF, nogil=True, schedule="static", num_threads=team(KF * G)):
        acc = part[0, e]
        for g in range(1, G):
            acc = acc + part[g, e]
        out[e] = acc


# ----------------------------------------------------------------------------- direct conv + 2x2 max-pool (inference)
cdef extern from "direct_pool.h" nogil:
    int direct_conv_maxpool2_f32(float *y, const float *x, const float *w, const float *bias, int act, float alpha,
                                 Py_ssize_t H, Py_ssize_t W, Py_ssize_t C, Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t F,
                                 Py_ssize_t Hp, Py_ssize_t Wp, int sh, int sw, int pt, int pl, int dh, int dw)
    void direct_conv_maxpool2_f64(double *y, const double *x, const double *w, Py_ssize_t H, Py_ssize_t W,
                                  Py_ssize_t C, Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t F, Py_ssize_t Hp,
                                  Py_ssize_t Wp, int sh, int sw, int pt, int pl, int dh, int dw, Py_ssize_t f0)


cdef inline void _direct_pool_one(floating *y, const floating *x, const floating *w, const floating *bias,
                                  int act, floating alpha, Py_ssize_t H, Py_ssize_t W, Py_ssize_t C,
                                  Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t F, Py_ssize_t Hp, Py_ssize_t Wp,
                                  int sh, int sw, int pt, int pl, int dh, int dw) noexcept nogil:
    if floating is float:   # the 3x3 one-channel route applies the bias and activations 0-2 itself
        if direct_conv_maxpool2_f32(y, x, w, bias, act, alpha, H, W, C, KH, KW, F, Hp, Wp, sh, sw, pt, pl, dh, dw):
            return
    else:
        direct_conv_maxpool2_f64(y, x, w, H, W, C, KH, KW, F, Hp, Wp, sh, sw, pt, pl, dh, dw, 0)
    _bias_act_rows(y, bias, Hp * Wp, F, act, alpha)


cdef void _direct_pool(floating *y, const floating *x, const floating *w, const floating *bias, int act,
                       floating alpha, Py_ssize_t N, Py_ssize_t H, Py_ssize_t W, Py_ssize_t C, Py_ssize_t KH,
                       Py_ssize_t KW, Py_ssize_t F, Py_ssize_t Hp, Py_ssize_t Wp,
                       int sh, int sw, int pt, int pl, int dh, int dw) noexcept nogil:
    cdef Py_ssize_t n, ys = Hp * Wp * F, xs = H * W * C
    cdef int nt = team(N * 4 * Hp * Wp * KH * KW * C * F // 16)
    if nt == 1:
        for n in range(N):
            _direct_pool_one(y + n * ys, x + n * xs, w, bias, act, alpha, H, W, C, KH, KW, F, Hp, Wp,
                             sh, sw, pt, pl, dh, dw)
        return
    for n in prange(N, schedule="static", num_threads=nt):
        _direct_pool_one(y + n * ys, x + n * xs, w, bias, act, alpha, H, W, C, KH, KW, F, Hp, Wp,
                         sh, sw, pt, pl, dh, dw)


def conv2d_direct_bias_act_maxpool2_forward(y, x, w, b, int act, double alpha,
                                            int sh, int sw, int pt, int pl, int dh, int dw):
    """``y = maxpool_2x2/2(f(conv(x, w) + b))`` by a direct loop (no im2col, no conv output), per sample.

    ``y (N, Hp, Wp, F)`` with ``Hp, Wp`` the floor-mode pooled size of the conv output; the
    geometry as :func:`conv2d_forward`. Plain ndarrays, checked as in :func:`conv2d_bias_act_forward`.
    """
    _direct_call(y, x, w, b, act, alpha, sh, sw, pt, pl, dh, dw, True)


# ----------------------------------------------------------------------------- direct shallow conv (inference)
cdef extern from "direct_conv.h" nogil:
    int direct_conv_rows_f32(float *y, const float *x, const float *w, const float *bias, int act, float alpha,
                             Py_ssize_t H, Py_ssize_t W, Py_ssize_t C, Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t F,
                             Py_ssize_t Wo, int sh, int sw, int pt, int pl, int dh, int dw,
                             Py_ssize_t oh0, Py_ssize_t oh1)
    int direct_conv_rows_f64(double *y, const double *x, const double *w, const double *bias, int act,
                             double alpha, Py_ssize_t H, Py_ssize_t W, Py_ssize_t C, Py_ssize_t KH, Py_ssize_t KW,
                             Py_ssize_t F, Py_ssize_t Wo, int sh, int sw, int pt, int pl, int dh, int dw,
                             Py_ssize_t oh0, Py_ssize_t oh1)

# Fewest output pixels per work item of the direct conv (whole output rows of one sample): items are cut by the
# shape only, and every output pixel is computed alone, so the bits depend on no team nor batch size.
cdef enum:
    DIRECT_ITEM_PIXELS = 64


cdef inline int _direct_rows(floating *y, const floating *x, const floating *w, const floating *bias, int act,
                             floating alpha, Py_ssize_t H, Py_ssize_t W, Py_ssize_t C, Py_ssize_t KH,
                             Py_ssize_t KW, Py_ssize_t F, Py_ssize_t Wo, int sh, int sw, int pt, int pl, int dh,
                             int dw, Py_ssize_t oh0, Py_ssize_t oh1) noexcept nogil:
    """Rows ``[oh0, oh1)`` of one sample (``direct_conv.h``), then the row epilogue of tanh / sigmoid; 0 when
    out of memory."""
    cdef int ok
    if floating is float:
        ok = direct_conv_rows_f32(y, x, w, bias, act, alpha, H, W, C, KH, KW, F, Wo, sh, sw, pt, pl, dh, dw,
                                  oh0, oh1)
    else:
        ok = direct_conv_rows_f64(y, x, w, bias, act, alpha, H, W, C, KH, KW, F, Wo, sh, sw, pt, pl, dh, dw,
                                  oh0, oh1)
    if ok and act > ACT_LEAKY_RELU:
        _bias_act_rows(y, bias, (oh1 - oh0) * Wo, F, act, alpha)
    return ok


cdef int _direct_conv(floating *y, const floating *x, const floating *w, const floating *bias, int act,
                      floating alpha, Py_ssize_t N, Py_ssize_t H, Py_ssize_t W, Py_ssize_t C, Py_ssize_t KH,
                      Py_ssize_t KW, Py_ssize_t F, Py_ssize_t Ho, Py_ssize_t Wo,
                      int sh, int sw, int pt, int pl, int dh, int dw) noexcept nogil:
    """Every sample's output rows in items of whole rows (:data:`DIRECT_ITEM_PIXELS`), in parallel; the number
    of items that ran out of memory."""
    cdef Py_ssize_t rb = (DIRECT_ITEM_PIXELS + Wo - 1) // Wo, R, item, n, r0, r1
    if rb > Ho:
        rb = Ho
    R = (Ho + rb - 1) // rb
    cdef Py_ssize_t ys = Ho * Wo * F, xs = H * W * C
    cdef int nt = team(N * Ho * Wo * KH * KW * C * F // 16), failed = 0
    # at most one thread per sample, as the im2col route's sample groups: one image split across a team of 2
    # ran 4.6x slower on a loaded machine (128x128x3 -> 16: 0.99 ms against 0.21 on one thread, load 5 on 2 cores)
    if nt > N:
        nt = <int>N
    if nt <= 1:
        for item in range(N * R):
            n = item // R
            r0 = (item % R) * rb
            r1 = min(Ho, r0 + rb)
            failed += 1 - _direct_rows(y + n * ys + r0 * Wo * F, x + n * xs, w, bias, act, alpha, H, W, C, KH, KW,
                                       F, Wo, sh, sw, pt, pl, dh, dw, r0, r1)
        return failed
    for item in prange(N * R, schedule="dynamic", num_threads=nt):
        n = item // R
        r0 = (item % R) * rb
        r1 = min(Ho, r0 + rb)
        failed += 1 - _direct_rows(y + n * ys + r0 * Wo * F, x + n * xs, w, bias, act, alpha, H, W, C, KH, KW,
                                   F, Wo, sh, sw, pt, pl, dh, dw, r0, r1)
    return failed


def conv2d_direct_bias_act_forward(y, x, w, b, int act, double alpha, int sh, int sw, int pt, int pl, int dh, int dw):
    """``y = f(conv(x, w) + b)`` by a direct loop over the input rows (no im2col columns), at inference.

    For shallow convs (small ``K = KH*KW*C``: a first layer on RGB images); any geometry, as
    :func:`conv2d_bias_act_forward`, with the same bits (the same taps summed in the same order). Plain
    ndarrays, checked as there; raises MemoryError when its few-kilobyte scratch cannot be allocated.
    """
    if _direct_call(y, x, w, b, act, alpha, sh, sw, pt, pl, dh, dw, False):
        raise MemoryError("conv2d_direct_bias_act_forward could not allocate its scratch")


cdef int _direct_call(y, x, w, b, int act, double alpha, int sh, int sw, int pt, int pl, int dh, int dw,
                      bint pooled) except -1:
    """The argument checks of the two direct kernels, then the kernel (``pooled``: conv + 2x2 max-pool);
    returns the number of work items that could not allocate their scratch."""
    name = "conv2d_direct_bias_act_maxpool2_forward" if pooled else "conv2d_direct_bias_act_forward"
    cdef int t = _float_type(x, "x")
    cdef cnp.ndarray xa = _array(x, t, 4, False, "x"), ya = _array(y, t, 4, True, "y")
    cdef cnp.ndarray wa = _array(w, t, 4, False, "w"), ba = _array(b, t, 1, False, "b")
    cdef cnp.npy_intp *xd = cnp.PyArray_DIMS(xa)
    cdef cnp.npy_intp *yd = cnp.PyArray_DIMS(ya)
    cdef cnp.npy_intp *wd = cnp.PyArray_DIMS(wa)
    if (yd[0] != xd[0] or wd[2] != xd[3] or yd[3] != wd[3] or cnp.PyArray_DIMS(ba)[0] != wd[3]):
        raise ValueError(f"{name} shapes do not match: y {y.shape}, x {x.shape}, w {w.shape}, b {b.shape}")
    if yd[0] * yd[1] * yd[2] * yd[3] == 0:
        return 0
    if pooled:
        if t == cnp.NPY_FLOAT:
            _direct_pool(<float *>cnp.PyArray_DATA(ya), <const float *>cnp.PyArray_DATA(xa),
                         <const float *>cnp.PyArray_DATA(wa), <const float *>cnp.PyArray_DATA(ba), act,
                         <float>alpha, xd[0], xd[1], xd[2], xd[3], wd[0], wd[1], wd[3], yd[1], yd[2],
                         sh, sw, pt, pl, dh, dw)
        else:
            _direct_pool(<double *>cnp.PyArray_DATA(ya), <const double *>cnp.PyArray_DATA(xa),
                         <const double *>cnp.PyArray_DATA(wa), <const double *>cnp.PyArray_DATA(ba), act, alpha,
                         xd[0], xd[1], xd[2], xd[3], wd[0], wd[1], wd[3], yd[1], yd[2], sh, sw, pt, pl, dh, dw)
        return 0
    if wd[0] * wd[1] * wd[2] == 0:   # no taps: f(0 + b), as the im2col route
        conv2d_bias_act_forward(y, x, w, b, np.empty((yd[0], yd[1] * yd[2], 0), y.dtype), act, alpha,
                                sh, sw, pt, pl, dh, dw)
        return 0
    if t == cnp.NPY_FLOAT:
        return _direct_conv(<float *>cnp.PyArray_DATA(ya), <const float *>cnp.PyArray_DATA(xa),
                            <const float *>cnp.PyArray_DATA(wa), <const float *>cnp.PyArray_DATA(ba), act,
                            <float>alpha, xd[0], xd[1], xd[2], xd[3], wd[0], wd[1], wd[3], yd[1], yd[2],
                            sh, sw, pt, pl, dh, dw)
    return _direct_conv(<double *>cnp.PyArray_DATA(ya), <const double *>cnp.PyArray_DATA(xa),
                        <const double *>cnp.PyArray_DATA(wa), <const double *>cnp.PyArray_DATA(ba), act,
                        alpha, xd[0], xd[1], xd[2], xd[3], wd[0], wd[1], wd[3], yd[1], yd[2],
                        sh, sw, pt, pl, dh, dw)
