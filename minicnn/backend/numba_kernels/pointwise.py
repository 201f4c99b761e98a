"""Numba twin of the pointwise (1x1, stride 1, unpadded) convolution's inference product.

Shape letters: P pixels (``N*H*W``, the rows), C input channels, F output channels.

``pointwise_conv2d_bias_act_forward(y, x, w, b, act, alpha)``: ``y (P, F) = f(x (P, C) @ w (C, F) + b)``, each
output the sum of its C products in channel order (as the NumPy reference and the compiled kernel), blocks of rows
in ``prange``, each block's epilogue right after its product. The blocks depend on the shape only: the same bits
for any thread count. :class:`~minicnn.layers.Conv2D` runs it only where it is compiled (``sources``); the Numba
backend keeps its BLAS dense product there.

``separable_conv2d_bias_act_forward``: the depthwise kernel then this product (the NumPy reference's composition;
the compiled kernel runs both per block of output rows).
"""

import numpy as np
from numba import prange

from ..jit import jit
from ..tuning import POINTWISE_BLOCK_ROWS
from ._bias_act_rows import _bias_act_rows
from .depthwise import depthwise_conv2d_bias_act_forward

__all__ = ["pointwise_conv2d_bias_act_forward", "separable_conv2d_bias_act_forward"]

@jit(parallel=True)
def _pointwise(y, x, w, b, act, alpha):
    P, F = y.shape
    C = x.shape[1]
    blocks = (P + POINTWISE_BLOCK_ROWS - 1) // POINTWISE_BLOCK_ROWS
    for g in prange(blocks):
        m0, m1 = g * POINTWISE_BLOCK_ROWS, min(P, (g + 1) * POINTWISE_BLOCK_ROWS)
        for m in range(m0, m1):
            for f in range(F):
                y[m, f] = 0
            for c in range(C):
                s = x[m, c]
                for f in range(F):
                    y[m, f] = y[m, f] + s * w[c, f]
        _bias_act_rows(y, y, b, act, alpha, m0, m1)


def pointwise_conv2d_bias_act_forward(y, x, w, b, act, alpha):
    """``y = f(x @ w + b)``, the products added in channel order (see the module)."""
    P, F = y.shape
    C = x.shape[1]
    if x.shape[0] != P or w.shape != (C, F) or b.shape != (F,):
        raise ValueError(f"pointwise_conv2d_bias_act_forward shapes do not match: y {y.shape}, x {x.shape}, "
                         f"w {w.shape}, b {b.shape}")
    if P * F:
        _pointwise(y, x, w, b, act, y.dtype.type(alpha))


def separable_conv2d_bias_act_forward(y, x, wd, bd, act_d, alpha_d, wp, bp, act_p, alpha_p, sh, sw, pt, pl, dh, dw):
    """The depthwise conv (epilogue ``act_d``) then the pointwise product (epilogue ``act_p``) into ``y``."""
    mid = np.empty((*y.shape[:3], x.shape[3]), y.dtype)
    depthwise_conv2d_bias_act_forward(mid, x, wd, bd, act_d, alpha_d, sh, sw, pt, pl, dh, dw)
    pointwise_conv2d_bias_act_forward(y.reshape(-1, y.shape[3]), mid.reshape(-1, x.shape[3]), wp, bp, act_p, alpha_p)
