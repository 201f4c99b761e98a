"""int8 inference references (the twins of ``kernels/qgemm.pyx``): quantize, pad and the u8 x s8 products.

Shape letters: M rows (samples x pixels), K inner size, Kp = K padded to a multiple of 4 (:data:`K_MULTIPLE`),
N output columns, Np = N padded to a multiple of 16 (:data:`N_MULTIPLE`); images ``x (N, H, W, C)`` (here N is
the batch), windows ``KH, KW``, output ``Ho, Wo``.

Activations are uint8 with a zero point ``z``: ``q = clip(rint(x * inv_scale) + z, 0, 255)`` (the affine scheme
of Jacob et al. 2018, "Quantization and Training of Neural Networks for Efficient Integer-Arithmetic-Only
Inference"); weights are int8, symmetric per output column, packed ``(Kp/4, Np, 4)`` (:func:`pack_int8`) so
that the AVX512-VNNI product reads 4 consecutive ``k`` of 16 columns in one load. The product is exact in
int32; ``zcorr[n] = z * sum_k w[k, n]`` removes the zero point (activations shifted into uint8, corrected
by the weights' column sums).
"""

import numpy as np

from ._im2col import _pad_input, _window

__all__ = ["quantize_u8", "quantize_pad_u8", "quantize_pad_rows4_u8", "qgemm_u8s8", "qgemm_u8s8_bias_act", "qconv_u8s8_bias_act",
           "qgemm_u8s8_requant", "qconv_u8s8_requant"]

#: Kp is a multiple of this (one VPDPBUSD lane sums 4 products), Np of :data:`N_MULTIPLE` (one 512-bit vector).
K_MULTIPLE, N_MULTIPLE = 4, 16


