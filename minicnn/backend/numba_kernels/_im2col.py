"""im2col / col2im of one sample, shared by the conv and weight-gradient kernels (``kernels/_im2col.pxi``).

Shape letters: H, W, C input height, width, channels; KH, KW kernel height, width; Ho, Wo output height,
width; K = KH*KW*C the length of a column row, ordered (kh, kw, c); sh, sw strides; pt, pl top/left
padding; dh, dw dilations.
"""

from ..jit import jit


@jit()
def _im2col_rows(col, x, KH, KW, oh0, oh1, Wo, sh, sw, pt, pl, dh, dw):
    """im2col of output rows ``oh0 <= oh < oh1`` of one sample into ``col ((oh1-oh0)*Wo, KH*KW*C)``.

    One channel: tap by tap, each tap's in-image output columns one range (kernels/_im2col.pxi; the
    per-pixel loop measured 4.5 ns per value there). More channels: per pixel, channel loop innermost.
    """
    H, W, C = x.shape
    if C == 1:
        for oh in range(oh0, oh1):
            r = (oh - oh0) * Wo
            for i in range(KH):
                ih = oh * sh - pt + i * dh
                if ih < 0 or ih >= H:
                    for ow in range(Wo):
                        for j in range(KW):
                            col[r + ow, i * KW + j] = 0
                    continue
                for j in range(KW):
                    t = i * KW + j
                    a = j * dw - pl                     # input column iw = ow*sw + a
                    lo = 0 if a >= 0 else (-a + sw - 1) // sw
                    hi = 0 if W - 1 - a < 0 else (W - 1 - a) // sw + 1
                    lo = min(lo, Wo)
                    hi = max(min(hi, Wo), lo)
                    for ow in range(lo):
                        col[r + ow, t] = 0
                    for ow in range(lo, hi):
                        col[r + ow, t] = x[ih, ow * sw + a, 0]
                    for ow in range(hi, Wo):
                        col[r + ow, t] = 0
        return
    for oh in range(oh0, oh1):
        for ow in range(Wo):
            p = (oh - oh0) * Wo + ow
            for i in range(KH):
                ih = oh * sh - pt + i * dh
                for j in range(KW):
                    iw = ow * sw - pl + j * dw
                    base = (i * KW + j) * C
                    if 0 <= ih < H and 0 <= iw < W:
                        for c in range(C):
                            col[p, base + c] = x[ih, iw, c]
                    else:
                        for c in range(C):
                            col[p, base + c] = 0


@jit()
def _col2im_one(dx, dcol, Ho, Wo, KH, KW, sh, sw, pt, pl, dh, dw):
    """col2im of one sample: ``dx`` ``(H, W, C)`` = sum of the ``dcol`` taps landing on it."""
    H, W, C = dx.shape
    dx[:] = 0
    for oh in range(Ho):
        for ow in range(Wo):
            p = oh * Wo + ow
            for i in range(KH):
                ih = oh * sh - pt + i * dh
                if ih < 0 or ih >= H:
                    continue
                for j in range(KW):
                    iw = ow * sw - pl + j * dw
                    if 0 <= iw < W:
                        base = (i * KW + j) * C
                        for c in range(C):
                            dx[ih, iw, c] += dcol[p, base + c]
