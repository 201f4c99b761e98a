"""Plain-NumPy reference kernels: the ground truth every fast backend is tested against.

The backend contract (shared by ``reference``, ``numba_kernels`` and
``cython_kernels``; same names, same signatures):

* Arguments are outputs first, then inputs, then sizes. Outputs are
  preallocated, C-contiguous arrays of the input dtype (float32 or float64);
  the kernel writes every element of each output (no caller zeroing needed).
* Image tensors are channels-last: ``x`` is ``(N, H, W, C)``; conv weights are
  ``(KH, KW, C, F)``. Output spatial sizes are taken from the output's shape;
  ``pt, pl`` are the top/left zero padding (bottom/right padding is whatever
  the output size implies).
* The conv workspace ``col`` is ``(N, Ho*Wo, KH*KW*C)``, columns ordered
  ``(kh, kw, c)`` to match ``w.reshape(KH*KW*C, F)``. ``conv2d_forward`` fills it
  and ``conv2d_backward_weight`` reads it; ``dcol`` is the same shape (the
  Cython kernel also accepts ``S < N`` per-thread slots ``(S, Ho*Wo, K)``
  and then uses at most ``S`` threads; its contents are scratch).
* Max-pool ``argmax`` is int64 ``(N, Ho, Wo, C)`` holding ``h * W + w`` of the
  winning input position (the first maximum in row-major window order).
  Avg-pool divides by the number of *valid* (non-padding) elements.
* Dropout kernels take flat 1-D arrays (element-wise) or ``(N, S, C)`` arrays
  (channel-wise, mask index ``n * C + c``), the two hash keys and the keep
  threshold of :mod:`minicnn.backend.hash_rng`, and a ``scale`` that is cast to
  the data dtype before multiplying. Backward regenerates the same mask.
* Bias+activation kernels work on 2-D ``(M, C)`` views; ``act`` is a code from
  :mod:`minicnn.backend.activation_codes` and ``alpha`` the leaky-relu slope.
  The backward computes the derivative from the *output* ``y``; ``y`` may alias
  ``x`` and ``dx`` may alias ``dy``.
"""

import numpy as np

from .activation_codes import IDENTITY, LEAKY_RELU, RELU, SIGMOID, TANH
from .augment_reference import augment_batch  # noqa: F401 (kernel of this backend)
from .depthwise_reference import (  # noqa: F401 (kernels of this backend)
    depthwise_conv2d_backward_input, depthwise_conv2d_backward_weight, depthwise_conv2d_forward)
from .hash_rng import hash_reference
from .tuning import DW_GROUPS, conv_wgrad_workspace_length, winograd_workspace_length  # noqa: F401 (the layouts)

NAME = "numpy"


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


# ----------------------------------------------------------------------------- conv
def conv2d_forward(y, x, w, col, sh, sw, pt, pl, dh, dw):
    """``y = conv(x, w)`` (no bias) via im2col into ``col`` and one matrix product."""
    N, H, W, C = x.shape
    KH, KW, _, F = w.shape
    Ho, Wo = y.shape[1], y.shape[2]
    xp = _pad_input(x, Ho, Wo, KH, KW, sh, sw, pt, pl, dh, dw)
    for i in range(KH):
        for j in range(KW):
            rows, cols = _window(Ho, Wo, i, j, sh, sw, dh, dw)
            tap = (i * KW + j) * C
            col[:, :, tap:tap + C] = xp[:, rows, cols, :].reshape(N, Ho * Wo, C)
    y[...] = (col @ w.reshape(KH * KW * C, F)).reshape(y.shape)


def conv2d_backward_input(dx, dcol, dy, w, sh, sw, pt, pl, dh, dw):
    """Gradient of the conv output with respect to its input (col2im of ``dy @ w.T``)."""
    N, H, W, C = dx.shape
    KH, KW, _, F = w.shape
    Ho, Wo = dy.shape[1], dy.shape[2]
    dcol[...] = dy.reshape(N, Ho * Wo, F) @ w.reshape(KH * KW * C, F).T
    dxp = _pad_input(np.zeros_like(dx), Ho, Wo, KH, KW, sh, sw, pt, pl, dh, dw)
    for i in range(KH):
        for j in range(KW):
            rows, cols = _window(Ho, Wo, i, j, sh, sw, dh, dw)
            tap = (i * KW + j) * C
            dxp[:, rows, cols, :] += dcol[:, :, tap:tap + C].reshape(N, Ho, Wo, C)
    dx[...] = dxp[:, pt:pt + H, pl:pl + W, :]