def padded(size, multiple):
    """``size`` rounded up to a multiple of ``multiple``.

    Examples
    --------
    >>> padded(9, 4), padded(16, 16), padded(10, 16)
    (12, 16, 16)
    """
    return -(-size // multiple) * multiple


def pack_int8(w):
    """Weights ``w (K, N)`` int8 packed ``(Kp/4, Np, 4)``, zeros in the padding: ``packed[k // 4, n, k % 4] = w[k, n]``.

    Examples
    --------
    >>> w = np.arange(6, dtype=np.int8).reshape(3, 2)
    >>> p = pack_int8(w)
    >>> p.shape, bool((unpack_int8(p, 3, 2) == w).all())
    ((1, 16, 4), True)
    """
    K, N = w.shape
    full = np.zeros((padded(K, K_MULTIPLE), padded(N, N_MULTIPLE)), np.int8)
    full[:K, :N] = w
    return np.ascontiguousarray(full.reshape(-1, K_MULTIPLE, full.shape[1]).transpose(0, 2, 1))


def unpack_int8(packed, K, N):
    """The ``(K, N)`` weights of :func:`pack_int8`'s ``packed``."""
    return packed.transpose(0, 2, 1).reshape(-1, packed.shape[1])[:K, :N]


def quantize_u8(q, x, inv_scale, zero_point):
    """``q[:, :K] = clip(rint(x * inv_scale) + zero_point, 0, 255)`` (float32 product, ties to even),
    ``q[:, K:] = zero_point``; ``q (M, Kp)`` uint8, ``x (M, K)`` float32."""
    K = x.shape[1]
    v = np.rint(x * np.float32(inv_scale)) + np.float32(zero_point)
    q[:, :K] = np.clip(v, 0, 255).astype(np.uint8)
    q[:, K:] = zero_point


def quantize_pad_u8(xp, x, inv_scale, zero_point, pt, pl):
    """``xp (N, Hp, Wp, Cp)`` = ``x (N, H, W, C)`` quantized as :func:`quantize_u8` at offset ``(pt, pl)`` in the
    first ``C`` channels, ``zero_point`` everywhere else (a convolution's padding: real zero; channels
    ``C..Cp``, which make the channel count a multiple of 4, meet zero weights)."""
    _, H, W, C = x.shape
    xp[...] = zero_point
    inner = np.empty((x.size // C, C), np.uint8)
    quantize_u8(inner, x.reshape(-1, C), inv_scale, zero_point)
    xp[:, pt:pt + H, pl:pl + W, :C] = inner.reshape(x.shape)


def quantize_pad_rows4_u8(xp, x, inv_scale, zero_point, pt, pl):
    """One-channel ``x (N, H, W, 1)`` quantized and padded as :func:`quantize_pad_u8` into ``P (N, Hp, Wp + 3)``,
    written with each pixel's next 3 beside it: ``xp[n, i, j, c] = P[n, i, j + c]``, ``xp (N, Hp, Wp, 4)`` (a
    kernel row of up to 4 taps is one 4-byte group: a conv reads it as a 1-wide kernel over 4 channels)."""
    N, Hp, Wp, _ = xp.shape
    W = min(x.shape[2], Wp + 3 - pl)   # columns no window reaches are left out
    P = np.empty((N, Hp, Wp + 3, 1), np.uint8)
    quantize_pad_u8(P, np.ascontiguousarray(x[:, :, :W]), inv_scale, zero_point, pt, pl)
    for c in range(4):
        xp[..., c] = P[:, :, c:c + Wp, 0]


def im2col_windows(col, x, pad, Ho, Wo, KH, KW, sh, sw, pt, pl, dh, dw):
    """The windows of ``x (N, H, W, C)`` (any dtype) as rows of ``col (N*Ho*Wo, Kp)``, ``pad`` outside and past
    ``K`` (what the compiled convolutions read in place)."""
    N, _, _, C = x.shape
    K = KH * KW * C
    xp = _pad_input(x, Ho, Wo, KH, KW, sh, sw, pt, pl, dh, dw, fill=pad)
    rows = col.reshape(N, Ho * Wo, -1)
    for i in range(KH):
        for j in range(KW):
            window = _window(Ho, Wo, i, j, sh, sw, dh, dw)
            tap = (i * KW + j) * C
            rows[:, :, tap:tap + C] = xp[:, window[0], window[1], :].reshape(N, Ho * Wo, C)
    col[:, K:] = pad


def qgemm_u8s8(c, a, bp):
    """``c (M, N) = a (M, Kp) @ w`` exactly in int32 (``w`` the unpacked ``bp (Kp/4, Np, 4)``)."""
    M, N = c.shape
    w = unpack_int8(bp, a.shape[1], N).astype(np.float64)
    # float64 products and sums of these integers are exact (every partial sum is below K * 255 * 127 < 2**53),
    # so BLAS gives the exact integer product in any summation order
    c[...] = a.astype(np.float64) @ w


def qgemm_u8s8_bias_act(y, a, bp, zcorr, scale, bias, act):
    """``y = act(float32(a @ w - zcorr) * scale + bias)`` in float32, one rounding per operation; ``act`` 0
    (identity) or 1 (relu)."""
    if act not in (0, 1):
        raise ValueError(f"act must be 0 (identity) or 1 (relu); received act={act!r}")
    c = np.empty(y.shape, np.int32)
    qgemm_u8s8(c, a, bp)
    z = (c - zcorr).astype(np.float32) * scale + bias
    y[...] = np.maximum(z, np.float32(0)) if act else z


def qconv_u8s8_bias_act(y, xp, bp, zcorr, scale, bias, act, Ho, Wo, KH, KW, sh, sw, dh, dw, pool):
    """:func:`qgemm_u8s8_bias_act` of the im2col rows of the padded input ``xp (N, Hp, Wp, C)`` (no padding left
    to add; the compiled kernel reads the windows in place and needs ``C`` a multiple of 4), ``y (N*Ho*Wo, F)``;
    with ``pool`` followed by a 2x2 stride-2 max-pool (floor), ``y (N*(Ho//2)*(Wo//2), F)``."""
    N, F = xp.shape[0], y.shape[1]
    col = np.empty((N * Ho * Wo, KH * KW * xp.shape[3]), np.uint8)
    im2col_windows(col, xp, 0, Ho, Wo, KH, KW, sh, sw, 0, 0, dh, dw)
    full = np.empty((N * Ho * Wo, F), np.float32)
    qgemm_u8s8_bias_act(full, col, bp, zcorr, scale, bias, act)
    y[...] = max_pool2(full, N, Ho, Wo) if pool else full


def qgemm_u8s8_requant(q, a, bp, zcorr, scale, bias, act, inv_scale, zero_point):
    """:func:`qgemm_u8s8_bias_act` quantized as the next layer's input: ``q (M, Kq)`` uint8 is
    :func:`quantize_u8` of its float32 output ``(M, N)``, ``N = len(zcorr) <= Kq`` (the same bits as the two
    steps; the compiled kernel quantizes in its epilogue, no float32 output in memory)."""
    y = np.empty((a.shape[0], len(zcorr)), np.float32)
    qgemm_u8s8_bias_act(y, a, bp, zcorr, scale, bias, act)
    quantize_u8(q, y, inv_scale, zero_point)


def qconv_u8s8_requant(q, xp, bp, zcorr, scale, bias, act, inv_scale, zero_point, pt, pl, Ho, Wo, KH, KW, sh, sw,
                       dh, dw, pool):
    """:func:`qconv_u8s8_bias_act` quantized as the next layer's input: ``q (N, Hq, Wq, Cq)`` uint8 is
    :func:`quantize_pad_u8` of its float32 output ``(N, Ho', Wo', F)`` at offset ``(pt, pl)`` (``Ho', Wo'`` the
    pooled size with ``pool``); with ``(Hq, Wq, Cq) = (Ho', Wo', F)`` these are the rows of a flattened dense
    input."""
    N, F = xp.shape[0], len(zcorr)
    Hy, Wy = (Ho // 2, Wo // 2) if pool else (Ho, Wo)
    y = np.empty((N * Hy * Wy, F), np.float32)
    qconv_u8s8_bias_act(y, xp, bp, zcorr, scale, bias, act, Ho, Wo, KH, KW, sh, sw, dh, dw, pool)
    quantize_pad_u8(q, y.reshape(N, Hy, Wy, F), inv_scale, zero_point, pt, pl)


def max_pool2(rows, N, Ho, Wo):
    """The 2x2 stride-2 max-pool (floor) of conv output rows ``(N*Ho*Wo, F)``, as rows ``(N*(Ho//2)*(Wo//2), F)``."""
    F, Hq, Wq = rows.shape[1], Ho // 2, Wo // 2
    windows = rows.reshape(N, Ho, Wo, F)[:, :2 * Hq, :2 * Wq].reshape(N, Hq, 2, Wq, 2, F)
    return windows.max(axis=(2, 4)).reshape(-1, F)
