"""Plain-NumPy reference of the depthwise convolution kernels (the ground truth of their Numba and Cython twins).

Shape letters: N batch, H, W input height and width, C channels, KH, KW kernel
height and width, Ho, Wo output height and width (all arrays NHWC).

A depthwise convolution filters every channel with its own ``KH x KW``
kernel (depth multiplier 1)::

    y[n, oh, ow, c] = sum over i < KH, j < KW of
                      x[n, oh*sh - pt + i*dh, ow*sw - pl + j*dw, c] * w[i, j, c]

with ``x`` read as zero outside the image. The weights ``w`` are
``(KH, KW, C)``: Keras ``DepthwiseConv2D``'s kernel ``(KH, KW, C, 1)`` without
its multiplier axis, and PyTorch's ``conv2d(..., groups=C)`` weight
``(C, 1, KH, KW)`` as ``w_torch[:, 0].transpose(1, 2, 0)``.

Contract (as every kernel of :mod:`minicnn.backend.reference`): outputs first,
then inputs, then sizes; outputs are preallocated C-contiguous arrays of the
input dtype (float32 or float64) and every element is written; no validation,
no workspace. Geometry: strides ``sh, sw``, top/left zero padding ``pt, pl``
(bottom/right padding is whatever the output size implies), dilations
``dh, dw``; the output size is read from ``y`` (``dy``).

* ``depthwise_conv2d_forward(y, x, w, sh, sw, pt, pl, dh, dw)``: ``y (N, Ho, Wo, C)``.
* ``depthwise_conv2d_bias_act_forward(y, x, w, b, act, alpha, sh, sw, pt, pl, dh, dw)``
  (defined by each backend module next to ``conv2d_bias_act_forward``, whose
  ``bias_act_forward`` it fuses): ``y = f(conv(x, w) + b)`` with ``b (C,)``
  and the activation code ``act`` of :mod:`minicnn.backend.activation_codes`,
  the bits of this forward then ``bias_act_forward``. The bias gradient and
  the activation derivative come from ``bias_act_backward`` on
  ``(N*Ho*Wo, C)`` views, as for ``Conv2D``.
* ``depthwise_conv2d_backward_input(dx, dy, w, sh, sw, pt, pl, dh, dw)``:
  ``dx (N, H, W, C)``, the gradient with respect to ``x`` of ``sum(y * dy)``.
* ``depthwise_conv2d_backward_weight(dw, dy, x, sh, sw, pt, pl, dh, dwl)``:
  ``dw (KH, KW, C)``, the gradient with respect to ``w`` (``dwl`` is the
  width dilation, as in ``conv2d_backward_weight_from_input``). The compiled
  kernels sum ``DW_GROUPS`` fixed sample groups in order
  (:mod:`minicnn.backend.tuning`), so their result never depends on the
  thread count.
* ``depthwise_conv2d_bias_act_backward(dx, dw, db, work, dy, y, x, w, act, alpha,
  sh, sw, pt, pl, dh, dwl)``: the three gradients of the fused forward's
  ``y = f(conv(x, w) + b)`` from ``dy``: ``dz = dy * f'(y)``
  (``bias_act_backward``), ``db (C,) = dz`` summed, ``dw`` and ``dx`` as the
  two kernels above on ``dz``. The compiled kernels do it in one pass over
  ``dy`` (each output row's ``dz`` used while in cache) with the workspace
  ``work`` (1-D, :func:`~minicnn.backend.tuning.depthwise_backward_workspace_length`),
  summing ``dw`` and ``db`` over ``DW_GROUPS`` fixed sample groups in order.

Examples
--------
>>> import numpy as np
>>> x = np.arange(2 * 4 * 4 * 3, dtype=np.float32).reshape(2, 4, 4, 3)
>>> w = np.ones((3, 3, 3), dtype=np.float32)
>>> y = np.empty((2, 4, 4, 3), dtype=np.float32)      # "same": stride 1, padding 1
>>> depthwise_conv2d_forward(y, x, w, 1, 1, 1, 1, 1, 1)
>>> float(y[0, 1, 1, 0]) == float(x[0, 0:3, 0:3, 0].sum())
True
"""

import numpy as np

from ..tuning import check_depthwise_backward_work
from .bias_act import bias_act_backward, bias_act_forward

__all__ = ["depthwise_conv2d_forward", "depthwise_conv2d_bias_act_forward", "depthwise_conv2d_backward_input",
           "depthwise_conv2d_backward_weight", "depthwise_conv2d_bias_act_backward"]


