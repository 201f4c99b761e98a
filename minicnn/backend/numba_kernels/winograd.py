"""Winograd F(2x2, 3x3) convolution in Numba, with the fused 2x2 max-pool variant (inference).

Shape letters: N batch; H, W, C input height, width, channels; F filters; Ho, Wo conv output height,
width; T tiles per block (``WINOGRAD_TILE_BLOCK`` at most); S threads' runs; pt, pl top/left padding.
``x (N, H, W, C)``, ``w (3, 3, C, F)``, ``U (16, C, F)`` transformed weights, ``V (16, T, C)``,
``M (16, T, F)``, ``y (N, Ho, Wo, F)`` (or ``(N, Ho // 2, Wo // 2, F)`` pooled).

The Cython kernel's scheme (kernels/winograd.pyx) in Numba: per sample (prange), blocks of T tiles; per tile
the 4x4xC input patch (zero outside the image) is transformed V = B^T d B with the channel loop innermost
(contiguous, vectorized), the 16 products M_k (T, F) = V_k (T, C) @ U_k (C, F) go to one-thread BLAS, and the
output transform Y = A^T M A writes the 2x2xF tile (or its 2x2 max at the fused max-pool). Each sample is
independent: the same bits for any thread count.
"""

import numba
import numpy as np
from numba import prange

from ..activation_codes import IDENTITY
from ..jit import jit
from ..tuning import WINOGRAD_TILE_BLOCK
from ._bias_act_rows import _bias_act_row
from .bias_act import bias_act_forward

__all__ = ["conv2d_winograd_bias_act_forward", "conv2d_winograd_bias_act_maxpool2_forward",
           "conv2d_winograd_bias_add_act_forward", "winograd_weight_transform"]


@jit()
def _winograd_weights(U, w):
    """``U (16, C, F) = G g G^T`` for every (channel, filter) of ``w (3, 3, C, F)``."""
    C, F = w.shape[2], w.shape[3]
    half = w.dtype.type(0.5)
    for c in range(C):
        for f in range(F):
            t = np.empty((4, 3), dtype=w.dtype)   # G g: rows of G times g
            for s in range(3):
                g0, g1, g2 = w[0, s, c, f], w[1, s, c, f], w[2, s, c, f]
                t[0, s] = g0
                t[1, s] = (g0 + g1 + g2) * half
                t[2, s] = (g0 - g1 + g2) * half
                t[3, s] = g2
            for r in range(4):
                g0, g1, g2 = t[r, 0], t[r, 1], t[r, 2]
                U[4 * r + 0, c, f] = g0
                U[4 * r + 1, c, f] = (g0 + g1 + g2) * half
                U[4 * r + 2, c, f] = (g0 - g1 + g2) * half
                U[4 * r + 3, c, f] = g2


@jit()
def _winograd_input_tile(V, t, x, d, r0, s0):
    """``V[:, t, :]`` = B^T d B of the 4x4xC patch of ``x (H, W, C)`` at (r0, s0) (zero outside).

    An interior patch is read from ``x`` in place; a border patch is first copied into the
    zero-extended ``d (4, 4, C)`` (kernels/winograd.pyx). Scalar locals and the channel loop
    innermost (contiguous loads and stores): no temporary arrays.
    """
    H, W, C = x.shape
    if 0 <= r0 and r0 + 4 <= H and 0 <= s0 and s0 + 4 <= W:
        _winograd_input_tf(V, t, x, r0, s0)
        return
    for r in range(4):
        ih = r0 + r
        for s in range(4):
            iw = s0 + s
            if 0 <= ih < H and 0 <= iw < W:
                for c in range(C):
                    d[r, s, c] = x[ih, iw, c]
            else:
                for c in range(C):
                    d[r, s, c] = 0
    _winograd_input_tf(V, t, d, 0, 0)


