# Included by the conv kernels (``include "_im2col.pxi"``): im2col of one sample, NHWC.
#
# The including module defines the fused type ``floating`` (float, double) first.
# Columns are ordered ``(kh, kw, c)`` to match ``w.reshape(KH*KW*C, F)``; taps that
# fall in the padding (or past the image) are zeros.

from libc.string cimport memcpy


cdef inline void _im2col_rows_c1(floating *col, const floating *x, Py_ssize_t H, Py_ssize_t W,
                                 Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t oh0, Py_ssize_t oh1, Py_ssize_t Wo,
                                 int sh, int sw, int pt, int pl, int dh, int dw) noexcept nogil:
    """:func:`_im2col_rows` for a 1-channel image, tap by tap.

    Per output row and tap ``(i, j)``, the output columns whose input column
    is inside the image form one range ``lo <= ow < hi``: a strided copy with
    no per-pixel bounds test. Measured (conv2d_bias_act_forward with this
    file instead of conv.pyx's per-pixel loop, medians): digits conv (64
    samples, 8x8x1 -> 16) 90 -> 64 us; MNIST conv1 (128, 28x28x1 -> 32)
    2.41 -> 1.96 ms on one thread, 1.36 -> 1.02 ms on two. The same
    tap-by-tap loop for 3 channels was slower than the per-pixel one (166
    against 143 us on the digits shape), hence ``C == 1`` only.
    """
    cdef Py_ssize_t K = KH * KW
    cdef Py_ssize_t oh, ow, i, j, ih, a, lo, hi
    cdef floating *d
    cdef const floating *src
    for oh in range(oh0, oh1):
        for i in range(KH):
            ih = oh * sh - pt + i * dh
            d = col + (oh - oh0) * Wo * K + i * KW
            if ih < 0 or ih >= H:
                for ow in range(Wo):
                    for j in range(KW):
                        d[ow * K + j] = 0
                continue
            for j in range(KW):
                # input column iw = ow*sw + a is inside [0, W) for lo <= ow < hi
                a = j * dw - pl
                lo = 0 if a >= 0 else (-a + sw - 1) // sw
                hi = 0 if W - 1 - a < 0 else (W - 1 - a) // sw + 1
                if lo > Wo:
                    lo = Wo
                if hi > Wo:
                    hi = Wo
                if hi < lo:
                    hi = lo
                for ow in range(lo):
                    d[ow * K + j] = 0
                if lo < hi:
                    src = x + ih * W + a
                    for ow in range(lo, hi):
                        d[ow * K + j] = src[ow * sw]
                for ow in range(hi, Wo):
                    d[ow * K + j] = 0


cdef inline void _im2col_rows(floating *col, const floating *x,
                              Py_ssize_t H, Py_ssize_t W, Py_ssize_t C,
                              Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t oh0, Py_ssize_t oh1, Py_ssize_t Wo,
                              int sh, int sw, int pt, int pl, int dh, int dw) noexcept nogil:
    """Fill the ``((oh1-oh0)*Wo, KH*KW*C)`` columns of output rows ``oh0 <= oh < oh1`` from one ``(H, W, C)`` image.

    With ``dw == 1`` the ``KW`` taps of a kernel row are ``KW*C`` contiguous
    values of ``x``: one copy per kernel row instead of one per tap (for a
    1-channel first layer the per-tap loop cost ~4.5 ns per value).
    """
    cdef Py_ssize_t oh, ow, i, j, ih, iw, iw0, c, t
    cdef Py_ssize_t row = KW * C
    if C == 1:
        _im2col_rows_c1(col, x, H, W, KH, KW, oh0, oh1, Wo, sh, sw, pt, pl, dh, dw)
        return
    cdef floating *dst = col
    cdef const floating *src
    for oh in range(oh0, oh1):
        for ow in range(Wo):
            iw0 = ow * sw - pl
            for i in range(KH):
                ih = oh * sh - pt + i * dh
                if ih < 0 or ih >= H:
                    for t in range(row):
                        dst[t] = 0
                    dst += row
                elif dw == 1 and iw0 >= 0 and iw0 + KW <= W:
                    src = x + (ih * W + iw0) * C
                    if row >= 16:
                        memcpy(dst, src, row * sizeof(floating))
                    else:
                        for t in range(row):
                            dst[t] = src[t]
                    dst += row
                else:
                    for j in range(KW):
                        iw = iw0 + j * dw
                        if 0 <= iw < W:
                            src = x + (ih * W + iw) * C
                            for c in range(C):
                                dst[c] = src[c]
                        else:
                            for c in range(C):
                                dst[c] = 0
                        dst += C


cdef inline void _im2col(floating *col, const floating *x,
                         Py_ssize_t H, Py_ssize_t W, Py_ssize_t C,
                         Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t Ho, Py_ssize_t Wo,
                         int sh, int sw, int pt, int pl, int dh, int dw) noexcept nogil:
    """Fill one sample's ``(Ho*Wo, KH*KW*C)`` column block from its ``(H, W, C)`` image."""
    _im2col_rows(col, x, H, W, C, KH, KW, 0, Ho, Wo, sh, sw, pt, pl, dh, dw)
