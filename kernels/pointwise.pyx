# cython: language_level=3
"""The pointwise (1x1, stride 1, unpadded) convolution's inference forward, Cython + OpenMP.

Shape letters: P pixels (``N*H*W``: the rows), C input channels, F output channels.

``pointwise_conv2d_bias_act_forward(y, x, w, b, act, alpha)``: ``y (P, F) = f(x (P, C) @ w (C, F) + b)``, the
same arguments as ``dense_bias_act_forward``. In float32 the product runs as ``pointwise_gemm.h`` (register tiles
of pixels x output channels, the weights read in place, the epilogue in registers for identity, relu and leaky
relu), in blocks of ``PW_BLOCK`` rows spread over the team; other activations take the row pass of
``_bias_act_rows.pxi`` on each block while it is in cache. Each output is the sum of its C products in channel
order (fused multiply-adds at the levels with FMA: this module is in ``isa.FMA_MODULES``), the same operations
whoever computes it: the bits depend neither on the team nor on the blocks. They equal the NumPy twin's
(``minicnn.backend.reference.pointwise``) at ``baseline`` and agree within rounding at the FMA levels. float64 runs
the same sums as a plain loop (the layers route float64 to the dense product).

Measured against ``dense_bias_act_forward`` (SciPy's OpenBLAS sgemm per thread block, then the epilogue), the
MobileNet-style 1x1 convs at batch 64, one thread, avx512, medians of 41 interleaved calls (load ~7 on 2 cores):
16 -> 32 on 16x16 0.173 / 0.282 ms, 32 -> 64 on 8x8 0.159 / 0.212, 64 -> 64 0.306 / 0.381, 64 -> 128 on 4x4
0.152 / 0.184, 128 -> 128 0.316 / 0.355 (49-57 Gmadd/s; ONNX Runtime's nodes 0.15-0.30 ms). Without contraction
(a multiply and an add) the same kernel ran 0.23-0.49 ms: behind the sgemm.
"""

cimport cython
from cython.parallel cimport prange

ctypedef fused floating:
    float
    double

include "_parallel.pxi"
include "_bias_act_rows.pxi"

cdef extern from "pointwise_gemm.h" nogil:
    void pw_rows_f32(float *y, const float *x, const float *w, const float *bias, Py_ssize_t M, Py_ssize_t C,
                     Py_ssize_t F, int act, float alpha)

cdef enum:
    # Rows per parallel block (a multiple of every level's tile height: 8, 6, 3); a block's epilogue row pass
    # reads its rows while they are in cache.
    PW_BLOCK = 48


cdef void _block(floating *y, const floating *x, const floating *w, const floating *b, Py_ssize_t M,
                 Py_ssize_t C, Py_ssize_t F, int act, floating alpha) noexcept nogil:
    """Rows ``[0, M)``: the product, then (activations after leaky relu) the row pass of the epilogue."""
    cdef Py_ssize_t m, f, c
    cdef floating acc
    cdef bint fused = act <= ACT_LEAKY_RELU
    if floating is float:
        pw_rows_f32(y, x, w, b if fused else NULL, M, C, F, act, alpha)
    else:
        for m in range(M):
            for f in range(F):
                acc = 0
                for c in range(C):
                    acc = acc + x[m * C + c] * w[c * F + f]
                y[m * F + f] = acc
        fused = False
    if not fused:
        _bias_act_rows(y, b, M, F, act, alpha)


@cython.cdivision(True)
def pointwise_conv2d_bias_act_forward(floating[:, ::1] y, const floating[:, ::1] x, const floating[:, ::1] w,
                                      const floating[::1] b, int act, double alpha):
    """``y = f(x @ w + b)``: blocks of ``PW_BLOCK`` rows in parallel, the epilogue fused (see the module)."""
    cdef Py_ssize_t P = y.shape[0], F = y.shape[1], C = x.shape[1], blocks, g, m0
    if x.shape[0] != P or w.shape[0] != C or w.shape[1] != F or b.shape[0] != F:
        raise ValueError(f"pointwise_conv2d_bias_act_forward shapes do not match: y ({y.shape[0]}, {F}), "
                         f"x ({x.shape[0]}, {C}), w ({w.shape[0]}, {w.shape[1]}), b ({b.shape[0]},)")
    if P * F == 0:
        return
    cdef floating *yp = &y[0, 0]
    cdef const floating *xp = &x[0, 0] if C > 0 else NULL
    cdef const floating *wp = &w[0, 0] if C > 0 else NULL
    cdef const floating *bp = &b[0]
    cdef floating a = <floating>alpha
    blocks = (P + PW_BLOCK - 1) // PW_BLOCK
    cdef int nt = team(P * C * F)
    if nt == 1 or blocks == 1:
        for g in range(blocks):
            m0 = g * PW_BLOCK
            _block(yp + m0 * F, xp + m0 * C if C > 0 else NULL, wp, bp, min(<Py_ssize_t>PW_BLOCK, P - m0), C, F,
                   act, a)
        return
    for g in prange(blocks, nogil=True, schedule="static", num_threads=nt):
        m0 = g * PW_BLOCK
        _block(yp + m0 * F, xp + m0 * C if C > 0 else NULL, wp, bp, min(<Py_ssize_t>PW_BLOCK, P - m0), C, F, act, a)