@jit()
def _winograd_input_tf(V, t, p, r0, s0):
    """``V[:, t, :]`` = B^T d B of the 4x4xC patch ``d = p[r0:r0+4, s0:s0+4]`` (inside ``p``)."""
    C = p.shape[2]
    for c in range(C):
        # e = B^T d (rows), column by column
        e00 = p[r0 + 0, s0 + 0, c] - p[r0 + 2, s0 + 0, c]
        e01 = p[r0 + 0, s0 + 1, c] - p[r0 + 2, s0 + 1, c]
        e02 = p[r0 + 0, s0 + 2, c] - p[r0 + 2, s0 + 2, c]
        e03 = p[r0 + 0, s0 + 3, c] - p[r0 + 2, s0 + 3, c]
        e10 = p[r0 + 1, s0 + 0, c] + p[r0 + 2, s0 + 0, c]
        e11 = p[r0 + 1, s0 + 1, c] + p[r0 + 2, s0 + 1, c]
        e12 = p[r0 + 1, s0 + 2, c] + p[r0 + 2, s0 + 2, c]
        e13 = p[r0 + 1, s0 + 3, c] + p[r0 + 2, s0 + 3, c]
        e20 = p[r0 + 2, s0 + 0, c] - p[r0 + 1, s0 + 0, c]
        e21 = p[r0 + 2, s0 + 1, c] - p[r0 + 1, s0 + 1, c]
        e22 = p[r0 + 2, s0 + 2, c] - p[r0 + 1, s0 + 2, c]
        e23 = p[r0 + 2, s0 + 3, c] - p[r0 + 1, s0 + 3, c]
        e30 = p[r0 + 1, s0 + 0, c] - p[r0 + 3, s0 + 0, c]
        e31 = p[r0 + 1, s0 + 1, c] - p[r0 + 3, s0 + 1, c]
        e32 = p[r0 + 1, s0 + 2, c] - p[r0 + 3, s0 + 2, c]
        e33 = p[r0 + 1, s0 + 3, c] - p[r0 + 3, s0 + 3, c]
        # V = e B (columns)
        V[0, t, c] = e00 - e02
        V[1, t, c] = e01 + e02
        V[2, t, c] = e02 - e01
        V[3, t, c] = e01 - e03
        V[4, t, c] = e10 - e12
        V[5, t, c] = e11 + e12
        V[6, t, c] = e12 - e11
        V[7, t, c] = e11 - e13
        V[8, t, c] = e20 - e22
        V[9, t, c] = e21 + e22
        V[10, t, c] = e22 - e21
        V[11, t, c] = e21 - e23
        V[12, t, c] = e30 - e32
        V[13, t, c] = e31 + e32
        V[14, t, c] = e32 - e31
        V[15, t, c] = e31 - e33


@jit()
def _winograd_output_tile(o, M, t):
    """``o (4, F)``: the 2x2 output tile A^T M A of tile ``t`` (``M (16, T, F)``), row-major pixels."""
    F = M.shape[2]
    for f in range(F):
        m00 = M[0, t, f] + M[4, t, f] + M[8, t, f]
        m01 = M[1, t, f] + M[5, t, f] + M[9, t, f]
        m02 = M[2, t, f] + M[6, t, f] + M[10, t, f]
        m03 = M[3, t, f] + M[7, t, f] + M[11, t, f]
        m10 = M[4, t, f] - M[8, t, f] - M[12, t, f]
        m11 = M[5, t, f] - M[9, t, f] - M[13, t, f]
        m12 = M[6, t, f] - M[10, t, f] - M[14, t, f]
        m13 = M[7, t, f] - M[11, t, f] - M[15, t, f]
        o[0, f] = m00 + m01 + m02
        o[1, f] = m01 - m02 - m03
        o[2, f] = m10 + m11 + m12
        o[3, f] = m11 - m12 - m13


