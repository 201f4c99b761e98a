"""Convolution references: im2col + one product, the fused epilogue, the direct conv + 2x2 max-pool.

Shape letters: N batch; H, W, C input height, width, channels; KH, KW kernel height, width; F filters;
Ho, Wo output height, width; K = KH*KW*C the im2col row length, ordered (kh, kw, c); Hp, Wp the 2x2-pooled
output size; sh, sw strides; pt, pl top/left zero padding; dh, dw dilations. ``x (N, H, W, C)``,
``w (KH, KW, C, F)``, ``y (N, Ho, Wo, F)``, ``col, dcol (N, Ho*Wo, K)``.
"""

import numpy as np

from ._im2col import _pad_input, _window
from .bias_act import bias_act_forward
from .pool import maxpool2d_forward

__all__ = ["conv2d_forward", "conv2d_backward_input", "conv2d_backward_weight", "conv2d_bias_act_forward",
           "conv2d_direct_bias_act_maxpool2_forward", "conv2d_direct_bias_act_forward"]


def conv2d_forward(y, x, w, col, sh, sw, pt, pl, dh, dw):
    """``y = conv(x, w)`` (no bias) via im2col into ``col`` and one matrix product."""
    N, H, W, C = x.shape
    KH, KW, _, F = w.shape
    Ho, Wo = y.shape[1], y.shape[2]
    xp = _pad_input(x, Ho, Wo, KH, KW, sh, sw, pt, pl, dh, dw)
    for i in range(KH):
        for j in range(KW):
            rows, cols = _window(Ho, Wo, i, j, sh, sw, dh, dw)
            tap = (i * KW + j) * C
            col[:, :, tap:tap + C] = xp[:, rows, cols, :].reshape(N, Ho * Wo, C)
    y[...] = (col @ w.reshape(KH * KW * C, F)).reshape(y.shape)


def conv2d_backward_input(dx, dcol, dy, w, sh, sw, pt, pl, dh, dw):
    """Gradient of the conv output with respect to its input (col2im of ``dy @ w.T``)."""
    N, H, W, C = dx.shape
    KH, KW, _, F = w.shape
    Ho, Wo = dy.shape[1], dy.shape[2]
    dcol[...] = dy.reshape(N, Ho * Wo, F) @ w.reshape(KH * KW * C, F).T
    dxp = _pad_input(np.zeros_like(dx), Ho, Wo, KH, KW, sh, sw, pt, pl, dh, dw)
    for i in range(KH):
        for j in range(KW):
            rows, cols = _window(Ho, Wo, i, j, sh, sw, dh, dw)
            tap = (i * KW + j) * C
            dxp[:, rows, cols, :] += dcol[:, :, tap:tap + C].reshape(N, Ho, Wo, C)
    dx[...] = dxp[:, pt:pt + H, pl:pl + W, :]


def conv2d_backward_weight(dw, dy, col):
    """Gradient of the conv output with respect to the weights: ``col.T @ dy``."""
    F = dy.shape[3]
    K = col.shape[2]
    dw[...] = (col.reshape(-1, K).T @ dy.reshape(-1, F)).reshape(dw.shape)


def conv2d_bias_act_forward(y, x, w, b, col, act, alpha, sh, sw, pt, pl, dh, dw):
    """``y = f(conv(x, w) + b)``: :func:`conv2d_forward` then the reference ``bias_act_forward``, in one kernel call."""
    conv2d_forward(y, x, w, col, sh, sw, pt, pl, dh, dw)
    y2 = y.reshape(-1, y.shape[-1])
    bias_act_forward(y2, y2, b, act, alpha)


def conv2d_direct_bias_act_maxpool2_forward(y, x, w, b, act, alpha, sh, sw, pt, pl, dh, dw):
    """``y = maxpool_2x2/2(f(conv(x, w) + b))`` for any conv geometry, at inference.

    ``y (N, Hp, Wp, F)``: ``Hp, Wp`` the 2x2, stride-2, unpadded, floor-mode
    pooled size of the conv output (an odd last row/column is dropped).
    Readable twin of the compiled kernels, which write neither im2col columns
    nor the conv output (a first layer on few channels): the conv into a
    temporary, then :func:`~minicnn.backend.reference.maxpool2d_forward`.
    """
    N, H, W, C = x.shape
    KH, KW, _, F = w.shape
    Hp, Wp = y.shape[1], y.shape[2]
    # the conv outputs the pool reads: rows/columns 0 .. 2*Hp-1 / 2*Wp-1 (taps past the image read zeros)
    conv = np.empty((N, 2 * Hp, 2 * Wp, F), dtype=x.dtype)
    conv2d_bias_act_forward(conv, x, w, b, np.empty((N, 4 * Hp * Wp, KH * KW * C), x.dtype), act, alpha,
                            sh, sw, pt, pl, dh, dw)
    maxpool2d_forward(y, np.empty(y.shape, np.int64), conv, 2, 2, 2, 2, 0, 0)


def conv2d_direct_bias_act_forward(y, x, w, b, act, alpha, sh, sw, pt, pl, dh, dw):
    """``y = f(conv(x, w) + b)`` at inference, any conv geometry: the same values as
    :func:`conv2d_bias_act_forward`.

    Readable twin of the compiled direct kernels for shallow convs (small ``K = KH*KW*C``: a first layer
    on RGB images), which read each output pixel's taps from the input rows and apply the epilogue in
    registers, with no im2col columns; here the columns go to a temporary.
    """
    N = x.shape[0]
    KH, KW, C, _ = w.shape
    conv2d_bias_act_forward(y, x, w, b, np.empty((N, y.shape[1] * y.shape[2], KH * KW * C), x.dtype), act, alpha,
                            sh, sw, pt, pl, dh, dw)
