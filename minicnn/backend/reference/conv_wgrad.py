"""The conv weight-gradient reference from the layer input (no stored im2col columns).

Shape letters: N batch; H, W, C input height, width, channels; KH, KW kernel height, width; F filters;
Ho, Wo output height, width; sh, sw strides; pt, pl top/left padding; dh, dwl dilations. ``x (N, H, W, C)``,
``dy (N, Ho, Wo, F)``, ``dw (KH, KW, C, F)``, ``work`` 1-D (only its length is checked).
"""

import numpy as np

from ..tuning import conv_wgrad_workspace_length
from ._im2col import _pad_input, _window

__all__ = ["conv2d_backward_weight_from_input"]


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
