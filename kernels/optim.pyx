# cython: language_level=3
"""Fused optimizer kernel: one Adam (AdamW) update over flat arrays, Cython + OpenMP.

Same contract as ``minicnn.backend.reference.adam_update``: one pass over the
parameters, their two moments and the gradient, replacing the ~10 NumPy
passes (and their temporaries) of the unfused update. Every operation is done
in the data precision in the reference's order (``-ffp-contract=off``, no FMA),
so the result is bit-identical to the reference for any thread count.
"""

from cython.parallel cimport prange
from libc.math cimport sqrt, sqrtf

ctypedef fused floating:
    float
    double

include "_parallel.pxi"


cdef inline floating _sqrt(floating z) noexcept nogil:
    if floating is float:
        return sqrtf(z)
    else:
        return sqrt(z)


def adam_update(floating[::1] param, floating[::1] m, floating[::1] v, const floating[::1] grad,
                double step_size, double beta1, double beta2, double bias2, double eps, double decay):
    """``m, v`` <- moment updates; ``param`` <- ``param * decay - step_size * m / (sqrt(v / bias2) + eps)``."""
    cdef Py_ssize_t n = param.shape[0], i
    cdef floating b1 = <floating>beta1, b2 = <floating>beta2
    cdef floating c1 = <floating>(1.0 - beta1), c2 = <floating>(1.0 - beta2)
    cdef floating bc2 = <floating>bias2, e = <floating>eps, ss = <floating>step_size, dec = <floating>decay
    cdef floating g, mi, vi, d, p
    if n == 0:
        return
    for i in prange(n, nogil=True, schedule="static", num_threads=team(8 * n)):
        g = grad[i]
        mi = m[i] * b1
        mi = mi + c1 * g
        vi = v[i] * b2
        vi = vi + c2 * (g * g)
        m[i] = mi
        v[i] = vi
        d = _sqrt(vi / bc2)
        d = d + e
        p = param[i] * dec
        param[i] = p - ss * (mi / d)
