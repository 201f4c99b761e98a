"""Plain-NumPy reference of the Winograd F(2x2, 3x3) inference forward for 16-channel multiples (tiles in registers).

Shape letters: N samples; H, W, C input height, width, channels; F filters; Ho, Wo output height, width.

* ``conv2d_winograd16_bias_act_forward(y, x, u, b, act, alpha, pt, pl)``: ``y (N, Ho, Wo, F) = f(conv(x (N, H, W,
  C), w) + b (F,))``, 3x3 kernel, stride 1, top/left zero padding ``pt``, ``pl``, from the transformed weights ``u
  (4, 4, C, F)`` (``winograd_weight_transform``); float32, ``C`` and ``F`` multiples of 16, ``16 <= C <= 64``.
* ``conv2d_winograd16_bias_add_act_forward(y, x, u, b, s, act, alpha, pt, pl)``: ``f((conv + b) + s)``, ``s`` of
  ``y``'s shape.

Both are the reference Winograd (:mod:`.winograd`) behind the compiled kernel's checks. The compiled twin
(``kernels/winograd16.pyx``) sums the channels with fused multiply-adds at the levels with FMA: it agrees within
float rounding.

Examples
--------
>>> import numpy as np
>>> from minicnn.backend.reference.winograd import winograd_weight_transform
>>> x = np.ones((1, 2, 2, 16), np.float32)
>>> w = np.zeros((3, 3, 16, 16), np.float32); w[1, 1] = np.eye(16)
>>> u = np.empty((4, 4, 16, 16), np.float32); winograd_weight_transform(u, w)
>>> y = np.empty((1, 2, 2, 16), np.float32)
>>> conv2d_winograd16_bias_act_forward(y, x, u, np.full(16, -2, np.float32), 1, 0.0, 1, 1)
>>> float(y.max())
0.0
"""

from ..tuning import WINOGRAD16_MAX_CHANNELS
from .winograd import conv2d_winograd_bias_act_forward, conv2d_winograd_bias_add_act_forward

__all__ = ["conv2d_winograd16_bias_act_forward", "conv2d_winograd16_bias_add_act_forward"]


def check_winograd16_arguments(name, y, x, u, b, act, pt, pl):
    """Raise ValueError naming the argument unless the shapes, dtypes and settings suit the kernel ``name``."""
    for label, a, nd in (("y", y, 4), ("x", x, 4), ("u", u, 4), ("b", b, 1)):
        if a.dtype.name != "float32" or a.ndim != nd:
            raise ValueError(f"{name} takes float32 {label} of {nd} dimensions; received {a.dtype} of {a.ndim}")
    N, H, W, C = x.shape
    F = y.shape[3]
    if y.shape[0] != N or u.shape != (4, 4, C, F) or b.shape != (F,):
        raise ValueError(f"{name} shapes do not match: y {y.shape}, x {x.shape}, u {u.shape}, b {b.shape}")
    if C % 16 or F % 16 or not 16 <= C <= WINOGRAD16_MAX_CHANNELS:
        raise ValueError(f"{name} takes C and F multiples of 16, 16 <= C <= {WINOGRAD16_MAX_CHANNELS}; received "
                         f"C={C}, F={F}")
    if not 0 <= act <= 4:
        raise ValueError(f"{name} takes act in 0..4; received act={act}")
    if pt < 0 or pl < 0:
        raise ValueError(f"{name} takes pt, pl >= 0; received pt={pt}, pl={pl}")


def winograd16_twins(forward, forward_add):
    """The two kernels of the module composed from a backend's Winograd kernels ``forward`` and ``forward_add``
    (``conv2d_winograd_bias_act_forward``, ``conv2d_winograd_bias_add_act_forward``), the arguments checked first."""

    def conv2d_winograd16_bias_act_forward(y, x, u, b, act, alpha, pt, pl):
        """``y = f(conv(x, w) + b)`` from the transformed weights ``u`` (see the module)."""
        check_winograd16_arguments("conv2d_winograd16_bias_act_forward", y, x, u, b, act, pt, pl)
        forward(y, x, u, b, None, act, alpha, pt, pl)

    def conv2d_winograd16_bias_add_act_forward(y, x, u, b, s, act, alpha, pt, pl):
        """``y = f((conv(x, w) + b) + s)`` from the transformed weights ``u`` (see the module)."""
        check_winograd16_arguments("conv2d_winograd16_bias_add_act_forward", y, x, u, b, act, pt, pl)
        forward_add(y, x, u, b, s, None, act, alpha, pt, pl)

    return conv2d_winograd16_bias_act_forward, conv2d_winograd16_bias_add_act_forward


conv2d_winograd16_bias_act_forward, conv2d_winograd16_bias_add_act_forward = winograd16_twins(
    conv2d_winograd_bias_act_forward, conv2d_winograd_bias_add_act_forward)
