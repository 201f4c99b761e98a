# cython: language_level=3
"""The register-blocked direct convolution's inference forward (channels-last), Cython + OpenMP.

Shape letters: N samples; H, W, C input height, width, channels; KH, KW kernel height, width; F filters;
Ho, Wo output height, width; K = KH*KW*C the taps of one output pixel.

``conv2d_blocked_bias_act_forward(y, x, w, b, act, alpha, sh, sw, pt, pl, dh, dw)``: ``y (N, Ho, Wo, F) =
f(conv(x (N, H, W, C), w (KH, KW, C, F)) + b (F,))``, any geometry (the arguments of
``conv2d_direct_bias_act_forward``). In float32 each output row runs as ``direct_conv_blocked.h`` (tiles of output
pixels x 2 vectors of channels in registers, the taps read from a zero-bordered band of input rows, the weights
in place, the epilogue in registers for identity, relu and leaky relu); other activations take the row pass of
``_bias_act_rows.pxi`` on each unit while it is in cache. Work units are whole output rows of one sample, as many
as keep their band of input rows within ``BLOCKED_BAND_BYTES``, spread over the team. Each output is the sum of its K products in (kh, kw, c)
order (fused multiply-adds at the levels with FMA: this module is in ``isa.FMA_MODULES``), the same operations
whoever computes it: the bits depend neither on the team nor on the units. They equal the NumPy twin's
(``minicnn.backend.reference.blocked_conv``) at ``baseline`` and agree within rounding at the FMA levels. float64
runs the same sums as plain loops.
"""

cimport cython
from cython.parallel cimport prange
from libc.stdlib cimport free, malloc
from openmp cimport omp_get_thread_num

ctypedef fused floating:
    float
    double

include "_parallel.pxi"
include "_bias_act_rows.pxi"

cdef extern from "direct_conv_blocked.h" nogil:
    Py_ssize_t db_band_length(Py_ssize_t KH, Py_ssize_t C, Py_ssize_t Wb, Py_ssize_t rb, int sh, int dh)
    void db_rows_f32(float *y, const float *x, const float *w, const float *bias, float *band, int act, float alpha,
                     Py_ssize_t H, Py_ssize_t W, Py_ssize_t C, Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t F,
                     Py_ssize_t Wo, int sh, int sw, int pt, int pl, int dh, int dw, Py_ssize_t oh0, Py_ssize_t oh1)
    void db_rows_f64(double *y, const double *x, const double *w, const double *bias, double *band, int act,
                     double alpha, Py_ssize_t H, Py_ssize_t W, Py_ssize_t C, Py_ssize_t KH, Py_ssize_t KW,
                     Py_ssize_t F, Py_ssize_t Wo, int sh, int sw, int pt, int pl, int dh, int dw, Py_ssize_t oh0,
                     Py_ssize_t oh1)

cdef enum:
    # Most bytes of a unit's band of input rows (a unit: whole output rows of one sample, cut by the shape only): a
    # unit copies the input rows it reads once, and the band stays in the L1 cache beside the weights' panel.
    BLOCKED_BAND_BYTES = 12288


cdef void _unit(floating *y, const floating *x, const floating *w, const floating *b, floating *band, int act,
                floating alpha, Py_ssize_t H, Py_ssize_t W, Py_ssize_t C, Py_ssize_t KH, Py_ssize_t KW,
                Py_ssize_t F, Py_ssize_t Wo, int sh, int sw, int pt, int pl, int dh, int dw, Py_ssize_t r0,
                Py_ssize_t r1) noexcept nogil:
    """Output rows ``[r0, r1)`` of one sample (``y`` at row ``r0``), then the row pass of tanh / sigmoid."""
    cdef bint fused = act <= ACT_LEAKY_RELU
    if floating is float:
        db_rows_f32(y, x, w, b if fused else NULL, band, act, alpha, H, W, C, KH, KW, F, Wo, sh, sw, pt, pl, dh,
                    dw, r0, r1)
    else:
        db_rows_f64(y, x, w, b if fused else NULL, band, act, alpha, H, W, C, KH, KW, F, Wo, sh, sw, pt, pl, dh,
                    dw, r0, r1)
    if not fused:
        _bias_act_rows(y, b, (r1 - r0) * Wo, F, act, alpha)


