"""Numba twin of the register-blocked direct convolution's inference forward.

Shape letters: N samples; H, W, C input height, width, channels; KH, KW kernel height, width; F filters;
Ho, Wo output height, width.

``conv2d_blocked_bias_act_forward(y, x, w, b, act, alpha, sh, sw, pt, pl, dh, dw)``: ``y = f(conv(x, w) + b)``
by the Numba direct conv (each output pixel's taps read from the input, summed in (kh, kw, c) order as the NumPy
reference and the compiled kernel). :class:`~minicnn.layers.Conv2D` runs the blocked route only where it is
compiled (``sources``).
"""

from .conv import conv2d_direct_bias_act_forward

__all__ = ["conv2d_blocked_bias_act_forward"]


def conv2d_blocked_bias_act_forward(y, x, w, b, act, alpha, sh, sw, pt, pl, dh, dw):
    """``y = f(conv(x, w) + b)`` (see the module)."""
    if y.shape[0] != x.shape[0] or w.shape[2] != x.shape[3] or y.shape[3] != w.shape[3] or b.shape != (w.shape[3],):
        raise ValueError(f"conv2d_blocked_bias_act_forward shapes do not match: y {y.shape}, x {x.shape}, "
                         f"w {w.shape}, b {b.shape}")
    conv2d_direct_bias_act_forward(y, x, w, b, act, alpha, sh, sw, pt, pl, dh, dw)
