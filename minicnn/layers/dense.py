"""Fully connected layer (bias and activation fused) and Flatten."""

import numpy as np

from .base import Layer, activation_code, glorot_or_he_uniform


class Flatten(Layer):
    """Reshape ``(N, H, W, C)`` to ``(N, H*W*C)`` in channels-last order (a view, no copy).

    Input shape
    -----------
    ``(N, H, W, C)`` (or any ``(N, ...)``).

    Output shape
    ------------
    ``(N, H*W*C)``.

    Examples
    --------
    >>> import numpy as np
    >>> from minicnn.layers import Flatten
    >>> Flatten().build((2, 2, 3), dtype=np.float32, rng=None, backend=None)
    (12,)
    """

    def _build(self, input_shape, rng):
        return (int(np.prod(input_shape)),)

    def forward(self, x, training=False):
        return x.reshape(x.shape[0], -1)

    def backward(self, dy):
        return dy.reshape(dy.shape[0], *self.input_shape)


class Dense(Layer):
    """``y = activation(x @ W + b)`` on ``(N, D)`` inputs.

    Input shape
    -----------
    ``(N, D)``.

    Output shape
    ------------
    ``(N, units)``.

    Parameters
    ----------
    units : int
    activation : str, default="identity"
    use_bias : bool, default=True
    alpha : float, default=0.01
        Negative slope of leaky_relu.

    Examples
    --------
    >>> import numpy as np
    >>> from minicnn.layers import Dense
    >>> from minicnn.backend import get_backend
    >>> layer = Dense(3, activation="relu")
    >>> layer.build((5,), dtype=np.float32, rng=np.random.default_rng(0), backend=get_backend("numpy"))
    (3,)
    >>> layer.forward(np.ones((2, 5), dtype=np.float32)).shape
    (2, 3)
    """

    def __init__(self, units, activation="identity", use_bias=True, alpha=0.01):
        super().__init__()
        if not (isinstance(units, (int, np.integer)) and not isinstance(units, bool) and units >= 1):
            raise ValueError(f"units must be a positive int; received units={units!r}")
        self.units = int(units)
        self.use_bias = bool(use_bias)
        self.activation, self.alpha = activation, alpha
        self.act = activation_code(activation, alpha)

    def _build(self, input_shape, rng):
        if len(input_shape) != 1:
            raise ValueError(f"Dense expects flat (features,) inputs (add Flatten); "
                             f"received input_shape={input_shape}")
        (D,) = input_shape
        self.params["w"] = glorot_or_he_uniform(rng, (D, self.units), D, self.units, self.activation, self.dtype)
        if self.use_bias:
            self.params["b"] = np.zeros(self.units, dtype=self.dtype)
        self._zero_bias = np.zeros(self.units, dtype=self.dtype)
        self.grads = {k: np.zeros(v.shape, v.dtype) for k, v in self.params.items()}   # untouched until used
        return (self.units,)

    def forward(self, x, training=False):
        y = self._buffer("y", (x.shape[0], self.units))
        self.kernels.dense_bias_act_forward(y, x, self.params["w"], self.params.get("b", self._zero_bias),
                                            self.act, self.alpha)
        self._x, self._y = x, y
        return y

    def backward(self, dy):
        dz = self._buffer("dz", dy.shape)
        db = self.grads["b"] if self.use_bias else self._buffer("db", (self.units,))
        self.kernels.bias_act_backward(dz, db, dy, self._y, self.act, self.alpha)
        self.kernels.matmul(self.grads["w"], self._x, dz, 1, 0)
        if not self.needs_input_grad:
            return None
        dx = self._buffer("dx", self._x.shape)
        self.kernels.matmul(dx, dz, self.params["w"], 0, 1)
        return dx

    def describe(self):
        return f"{self.units}, activation={self.activation!r}"
