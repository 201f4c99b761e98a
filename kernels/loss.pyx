# cython: language_level=3
"""Fused softmax cross-entropy (loss and gradient in one pass over the logits), Cython.

Same contract as ``minicnn.backend.reference.softmax_xent``: rows are
processed in float64 (max-shifted, so huge logits never overflow) and the
gradient ``(softmax - onehot) / N`` is written in the data precision. The
problem is tiny (batch x classes), so it runs on the calling thread.
"""

from libc.math cimport exp, log
from libc.stdint cimport int64_t

ctypedef fused floating:
    float
    double


def softmax_xent(floating[:, ::1] grad, const floating[:, ::1] logits, const int64_t[::1] labels):
    """Write ``grad`` and return the mean loss (a Python float); ValueError on a label out of range."""
    cdef Py_ssize_t N = logits.shape[0], K = logits.shape[1], n, k
    cdef int64_t label
    cdef double mx, s, lse, total = 0.0, inv_n
    cdef bint bad = False
    if N == 0:
        return float("nan")
    inv_n = 1.0 / N
    with nogil:
        for n in range(N):
            label = labels[n]
            if label < 0 or label >= K:
                bad = True
                break
            mx = logits[n, 0]
            for k in range(1, K):
                if logits[n, k] > mx:
                    mx = logits[n, k]
            s = 0.0
            for k in range(K):
                s = s + exp(logits[n, k] - mx)
            lse = log(s)
            total = total + (lse - (logits[n, label] - mx))
            for k in range(K):
                grad[n, k] = <floating>((exp(logits[n, k] - mx) / s - (1.0 if k == label else 0.0)) * inv_n)
    if bad:
        raise ValueError(f"labels must be in [0, {K}); received a label {label}")
    return total * inv_n
