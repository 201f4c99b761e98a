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

import numba
import numpy as np
from numba import prange

from ..activation_codes import IDENTITY
from ..jit import jit
from ..tuning import DW_GROUPS, check_depthwise_backward_work

from ._bias_act_rows import _grad_row
from .bias_act import bias_act_forward

__all__ = ["depthwise_conv2d_forward", "depthwise_conv2d_bias_act_forward", "depthwise_conv2d_backward_input",
           "depthwise_conv2d_backward_weight", "depthwise_conv2d_bias_act_backward"]


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


@jit()
def _input_grad_row(dxs, dys, w, ih, sh, sw, pt, pl, dh, dw):
    """Row ``ih`` of one sample's ``dx (H, W, C)`` from its ``dy (Ho, Wo, C)``: per pixel, the taps that read it."""
    W, C = dxs.shape[1], dxs.shape[2]
    KH, KW = w.shape[0], w.shape[1]
    Ho, Wo = dys.shape[0], dys.shape[1]
    for iw in range(W):
        out = dxs[ih, iw]
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
                src, tap = dys[oh, u // sw], w[i, j]
                for c in range(C):
                    out[c] += src[c] * tap[c]


@jit(parallel=True)
def depthwise_conv2d_backward_input(dx, dy, w, sh, sw, pt, pl, dh, dw):
    """``dx``: per input pixel, the sum over the taps that read it of ``dy * w`` (one input row per iteration)."""
    H = dx.shape[1]
    for r in prange(dx.shape[0] * H):
        n, ih = r // H, r % H
        _input_grad_row(dx[n], dy[n], w, ih, sh, sw, pt, pl, dh, dw)


@jit()
def _weight_grad_sample(part, dys, xs, sh, sw, pt, pl, dh, dwl):
    """``part (KH, KW, C) +=`` one sample's weight gradient: output rows, kernel taps, then output columns."""
    H, W, C = xs.shape
    KH, KW = part.shape[0], part.shape[1]
    Ho, Wo = dys.shape[0], dys.shape[1]
    for oh in range(Ho):
        for i in range(KH):
            ih = oh * sh - pt + i * dh
            if ih < 0 or ih >= H:
                continue
            for j in range(KW):
                acc = part[i, j]
                for ow in range(Wo):
                    iw = ow * sw - pl + j * dwl
                    if iw < 0 or iw >= W:
                        continue
                    src, grad = xs[ih, iw], dys[oh, ow]
                    for c in range(C):
                        acc[c] += src[c] * grad[c]


@jit()
def _sum_groups(out, parts):
    """``out = parts[0] + parts[1] + ...`` in group order (flat views)."""
    out[:] = parts[0]
    for g in range(1, parts.shape[0]):
        out += parts[g]


@jit(parallel=True)
def depthwise_conv2d_backward_weight(dw, dy, x, sh, sw, pt, pl, dh, dwl):
    """``dw``: each tap's input window times ``dy``, summed per fixed sample group, groups added in order."""
    N = x.shape[0]
    G = max(1, min(DW_GROUPS, N))
    part = np.zeros((G, dw.shape[0], dw.shape[1], dw.shape[2]), dtype=dw.dtype)
    for g in prange(G):
        for n in range(g * N // G, (g + 1) * N // G):
            _weight_grad_sample(part[g], dy[n], x[n], sh, sw, pt, pl, dh, dwl)
    _sum_groups(dw.reshape(-1), part.reshape(G, -1))


@jit()
def _sample_grads(pw, pb, dzs, xs, dxs, w, bias, sh, sw, pt, pl, dh, dwl):
    """One sample's shares from its ``dz (Ho, Wo, C)``: column sums into ``pb`` (if ``bias``), the weight
    gradient into ``pw``, and its ``dx (H, W, C)``."""
    if bias:
        for oh in range(dzs.shape[0]):
            for ow in range(dzs.shape[1]):
                for c in range(dzs.shape[2]):
                    pb[c] += dzs[oh, ow, c]
    _weight_grad_sample(pw, dzs, xs, sh, sw, pt, pl, dh, dwl)
    for ih in range(dxs.shape[0]):
        _input_grad_row(dxs, dzs, w, ih, sh, sw, pt, pl, dh, dwl)


@jit(parallel=True)
def _fused_backward(dx, dw, db, work, dy, y, x, w, act, alpha, sh, sw, pt, pl, dh, dwl, S, L):
    """:func:`depthwise_conv2d_bias_act_backward` on ``S >= 1`` slots: slot ``t`` takes groups ``t, t + S, ...``,
    each sample's ``dz`` into the slot (``dy`` itself for the identity), then its shares (:func:`_sample_grads`)."""
    N = x.shape[0]
    KH, KW, C = dw.shape
    Ho, Wo = dy.shape[1], dy.shape[2]
    K = KH * KW * C
    G = min(DW_GROUPS, N)
    P = G * (K + C)
    bias = db.shape[0] > 0
    for t in prange(S):
        dz = work[P + t * L:P + t * L + Ho * Wo * C].reshape((Ho * Wo, C))
        for k in range((G - t + S - 1) // S):
            g = t + k * S
            part = work[g * (K + C):(g + 1) * (K + C)]
            part[:] = 0
            pw, pb = part[:K].reshape((KH, KW, C)), part[K:]
            for n in range(g * N // G, (g + 1) * N // G):
                if act == IDENTITY:
                    _sample_grads(pw, pb, dy[n], x[n], dx[n], w, bias, sh, sw, pt, pl, dh, dwl)
                else:
                    dyn, yn = dy[n].reshape((Ho * Wo, C)), y[n].reshape((Ho * Wo, C))
                    for m in range(Ho * Wo):
                        _grad_row(dz, dyn, yn, m, act, alpha)
                    _sample_grads(pw, pb, dz.reshape((Ho, Wo, C)), x[n], dx[n], w, bias, sh, sw, pt, pl, dh, dwl)
    parts = work[:P].reshape((G, K + C))
    _sum_groups(dw.reshape(-1), parts[:, :K])
    if bias:
        _sum_groups(db, parts[:, K:])


def depthwise_conv2d_bias_act_backward(dx, dw, db, work, dy, y, x, w, act, alpha, sh, sw, pt, pl, dh, dwl):
    """The gradients of ``y = f(depthwise_conv(x, w) + b)`` from ``dy`` (``db`` of length 0: no bias gradient),
    ``work`` laid out as the Cython kernel's (``tuning.depthwise_backward_workspace_length``); at most as many
    threads run as it has slots. The same bits for any thread count and slot count."""
    check_depthwise_backward_work(work, x, dw, dy)
    N, H, W, C = x.shape
    KH, KW = dw.shape[0], dw.shape[1]
    Ho, Wo = dy.shape[1], dy.shape[2]
    if C == 0:
        return
    if N * Ho * Wo == 0 or KH * KW == 0:
        dw[...] = 0
        db[...] = 0
        dx[...] = 0
        return
    G = min(DW_GROUPS, N)
    L = Ho * Wo * C + C + W * C
    slots = (work.shape[0] - G * (KH * KW * C + C)) // L
    _fused_backward(dx, dw, db, work, dy, y, x, w, act, alpha, sh, sw, pt, pl, dh, dwl,
                    max(1, min(slots, G, numba.get_num_threads())), L)


def depthwise_conv2d_bias_act_forward(y, x, w, b, act, alpha, sh, sw, pt, pl, dh, dw):
    """``y = f(depthwise_conv(x, w) + b)``: :func:`depthwise_conv2d_forward` then ``bias_act_forward`` (same bits)."""
    depthwise_conv2d_forward(y, x, w, sh, sw, pt, pl, dh, dw)
    if y.size:
        y2 = y.reshape(-1, y.shape[-1])
        bias_act_forward(y2, y2, b, act, alpha)
