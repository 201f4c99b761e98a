"""Plain-NumPy reference of the pointwise (1x1, stride 1, unpadded) convolution's inference forward.

Shape letters: P pixels (``N*H*W``, the rows), C input channels, F output channels.

* ``pointwise_conv2d_bias_act_forward(y, x, w, b, act, alpha)``: ``y (P, F) = f(x (P, C) @ w (C, F) + b (F,))``
  (the arguments of ``dense_bias_act_forward``). Each output is the sum of its C products **in channel order**,
  one rounding per multiply and per add, then ``bias_act_forward``. The compiled twin sums in the same order; it
  is built with fused multiply-add where the level has it (``isa.FMA_MODULES``: one rounding per product and
  add), so it agrees within float rounding there and bit for bit at ``baseline`` (for identity, relu and leaky
  relu; tanh and sigmoid go through the libm of each).
* ``separable_conv2d_bias_act_forward(y, x, wd, bd, act_d, alpha_d, wp, bp, act_p, alpha_p, sh, sw, pt, pl, dh,
  dw)`` (float32): a depthwise-separable block's inference, ``y (N, Ho, Wo, F) = fp(fd(depthwise(x, wd) + bd)
  @ wp + bp)``: ``depthwise_conv2d_bias_act_forward`` (``x (N, H, W, C)``, ``wd (KH, KW, C)``, ``bd (C,)``, the
  depthwise activation ``act_d`` identity, relu or leaky relu) then this product (``wp (C, F)``, ``bp (F,)``). The
  compiled kernel runs both per block of output rows, the depthwise rows kept in cache (C a multiple of 16).

Examples
--------
>>> import numpy as np
>>> x = np.arange(6, dtype=np.float32).reshape(3, 2)
>>> w = np.array([[1, 0, 2], [1, 1, -1]], dtype=np.float32)
>>> y = np.empty((3, 3), dtype=np.float32)
>>> pointwise_conv2d_bias_act_forward(y, x, w, np.zeros(3, np.float32), 1, 0.0)
>>> y.tolist()
[[1.0, 1.0, 0.0], [5.0, 3.0, 1.0], [9.0, 5.0, 3.0]]
"""

import numpy as np

from .bias_act import bias_act_forward
from .depthwise import depthwise_conv2d_bias_act_forward

__all__ = ["pointwise_conv2d_bias_act_forward", "separable_conv2d_bias_act_forward"]


def pointwise_conv2d_bias_act_forward(y, x, w, b, act, alpha):
    """``y = f(x @ w + b)`` on ``(P, C) @ (C, F)``, the products added in channel order."""
    acc = np.zeros(y.shape, y.dtype)
    for c in range(x.shape[1]):
        acc += x[:, c:c + 1] * w[c]
    bias_act_forward(y, acc, b, act, alpha)


def separable_conv2d_bias_act_forward(y, x, wd, bd, act_d, alpha_d, wp, bp, act_p, alpha_p, sh, sw, pt, pl, dh, dw):
    """The depthwise conv (epilogue ``act_d``) then the pointwise product (epilogue ``act_p``) into ``y``."""
    mid = np.empty((*y.shape[:3], x.shape[3]), y.dtype)
    depthwise_conv2d_bias_act_forward(mid, x, wd, bd, act_d, alpha_d, sh, sw, pt, pl, dh, dw)
    pointwise_conv2d_bias_act_forward(y.reshape(-1, y.shape[3]), mid.reshape(-1, x.shape[3]), wp, bp, act_p, alpha_p)
