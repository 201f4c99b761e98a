"""The conv weight gradient from the layer input in Numba (no stored im2col columns).

Shape letters: N batch; H, W, C input height, width, channels; KH, KW kernel height, width; F filters;
Ho, Wo output height, width; K = KH*KW*C; G = min(N, DW_GROUPS) fixed sample groups; R output rows per
block; S elements per thread's im2col slot. ``x (N, H, W, C)``, ``dy (N, Ho, Wo, F)``, ``dw (KH, KW, C, F)``,
``work`` 1-D: ``[G partial gradients (K, F) | slot 0 | slot 1 | ...]``.

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
from ..tuning import DW_GROUPS, _wgrad_block_rows, conv_wgrad_workspace_length
from ._blas import _XXGEMM, _address
from ._im2col import _im2col_rows

__all__ = ["conv2d_backward_weight_from_input"]


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
