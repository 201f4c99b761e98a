# cython: language_level=3
"""Depthwise convolution kernels (NHWC, weights ``(KH, KW, C)``), Cython + OpenMP.

Shape letters: N batch, H, W input height and width, C channels, KH, KW kernel
height and width, Ho, Wo output height and width.

Same contract and results (up to the summation order) as
``minicnn.backend.depthwise_reference``. Every loop runs over channels
innermost, in register blocks of ``CB`` contiguous channels: a pixel's block of
accumulators stays in vector registers while the taps are summed into it, and
the tap ranges that fall inside the image are found once per pixel, so the
inner loops carry no bounds checks.

* Forward: one output row ``(n, oh)`` per parallel iteration. In float32,
  every full 16-channel block of the row goes 4 pixels at a time
  (``dw_row_f32``), the border pixels too (a column tap outside the image
  reads a block of zeros, as the reference reads its padding), and the
  bias+activation epilogue (identity, relu, leaky relu: the bits of
  ``bias_act_forward``) runs on the accumulators before their one store; other
  activations and a channel tail take the row pass of ``_bias_act_rows.pxi``.
  Measured against the per-pixel border path and the separate epilogue pass,
  MobileNet-style layers, batch 64, 1 thread, fused relu: 1.0-1.26x (the
  4x4 and 8x8 maps, where most pixels are borders, gain most). At ``avx512``
  a 3-wide undilated kernel at stride 1 or 2 loads each input column of a
  kernel row once for its taps and pixels (``dw_row3_f32``, the same bits):
  the five 3x3 layers of the MobileNet-style zoo net at batch 64, 1 thread,
  minima of 40 calls, 0.56 -> 0.40 ms (8x8x64 stride 1: 0.157 -> 0.073); at
  stride 1 on rows of 8 or more, 8 pixels per block (``dw_row3x8_f32``):
  0.42 -> 0.35 ms more (interleaved, load ~5).
* Input gradient: at stride 1 the forward on ``dy`` with the kernel rotated;
  at other strides one input row ``(n, ih)`` per parallel iteration, each
  pixel gathering the ``dy`` pixels whose window read it (the kernel rows that
  reach the row found once per row). The scatter-add per sample it replaces
  (one ``dy`` block times each tap into ``dx``) measured 3-5x slower than the
  forward at stride 2.
* Weight gradient: ``DW_GROUPS`` fixed sample groups in parallel, each into its
  own partial gradient; the partials are then added in group order. Within a
  kernel row, taps go three at a time so each ``dy`` block is loaded once for
  three products (measured in cache, 8 x 32 x 32 x 32, one thread: 13.5 ->
  17.2 Gmadd/s).
* Training backward (``depthwise_conv2d_bias_act_backward``): the three above in one pass over ``dy``: per
  output row its ``dz = dy * f'(y)`` (``_bias_act_grad_rows.pxi``) and column sums (bias gradient), its
  weight-gradient share (``_wgrad_row``, the weight gradient's row) and the input-gradient rows it completes
  (``_dx_row``, the input gradient's row), while the rows are in cache; the same fixed sample groups.

Each output element is written by one thread in a fixed order, so every result
is bit-identical for any OpenMP thread count.
"""

cimport cython
from cython.parallel cimport prange
from libc.string cimport memset

import numpy as np

ctypedef fused floating:
    float
    double

include "_parallel.pxi"
include "_bias_act_rows.pxi"
include "_bias_act_grad_rows.pxi"

# Fixed sample groups of the weight gradient (minicnn/backend/tuning.py mirrors it as DW_GROUPS).
DW_GROUPS = 8

cdef enum:
    GROUPS = 8
    # Channels per register block: 16 floats are two AVX vectors (four for doubles).
    CB = 16
    # Output pixels per register block of the forward: PB * CB accumulators (8 AVX vectors of floats).
    PB = 4
    PBCB = 64   # PB * CB


# Hot loops of the float32 kernels: depthwise_rows.h (named vector accumulators in registers).
cdef extern from "depthwise_rows.h":
    enum: DW_MAXKW
    void dw_gather16_f32(float *out, const float *const *src, const float *const *wt, int n,
                         Py_ssize_t Cfull) noexcept nogil
    void dw_row_f32(float *y, const float *x, const float *w, Py_ssize_t step, Py_ssize_t W, Py_ssize_t C,
                    Py_ssize_t KW, Py_ssize_t i0, Py_ssize_t i1, Py_ssize_t ih0, Py_ssize_t Wo, int dh, int dw,
                    int sw, int pl, Py_ssize_t Cfull, const float *bias, int act, float alpha) noexcept nogil
    void dw_wgrad16_f32(float *part, const float *xrow, const float *dyrow, Py_ssize_t C, Py_ssize_t lo,
                        Py_ssize_t hi, Py_ssize_t a, int sw) noexcept nogil
    void dw_wgrad3x16_f32(float *part, const float *xrow, const float *dyrow, Py_ssize_t C, Py_ssize_t lo,
                          Py_ssize_t hi, Py_ssize_t a, Py_ssize_t d, int sw) noexcept nogil


