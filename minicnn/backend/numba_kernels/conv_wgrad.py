"""The conv weight gradient from the layer input in Numba (no stored im2col columns).

Shape letters: N batch; H, W, C input height, width, channels; KH, KW kernel height, width; F filters;
Ho, Wo output height, width; K = KH*KW*C; G = min(N, DW_GROUPS) fixed sample groups; R output rows per
block; S elements per thread's im2col slot. ``x (N, H, W, C)``, ``dy (N, Ho, Wo, F)``, ``dw (KH, KW, C, F)``,
``work`` 1-D: ``[G partial gradients (K, F) | slot 0 | slot 1 | ...]``. Winograd: T tiles per block,
``V (16, T, C)``, ``Z (16, T, F)``, partial gradients ``(16, C, F)`` in the Winograd domain.

The Cython kernel's scheme (kernels/conv_wgrad.pyx): fixed groups of samples, each group's output rows taken
in blocks of R rows (tuning.WGRAD_BLOCK_MNK: OpenBLAS's unpacked small-matrix path), im2col of a block into
the run's slot of ``work``, then ``part[g] += col_block.T @ dy_block`` by one BLAS call with beta = 1 (np.dot
has no beta). Measured on the MNIST conv2 (128, 26x26x32 -> 64, interleaved with the Cython kernel, medians):
numba / cython time 1.00-1.04 at 1 and 2 threads, where one whole-sample np.dot per sample (k = 576, the
packed sgemm path) and a partial-sum add made the layer's backward 0.72x the Cython one's speed.
"""

import numba
import numpy as np
from numba import prange
from numba.core import types as nb_types
from numba.extending import overload

from ..jit import jit
from ..tuning import (DW_GROUPS, WINO_WGRAD_PAD, _wgrad_block_rows, conv_wgrad_workspace_length,
                      winograd_wgrad_prologue)
from ._blas import _XXGEMM, _address
from ._im2col import _im2col_rows
from .winograd import _winograd_input_tile

__all__ = ["conv2d_backward_weight_from_input", "conv2d_winograd_backward_weight"]


def _gemm_acc(part, dyb, colb, scal):
    """``part (K, F) = colb.T @ dyb + scal[1] * part`` (``scal[0]`` = 1): the plain-Python twin.

    ``part``, ``dyb (rows, F)`` and ``colb (rows, K)`` are C-contiguous 2-D arrays. Runs only with
    ``NUMBA_DISABLE_JIT=1``; jitted callers get the BLAS call of :func:`_gemm_acc_blas`.
    """
    prod = np.dot(colb.T, dyb)
    if scal[1] == 0:
        part[...] = prod
    else:
        part += prod


@overload(_gemm_acc)
def _gemm_acc_blas(part, dyb, colb, scal):
    kind = ord("s") if part.dtype == nb_types.float32 else ord("d")

    def impl(part, dyb, colb, scal):
        # column-major: part^T (F, K) = dyb^T (F, rows) @ colb (rows, K) + beta * part^T
        rows, F = dyb.shape
        K = colb.shape[1]
        _XXGEMM(np.int8(kind), np.int8(110), np.int8(116), F, K, rows, _address(scal[0:1]), _address(dyb), F,
                _address(colb), K, _address(scal[1:2]), _address(part), F)
    return impl


