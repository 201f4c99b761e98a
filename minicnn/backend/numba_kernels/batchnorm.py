"""Batch normalization kernels in Numba: per-channel statistics over row blocks, normalize, scale/shift, activation.

Shape letters: M rows (samples x pixels), C channels, B row blocks. ``x, y, dy, dx (M, C)``; ``mean, var, gamma,
beta, dgamma, dbeta (C,)``; ``partial (B, 2, C)`` float64 scratch: block ``b`` (rows ``[b*M//B, (b+1)*M//B)``,
one ``prange`` item) sums into its own slot and the slots are added in block order, so the results never depend
on the thread count. Two passes for the statistics (mean, then squared deviations), as the reference.
"""

import numpy as np
from numba import prange

from ..activation_codes import LEAKY_RELU, RELU, SIGMOID, TANH  # anything else: identity
from ..jit import jit
from ._bias_act_rows import _bias_act_row

__all__ = ["batchnorm_forward", "batchnorm_inference_forward", "batchnorm_backward"]

@jit()
def _inv_std(var, eps):
    inv = np.empty_like(var)
    e = var.dtype.type(eps)
    for c in range(var.shape[0]):
        inv[c] = var.dtype.type(1) / np.sqrt(var[c] + e)
    return inv


@jit(parallel=True)
def _normalize(y, x, mean, inv_std, gamma, beta, act, alpha):
    M, C = x.shape
    for m in prange(M):
        for c in range(C):
            y[m, c] = (x[m, c] - mean[c]) * inv_std[c] * gamma[c]
        _bias_act_row(y, m, beta, act, alpha)


@jit(parallel=True)
def _block_sums(partial, x, slot, center):
    """``partial[b, slot, c]``: sum over block ``b``'s rows of ``x`` (``slot`` 0) or ``(x - center)**2`` (1)."""
    M, C = x.shape
    B = partial.shape[0]
    for b in prange(B):
        for c in range(C):
            partial[b, slot, c] = 0.0
        for m in range(b * M // B, (b + 1) * M // B):
            if slot == 0:
                for c in range(C):
                    partial[b, slot, c] += x[m, c]
            else:
                for c in range(C):
                    d = np.float64(x[m, c]) - center[c]
                    partial[b, slot, c] += d * d


@jit()
def _combine(partial, slot):
    """Sum over blocks, in block order, of ``partial[:, slot]``."""
    total = partial[0, slot].copy()
    for b in range(1, partial.shape[0]):
        for c in range(partial.shape[2]):
            total[c] += partial[b, slot, c]
    return total


@jit()
def batchnorm_inference_forward(y, x, mean, var, gamma, beta, eps, act, alpha):
    """``y = f((x - mean) * inv_std * gamma + beta)`` with the given statistics (inference)."""
    _normalize(y, x, mean, _inv_std(var, eps), gamma, beta, act, alpha)


@jit()
def batchnorm_forward(y, mean, var, partial, x, gamma, beta, eps, act, alpha):
    """Training forward: the batch ``mean`` and biased ``var`` of each column of ``x``, then normalize."""
    M, C = x.shape
    if M == 0:
        mean[:] = 0
        var[:] = 0
        return
    _block_sums(partial, x, 0, partial[0, 0])
    center = _combine(partial, 0) / M
    for c in range(C):
        mean[c] = center[c]
    _block_sums(partial, x, 1, center)
    total = _combine(partial, 1)
    for c in range(C):
        var[c] = total[c] / M
    _normalize(y, x, mean, _inv_std(var, eps), gamma, beta, act, alpha)


@jit()
def _act_grad(g, v, act, a, one, zero):
    """``g * f'`` with ``f'`` computed from the output ``v`` (as ``bias_act_backward``)."""
    if act == RELU:
        return g if v > zero else zero
    if act == LEAKY_RELU:
        return g if v > zero else g * a
    if act == TANH:
        return g * (one - v * v)
    if act == SIGMOID:
        return g * (v * (one - v))
    return g


@jit(parallel=True)
def _grad_sums(partial, dy, y, x, mean, inv_std, act, alpha):
    M, C = x.shape
    B = partial.shape[0]
    a = x.dtype.type(alpha)
    one, zero = x.dtype.type(1), x.dtype.type(0)
    for b in prange(B):
        for c in range(C):
            partial[b, 0, c] = 0.0
            partial[b, 1, c] = 0.0
        for m in range(b * M // B, (b + 1) * M // B):
            for c in range(C):
                g = _act_grad(dy[m, c], y[m, c], act, a, one, zero)
                xhat = (x[m, c] - mean[c]) * inv_std[c]
                partial[b, 0, c] += g
                partial[b, 1, c] += np.float64(g) * xhat


@jit(parallel=True)
def _grad_rows(dx, dy, y, x, mean, inv_std, scale, dgamma, dbeta, act, alpha):
    M, C = x.shape
    a = x.dtype.type(alpha)
    one, zero = x.dtype.type(1), x.dtype.type(0)
    m_ = x.dtype.type(M)
    for m in prange(M):
        for c in range(C):
            g = _act_grad(dy[m, c], y[m, c], act, a, one, zero)
            xhat = (x[m, c] - mean[c]) * inv_std[c]
            dx[m, c] = scale[c] * (m_ * g - dbeta[c] - xhat * dgamma[c])


@jit()
def batchnorm_backward(dx, dgamma, dbeta, partial, dy, y, x, mean, var, gamma, eps, act, alpha):
    """Gradients of :func:`batchnorm_forward` (training statistics) from ``dy``; ``y`` is its output."""
    M, C = x.shape
    if M == 0:
        dgamma[:] = 0
        dbeta[:] = 0
        return
    inv_std = _inv_std(var, eps)
    scale = gamma * inv_std / x.dtype.type(M)
    _grad_sums(partial, dy, y, x, mean, inv_std, act, alpha)
    total0 = _combine(partial, 0)
    total1 = _combine(partial, 1)
    for c in range(C):
        dbeta[c] = total0[c]
        dgamma[c] = total1[c]
    _grad_rows(dx, dy, y, x, mean, inv_std, scale, dgamma, dbeta, act, alpha)
