# cython: language_level=3
"""Fused bias + activation kernels on ``(M, C)`` arrays, Cython + OpenMP over rows.

Same contract as ``minicnn.backend.reference``: ``act`` is an integer code from
``minicnn.backend.activation_codes``, branched on once, outside the loops; the
backward works from the output ``y`` (which may alias ``x``; ``dx`` may alias
``dy``). ``db`` is summed over fixed row blocks that depend only on ``M``, then
the block sums are added in order: bit-identical for any thread count.
"""

from cython.parallel cimport prange
from libc.math cimport exp, expf, tanh, tanhf

import numpy as np

ctypedef fused floating:
    float
    double

include "_parallel.pxi"
include "_bias_act_rows.pxi"
include "_bias_act_grad_rows.pxi"

# Activation codes (must match minicnn.backend.activation_codes).
cdef enum:
    IDENTITY = 0
    RELU = 1
    LEAKY_RELU = 2
    TANH = 3
    SIGMOID = 4

#: The codes above, by name (minicnn/backend/activation_codes.py mirrors them; a test compares).
ACTIVATION_CODES = {"identity": IDENTITY, "relu": RELU, "leaky_relu": LEAKY_RELU, "tanh": TANH, "sigmoid": SIGMOID}

# Rows per block of the deterministic db reduction.
DB_BLOCK_ROWS = 256


cdef inline floating _tanh(floating z) noexcept nogil:
    if floating is float:
        return tanhf(z)
    else:
        return tanh(z)


cdef inline floating _sigmoid(floating z) noexcept nogil:
    if floating is float:
        return 1 / (1 + expf(-z))
    else:
        return 1 / (1 + exp(-z))


def bias_act_forward(floating[:, ::1] y, const floating[:, ::1] x, const floating[::1] b,
                     int act, double alpha):
    """``y = f(x + b)`` on ``(M, C)`` arrays (``y`` may alias ``x``)."""
    cdef Py_ssize_t M = x.shape[0], C = x.shape[1], m, c
    cdef floating a = <floating>alpha
    cdef floating z
    cdef int nt = team(M * C)
    if M == 0 or C == 0:
        return
    if act == RELU:
        for m in prange(M, nogil=True, schedule="static", num_threads=nt):
            for c in range(C):
                z = x[m, c] + b[c]
                y[m, c] = 0 if z < 0 else z   # a NaN stays NaN (as np.maximum)
    elif act == LEAKY_RELU:
        for m in prange(M, nogil=True, schedule="static", num_threads=nt):
            for c in range(C):
                z = x[m, c] + b[c]
                y[m, c] = z if z > 0 else z * a
    elif act == TANH:
        for m in prange(M, nogil=True, schedule="static", num_threads=nt):
            for c in range(C):
                y[m, c] = _tanh(x[m, c] + b[c])
    elif act == SIGMOID:
        for m in prange(M, nogil=True, schedule="static", num_threads=nt):
            for c in range(C):
                y[m, c] = _sigmoid(x[m, c] + b[c])
    else:
        for m in prange(M, nogil=True, schedule="static", num_threads=nt):
            for c in range(C):
                y[m, c] = x[m, c] + b[c]


def bias_act_backward(floating[:, ::1] dx, floating[::1] db, const floating[:, ::1] dy,
                      const floating[:, ::1] y, int act, double alpha):
    """``dx = dy * f'(.)`` computed from the output ``y``; ``db = dx.sum(axis=0)``."""
    cdef Py_ssize_t M = dy.shape[0], C = dy.shape[1], c, k
    cdef Py_ssize_t R = DB_BLOCK_ROWS
    cdef Py_ssize_t B = (M + R - 1) // R
    cdef floating a = <floating>alpha
    cdef floating s
    if C == 0:
        return
    if M == 0:
        db[...] = 0
        return
    cdef floating[:, ::1] part = np.empty((B, C), dtype=np.float32 if floating is float else np.float64)
    for k in prange(B, nogil=True, schedule="static", num_threads=team(M * C)):
        _grad_rows(&dx[0, 0], &part[k, 0], &dy[0, 0], &y[0, 0],
                   k * R, min((k + 1) * R, M), C, act, a)
    for c in range(C):
        s = part[0, c]
        for k in range(1, B):
            s = s + part[k, c]
        db[c] = s
