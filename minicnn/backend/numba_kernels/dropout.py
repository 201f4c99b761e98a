"""Dropout kernels in Numba: element-wise and channel-wise masks from the counter-based hash.

Shape letters: I elements of a flat array; N batch, S pixels per sample, C channels of an ``(N, S, C)``
array (one mask bit per ``(n, c)``). ``key0, key1, threshold`` from :mod:`minicnn.backend.hash_rng`.
"""

import numpy as np
from numba import prange

from ..jit import jit
from ._hash import counter_hash

__all__ = ["dropout_forward", "dropout_backward", "spatial_dropout_forward", "spatial_dropout_backward"]


@jit(inline="always")
def _keep(i, key0, key1, threshold):
    """Mask bit of element ``i``: ``mix32(mix32(i ^ key0) ^ key1) < threshold``."""
    return counter_hash(i, key0, key1) < threshold


@jit(parallel=True)
def _dropout(y, x, key0, key1, threshold, scale):
    s = x.dtype.type(scale)
    zero = x.dtype.type(0)
    k0, k1, t = np.uint32(key0), np.uint32(key1), np.uint32(threshold)
    for i in prange(x.shape[0]):
        y[i] = x[i] * s if _keep(i, k0, k1, t) else zero


def dropout_forward(y, x, key0, key1, threshold, scale):
    """Element-wise dropout on flat arrays: keep ``x[i] * scale`` where ``hash(i) < threshold``."""
    _dropout(y, x, key0, key1, threshold, scale)


def dropout_backward(dx, dy, key0, key1, threshold, scale):
    """Gradient of :func:`dropout_forward`: the same regenerated mask applied to ``dy``."""
    _dropout(dx, dy, key0, key1, threshold, scale)


@jit(parallel=True)
def _spatial_dropout(y, x, key0, key1, threshold, scale):
    N, S, C = x.shape
    s = x.dtype.type(scale)
    zero = x.dtype.type(0)
    k0, k1, t = np.uint32(key0), np.uint32(key1), np.uint32(threshold)
    keep = np.empty((N, C), dtype=np.bool_)
    for n in prange(N):
        for c in range(C):
            keep[n, c] = _keep(n * C + c, k0, k1, t)
        for j in range(S):
            for c in range(C):
                y[n, j, c] = x[n, j, c] * s if keep[n, c] else zero


def spatial_dropout_forward(y, x, key0, key1, threshold, scale):
    """Channel-wise dropout on ``(N, S, C)`` arrays: one mask bit per ``(n, c)``."""
    _spatial_dropout(y, x, key0, key1, threshold, scale)


def spatial_dropout_backward(dx, dy, key0, key1, threshold, scale):
    """Gradient of :func:`spatial_dropout_forward` (same regenerated mask)."""
    _spatial_dropout(dx, dy, key0, key1, threshold, scale)
