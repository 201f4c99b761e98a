"""Plain-NumPy reference of the register-blocked direct convolution's inference forward.

Shape letters: N samples; H, W, C input height, width, channels; KH, KW kernel height, width; F filters;
Ho, Wo output height, width; K = KH*KW*C the taps of one output pixel, ordered (kh, kw, c).

* ``conv2d_blocked_bias_act_forward(y, x, w, b, act, alpha, sh, sw, pt, pl, dh, dw)``: ``y (N, Ho, Wo, F) =
  f(conv(x (N, H, W, C), w (KH, KW, C, F)) + b (F,))``, any geometry (the arguments of
  ``conv2d_direct_bias_act_forward``). Each output is the sum of its K products **in (kh, kw, c) order** onto
  0, one rounding per multiply and per add, then ``bias_act_forward``. The compiled twin
  (``kernels/blocked_conv.pyx``) sums in the same order; it is built with fused multiply-add where the level has
  it (``isa.FMA_MODULES``), so it agrees within float rounding there and bit for bit at ``baseline`` (for
  identity, relu and leaky relu; tanh and sigmoid go through the libm of each).

Examples
--------
>>> import numpy as np
>>> x = np.arange(4, dtype=np.float32).reshape(1, 2, 2, 1)
>>> y = np.empty((1, 1, 1, 2), dtype=np.float32)
>>> w = np.ones((2, 2, 1, 2), dtype=np.float32)
>>> conv2d_blocked_bias_act_forward(y, x, w, np.array([0, -10], np.float32), 1, 0.0, 2, 2, 0, 0, 1, 1)
>>> y.ravel().tolist()
[6.0, 0.0]
"""

import numpy as np

from ._im2col import _pad_input, _window
from .bias_act import bias_act_forward

__all__ = ["conv2d_blocked_bias_act_forward"]


def conv2d_blocked_bias_act_forward(y, x, w, b, act, alpha, sh, sw, pt, pl, dh, dw):
    """``y = f(conv(x, w) + b)``, each output's products added in tap order (see the module)."""
    N, H, W, C = x.shape
    KH, KW, _, F = w.shape
    Ho, Wo = y.shape[1], y.shape[2]
    xp = _pad_input(x, Ho, Wo, KH, KW, sh, sw, pt, pl, dh, dw)
    acc = np.zeros(y.shape, y.dtype)
    for i in range(KH):
        for j in range(KW):
            rows, cols = _window(Ho, Wo, i, j, sh, sw, dh, dw)
            taps = xp[:, rows, cols, :]
            for c in range(C):
                acc = acc + taps[..., c:c + 1] * w[i, j, c]
    y[...] = acc
    y2 = y.reshape(-1, F)
    bias_act_forward(y2, y2, b, act, alpha)
