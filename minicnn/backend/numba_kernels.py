"""Numba kernels: same names, signatures and results as :mod:`minicnn.backend.reference`.

Read the contract in the ``reference`` module docstring. Batch loops are
``prange`` loops over samples (each thread writes its own slice, so results do
not depend on the thread count). Flags come from :mod:`minicnn.backend.jit`;
float32 and float64 each get their own compiled specialization on first call.

Convolution layout (measured, ``benchmarks/test_bench_kernels.py``): as in
the Cython backend, one GEMM per sample (``np.dot`` on contiguous 2-D arrays)
inside the ``prange`` next to its im2col/col2im, with BLAS held at one thread
by :func:`minicnn.threads.thread_limits`, so the kernel threads own the cores.
A single batch GEMM ran on that one BLAS thread and did not scale: 145.6 ms
for a MNIST conv fwd+bwd at both 1 and 2 threads. Outside ``thread_limits``
(BLAS at two threads inside two kernel threads) the per-sample layout
oversubscribes the cores: always call kernels inside ``thread_limits``.
The weight gradient sums fixed batch groups in order: bit-identical for any
thread count.
"""

import numpy as np
from numba import prange

from .activation_codes import LEAKY_RELU, RELU, SIGMOID, TANH  # anything else: identity
from .augment_numba import augment_batch  # noqa: F401 (kernel of this backend)
from .hash_rng import MIX_MUL1, MIX_MUL2
from .jit import jit
from .tuning import DB_BLOCK_ROWS, DW_GROUPS

NAME = "numba"
_ROWS_PER_CHUNK = DB_BLOCK_ROWS  # fixed db-reduction chunk: the sum order never depends on thread count


# ----------------------------------------------------------------------------- conv
@jit()
def _im2col_one(col, x, Ho, Wo, KH, KW, sh, sw, pt, pl, dh, dw):
    """im2col of one sample: ``col`` is ``(Ho*Wo, KH*KW*C)``, ``x`` is ``(H, W, C)``."""
    H, W, C = x.shape
    for oh in range(Ho):
        for ow in range(Wo):
            p = oh * Wo + ow
            for i in range(KH):
                ih = oh * sh - pt + i * dh
                for j in range(KW):
                    iw = ow * sw - pl + j * dw
                    base = (i * KW + j) * C
                    if 0 <= ih < H and 0 <= iw < W:
                        for c in range(C):
                            col[p, base + c] = x[ih, iw, c]
                    else:
                        for c in range(C):
                            col[p, base + c] = 0


@jit()
def _col2im_one(dx, dcol, Ho, Wo, KH, KW, sh, sw, pt, pl, dh, dw):
    """col2im of one sample: ``dx`` ``(H, W, C)`` = sum of the ``dcol`` taps landing on it."""
    H, W, C = dx.shape
    dx[:] = 0
    for oh in range(Ho):
        for ow in range(Wo):
            p = oh * Wo + ow
            for i in range(KH):
                ih = oh * sh - pt + i * dh
                if ih < 0 or ih >= H:
                    continue
                for j in range(KW):
                    iw = ow * sw - pl + j * dw
                    if 0 <= iw < W:
                        base = (i * KW + j) * C
                        for c in range(C):
                            dx[ih, iw, c] += dcol[p, base + c]


_WEIGHT_GROUPS = DW_GROUPS  # fixed batch groups of the weight gradient: the sum order never depends on threads


@jit(parallel=True)
def conv2d_forward(y, x, w, col, sh, sw, pt, pl, dh, dw):
    """``y = conv(x, w)`` (no bias): per sample, im2col into ``col[n]`` and one GEMM, in ``prange``."""
    N, Ho, Wo, F = y.shape
    KH, KW, C, _ = w.shape
    K = KH * KW * C
    w2 = w.reshape((K, F))
    for n in prange(N):
        _im2col_one(col[n], x[n], Ho, Wo, KH, KW, sh, sw, pt, pl, dh, dw)
        np.dot(col[n], w2, y[n].reshape((Ho * Wo, F)))


@jit(parallel=True)
def conv2d_backward_input(dx, dcol, dy, w, sh, sw, pt, pl, dh, dw):
    """Gradient with respect to the input: per sample ``dcol[n] = dy[n] @ w.T``, then col2im, in ``prange``."""
    N, Ho, Wo, F = dy.shape
    KH, KW, C, _ = w.shape
    K = KH * KW * C
    wt = w.reshape((K, F)).T
    for n in prange(N):
        np.dot(dy[n].reshape((Ho * Wo, F)), wt, dcol[n])
        _col2im_one(dx[n], dcol[n], Ho, Wo, KH, KW, sh, sw, pt, pl, dh, dw)


