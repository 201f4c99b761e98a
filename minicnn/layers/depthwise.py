"""Depthwise 2-D convolution (one KxK filter per channel, torch's ``groups=C``), bias and activation fused.

Shape letters: N samples, H/W input height/width, Ho/Wo output height/width,
C channels, KH/KW kernel height/width; sh/sw strides, dh/dw dilations, pt/pl
top/left padding.

The kernels are the backend's ``depthwise_conv2d_*`` (NumPy reference in
:mod:`minicnn.backend.reference.depthwise`, Numba and Cython twins); the
backward is ``depthwise_conv2d_bias_act_backward``, one pass over ``dy``.
"""

import numpy as np

from ..backend.tuning import depthwise_backward_workspace_length
from .base import glorot_or_he_uniform
from .conv import _slots, _WindowConv


class DepthwiseConv2D(_WindowConv):
    """Depthwise 2-D convolution over NHWC images: each channel convolved with its own KxK filter.

    As Keras's ``DepthwiseConv2D`` (depth multiplier 1) and torch's
    ``Conv2d(C, C, K, groups=C)``; the bias add and activation are fused.

    Input shape
    -----------
    ``(N, H, W, C)``.

    Output shape
    ------------
    ``(N, Ho, Wo, C)``, ``Ho``/``Wo`` as for :class:`~minicnn.layers.Conv2D`.

    Parameters
    ----------
    kernel_size : int or (int, int), default=3
    strides : int or (int, int), default=1
    padding : {"valid", "same"} or int or (int, int), default="valid"
    dilation : int or (int, int), default=1
    use_bias : bool, default=True
    activation : str, default="identity"
    alpha : float, default=0.01
        Negative slope of leaky_relu.

    Attributes
    ----------
    params : dict
        ``"w"`` of shape (KH, KW, C) and, with ``use_bias``, ``"b"`` of shape (C,).

    Examples
    --------
    >>> import numpy as np
    >>> from minicnn.layers import DepthwiseConv2D
    >>> from minicnn.backend import get_backend
    >>> layer = DepthwiseConv2D(3, strides=2, padding="same")
    >>> layer.build((8, 8, 4), dtype=np.float32, rng=np.random.default_rng(0), backend=get_backend("numpy"))
    (4, 4, 4)
    >>> layer.params["w"].shape
    (3, 3, 4)
    """

    def __init__(self, kernel_size=3, strides=1, padding="valid", dilation=1, use_bias=True, activation="identity",
                 alpha=0.01):
        super().__init__(kernel_size, strides, padding, dilation, use_bias, activation, alpha)

    def _build(self, input_shape, rng):
        Ho, Wo = self._output_size(input_shape)
        C = input_shape[2]
        KH, KW = self.kernel_size
        self.params["w"] = glorot_or_he_uniform(rng, (KH, KW, C), KH * KW, KH * KW, self.activation, self.dtype)
        if self.use_bias:
            self.params["b"] = np.zeros(C, dtype=self.dtype)
        self._zero_bias = np.zeros(C, dtype=self.dtype)
        self.grads = {k: np.zeros(v.shape, v.dtype) for k, v in self.params.items()}   # untouched until used
        return (Ho, Wo, C)

    def forward(self, x, training=False):
        y = self._buffer("y", (x.shape[0], *self.output_shape))
        self.kernels.depthwise_conv2d_bias_act_forward(y, x, self.params["w"], self.params.get("b", self._zero_bias),
                                                       self.act, self.alpha, *self._geometry())
        self._x, self._y = x, y
        return y

    def backward(self, dy):
        if getattr(self, "_x", None) is None:
            raise RuntimeError("DepthwiseConv2D.backward needs a forward pass of the same batch with training=True")
        if not self.needs_input_grad:
            dz = self._pre_activation_grad(dy)
            self.kernels.depthwise_conv2d_backward_weight(self.grads["w"], dz, self._x, *self._geometry())
            return None
        # the bias/activation backward, weight and input gradients in one pass over dy (each output row's
        # pre-activation gradient used while in cache)
        N = dy.shape[0]
        dx = self._buffer("dx", self._x.shape)
        db = self.grads["b"] if self.use_bias else self._buffer("no_bias", (0,))   # length 0: no bias gradient
        work = self._buffer("backward", (depthwise_backward_workspace_length(*self._x.shape, *self.kernel_size,
                                                                             *dy.shape[1:3], _slots(self, N)),))
        self.kernels.depthwise_conv2d_bias_act_backward(dx, self.grads["w"], db, work, dy, self._y, self._x,
                                                        self.params["w"], self.act, self.alpha, *self._geometry())
        return dx

    def describe(self):
        KH, KW = self.kernel_size
        return (f"{KH}x{KW}, strides={self.strides}, padding={self.padding!r}, "
                f"activation={self.activation!r}")