@cython.cdivision(True)
def conv2d_blocked_bias_act_forward(floating[:, :, :, ::1] y, const floating[:, :, :, ::1] x,
                                    const floating[:, :, :, ::1] w, const floating[::1] b, int act, double alpha,
                                    int sh, int sw, int pt, int pl, int dh, int dw):
    """``y = f(conv(x, w) + b)`` by register tiles over the input rows, at inference (see the module)."""
    cdef Py_ssize_t N = x.shape[0], H = x.shape[1], W = x.shape[2], C = x.shape[3]
    cdef Py_ssize_t KH = w.shape[0], KW = w.shape[1], F = w.shape[3], Ho = y.shape[1], Wo = y.shape[2]
    cdef Py_ssize_t rb, per, U, u, r0, n, Wb, L
    if y.shape[0] != N or w.shape[2] != C or y.shape[3] != F or b.shape[0] != F:
        raise ValueError(f"conv2d_blocked_bias_act_forward shapes do not match: y ({y.shape[0]}, {Ho}, {Wo}, "
                         f"{y.shape[3]}), x ({N}, {H}, {W}, {C}), w ({KH}, {KW}, {w.shape[2]}, {F}), "
                         f"b ({b.shape[0]},)")
    if min(sh, sw, dh, dw) < 1:
        raise ValueError(f"conv2d_blocked_bias_act_forward takes strides and dilations >= 1; received sh={sh}, "
                         f"sw={sw}, dh={dh}, dw={dw}")
    if N * Ho * Wo * F == 0:
        return
    cdef floating a = <floating>alpha
    cdef floating *yp = &y[0, 0, 0, 0]
    cdef const floating *bp = &b[0]
    cdef Py_ssize_t K = KH * KW * C
    if K == 0 or H * W == 0:   # no taps (or an empty image): f(0 + b) everywhere
        for u in range(N * Ho * Wo):
            for n in range(F):
                yp[u * F + n] = 0
        _bias_act_rows(yp, bp, N * Ho * Wo, F, act, a)
        return
    cdef const floating *xp = &x[0, 0, 0, 0]
    cdef const floating *wp = &w[0, 0, 0, 0]
    Wb = (Wo - 1) * sw + (KW - 1) * dw + 1
    rb = 1
    while rb < Ho and db_band_length(KH, C, Wb, rb + 1, sh, dh) * <Py_ssize_t>sizeof(floating) <= BLOCKED_BAND_BYTES:
        rb += 1
    per = (Ho + rb - 1) // rb
    U = N * per
    L = db_band_length(KH, C, Wb, rb, sh, dh)
    cdef int nt = team(N * Ho * Wo * K * F // 16)
    if U < nt:
        nt = <int>U
    cdef floating *band = <floating *>malloc(nt * L * sizeof(floating))   # one band per thread
    if band == NULL:
        raise MemoryError("conv2d_blocked_bias_act_forward could not allocate its band of input rows")
    cdef Py_ssize_t ys = Ho * Wo * F, xs = H * W * C
    if nt == 1:
        for u in range(U):
            n, r0 = u // per, (u % per) * rb
            _unit(yp + n * ys + r0 * Wo * F, xp + n * xs, wp, bp, band, act, a, H, W, C, KH, KW, F, Wo, sh, sw,
                  pt, pl, dh, dw, r0, min(Ho, r0 + rb))
    else:
        for u in prange(U, nogil=True, schedule="static", num_threads=nt):
            n = u // per
            r0 = (u % per) * rb
            _unit(yp + n * ys + r0 * Wo * F, xp + n * xs, wp, bp, band + omp_get_thread_num() * L, act, a, H, W,
                  C, KH, KW, F, Wo, sh, sw, pt, pl, dh, dw, r0, min(Ho, r0 + rb))
    free(band)