@jit(parallel=True)
def _wgrad_from_input(dw, dy, x, work, S, R, runs, sh, sw, pt, pl, dh, dwl):
    N, Ho, Wo, F = dy.shape
    KH, KW, C, _ = dw.shape
    K = KH * KW * C
    KF = K * F
    G = min(DW_GROUPS, N)
    dy2 = dy.reshape((N * Ho * Wo, F))
    for s in prange(runs):                               # run s: groups s, s + runs, ... with slot s
        scal = np.empty(2, dtype=dw.dtype)
        scal[0] = 1
        slot = work[G * KF + s * S:G * KF + (s + 1) * S]
        for g in range(s, G, runs):
            part = work[g * KF:(g + 1) * KF].reshape((K, F))
            n0, n1 = g * N // G, (g + 1) * N // G
            scal[1] = 0
            r0 = n0 * Ho
            while r0 < n1 * Ho:                          # blocks of R output rows, spanning samples
                r1 = min(r0 + R, n1 * Ho)
                r = r0
                while r < r1:
                    n = r // Ho
                    oh = r - n * Ho
                    oh1 = min(oh + (r1 - r), Ho)
                    lo = (r - r0) * Wo * K
                    _im2col_rows(slot[lo:lo + (oh1 - oh) * Wo * K].reshape(((oh1 - oh) * Wo, K)), x[n],
                                 KH, KW, oh, oh1, Wo, sh, sw, pt, pl, dh, dwl)
                    r += oh1 - oh
                rows = (r1 - r0) * Wo
                _gemm_acc(part, dy2[r0 * Wo:r1 * Wo], slot[:rows * K].reshape((rows, K)), scal)
                scal[1] = 1
                r0 = r1
    dw2 = dw.reshape(KF)
    for e in prange(KF):                                 # ((part[0] + part[1]) + ...) + part[G-1]
        acc = work[e]
        for g in range(1, G):
            acc += work[g * KF + e]
        dw2[e] = acc


def conv2d_backward_weight_from_input(dw, dy, x, work, sh, sw, pt, pl, dh, dwl):
    """Weight gradient of a conv rebuilt from its input ``x`` (no stored im2col columns).

    ``work`` is laid out as the Cython kernel's (``[part (G*K*F) | slot 0 | slot 1 | ...]``, see
    ``tuning.conv_wgrad_workspace_length``); at most as many threads run as it has slots. Same bits for
    any thread count and slot count.
    """
    N, H, W, C = x.shape
    KH, KW, _, F = dw.shape
    Ho, Wo = dy.shape[1], dy.shape[2]
    need = conv_wgrad_workspace_length(N, H, W, C, KH, KW, F, Ho, Wo, 1)
    if work.ndim != 1 or work.shape[0] < need:
        raise ValueError(f"work must have length >= {need} for these shapes (one slot); received shape {work.shape}")
    if dy.shape[0] == 0 or dw.size == 0 or Ho * Wo == 0:
        dw[...] = 0
        return
    K = KH * KW * C
    G = min(DW_GROUPS, N)
    S = need - G * K * F
    slots = (work.shape[0] - G * K * F) // S if S > 0 else 1
    runs = max(1, min(slots, G, numba.get_num_threads()))
    _wgrad_from_input(dw, dy, x, work, max(S, 1), _wgrad_block_rows(Wo, K, F), runs,
                      sh, sw, pt, pl, dh, dwl)


@jit()
def _wino_dy_tile(Z, t, dy, oh, ow):
    """``Z[:, t, :]`` = A dY A^T of the 2x2xF gradient tile of ``dy (Ho, Wo, F)`` at (oh, ow) (0 past the edge)."""
    Ho, Wo, F = dy.shape
    zero = dy.dtype.type(0)
    for f in range(F):
        a0 = dy[oh, ow, f]
        a1 = dy[oh, ow + 1, f] if ow + 1 < Wo else zero
        b0 = dy[oh + 1, ow, f] if oh + 1 < Ho else zero
        b1 = dy[oh + 1, ow + 1, f] if oh + 1 < Ho and ow + 1 < Wo else zero
        u = ((a0, a1), (a0 + b0, a1 + b1), (a0 - b0, a1 - b1), (-b0, -b1))
        for r in range(4):
            Z[4 * r + 0, t, f] = u[r][0]
            Z[4 * r + 1, t, f] = u[r][0] + u[r][1]
            Z[4 * r + 2, t, f] = u[r][0] - u[r][1]
            Z[4 * r + 3, t, f] = -u[r][1]


