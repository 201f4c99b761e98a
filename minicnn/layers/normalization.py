"""Batch normalization over the last axis (channels of NHWC maps, features of 2-D inputs)."""

import numpy as np

from .base import Layer


class BatchNorm(Layer):
    """Batch normalization with running statistics.

    Training normalizes with the batch mean and (biased) variance and updates
    the running estimates as ``running = (1 - momentum) * running + momentum * batch``
    (unbiased variance, PyTorch's convention); inference uses the running
    estimates. Like PyTorch, a training batch with one value per channel
    raises ``ValueError`` (its variance is 0).

    Input shape
    -----------
    ``(N, H, W, C)`` or ``(N, C)``: normalized over every axis but the last.

    Output shape
    ------------
    The input shape.

    Parameters
    ----------
    momentum : float, default=0.1
    eps : float, default=1e-5

    Examples
    --------
    >>> import numpy as np
    >>> from minicnn.layers import BatchNorm
    >>> bn = BatchNorm()
    >>> bn.build((4, 4, 3), dtype=np.float32, rng=None, backend=None)
    (4, 4, 3)
    >>> y = bn.forward(np.random.default_rng(0).normal(5, 2, (8, 4, 4, 3)).astype(np.float32), training=True)
    >>> bool(abs(y.mean()) < 1e-5)
    True
    """

    def __init__(self, momentum=0.1, eps=1e-5):
        super().__init__()
        if not (isinstance(momentum, (int, float)) and 0 < momentum <= 1):
            raise ValueError(f"momentum must be in (0, 1]; received momentum={momentum!r}")
        if not (isinstance(eps, (int, float)) and eps > 0):
            raise ValueError(f"eps must be positive; received eps={eps!r}")
        self.momentum, self.eps = float(momentum), float(eps)

    def _build(self, input_shape, rng):
        C = input_shape[-1]
        self.params = {"gamma": np.ones(C, self.dtype), "beta": np.zeros(C, self.dtype)}
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        self.running_mean = np.zeros(C, self.dtype)
        self.running_var = np.ones(C, self.dtype)
        return input_shape

    def forward(self, x, training=False):
        C = x.shape[-1]
        x2 = x.reshape(-1, C)
        y = self._buffer("y", x.shape)
        if training:
            m = x2.shape[0]
            if m < 2:   # PyTorch's rule: a one-value variance is 0 and would corrupt the running statistics
                raise ValueError(f"Expected more than 1 value per channel when training, got input of shape "
                                 f"{x.shape}")
            mean = x2.mean(axis=0)
            var = x2.var(axis=0)
            self.running_mean *= 1 - self.momentum
            self.running_mean += self.momentum * mean
            self.running_var *= 1 - self.momentum
            self.running_var += self.momentum * var * (m / max(m - 1, 1))
        else:
            mean, var = self.running_mean, self.running_var
        inv_std = (1.0 / np.sqrt(var + self.eps)).astype(self.dtype)
        xhat = self._buffer("xhat", x2.shape)
        np.subtract(x2, mean, out=xhat)
        xhat *= inv_std
        np.multiply(xhat, self.params["gamma"], out=y.reshape(-1, C))
        y.reshape(-1, C)[...] += self.params["beta"]
        self._inv_std = inv_std
        return y

    def backward(self, dy):
        C = dy.shape[-1]
        dy2 = dy.reshape(-1, C)
        xhat = self._buffers["xhat"][:dy2.size].reshape(dy2.shape)
        m = dy2.shape[0]
        self.grads["beta"][...] = dy2.sum(axis=0)
        self.grads["gamma"][...] = (dy2 * xhat).sum(axis=0)
        if not self.needs_input_grad:
            return None
        dx = self._buffer("dx", dy.shape)
        scale = self.params["gamma"] * self._inv_std / m
        dx.reshape(-1, C)[...] = scale * (m * dy2 - self.grads["beta"] - xhat * self.grads["gamma"])
        return dx

    @property
    def state(self):
        """Non-trainable arrays that a saved model must keep."""
        return {"running_mean": self.running_mean, "running_var": self.running_var}

    def describe(self):
        return f"momentum={self.momentum}"
