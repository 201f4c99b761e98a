"""Loss references: softmax cross-entropy, and the float64 passes of the prediction softmax.

Shape letters: N rows (samples), K classes. ``logits, grad, z, p (N, K)``, ``labels (N,)`` int64.
"""

import numpy as np

__all__ = ["softmax_xent", "softmax_shift_rows", "softmax_normalize_rows"]


def softmax_xent(grad, logits, labels):
    """Mean softmax cross-entropy of int64 ``labels``; writes ``grad = (softmax - onehot) / N``.

    Computed in float64 per row, max-shifted (huge logits never overflow);
    ``grad`` is written in its own dtype. Returns the loss as a Python float.
    Raises ValueError for a label outside ``[0, K)``.
    """
    N, K = logits.shape
    if N == 0:
        return float("nan")
    if labels.min() < 0 or labels.max() >= K:
        raise ValueError(f"labels must be in [0, {K}); received labels in [{labels.min()}, {labels.max()}]")
    z = logits.astype(np.float64)
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    s = e.sum(axis=1, keepdims=True)
    rows = np.arange(N)
    loss = float(np.sum(np.log(s[:, 0]) - z[rows, labels]) / N)
    p = e / s
    p[rows, labels] -= 1.0
    grad[...] = p * (1.0 / N)
    return loss


# Class probabilities are ``exp(z) / sum(exp(z))`` per row with ``z = logits - max(logits)``, in float64. The
# exponential stays NumPy's ``np.exp`` (its SIMD routine rounds differently from C's ``exp`` in ~5% of values):
# these two kernels do the passes around it, so every backend returns the probabilities of this file, bit for bit.
def softmax_shift_rows(z, logits):
    """``z = logits - max(logits, axis=1)`` in float64.

    ``z``: (N, K) float64; ``logits``: (N, K) float32 or float64. A row holding
    NaN gets an all-NaN ``z`` row (NumPy's ``max`` propagates NaN).
    """
    z[...] = logits
    z -= z.max(axis=1, keepdims=True)


def softmax_normalize_rows(p):
    """``p /= p.sum(axis=1)`` in place, ``p``: (N, K) float64.

    The row sum is NumPy's reduction: ``0.0 +`` its pairwise sum (8 running
    partial sums up to 128 values, halves in multiples of 8 above), so the
    compiled kernels reproduce it bit for bit.
    """
    p /= p.sum(axis=1, keepdims=True)