cdef inline void _tap_range(Py_ssize_t *k0, Py_ssize_t *k1, Py_ssize_t start, Py_ssize_t K, Py_ssize_t dil,
                            Py_ssize_t size) noexcept nogil:
    """Taps ``k0 <= k < k1`` whose position ``start + k*dil`` lies in ``[0, size)`` (a contiguous range)."""
    cdef Py_ssize_t k = 0
    while k < K and start + k * dil < 0:
        k += 1
    k0[0] = k
    while k < K and start + k * dil < size:
        k += 1
    k1[0] = k


cdef inline void _out_range(Py_ssize_t *lo, Py_ssize_t *hi, Py_ssize_t a, Py_ssize_t stride, Py_ssize_t size,
                            Py_ssize_t out) noexcept nogil:
    """Outputs ``lo <= o < hi`` (of ``out``) whose input position ``o*stride + a`` lies in ``[0, size)``."""
    cdef Py_ssize_t l = 0 if a >= 0 else (-a + stride - 1) // stride
    cdef Py_ssize_t h = 0 if size - 1 - a < 0 else (size - 1 - a) // stride + 1
    l = min(l, out)
    lo[0] = l
    hi[0] = max(min(h, out), l)


# ----------------------------------------------------------------------------- forward
cdef inline void _pixel(floating *out, const floating *x, const floating *w, Py_ssize_t step, Py_ssize_t W,
                        Py_ssize_t C, Py_ssize_t KW, Py_ssize_t i0, Py_ssize_t i1, Py_ssize_t j0, Py_ssize_t j1,
                        Py_ssize_t ih0, Py_ssize_t iw0, int dh, int dw, Py_ssize_t c_start) noexcept nogil:
    """Channels ``c_start <= c < C`` of one output pixel: the taps ``i0 <= i < i1``, ``j0 <= j < j1``."""
    cdef Py_ssize_t i, j, c0, c, n
    cdef floating acc[CB]
    cdef const floating *xp
    cdef const floating *wp
    c0 = c_start
    while c0 < C:
        n = min(<Py_ssize_t>CB, C - c0)
        if n == CB:
            for c in range(CB):
                acc[c] = 0
            for i in range(i0, i1):
                for j in range(j0, j1):
                    xp = x + ((ih0 + i * dh) * W + iw0 + j * dw) * C + c0
                    wp = w + (i * KW + j) * step + c0
                    for c in range(CB):
                        acc[c] = acc[c] + xp[c] * wp[c]
            for c in range(CB):
                out[c0 + c] = acc[c]
        else:
            for c in range(n):
                acc[c] = 0
            for i in range(i0, i1):
                for j in range(j0, j1):
                    xp = x + ((ih0 + i * dh) * W + iw0 + j * dw) * C + c0
                    wp = w + (i * KW + j) * step + c0
                    for c in range(n):
                        acc[c] = acc[c] + xp[c] * wp[c]
            for c in range(n):
                out[c0 + c] = acc[c]
        c0 += CB


cdef inline void _pixels(floating *out, const floating *x, const floating *w, Py_ssize_t step, Py_ssize_t W,
                         Py_ssize_t C, Py_ssize_t KW, Py_ssize_t i0, Py_ssize_t i1, Py_ssize_t ih0, Py_ssize_t iw0,
                         int dh, int dw, int sw) noexcept nogil:
    """``PB`` neighbouring output pixels whose every column tap is inside the image, full channel blocks
    first (``PB * CB`` accumulators in registers, each tap's weights loaded once for the ``PB`` pixels)."""
    cdef Py_ssize_t i, j, c0, c, k, Cfull = C - C % CB
    cdef floating acc[PBCB]
    cdef const floating *xp
    cdef const floating *wp
    c0 = 0
    while c0 < Cfull:
        for c in range(PBCB):
            acc[c] = 0
        for i in range(i0, i1):
            for j in range(KW):
                xp = x + ((ih0 + i * dh) * W + iw0 + j * dw) * C + c0
                wp = w + (i * KW + j) * step + c0
                for k in range(PB):
                    for c in range(CB):
                        acc[k * CB + c] = acc[k * CB + c] + xp[k * sw * C + c] * wp[c]
        for k in range(PB):
            for c in range(CB):
                out[k * C + c0 + c] = acc[k * CB + c]
        c0 += CB
    if Cfull < C:
        for k in range(PB):
            _pixel(out + k * C, x, w, step, W, C, KW, i0, i1, 0, KW, ih0, iw0 + k * sw, dh, dw, Cfull)


