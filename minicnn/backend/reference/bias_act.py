"""Bias + activation references: ``y = f(x + b)`` and its gradient from the output.

Shape letters: M rows (samples x pixels), C channels. ``x, y, dx, dy (M, C)``, ``b, db (C,)``; ``act`` a
code of :mod:`minicnn.backend.activation_codes`, ``alpha`` the leaky-relu slope. ``y`` may alias ``x`` and
``dx`` may alias ``dy``.
"""

import numpy as np

from ..activation_codes import IDENTITY, LEAKY_RELU, RELU, SIGMOID, TANH

__all__ = ["bias_act_forward", "bias_act_backward"]


def bias_act_forward(y, x, b, act, alpha):
    """``y = f(x + b)`` on ``(M, C)`` arrays (``y`` may alias ``x``)."""
    z = x + b
    if act == RELU:
        z = np.maximum(z, 0)
    elif act == LEAKY_RELU:
        z = np.where(z > 0, z, z * x.dtype.type(alpha))
    elif act == TANH:
        z = np.tanh(z)
    elif act == SIGMOID:
        z = 1 / (1 + np.exp(-z))
    y[...] = z


def bias_act_backward(dx, db, dy, y, act, alpha):
    """``dx = dy * f'(.)`` computed from the output ``y``; ``db = dx.sum(axis=0)``."""
    if act == IDENTITY:
        g = dy.copy()
    elif act == RELU:
        g = np.where(y > 0, dy, 0)
    elif act == LEAKY_RELU:
        g = np.where(y > 0, dy, dy * dy.dtype.type(alpha))
    elif act == TANH:
        g = dy * (1 - y * y)
    else:
        g = dy * (y * (1 - y))
    dx[...] = g
    db[...] = g.sum(axis=0)