def conv2d_backward_weight(dw, dy, col):
    """Gradient of the conv output with respect to the weights: ``col.T @ dy``."""
    F = dy.shape[3]
    K = col.shape[2]
    dw[...] = (col.reshape(-1, K).T @ dy.reshape(-1, F)).reshape(dw.shape)


# ----------------------------------------------------------------------------- pooling
def _pool_windows(x, Ho, Wo, kh, kw, sh, sw, pt, pl, fill):
    """All pooling windows as an ``(N, Ho, Wo, kh*kw, C)`` array (padded with ``fill``)."""
    xp = _pad_input(x, Ho, Wo, kh, kw, sh, sw, pt, pl, 1, 1, fill=fill)
    taps = [xp[:, r, c, :] for r, c in
            (_window(Ho, Wo, i, j, sh, sw, 1, 1) for i in range(kh) for j in range(kw))]
    return np.stack(taps, axis=3)


def maxpool2d_forward(y, argmax, x, kh, kw, sh, sw, pt, pl):
    """Max over each window; ``argmax`` records the winner as ``h * W + w``."""
    W = x.shape[2]
    Ho, Wo = y.shape[1], y.shape[2]
    windows = _pool_windows(x, Ho, Wo, kh, kw, sh, sw, pt, pl, -np.inf)
    tap = np.argmax(windows, axis=3)                       # first maximum
    y[...] = np.take_along_axis(windows, tap[:, :, :, None, :], axis=3)[:, :, :, 0, :]
    oh = np.arange(Ho)[None, :, None, None] * sh - pt
    ow = np.arange(Wo)[None, None, :, None] * sw - pl
    argmax[...] = (oh + tap // kw) * W + (ow + tap % kw)


def maxpool2d_backward(dx, dy, argmax):
    """Route each output gradient to its window's winner (overlaps accumulate)."""
    N, H, W, C = dx.shape
    flat = np.zeros((N, H * W, C), dtype=dx.dtype)
    n = np.arange(N)[:, None, None, None]
    c = np.arange(C)[None, None, None, :]
    np.add.at(flat, (np.broadcast_to(n, dy.shape), argmax, np.broadcast_to(c, dy.shape)), dy)
    dx[...] = flat.reshape(dx.shape)


def _valid_counts(H, W, Ho, Wo, kh, kw, sh, sw, pt, pl):
    """Number of non-padding elements in each pooling window, ``(Ho, Wo, 1)``."""
    rows = np.clip(np.arange(Ho) * sh - pt + kh, 0, H) - np.clip(np.arange(Ho) * sh - pt, 0, H)
    cols = np.clip(np.arange(Wo) * sw - pl + kw, 0, W) - np.clip(np.arange(Wo) * sw - pl, 0, W)
    return (rows[:, None] * cols[None, :])[:, :, None]


def avgpool2d_forward(y, x, kh, kw, sh, sw, pt, pl):
    """Mean over the valid (non-padding) elements of each window."""
    H, W = x.shape[1], x.shape[2]
    Ho, Wo = y.shape[1], y.shape[2]
    windows = _pool_windows(x, Ho, Wo, kh, kw, sh, sw, pt, pl, 0.0)
    counts = _valid_counts(H, W, Ho, Wo, kh, kw, sh, sw, pt, pl)
    y[...] = windows.sum(axis=3) / counts.astype(x.dtype)


def avgpool2d_backward(dx, dy, kh, kw, sh, sw, pt, pl):
    """Spread each output gradient evenly over its window's valid elements."""
    N, H, W, C = dx.shape
    Ho, Wo = dy.shape[1], dy.shape[2]
    counts = _valid_counts(H, W, Ho, Wo, kh, kw, sh, sw, pt, pl)
    share = dy / counts.astype(dy.dtype)
    dxp = _pad_input(np.zeros_like(dx), Ho, Wo, kh, kw, sh, sw, pt, pl, 1, 1)
    for i in range(kh):
        for j in range(kw):
            rows, cols = _window(Ho, Wo, i, j, sh, sw, 1, 1)
            dxp[:, rows, cols, :] += share
    dx[...] = dxp[:, pt:pt + H, pl:pl + W, :]


# ----------------------------------------------------------------------------- dropout
def _apply_mask(y, x, keep, scale):
    y[...] = np.where(keep, x * x.dtype.type(scale), x.dtype.type(0))


def dropout_forward(y, x, key0, key1, threshold, scale):
    """Element-wise dropout on flat arrays: keep ``x[i] * scale`` where ``hash(i) < threshold``."""
    keep = hash_reference(np.arange(x.shape[0], dtype=np.uint64), key0, key1) < threshold
    _apply_mask(y, x, keep, scale)


def dropout_backward(dx, dy, key0, key1, threshold, scale):
    """Gradient of :func:`dropout_forward`: the same regenerated mask applied to ``dy``."""
    dropout_forward(dx, dy, key0, key1, threshold, scale)


def spatial_dropout_forward(y, x, key0, key1, threshold, scale):
    """Channel-wise dropout on ``(N, S, C)`` arrays: one mask bit per ``(n, c)``."""
    N, _, C = x.shape
    keep = hash_reference(np.arange(N * C, dtype=np.uint64), key0, key1) < threshold
    _apply_mask(y, x, keep.reshape(N, 1, C), scale)


def spatial_dropout_backward(dx, dy, key0, key1, threshold, scale):
    """Gradient of :func:`spatial_dropout_forward` (same regenerated mask)."""
    spatial_dropout_forward(dx, dy, key0, key1, threshold, scale)


# ----------------------------------------------------------------------------- bias + activation
def bias_act_forward(y, x, b, act, alpha):
    """``y = f(x + b)`` on ``(M, C)`` arrays (``y`` may alias ``x``)."""
    z = x + b
    if act == RELU:
        z = np.maximum(z, 0)
    elif act == LEAKY_RELU:
        z = np.where(z > 0, z, z * x.dtype.type(alpha))
    elif act == TANH:
        z = np.tanh(z)
    elif act == SIGMOID:
        z = 1 / (1 + np.exp(-z))
    y[...] = z


def bias_act_backward(dx, db, dy, y, act, alpha):
    """``dx = dy * f'(.)`` computed from the output ``y``; ``db = dx.sum(axis=0)``."""
    if act == IDENTITY:
        g = dy.copy()
    elif act == RELU:
        g = np.where(y > 0, dy, 0)
    elif act == LEAKY_RELU:
        g = np.where(y > 0, dy, dy * dy.dtype.type(alpha))
    elif act == TANH:
        g = dy * (1 - y * y)
    else:
        g = dy * (y * (1 - y))
    dx[...] = g
    db[...] = g.sum(axis=0)


# ----------------------------------------------------------------------------- dense matrix product
def matmul(c, a, b, trans_a, trans_b):
    """``c = op(a) @ op(b)`` with ``op(x) = x.T`` when ``trans_x`` is nonzero (all 2-D, C-contiguous)."""
    np.dot(a.T if trans_a else a, b.T if trans_b else b, out=c)


# ----------------------------------------------------------------------------- optimizer
def adam_update(param, m, v, grad, step_size, beta1, beta2, bias2, eps, decay):
    """One fused Adam (AdamW) step on flat arrays, every operation in the data dtype.

    ``param = param * decay - step_size * m / (sqrt(v / bias2) + eps)`` after
    ``m = beta1 * m + (1 - beta1) * grad`` and ``v = beta2 * v + (1 - beta2) * grad**2``;
    ``step_size = lr / (1 - beta1**t)``, ``bias2 = 1 - beta2**t`` and
    ``decay = 1 - lr * weight_decay`` are computed by the caller. Each scalar is
    cast to the dtype first, and the operations happen in this order, so the
    compiled twins are bit-identical.
    """
    t = param.dtype.type
    m *= t(beta1)
    m += t(1.0 - beta1) * grad
    v *= t(beta2)
    v += t(1.0 - beta2) * (grad * grad)
    denom = np.sqrt(v / t(bias2))
    denom += t(eps)
    param *= t(decay)
    param -= t(step_size) * (m / denom)


# ----------------------------------------------------------------------------- loss
def softmax_xent(grad, logits, labels):
    """Mean softmax cross-entropy of int64 ``labels``; writes ``grad = (softmax - onehot) / N``.

    Computed in float64 per row, max-shifted (huge logits never overflow);
    ``grad`` is written in its own dtype. Returns the loss as a Python float.
    Raises ValueError for a label outside ``[0, K)``.
    """
    N, K = logits.shape
    if N == 0:
        return float("nan")
    if labels.min() < 0 or labels.max() >= K:
        raise ValueError(f"labels must be in [0, {K}); received labels in [{labels.min()}, {labels.max()}]")
    z = logits.astype(np.float64)
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    s = e.sum(axis=1, keepdims=True)
    rows = np.arange(N)
    loss = float(np.sum(np.log(s[:, 0]) - z[rows, labels]) / N)
    p = e / s
    p[rows, labels] -= 1.0
    grad[...] = p * (1.0 / N)
    return loss


# ----------------------------------------------------------------------------- prediction softmax (float64)
# Class probabilities are ``exp(z) / sum(exp(z))`` per row with ``z = logits - max(logits)``, in float64. The
# exponential stays NumPy's ``np.exp`` (its SIMD routine rounds differently from C's ``exp`` in ~5% of values):
# these two kernels do the passes around it, so every backend returns the probabilities of this file, bit for bit.
def softmax_shift_rows(z, logits):
    """``z = logits - max(logits, axis=1)`` in float64.

    ``z``: (N, K) float64; ``logits``: (N, K) float32 or float64. A row holding
    NaN gets an all-NaN ``z`` row (NumPy's ``max`` propagates NaN).
    """
    z[...] = logits
    z -= z.max(axis=1, keepdims=True)


def softmax_normalize_rows(p):
    """``p /= p.sum(axis=1)`` in place, ``p``: (N, K) float64.

    The row sum is NumPy's reduction: ``0.0 +`` its pairwise sum (8 running
    partial sums up to 128 values, halves in multiples of 8 above), so the
    compiled kernels reproduce it bit for bit.
    """
    p /= p.sum(axis=1, keepdims=True)


# ----------------------------------------------------------------------------- fused forward epilogues
def conv2d_bias_act_forward(y, x, w, b, col, act, alpha, sh, sw, pt, pl, dh, dw):
    """``y = f(conv(x, w) + b)``: :func:`conv2d_forward` then :func:`bias_act_forward`, in one kernel call."""
    conv2d_forward(y, x, w, col, sh, sw, pt, pl, dh, dw)
    y2 = y.reshape(-1, y.shape[-1])
    bias_act_forward(y2, y2, b, act, alpha)


def depthwise_conv2d_bias_act_forward(y, x, w, b, act, alpha, sh, sw, pt, pl, dh, dw):
    """``y = f(depthwise_conv(x, w) + b)``: :func:`depthwise_conv2d_forward` then :func:`bias_act_forward`."""
    depthwise_conv2d_forward(y, x, w, sh, sw, pt, pl, dh, dw)
    if y.size:
        y2 = y.reshape(-1, y.shape[-1])
        bias_act_forward(y2, y2, b, act, alpha)


def dense_bias_act_forward(y, x, w, b, act, alpha):
    """``y = f(x @ w + b)``: :func:`matmul` then :func:`bias_act_forward`, in one kernel call."""
    matmul(y, x, w, 0, 0)
    bias_act_forward(y, y, b, act, alpha)


# ----------------------------------------------------------------------------- Winograd F(2x2, 3x3)
#: Winograd F(2x2, 3x3) transforms (Lavin & Gray 2015). For a 4x4 input tile ``d``, a 3x3
#: filter ``g`` and the 2x2 output tile ``Y`` of their (valid, stride-1) correlation:
#: ``V = B^T d B``, ``U = G g G^T``, ``Y = A^T (sum over channels of U * V) A``.
WINOGRAD_BT = np.array([[1, 0, -1, 0],
                        [0, 1, 1, 0],
                        [0, -1, 1, 0],
                        [0, 1, 0, -1]], dtype=np.float64)
WINOGRAD_G = np.array([[1.0, 0.0, 0.0],
                       [0.5, 0.5, 0.5],
                       [0.5, -0.5, 0.5],
                       [0.0, 0.0, 1.0]])
WINOGRAD_AT = np.array([[1, 1, 1, 0],
                        [0, 1, -1, -1]], dtype=np.float64)


def conv2d_winograd_bias_act_forward(y, x, w, b, work, act, alpha, pt, pl):
    """``y = f(conv(x, w) + b)`` for a 3x3, stride-1 conv by Winograd F(2x2, 3x3); ``work`` is ignored.

    Same result (up to rounding) as :func:`conv2d_bias_act_forward` with
    ``sh = sw = dh = dw = 1``. The output is cut into ``ceil(Ho/2) x ceil(Wo/2)``
    tiles of 2x2 pixels; tile ``(i, j)`` reads the 4x4 input window at rows
    ``2i - pt ...`` and columns ``2j - pl ...`` of the input zero-extended on every
    side (padding, plus whatever a partial last tile reaches past the image).
    Every step is a small matrix product (``WINOGRAD_BT``, ``WINOGRAD_G``,
    ``WINOGRAD_AT``), applied to all tiles at once in the data dtype.
    """
    N, H, W, C = x.shape
    F = w.shape[3]
    Ho, Wo = y.shape[1], y.shape[2]
    if y.size == 0:
        return
    dt = x.dtype
    BT, G, AT = (m.astype(dt) for m in (WINOGRAD_BT, WINOGRAD_G, WINOGRAD_AT))
    th, tw = (Ho + 1) // 2, (Wo + 1) // 2
    # zero-extended input covering every tile: (N, 2*th + 2, 2*tw + 2, C)
    R, S = 2 * th + 2, 2 * tw + 2
    xp = np.zeros((N, R, S, C), dtype=dt)
    rows, cols = max(0, min(H, R - pt)), max(0, min(W, S - pl))
    xp[:, pt:pt + rows, pl:pl + cols, :] = x[:, :rows, :cols, :]
    # d[n, i, j, c, r, s] = xp[n, 2i + r, 2j + s, c]: the 4x4 input tile of output tile (i, j)
    d = np.lib.stride_tricks.sliding_window_view(xp, (4, 4), axis=(1, 2))[:, ::2, ::2]
    V = np.einsum("kr,nijcrs,ls->klnijc", BT, d, BT)               # B^T d B: (4, 4, N, th, tw, C)
    U = np.einsum("kr,rsf,ls->klf", G, w.reshape(3, 3, C * F), G)  # G g G^T: (4, 4, C*F)
    # the 16 products M_k (tiles, F) = V_k (tiles, C) @ U_k (C, F), k = 4 * row + column
    M = V.reshape(16, N * th * tw, C) @ U.reshape(16, C, F)
    M = M.reshape(4, 4, N, th, tw, F)
    Y = np.einsum("ak,klnijf,bl->nijabf", AT, M, AT)                # A^T M A: (N, th, tw, 2, 2, F)
    Y = Y.transpose(0, 1, 3, 2, 4, 5).reshape(N, 2 * th, 2 * tw, F)
    y[...] = Y[:, :Ho, :Wo, :]
    y2 = y.reshape(-1, F)
    bias_act_forward(y2, y2, b, act, alpha)


# ----------------------------------------------------------------------------- conv weight gradient from the input
def conv2d_backward_weight_from_input(dw, dy, x, work, sh, sw, pt, pl, dh, dwl):
    """Weight gradient of a conv from its input ``x``: :func:`conv2d_backward_weight` without ``col``.

    ``dw (KH, KW, C, F)``, ``dy (N, Ho, Wo, F)`` (gradient wrt the conv output),
    ``x (N, H, W, C)``; geometry as :func:`conv2d_forward` (``dwl`` is the
    dilation along the width). Tap ``(i, j)`` of the kernel saw the input
    window ``xp[:, rows, cols, :]`` of the padded input, so its gradient is
    that window contracted with ``dy`` over samples and output pixels. ``work``
    is only checked against :func:`conv_wgrad_workspace_length` (one slot).
    """
    N, H, W, C = x.shape
    KH, KW, _, F = dw.shape
    Ho, Wo = dy.shape[1], dy.shape[2]
    need = conv_wgrad_workspace_length(N, H, W, C, KH, KW, F, Ho, Wo, 1)
    if work.ndim != 1 or work.shape[0] < need:
        raise ValueError(f"work must have length >= {need} for these shapes (one slot); received shape {work.shape}")
    xp = _pad_input(x, Ho, Wo, KH, KW, sh, sw, pt, pl, dh, dwl)
    for i in range(KH):
        for j in range(KW):
            rows, cols = _window(Ho, Wo, i, j, sh, sw, dh, dwl)
            dw[i, j] = np.tensordot(xp[:, rows, cols, :], dy, axes=([0, 1, 2], [0, 1, 2]))


def conv2d_winograd_bias_act_maxpool2_forward(y, x, w, b, work, act, alpha, pt, pl, Ho, Wo):
    """``y = maxpool_2x2/2(f(conv(x, w) + b))``: :func:`conv2d_winograd_bias_act_forward` + max-pool.

    ``Ho, Wo >= 2`` is the conv output size; ``y (N, Ho // 2, Wo // 2, F)`` its
    2x2, stride-2, unpadded, floor-mode max-pool (an odd last row/column is
    dropped). ``work`` is ignored (the Cython kernel takes the workspace of
    :func:`winograd_workspace_length` for the conv size ``Ho, Wo``). Readable
    twin of the fused Cython kernel: the Winograd forward into a temporary,
    then :func:`maxpool2d_forward`.
    """
    if Ho < 2 or Wo < 2:
        raise ValueError(f"conv output size must be >= 2 for a 2x2 max-pool; received Ho={Ho}, Wo={Wo}")
    N, F = x.shape[0], w.shape[3]
    if y.shape != (N, Ho // 2, Wo // 2, F):
        raise ValueError(f"y must be (N, Ho // 2, Wo // 2, F) = {(N, Ho // 2, Wo // 2, F)} for "
                         f"Ho={Ho}, Wo={Wo}; received shape {y.shape}")
    conv = np.empty((N, Ho, Wo, F), dtype=x.dtype)
    conv2d_winograd_bias_act_forward(conv, x, w, b, work, act, alpha, pt, pl)
    maxpool2d_forward(y, np.empty(y.shape, np.int64), conv, 2, 2, 2, 2, 0, 0)


# ----------------------------------------------------------------------------- direct conv + 2x2 max-pool
def conv2d_direct_bias_act_maxpool2_forward(y, x, w, b, act, alpha, sh, sw, pt, pl, dh, dw):
    """``y = maxpool_2x2/2(f(conv(x, w) + b))`` for any conv geometry, at inference.

    ``y (N, Hp, Wp, F)``: ``Hp, Wp`` the 2x2, stride-2, unpadded, floor-mode
    pooled size of the conv output (an odd last row/column is dropped).
    Readable twin of the compiled kernels, which write neither im2col columns
    nor the conv output (a first layer on few channels): the conv into a
    temporary, then :func:`maxpool2d_forward`.
    """
    N, H, W, C = x.shape
    KH, KW, _, F = w.shape
    Hp, Wp = y.shape[1], y.shape[2]
    # the conv outputs the pool reads: rows/columns 0 .. 2*Hp-1 / 2*Wp-1 (taps past the image read zeros)
    conv = np.empty((N, 2 * Hp, 2 * Wp, F), dtype=x.dtype)
    conv2d_bias_act_forward(conv, x, w, b, np.empty((N, 4 * Hp * Wp, KH * KW * C), x.dtype), act, alpha,
                            sh, sw, pt, pl, dh, dw)
    maxpool2d_forward(y, np.empty(y.shape, np.int64), conv, 2, 2, 2, 2, 0, 0)
