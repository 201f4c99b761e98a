"""Losses as ``loss_and_grad(output, target) -> (mean loss, d loss / d output)``."""

import numpy as np


def softmax_cross_entropy(logits, labels):
    """Mean cross-entropy of integer ``labels`` under ``softmax(logits)``, computed stably.

    Uses ``log_softmax = z - max(z) - log(sum(exp(z - max(z))))`` in float64, so
    huge logits never overflow; one fused kernel pass (``softmax_xent`` of the
    ``"auto"`` backend) computes the loss and the gradient together.

    Parameters
    ----------
    logits : ndarray (N, K)
    labels : ndarray of int (N,), values in ``[0, K)``

    Returns
    -------
    loss : float
    grad : ndarray (N, K)
        ``(softmax(logits) - onehot(labels)) / N``.

    Examples
    --------
    >>> import numpy as np
    >>> loss, grad = softmax_cross_entropy(np.array([[1e4, 0.0]]), np.array([0]))
    >>> float(loss), grad.shape
    (0.0, (1, 2))
    """
    from .backend import get_backend

    if logits.dtype not in (np.float32, np.float64):
        logits = logits.astype(np.float64)
    logits = np.ascontiguousarray(logits)
    labels = np.ascontiguousarray(labels, dtype=np.int64)
    grad = np.empty(logits.shape, dtype=logits.dtype)
    loss = get_backend("auto").softmax_xent(grad, logits, labels)
    return loss, grad


def log_softmax(logits):
    """Row-wise ``log(softmax(logits))``, computed stably."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def mean_squared_error(outputs, targets):
    """``mean((outputs - targets)**2)`` over all elements, and its gradient.

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


LOSSES = {"cross_entropy": softmax_cross_entropy, "mse": mean_squared_error}
