"""Losses as ``loss(output, target, kernels=None) -> (mean loss, d loss / d output)``.

``kernels`` is the :class:`~minicnn.backend.Backend` the network runs on
(:attr:`minicnn.network.Sequential.kernels`): a ``backend="numpy"`` fit runs
the NumPy loss, not a compiled one.
"""

import numpy as np


def softmax_cross_entropy(logits, labels, kernels=None):
    """Mean cross-entropy of integer ``labels`` under ``softmax(logits)``, computed stably.

    Uses ``log_softmax = z - max(z) - log(sum(exp(z - max(z))))`` in float64, so
    huge logits never overflow; one fused kernel pass (``softmax_xent``)
    computes the loss and the gradient together.

    Parameters
    ----------
    logits : ndarray (N, K)
        float32 or float64 (other dtypes are computed in float64).
    labels : ndarray of int (N,), values in ``[0, K)``
    kernels : Backend or None, default=None
        The backend whose ``softmax_xent`` runs; None means ``get_backend("auto")``.

    Returns
    -------
    loss : float
    grad : ndarray (N, K)
        ``(softmax(logits) - onehot(labels)) / N``, of the dtype of ``logits``.

    Raises
    ------
    ValueError
        If ``labels`` cannot be read as int64.

    Examples
    --------
    >>> import numpy as np
    >>> loss, grad = softmax_cross_entropy(np.array([[1e4, 0.0]]), np.array([0]))
    >>> float(loss), grad.shape
    (0.0, (1, 2))
    """
    if kernels is None:
        from .backend import get_backend

        kernels = get_backend("auto")
    if logits.dtype not in (np.float32, np.float64):
        logits = logits.astype(np.float64)
    logits = np.ascontiguousarray(logits)
    labels = np.ascontiguousarray(labels, dtype=np.int64)
    grad = np.empty(logits.shape, dtype=logits.dtype)
    loss = kernels.softmax_xent(grad, logits, labels)
    return loss, grad


def mean_squared_error(outputs, targets, kernels=None):
    """``mean((outputs - targets)**2)`` over all elements, and its gradient.

    Parameters
    ----------
    outputs : ndarray (N, K)
    targets : ndarray (N, K)
    kernels : Backend or None, default=None
        Accepted for the common loss signature; the loss is plain NumPy on every backend.

    Returns
    -------
    loss : float
    grad : ndarray (N, K)
        ``2 * (outputs - targets) / outputs.size``, of the dtype of ``outputs``.

    Examples
    --------
    >>> import numpy as np
    >>> loss, grad = mean_squared_error(np.array([[1.0], [3.0]]), np.array([[0.0], [3.0]]))
    >>> float(loss), grad.ravel().tolist()
    (0.5, [1.0, 0.0])
    """
    diff = outputs - targets
    loss = float(np.mean(diff * diff))
    return loss, (diff * (2.0 / diff.size)).astype(outputs.dtype, copy=False)


def _per_sample_cross_entropy(logits, labels):
    z = logits.astype(np.float64)
    z = z - z.max(axis=1, keepdims=True)
    log_norm = np.log(np.exp(z).sum(axis=1))
    return log_norm - z[np.arange(len(z)), labels]


def _per_sample_squared_error(outputs, targets):
    diff = outputs.astype(np.float64) - targets
    return (diff * diff).mean(axis=1)


_PER_SAMPLE = {softmax_cross_entropy: _per_sample_cross_entropy, mean_squared_error: _per_sample_squared_error}


def weighted_loss(loss_fn, output, target, weights, **loss_kwargs):
    """``loss_fn`` with per-sample ``weights``: weighted-average loss and its gradient.

    ``loss_fn`` returns the gradient of the *mean* over the batch; each row is
    rescaled by ``n * w_i / sum(w)``. Returns ``(loss, grad)`` like ``loss_fn``
    (called with ``loss_kwargs``, e.g. ``kernels``).
    """
    loss, grad = loss_fn(output, target, **loss_kwargs)
    total = float(weights.sum())
    if total == 0.0:
        grad[...] = 0
        return 0.0, grad
    grad *= (weights * (len(weights) / total)).astype(grad.dtype).reshape(-1, *([1] * (grad.ndim - 1)))
    return float(np.dot(_PER_SAMPLE[loss_fn](output, target), weights) / total), grad
