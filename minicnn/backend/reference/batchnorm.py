"""Batch normalization references: per-channel statistics over rows, normalize, scale/shift, activation.

Shape letters: M rows (samples x pixels), C channels, B row blocks. ``x, y, dy, dx (M, C)``; ``mean, var, gamma,
beta, dgamma, dbeta (C,)``; ``partial (B, 2, C)`` float64 scratch of the compiled kernels (the rows are split into
``B`` contiguous blocks ``[b*M//B, (b+1)*M//B)`` whose partial sums are added in block order, so results depend
on ``B`` and never on the thread count; the reference ignores it). Statistics and gradient sums are accumulated in
float64 and cast to the data dtype; ``var`` is the biased batch variance, ``inv_std = 1 / sqrt(var + eps)`` is
computed in the data dtype. ``act`` is a code of :mod:`minicnn.backend.activation_codes` applied after the
shift, ``alpha`` the leaky-relu slope; the backward computes its derivative from the output ``y`` (not read for
the identity).
"""

import numpy as np

from .bias_act import bias_act_backward, bias_act_forward

__all__ = ["batchnorm_forward", "batchnorm_inference_forward", "batchnorm_backward"]


def _inv_std(var, eps):
    return var.dtype.type(1) / np.sqrt(var + var.dtype.type(eps))


def batchnorm_inference_forward(y, x, mean, var, gamma, beta, eps, act, alpha):
    """``y = f((x - mean) * inv_std * gamma + beta)`` with the given statistics (inference)."""
    xhat = (x - mean) * _inv_std(var, eps)
    bias_act_forward(y, xhat * gamma, beta, act, alpha)


def batchnorm_forward(y, mean, var, partial, x, gamma, beta, eps, act, alpha):
    """Training forward: the batch ``mean`` and biased ``var`` of each column of ``x``, then normalize."""
    M = x.shape[0]
    mean64 = x.sum(axis=0, dtype=np.float64) / M if M else np.zeros(x.shape[1])
    d = x.astype(np.float64) - mean64
    mean[...] = mean64
    var[...] = (d * d).sum(axis=0) / M if M else 0
    batchnorm_inference_forward(y, x, mean, var, gamma, beta, eps, act, alpha)


def batchnorm_backward(dx, dgamma, dbeta, partial, dy, y, x, mean, var, gamma, eps, act, alpha):
    """Gradients of :func:`batchnorm_forward` (training statistics) from ``dy``; ``y`` is its output."""
    M = x.shape[0]
    g = np.empty_like(dy)
    bias_act_backward(g, np.empty_like(dbeta), dy, y, act, alpha)
    inv_std = _inv_std(var, eps)
    xhat = (x - mean) * inv_std
    dbeta[...] = g.sum(axis=0, dtype=np.float64)
    dgamma[...] = (g.astype(np.float64) * xhat).sum(axis=0)
    scale = gamma * inv_std / dy.dtype.type(max(M, 1))
    dx[...] = scale * (dy.dtype.type(M) * g - dbeta - xhat * dgamma)