@jit(parallel=True)
def _wino_wgrad(dy, x, work, T, S, runs, pt, pl):
    N, Ho, Wo, F = dy.shape
    C = x.shape[3]
    UF = 16 * C * F
    G = min(DW_GROUPS, N)
    tw = (Wo + 1) // 2
    tps = ((Ho + 1) // 2) * tw
    for s in prange(runs):                               # run s: groups s, s + runs, ... with slot s
        scal = np.empty(2, dtype=work.dtype)
        scal[0] = 1
        slot = work[G * UF + s * S:G * UF + (s + 1) * S]
        V = slot[:16 * T * C].reshape((16, T, C))
        Z = slot[16 * T * C:16 * T * (C + F)].reshape((16, T, F))
        d = slot[16 * T * (C + F):16 * T * (C + F) + 16 * C].reshape((4, 4, C))
        for g in range(s, G, runs):
            part = work[g * UF:(g + 1) * UF].reshape((16, C, F))
            n0, n1 = g * N // G, (g + 1) * N // G
            total = (n1 - n0) * tps
            scal[1] = 0
            t0 = 0
            while t0 < total:                            # blocks of T tiles, spanning samples
                nb = min(T, total - t0)
                for i in range(nb):
                    n = n0 + (t0 + i) // tps
                    loc = (t0 + i) % tps
                    ty, tx = loc // tw, loc % tw
                    _winograd_input_tile(V, i, x[n], d, 2 * ty - pt, 2 * tx - pl)
                    _wino_dy_tile(Z, i, dy[n], 2 * ty, 2 * tx)
                for k in range(16):
                    _gemm_acc(part[k], Z[k, :nb], V[k, :nb], scal)
                scal[1] = 1
                t0 += nb
    for e in prange(UF):                                 # ((part[0] + part[1]) + ...) + part[G-1], into part[0]
        acc = work[e]
        for g in range(1, G):
            acc += work[g * UF + e]
        work[e] = acc


@jit()
def _wino_out(dw, dU):
    """``dw (3, 3, C, F) = G^T dU G`` of ``dU (16, C, F)`` (the order of winograd_wgrad.h)."""
    C, F = dw.shape[2], dw.shape[3]
    h = dw.dtype.type(0.5)
    t = np.empty((3, 4), dtype=dw.dtype)
    for c in range(C):
        for f in range(F):
            for j in range(4):
                x0, x1, x2, x3 = dU[j, c, f], dU[4 + j, c, f], dU[8 + j, c, f], dU[12 + j, c, f]
                t[0, j] = x0 + (x1 + x2) * h
                t[1, j] = (x1 - x2) * h
                t[2, j] = (x1 + x2) * h + x3
            for i in range(3):
                dw[i, 0, c, f] = t[i, 0] + (t[i, 1] + t[i, 2]) * h
                dw[i, 1, c, f] = (t[i, 1] - t[i, 2]) * h
                dw[i, 2, c, f] = (t[i, 1] + t[i, 2]) * h + t[i, 3]


def conv2d_winograd_backward_weight(dw, dy, x, work, pt, pl):
    """Weight gradient of a 3x3, stride-1 conv by Winograd F(2x2, 3x3) (kernels/conv_wgrad.pyx's scheme).

    ``work`` is laid out as the Cython kernel's (``[part (G*16*C*F) | slot 0 | ...]``, see
    ``tuning.conv_winograd_wgrad_workspace_length``); at most as many threads run as it has slots. Same
    bits for any thread count and slot count.
    """
    N, H, W, C = x.shape
    F = dw.shape[3]
    Ho, Wo = dy.shape[1], dy.shape[2]
    need = winograd_wgrad_prologue(dw, dy, x, work)
    if need is None:
        return
    G = min(DW_GROUPS, N)
    S = need - G * 16 * C * F
    T = (S - 16 * C - 4 * F - 32 * WINO_WGRAD_PAD) // (16 * (C + F))
    slots = (work.shape[0] - G * 16 * C * F) // S
    runs = max(1, min(slots, G, numba.get_num_threads()))
    _wino_wgrad(dy, x, work, T, S, runs, pt, pl)
    _wino_out(dw, work[:16 * C * F].reshape((16, C, F)))
