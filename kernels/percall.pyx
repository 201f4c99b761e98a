# cython: language_level=3
"""The value checks of a prediction call, one loop each (no kernel: the per-call work around the kernels).

A one-sample prediction on the digits model runs ~2 us of kernels; the NumPy reductions that decided whether its
input is in range and its output finite (``np.vdot`` and a comparison, ~0.5 us each) cost as much as a layer. Each
check here reads the array once and stops at the first value that fails. They decide exactly what the full checks
decide (``minicnn.inputs._check_values``, ``minicnn._predict._finite``); arrays they do not take (another dtype,
byte order or memory layout) give None and the caller checks as before.
"""

from libc.math cimport fabsf, isfinite, nextafterf

include "_ndarray.pxi"


cdef inline bint _plain(object a, int typenum):
    """``a`` is a C-contiguous ndarray of ``typenum`` in native byte order."""
    if type(a) is not cnp.ndarray:
        return False
    cdef cnp.ndarray arr = <cnp.ndarray>a
    return (cnp.PyArray_TYPE(arr) == typenum and cnp.PyArray_ISNOTSWAPPED(arr)
            and cnp.PyArray_IS_C_CONTIGUOUS(arr))


def float32_within(X, double limit):
    """Whether every value of ``X`` is a number of magnitude at most ``limit`` (NaN: False), compared in float64.

    Parameters
    ----------
    X : ndarray
        C-contiguous float32, native byte order, any shape.
    limit : float

    Returns
    -------
    bool or None
        None where ``X`` is not such an array.
    """
    if not _plain(X, cnp.NPY_FLOAT):
        return None
    cdef const float *p = <const float *>cnp.PyArray_DATA(<cnp.ndarray>X)
    cdef Py_ssize_t n = cnp.PyArray_SIZE(<cnp.ndarray>X), i, start, stop
    # |v| <= limit in float64 is |v| <= the largest float32 at most limit, for every float32 v: compared in
    # float32, in blocks without a branch per value (the loop vectorizes), stopping after a failing block
    cdef float top = <float>limit
    cdef bint ok = True
    if <double>top > limit:
        top = nextafterf(top, 0.0)
    for start in range(0, n, 256):
        stop = min(start + 256, n)
        for i in range(start, stop):
            ok &= fabsf(p[i]) <= top   # NaN compares false
        if not ok:
            return False
    return True


def float64_finite(X):
    """Whether every value of ``X`` is finite (no NaN, no infinity).

    Parameters
    ----------
    X : ndarray
        C-contiguous float64, native byte order, any shape.

    Returns
    -------
    bool or None
        None where ``X`` is not such an array.
    """
    if not _plain(X, cnp.NPY_DOUBLE):
        return None
    cdef const double *p = <const double *>cnp.PyArray_DATA(<cnp.ndarray>X)
    cdef Py_ssize_t n = cnp.PyArray_SIZE(<cnp.ndarray>X), i
    for i in range(n):
        if not isfinite(p[i]):
            return False
    return True