@jit(parallel=True)
def conv2d_backward_weight(dw, dy, col):
    """Gradient with respect to the weights: ``col.T @ dy`` summed over fixed batch groups.

    Each of ``_WEIGHT_GROUPS`` contiguous groups of samples is one GEMM (the
    groups run in ``prange``); the partial products are then added in group
    order, so the result is bit-identical for any thread count.
    """
    N = col.shape[0]
    F = dy.shape[3]
    K = col.shape[2]
    G = min(_WEIGHT_GROUPS, N)
    partial = np.empty((G, K, F), dtype=dw.dtype)
    for g in prange(G):
        lo = g * N // G
        hi = (g + 1) * N // G
        rows = (hi - lo) * col.shape[1]
        np.dot(col[lo:hi].reshape((rows, K)).T, dy[lo:hi].reshape((rows, F)), partial[g])
    dw2 = dw.reshape((K, F))
    dw2[:] = partial[0]
    for g in range(1, G):
        dw2 += partial[g]


# ----------------------------------------------------------------------------- pooling
@jit(parallel=True)
def maxpool2d_forward(y, argmax, x, kh, kw, sh, sw, pt, pl):
    """Max over each window (padding counts as -inf); ``argmax`` holds ``h * W + w``.

    Ties keep the first maximum in row-major window order and a NaN wins, as
    ``np.argmax`` does.
    """
    N, H, W, C = x.shape
    Ho, Wo = y.shape[1], y.shape[2]
    ninf = x.dtype.type(-np.inf)
    for n in prange(N):
        for oh in range(Ho):
            for ow in range(Wo):
                for i in range(kh):
                    ih = oh * sh - pt + i
                    for j in range(kw):
                        iw = ow * sw - pl + j
                        pos = ih * W + iw
                        valid = 0 <= ih < H and 0 <= iw < W
                        first = i == 0 and j == 0
                        for c in range(C):
                            v = x[n, ih, iw, c] if valid else ninf
                            best = y[n, oh, ow, c]
                            if first or v > best or (v != v and best == best):
                                y[n, oh, ow, c] = v
                                argmax[n, oh, ow, c] = pos


