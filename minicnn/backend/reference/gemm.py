"""Dense matrix product references: ``matmul`` and the fused ``dense_bias_act_forward``.

Shape letters: M, N, K of ``c (M, N) = op(a) (M, K) @ op(b) (K, N)``; for the dense layer ``x (M, K)``,
``w (K, N)``, ``b (N,)``, ``y (M, N)``.
"""

import numpy as np

from .bias_act import bias_act_forward

__all__ = ["matmul", "dense_bias_act_forward"]


def matmul(c, a, b, trans_a, trans_b):
    """``c = op(a) @ op(b)`` with ``op(x) = x.T`` when ``trans_x`` is nonzero (all 2-D, C-contiguous)."""
    np.dot(a.T if trans_a else a, b.T if trans_b else b, out=c)


def dense_bias_act_forward(y, x, w, b, act, alpha):
    """``y = f(x @ w + b)``: :func:`matmul` then the reference ``bias_act_forward``, in one kernel call."""
    matmul(y, x, w, 0, 0)
    bias_act_forward(y, y, b, act, alpha)
