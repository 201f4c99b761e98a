"""Padding and window slices shared by the conv, pooling and weight-gradient references (``kernels/_im2col.pxi``).

Shape letters: N batch; H, W, C input height, width, channels; Ho, Wo output height, width; KH, KW window
(kernel) height, width; sh, sw strides; pt, pl top/left padding; dh, dw dilations.
"""

import numpy as np


def _padded_extent(out_size, stride, kernel, dilation):
    return (out_size - 1) * stride + (kernel - 1) * dilation + 1


def _pad_input(x, Ho, Wo, KH, KW, sh, sw, pt, pl, dh, dw, fill=0.0):
    """Copy ``x`` into a padded array large enough for every window."""
    N, H, W, C = x.shape
    Hp = max(pt + H, _padded_extent(Ho, sh, KH, dh))
    Wp = max(pl + W, _padded_extent(Wo, sw, KW, dw))
    xp = np.full((N, Hp, Wp, C), fill, dtype=x.dtype)
    xp[:, pt:pt + H, pl:pl + W, :] = x
    return xp


def _window(Ho, Wo, i, j, sh, sw, dh, dw):
    """Slices selecting tap ``(i, j)`` of every output window in a padded array."""
    return (slice(i * dh, i * dh + (Ho - 1) * sh + 1, sh),
            slice(j * dw, j * dw + (Wo - 1) * sw + 1, sw))
