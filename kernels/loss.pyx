# cython: language_level=3
"""Fused softmax cross-entropy (loss and gradient in one pass over the logits), Cython.

Same contract as ``minicnn.backend.reference.softmax_xent``: rows are
processed in float64 (max-shifted, so huge logits never overflow) and the
gradient ``(softmax - onehot) / N`` is written in the data precision. The
problem is tiny (batch x classes), so it runs on the calling thread.
"""

from libc.math cimport exp, log
from libc.stdint cimport int64_t

ctypedef fused floating:
    float
    double


def softmax_xent(floating[:, ::1] grad, const floating[:, ::1] logits, const int64_t[::1] labels):
    """Write ``grad`` and return the mean loss (a Python float); ValueError on a label out of range."""
    cdef Py_ssize_t N = logits.shape[0], K = logits.shape[1], n, k
    cdef int64_t label
    cdef double mx, s, lse, total = 0.0, inv_n
    cdef bint bad = False
    if N == 0:
        return float("nan")
    inv_n = 1.0 / N
    with nogil:
        for n in range(N):
            label = labels[n]
            if label < 0 or label >= K:
                bad = True
                break
            mx = logits[n, 0]
            for k in range(1, K):
                if logits[n, k] > mx:
                    mx = logits[n, k]
            s = 0.0
            for k in range(K):
                s = s + exp(logits[n, k] - mx)
            lse = log(s)
            total = total + (lse - (logits[n, label] - mx))
            for k in range(K):
                grad[n, k] = <floating>((exp(logits[n, k] - mx) / s - (1.0 if k == label else 0.0)) * inv_n)
    if bad:
        raise ValueError(f"labels must be in [0, {K}); received a label {label}")
    return total * inv_n


# ----------------------------------------------------------------------------- prediction softmax (float64)
# The passes around NumPy's exp (see minicnn.backend.reference.softmax_shift_rows): z = logits - row max, then
# p /= row sum with the row sum taken in NumPy's pairwise order, so the probabilities equal the reference bit for
# bit. Tiny problems (batch x classes): the calling thread, no OpenMP. The def wrappers take plain ndarrays
# (_ndarray.pxi): typed memoryviews and fused-type dispatch cost ~1 us, as much as the loops on a batch of 64.

include "_ndarray.pxi"


cdef void _shift_rows(double *z, const floating *logits, Py_ssize_t N, Py_ssize_t K) noexcept nogil:
    cdef Py_ssize_t n, k
    cdef double mx, v
    for n in range(N):
        mx = logits[n * K]
        for k in range(1, K):
            v = logits[n * K + k]
            if v > mx or v != v:   # v != v: NaN, kept (nothing compares above it afterwards)
                mx = v
        for k in range(K):
            z[n * K + k] = <double>logits[n * K + k] - mx


def softmax_shift_rows(z, logits):
    """``z = logits - max(logits, axis=1)`` in float64 (a row holding NaN becomes all NaN, as NumPy's max)."""
    cdef int t = _float_type(logits, "logits")
    cdef cnp.ndarray la = _array(logits, t, 2, False, "logits")
    cdef cnp.ndarray za = _array(z, cnp.NPY_DOUBLE, 2, True, "z")
    cdef cnp.npy_intp *ld = cnp.PyArray_DIMS(la)
    cdef cnp.npy_intp *zd = cnp.PyArray_DIMS(za)
    if zd[0] != ld[0] or zd[1] != ld[1]:
        raise ValueError(f"z has shape {z.shape}, logits {logits.shape}: they must be equal")
    if ld[1] == 0:
        return
    with nogil:
        if t == cnp.NPY_FLOAT:
            _shift_rows(<double *>cnp.PyArray_DATA(za), <const float *>cnp.PyArray_DATA(la), ld[0], ld[1])
        else:
            _shift_rows(<double *>cnp.PyArray_DATA(za), <const double *>cnp.PyArray_DATA(la), ld[0], ld[1])


cdef double _pairwise_sum(const double *a, Py_ssize_t n) noexcept nogil:
    """NumPy's ``pairwise_sum_DOUBLE`` (numpy/_core/src/umath/loops_utils.h.src), same order of additions."""
    cdef double r0, r1, r2, r3, r4, r5, r6, r7, res
    cdef Py_ssize_t i, n2
    if n < 8:
        res = 0.0
        for i in range(n):
            res = res + a[i]
        return res
    if n <= 128:
        r0 = a[0]; r1 = a[1]; r2 = a[2]; r3 = a[3]
        r4 = a[4]; r5 = a[5]; r6 = a[6]; r7 = a[7]
        i = 8
        while i < n - (n % 8):
            r0 = r0 + a[i]; r1 = r1 + a[i + 1]; r2 = r2 + a[i + 2]; r3 = r3 + a[i + 3]
            r4 = r4 + a[i + 4]; r5 = r5 + a[i + 5]; r6 = r6 + a[i + 6]; r7 = r7 + a[i + 7]
            i += 8
        res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
        while i < n:
            res = res + a[i]
            i += 1
        return res
    n2 = n // 2
    n2 -= n2 % 8
    return _pairwise_sum(a, n2) + _pairwise_sum(a + n2, n - n2)


def softmax_normalize_rows(p):
    """``p /= p.sum(axis=1)`` in place; the row sum is ``0.0 +`` NumPy's pairwise sum of the row."""
    cdef cnp.ndarray pa = _array(p, cnp.NPY_DOUBLE, 2, True, "p")
    cdef Py_ssize_t N = cnp.PyArray_DIMS(pa)[0], K = cnp.PyArray_DIMS(pa)[1], n, k
    cdef double *row = <double *>cnp.PyArray_DATA(pa)
    cdef double s
    with nogil:
        for n in range(N):
            s = 0.0 + _pairwise_sum(row, K)
            for k in range(K):
                row[k] = row[k] / s
            row += K