def _padded(a, Ho, Wo, KH, KW, sh, sw, pt, pl, dh, dw):
    """``a (N, H, W, C)`` inside a zero array large enough for every tap of every window (a copy)."""
    N, H, W, C = a.shape
    Hp = max(pt + H, (Ho - 1) * sh + (KH - 1) * dh + 1)
    Wp = max(pl + W, (Wo - 1) * sw + (KW - 1) * dw + 1)
    ap = np.zeros((N, Hp, Wp, C), dtype=a.dtype)
    ap[:, pt:pt + H, pl:pl + W, :] = a
    return ap


def _tap(Ho, Wo, i, j, sh, sw, dh, dw):
    """Index of tap ``(i, j)`` of every output window in the padded array: ``(N, Ho, Wo, C)`` views."""
    return (slice(None), slice(i * dh, i * dh + (Ho - 1) * sh + 1, sh),
            slice(j * dw, j * dw + (Wo - 1) * sw + 1, sw))


def depthwise_conv2d_forward(y, x, w, sh, sw, pt, pl, dh, dw):
    """``y = depthwise_conv(x, w)`` (no bias): taps summed in row-major ``(i, j)`` order."""
    Ho, Wo = y.shape[1], y.shape[2]
    KH, KW, _ = w.shape
    xp = _padded(x, Ho, Wo, KH, KW, sh, sw, pt, pl, dh, dw)
    acc = np.zeros(y.shape, dtype=y.dtype)
    for i in range(KH):
        for j in range(KW):
            acc += xp[_tap(Ho, Wo, i, j, sh, sw, dh, dw)] * w[i, j]
    y[...] = acc


def depthwise_conv2d_backward_input(dx, dy, w, sh, sw, pt, pl, dh, dw):
    """``dx``: every ``dy`` pixel times each tap's weights, added back where that tap read the input."""
    N, H, W, C = dx.shape
    Ho, Wo = dy.shape[1], dy.shape[2]
    KH, KW, _ = w.shape
    dxp = _padded(np.zeros_like(dx), Ho, Wo, KH, KW, sh, sw, pt, pl, dh, dw)
    for i in range(KH):
        for j in range(KW):
            dxp[_tap(Ho, Wo, i, j, sh, sw, dh, dw)] += dy * w[i, j]
    dx[...] = dxp[:, pt:pt + H, pl:pl + W, :]


def depthwise_conv2d_backward_weight(dw, dy, x, sh, sw, pt, pl, dh, dwl):
    """``dw[i, j, c]``: tap ``(i, j)``'s input window times ``dy``, summed over samples and output pixels."""
    Ho, Wo = dy.shape[1], dy.shape[2]
    KH, KW, _ = dw.shape
    xp = _padded(x, Ho, Wo, KH, KW, sh, sw, pt, pl, dh, dwl)
    for i in range(KH):
        for j in range(KW):
            dw[i, j] = (xp[_tap(Ho, Wo, i, j, sh, sw, dh, dwl)] * dy).sum(axis=(0, 1, 2))


def depthwise_conv2d_bias_act_forward(y, x, w, b, act, alpha, sh, sw, pt, pl, dh, dw):
    """``y = f(depthwise_conv(x, w) + b)``: :func:`depthwise_conv2d_forward` then ``bias_act_forward`` (same bits)."""
    depthwise_conv2d_forward(y, x, w, sh, sw, pt, pl, dh, dw)
    if y.size:
        y2 = y.reshape(-1, y.shape[-1])
        bias_act_forward(y2, y2, b, act, alpha)


def depthwise_conv2d_bias_act_backward(dx, dw, db, work, dy, y, x, w, act, alpha, sh, sw, pt, pl, dh, dwl):
    """``dz = dy * f'(y)`` then ``db = dz`` summed (skipped when ``db`` has length 0), ``dw`` and ``dx`` from
    ``dz`` (``work`` is only checked: :func:`~minicnn.backend.tuning.check_depthwise_backward_work`)."""
    check_depthwise_backward_work(work, x, dw, dy)
    C = x.shape[3]
    dz = np.empty_like(dy)
    sums = np.empty(C, dy.dtype)
    bias_act_backward(dz.reshape(-1, C), sums, dy.reshape(-1, C), y.reshape(-1, C), act, alpha)
    if db.shape[0]:
        db[...] = sums
    depthwise_conv2d_backward_weight(dw, dz, x, sh, sw, pt, pl, dh, dwl)
    depthwise_conv2d_backward_input(dx, dz, w, sh, sw, pt, pl, dh, dwl)
