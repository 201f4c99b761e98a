# Included by the reduced-precision kernels (qgemm.pyx, bf16gemm.pyx): the row split of their products and the
# tap offsets of a convolution window read in place (kernels/lowp_rows.h says where each row starts).
#
# Shape letters: M rows of the product (samples x output pixels).

import numpy as np
from libc.stdint cimport uint8_t, uint16_t, int8_t, int32_t

cdef enum:
    # rows of A per OpenMP chunk: a multiple of the register block, enough to amortize a pass over the packed
    # weights (the split depends on the shape only, never on the team)
    LOWP_CHUNK_ROWS = 64



def _window_taps(Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t dh, Py_ssize_t dw, Py_ssize_t Wp, Py_ssize_t C):
    """Offsets (elements) of the taps of a window in a padded input of width ``Wp`` and ``C`` channels, (kh, kw)
    order: the im2col column order of the packed weights."""
    taps = np.empty(KH * KW, dtype=np.intp)
    for kh in range(KH):
        for kw in range(KW):
            taps[kh * KW + kw] = (kh * dh * Wp + kw * dw) * C
    return taps