@jit(parallel=True)
def _winograd(y, x, U, b, act, alpha, pt, pl, Ho, Wo, pooled, S, skip, has_skip):
    """``f(conv(x) + b)`` of every sample into ``y`` (``(N, Ho, Wo, F)``, or its 2x2 max-pool when ``pooled``);
    with ``has_skip``, ``f((conv(x) + b) + skip)`` (``skip`` of ``y``'s shape; unread otherwise).

    The batch is cut into ``S`` runs of samples (one per thread), each with its own scratch.
    """
    N, C = x.shape[0], x.shape[3]
    F = U.shape[2]
    T = min(WINOGRAD_TILE_BLOCK, ((Ho + 1) // 2) * ((Wo + 1) // 2))
    for s in prange(S):
        V = np.empty((16, T, C), dtype=x.dtype)
        M = np.empty((16, T, F), dtype=x.dtype)
        d = np.empty((4, 4, C), dtype=x.dtype)
        o = np.empty((4, F), dtype=x.dtype)
        for n in range(s * N // S, (s + 1) * N // S):
            _winograd_sample(y, x, U, b, act, alpha, pt, pl, Ho, Wo, pooled, n, V, M, d, o, T, skip, has_skip)


@jit()
def _winograd_sample(y, x, U, b, act, alpha, pt, pl, Ho, Wo, pooled, n, V, M, d, o, T, skip, has_skip):
    """Sample ``n`` of :func:`_winograd` with the scratch ``V, M, d, o``.

    The bias and activation are applied to each output tile while it is in ``o`` (as the Cython kernel):
    a separate pass over the MNIST conv2 output (19 MB) cost a memory round trip.
    """
    F = U.shape[2]
    tw = (Wo + 1) // 2
    tiles = ((Ho + 1) // 2) * tw
    for t0 in range(0, tiles, T):
        nt = min(T, tiles - t0)
        for t in range(nt):
            ti, tj = (t0 + t) // tw, (t0 + t) % tw
            _winograd_input_tile(V, t, x[n], d, 2 * ti - pt, 2 * tj - pl)
        for k in range(16):
            np.dot(V[k], U[k], M[k])
        for t in range(nt):
            ti, tj = (t0 + t) // tw, (t0 + t) % tw
            if pooled and (ti >= Ho // 2 or tj >= Wo // 2):
                continue
            _winograd_output_tile(o, M, t)
            if pooled:
                for f in range(F):   # strict '>' keeps the first maximum; a NaN wins and stays
                    best = o[0, f]
                    for q in range(1, 4):
                        v = o[q, f]
                        if v > best or (v != v and best == best):
                            best = v
                    o[0, f] = best
                _bias_act_row(o, 0, b, act, alpha)
                for f in range(F):
                    y[n, ti, tj, f] = o[0, f]
            else:
                for q in range(4):
                    oh, ow = 2 * ti + q // 2, 2 * tj + q % 2
                    if has_skip:
                        _bias_act_row(o, q, b, IDENTITY, alpha)
                        if oh < Ho and ow < Wo:
                            _bias_act_row(o, q, skip[n, oh, ow], act, alpha)
                    else:
                        _bias_act_row(o, q, b, act, alpha)
                    if oh < Ho and ow < Wo:
                        for f in range(F):
                            y[n, oh, ow, f] = o[q, f]


def _winograd_call(y, x, w, b, act, alpha, pt, pl, Ho, Wo, pooled, skip=None):
    if pt < 0 or pl < 0:
        raise ValueError(f"padding must be >= 0; received pt={pt}, pl={pl}")
    if y.size == 0:
        return
    C, F = w.shape[2], w.shape[3]
    if w.shape[:2] == (4, 4):   # already transformed (winograd_weight_transform)
        U = np.ascontiguousarray(w).reshape(16, C, F)
    else:
        U = np.empty((16, C, F), dtype=x.dtype)
        _winograd_weights(U, w)
    if C == 0:
        y[...] = 0
        y2 = y.reshape(-1, F)
        if skip is None:
            bias_act_forward(y2, y2, b, act, alpha)
        else:
            bias_act_forward(y2, y2, b, IDENTITY, alpha)
            y1 = y2.reshape(1, -1)
            bias_act_forward(y1, y1, skip.reshape(-1), act, alpha)
    else:
        _winograd(y, x, U, b, act, alpha, pt, pl, Ho, Wo, pooled, max(1, min(x.shape[0], numba.get_num_threads())),
                  y if skip is None else skip, skip is not None)


def conv2d_winograd_bias_act_forward(y, x, w, b, work, act, alpha, pt, pl):
    """``y = f(conv(x, w) + b)``, 3x3 stride 1, by Winograd F(2x2, 3x3) (``work`` is not used)."""
    _winograd_call(y, x, w, b, act, alpha, pt, pl, y.shape[1], y.shape[2], False)


def conv2d_winograd_bias_add_act_forward(y, x, w, b, s, work, act, alpha, pt, pl):
    """``y = f((conv(x, w) + b) + s)``: the Winograd forward with ``s`` (``y``'s shape) added before the activation."""
    if s.shape != y.shape:
        raise ValueError(f"conv2d_winograd_bias_add_act_forward: s must have y's shape {y.shape}; "
                         f"received shape {s.shape}")
    if np.shares_memory(s, y):
        raise ValueError("conv2d_winograd_bias_add_act_forward: s must not be y (the output is written before s "
                         "is read)")
    _winograd_call(y, x, w, b, act, alpha, pt, pl, y.shape[1], y.shape[2], False, s)


def conv2d_winograd_bias_act_maxpool2_forward(y, x, w, b, work, act, alpha, pt, pl, Ho, Wo):
    """``y = maxpool_2x2/2(f(conv(x, w) + b))``: the Winograd conv's tiles reduced to their max (``work`` unused)."""
    if Ho < 2 or Wo < 2:
        raise ValueError(f"conv output size must be >= 2 for a 2x2 max-pool; received Ho={Ho}, Wo={Wo}")
    N, F = x.shape[0], w.shape[3]
    if y.shape != (N, Ho // 2, Wo // 2, F):
        raise ValueError(f"y must be (N, Ho // 2, Wo // 2, F) = {(N, Ho // 2, Wo // 2, F)} for "
                         f"Ho={Ho}, Wo={Wo}; received shape {y.shape}")
    _winograd_call(y, x, w, b, act, alpha, pt, pl, Ho, Wo, True)


def winograd_weight_transform(u, w):
    """``u (4, 4, C, F) = G g G^T`` of every filter of ``w (3, 3, C, F)``: the weights the forwards accept in place of ``w``."""
    if w.shape[:2] != (3, 3) or u.shape != (4, 4) + w.shape[2:]:
        raise ValueError(f"winograd_weight_transform needs u (4, 4, C, F) and w (3, 3, C, F); received u {u.shape}, "
                         f"w {w.shape}")
    _winograd_weights(u.reshape(16, *w.shape[2:]), w)
