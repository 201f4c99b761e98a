# cython: language_level=3
"""Max and average 2-D pooling kernels (NHWC), Cython + OpenMP over the batch.

Same contract as ``minicnn.backend.reference``: max-pool ``argmax`` is int64
``h * W + w`` of the first maximum in row-major window order (padding counts
as ``-inf``, NaN wins like ``np.argmax``); avg-pool divides by the number of
valid (non-padding) elements. Every window loop runs over the channels
innermost, which are contiguous in NHWC.
"""

from cython.parallel cimport prange
from libc.math cimport INFINITY
from libc.stdint cimport int64_t
from libc.string cimport memset

ctypedef fused floating:
    float
    double

include "_parallel.pxi"
include "_ndarray.pxi"


cdef inline void _max_one(floating *y, int64_t *am, const floating *x,
                          Py_ssize_t H, Py_ssize_t W, Py_ssize_t C, Py_ssize_t Ho, Py_ssize_t Wo,
                          int kh, int kw, int sh, int sw, int pt, int pl) noexcept nogil:
    """Max-pool one ``(H, W, C)`` sample into ``(Ho, Wo, C)`` values and winners."""
    cdef Py_ssize_t oh, ow, i, j, ih, iw, c, pos
    cdef floating v, best
    cdef int take
    cdef floating ninf = -INFINITY
    cdef const floating *src
    for oh in range(Ho):
        for ow in range(Wo):
            ih = oh * sh - pt
            iw = ow * sw - pl
            pos = ih * W + iw
            if 0 <= ih < H and 0 <= iw < W:
                src = x + pos * C
                for c in range(C):
                    y[c] = src[c]
                    am[c] = pos
            else:
                for c in range(C):
                    y[c] = ninf
                    am[c] = pos
            for i in range(kh):
                ih = oh * sh - pt + i
                if ih < 0 or ih >= H:
                    continue
                for j in range(kw):
                    iw = ow * sw - pl + j
                    if (i == 0 and j == 0) or iw < 0 or iw >= W:
                        continue
                    pos = ih * W + iw
                    src = x + pos * C
                    for c in range(C):
                        v = src[c]
                        best = y[c]
                        # strict '>' keeps the first maximum; a NaN wins and then stays.
                        # Unconditional stores of a select (no branch) let GCC vectorize
                        # this loop over the channels (measured 2.7x faster on MNIST).
                        take = (v > best) | ((v != v) & (best == best))
                        y[c] = v if take else best
                        am[c] = pos if take else am[c]
            y += C
            am += C


cdef void _maxpool_forward(floating *y, int64_t *argmax, const floating *x,
                           Py_ssize_t N, Py_ssize_t H, Py_ssize_t W, Py_ssize_t C, Py_ssize_t Ho, Py_ssize_t Wo,
                           int kh, int kw, int sh, int sw, int pt, int pl) noexcept nogil:
    cdef Py_ssize_t n
    if N == 0 or Ho * Wo * C == 0:
        return
    cdef int nt = team(N * Ho * Wo * C * kh * kw)
    if nt == 1:   # no parallel region at all: entering one costs ~1 us even for a team of one
        for n in range(N):
            _max_one(y + n * Ho * Wo * C, argmax + n * Ho * Wo * C, x + n * H * W * C,
                     H, W, C, Ho, Wo, kh, kw, sh, sw, pt, pl)
        return
    for n in prange(N, schedule="static", num_threads=nt):
        _max_one(y + n * Ho * Wo * C, argmax + n * Ho * Wo * C, x + n * H * W * C,
                 H, W, C, Ho, Wo, kh, kw, sh, sw, pt, pl)


def maxpool2d_forward(y, argmax, x, int kh, int kw, int sh, int sw, int pt, int pl):
    """Max over each window; ``argmax`` records the winner as ``h * W + w``.

    Takes plain ndarrays (checked against the contract, see ``_ndarray.pxi``):
    on a one-sample prediction the memoryview set-up cost more than the work.
    """
    cdef int t = _float_type(x, "x")
    cdef cnp.ndarray xa = _array(x, t, 4, False, "x")
    cdef cnp.ndarray ya = _array(y, t, 4, True, "y")
    cdef cnp.ndarray aa = _array(argmax, cnp.NPY_INT64, 4, True, "argmax")
    cdef cnp.npy_intp *xd = cnp.PyArray_DIMS(xa)
    cdef cnp.npy_intp *yd = cnp.PyArray_DIMS(ya)
    cdef cnp.npy_intp *ad = cnp.PyArray_DIMS(aa)
    if yd[0] != xd[0] or yd[3] != xd[3] or ad[0] != yd[0] or ad[1] != yd[1] or ad[2] != yd[2] or ad[3] != yd[3]:
        raise ValueError(f"maxpool2d_forward shapes do not match: y {y.shape}, argmax {argmax.shape}, x {x.shape}")
    if t == cnp.NPY_FLOAT:
        _maxpool_forward(<float *>cnp.PyArray_DATA(ya), <int64_t *>cnp.PyArray_DATA(aa),
                         <const float *>cnp.PyArray_DATA(xa), xd[0], xd[1], xd[2], xd[3], yd[1], yd[2],
                         kh, kw, sh, sw, pt, pl)
    else:
        _maxpool_forward(<double *>cnp.PyArray_DATA(ya), <int64_t *>cnp.PyArray_DATA(aa),
                         <const double *>cnp.PyArray_DATA(xa), xd[0], xd[1], xd[2], xd[3], yd[1], yd[2],
                         kh, kw, sh, sw, pt, pl)


