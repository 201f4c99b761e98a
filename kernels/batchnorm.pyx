# cython: language_level=3
"""Batch normalization kernels on ``(M, C)`` arrays (rows = samples x pixels), Cython + OpenMP over row blocks.

Shape letters: M rows, C channels, B row blocks. ``x, y, dy, dx (M, C)``; ``mean, var, gamma, beta, dgamma,
dbeta (C,)``; ``partial (B, 2, C)`` float64 scratch. Same contract as ``minicnn.backend.reference``: the rows
are split into ``B`` contiguous blocks ``[b*M//B, (b+1)*M//B)``; each block's column sums are accumulated in
float64 into its own slot of ``partial`` (one parallel work item per block) and the slots are then added in
block order on one thread: the result depends on ``B``, never on the thread count. Statistics take two passes
(the mean, then the squared deviations from it, as NumPy's ``var``); the backward recomputes ``xhat`` from
``x`` instead of reading a stored copy. ``act`` (a code of ``minicnn.backend.activation_codes``) is applied
after the shift; its derivative comes from the output ``y``.
"""

from cython.parallel cimport prange
from libc.math cimport sqrt, sqrtf
from libc.stdint cimport uint32_t, uint64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy

ctypedef fused floating:
    float
    double

include "_parallel.pxi"
include "_bias_act_rows.pxi"

# Rows per parallel work item of the element-wise normalize pass (any value gives the same bits).
DEF NORM_ROWS = 64


# The float32 column sums in C with GCC vector extensions (portable: AVX on an AVX build, SSE pairs at
# baseline): 16 channels' float64 accumulators stay in registers across the rows of a block, where the
# Cython loops kept ``acc`` in memory (a store-to-load chain per row). Each column is still summed row by
# row in float64, as the scalar loops do: the same bits. Measured, one thread, avx2 build, the training
# forward (statistics + normalize), 16 channels, 4096-262144 rows: 1.11-1.28x (medians of 15 interleaved
# calls); with 32 channels equal, with 64-128 slower (0.82-0.94x: a 16-column block per pass re-reads
# every row), so it runs below 32 channels only.
cdef extern from *:
    """
    typedef double bn_v4d __attribute__((vector_size(32), aligned(8)));
    typedef float bn_v4f __attribute__((vector_size(16), aligned(4)));
    #define BN_LDF(p) (*(const bn_v4f *)(p))
    #define BN_LDD(p) (*(const bn_v4d *)(p))
    #define BN_STD(p, v) (*(bn_v4d *)(p) = (v))
    #define BN_CVT(v) __builtin_convertvector((v), bn_v4d)

    /* acc[0, 16) = per column of x[r0:r1, 0:16) (row stride C), the sum of x, or of (x - center)**2 */
    static inline void bn_sum16_f32(double *acc, const float *x, Py_ssize_t r0, Py_ssize_t r1, Py_ssize_t C,
                                    const double *center)
    {
        bn_v4d a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
        if (center == NULL) {
            for (Py_ssize_t r = r0; r < r1; r++) {
                const float *p = x + r * C;
                a0 = a0 + BN_CVT(BN_LDF(p));     a1 = a1 + BN_CVT(BN_LDF(p + 4));
                a2 = a2 + BN_CVT(BN_LDF(p + 8)); a3 = a3 + BN_CVT(BN_LDF(p + 12));
            }
        } else {
            const bn_v4d m0 = BN_LDD(center), m1 = BN_LDD(center + 4);
            const bn_v4d m2 = BN_LDD(center + 8), m3 = BN_LDD(center + 12);
            for (Py_ssize_t r = r0; r < r1; r++) {
                const float *p = x + r * C;
                bn_v4d d0 = BN_CVT(BN_LDF(p)) - m0, d1 = BN_CVT(BN_LDF(p + 4)) - m1;
                bn_v4d d2 = BN_CVT(BN_LDF(p + 8)) - m2, d3 = BN_CVT(BN_LDF(p + 12)) - m3;
                a0 = a0 + d0 * d0; a1 = a1 + d1 * d1; a2 = a2 + d2 * d2; a3 = a3 + d3 * d3;
            }
        }
        BN_STD(acc, a0); BN_STD(acc + 4, a1); BN_STD(acc + 8, a2); BN_STD(acc + 12, a3);
    }

    """
    void bn_sum16_f32(double *acc, const float *x, Py_ssize_t r0, Py_ssize_t r1, Py_ssize_t C,
                      const double *center) noexcept nogil


