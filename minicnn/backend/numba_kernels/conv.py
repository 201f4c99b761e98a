"""Convolution kernels in Numba: im2col + one product per sample, the fused epilogue, the direct conv + 2x2 max-pool,
the direct shallow conv (inference).

Shape letters: N batch; H, W, C input height, width, channels; KH, KW kernel height, width; F filters;
Ho, Wo output height, width; K = KH*KW*C the im2col row length; Hp, Wp the 2x2-pooled output size;
sh, sw strides; pt, pl top/left zero padding; dh, dw dilations. ``x (N, H, W, C)``, ``w (KH, KW, C, F)``,
``y (N, Ho, Wo, F)``, ``col (N, Ho*Wo, K)``.

One GEMM per sample (``np.dot`` on contiguous 2-D arrays) inside the ``prange`` next to its im2col/col2im,
with BLAS held at one thread by :func:`minicnn.threads.thread_limits`; shallow products (``K <
CONV_SMALL_K``) are a plain loop; the weight gradient sums ``DW_GROUPS`` fixed batch groups in order.
"""

import numpy as np
from numba import prange

from ..jit import jit
from ..tuning import CONV_SMALL_K, DW_GROUPS
from ._bias_act_rows import _bias_act_rows
from ._im2col import _col2im_one, _im2col_rows
from .bias_act import bias_act_forward

__all__ = ["conv2d_forward", "conv2d_backward_input", "conv2d_backward_weight", "conv2d_bias_act_forward",
           "conv2d_direct_bias_act_maxpool2_forward", "conv2d_direct_bias_act_forward"]


@jit()
def _small_matmul(y, col, w2):
    """``y (P, F) = col (P, K) @ w2 (K, F)``, each output summed over k in order, row by row in a scratch row
    allocated here (LLVM then knows it aliases nothing).

    Measured (MNIST conv1, 128 x 676 x 9 x 32, one thread, product alone): 2.4 ms accumulating in
    ``y``'s row, 1.9 ms in a scratch row; eight scalar accumulators per filter block (4.2 ms), three
    taps per pass and flat 1-D indexing (numba's negative-index wrap-around blocks vectorization) were
    slower.
    """
    P, K = col.shape
    F = w2.shape[1]
    acc = np.empty(F, dtype=y.dtype)
    for p in range(P):
        a = col[p, 0]
        for f in range(F):
            acc[f] = a * w2[0, f]
        for k in range(1, K):
            a = col[p, k]
            for f in range(F):
                acc[f] += a * w2[k, f]
        for f in range(F):
            y[p, f] = acc[f]


@jit(parallel=True)
def _conv(y, x, w, b, col, act, alpha, epilogue, sh, sw, pt, pl, dh, dw):
    """Per sample (``prange``): im2col into ``col[n]``, product, and with ``epilogue`` ``f(. + b)`` in cache."""
    N, Ho, Wo, F = y.shape
    KH, KW, C, _ = w.shape
    K = KH * KW * C
    w2 = w.reshape((K, F))
    for n in prange(N):
        yn = y[n].reshape((Ho * Wo, F))
        _im2col_rows(col[n], x[n], KH, KW, 0, Ho, Wo, sh, sw, pt, pl, dh, dw)
        if K < CONV_SMALL_K:
            _small_matmul(yn, col[n], w2)
        else:
            np.dot(col[n], w2, yn)
        if epilogue:
            _bias_act_rows(yn, yn, b, act, alpha, 0, Ho * Wo)


def conv2d_forward(y, x, w, col, sh, sw, pt, pl, dh, dw):
    """``y = conv(x, w)`` (no bias): per sample, im2col into ``col[n]`` and one product, in ``prange``."""
    if y.size == 0:
        return
    if w.shape[0] * w.shape[1] * w.shape[2] == 0:
        y[...] = 0
        return
    _conv(y, x, w, w[0, 0, 0], col, 0, 0.0, False, sh, sw, pt, pl, dh, dw)


@jit(parallel=True)
def conv2d_backward_input(dx, dcol, dy, w, sh, sw, pt, pl, dh, dw):
    """Gradient with respect to the input: per sample ``dcol[n] = dy[n] @ w.T``, then col2im, in ``prange``."""
    N, Ho, Wo, F = dy.shape
    KH, KW, C, _ = w.shape
    K = KH * KW * C
    wt = w.reshape((K, F)).T
    for n in prange(N):
        np.dot(dy[n].reshape((Ho * Wo, F)), wt, dcol[n])
        _col2im_one(dx[n], dcol[n], Ho, Wo, KH, KW, sh, sw, pt, pl, dh, dw)


