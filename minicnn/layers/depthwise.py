"""Depthwise 2-D convolution (one KxK filter per channel, torch's ``groups=C``), bias and activation fused.

Shape letters: N samples, H/W input height/width, Ho/Wo output height/width,
C channels, KH/KW kernel height/width; sh/sw strides, dh/dw dilations, pt/pl
top/left padding.

The three ``depthwise_conv2d_*`` functions below are plain NumPy with the
kernel contract (outputs first, written in place; inputs; then sizes): one
strided slice per kernel tap, vectorized over N, Ho, Wo and C. The layer
calls the backend's kernels of the same names and signatures where the
backend has them (:func:`_kernel`), these otherwise.
"""

import numpy as np

from .base import glorot_or_he_uniform
from .conv import _WindowConv


def _taps(KH, KW, Ho, Wo, sh, sw, dh, dw):
    """``(p, q, rows, cols)`` per tap: the slices of the padded input that tap ``(p, q)`` reads."""
    for p in range(KH):
        for q in range(KW):
            yield p, q, slice(p * dh, p * dh + (Ho - 1) * sh + 1, sh), slice(q * dw, q * dw + (Wo - 1) * sw + 1, sw)


def _padded_size(Ho, K, s, d):
    return (Ho - 1) * s + (K - 1) * d + 1


def _pad(x, Hp, Wp, pt, pl):
    """``x (N, H, W, C)`` in a zero array ``(N, Hp, Wp, C)`` at offset ``(pt, pl)`` (rows no window reads dropped)."""
    N, H, W, C = x.shape
    xp = np.zeros((N, Hp, Wp, C), dtype=x.dtype)
    h, w = min(H, Hp - pt), min(W, Wp - pl)
    xp[:, pt:pt + h, pl:pl + w] = x[:, :h, :w]
    return xp


def depthwise_conv2d_forward(y, x, w, sh, sw, pt, pl, dh, dw):
    """``y[n, i, j, c] = sum_pq x[n, i*sh - pt + p*dh, j*sw - pl + q*dw, c] * w[p, q, c]`` (zero outside ``x``).

    Parameters
    ----------
    y : ndarray (N, Ho, Wo, C)
        Output, overwritten.
    x : ndarray (N, H, W, C)
    w : ndarray (KH, KW, C)
    sh, sw, pt, pl, dh, dw : int
        Strides, top/left padding, dilations.
    """
    N, Ho, Wo, C = y.shape
    KH, KW, _ = w.shape
    xp = _pad(x, _padded_size(Ho, KH, sh, dh), _padded_size(Wo, KW, sw, dw), pt, pl)
    y[...] = 0
    for p, q, rows, cols in _taps(KH, KW, Ho, Wo, sh, sw, dh, dw):
        y += xp[:, rows, cols] * w[p, q]


def depthwise_conv2d_backward_input(dx, dy, w, sh, sw, pt, pl, dh, dw):
    """``dx`` (N, H, W, C), overwritten: the gradient of :func:`depthwise_conv2d_forward` with respect to ``x``."""
    N, Ho, Wo, C = dy.shape
    KH, KW, _ = w.shape
    H, W = dx.shape[1:3]
    Hp, Wp = _padded_size(Ho, KH, sh, dh), _padded_size(Wo, KW, sw, dw)
    dxp = np.zeros((N, max(Hp, pt + H), max(Wp, pl + W), C), dtype=dx.dtype)
    for p, q, rows, cols in _taps(KH, KW, Ho, Wo, sh, sw, dh, dw):
        dxp[:, rows, cols] += dy * w[p, q]
    dx[...] = dxp[:, pt:pt + H, pl:pl + W]


def depthwise_conv2d_backward_weight(dw_, dy, x, sh, sw, pt, pl, dh, dw):
    """``dw_`` (KH, KW, C), overwritten: the gradient of :func:`depthwise_conv2d_forward` with respect to ``w``."""
    N, Ho, Wo, C = dy.shape
    KH, KW, _ = dw_.shape
    xp = _pad(x, _padded_size(Ho, KH, sh, dh), _padded_size(Wo, KW, sw, dw), pt, pl)
    for p, q, rows, cols in _taps(KH, KW, Ho, Wo, sh, sw, dh, dw):
        dw_[p, q] = np.einsum("nijc,nijc->c", xp[:, rows, cols], dy)


def _kernel(layer, name):
    """The backend's kernel ``name`` where it has one, else this module's NumPy function of that name."""
    return getattr(layer.kernels, name, None) or globals()[name]


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
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        return (Ho, Wo, C)

    def forward(self, x, training=False):
        C = x.shape[-1]
        z = self._buffer("z", (x.shape[0], *self.output_shape))
        _kernel(self, "depthwise_conv2d_forward")(z, x, self.params["w"], *self._geometry())
        y = self._buffer("y", z.shape)
        self.kernels.bias_act_forward(y.reshape(-1, C), z.reshape(-1, C), self.params.get("b", self._zero_bias),
                                      self.act, self.alpha)
        self._x, self._y = x, y
        return y

    def backward(self, dy):
        if getattr(self, "_x", None) is None:
            raise RuntimeError("DepthwiseConv2D.backward needs a forward pass of the same batch with training=True")
        C = dy.shape[-1]
        dz = self._buffer("dz", dy.shape)
        db = self.grads["b"] if self.use_bias else self._buffer("db", (C,))
        self.kernels.bias_act_backward(dz.reshape(-1, C), db, dy.reshape(-1, C), self._y.reshape(-1, C),
                                       self.act, self.alpha)
        _kernel(self, "depthwise_conv2d_backward_weight")(self.grads["w"], dz, self._x, *self._geometry())
        if not self.needs_input_grad:
            return None
        dx = self._buffer("dx", self._x.shape)
        _kernel(self, "depthwise_conv2d_backward_input")(dx, dz, self.params["w"], *self._geometry())
        return dx

    def describe(self):
        KH, KW = self.kernel_size
        return (f"{KH}x{KW}, strides={self.strides}, padding={self.padding!r}, "
                f"activation={self.activation!r}")
