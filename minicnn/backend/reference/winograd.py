"""Winograd F(2x2, 3x3) convolution references, with the fused 2x2 max-pool variant (inference).

Shape letters: N batch; H, W, C input height, width, channels; F filters; Ho, Wo conv output height,
width; th, tw output tiles down and across (2x2 pixels each); pt, pl top/left padding. ``x (N, H, W, C)``,
``w (3, 3, C, F)``, ``y (N, Ho, Wo, F)`` (or ``(N, Ho // 2, Wo // 2, F)`` pooled); ``d (4, 4)`` an input
tile, ``g (3, 3)`` a filter, ``Y (2, 2)`` an output tile.
"""

import numpy as np

from ..activation_codes import IDENTITY
from .bias_act import bias_act_forward
from .pool import maxpool2d_forward

__all__ = ["conv2d_winograd_bias_act_forward", "conv2d_winograd_bias_act_maxpool2_forward",
           "conv2d_winograd_bias_add_act_forward", "winograd_weight_transform"]


#: Winograd F(2x2, 3x3) transforms (Lavin & Gray 2015). For a 4x4 input tile ``d``, a 3x3
#: filter ``g`` and the 2x2 output tile ``Y`` of their (valid, stride-1) correlation:
#: ``V = B^T d B``, ``U = G g G^T``, ``Y = A^T (sum over channels of U * V) A``.
WINOGRAD_BT = np.array([[1, 0, -1, 0],
                        [0, 1, 1, 0],
                        [0, -1, 1, 0],
                        [0, 1, 0, -1]], dtype=np.float64)
WINOGRAD_G = np.array([[1.0, 0.0, 0.0],
                       [0.5, 0.5, 0.5],
                       [0.5, -0.5, 0.5],
                       [0.0, 0.0, 1.0]])
WINOGRAD_AT = np.array([[1, 1, 1, 0],
                        [0, 1, -1, -1]], dtype=np.float64)


def conv2d_winograd_bias_act_forward(y, x, w, b, work, act, alpha, pt, pl):
    """``y = f(conv(x, w) + b)`` for a 3x3, stride-1 conv by Winograd F(2x2, 3x3); ``work`` is ignored.

    Same result (up to rounding) as :func:`~minicnn.backend.reference.conv2d_bias_act_forward` with
    ``sh = sw = dh = dw = 1``. The output is cut into ``ceil(Ho/2) x ceil(Wo/2)``
    tiles of 2x2 pixels; tile ``(i, j)`` reads the 4x4 input window at rows
    ``2i - pt ...`` and columns ``2j - pl ...`` of the input zero-extended on every
    side (padding, plus whatever a partial last tile reaches past the image).
    Every step is a small matrix product (``WINOGRAD_BT``, ``WINOGRAD_G``,
    ``WINOGRAD_AT``), applied to all tiles at once in the data dtype. ``w`` may
    also be its transform ``(4, 4, C, F)`` (:func:`winograd_weight_transform`).
    """
    N, H, W, C = x.shape
    F = w.shape[3]
    Ho, Wo = y.shape[1], y.shape[2]
    if y.size == 0:
        return
    dt = x.dtype
    BT, G, AT = (m.astype(dt) for m in (WINOGRAD_BT, WINOGRAD_G, WINOGRAD_AT))
    th, tw = (Ho + 1) // 2, (Wo + 1) // 2
    # zero-extended input covering every tile: (N, 2*th + 2, 2*tw + 2, C)
    R, S = 2 * th + 2, 2 * tw + 2
    xp = np.zeros((N, R, S, C), dtype=dt)
    rows, cols = max(0, min(H, R - pt)), max(0, min(W, S - pl))
    xp[:, pt:pt + rows, pl:pl + cols, :] = x[:, :rows, :cols, :]
    # d[n, i, j, c, r, s] = xp[n, 2i + r, 2j + s, c]: the 4x4 input tile of output tile (i, j)
    d = np.lib.stride_tricks.sliding_window_view(xp, (4, 4), axis=(1, 2))[:, ::2, ::2]
    V = np.einsum("kr,nijcrs,ls->klnijc", BT, d, BT)               # B^T d B: (4, 4, N, th, tw, C)
    if w.shape[:2] == (4, 4):   # already transformed (winograd_weight_transform)
        U = w
    else:
        U = np.einsum("kr,rsf,ls->klf", G, w.reshape(3, 3, C * F), G)  # G g G^T: (4, 4, C*F)
    # the 16 products M_k (tiles, F) = V_k (tiles, C) @ U_k (C, F), k = 4 * row + column
    M = V.reshape(16, N * th * tw, C) @ U.reshape(16, C, F)
    M = M.reshape(4, 4, N, th, tw, F)
    Y = np.einsum("ak,klnijf,bl->nijabf", AT, M, AT)                # A^T M A: (N, th, tw, 2, 2, F)
    Y = Y.transpose(0, 1, 3, 2, 4, 5).reshape(N, 2 * th, 2 * tw, F)
    y[...] = Y[:, :Ho, :Wo, :]
    y2 = y.reshape(-1, F)
    bias_act_forward(y2, y2, b, act, alpha)