cdef inline floating _inv_std(floating v, floating eps) noexcept nogil:
    if floating is float:
        return (<float>1) / sqrtf(v + eps)
    else:
        return 1 / sqrt(v + eps)


cdef inline void _sum_rows(double *acc, const floating *x, Py_ssize_t r0, Py_ssize_t r1, Py_ssize_t C,
                           const double *center) noexcept nogil:
    """``acc[c] = sum(x[r, c])`` over rows ``[r0, r1)``, or of ``(x - center)**2`` when ``center`` is given.

    In float32 with 16-31 channels, the first 16 columns by ``bn_sum16_f32`` (the same sums in registers),
    the rest here.
    """
    cdef Py_ssize_t r, c, c0 = 0
    cdef const floating *row
    cdef double d
    if floating is float and C < 32:   # one block per row: from 32 channels up, re-reading the rows cost more
        while c0 + 16 <= C:
            if center == NULL:
                bn_sum16_f32(acc + c0, x + c0, r0, r1, C, NULL)
            else:
                bn_sum16_f32(acc + c0, x + c0, r0, r1, C, center + c0)
            c0 += 16
    for c in range(c0, C):
        acc[c] = 0
    if c0 == C:
        return
    for r in range(r0, r1):
        row = x + r * C
        if center == NULL:
            for c in range(c0, C):
                acc[c] += row[c]
        else:
            for c in range(c0, C):
                d = row[c] - center[c]
                acc[c] += d * d


cdef inline void _normalize_rows(floating *y, const floating *x, Py_ssize_t r0, Py_ssize_t r1, Py_ssize_t C,
                                 const floating *mean, const floating *inv_std, const floating *gamma,
                                 const floating *beta, int act, floating a) noexcept nogil:
    """``y = f((x - mean) * inv_std * gamma + beta)`` on rows ``[r0, r1)``."""
    cdef Py_ssize_t r, c
    cdef floating *yr
    cdef const floating *xr
    for r in range(r0, r1):
        yr = y + r * C
        xr = x + r * C
        for c in range(C):
            yr[c] = (xr[c] - mean[c]) * inv_std[c] * gamma[c]
    _bias_act_rows(y + r0 * C, beta, r1 - r0, C, act, a)


cdef inline floating _keep_if_positive(floating g, floating v) noexcept nogil:
    """``g if v > 0 else 0`` as an AND of the bits: GCC vectorizes it (relu backward of a 64x32x32x16 map,
    1 thread: 1.5 ms, against 15.8 ms for the select)."""
    cdef uint32_t b32
    cdef uint64_t b64
    if floating is float:
        memcpy(&b32, &g, 4)
        b32 = b32 & (0 - <uint32_t>(v > 0))
        memcpy(&g, &b32, 4)
    else:
        memcpy(&b64, &g, 8)
        b64 = b64 & (0 - <uint64_t>(v > 0))
        memcpy(&g, &b64, 8)
    return g


cdef inline floating _act_grad(floating g, floating v, int act, floating a) noexcept nogil:
    """``g * f'`` with ``f'`` computed from the output ``v`` (as ``bias_act_backward``)."""
    if act == ACT_RELU:
        return g if v > 0 else 0
    elif act == ACT_LEAKY_RELU:
        return g if v > 0 else g * a
    elif act == ACT_TANH:
        return g * (1 - v * v)
    elif act == ACT_SIGMOID:
        return g * (v * (1 - v))
    return g


def batchnorm_inference_forward(floating[:, ::1] y, const floating[:, ::1] x, const floating[::1] mean,
                                const floating[::1] var, const floating[::1] gamma, const floating[::1] beta,
                                double eps, int act, double alpha):
    """``y = f((x - mean) * inv_std * gamma + beta)`` with the given statistics (inference)."""
    cdef Py_ssize_t M = x.shape[0], C = x.shape[1], c, k, K
    cdef floating a = <floating>alpha
    cdef floating e = <floating>eps
    cdef floating *inv_std
    if M == 0 or C == 0:
        return
    inv_std = <floating *>_channels(C, sizeof(floating))
    for c in range(C):
        inv_std[c] = _inv_std(var[c], e)
    _normalize(&y[0, 0], &x[0, 0], M, C, &mean[0], inv_std, &gamma[0], &beta[0], act, a)
    free(inv_std)


