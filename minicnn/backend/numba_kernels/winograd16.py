"""Numba twin of the Winograd F(2x2, 3x3) inference forward for 16-channel multiples.

Shape letters: N samples; H, W, C input height, width, channels; F filters; Ho, Wo output height, width.

``conv2d_winograd16_bias_act_forward(y, x, u, b, act, alpha, pt, pl)`` and
``conv2d_winograd16_bias_add_act_forward(y, x, u, b, s, act, alpha, pt, pl)``: the Numba Winograd kernels
(:mod:`.winograd`) behind the reference's checks. :class:`~minicnn.layers.Conv2D` runs this route only where it is
compiled (``sources``).
"""

from ..reference.winograd16 import winograd16_twins
from .winograd import conv2d_winograd_bias_act_forward, conv2d_winograd_bias_add_act_forward

__all__ = ["conv2d_winograd16_bias_act_forward", "conv2d_winograd16_bias_add_act_forward"]

conv2d_winograd16_bias_act_forward, conv2d_winograd16_bias_add_act_forward = winograd16_twins(
    conv2d_winograd_bias_act_forward, conv2d_winograd_bias_add_act_forward)