def conv2d_winograd_bias_add_act_forward(y, x, w, b, s, work, act, alpha, pt, pl):
    """``y = f((conv(x, w) + b) + s)``: :func:`conv2d_winograd_bias_act_forward` with ``s`` added before ``f``.

    ``s (N, Ho, Wo, F)``, ``y``'s shape (the skip path of a residual block at
    inference); ``work`` is ignored. The unfused steps in order: the conv plus
    bias (identity activation), the sum with ``s``, then the activation (a
    bias of zeros: equal up to the sign of a zero to the fused kernels, which
    take ``f`` of the sum directly).
    """
    if s.shape != y.shape:
        raise ValueError(f"conv2d_winograd_bias_add_act_forward: s must have y's shape {y.shape}; "
                         f"received shape {s.shape}")
    if np.shares_memory(s, y):
        raise ValueError("conv2d_winograd_bias_add_act_forward: s must not be y (the output is written before s "
                         "is read)")
    conv2d_winograd_bias_act_forward(y, x, w, b, work, IDENTITY, alpha, pt, pl)
    np.add(y, s, out=y)
    y2 = y.reshape(-1, y.shape[-1])
    bias_act_forward(y2, y2, np.zeros(y.shape[-1], dtype=y.dtype), act, alpha)


def conv2d_winograd_bias_act_maxpool2_forward(y, x, w, b, work, act, alpha, pt, pl, Ho, Wo):
    """``y = maxpool_2x2/2(f(conv(x, w) + b))``: :func:`conv2d_winograd_bias_act_forward` + max-pool.

    ``Ho, Wo >= 2`` is the conv output size; ``y (N, Ho // 2, Wo // 2, F)`` its
    2x2, stride-2, unpadded, floor-mode max-pool (an odd last row/column is
    dropped). ``work`` is ignored (the Cython kernel takes the workspace of
    :func:`~minicnn.backend.tuning.winograd_workspace_length` for the conv size ``Ho, Wo``). Readable
    twin of the fused Cython kernel: the Winograd forward into a temporary,
    then :func:`~minicnn.backend.reference.maxpool2d_forward`.
    """
    if Ho < 2 or Wo < 2:
        raise ValueError(f"conv output size must be >= 2 for a 2x2 max-pool; received Ho={Ho}, Wo={Wo}")
    N, F = x.shape[0], w.shape[3]
    if y.shape != (N, Ho // 2, Wo // 2, F):
        raise ValueError(f"y must be (N, Ho // 2, Wo // 2, F) = {(N, Ho // 2, Wo // 2, F)} for "
                         f"Ho={Ho}, Wo={Wo}; received shape {y.shape}")
    conv = np.empty((N, Ho, Wo, F), dtype=x.dtype)
    conv2d_winograd_bias_act_forward(conv, x, w, b, work, act, alpha, pt, pl)
    maxpool2d_forward(y, np.empty(y.shape, np.int64), conv, 2, 2, 2, 2, 0, 0)


def winograd_weight_transform(u, w):
    """``u (4, 4, C, F)``: ``G g G^T`` of each filter ``g = w[:, :, c, f]`` of ``w (3, 3, C, F)``.

    The transformed weights every Winograd forward computes first; the forwards
    accept ``u`` in place of ``w`` (weights that do not change between calls are
    then transformed once).
    """
    if w.shape[:2] != (3, 3) or u.shape != (4, 4) + w.shape[2:]:
        raise ValueError(f"winograd_weight_transform needs u (4, 4, C, F) and w (3, 3, C, F); received u {u.shape}, "
                         f"w {w.shape}")
    G = WINOGRAD_G.astype(w.dtype)
    C, F = w.shape[2:]
    u[...] = np.einsum("kr,rsf,ls->klf", G, w.reshape(3, 3, C * F), G).reshape(u.shape)
