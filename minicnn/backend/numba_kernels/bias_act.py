"""Bias + activation kernels in Numba: ``y = f(x + b)`` and its gradient from the output.

Shape letters: M rows (samples x pixels), C channels. ``x, y, dx, dy (M, C)``, ``b, db (C,)``; the bias
gradient sums fixed chunks of ``DB_BLOCK_ROWS`` rows in order (the same bits for any thread count).
"""

import numpy as np
from numba import prange

from ..jit import jit
from ..tuning import DB_BLOCK_ROWS
from ._bias_act_rows import _bias_act_rows, _grad_row

__all__ = ["bias_act_forward", "bias_act_backward"]


@jit(parallel=True)
def bias_act_forward(y, x, b, act, alpha):
    """``y = f(x + b)`` on ``(M, C)`` arrays (``y`` may alias ``x``), rows in ``prange``."""
    for m in prange(x.shape[0]):
        _bias_act_rows(y, x, b, act, alpha, m, m + 1)


@jit(parallel=True)
def bias_act_backward(dx, db, dy, y, act, alpha):
    """``dx = dy * f'(.)`` computed from the output ``y``; ``db = dx.sum(axis=0)``.

    ``dx`` may alias ``dy``. Rows are processed in fixed chunks of
    ``DB_BLOCK_ROWS`` whose partial sums are added in chunk order, so ``db`` is
    bit-identical for any thread count.
    """
    M, C = dy.shape
    chunks = (M + DB_BLOCK_ROWS - 1) // DB_BLOCK_ROWS
    partial = np.zeros((max(chunks, 1), C), dtype=dy.dtype)
    for k in prange(chunks):
        for m in range(k * DB_BLOCK_ROWS, min((k + 1) * DB_BLOCK_ROWS, M)):
            _grad_row(dx, dy, y, m, act, alpha)
            for c in range(C):
                partial[k, c] += dx[m, c]
    for c in range(C):
        db[c] = 0
    for k in range(chunks):
        for c in range(C):
            db[c] += partial[k, c]
