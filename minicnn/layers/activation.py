"""Element-wise activations (relu, leaky_relu, tanh, sigmoid, identity) as a layer."""

import numpy as np

from .base import Layer, activation_code


class Activation(Layer):
    """Apply an activation element-wise (used e.g. after a BatchNorm).

    Conv2D and Dense fuse their own activation with the bias; this layer is for
    the places where the activation stands alone.

    Input shape
    -----------
    Any ``(N, ..., C)``.

    Output shape
    ------------
    The input shape.

    Parameters
    ----------
    activation : {"relu", "leaky_relu", "tanh", "sigmoid", "identity"}
    alpha : float, default=0.01
        Negative slope of leaky_relu.

    Examples
    --------
    >>> import numpy as np
    >>> from minicnn.layers import Activation
    >>> from minicnn.backend import get_backend
    >>> layer = Activation("relu")
    >>> layer.build((3,), dtype=np.float32, rng=None, backend=get_backend("numpy"))
    (3,)
    >>> layer.forward(np.array([[-1.0, 0.0, 2.0]], dtype=np.float32), training=False)
    array([[0., 0., 2.]], dtype=float32)
    """

    def __init__(self, activation="relu", alpha=0.01):
        super().__init__()
        self.activation, self.alpha = activation, alpha
        self.act = activation_code(activation, alpha)

    def _build(self, input_shape, rng):
        self._zero_bias = np.zeros(input_shape[-1], dtype=self.dtype)
        return input_shape

    def forward(self, x, training=False):
        C = x.shape[-1]
        y = self._buffer("y", x.shape)
        self.kernels.bias_act_forward(y.reshape(-1, C), x.reshape(-1, C), self._zero_bias, self.act, self.alpha)
        self._y = y
        return y

    def backward(self, dy):
        C = dy.shape[-1]
        dx = self._buffer("dx", dy.shape)
        db = self._buffer("db", (C,))
        self.kernels.bias_act_backward(dx.reshape(-1, C), db, dy.reshape(-1, C),
                                       self._y.reshape(-1, C), self.act, self.alpha)
        return dx

    def describe(self):
        return self.activation
