"""Numba twins of :mod:`minicnn.backend.depthwise_reference` (same names, signatures and contract).

Shape letters: N batch, H, W input height and width, C channels, KH, KW kernel
height and width, Ho, Wo output height and width (NHWC; weights ``(KH, KW, C)``).

Every output row ``(n, oh)`` (forward) or input row ``(n, ih)`` (input
gradient) is one ``prange`` iteration, so each element is written by one
thread with a fixed summation order (taps in row-major order, the channel loop
innermost and contiguous). The weight gradient sums ``DW_GROUPS`` fixed sample
groups (:mod:`minicnn.backend.tuning`) in order. All results are
bit-identical for any thread count.
"""

import numpy as np
from numba import prange

from ..jit import jit
from ..tuning import DW_GROUPS

from .bias_act import bias_act_forward

__all__ = ["depthwise_conv2d_forward", "depthwise_conv2d_bias_act_forward", "depthwise_conv2d_backward_input",
           "depthwise_conv2d_backward_weight"]


@jit(parallel=True)
def depthwise_conv2d_forward(y, x, w, sh, sw, pt, pl, dh, dw):
    """``y = depthwise_conv(x, w)`` (no bias), one output row per ``prange`` iteration."""
    N, H, W, C = x.shape
    KH, KW = w.shape[0], w.shape[1]
    Ho, Wo = y.shape[1], y.shape[2]
    for r in prange(N * Ho):
        n, oh = r // Ho, r % Ho
        for ow in range(Wo):
            out = y[n, oh, ow]
            out[:] = 0
            for i in range(KH):
                ih = oh * sh - pt + i * dh
                if ih < 0 or ih >= H:
                    continue
                for j in range(KW):
                    iw = ow * sw - pl + j * dw
                    if iw < 0 or iw >= W:
                        continue
                    src, tap = x[n, ih, iw], w[i, j]
                    for c in range(C):
                        out[c] += src[c] * tap[c]


@jit(parallel=True)
def depthwise_conv2d_backward_input(dx, dy, w, sh, sw, pt, pl, dh, dw):
    """``dx``: per input pixel, the sum over the taps that read it of ``dy * w`` (one input row per iteration)."""
    N, H, W, C = dx.shape
    KH, KW = w.shape[0], w.shape[1]
    Ho, Wo = dy.shape[1], dy.shape[2]
    for r in prange(N * H):
        n, ih = r // H, r % H
        for iw in range(W):
            out = dx[n, ih, iw]
            out[:] = 0
            for i in range(KH):
                t = ih + pt - i * dh          # = oh * sh for the output row oh that tap row i reads ih from
                if t < 0:
                    break
                if t % sh != 0 or t // sh >= Ho:
                    continue
                oh = t // sh
                for j in range(KW):
                    u = iw + pl - j * dw
                    if u < 0:
                        break
                    if u % sw != 0 or u // sw >= Wo:
                        continue
                    src, tap = dy[n, oh, u // sw], w[i, j]
                    for c in range(C):
                        out[c] += src[c] * tap[c]


@jit(parallel=True)
def depthwise_conv2d_backward_weight(dw, dy, x, sh, sw, pt, pl, dh, dwl):
    """``dw``: each tap's input window times ``dy``, summed per fixed sample group, groups added in order."""
    N, H, W, C = x.shape
    KH, KW = dw.shape[0], dw.shape[1]
    Ho, Wo = dy.shape[1], dy.shape[2]
    G = max(1, min(DW_GROUPS, N))
    part = np.zeros((G, KH, KW, C), dtype=dw.dtype)
    for g in prange(G):
        for n in range(g * N // G, (g + 1) * N // G):
            for oh in range(Ho):
                for i in range(KH):
                    ih = oh * sh - pt + i * dh
                    if ih < 0 or ih >= H:
                        continue
                    for j in range(KW):
                        acc = part[g, i, j]
                        for ow in range(Wo):
                            iw = ow * sw - pl + j * dwl
                            if iw < 0 or iw >= W:
                                continue
                            src, grad = x[n, ih, iw], dy[n, oh, ow]
                            for c in range(C):
                                acc[c] += src[c] * grad[c]
    dw[:] = part[0]
    for g in range(1, G):
        dw += part[g]


def depthwise_conv2d_bias_act_forward(y, x, w, b, act, alpha, sh, sw, pt, pl, dh, dw):
    """``y = f(depthwise_conv(x, w) + b)``: :func:`depthwise_conv2d_forward` then ``bias_act_forward`` (same bits)."""
    depthwise_conv2d_forward(y, x, w, sh, sw, pt, pl, dh, dw)
    if y.size:
        y2 = y.reshape(-1, y.shape[-1])
        bias_act_forward(y2, y2, b, act, alpha)