cdef void _forward_row(floating *y, const floating *x, const floating *w, Py_ssize_t step, const floating *bias,
                       int act, floating alpha, Py_ssize_t H, Py_ssize_t W, Py_ssize_t C, Py_ssize_t KH,
                       Py_ssize_t KW, Py_ssize_t Wo, Py_ssize_t oh, int sh, int sw, int pt, int pl, int dh,
                       int dw) noexcept nogil:
    """Output row ``oh`` of one sample: ``y (Wo, C)`` from ``x (H, W, C)``, then the epilogue if ``bias``.

    Tap ``(i, j)``'s weights start at ``w + (i*KW + j) * step``: ``step = C`` reads ``(KH, KW, C)`` weights,
    ``step = -C`` from the last tap reads them rotated by 180 degrees (the input gradient at stride 1).
    Pixels whose column taps are all inside the image go ``PB`` at a time, the others one by one.
    """
    cdef Py_ssize_t i0, i1, j0, j1, ow = 0, lo, hi, Cfull = C - C % CB
    cdef Py_ssize_t ih0 = oh * sh - pt
    cdef bint fused
    _tap_range(&i0, &i1, ih0, KH, dh, H)
    if floating is float:
        if KW <= DW_MAXKW and Cfull > 0:
            # every full channel block of the row in registers; the epilogue fused when it covers every
            # channel and is a select (identity, relu, leaky relu), else the row pass below
            fused = bias != NULL and Cfull == C and act <= ACT_LEAKY_RELU
            dw_row_f32(y, x, w, step, W, C, KW, i0, i1, ih0, Wo, dh, dw, sw, pl, Cfull, bias if fused else NULL,
                       act, alpha)
            if Cfull < C:
                for ow in range(Wo):
                    _tap_range(&j0, &j1, ow * sw - pl, KW, dw, W)
                    _pixel(y + ow * C, x, w, step, W, C, KW, i0, i1, j0, j1, ih0, ow * sw - pl, dh, dw, Cfull)
            if bias != NULL and not fused:
                _bias_act_rows(y, bias, Wo, C, act, alpha)
            return
    _out_range(&lo, &hi, -pl, sw, W - (KW - 1) * dw, Wo)   # interior: every column tap inside
    while ow < Wo:
        if lo <= ow and ow + PB <= hi:
            _pixels(y + ow * C, x, w, step, W, C, KW, i0, i1, ih0, ow * sw - pl, dh, dw, sw)
            ow += PB
        else:
            _tap_range(&j0, &j1, ow * sw - pl, KW, dw, W)
            _pixel(y + ow * C, x, w, step, W, C, KW, i0, i1, j0, j1, ih0, ow * sw - pl, dh, dw, 0)
            ow += 1
    if bias != NULL:
        _bias_act_rows(y, bias, Wo, C, act, alpha)


cdef void _forward(floating *y, const floating *x, const floating *w, Py_ssize_t step, const floating *bias, int act,
                   floating alpha, Py_ssize_t N, Py_ssize_t H, Py_ssize_t W, Py_ssize_t C, Py_ssize_t KH,
                   Py_ssize_t KW, Py_ssize_t Ho, Py_ssize_t Wo,
                   int sh, int sw, int pt, int pl, int dh, int dw) noexcept nogil:
    cdef Py_ssize_t r, n, oh
    cdef int nt = team(N * Ho * Wo * C * KH * KW)
    if nt == 1:
        for r in range(N * Ho):
            n = r // Ho
            oh = r - n * Ho
            _forward_row(y + r * Wo * C, x + n * H * W * C, w, step, bias, act, alpha, H, W, C, KH, KW, Wo, oh,
                         sh, sw, pt, pl, dh, dw)
        return
    for r in prange(N * Ho, schedule="static", num_threads=nt):
        n = r // Ho
        oh = r - n * Ho
        _forward_row(y + r * Wo * C, x + n * H * W * C, w, step, bias, act, alpha, H, W, C, KH, KW, Wo, oh,
                     sh, sw, pt, pl, dh, dw)


def depthwise_conv2d_forward(floating[:, :, :, ::1] y, const floating[:, :, :, ::1] x,
                             const floating[:, :, ::1] w, int sh, int sw, int pt, int pl, int dh, int dw):
    """``y = depthwise_conv(x, w)`` (no bias): one output row per parallel iteration."""
    if y.shape[0] * y.shape[1] * y.shape[2] * y.shape[3] == 0:
        return
    if x.shape[1] * x.shape[2] * w.shape[0] * w.shape[1] == 0:
        y[...] = 0
        return
    _forward(&y[0, 0, 0, 0], &x[0, 0, 0, 0], &w[0, 0, 0], x.shape[3], NULL, 0, 0, x.shape[0], x.shape[1], x.shape[2],
             x.shape[3], w.shape[0], w.shape[1], y.shape[1], y.shape[2], sh, sw, pt, pl, dh, dw)


def depthwise_conv2d_bias_act_forward(floating[:, :, :, ::1] y, const floating[:, :, :, ::1] x,
                                      const floating[:, :, ::1] w, const floating[::1] b, int act, double alpha,
                                      int sh, int sw, int pt, int pl, int dh, int dw):
    """``y = f(depthwise_conv(x, w) + b)``: the conv and the bias+activation epilogue, row by row."""
    cdef Py_ssize_t N = y.shape[0], Ho = y.shape[1], Wo = y.shape[2], C = y.shape[3], r
    if N * Ho * Wo * C == 0:
        return
    if x.shape[1] * x.shape[2] * w.shape[0] * w.shape[1] == 0:
        y[...] = 0
        for r in range(N * Ho):
            _bias_act_rows(&y[0, 0, 0, 0] + r * Wo * C, &b[0], Wo, C, act, <floating>alpha)
        return
    _forward(&y[0, 0, 0, 0], &x[0, 0, 0, 0], &w[0, 0, 0], C, &b[0], act, <floating>alpha, N, x.shape[1],
             x.shape[2], C, w.shape[0], w.shape[1], Ho, Wo, sh, sw, pt, pl, dh, dw)


