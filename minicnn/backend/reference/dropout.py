"""Dropout references: element-wise and channel-wise masks from the counter-based hash.

Shape letters: I elements of a flat array; N batch, S pixels per sample, C channels of an ``(N, S, C)``
array (mask index ``n * C + c``). ``key0, key1, threshold`` from :mod:`minicnn.backend.hash_rng`;
``scale`` is cast to the data dtype before multiplying; the backward regenerates the same mask.
"""

import numpy as np

from ..hash_rng import hash_reference

__all__ = ["dropout_forward", "dropout_backward", "spatial_dropout_forward", "spatial_dropout_backward"]


def _apply_mask(y, x, keep, scale):
    y[...] = np.where(keep, x * x.dtype.type(scale), x.dtype.type(0))


def dropout_forward(y, x, key0, key1, threshold, scale):
    """Element-wise dropout on flat arrays: keep ``x[i] * scale`` where ``hash(i) < threshold``."""
    keep = hash_reference(np.arange(x.shape[0], dtype=np.uint64), key0, key1) < threshold
    _apply_mask(y, x, keep, scale)


def dropout_backward(dx, dy, key0, key1, threshold, scale):
    """Gradient of :func:`dropout_forward`: the same regenerated mask applied to ``dy``."""
    dropout_forward(dx, dy, key0, key1, threshold, scale)


def spatial_dropout_forward(y, x, key0, key1, threshold, scale):
    """Channel-wise dropout on ``(N, S, C)`` arrays: one mask bit per ``(n, c)``."""
    N, _, C = x.shape
    keep = hash_reference(np.arange(N * C, dtype=np.uint64), key0, key1) < threshold
    _apply_mask(y, x, keep.reshape(N, 1, C), scale)


def spatial_dropout_backward(dx, dy, key0, key1, threshold, scale):
    """Gradient of :func:`spatial_dropout_forward` (same regenerated mask)."""
    spatial_dropout_forward(dx, dy, key0, key1, threshold, scale)
