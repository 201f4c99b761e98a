# Included by the reduced-precision kernels (qgemm.pyx, bf16gemm.pyx): im2col over 1- and 2-byte elements and the
# row split of their products.
#
# Shape letters: N samples, H, W, C input (channels-last), Ho, Wo output, KH, KW window, Kp = KH*KW*C padded
# (to the product's multiple: 4 for int8, 2 for bf16), M = N*Ho*Wo rows of ``col``.

from libc.stdint cimport uint8_t, uint16_t, int8_t, int32_t
from libc.string cimport memcpy

ctypedef fused lowp_t:
    uint8_t
    uint16_t

cdef enum:
    # rows of A per OpenMP chunk: a multiple of the register block, enough to amortize a pass over the packed
    # weights (the split depends on the shape only, never on the team)
    LOWP_CHUNK_ROWS = 64


cdef void _im2col_lowp(lowp_t *col, const lowp_t *x, lowp_t pad, Py_ssize_t N, Py_ssize_t H, Py_ssize_t W,
                       Py_ssize_t C, Py_ssize_t Ho, Py_ssize_t Wo, Py_ssize_t Kp, Py_ssize_t KH, Py_ssize_t KW,
                       Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t pt, Py_ssize_t pl, Py_ssize_t dh,
                       Py_ssize_t dw) noexcept nogil:
    """``col[(n*Ho + i)*Wo + j, (kh*KW + kw)*C + c] = x[n, i*sh - pt + kh*dh, j*sw - pl + kw*dw, c]`` (``pad``
    outside the image and in the columns ``K..Kp``)."""
    cdef Py_ssize_t n, i, j, kh, kw, c, ih, iw, row
    cdef lowp_t *dst
    cdef Py_ssize_t K = KH * KW * C
    for row in prange(N * Ho * Wo, schedule="static", num_threads=team(N * Ho * Wo * Kp)):
        n = row // (Ho * Wo)
        i = (row // Wo) % Ho
        j = row % Wo
        dst = col + row * Kp
        for kh in range(KH):
            ih = i * sh - pt + kh * dh
            for kw in range(KW):
                iw = j * sw - pl + kw * dw
                if 0 <= ih < H and 0 <= iw < W:
                    memcpy(dst + (kh * KW + kw) * C, x + ((n * H + ih) * W + iw) * C, C * sizeof(lowp_t))
                else:
                    for c in range(C):
                        dst[(kh * KW + kw) * C + c] = pad
        for c in range(K, Kp):
            dst[c] = pad


cdef inline Py_ssize_t _lowp_chunks(Py_ssize_t M) noexcept nogil:
    return (M + LOWP_CHUNK_ROWS - 1) // LOWP_CHUNK_ROWS


cdef void _check_geometry(Py_ssize_t rows, Py_ssize_t Kp, Py_ssize_t N, Py_ssize_t C, Py_ssize_t Ho, Py_ssize_t Wo,
                          Py_ssize_t KH, Py_ssize_t KW) except *:
    if rows != N * Ho * Wo or Kp < KH * KW * C:
        raise ValueError(f"col ({rows}, {Kp}) does not hold the {KH}x{KW} windows of {N} samples of {C} channels "
                         f"for an output of {Ho}x{Wo}: expected ({N * Ho * Wo}, >= {KH * KW * C})")