# ----------------------------------------------------------------------------- input gradient
cdef enum:
    # Most taps one input pixel gathers through the register path (ceil(KH/sh) * ceil(KW/sw) for a pixel);
    # a pixel with more (a kernel far larger than the stride) takes the scalar loop.
    GATHER_TAPS = 64


@cython.cdivision(True)   # t, u >= 0 and strides >= 1 where they divide: C division is Python's
cdef void _backward_input_row(floating *dxrow, const floating *dy, const floating *w, Py_ssize_t W, Py_ssize_t C,
                              Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t Ho, Py_ssize_t Wo, Py_ssize_t ih,
                              int sh, int sw, int pt, int pl, int dh, int dw) noexcept nogil:
    """Input row ``ih`` of one sample, ``dx (W, C)``, gathered: each pixel sums, taps in row-major order, the
    ``dy`` pixels that read it times the tap's weights (the taps whose output position is a whole stride).

    The pixel's taps are listed first; in float32 full blocks of 16 channels are summed in registers
    (``dw_gather16_f32``) and stored once, the other channels (and doubles) by the scalar loop, same order.
    """
    cdef Py_ssize_t iw, i, j, c, t, u, oh, c0
    cdef int n
    cdef const floating *src[GATHER_TAPS]
    cdef const floating *wt[GATHER_TAPS]
    cdef floating acc
    for iw in range(W):
        n = 0
        for i in range(KH):
            t = ih + pt - i * dh
            if t < 0 or t % sh != 0 or t // sh >= Ho:
                continue
            oh = t // sh
            for j in range(KW):
                u = iw + pl - j * dw
                if u < 0 or u % sw != 0 or u // sw >= Wo:
                    continue
                if n < GATHER_TAPS:
                    src[n] = dy + (oh * Wo + u // sw) * C
                    wt[n] = w + (i * KW + j) * C
                n += 1
        if n > GATHER_TAPS:
            _backward_input_pixel(dxrow + iw * C, dy, w, W, C, KH, KW, Ho, Wo, ih, iw, sh, sw, pt, pl, dh, dw)
            continue
        c0 = 0
        if floating is float:
            c0 = C - C % 16
            dw_gather16_f32(<float *>dxrow + iw * C, <const float *const *>src, <const float *const *>wt, n, c0)
        for c in range(c0, C):
            acc = 0
            for t in range(n):
                acc = acc + src[t][c] * wt[t][c]
            dxrow[iw * C + c] = acc


@cython.cdivision(True)
cdef void _backward_input_pixel(floating *out, const floating *dy, const floating *w, Py_ssize_t W, Py_ssize_t C,
                                Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t Ho, Py_ssize_t Wo, Py_ssize_t ih,
                                Py_ssize_t iw, int sh, int sw, int pt, int pl, int dh, int dw) noexcept nogil:
    """One pixel of :func:`_backward_input_row` with more than ``GATHER_TAPS`` taps: the same sums, in memory."""
    cdef Py_ssize_t i, j, c, t, u
    cdef const floating *src
    cdef const floating *wp
    for c in range(C):
        out[c] = 0
    for i in range(KH):
        t = ih + pt - i * dh
        if t < 0 or t % sh != 0 or t // sh >= Ho:
            continue
        for j in range(KW):
            u = iw + pl - j * dw
            if u < 0 or u % sw != 0 or u // sw >= Wo:
                continue
            src = dy + ((t // sh) * Wo + u // sw) * C
            wp = w + (i * KW + j) * C
            for c in range(C):
                out[c] = out[c] + src[c] * wp[c]


def depthwise_conv2d_backward_input(floating[:, :, :, ::1] dx, const floating[:, :, :, ::1] dy,
                                    const floating[:, :, ::1] w, int sh, int sw, int pt, int pl, int dh, int dw):
    """Gradient with respect to the input: at stride 1 the forward kernel on ``dy`` with the rotated weights,
    else a gather per input row (``_backward_input_row``); one input row per parallel iteration either way."""
    cdef Py_ssize_t N = dx.shape[0], H = dx.shape[1], W = dx.shape[2], C = dx.shape[3], r, n
    cdef Py_ssize_t Ho = dy.shape[1], Wo = dy.shape[2], KH = w.shape[0], KW = w.shape[1]
    if N * H * W * C == 0:
        return
    if Ho * Wo * KH * KW == 0:
        dx[...] = 0
        return
    cdef floating *dxp = &dx[0, 0, 0, 0]
    cdef const floating *dyp = &dy[0, 0, 0, 0]
    cdef const floating *wp = &w[0, 0, 0]
    if sh == 1 and sw == 1:
        # a gather: dx[ih, iw] = sum over taps of dy[ih + pt - i*dh, iw + pl - j*dw] * w[i, j], the forward
        # conv of dy with the kernel rotated by 180 degrees and padding (K-1)*dilation - pad
        _forward(dxp, dyp, wp + (KH * KW - 1) * C, -C, NULL, 0, 0, N, Ho, Wo, C, KH, KW, H, W, 1, 1,
                 (KH - 1) * dh - pt, (KW - 1) * dw - pl, dh, dw)
        return
    cdef int nt = team(N * Ho * Wo * C * KH * KW)
    for r in prange(N * H, nogil=True, schedule="static", num_threads=nt):
        n = r // H
        _backward_input_row(dxp + r * W * C, dyp + n * Ho * Wo * C, wp, W, C, KH, KW, Ho, Wo, r - n * H,
                            sh, sw, pt, pl, dh, dw)


# ----------------------------------------------------------------------------- weight gradient
cdef inline Py_ssize_t _wgrad_triples_f32(float *part, const float *xrow, const float *dyrow, Py_ssize_t W,
                                          Py_ssize_t C, Py_ssize_t KW, Py_ssize_t Wo, int sw, int pl,
                                          int dw) noexcept nogil:
    """Full channel blocks of the taps ``j < 3 * (KW // 3)`` of one kernel row, three taps at a time.

    ``part`` is the row's ``(KW, C)`` gradient. Output columns where all three taps of a triple are inside
    go through ``dw_wgrad3x16_f32``, the rest tap by tap. Returns the number of taps done.
    """
    cdef Py_ssize_t j0, t, c0, lo, hi, both_lo, both_hi, Cfull = C - C % CB
    cdef Py_ssize_t los[3]
    cdef Py_ssize_t his[3]
    for j0 in range(0, KW - 2, 3):
        both_lo, both_hi = 0, Wo
        for t in range(3):
            _out_range(&lo, &hi, (j0 + t) * dw - pl, sw, W, Wo)
            los[t], his[t] = lo, hi
            both_lo, both_hi = max(both_lo, lo), min(both_hi, hi)
        both_hi = max(both_hi, both_lo)
        c0 = 0
        while c0 < Cfull:
            dw_wgrad3x16_f32(part + j0 * C + c0, xrow + c0, dyrow + c0, C, both_lo, both_hi, j0 * dw - pl, dw, sw)
            for t in range(3):
                if los[t] < both_lo:
                    dw_wgrad16_f32(part + (j0 + t) * C + c0, xrow + c0, dyrow + c0, C, los[t],
                                   min(his[t], both_lo), (j0 + t) * dw - pl, sw)
                if his[t] > both_hi:
                    dw_wgrad16_f32(part + (j0 + t) * C + c0, xrow + c0, dyrow + c0, C, max(los[t], both_hi),
                                   his[t], (j0 + t) * dw - pl, sw)
            c0 += CB
    return 3 * (KW // 3)


cdef void _wgrad_row(floating *part, const floating *dyrow, const floating *xs, Py_ssize_t oh, Py_ssize_t H,
                     Py_ssize_t W, Py_ssize_t C, Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t Wo,
                     int sh, int sw, int pt, int pl, int dh, int dw) noexcept nogil:
    """``part (KH, KW, C) +=`` output row ``oh``'s share: ``dyrow (Wo, C)`` times the input rows of
    ``xs (H, W, C)`` (one sample) each kernel row reads, summed over output columns."""
    cdef Py_ssize_t i, j, ow, lo, hi, c0, c, nc, ih, a, j3
    cdef floating acc[CB]
    cdef const floating *xrow
    cdef const floating *xp
    cdef const floating *gp
    cdef floating *pp
    for i in range(KH):
        ih = oh * sh - pt + i * dh
        if ih < 0 or ih >= H:
            continue
        xrow = xs + ih * W * C
        j3 = 0
        if floating is float:
            j3 = _wgrad_triples_f32(<float *>part + i * KW * C, <const float *>xrow,
                                    <const float *>dyrow, W, C, KW, Wo, sw, pl, dw)
        for j in range(KW):
            a = j * dw - pl
            _out_range(&lo, &hi, a, sw, W, Wo)
            pp = part + (i * KW + j) * C
            c0 = 0
            if j < j3:
                c0 = C - C % CB   # the full channel blocks of this tap were done in triples
            while c0 < C:
                nc = min(<Py_ssize_t>CB, C - c0)
                if floating is float and nc == CB:
                    dw_wgrad16_f32(<float *>pp + c0, <const float *>xrow + c0, <const float *>dyrow + c0,
                                   C, lo, hi, a, sw)
                    c0 += CB
                    continue
                for c in range(CB):
                    acc[c] = 0
                if nc == CB:
                    for ow in range(lo, hi):
                        xp = xrow + (ow * sw + a) * C + c0
                        gp = dyrow + ow * C + c0
                        for c in range(CB):
                            acc[c] = acc[c] + xp[c] * gp[c]
                else:
                    for ow in range(lo, hi):
                        xp = xrow + (ow * sw + a) * C + c0
                        gp = dyrow + ow * C + c0
                        for c in range(nc):
                            acc[c] = acc[c] + xp[c] * gp[c]
                for c in range(nc):
                    pp[c0 + c] = pp[c0 + c] + acc[c]
                c0 += CB


cdef void _backward_weight_group(floating *part, const floating *dy, const floating *x, Py_ssize_t n0,
                                 Py_ssize_t n1, Py_ssize_t H, Py_ssize_t W, Py_ssize_t C, Py_ssize_t KH,
                                 Py_ssize_t KW, Py_ssize_t Ho, Py_ssize_t Wo,
                                 int sh, int sw, int pt, int pl, int dh, int dw) noexcept nogil:
    """``part (KH, KW, C)`` = sum over samples ``n0 <= n < n1``, output rows, then output columns."""
    cdef Py_ssize_t s, oh
    memset(part, 0, KH * KW * C * sizeof(floating))
    for s in range(n0, n1):
        for oh in range(Ho):
            _wgrad_row(part, dy + (s * Ho + oh) * Wo * C, x + s * H * W * C, oh, H, W, C, KH, KW, Wo,
                       sh, sw, pt, pl, dh, dw)


def depthwise_conv2d_backward_weight(floating[:, :, ::1] dw, const floating[:, :, :, ::1] dy,
                                     const floating[:, :, :, ::1] x, int sh, int sw, int pt, int pl,
                                     int dh, int dwl):
    """Gradient with respect to the weights: ``DW_GROUPS`` fixed sample groups in parallel, added in order."""
    cdef Py_ssize_t N = x.shape[0], H = x.shape[1], W = x.shape[2], C = x.shape[3]
    cdef Py_ssize_t KH = dw.shape[0], KW = dw.shape[1], Ho = dy.shape[1], Wo = dy.shape[2]
    cdef Py_ssize_t K = KH * KW * C, G = min(N, <Py_ssize_t>GROUPS), g, e
    if K == 0:
        return
    if N * H * W * Ho * Wo == 0:
        dw[...] = 0
        return
    cdef Py_ssize_t Kp = (K + 15) // 16 * 16   # each group's partial on whole 64-byte lines
    raw = np.empty(G * Kp + 16, dtype=np.float32 if floating is float else np.float64)
    cdef Py_ssize_t off = ((-raw.ctypes.data) % 64) // raw.itemsize
    cdef floating[:, ::1] part = raw[off:off + G * Kp].reshape(G, Kp)
    cdef floating *pp = &part[0, 0]
    cdef floating *out = &dw[0, 0, 0]
    cdef const floating *dyp = &dy[0, 0, 0, 0]
    cdef const floating *xp = &x[0, 0, 0, 0]
    cdef floating acc
    for g in prange(G, nogil=True, schedule="static", chunksize=1, num_threads=team(N * Ho * Wo * K)):
        _backward_weight_group(pp + g * Kp, dyp, xp, g * N // G, (g + 1) * N // G, H, W, C, KH, KW, Ho, Wo,
                               sh, sw, pt, pl, dh, dwl)
    for e in range(K):
        acc = pp[e]
        for g in range(1, G):
            acc = acc + pp[g * Kp + e]
        out[e] = acc


# ----------------------------------------------------------------------------- fused backward (training)
cdef enum:
    # Input gradients of at least this many bytes are written with streaming (non-temporal) stores, from a
    # row in the thread's slot: an array that large (half this machine's L3) leaves the caches before the layer
    # below reads it, and the stores then skip reading each line first. Measured on 64 x 32 x 32 x 64 float32
    # (16.8 MB), the fused backward, 1 thread, interleaved (load ~4.5): minima 7.6 -> 6.5 ms (identity),
    # 11.1 -> 9.8 ms (relu); on the MobileNet-style maps (at most 2 MB), where dx stays in cache for the layer
    # below, streaming measured 9-23% slower.
    STREAM_BYTES = 16777216

#: ``STREAM_BYTES``, for the tests.
DW_STREAM_BYTES = STREAM_BYTES


cdef extern from *:
    """
    #include <emmintrin.h>
    #include <stdint.h>
    #include <string.h>
    /* n bytes from src to dst with streaming stores (16-byte aligned dst; else, and for the tail, memcpy). */
    static inline void dw_stream_copy(void *dst, const void *src, Py_ssize_t n) {
        char *d = (char *)dst;
        const char *s = (const char *)src;
        Py_ssize_t k = 0;
        if (((uintptr_t)d & 15) == 0)
            for (; k + 16 <= n; k += 16)
                _mm_stream_si128((__m128i *)(d + k), _mm_loadu_si128((const __m128i *)(s + k)));
        memcpy(d + k, s + k, n - k);
    }
    static inline void dw_store_fence(void) { _mm_sfence(); }
    /* out[c] = sum over k < n of row[k*C + c], k in order; 16 channels at a time in registers. */
    typedef float dwb_v8 __attribute__((vector_size(32), aligned(4)));
    static inline void dw_colsum_f32(float *out, const float *row, Py_ssize_t n, Py_ssize_t C) {
        Py_ssize_t c0 = 0;
        for (; c0 + 16 <= C; c0 += 16) {
            dwb_v8 a = {0}, b = {0};
            for (Py_ssize_t k = 0; k < n; k++) {
                a = a + *(const dwb_v8 *)(row + k * C + c0);
                b = b + *(const dwb_v8 *)(row + k * C + c0 + 8);
            }
            *(dwb_v8 *)(out + c0) = a;
            *(dwb_v8 *)(out + c0 + 8) = b;
        }
        for (; c0 < C; c0++) {
            float t = 0;
            for (Py_ssize_t k = 0; k < n; k++)
                t = t + row[k * C + c0];
            out[c0] = t;
        }
    }
    """
    void dw_stream_copy(void *dst, const void *src, Py_ssize_t n) noexcept nogil
    void dw_store_fence() noexcept nogil
    void dw_colsum_f32(float *out, const float *row, Py_ssize_t n, Py_ssize_t C) noexcept nogil


cdef inline Py_ssize_t _fused_parts_length(Py_ssize_t N, Py_ssize_t C, Py_ssize_t KH, Py_ssize_t KW) noexcept nogil:
    return min(N, <Py_ssize_t>GROUPS) * (KH * KW * C + C)


def depthwise_backward_workspace_length(Py_ssize_t N, Py_ssize_t H, Py_ssize_t W, Py_ssize_t C, Py_ssize_t KH,
                                        Py_ssize_t KW, Py_ssize_t Ho, Py_ssize_t Wo, Py_ssize_t slots):
    """Length of the 1-D workspace of :func:`depthwise_conv2d_bias_act_backward` for ``slots`` threads:
    ``G*(KH*KW*C + C)`` group partials (``G = min(N, DW_GROUPS)``), then ``slots`` slots of
    ``Ho*Wo*C + C + W*C`` (a sample's ``dz``, its row sums, an input-gradient row)."""
    if min(N, H, W, C, KH, KW, Ho, Wo) < 0:
        raise ValueError(f"sizes must be >= 0; received N={N}, H={H}, W={W}, C={C}, KH={KH}, KW={KW}, "
                         f"Ho={Ho}, Wo={Wo}")
    if slots < 1:
        raise ValueError(f"slots must be >= 1; received slots={slots}")
    return _fused_parts_length(N, C, KH, KW) + slots * (Ho * Wo * C + C + W * C)


cdef void _dx_row(floating *dxrow, const floating *dzs, const floating *w, Py_ssize_t H, Py_ssize_t W, Py_ssize_t C,
                  Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t Ho, Py_ssize_t Wo, Py_ssize_t ih,
                  int sh, int sw, int pt, int pl, int dh, int dw) noexcept nogil:
    """Input-gradient row ``ih`` of one sample from its ``dz (Ho, Wo, C)``: the row of
    :func:`depthwise_conv2d_backward_input` (the same bits)."""
    if sh == 1 and sw == 1:
        _forward_row(dxrow, dzs, w + (KH * KW - 1) * C, -C, NULL, 0, 0, Ho, Wo, C, KH, KW, W, ih, 1, 1,
                     (KH - 1) * dh - pt, (KW - 1) * dw - pl, dh, dw)
    else:
        _backward_input_row(dxrow, dzs, w, W, C, KH, KW, Ho, Wo, ih, sh, sw, pt, pl, dh, dw)


cdef void _fused_backward_group(floating *part, floating *slot, floating *dx, const floating *dy, const floating *y,
                                const floating *x, const floating *w, int act, floating alpha, bint bias,
                                bint with_dx, bint stream, Py_ssize_t n0, Py_ssize_t n1, Py_ssize_t H, Py_ssize_t W, Py_ssize_t C,
                                Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t Ho, Py_ssize_t Wo,
                                int sh, int sw, int pt, int pl, int dh, int dw) noexcept nogil:
    """Samples ``n0 <= n < n1``, output row by output row: the row's ``dz`` (into the slot; ``dy`` itself for
    the identity), its column sums into the bias partial ``part[K:]`` (if ``bias``), its weight-gradient share
    into ``part[:K]``, then (if ``with_dx``) the input-gradient rows it completes (through the slot's row and
    streaming stores if ``stream``), while the rows are in cache. Strided, the sample's input-gradient rows
    follow its last output row (from the slot's ``dz``; 64 x 64 x 64 x 32 at stride 2, relu, N = 31, one
    thread, minima of 21: row by row 4.24 ms, sample by sample 4.05-4.15, the unfused kernels 3.65-3.81)."""
    cdef Py_ssize_t K = KH * KW * C, s, oh, ih, ow, c, RC = Wo * C
    cdef floating *pb = part + K
    cdef floating *rowsum = slot + Ho * RC
    cdef floating *dxrow = rowsum + C
    cdef const floating *dzs
    cdef const floating *row
    memset(part, 0, (K + C) * sizeof(floating))
    for s in range(n0, n1):
        dzs = dy + s * Ho * RC if act == ACT_IDENTITY else slot
        ih = 0
        for oh in range(Ho):
            if act != ACT_IDENTITY:
                _grad_rows(slot + oh * RC, rowsum, dy + (s * Ho + oh) * RC, y + (s * Ho + oh) * RC, 0, Wo, C, act,
                           alpha)
            elif bias:
                row = dzs + oh * RC
                if floating is float:
                    dw_colsum_f32(rowsum, row, Wo, C)
                else:
                    for c in range(C):
                        rowsum[c] = 0
                    for ow in range(Wo):
                        for c in range(C):
                            rowsum[c] += row[ow * C + c]
            if bias:
                for c in range(C):
                    pb[c] = pb[c] + rowsum[c]
            _wgrad_row(part, dzs + oh * RC, x + s * H * W * C, oh, H, W, C, KH, KW, Wo, sh, sw, pt, pl, dh, dw)
            # the input-gradient rows whose dz rows are all done; strided, the sample's rows after its last row
            while with_dx and ih < H and (oh == Ho - 1 or (sh == 1 and sw == 1 and ih + pt < oh + 1)):
                if stream:
                    _dx_row(dxrow, dzs, w, H, W, C, KH, KW, Ho, Wo, ih, sh, sw, pt, pl, dh, dw)
                    dw_stream_copy(dx + (s * H + ih) * W * C, dxrow, W * C * sizeof(floating))
                else:
                    _dx_row(dx + (s * H + ih) * W * C, dzs, w, H, W, C, KH, KW, Ho, Wo, ih, sh, sw, pt, pl, dh, dw)
                ih += 1
    if stream:
        dw_store_fence()


def depthwise_conv2d_bias_act_backward(floating[:, :, :, ::1] dx, floating[:, :, ::1] dw, floating[::1] db,
                                       floating[::1] work, const floating[:, :, :, ::1] dy,
                                       const floating[:, :, :, ::1] y, const floating[:, :, :, ::1] x,
                                       const floating[:, :, ::1] w, int act, double alpha,
                                       int sh, int sw, int pt, int pl, int dh, int dwl):
    """The gradients of ``y = f(depthwise_conv(x, w) + b)`` in one pass over ``dy`` (``db`` of length 0: no
    bias gradient).

    ``DW_GROUPS`` fixed sample groups, each thread's groups in turn (``g = t, t + S, ...`` for slot ``t`` of
    ``S``), each into its own ``dw``/``db`` partial; the partials are added in group order. ``work`` holds
    the partials and one slot per thread (``depthwise_backward_workspace_length``); at most as many threads
    run as it has slots. ``dx`` and ``dw`` have the bits of the unfused kernels on ``dz``.
    """
    cdef Py_ssize_t N = x.shape[0], H = x.shape[1], W = x.shape[2], C = x.shape[3]
    cdef Py_ssize_t KH = dw.shape[0], KW = dw.shape[1], Ho = dy.shape[1], Wo = dy.shape[2]
    cdef Py_ssize_t K = KH * KW * C, G = min(N, <Py_ssize_t>GROUPS), g, e, t, S, L
    cdef bint bias = db.shape[0] > 0
    cdef floating acc
    L = Ho * Wo * C + C + W * C
    if work.shape[0] < _fused_parts_length(N, C, KH, KW) + L:
        raise ValueError(f"work must have length >= {_fused_parts_length(N, C, KH, KW) + L} for these shapes "
                         f"(one slot); received shape {(work.shape[0],)}")
    if C == 0:
        return
    if N * Ho * Wo == 0 or KH * KW == 0:
        dw[...] = 0
        if bias:
            db[...] = 0
        if N * H * W:
            dx[...] = 0
        return
    S = min(G, (work.shape[0] - _fused_parts_length(N, C, KH, KW)) // L)
    cdef floating *pp = &work[0]
    cdef floating *slots = pp + G * (K + C)
    cdef floating *dxp = &dx[0, 0, 0, 0] if N * H * W else NULL
    cdef const floating *dyp = &dy[0, 0, 0, 0]
    cdef const floating *yp = &y[0, 0, 0, 0]
    cdef const floating *xp = &x[0, 0, 0, 0] if N * H * W else NULL
    cdef const floating *wp = &w[0, 0, 0]
    cdef floating a = <floating>alpha
    cdef bint strided = sh > 1 or sw > 1
    # Strided with the identity (no dz to keep in cache) the input gradient is a pass of its own after the weight
    # gradient's: interleaved, 64 x 64 x 64 x 32 at stride 2 (dx 4x dy) measured 3.45 against 3.10 ms (N = 31,
    # 1 thread, minima of 21, load ~2); streaming stores measured slower there too (4.22 against 3.26 at N = 33).
    cdef bint with_dx = not (strided and act == ACT_IDENTITY)
    cdef bint stream = not strided and N * H * W * C * <Py_ssize_t>sizeof(floating) >= STREAM_BYTES
    cdef int nt = team(N * Ho * Wo * K)
    for t in prange(S, nogil=True, schedule="static", chunksize=1, num_threads=min(nt, S)):
        g = t
        while g < G:
            _fused_backward_group(pp + g * (K + C), slots + t * L, dxp, dyp, yp, xp, wp, act, a, bias, with_dx,
                                  stream, g * N // G, (g + 1) * N // G, H, W, C, KH, KW, Ho, Wo, sh, sw, pt, pl, dh,
                                  dwl)
            g = g + S
    if not with_dx and N * H * W:
        for e in prange(N * H, nogil=True, schedule="static", num_threads=nt):
            t = e // H
            _backward_input_row(dxp + e * W * C, dyp + t * Ho * Wo * C, wp, W, C, KH, KW, Ho, Wo, e - t * H,
                                sh, sw, pt, pl, dh, dwl)
    cdef floating *out = &dw[0, 0, 0]
    for e in range(K):
        acc = pp[e]
        for g in range(1, G):
            acc = acc + pp[g * (K + C) + e]
        out[e] = acc
    if bias:
        for e in range(C):
            acc = pp[K + e]
            for g in range(1, G):
                acc = acc + pp[g * (K + C) + K + e]
            db[e] = acc
