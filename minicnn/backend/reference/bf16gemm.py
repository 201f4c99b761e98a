"""bfloat16 inference references (the twins of ``kernels/bf16gemm.pyx``): rounding, padding and the products.

Shape letters: M rows (samples x pixels), K inner size, Kp = K padded to a multiple of 2 (:data:`K_MULTIPLE`),
N output columns, Np = N padded to a multiple of 16; images ``x (N, H, W, C)`` (here N is the batch).

bfloat16 values are held as their uint16 bits (the upper half of a float32), rounded to nearest even. The
product of two bfloat16 values is exact in float32; the reference adds the products in float64 and rounds
once, while AVX512-BF16 (VDPBF16PS) accumulates in float32 pair by pair: the two differ by at most the
float32 rounding of a K-term sum, ``K * 2**-24 * sum_k |a[m, k] * w[k, n]|`` (the bound the tests check).
"""

import numpy as np

from .qgemm import im2col_windows, max_pool2, padded

__all__ = ["to_bf16", "to_bf16_pad", "gemm_bf16_bias_act", "conv_bf16_bias_act"]

#: Kp is a multiple of this (one VDPBF16PS lane sums a pair of products); Np of 16.
K_MULTIPLE, N_MULTIPLE = 2, 16


def bf16_bits(x):
    """The bfloat16 bits (uint16) of float32 ``x``, rounded to nearest even; NaN stays a quiet NaN.

    Examples
    --------
    >>> bf16_bits(np.array([1.0, 1.00390625, 1.01171875, -2.0], np.float32))   # ties go to even
    array([16256, 16256, 16258, 49152], dtype=uint16)
    """
    bits = np.ascontiguousarray(x, np.float32).view(np.uint32)
    rounded = ((bits + np.uint32(0x7FFF) + ((bits >> 16) & 1)) >> 16).astype(np.uint16)
    nan = (bits & np.uint32(0x7FFFFFFF)) > np.uint32(0x7F800000)
    return np.where(nan, ((bits >> 16) | 0x40).astype(np.uint16), rounded)


def bf16_values(bits):
    """The float32 values of bfloat16 ``bits`` (uint16)."""
    return (bits.astype(np.uint32) << 16).view(np.float32)


def pack_bf16(w):
    """Weights ``w (K, N)`` as bfloat16 bits packed ``(Kp/2, Np, 2)``, zeros in the padding."""
    K, N = w.shape
    full = np.zeros((padded(K, K_MULTIPLE), padded(N, N_MULTIPLE)), np.uint16)
    full[:K, :N] = w
    return np.ascontiguousarray(full.reshape(-1, K_MULTIPLE, full.shape[1]).transpose(0, 2, 1))


def to_bf16(q, x):
    """``q[:, :K]`` = :func:`bf16_bits` of ``x (M, K)`` float32, ``q[:, K:] = 0``."""
    K = x.shape[1]
    q[:, :K] = bf16_bits(x)
    q[:, K:] = 0


def to_bf16_pad(xp, x, pt, pl):
    """``xp (N, Hp, Wp, Cp)`` = :func:`bf16_bits` of ``x (N, H, W, C)`` at offset ``(pt, pl)`` in the first ``C``
    channels, 0 (+0.0) everywhere else (a convolution's padding; channels ``C..Cp`` meet zero weights)."""
    _, H, W, C = x.shape
    xp[...] = 0
    xp[:, pt:pt + H, pl:pl + W, :C] = bf16_bits(x)


def gemm_bf16_bias_act(y, a, bp, bias, act):
    """``y = act(a @ w + bias)``: exact products summed in float64, rounded to float32, bias added in float32."""
    if act not in (0, 1):
        raise ValueError(f"act must be 0 (identity) or 1 (relu); received act={act!r}")
    N = y.shape[1]
    w = bp.transpose(0, 2, 1).reshape(-1, bp.shape[1])[:a.shape[1], :N]
    z = (bf16_values(a).astype(np.float64) @ bf16_values(w).astype(np.float64)).astype(np.float32) + bias
    y[...] = np.maximum(z, np.float32(0)) if act else z


def conv_bf16_bias_act(y, xp, bp, bias, act, Ho, Wo, KH, KW, sh, sw, dh, dw, pool):
    """:func:`gemm_bf16_bias_act` of the im2col rows of the padded input ``xp (N, Hp, Wp, C)`` (the compiled
    kernel reads them in place and needs ``C`` even), ``y (N*Ho*Wo, F)``; with ``pool`` followed by a 2x2
    stride-2 max-pool (floor), ``y (N*(Ho//2)*(Wo//2), F)``."""
    N, F = xp.shape[0], y.shape[1]
    col = np.empty((N * Ho * Wo, KH * KW * xp.shape[3]), np.uint16)
    im2col_windows(col, xp, 0, Ho, Wo, KH, KW, sh, sw, 0, 0, dh, dw)
    full = np.empty((N * Ho * Wo, F), np.float32)
    gemm_bf16_bias_act(full, col, bp, bias, act)
    y[...] = max_pool2(full, N, Ho, Wo) if pool else full
