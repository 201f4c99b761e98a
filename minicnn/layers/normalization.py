"""Batch normalization over the last axis (channels of NHWC maps, features of 2-D inputs)."""

import numpy as np

from ..backend.activation_codes import IDENTITY
from .base import Layer

#: Rows per block of the statistics and gradient sums (at most ``MAX_ROW_BLOCKS`` blocks): the blocks are
#: the parallel work items and their partial sums are added in block order, so the sums depend on the batch
#: size only, never on the thread count.
BLOCK_ROWS = 512
MAX_ROW_BLOCKS = 64


def row_blocks(m):
    """Number of row blocks ``B`` of the BatchNorm kernels' ``(B, 2, C)`` scratch for ``m`` rows."""
    return max(1, min(MAX_ROW_BLOCKS, m // BLOCK_ROWS))


class BatchNorm(Layer):
    """Batch normalization with running statistics.

    Training normalizes with the batch mean and (biased) variance and updates
    the running estimates as ``running = (1 - momentum) * running + momentum * batch``
    (unbiased variance, PyTorch's convention); inference uses the running
    estimates. Like PyTorch, a training batch with one value per channel
    raises ``ValueError`` (its variance is 0). The passes are the backend's
    ``batchnorm_*`` kernels: statistics and gradient sums accumulate in float64
    over fixed row blocks (:func:`row_blocks`), so results do not depend on the
    thread count; the backward recomputes the normalized input from ``x``.

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
    >>> from minicnn.backend import get_backend
    >>> from minicnn.layers import BatchNorm
    >>> bn = BatchNorm()
    >>> bn.build((4, 4, 3), dtype=np.float32, rng=None, backend=get_backend("numpy"))
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

    def forward(self, x, training=False, *, act=IDENTITY, alpha=0.0):
        """Normalize ``x`` (batch statistics when ``training``, running ones otherwise).

        ``act``, ``alpha``: the kernel code and slope of an activation applied in the same pass (a composite
        passes those of the :class:`~minicnn.layers.Activation` that follows, see :mod:`.folding`); the
        backward then differentiates it too.
        """
        C = x.shape[-1]
        x2 = x.reshape(-1, C)
        y = self._buffer("y", x.shape)
        y2 = y.reshape(-1, C)
        gamma, beta = self.params["gamma"], self.params["beta"]
        if not training:
            self.kernels.batchnorm_inference_forward(y2, x2, self.running_mean, self.running_var, gamma, beta,
                                                     self.eps, act, alpha)
            return y
        m = x2.shape[0]
        if m < 2:   # PyTorch's rule: a one-value variance is 0 and would corrupt the running statistics
            raise ValueError(f"Expected more than 1 value per channel when training, got input of shape "
                             f"{x.shape}")
        mean, var = self._buffer("mean", (C,)), self._buffer("var", (C,))
        partial = self._buffer("partial", (row_blocks(m), 2, C), np.float64)
        self.kernels.batchnorm_forward(y2, mean, var, partial, x2, gamma, beta, self.eps, act, alpha)
        self.running_mean *= 1 - self.momentum
        self.running_mean += self.momentum * mean
        self.running_var *= 1 - self.momentum
        self.running_var += self.momentum * var * (m / (m - 1))
        self._x, self._act = x2, (act, alpha)
        return y

    def backward(self, dy):
        C = dy.shape[-1]
        dy2 = dy.reshape(-1, C)
        x2 = self._x
        m = x2.shape[0]
        dx = self._buffer("dx", dy.shape)
        mean, var = self._buffer("mean", (C,)), self._buffer("var", (C,))
        partial = self._buffer("partial", (row_blocks(m), 2, C), np.float64)
        self.kernels.batchnorm_backward(dx.reshape(-1, C), self.grads["gamma"], self.grads["beta"], partial, dy2,
                                        self._buffer("y", dy.shape).reshape(-1, C), x2, mean, var, self.params["gamma"],
                                        self.eps, *self._act)
        return dx if self.needs_input_grad else None

    @property
    def state(self):
        """Non-trainable arrays that a saved model must keep."""
        return {"running_mean": self.running_mean, "running_var": self.running_var}

    def describe(self):
        return f"momentum={self.momentum}"