@jit(parallel=True)
def maxpool2d_backward(dx, dy, argmax):
    """Route each output gradient to its window's winner (overlaps accumulate)."""
    N, H, W, C = dx.shape
    Ho, Wo = dy.shape[1], dy.shape[2]
    for n in prange(N):
        dx[n] = 0
        for oh in range(Ho):
            for ow in range(Wo):
                for c in range(C):
                    a = argmax[n, oh, ow, c]
                    dx[n, a // W, a % W, c] += dy[n, oh, ow, c]


@jit()
def _span(o, stride, pad, k, size):
    """First and one-past-last valid input index of a pooling window."""
    lo = o * stride - pad
    return max(lo, 0), min(lo + k, size)


@jit(parallel=True)
def avgpool2d_forward(y, x, kh, kw, sh, sw, pt, pl):
    """Mean over the valid (non-padding) elements of each window."""
    N, H, W, C = x.shape
    Ho, Wo = y.shape[1], y.shape[2]
    for n in prange(N):
        for oh in range(Ho):
            h0, h1 = _span(oh, sh, pt, kh, H)
            for ow in range(Wo):
                w0, w1 = _span(ow, sw, pl, kw, W)
                count = x.dtype.type(max(h1 - h0, 0) * max(w1 - w0, 0))
                y[n, oh, ow] = 0
                for ih in range(h0, h1):
                    for iw in range(w0, w1):
                        for c in range(C):
                            y[n, oh, ow, c] += x[n, ih, iw, c]
                for c in range(C):
                    y[n, oh, ow, c] /= count


@jit(parallel=True)
def avgpool2d_backward(dx, dy, kh, kw, sh, sw, pt, pl):
    """Spread each output gradient evenly over its window's valid elements."""
    N, H, W, C = dx.shape
    Ho, Wo = dy.shape[1], dy.shape[2]
    for n in prange(N):
        dx[n] = 0
        for oh in range(Ho):
            h0, h1 = _span(oh, sh, pt, kh, H)
            for ow in range(Wo):
                w0, w1 = _span(ow, sw, pl, kw, W)
                count = dx.dtype.type(max(h1 - h0, 0) * max(w1 - w0, 0))
                for ih in range(h0, h1):
                    for iw in range(w0, w1):
                        for c in range(C):
                            dx[n, ih, iw, c] += dy[n, oh, ow, c] / count


# ----------------------------------------------------------------------------- dropout
@jit(inline="always")
def _mix32(h):
    """Wellons' lowbias32 in uint32 (every intermediate cast back so it vectorizes)."""
    h = np.uint32(h ^ (h >> np.uint32(16)))
    h = np.uint32(h * np.uint32(MIX_MUL1))
    h = np.uint32(h ^ (h >> np.uint32(15)))
    h = np.uint32(h * np.uint32(MIX_MUL2))
    return np.uint32(h ^ (h >> np.uint32(16)))


@jit(inline="always")
def _keep(i, key0, key1, threshold):
    """Mask bit of element ``i``: ``mix32(mix32(i ^ key0) ^ key1) < threshold``."""
    h = _mix32(np.uint32(np.uint32(i) ^ key0))
    return _mix32(np.uint32(h ^ key1)) < threshold


@jit(parallel=True)
def _dropout(y, x, key0, key1, threshold, scale):
    s = x.dtype.type(scale)
    zero = x.dtype.type(0)
    k0, k1, t = np.uint32(key0), np.uint32(key1), np.uint32(threshold)
    for i in prange(x.shape[0]):
        y[i] = x[i] * s if _keep(i, k0, k1, t) else zero


def dropout_forward(y, x, key0, key1, threshold, scale):
    """Element-wise dropout on flat arrays: keep ``x[i] * scale`` where ``hash(i) < threshold``."""
    _dropout(y, x, key0, key1, threshold, scale)


def dropout_backward(dx, dy, key0, key1, threshold, scale):
    """Gradient of :func:`dropout_forward`: the same regenerated mask applied to ``dy``."""
    _dropout(dx, dy, key0, key1, threshold, scale)


@jit(parallel=True)
def _spatial_dropout(y, x, key0, key1, threshold, scale):
    N, S, C = x.shape
    s = x.dtype.type(scale)
    zero = x.dtype.type(0)
    k0, k1, t = np.uint32(key0), np.uint32(key1), np.uint32(threshold)
    keep = np.empty((N, C), dtype=np.bool_)
    for n in prange(N):
        for c in range(C):
            keep[n, c] = _keep(n * C + c, k0, k1, t)
        for j in range(S):
            for c in range(C):
                y[n, j, c] = x[n, j, c] * s if keep[n, c] else zero


def spatial_dropout_forward(y, x, key0, key1, threshold, scale):
    """Channel-wise dropout on ``(N, S, C)`` arrays: one mask bit per ``(n, c)``."""
    _spatial_dropout(y, x, key0, key1, threshold, scale)


def spatial_dropout_backward(dx, dy, key0, key1, threshold, scale):
    """Gradient of :func:`spatial_dropout_forward` (same regenerated mask)."""
    _spatial_dropout(dx, dy, key0, key1, threshold, scale)


# ----------------------------------------------------------------------------- bias + activation
@jit(parallel=True)
def bias_act_forward(y, x, b, act, alpha):
    """``y = f(x + b)`` on ``(M, C)`` arrays (``y`` may alias ``x``).

    The activation branch sits outside the inner (channel) loop; one parallel
    loop for all activations keeps the compile time down.
    """
    M, C = x.shape
    one = x.dtype.type(1)
    zero = x.dtype.type(0)
    a = x.dtype.type(alpha)
    for m in prange(M):
        if act == RELU:
            for c in range(C):
                z = x[m, c] + b[c]
                y[m, c] = z if z > zero else zero
        elif act == LEAKY_RELU:
            for c in range(C):
                z = x[m, c] + b[c]
                y[m, c] = z if z > zero else z * a
        elif act == TANH:
            for c in range(C):
                y[m, c] = np.tanh(x[m, c] + b[c])
        elif act == SIGMOID:
            for c in range(C):
                y[m, c] = one / (one + np.exp(-(x[m, c] + b[c])))
        else:
            for c in range(C):
                y[m, c] = x[m, c] + b[c]


@jit(parallel=True)
def bias_act_backward(dx, db, dy, y, act, alpha):
    """``dx = dy * f'(.)`` computed from the output ``y``; ``db = dx.sum(axis=0)``.

    ``dx`` may alias ``dy``. Rows are processed in fixed chunks of
    ``_ROWS_PER_CHUNK`` whose partial sums are added in chunk order, so ``db`` is
    bit-identical for any thread count.
    """
    M, C = dy.shape
    one = dy.dtype.type(1)
    zero = dy.dtype.type(0)
    a = dy.dtype.type(alpha)
    chunks = (M + _ROWS_PER_CHUNK - 1) // _ROWS_PER_CHUNK
    partial = np.zeros((max(chunks, 1), C), dtype=dy.dtype)
    for k in prange(chunks):
        for m in range(k * _ROWS_PER_CHUNK, min((k + 1) * _ROWS_PER_CHUNK, M)):
            if act == RELU:
                for c in range(C):
                    dx[m, c] = dy[m, c] if y[m, c] > zero else zero
            elif act == LEAKY_RELU:
                for c in range(C):
                    dx[m, c] = dy[m, c] if y[m, c] > zero else dy[m, c] * a
            elif act == TANH:
                for c in range(C):
                    dx[m, c] = dy[m, c] * (one - y[m, c] * y[m, c])
            elif act == SIGMOID:
                for c in range(C):
                    dx[m, c] = dy[m, c] * (y[m, c] * (one - y[m, c]))
            else:
                for c in range(C):
                    dx[m, c] = dy[m, c]
            for c in range(C):
                partial[k, c] += dx[m, c]
    for c in range(C):
        db[c] = 0
    for k in range(chunks):
        for c in range(C):
            db[c] += partial[k, c]


# ----------------------------------------------------------------------------- dense matrix product
def matmul(c, a, b, trans_a, trans_b):
    """``c = op(a) @ op(b)``: NumPy's BLAS call from Python (a jitted ``np.dot`` on a transposed
    view measured 5-12 ms for a 64x256x64 product; this is ~20 us). One BLAS call, so it
    uses the BLAS thread count in force."""
    np.dot(a.T if trans_a else a, b.T if trans_b else b, out=c)


# ----------------------------------------------------------------------------- optimizer
@jit(parallel=True)
def adam_update(param, m, v, grad, step_size, beta1, beta2, bias2, eps, decay):
    """One fused Adam (AdamW) step on flat arrays, in the reference's operation order."""
    t = param.dtype.type
    b1, b2 = t(beta1), t(beta2)
    c1, c2 = t(1.0 - beta1), t(1.0 - beta2)
    bc2, e, ss, dec = t(bias2), t(eps), t(step_size), t(decay)
    for i in prange(param.shape[0]):
        g = grad[i]
        mi = m[i] * b1
        mi = mi + c1 * g
        vi = v[i] * b2
        vi = vi + c2 * (g * g)
        m[i] = mi
        v[i] = vi
        d = np.sqrt(vi / bc2)
        d = d + e
        p = param[i] * dec
        param[i] = p - ss * (mi / d)


# ----------------------------------------------------------------------------- loss
@jit()
def _softmax_xent(grad, logits, labels):
    N, K = logits.shape
    total = 0.0
    inv_n = 1.0 / N
    for n in range(N):
        label = labels[n]
        if label < 0 or label >= K:
            return np.nan, n
        mx = np.float64(logits[n, 0])
        for k in range(1, K):
            if logits[n, k] > mx:
                mx = np.float64(logits[n, k])
        s = 0.0
        for k in range(K):
            s += np.exp(np.float64(logits[n, k]) - mx)
        total += np.log(s) - (np.float64(logits[n, label]) - mx)
        for k in range(K):
            p = np.exp(np.float64(logits[n, k]) - mx) / s - (1.0 if k == label else 0.0)
            grad[n, k] = p * inv_n
    return total * inv_n, -1


def softmax_xent(grad, logits, labels):
    """Mean softmax cross-entropy of int64 ``labels``; writes ``grad = (softmax - onehot) / N``."""
    if logits.shape[0] == 0:
        return float("nan")
    loss, bad = _softmax_xent(grad, logits, labels)
    if bad >= 0:
        raise ValueError(f"labels must be in [0, {logits.shape[1]}); received a label {labels[bad]}")
    return float(loss)


# ----------------------------------------------------------------------------- fused forward epilogues
def conv2d_bias_act_forward(y, x, w, b, col, act, alpha, sh, sw, pt, pl, dh, dw):
    """``y = f(conv(x, w) + b)`` (the two Numba kernels in sequence)."""
    conv2d_forward(y, x, w, col, sh, sw, pt, pl, dh, dw)
    y2 = y.reshape(-1, y.shape[-1])
    bias_act_forward(y2, y2, b, act, alpha)


def dense_bias_act_forward(y, x, w, b, act, alpha):
    """``y = f(x @ w + b)`` (BLAS product, then the Numba bias+activation kernel)."""
    np.dot(x, w, out=y)
    bias_act_forward(y, y, b, act, alpha)