cdef void *_channels(Py_ssize_t C, size_t size) except NULL:
    """``C`` values of ``size`` bytes (a per-channel vector; the only allocation, O(C))."""
    cdef void *p = malloc(C * size)
    if p == NULL:
        raise MemoryError()
    return p


cdef void _normalize(floating *y, const floating *x, Py_ssize_t M, Py_ssize_t C, const floating *mean,
                     const floating *inv_std, const floating *gamma, const floating *beta, int act,
                     floating a) noexcept nogil:
    """:func:`_normalize_rows` over all rows, in blocks of ``NORM_ROWS`` (element-wise: any split, same bits)."""
    cdef Py_ssize_t k, K = (M + NORM_ROWS - 1) // NORM_ROWS
    for k in prange(K, schedule="static", num_threads=team(M * C)):
        _normalize_rows(y, x, k * NORM_ROWS, min((k + 1) * NORM_ROWS, M), C, mean, inv_std, gamma, beta, act, a)


cdef void _block_sums(double *partial, const floating *x, Py_ssize_t M, Py_ssize_t C, Py_ssize_t B,
                      Py_ssize_t slot, const double *center) noexcept nogil:
    """Slot ``slot`` of each block's ``partial[b]``: :func:`_sum_rows` over rows ``[b*M//B, (b+1)*M//B)``."""
    cdef Py_ssize_t b
    for b in prange(B, schedule="static", num_threads=team(M * C)):
        _sum_rows(partial + (2 * b + slot) * C, x, b * M // B, (b + 1) * M // B, C, center)


cdef void _combine(double *total, const double *partial, Py_ssize_t B, Py_ssize_t C, Py_ssize_t slot) noexcept nogil:
    """``total[c] = sum over b in order of partial[b, slot, c]`` (one thread: fixed order)."""
    cdef Py_ssize_t b, c
    for c in range(C):
        total[c] = partial[slot * C + c]
    for b in range(1, B):
        for c in range(C):
            total[c] += partial[(2 * b + slot) * C + c]


def batchnorm_forward(floating[:, ::1] y, floating[::1] mean, floating[::1] var, double[:, :, ::1] partial,
                      const floating[:, ::1] x, const floating[::1] gamma, const floating[::1] beta,
                      double eps, int act, double alpha):
    """Training forward: the batch ``mean`` and biased ``var`` of each column of ``x``, then normalize."""
    cdef Py_ssize_t M = x.shape[0], C = x.shape[1], B = partial.shape[0], c
    cdef floating a = <floating>alpha
    cdef floating e = <floating>eps
    cdef double *center
    cdef floating *inv_std
    if C == 0:
        return
    if M == 0:
        mean[...] = 0
        var[...] = 0
        return
    if B == 0:
        raise ValueError("partial needs at least one block; received partial.shape[0]=0")
    center = <double *>_channels(C, sizeof(double))
    inv_std = <floating *>_channels(C, sizeof(floating))
    with nogil:
        _block_sums(&partial[0, 0, 0], &x[0, 0], M, C, B, 0, NULL)
        _combine(center, &partial[0, 0, 0], B, C, 0)
        for c in range(C):
            center[c] = center[c] / M
            mean[c] = <floating>center[c]
        _block_sums(&partial[0, 0, 0], &x[0, 0], M, C, B, 1, center)
        _combine(center, &partial[0, 0, 0], B, C, 1)
        for c in range(C):
            var[c] = <floating>(center[c] / M)
            inv_std[c] = _inv_std(var[c], e)
        _normalize(&y[0, 0], &x[0, 0], M, C, &mean[0], inv_std, &gamma[0], &beta[0], act, a)
    free(center)
    free(inv_std)


cdef inline void _grad_sum_rows(double *acc, const floating *dy, const floating *y, const floating *x,
                                Py_ssize_t r0, Py_ssize_t r1, Py_ssize_t C, const floating *mean,
                                const floating *inv_std, int act, floating a) noexcept nogil:
    """``acc[0, c] = sum(g)``, ``acc[1, c] = sum(g * xhat)`` over rows ``[r0, r1)``, ``g = dy * f'(y)``.

    (The register-blocked form of :func:`_sum_rows` measured no faster here: 0.88 ns per element either way.)
    """
    cdef Py_ssize_t r, c
    cdef floating g, xhat
    for c in range(2 * C):
        acc[c] = 0
    for r in range(r0, r1):
        # identity and relu (the common cases) in loops of their own: they vectorize
        if act == ACT_IDENTITY:   # y is not read
            for c in range(C):
                g = dy[r * C + c]
                xhat = (x[r * C + c] - mean[c]) * inv_std[c]
                acc[c] += g
                acc[C + c] += <double>g * xhat
        elif act == ACT_RELU:
            for c in range(C):
                g = _keep_if_positive(dy[r * C + c], y[r * C + c])
                xhat = (x[r * C + c] - mean[c]) * inv_std[c]
                acc[c] += g
                acc[C + c] += <double>g * xhat
        else:
            for c in range(C):
                g = _act_grad(dy[r * C + c], y[r * C + c], act, a)
                xhat = (x[r * C + c] - mean[c]) * inv_std[c]
                acc[c] += g
                acc[C + c] += <double>g * xhat


cdef inline void _grad_rows(floating *dx, const floating *dy, const floating *y, const floating *x,
                            Py_ssize_t r0, Py_ssize_t r1, Py_ssize_t C, const floating *mean,
                            const floating *inv_std, const floating *scale, const floating *dgamma,
                            const floating *dbeta, floating m, int act, floating a) noexcept nogil:
    """``dx = scale * (M * g - dbeta - xhat * dgamma)`` on rows ``[r0, r1)``."""
    cdef Py_ssize_t r, c
    cdef floating g, xhat
    for r in range(r0, r1):
        if act == ACT_IDENTITY:
            for c in range(C):
                xhat = (x[r * C + c] - mean[c]) * inv_std[c]
                dx[r * C + c] = scale[c] * (m * dy[r * C + c] - dbeta[c] - xhat * dgamma[c])
        elif act == ACT_RELU:
            for c in range(C):
                g = _keep_if_positive(dy[r * C + c], y[r * C + c])
                xhat = (x[r * C + c] - mean[c]) * inv_std[c]
                dx[r * C + c] = scale[c] * (m * g - dbeta[c] - xhat * dgamma[c])
        else:
            for c in range(C):
                g = _act_grad(dy[r * C + c], y[r * C + c], act, a)
                xhat = (x[r * C + c] - mean[c]) * inv_std[c]
                dx[r * C + c] = scale[c] * (m * g - dbeta[c] - xhat * dgamma[c])


def batchnorm_backward(floating[:, ::1] dx, floating[::1] dgamma, floating[::1] dbeta, double[:, :, ::1] partial,
                       const floating[:, ::1] dy, const floating[:, ::1] y, const floating[:, ::1] x,
                       const floating[::1] mean, const floating[::1] var, const floating[::1] gamma,
                       double eps, int act, double alpha):
    """Gradients of :func:`batchnorm_forward` (training statistics) from ``dy``; ``y`` is its output."""
    cdef Py_ssize_t M = x.shape[0], C = x.shape[1], B = partial.shape[0], b, c, k
    cdef Py_ssize_t K = (M + NORM_ROWS - 1) // NORM_ROWS
    cdef floating a = <floating>alpha
    cdef floating e = <floating>eps
    cdef floating m = <floating>M
    cdef double *total
    cdef floating *inv_std
    if C == 0:
        return
    if M == 0:
        dgamma[...] = 0
        dbeta[...] = 0
        return
    if B == 0:
        raise ValueError("partial needs at least one block; received partial.shape[0]=0")
    total = <double *>_channels(2 * C, sizeof(double))
    inv_std = <floating *>_channels(2 * C, sizeof(floating))   # then scale = gamma * inv_std / M
    with nogil:
        for c in range(C):
            inv_std[c] = _inv_std(var[c], e)
            inv_std[C + c] = gamma[c] * inv_std[c] / m
        for b in prange(B, schedule="static", num_threads=team(M * C)):
            _grad_sum_rows(&partial[b, 0, 0], &dy[0, 0], &y[0, 0], &x[0, 0], b * M // B, (b + 1) * M // B, C,
                           &mean[0], inv_std, act, a)
        _combine(total, &partial[0, 0, 0], B, C, 0)
        _combine(total + C, &partial[0, 0, 0], B, C, 1)
        for c in range(C):
            dbeta[c] = <floating>total[c]
            dgamma[c] = <floating>total[C + c]
        for k in prange(K, schedule="static", num_threads=team(M * C)):
            _grad_rows(&dx[0, 0], &dy[0, 0], &y[0, 0], &x[0, 0], k * NORM_ROWS, min((k + 1) * NORM_ROWS, M), C,
                       &mean[0], inv_std, inv_std + C, &dgamma[0], &dbeta[0], m, act, a)
    free(total)
    free(inv_std)
