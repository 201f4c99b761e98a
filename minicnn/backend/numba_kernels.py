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
Shallow products (``K = KH*KW*C < 32``, a first layer on 1-3 channels) are a
plain loop instead of BLAS, and the bias/activation epilogue runs per sample
while its output is in cache. The weight gradient sums fixed batch groups in
order: bit-identical for any thread count. Where ``np.dot`` cannot express a
call (beta = 1, a block of rows of a larger matrix), kernels call Numba's own
BLAS entry point ``numba_xxgemm`` (SciPy's BLAS, as ``np.dot``).
"""

import numba
import numpy as np

from .environment import configure_openmp_waiting

configure_openmp_waiting()   # before Numba's "omp" layer loads libgomp

from llvmlite import ir as llvm_ir  # noqa: E402
from numba import prange  # noqa: E402
from numba.core import types as nb_types  # noqa: E402
from numba.extending import intrinsic, overload  # noqa: E402

from .activation_codes import LEAKY_RELU, RELU, SIGMOID, TANH  # noqa: E402 (anything else: identity)
from .augment_numba import augment_batch  # noqa: F401,E402 (kernel of this backend)
from .depthwise_numba import (  # noqa: F401,E402 (kernels of this backend)
    depthwise_conv2d_backward_input, depthwise_conv2d_backward_weight, depthwise_conv2d_forward)
from .numba_hash import counter_hash  # noqa: E402
from .jit import jit  # noqa: E402
from . import tuning as _tuning  # noqa: E402
from .tuning import DB_BLOCK_ROWS, DW_GROUPS  # noqa: E402

NAME = "numba"
_ROWS_PER_CHUNK = DB_BLOCK_ROWS  # fixed db-reduction chunk: the sum order never depends on thread count


# ----------------------------------------------------------------------------- conv
@jit()
def _im2col_rows(col, x, KH, KW, oh0, oh1, Wo, sh, sw, pt, pl, dh, dw):
    """im2col of output rows ``oh0 <= oh < oh1`` of one sample into ``col ((oh1-oh0)*Wo, KH*KW*C)``.

    One channel: tap by tap, each tap's in-image output columns one range (kernels/_im2col.pxi; the
    per-pixel loop measured 4.5 ns per value there). More channels: per pixel, channel loop innermost.
    """
    H, W, C = x.shape
    if C == 1:
        for oh in range(oh0, oh1):
            r = (oh - oh0) * Wo
            for i in range(KH):
                ih = oh * sh - pt + i * dh
                if ih < 0 or ih >= H:
                    for ow in range(Wo):
                        for j in range(KW):
                            col[r + ow, i * KW + j] = 0
                    continue
                for j in range(KW):
                    t = i * KW + j
                    a = j * dw - pl                     # input column iw = ow*sw + a
                    lo = 0 if a >= 0 else (-a + sw - 1) // sw
                    hi = 0 if W - 1 - a < 0 else (W - 1 - a) // sw + 1
                    lo = min(lo, Wo)
                    hi = max(min(hi, Wo), lo)
                    for ow in range(lo):
                        col[r + ow, t] = 0
                    for ow in range(lo, hi):
                        col[r + ow, t] = x[ih, ow * sw + a, 0]
                    for ow in range(hi, Wo):
                        col[r + ow, t] = 0
        return
    for oh in range(oh0, oh1):
        for ow in range(Wo):
            p = (oh - oh0) * Wo + ow
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


#: Below this inner size ``K = KH*KW*C`` the forward product is a plain loop instead of BLAS (as
#: ``SMALL_K`` of kernels/conv.pyx): on a shallow K (a first layer on 1-channel images, K = 9) sgemm is
#: mostly call and packing overhead.
_SMALL_K = 32


@jit()
def _small_matmul(y, col, w2):
    """``y (P, F) = col (P, K) @ w2 (K, F)``, each output summed over k in order, row by row in a scratch row
    allocated here (LLVM then knows it aliases nothing).

    Measured (MNIST conv1, 128 x 676 x 9 x 32, one thread, product alone): 2.4 ms accumulating in
    ``y``'s row, 1.9 ms in a scratch row; eight scalar accumulators per filter block (4.2 ms), three
    taps per pass and flat 1-D indexing (numba's negative-index wrap-around blocks vectorization) were
    slower.
    """
    P, K = col.shape
    F = w2.shape[1]
    acc = np.empty(F, dtype=y.dtype)
    for p in range(P):
        a = col[p, 0]
        for f in range(F):
            acc[f] = a * w2[0, f]
        for k in range(1, K):
            a = col[p, k]
            for f in range(F):
                acc[f] += a * w2[k, f]
        for f in range(F):
            y[p, f] = acc[f]


@jit(parallel=True)
def _conv(y, x, w, b, col, act, alpha, epilogue, sh, sw, pt, pl, dh, dw):
    """Per sample (``prange``): im2col into ``col[n]``, product, and with ``epilogue`` ``f(. + b)`` in cache."""
    N, Ho, Wo, F = y.shape
    KH, KW, C, _ = w.shape
    K = KH * KW * C
    w2 = w.reshape((K, F))
    for n in prange(N):
        yn = y[n].reshape((Ho * Wo, F))
        _im2col_rows(col[n], x[n], KH, KW, 0, Ho, Wo, sh, sw, pt, pl, dh, dw)
        if K < _SMALL_K:
            _small_matmul(yn, col[n], w2)
        else:
            np.dot(col[n], w2, yn)
        if epilogue:
            _bias_act_rows(yn, yn, b, act, alpha, 0, Ho * Wo)


def conv2d_forward(y, x, w, col, sh, sw, pt, pl, dh, dw):
    """``y = conv(x, w)`` (no bias): per sample, im2col into ``col[n]`` and one product, in ``prange``."""
    if y.size == 0:
        return
    if w.shape[0] * w.shape[1] * w.shape[2] == 0:
        y[...] = 0
        return
    _conv(y, x, w, w[0, 0, 0], col, 0, 0.0, False, sh, sw, pt, pl, dh, dw)


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
@jit()
def _maxpool_one(y, argmax, x, kh, kw, sh, sw, pt, pl):
    """Max-pool one ``(H, W, C)`` sample into ``(Ho, Wo, C)`` values and winners (``kernels/pool.pyx``).

    Each window starts from its first tap; every other tap updates the window's channel rows (1-D views)
    by selects, the winner by a bit mask: no branch per channel, so the channel loop vectorizes. Measured
    on the MNIST max-pool (128, 24x24x64, one thread): 10.1 ms with a branch per element, 4.2 ms with
    the views and a select for the winner, 2.1 ms with the mask (Cython's: 2.3 ms).
    """
    H, W, C = x.shape
    Ho, Wo = y.shape[0], y.shape[1]
    ninf = x.dtype.type(-np.inf)
    for oh in range(Ho):
        for ow in range(Wo):
            yr = y[oh, ow]
            ar = argmax[oh, ow]
            ih = oh * sh - pt
            iw = ow * sw - pl
            pos = ih * W + iw
            if 0 <= ih < H and 0 <= iw < W:
                xr = x[ih, iw]
                for c in range(C):
                    yr[c] = xr[c]
                    ar[c] = pos
            else:
                for c in range(C):
                    yr[c] = ninf
                    ar[c] = pos
            for i in range(kh):
                ih = oh * sh - pt + i
                if ih < 0 or ih >= H:
                    continue
                for j in range(kw):
                    iw = ow * sw - pl + j
                    if (i == 0 and j == 0) or iw < 0 or iw >= W:
                        continue
                    pos = ih * W + iw
                    xr = x[ih, iw]
                    for c in range(C):
                        v = xr[c]
                        best = yr[c]
                        # strict '>' keeps the first maximum; a NaN wins and then stays
                        take = (v > best) | ((v != v) & (best == best))
                        yr[c] = v if take else best
                        mask = -np.int64(take)
                        ar[c] = ar[c] ^ ((ar[c] ^ pos) & mask)


@jit(parallel=True)
def maxpool2d_forward(y, argmax, x, kh, kw, sh, sw, pt, pl):
    """Max over each window (padding counts as -inf); ``argmax`` holds ``h * W + w``.

    Ties keep the first maximum in row-major window order and a NaN wins, as
    ``np.argmax`` does.
    """
    for n in prange(x.shape[0]):
        _maxpool_one(y[n], argmax[n], x[n], kh, kw, sh, sw, pt, pl)


@jit(parallel=True)
def maxpool2d_backward(dx, dy, argmax):
    """Route each output gradient to its window's winner (overlaps accumulate).

    Flat per sample: winner ``a`` of channel ``c`` is element ``a * C + c`` (no division per element).
    """
    N, H, W, C = dx.shape
    Q = dy.shape[1] * dy.shape[2]
    HW = H * W
    for n in prange(N):
        dxn = dx[n].reshape(HW * C)
        dyn = dy[n].reshape(Q * C)
        amn = argmax[n].reshape(Q * C)
        dxn[:] = 0
        for q in range(Q):
            for c in range(C):
                a = amn[q * C + c]
                if 0 <= a < HW:          # a window made only of padding has no winner
                    dxn[a * C + c] += dyn[q * C + c]


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
def _keep(i, key0, key1, threshold):
    """Mask bit of element ``i``: ``mix32(mix32(i ^ key0) ^ key1) < threshold``."""
    return counter_hash(i, key0, key1) < threshold


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
@jit()
def _bias_act_row(y, m, b, act, alpha):
    """``y[m] = f(y[m] + b)`` in place on a row of an ``(M, C)`` array; the branch outside the channel loop.

    In place on purpose: with a separate input row that is the same memory (the layers' ``y = f(y + b)``)
    LLVM's run-time overlap check sends the loop to its scalar version (measured 2.5 ms against ~1 ms
    for the MNIST conv1 output).
    """
    C = y.shape[1]
    one = y.dtype.type(1)
    zero = y.dtype.type(0)
    a = y.dtype.type(alpha)
    if act == RELU:
        for c in range(C):
            z = y[m, c] + b[c]
            y[m, c] = z if z > zero else zero
    elif act == LEAKY_RELU:
        for c in range(C):
            z = y[m, c] + b[c]
            y[m, c] = z if z > zero else z * a
    elif act == TANH:
        for c in range(C):
            y[m, c] = np.tanh(y[m, c] + b[c])
    elif act == SIGMOID:
        for c in range(C):
            y[m, c] = one / (one + np.exp(-(y[m, c] + b[c])))
    else:
        for c in range(C):
            y[m, c] = y[m, c] + b[c]


@jit()
def _bias_act_rows(y, x, b, act, alpha, m0, m1):
    """``y[m] = f(x[m] + b)`` for rows ``m0 <= m < m1`` of ``(M, C)`` arrays (``y`` may alias ``x``)."""
    if y.ctypes.data != x.ctypes.data:
        for m in range(m0, m1):
            for c in range(x.shape[1]):
                y[m, c] = x[m, c]
    for m in range(m0, m1):
        _bias_act_row(y, m, b, act, alpha)


@jit(parallel=True)
def bias_act_forward(y, x, b, act, alpha):
    """``y = f(x + b)`` on ``(M, C)`` arrays (``y`` may alias ``x``), rows in ``prange``."""
    for m in prange(x.shape[0]):
        _bias_act_rows(y, x, b, act, alpha, m, m + 1)


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
#: Fewest output rows per thread's block of a dense product (``MIN_BLOCK_ROWS`` of kernels/gemm.pyx).
_MIN_BLOCK_ROWS = 32


@jit(parallel=True)
def _matmul_blocks(c, a, b, trans_a, trans_b, G, bias, act, alpha, epilogue):
    """``c = op(a) @ op(b)`` as ``G`` blocks of output rows in ``prange``, one single-threaded BLAS gemm each.

    Row-major ``c`` is column-major ``c^T = op(b)^T @ op(a)^T``: nothing is copied or transposed (gemm.pyx).
    """
    M, N = c.shape
    K = a.shape[0] if trans_a else a.shape[1]
    lda, ldb = a.shape[1], b.shape[1]
    kind = np.int8(115) if c.itemsize == 4 else np.int8(100)   # s(gemm) or d(gemm)
    ta = np.int8(116) if trans_a else np.int8(110)
    tb = np.int8(116) if trans_b else np.int8(110)
    for g in prange(G):
        m0, m1 = g * M // G, (g + 1) * M // G
        scal = np.empty(2, dtype=c.dtype)
        scal[0] = 1
        scal[1] = 0
        ablock = a[:, m0:] if trans_a else a[m0:]
        _XXGEMM(kind, tb, ta, N, m1 - m0, K, _address(scal[0:1]), _address(b), ldb, _address(ablock), lda,
                _address(scal[1:2]), _address(c[m0:]), N)
        if epilogue:
            _bias_act_rows(c, c, bias, act, alpha, m0, m1)


def _blocks(M, N, K):
    """Row blocks of a dense product: one per thread when the work is worth a parallel region."""
    if numba.config.DISABLE_JIT or M * N * K // 16 < _tuning.PARALLEL_WORK_THRESHOLD:
        return 1
    return max(1, min(numba.get_num_threads(), M // _MIN_BLOCK_ROWS))


def matmul(c, a, b, trans_a, trans_b):
    """``c = op(a) @ op(b)``: one BLAS call from Python for a one-thread team (a jitted ``np.dot`` on a
    transposed view measured 5-12 ms for a 64x256x64 product; this is ~20 us); with more threads, one
    single-threaded gemm per thread's block of output rows (BLAS is held at one thread inside
    ``thread_limits``: a single call would use one core)."""
    K = a.shape[0] if trans_a else a.shape[1]
    G = _blocks(c.shape[0], c.shape[1], K)
    if G == 1 or K == 0:
        np.dot(a.T if trans_a else a, b.T if trans_b else b, out=c)
    else:
        _matmul_blocks(c, a, b, bool(trans_a), bool(trans_b), G, c[0], 0, 0.0, False)


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
    """``y = f(conv(x, w) + b)``: the conv and the bias+activation epilogue in one pass per sample."""
    if y.size == 0:
        return
    if w.shape[0] * w.shape[1] * w.shape[2] == 0:
        y[...] = 0
        y2 = y.reshape(-1, y.shape[-1])
        bias_act_forward(y2, y2, b, act, alpha)
        return
    _conv(y, x, w, b, col, act, alpha, True, sh, sw, pt, pl, dh, dw)


def depthwise_conv2d_bias_act_forward(y, x, w, b, act, alpha, sh, sw, pt, pl, dh, dw):
    """``y = f(depthwise_conv(x, w) + b)``: :func:`depthwise_conv2d_forward` then :func:`bias_act_forward`."""
    depthwise_conv2d_forward(y, x, w, sh, sw, pt, pl, dh, dw)
    if y.size:
        y2 = y.reshape(-1, y.shape[-1])
        bias_act_forward(y2, y2, b, act, alpha)


def dense_bias_act_forward(y, x, w, b, act, alpha):
    """``y = f(x @ w + b)``: BLAS product and epilogue per thread's block of rows (see :func:`matmul`)."""
    G = _blocks(y.shape[0], y.shape[1], x.shape[1])
    if G == 1 or x.shape[1] == 0:
        np.dot(x, w, out=y)
        bias_act_forward(y, y, b, act, alpha)
    else:
        _matmul_blocks(y, x, w, False, False, G, b, act, alpha, True)


# ----------------------------------------------------------------------------- direct conv + 2x2 max-pool
@jit(parallel=True)
def _direct_conv_maxpool2(y, x, w, sh, sw, pt, pl, dh, dw):
    N, H, W, C = x.shape
    KH, KW, _, F = w.shape
    Hp, Wp = y.shape[1], y.shape[2]
    for n in prange(N):
        acc = np.empty(F, dtype=x.dtype)
        for pi in range(Hp):
            for pj in range(Wp):
                for f in range(F):
                    y[n, pi, pj, f] = -np.inf
                for q in range(4):
                    oh = 2 * pi + q // 2
                    ow = 2 * pj + q % 2
                    acc[:] = 0
                    for i in range(KH):
                        ih = oh * sh - pt + i * dh
                        if ih < 0 or ih >= H:
                            continue
                        for j in range(KW):
                            iw = ow * sw - pl + j * dw
                            if iw < 0 or iw >= W:
                                continue
                            for c in range(C):
                                v = x[n, ih, iw, c]
                                for f in range(F):
                                    acc[f] += v * w[i, j, c, f]
                    for f in range(F):   # strict '>' keeps the first maximum; a NaN wins and then stays
                        if acc[f] > y[n, pi, pj, f] or (acc[f] != acc[f] and y[n, pi, pj, f] == y[n, pi, pj, f]):
                            y[n, pi, pj, f] = acc[f]


def conv2d_direct_bias_act_maxpool2_forward(y, x, w, b, act, alpha, sh, sw, pt, pl, dh, dw):
    """``y = maxpool_2x2/2(f(conv(x, w) + b))`` by a direct loop: no im2col columns, no conv output."""
    if y.size == 0:
        return
    _direct_conv_maxpool2(y, x, w, sh, sw, pt, pl, dh, dw)
    y2 = y.reshape(-1, y.shape[-1])
    bias_act_forward(y2, y2, b, act, alpha)


# ----------------------------------------------------------------------------- Winograd F(2x2, 3x3)
# The Cython kernel's scheme (kernels/winograd.pyx) in Numba: per sample (prange), blocks of T tiles; per tile
# the 4x4xC input patch (zero outside the image) is transformed V = B^T d B with the channel loop innermost
# (contiguous, vectorized), the 16 products M_k (T, F) = V_k (T, C) @ U_k (C, F) go to one-thread BLAS, and
# the output transform Y = A^T M A writes the 2x2xF tile (or its 2x2 max at the fused max-pool). Each
# sample is independent: the same bits for any thread count.
_WINOGRAD_TILES = 36   # tiles per block, as winograd_workspace_length


@jit()
def _winograd_weights(U, w):
    """``U (16, C, F) = G g G^T`` for every (channel, filter) of ``w (3, 3, C, F)``."""
    C, F = w.shape[2], w.shape[3]
    half = w.dtype.type(0.5)
    for c in range(C):
        for f in range(F):
            t = np.empty((4, 3), dtype=w.dtype)   # G g: rows of G times g
            for s in range(3):
                g0, g1, g2 = w[0, s, c, f], w[1, s, c, f], w[2, s, c, f]
                t[0, s] = g0
                t[1, s] = (g0 + g1 + g2) * half
                t[2, s] = (g0 - g1 + g2) * half
                t[3, s] = g2
            for r in range(4):
                g0, g1, g2 = t[r, 0], t[r, 1], t[r, 2]
                U[4 * r + 0, c, f] = g0
                U[4 * r + 1, c, f] = (g0 + g1 + g2) * half
                U[4 * r + 2, c, f] = (g0 - g1 + g2) * half
                U[4 * r + 3, c, f] = g2


@jit()
def _winograd_input_tile(V, t, x, d, r0, s0):
    """``V[:, t, :]`` = B^T d B of the 4x4xC patch of ``x (H, W, C)`` at (r0, s0) (zero outside).

    An interior patch is read from ``x`` in place; a border patch is first copied into the
    zero-extended ``d (4, 4, C)`` (kernels/winograd.pyx). Scalar locals and the channel loop
    innermost (contiguous loads and stores): no temporary arrays.
    """
    H, W, C = x.shape
    if 0 <= r0 and r0 + 4 <= H and 0 <= s0 and s0 + 4 <= W:
        _winograd_input_tf(V, t, x, r0, s0)
        return
    for r in range(4):
        ih = r0 + r
        for s in range(4):
            iw = s0 + s
            if 0 <= ih < H and 0 <= iw < W:
                for c in range(C):
                    d[r, s, c] = x[ih, iw, c]
            else:
                for c in range(C):
                    d[r, s, c] = 0
    _winograd_input_tf(V, t, d, 0, 0)


@jit()
def _winograd_input_tf(V, t, p, r0, s0):
    """``V[:, t, :]`` = B^T d B of the 4x4xC patch ``d = p[r0:r0+4, s0:s0+4]`` (inside ``p``)."""
    C = p.shape[2]
    for c in range(C):
        # e = B^T d (rows), column by column
        e00 = p[r0 + 0, s0 + 0, c] - p[r0 + 2, s0 + 0, c]
        e01 = p[r0 + 0, s0 + 1, c] - p[r0 + 2, s0 + 1, c]
        e02 = p[r0 + 0, s0 + 2, c] - p[r0 + 2, s0 + 2, c]
        e03 = p[r0 + 0, s0 + 3, c] - p[r0 + 2, s0 + 3, c]
        e10 = p[r0 + 1, s0 + 0, c] + p[r0 + 2, s0 + 0, c]
        e11 = p[r0 + 1, s0 + 1, c] + p[r0 + 2, s0 + 1, c]
        e12 = p[r0 + 1, s0 + 2, c] + p[r0 + 2, s0 + 2, c]
        e13 = p[r0 + 1, s0 + 3, c] + p[r0 + 2, s0 + 3, c]
        e20 = p[r0 + 2, s0 + 0, c] - p[r0 + 1, s0 + 0, c]
        e21 = p[r0 + 2, s0 + 1, c] - p[r0 + 1, s0 + 1, c]
        e22 = p[r0 + 2, s0 + 2, c] - p[r0 + 1, s0 + 2, c]
        e23 = p[r0 + 2, s0 + 3, c] - p[r0 + 1, s0 + 3, c]
        e30 = p[r0 + 1, s0 + 0, c] - p[r0 + 3, s0 + 0, c]
        e31 = p[r0 + 1, s0 + 1, c] - p[r0 + 3, s0 + 1, c]
        e32 = p[r0 + 1, s0 + 2, c] - p[r0 + 3, s0 + 2, c]
        e33 = p[r0 + 1, s0 + 3, c] - p[r0 + 3, s0 + 3, c]
        # V = e B (columns)
        V[0, t, c] = e00 - e02
        V[1, t, c] = e01 + e02
        V[2, t, c] = e02 - e01
        V[3, t, c] = e01 - e03
        V[4, t, c] = e10 - e12
        V[5, t, c] = e11 + e12
        V[6, t, c] = e12 - e11
        V[7, t, c] = e11 - e13
        V[8, t, c] = e20 - e22
        V[9, t, c] = e21 + e22
        V[10, t, c] = e22 - e21
        V[11, t, c] = e21 - e23
        V[12, t, c] = e30 - e32
        V[13, t, c] = e31 + e32
        V[14, t, c] = e32 - e31
        V[15, t, c] = e31 - e33


@jit()
def _winograd_output_tile(o, M, t):
    """``o (4, F)``: the 2x2 output tile A^T M A of tile ``t`` (``M (16, T, F)``), row-major pixels."""
    F = M.shape[2]
    for f in range(F):
        m00 = M[0, t, f] + M[4, t, f] + M[8, t, f]
        m01 = M[1, t, f] + M[5, t, f] + M[9, t, f]
        m02 = M[2, t, f] + M[6, t, f] + M[10, t, f]
        m03 = M[3, t, f] + M[7, t, f] + M[11, t, f]
        m10 = M[4, t, f] - M[8, t, f] - M[12, t, f]
        m11 = M[5, t, f] - M[9, t, f] - M[13, t, f]
        m12 = M[6, t, f] - M[10, t, f] - M[14, t, f]
        m13 = M[7, t, f] - M[11, t, f] - M[15, t, f]
        o[0, f] = m00 + m01 + m02
        o[1, f] = m01 - m02 - m03
        o[2, f] = m10 + m11 + m12
        o[3, f] = m11 - m12 - m13


@jit(parallel=True)
def _winograd(y, x, U, b, act, alpha, pt, pl, Ho, Wo, pooled, S):
    """``f(conv(x) + b)`` of every sample into ``y`` (``(N, Ho, Wo, F)``, or its 2x2 max-pool when ``pooled``).

    The batch is cut into ``S`` runs of samples (one per thread), each with its own scratch.
    """
    N, C = x.shape[0], x.shape[3]
    F = U.shape[2]
    T = min(_WINOGRAD_TILES, ((Ho + 1) // 2) * ((Wo + 1) // 2))
    for s in prange(S):
        V = np.empty((16, T, C), dtype=x.dtype)
        M = np.empty((16, T, F), dtype=x.dtype)
        d = np.empty((4, 4, C), dtype=x.dtype)
        o = np.empty((4, F), dtype=x.dtype)
        for n in range(s * N // S, (s + 1) * N // S):
            _winograd_sample(y, x, U, b, act, alpha, pt, pl, Ho, Wo, pooled, n, V, M, d, o, T)


@jit()
def _winograd_sample(y, x, U, b, act, alpha, pt, pl, Ho, Wo, pooled, n, V, M, d, o, T):
    """Sample ``n`` of :func:`_winograd` with the scratch ``V, M, d, o``.

    The bias and activation are applied to each output tile while it is in ``o`` (as the Cython kernel):
    a separate pass over the MNIST conv2 output (19 MB) cost a memory round trip.
    """
    F = U.shape[2]
    tw = (Wo + 1) // 2
    tiles = ((Ho + 1) // 2) * tw
    for t0 in range(0, tiles, T):
        nt = min(T, tiles - t0)
        for t in range(nt):
            ti, tj = (t0 + t) // tw, (t0 + t) % tw
            _winograd_input_tile(V, t, x[n], d, 2 * ti - pt, 2 * tj - pl)
        for k in range(16):
            np.dot(V[k], U[k], M[k])
        for t in range(nt):
            ti, tj = (t0 + t) // tw, (t0 + t) % tw
            if pooled and (ti >= Ho // 2 or tj >= Wo // 2):
                continue
            _winograd_output_tile(o, M, t)
            if pooled:
                for f in range(F):   # strict '>' keeps the first maximum; a NaN wins and stays
                    best = o[0, f]
                    for q in range(1, 4):
                        v = o[q, f]
                        if v > best or (v != v and best == best):
                            best = v
                    o[0, f] = best
                _bias_act_row(o, 0, b, act, alpha)
                for f in range(F):
                    y[n, ti, tj, f] = o[0, f]
            else:
                for q in range(4):
                    _bias_act_row(o, q, b, act, alpha)
                    oh, ow = 2 * ti + q // 2, 2 * tj + q % 2
                    if oh < Ho and ow < Wo:
                        for f in range(F):
                            y[n, oh, ow, f] = o[q, f]


def winograd_workspace_length(H, W, C, F, Ho, Wo):
    """Row length of the Winograd workspace (the reference's; this backend allocates its own scratch)."""
    from .reference import winograd_workspace_length as length

    return length(H, W, C, F, Ho, Wo)


def _winograd_call(y, x, w, b, act, alpha, pt, pl, Ho, Wo, pooled):
    if pt < 0 or pl < 0:
        raise ValueError(f"padding must be >= 0; received pt={pt}, pl={pl}")
    if y.size == 0:
        return
    C, F = w.shape[2], w.shape[3]
    U = np.empty((16, C, F), dtype=x.dtype)
    _winograd_weights(U, w)
    if C == 0:
        y[...] = 0
        y2 = y.reshape(-1, F)
        bias_act_forward(y2, y2, b, act, alpha)
    else:
        _winograd(y, x, U, b, act, alpha, pt, pl, Ho, Wo, pooled, max(1, min(x.shape[0], numba.get_num_threads())))


def conv2d_winograd_bias_act_forward(y, x, w, b, work, act, alpha, pt, pl):
    """``y = f(conv(x, w) + b)``, 3x3 stride 1, by Winograd F(2x2, 3x3) (``work`` is not used)."""
    _winograd_call(y, x, w, b, act, alpha, pt, pl, y.shape[1], y.shape[2], False)


def conv2d_winograd_bias_act_maxpool2_forward(y, x, w, b, work, act, alpha, pt, pl, Ho, Wo):
    """``y = maxpool_2x2/2(f(conv(x, w) + b))``: the Winograd conv's tiles reduced to their max (``work`` unused)."""
    if Ho < 2 or Wo < 2:
        raise ValueError(f"conv output size must be >= 2 for a 2x2 max-pool; received Ho={Ho}, Wo={Wo}")
    N, F = x.shape[0], w.shape[3]
    if y.shape != (N, Ho // 2, Wo // 2, F):
        raise ValueError(f"y must be (N, Ho // 2, Wo // 2, F) = {(N, Ho // 2, Wo // 2, F)} for "
                         f"Ho={Ho}, Wo={Wo}; received shape {y.shape}")
    _winograd_call(y, x, w, b, act, alpha, pt, pl, Ho, Wo, True)


# ----------------------------------------------------------------------------- conv weight gradient from the input
# The Cython kernel's scheme (kernels/conv_wgrad.pyx): fixed groups of samples, each group's output rows taken
# in blocks of R rows (tuning.WGRAD_BLOCK_MNK: OpenBLAS's unpacked small-matrix path), im2col of a block into
# the run's slot of ``work``, then ``part[g] += col_block.T @ dy_block`` by one BLAS call with beta = 1 (np.dot
# has no beta). Measured on the MNIST conv2 (128, 26x26x32 -> 64, interleaved with the Cython kernel, medians):
# numba / cython time 1.00-1.04 at 1 and 2 threads, where one whole-sample np.dot per sample (k = 576, the
# packed sgemm path) and a partial-sum add made the layer's backward 0.72x the Cython one's speed.
def _gemm_acc(part, dyb, colb, scal):
    """``part (K, F) = colb.T @ dyb + scal[1] * part`` (``scal[0]`` = 1): the plain-Python twin.

    ``part``, ``dyb (rows, F)`` and ``colb (rows, K)`` are C-contiguous 2-D arrays. Runs only with
    ``NUMBA_DISABLE_JIT=1``; jitted callers get the BLAS call of :func:`_gemm_acc_blas`.
    """
    prod = np.dot(colb.T, dyb)
    if scal[1] == 0:
        part[...] = prod
    else:
        part += prod


@intrinsic
def _address(typingctx, arr):
    """Data pointer of an array (view) as ``void *``."""
    def codegen(context, builder, signature, args):
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        return builder.bitcast(ary.data, llvm_ir.IntType(8).as_pointer())
    return nb_types.voidptr(arr), codegen


# Numba's own BLAS entry point (numba/_helperlib.c, column-major ?gemm of SciPy's cython_blas, looked up
# by name: cacheable, unlike a ctypes pointer).
_XXGEMM = nb_types.ExternalFunction("numba_xxgemm", nb_types.intc(
    nb_types.char, nb_types.char, nb_types.char, nb_types.intp, nb_types.intp, nb_types.intp,
    nb_types.voidptr, nb_types.voidptr, nb_types.intp, nb_types.voidptr, nb_types.intp,
    nb_types.voidptr, nb_types.voidptr, nb_types.intp))


@overload(_gemm_acc)
def _gemm_acc_blas(part, dyb, colb, scal):
    kind = ord("s") if part.dtype == nb_types.float32 else ord("d")

    def impl(part, dyb, colb, scal):
        # column-major: part^T (F, K) = dyb^T (F, rows) @ colb (rows, K) + beta * part^T
        rows, F = dyb.shape
        K = colb.shape[1]
        _XXGEMM(np.int8(kind), np.int8(110), np.int8(116), F, K, rows, _address(scal[0:1]), _address(dyb), F,
                _address(colb), K, _address(scal[1:2]), _address(part), F)
    return impl


@jit(parallel=True)
def _wgrad_from_input(dw, dy, x, work, S, R, runs, sh, sw, pt, pl, dh, dwl):
    N, Ho, Wo, F = dy.shape
    KH, KW, C, _ = dw.shape
    K = KH * KW * C
    KF = K * F
    G = min(_WEIGHT_GROUPS, N)
    dy2 = dy.reshape((N * Ho * Wo, F))
    for s in prange(runs):                               # run s: groups s, s + runs, ... with slot s
        scal = np.empty(2, dtype=dw.dtype)
        scal[0] = 1
        slot = work[G * KF + s * S:G * KF + (s + 1) * S]
        for g in range(s, G, runs):
            part = work[g * KF:(g + 1) * KF].reshape((K, F))
            n0, n1 = g * N // G, (g + 1) * N // G
            scal[1] = 0
            r0 = n0 * Ho
            while r0 < n1 * Ho:                          # blocks of R output rows, spanning samples
                r1 = min(r0 + R, n1 * Ho)
                r = r0
                while r < r1:
                    n = r // Ho
                    oh = r - n * Ho
                    oh1 = min(oh + (r1 - r), Ho)
                    lo = (r - r0) * Wo * K
                    _im2col_rows(slot[lo:lo + (oh1 - oh) * Wo * K].reshape(((oh1 - oh) * Wo, K)), x[n],
                                 KH, KW, oh, oh1, Wo, sh, sw, pt, pl, dh, dwl)
                    r += oh1 - oh
                rows = (r1 - r0) * Wo
                _gemm_acc(part, dy2[r0 * Wo:r1 * Wo], slot[:rows * K].reshape((rows, K)), scal)
                scal[1] = 1
                r0 = r1
    dw2 = dw.reshape(KF)
    for e in prange(KF):                                 # ((part[0] + part[1]) + ...) + part[G-1]
        acc = work[e]
        for g in range(1, G):
            acc += work[g * KF + e]
        dw2[e] = acc


def conv_wgrad_workspace_length(N, H, W, C, KH, KW, F, Ho, Wo, slots):
    """Length of the weight-gradient workspace: the Cython kernel's layout (``tuning``), which this one uses."""
    return _tuning.conv_wgrad_workspace_length(N, H, W, C, KH, KW, F, Ho, Wo, slots)


def conv2d_backward_weight_from_input(dw, dy, x, work, sh, sw, pt, pl, dh, dwl):
    """Weight gradient of a conv rebuilt from its input ``x`` (no stored im2col columns).

    ``work`` is laid out as the Cython kernel's (``[part (G*K*F) | slot 0 | slot 1 | ...]``, see
    ``tuning.conv_wgrad_workspace_length``); at most as many threads run as it has slots. Same bits for
    any thread count and slot count.
    """
    N, H, W, C = x.shape
    KH, KW, _, F = dw.shape
    Ho, Wo = dy.shape[1], dy.shape[2]
    need = conv_wgrad_workspace_length(N, H, W, C, KH, KW, F, Ho, Wo, 1)
    if work.ndim != 1 or work.shape[0] < need:
        raise ValueError(f"work must have length >= {need} for these shapes (one slot); received shape {work.shape}")
    if dy.shape[0] == 0 or dw.size == 0 or Ho * Wo == 0:
        dw[...] = 0
        return
    K = KH * KW * C
    G = min(_WEIGHT_GROUPS, N)
    S = need - G * K * F
    slots = (work.shape[0] - G * K * F) // S if S > 0 else 1
    runs = max(1, min(slots, G, numba.get_num_threads()))
    _wgrad_from_input(dw, dy, x, work, max(S, 1), _tuning._wgrad_block_rows(Wo, K, F), runs,
                      sh, sw, pt, pl, dh, dwl)
