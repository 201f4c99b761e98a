"""Numba twin of the pointwise (1x1, stride 1, unpadded) convolution's inference product.

Shape letters: P pixels (``N*H*W``, the rows), C input channels, F output channels.

``pointwise_conv2d_bias_act_forward(y, x, w, b, act, alpha)``: ``y (P, F) = f(x (P, C) @ w (C, F) + b)``, each
output the sum of its C products in channel order (as the NumPy reference and the compiled kernel), blocks of rows
in ``prange``, each block's epilogue right after its product. The blocks depend on the shape only: the same bits
for any thread count. :class:`~minicnn.layers.Conv2D` runs it only where it is compiled (``sources``); the Numba
backend keeps its BLAS dense product there.
"""

import numpy as np
from numba import prange

from ..jit import jit
from ._bias_act_rows import _bias_act_rows

__all__ = ["pointwise_conv2d_bias_act_forward"]

#: Rows per block (as ``PW_BLOCK`` of ``kernels/pointwise.pyx``).
_BLOCK = 48


@jit(parallel=True)
def _pointwise(y, x, w, b, act, alpha):
    P, F = y.shape
    C = x.shape[1]
    blocks = (P + _BLOCK - 1) // _BLOCK
    for g in prange(blocks):
        m0, m1 = g * _BLOCK, min(P, (g + 1) * _BLOCK)
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