def maxpool2d_backward(floating[:, :, :, ::1] dx, const floating[:, :, :, ::1] dy,
                       const int64_t[:, :, :, ::1] argmax):
    """Route each output gradient to its window's winner (overlaps accumulate)."""
    cdef Py_ssize_t N = dx.shape[0], HW = dx.shape[1] * dx.shape[2], C = dx.shape[3]
    cdef Py_ssize_t Q = dy.shape[1] * dy.shape[2], n, q, c
    cdef int64_t a
    cdef floating *dxn
    cdef const floating *dyq
    cdef const int64_t *amq
    if N == 0 or HW * C == 0:
        return
    for n in prange(N, nogil=True, schedule="static", num_threads=team(N * (HW + Q) * C)):
        dxn = &dx[n, 0, 0, 0]
        memset(dxn, 0, HW * C * sizeof(floating))
        for q in range(Q):
            dyq = &dy[n, 0, 0, 0] + q * C
            amq = &argmax[n, 0, 0, 0] + q * C
            for c in range(C):
                a = amq[c]
                if 0 <= a < HW:          # a window made only of padding has no winner
                    dxn[a * C + c] += dyq[c]


cdef inline Py_ssize_t _valid(Py_ssize_t start, int k, Py_ssize_t size) noexcept nogil:
    """Number of indices of ``[start, start + k)`` inside ``[0, size)``."""
    cdef Py_ssize_t lo = start if start > 0 else 0
    cdef Py_ssize_t hi = start + k if start + k < size else size
    return hi - lo if hi > lo else 0


def avgpool2d_forward(floating[:, :, :, ::1] y, const floating[:, :, :, ::1] x,
                      int kh, int kw, int sh, int sw, int pt, int pl):
    """Mean over the valid (non-padding) elements of each window."""
    cdef Py_ssize_t N = x.shape[0], H = x.shape[1], W = x.shape[2], C = x.shape[3]
    cdef Py_ssize_t Ho = y.shape[1], Wo = y.shape[2], n, oh, ow, i, j, ih, iw, c
    cdef floating *yq
    cdef const floating *src
    cdef floating count
    if N == 0 or Ho * Wo * C == 0:
        return
    for n in prange(N, nogil=True, schedule="static", num_threads=team(N * Ho * Wo * C * kh * kw)):
        for oh in range(Ho):
            for ow in range(Wo):
                yq = &y[n, oh, ow, 0]
                for c in range(C):
                    yq[c] = 0
                for i in range(kh):
                    ih = oh * sh - pt + i
                    if ih < 0 or ih >= H:
                        continue
                    for j in range(kw):
                        iw = ow * sw - pl + j
                        if iw < 0 or iw >= W:
                            continue
                        src = &x[n, ih, iw, 0]
                        for c in range(C):
                            yq[c] += src[c]
                count = <floating>(_valid(oh * sh - pt, kh, H) * _valid(ow * sw - pl, kw, W))
                for c in range(C):
                    yq[c] = yq[c] / count


def avgpool2d_backward(floating[:, :, :, ::1] dx, const floating[:, :, :, ::1] dy,
                       int kh, int kw, int sh, int sw, int pt, int pl):
    """Spread each output gradient evenly over its window's valid elements."""
    cdef Py_ssize_t N = dx.shape[0], H = dx.shape[1], W = dx.shape[2], C = dx.shape[3]
    cdef Py_ssize_t Ho = dy.shape[1], Wo = dy.shape[2], n, oh, ow, i, j, ih, iw, c
    cdef floating *dst
    cdef const floating *g
    cdef floating count
    if N == 0 or H * W * C == 0:
        return
    for n in prange(N, nogil=True, schedule="static", num_threads=team(N * Ho * Wo * C * kh * kw)):
        memset(&dx[n, 0, 0, 0], 0, H * W * C * sizeof(floating))
        for oh in range(Ho):
            for ow in range(Wo):
                g = &dy[n, oh, ow, 0]
                count = <floating>(_valid(oh * sh - pt, kh, H) * _valid(ow * sw - pl, kw, W))
                for i in range(kh):
                    ih = oh * sh - pt + i
                    if ih < 0 or ih >= H:
                        continue
                    for j in range(kw):
                        iw = ow * sw - pl + j
                        if iw < 0 or iw >= W:
                            continue
                        dst = &dx[n, ih, iw, 0]
                        for c in range(C):
                            dst[c] += g[c] / count
