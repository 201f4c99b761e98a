"""Softmax cross-entropy in Numba: loss and gradient in one pass, float64 per row.

Shape letters: N rows (samples), K classes. ``logits, grad (N, K)``, ``labels (N,)`` int64.
"""

import numpy as np

from ..jit import jit

__all__ = ["softmax_xent"]


@jit()
def _softmax_xent(grad, logits, labels):
    N, K = logits.shape
    total = 0.0
    inv_n = 1.0 / N
    for n in range(N):
        label = labels[n]
        if label < 0 or label >= K:
            return np.nan, n
        mx = np.float64(logits[n, 0])
        for k in range(1, K):
            if logits[n, k] > mx:
                mx = np.float64(logits[n, k])
        s = 0.0
        for k in range(K):
            s += np.exp(np.float64(logits[n, k]) - mx)
        total += np.log(s) - (np.float64(logits[n, label]) - mx)
        for k in range(K):
            p = np.exp(np.float64(logits[n, k]) - mx) / s - (1.0 if k == label else 0.0)
            grad[n, k] = p * inv_n
    return total * inv_n, -1


def softmax_xent(grad, logits, labels):
    """Mean softmax cross-entropy of int64 ``labels``; writes ``grad = (softmax - onehot) / N``."""
    if logits.shape[0] == 0:
        return float("nan")
    loss, bad = _softmax_xent(grad, logits, labels)
    if bad >= 0:
        raise ValueError(f"labels must be in [0, {logits.shape[1]}); received a label {labels[bad]}")
    return float(loss)
