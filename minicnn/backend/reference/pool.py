"""Pooling references: max-pool with winners, average pool over the valid (non-padding) elements.

Shape letters: N batch; H, W, C input height, width, channels; Ho, Wo output height, width; kh, kw window
height, width; sh, sw strides; pt, pl top/left padding. ``x (N, H, W, C)``, ``y (N, Ho, Wo, C)``,
``argmax (N, Ho, Wo, C)`` int64 holding ``h * W + w`` of each window's winner (the first maximum in
row-major window order).
"""

import numpy as np

from ._im2col import _pad_input, _window

__all__ = ["maxpool2d_forward", "maxpool2d_backward", "avgpool2d_forward", "avgpool2d_backward"]


def _pool_windows(x, Ho, Wo, kh, kw, sh, sw, pt, pl, fill):
    """All pooling windows as an ``(N, Ho, Wo, kh*kw, C)`` array (padded with ``fill``)."""
    xp = _pad_input(x, Ho, Wo, kh, kw, sh, sw, pt, pl, 1, 1, fill=fill)
    taps = [xp[:, r, c, :] for r, c in
            (_window(Ho, Wo, i, j, sh, sw, 1, 1) for i in range(kh) for j in range(kw))]
    return np.stack(taps, axis=3)


def maxpool2d_forward(y, argmax, x, kh, kw, sh, sw, pt, pl):
    """Max over each window; ``argmax`` records the winner as ``h * W + w``."""
    W = x.shape[2]
    Ho, Wo = y.shape[1], y.shape[2]
    windows = _pool_windows(x, Ho, Wo, kh, kw, sh, sw, pt, pl, -np.inf)
    tap = np.argmax(windows, axis=3)                       # first maximum
    y[...] = np.take_along_axis(windows, tap[:, :, :, None, :], axis=3)[:, :, :, 0, :]
    oh = np.arange(Ho)[None, :, None, None] * sh - pt
    ow = np.arange(Wo)[None, None, :, None] * sw - pl
    argmax[...] = (oh + tap // kw) * W + (ow + tap % kw)


def maxpool2d_backward(dx, dy, argmax):
    """Route each output gradient to its window's winner (overlaps accumulate)."""
    N, H, W, C = dx.shape
    flat = np.zeros((N, H * W, C), dtype=dx.dtype)
    n = np.arange(N)[:, None, None, None]
    c = np.arange(C)[None, None, None, :]
    np.add.at(flat, (np.broadcast_to(n, dy.shape), argmax, np.broadcast_to(c, dy.shape)), dy)
    dx[...] = flat.reshape(dx.shape)


def _valid_counts(H, W, Ho, Wo, kh, kw, sh, sw, pt, pl):
    """Number of non-padding elements in each pooling window, ``(Ho, Wo, 1)``."""
    rows = np.clip(np.arange(Ho) * sh - pt + kh, 0, H) - np.clip(np.arange(Ho) * sh - pt, 0, H)
    cols = np.clip(np.arange(Wo) * sw - pl + kw, 0, W) - np.clip(np.arange(Wo) * sw - pl, 0, W)
    return (rows[:, None] * cols[None, :])[:, :, None]


def avgpool2d_forward(y, x, kh, kw, sh, sw, pt, pl):
    """Mean over the valid (non-padding) elements of each window."""
    H, W = x.shape[1], x.shape[2]
    Ho, Wo = y.shape[1], y.shape[2]
    windows = _pool_windows(x, Ho, Wo, kh, kw, sh, sw, pt, pl, 0.0)
    counts = _valid_counts(H, W, Ho, Wo, kh, kw, sh, sw, pt, pl)
    y[...] = windows.sum(axis=3) / counts.astype(x.dtype)


def avgpool2d_backward(dx, dy, kh, kw, sh, sw, pt, pl):
    """Spread each output gradient evenly over its window's valid elements."""
    N, H, W, C = dx.shape
    Ho, Wo = dy.shape[1], dy.shape[2]
    counts = _valid_counts(H, W, Ho, Wo, kh, kw, sh, sw, pt, pl)
    share = dy / counts.astype(dy.dtype)
    dxp = _pad_input(np.zeros_like(dx), Ho, Wo, kh, kw, sh, sw, pt, pl, 1, 1)
    for i in range(kh):
        for j in range(kw):
            rows, cols = _window(Ho, Wo, i, j, sh, sw, 1, 1)
            dxp[:, rows, cols, :] += share
    dx[...] = dxp[:, pt:pt + H, pl:pl + W, :]
