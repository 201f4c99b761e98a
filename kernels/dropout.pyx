# cython: language_level=3
"""Fused hash-RNG dropout kernels (element-wise and channel-wise), Cython + OpenMP.

Same contract and bit-identical masks as ``minicnn.backend.reference``; see
``minicnn.backend.hash_rng`` for the hash definition.
"""

from cython.parallel cimport prange
from libc.stdint cimport uint32_t

ctypedef fused floating:
    float
    double


cdef inline uint32_t mix32(uint32_t h) noexcept nogil:
    h ^= h >> 16
    h *= <uint32_t>0x7FEB352D
    h ^= h >> 15
    h *= <uint32_t>0x846CA68B
    h ^= h >> 16
    return h


cdef inline uint32_t dropout_hash(uint32_t i, uint32_t key0, uint32_t key1) noexcept nogil:
    return mix32(mix32(i ^ key0) ^ key1)


def dropout_forward(floating[::1] y, const floating[::1] x,
                    uint32_t key0, uint32_t key1, uint32_t threshold, double scale):
    cdef Py_ssize_t i, n = x.shape[0]
    cdef floating s = <floating>scale
    for i in prange(n, nogil=True, schedule="static"):
        y[i] = x[i] * s if dropout_hash(<uint32_t>i, key0, key1) < threshold else 0


def dropout_backward(floating[::1] dx, const floating[::1] dy,
                     uint32_t key0, uint32_t key1, uint32_t threshold, double scale):
    dropout_forward(dx, dy, key0, key1, threshold, scale)


def spatial_dropout_forward(floating[:, :, ::1] y, const floating[:, :, ::1] x,
                            uint32_t key0, uint32_t key1, uint32_t threshold, double scale):
    cdef Py_ssize_t n, s, c
    cdef Py_ssize_t N = x.shape[0], S = x.shape[1], C = x.shape[2]
    cdef floating sc = <floating>scale
    cdef floating factor
    for n in prange(N, nogil=True, schedule="static"):
        for c in range(C):
            factor = sc if dropout_hash(<uint32_t>(n * C + c), key0, key1) < threshold else 0
            for s in range(S):
                y[n, s, c] = x[n, s, c] * factor


def spatial_dropout_backward(floating[:, :, ::1] dx, const floating[:, :, ::1] dy,
                             uint32_t key0, uint32_t key1, uint32_t threshold, double scale):
    spatial_dropout_forward(dx, dy, key0, key1, threshold, scale)
