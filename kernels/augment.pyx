# cython: language_level=3
"""Batch augmentation kernel, Cython + OpenMP: the twin of ``minicnn.backend.reference.augment_batch``.

Shape letters: B batch rows written, N source rows, H, W, C image height, width, channels (NHWC).
Same contract and the same bits as the reference for any thread count (each row's draws are hashes of
``5 * b + j``; a row is written by one thread).
"""

from cython.parallel cimport prange
from libc.stdint cimport int64_t, uint32_t

ctypedef fused floating:
    float
    double

include "_parallel.pxi"


include "_hash.pxi"


cdef inline Py_ssize_t _reflect(Py_ssize_t t, Py_ssize_t L) noexcept nogil:
    t = t % (2 * L)
    if t < 0:
        t = t + 2 * L
    if t >= L:
        t = 2 * L - 1 - t
    return t


def augment_batch(floating[:, :, :, ::1] out, const floating[:, :, :, ::1] x, const int64_t[::1] index,
                  uint32_t key0, uint32_t key1, Py_ssize_t shift, Py_ssize_t crop, bint flip):
    """``out[b]`` <- row ``index[b]`` of ``x`` translated, cropped and flipped (see the reference)."""
    cdef Py_ssize_t B = out.shape[0], H = out.shape[1], W = out.shape[2], C = out.shape[3]
    cdef Py_ssize_t b, i, j, c, ii, jj, si, sj, sy, sx, cy, cx, n
    cdef uint32_t base, ms = <uint32_t>(2 * shift + 1), mc = <uint32_t>(2 * crop + 1)
    cdef bint mirror
    if B == 0:
        return
    for b in prange(B, nogil=True, schedule="static", num_threads=team(B * H * W * C)):
        base = <uint32_t>(5 * b)
        sy = <Py_ssize_t>(counter_hash(base, key0, key1) % ms) - shift
        sx = <Py_ssize_t>(counter_hash(base + 1, key0, key1) % ms) - shift
        cy = <Py_ssize_t>(counter_hash(base + 2, key0, key1) % mc) - crop
        cx = <Py_ssize_t>(counter_hash(base + 3, key0, key1) % mc) - crop
        mirror = flip and counter_hash(base + 4, key0, key1) >= <uint32_t>2147483648u
        n = index[b]
        for i in range(H):
            ii = i + cy
            for j in range(W):
                jj = j + cx
                if ii < 0 or ii >= H or jj < 0 or jj >= W:
                    for c in range(C):
                        out[b, i, j, c] = 0
                else:
                    si = _reflect(ii - sy, H)
                    sj = _reflect(jj - sx, W)
                    if mirror:
                        sj = W - 1 - sj
                    for c in range(C):
                        out[b, i, j, c] = x[n, si, sj, c]
