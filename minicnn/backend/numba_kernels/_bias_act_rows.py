"""Bias + activation of rows of an ``(M, C)`` array, shared by the fused epilogues (``kernels/_bias_act_rows.pxi``).

Shape letters: M rows (samples x pixels), C channels; ``act`` a code of
:mod:`minicnn.backend.activation_codes`, ``alpha`` the leaky-relu slope.
"""

import numpy as np

from ..activation_codes import LEAKY_RELU, RELU, SIGMOID, TANH  # anything else: identity
from ..jit import jit


@jit()
def _bias_act_row(y, m, b, act, alpha):
    """``y[m] = f(y[m] + b)`` in place on a row of an ``(M, C)`` array; the branch outside the channel loop.

    In place on purpose: with a separate input row that is the same memory (the layers' ``y = f(y + b)``)
    LLVM's run-time overlap check sends the loop to its scalar version (measured 2.5 ms against ~1 ms
    for the MNIST conv1 output).
    """
    C = y.shape[1]
    one = y.dtype.type(1)
    zero = y.dtype.type(0)
    a = y.dtype.type(alpha)
    if act == RELU:
        for c in range(C):
            z = y[m, c] + b[c]
            y[m, c] = zero if z < zero else z   # a NaN stays NaN (as np.maximum)
    elif act == LEAKY_RELU:
        for c in range(C):
            z = y[m, c] + b[c]
            y[m, c] = z if z > zero else z * a
    elif act == TANH:
        for c in range(C):
            y[m, c] = np.tanh(y[m, c] + b[c])
    elif act == SIGMOID:
        for c in range(C):
            y[m, c] = one / (one + np.exp(-(y[m, c] + b[c])))
    else:
        for c in range(C):
            y[m, c] = y[m, c] + b[c]


@jit()
def _bias_act_rows(y, x, b, act, alpha, m0, m1):
    """``y[m] = f(x[m] + b)`` for rows ``m0 <= m < m1`` of ``(M, C)`` arrays (``y`` may alias ``x``)."""
    if y.ctypes.data != x.ctypes.data:
        for m in range(m0, m1):
            for c in range(x.shape[1]):
                y[m, c] = x[m, c]
    for m in range(m0, m1):
        _bias_act_row(y, m, b, act, alpha)


@jit()
def _grad_row(dx, dy, y, m, act, alpha):
    """``dx[m] = dy[m] * f'(.)`` from the output row ``y[m]`` of ``(M, C)`` arrays (``dx`` may alias ``dy``)."""
    C = dy.shape[1]
    one = dy.dtype.type(1)
    zero = dy.dtype.type(0)
    a = dy.dtype.type(alpha)
    if act == RELU:
        for c in range(C):
            dx[m, c] = dy[m, c] if y[m, c] > zero else zero
    elif act == LEAKY_RELU:
        for c in range(C):
            dx[m, c] = dy[m, c] if y[m, c] > zero else dy[m, c] * a
    elif act == TANH:
        for c in range(C):
            dx[m, c] = dy[m, c] * (one - y[m, c] * y[m, c])
    elif act == SIGMOID:
        for c in range(C):
            dx[m, c] = dy[m, c] * (y[m, c] * (one - y[m, c]))
    else:
        for c in range(C):
            dx[m, c] = dy[m, c]
