"""The conv weight-gradient references from the layer input (no stored im2col columns), direct and Winograd.

Shape letters: N batch; H, W, C input height, width, channels; KH, KW kernel height, width; F filters;
Ho, Wo output height, width; sh, sw strides; pt, pl top/left padding; dh, dwl dilations; th, tw output
tiles down and across (2x2 pixels each, Winograd). ``x (N, H, W, C)``, ``dy (N, Ho, Wo, F)``,
``dw (KH, KW, C, F)``, ``work`` 1-D (only its length is checked).
"""

import numpy as np

from ..tuning import conv_wgrad_workspace_length, winograd_wgrad_prologue
from ._im2col import _pad_input, _window
from .winograd import WINOGRAD_BT, WINOGRAD_G

__all__ = ["conv2d_backward_weight_from_input", "conv2d_winograd_backward_weight"]

#: ``A = (A^T)^T`` of Winograd F(2x2, 3x3): the forward's output transform ``Y = A^T M A``.
WINOGRAD_A = np.array([[1, 0], [1, 1], [1, -1], [0, -1]], dtype=np.float64)


def conv2d_backward_weight_from_input(dw, dy, x, work, sh, sw, pt, pl, dh, dwl):
    """Weight gradient of a conv from its input ``x``: the reference ``conv2d_backward_weight`` without ``col``.

    ``dw (KH, KW, C, F)``, ``dy (N, Ho, Wo, F)`` (gradient wrt the conv output),
    ``x (N, H, W, C)``; geometry as :func:`~minicnn.backend.reference.conv2d_forward` (``dwl`` is the
    dilation along the width). Tap ``(i, j)`` of the kernel saw the input
    window ``xp[:, rows, cols, :]`` of the padded input, so its gradient is
    that window contracted with ``dy`` over samples and output pixels. ``work``
    is only checked against :func:`~minicnn.backend.tuning.conv_wgrad_workspace_length` (one slot).
    """
    N, H, W, C = x.shape
    KH, KW, _, F = dw.shape
    Ho, Wo = dy.shape[1], dy.shape[2]
    need = conv_wgrad_workspace_length(N, H, W, C, KH, KW, F, Ho, Wo, 1)
    if work.ndim != 1 or work.shape[0] < need:
        raise ValueError(f"work must have length >= {need} for these shapes (one slot); received shape {work.shape}")
    xp = _pad_input(x, Ho, Wo, KH, KW, sh, sw, pt, pl, dh, dwl)
    for i in range(KH):
        for j in range(KW):
            rows, cols = _window(Ho, Wo, i, j, sh, sw, dh, dwl)
            dw[i, j] = np.tensordot(xp[:, rows, cols, :], dy, axes=([0, 1, 2], [0, 1, 2]))


def conv2d_winograd_backward_weight(dw, dy, x, work, pt, pl):
    """Weight gradient of a 3x3, stride-1 conv by Winograd F(2x2, 3x3) (the gradient of its Winograd forward).

    ``dw (3, 3, C, F)``, ``dy (N, Ho, Wo, F)``, ``x (N, H, W, C)``, top/left padding ``pt, pl``
    (bottom/right implied by ``Ho, Wo``), tiles as
    :func:`~minicnn.backend.reference.conv2d_winograd_bias_act_forward`. The forward computes per
    output tile ``Y = A^T (U * V) A`` with ``U = G g G^T``, ``V = B^T d B``; so ``dU = sum over tiles
    of (A dY A^T) * V`` (over channels: 16 products ``V_k^T @ Z_k``) and ``dw = G^T dU G``. Same result
    as :func:`~minicnn.backend.reference.conv2d_backward_weight` up to rounding. ``work`` is only
    checked against :func:`~minicnn.backend.tuning.conv_winograd_wgrad_workspace_length` (one slot).
    """
    N, H, W, C = x.shape
    F = dw.shape[3]
    Ho, Wo = dy.shape[1], dy.shape[2]
    need = winograd_wgrad_prologue(dw, dy, x, work)
    if need is None:
        return
    dt = x.dtype
    BT, G, A = (m.astype(dt) for m in (WINOGRAD_BT, WINOGRAD_G, WINOGRAD_A))
    th, tw = (Ho + 1) // 2, (Wo + 1) // 2
    # the input zero-extended over every tile's 4x4 window: xp[n, 2i + r - pt, 2j + s - pl] = x[...] or 0
    xp = np.zeros((N, 2 * th + 2 + pt, 2 * tw + 2 + pl, C), dtype=dt)
    xp[:, pt:pt + H, pl:pl + W] = x[:, :2 * th + 2, :2 * tw + 2]
    d = np.lib.stride_tricks.sliding_window_view(xp[:, :2 * th + 2, :2 * tw + 2], (4, 4), axis=(1, 2))[:, ::2, ::2]
    dyp = np.zeros((N, 2 * th, 2 * tw, F), dtype=dt)                   # a partial tile's missing outputs: 0
    dyp[:, :Ho, :Wo] = dy
    dyt = dyp.reshape(N, th, 2, tw, 2, F)
    V = np.einsum("kr,nijcrs,ls->klnijc", BT, d, BT).reshape(16, N * th * tw, C)        # B^T d B
    Z = np.einsum("ka,niajbf,lb->klnijf", A, dyt, A).reshape(16, N * th * tw, F)        # A dY A^T
    dU = (V.transpose(0, 2, 1) @ Z).reshape(4, 4, C, F)                                # 16 products
    dw[...] = np.einsum("ki,klcf,lj->ijcf", G, dU, G)                                  # G^T dU G