@jit(parallel=True)
def conv2d_backward_weight(dw, dy, col):
    """Gradient with respect to the weights: ``col.T @ dy`` summed over fixed batch groups.

    Each of ``DW_GROUPS`` contiguous groups of samples is one GEMM (the
    groups run in ``prange``); the partial products are then added in group
    order, so the result is bit-identical for any thread count.
    """
    N = col.shape[0]
    F = dy.shape[3]
    K = col.shape[2]
    G = min(DW_GROUPS, N)
    partial = np.empty((G, K, F), dtype=dw.dtype)
    for g in prange(G):
        lo = g * N // G
        hi = (g + 1) * N // G
        rows = (hi - lo) * col.shape[1]
        np.dot(col[lo:hi].reshape((rows, K)).T, dy[lo:hi].reshape((rows, F)), partial[g])
    dw2 = dw.reshape((K, F))
    dw2[:] = partial[0]
    for g in range(1, G):
        dw2 += partial[g]


def conv2d_bias_act_forward(y, x, w, b, col, act, alpha, sh, sw, pt, pl, dh, dw):
    """``y = f(conv(x, w) + b)``: the conv and the bias+activation epilogue in one pass per sample."""
    if y.size == 0:
        return
    if w.shape[0] * w.shape[1] * w.shape[2] == 0:
        y[...] = 0
        y2 = y.reshape(-1, y.shape[-1])
        bias_act_forward(y2, y2, b, act, alpha)
        return
    _conv(y, x, w, b, col, act, alpha, True, sh, sw, pt, pl, dh, dw)


@jit(parallel=True)
def _direct_conv_maxpool2(y, x, w, sh, sw, pt, pl, dh, dw):
    N, H, W, C = x.shape
    KH, KW, _, F = w.shape
    Hp, Wp = y.shape[1], y.shape[2]
    for n in prange(N):
        acc = np.empty(F, dtype=x.dtype)
        for pi in range(Hp):
            for pj in range(Wp):
                for f in range(F):
                    y[n, pi, pj, f] = -np.inf
                for q in range(4):
                    oh = 2 * pi + q // 2
                    ow = 2 * pj + q % 2
                    acc[:] = 0
                    for i in range(KH):
                        ih = oh * sh - pt + i * dh
                        if ih < 0 or ih >= H:
                            continue
                        for j in range(KW):
                            iw = ow * sw - pl + j * dw
                            if iw < 0 or iw >= W:
                                continue
                            for c in range(C):
                                v = x[n, ih, iw, c]
                                for f in range(F):
                                    acc[f] += v * w[i, j, c, f]
                    for f in range(F):   # strict '>' keeps the first maximum; a NaN wins and then stays
                        if acc[f] > y[n, pi, pj, f] or (acc[f] != acc[f] and y[n, pi, pj, f] == y[n, pi, pj, f]):
                            y[n, pi, pj, f] = acc[f]


def conv2d_direct_bias_act_maxpool2_forward(y, x, w, b, act, alpha, sh, sw, pt, pl, dh, dw):
    """``y = maxpool_2x2/2(f(conv(x, w) + b))`` by a direct loop: no im2col columns, no conv output."""
    if y.size == 0:
        return
    _direct_conv_maxpool2(y, x, w, sh, sw, pt, pl, dh, dw)
    y2 = y.reshape(-1, y.shape[-1])
    bias_act_forward(y2, y2, b, act, alpha)


@jit(parallel=True)
def _direct_conv(y, x, w, b, act, alpha, sh, sw, pt, pl, dh, dw):
    """Per output row of every sample (``prange``): each pixel's taps read from ``x`` (zeros outside it), summed
    over k = (i, j, c) in order into a scratch row, then the row's epilogue."""
    N, H, W, C = x.shape
    KH, KW, _, F = w.shape
    Ho, Wo = y.shape[1], y.shape[2]
    zero = x.dtype.type(0)
    for item in prange(N * Ho):
        n = item // Ho
        oh = item % Ho
        acc = np.empty(F, dtype=y.dtype)
        yrow = y[n, oh]
        for ow in range(Wo):
            first = True
            for i in range(KH):
                ih = oh * sh - pt + i * dh
                for j in range(KW):
                    iw = ow * sw - pl + j * dw
                    inside = 0 <= ih < H and 0 <= iw < W
                    for c in range(C):
                        v = x[n, ih, iw, c] if inside else zero
                        if first:
                            for f in range(F):
                                acc[f] = v * w[i, j, c, f]
                            first = False
                        else:
                            for f in range(F):
                                acc[f] += v * w[i, j, c, f]
            for f in range(F):
                yrow[ow, f] = acc[f]
        _bias_act_rows(yrow, yrow, b, act, alpha, 0, Wo)


def conv2d_direct_bias_act_forward(y, x, w, b, act, alpha, sh, sw, pt, pl, dh, dw):
    """``y = f(conv(x, w) + b)`` by a direct loop over the input (no im2col columns), at inference."""
    if y.size == 0:
        return
    if w.shape[0] * w.shape[1] * w.shape[2] == 0:
        conv2d_bias_act_forward(y, x, w, b, np.empty((y.shape[0], y.shape[1] * y.shape[2], 0), y.dtype), act,
                                alpha, sh, sw, pt, pl, dh, dw)
        return
    _direct_conv(y, x, w, b, act, alpha, sh, sw, pt, pl, dh, dw)
