"""bfloat16 inference references (the twins of ``kernels/bf16gemm.pyx``): rounding, im2col and the product.

Shape letters: M rows (samples x pixels), K inner size, Kp = K padded to a multiple of 2 (:data:`K_MULTIPLE`),
N output columns, Np = N padded to a multiple of 16; images ``x (N, H, W, C)`` (here N is the batch).

bfloat16 values are held as their uint16 bits (the upper half of a float32), rounded to nearest even. The
product of two bfloat16 values is exact in float32; the reference adds the products in float64 and rounds
once, while AVX512-BF16 (VDPBF16PS) accumulates in float32 pair by pair: the two differ by at most the
float32 rounding of a K-term sum, ``K * 2**-24 * sum_k |a[m, k] * w[k, n]|`` (the bound the tests check).
"""

import numpy as np

from .qgemm import im2col_u8, padded

__all__ = ["to_bf16", "im2col_u16", "gemm_bf16_bias_act"]

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


def im2col_u16(col, x, pad, Ho, Wo, KH, KW, sh, sw, pt, pl, dh, dw):
    """The windows of ``x (N, H, W, C)`` uint16 as rows of ``col (N*Ho*Wo, Kp)``, ``pad`` outside and past ``K``."""
    im2col_u8(col, x, pad, Ho, Wo, KH, KW, sh, sw, pt, pl, dh, dw)   # the same copies, on any element type


def gemm_bf16_bias_act(y, a, bp, bias, act):
    """``y = act(a @ w + bias)``: exact products summed in float64, rounded to float32, bias added in float32."""
    if act not in (0, 1):
        raise ValueError(f"act must be 0 (identity) or 1 (relu); received act={act!r}")
    N = y.shape[1]
    w = bp.transpose(0, 2, 1).reshape(-1, bp.shape[1])[:a.shape[1], :N]
    z = (bf16_values(a).astype(np.float64) @ bf16_values(w).astype(np.float64)).astype(np.float32) + bias
    y[...] = np.maximum(z, np.float32(0)) if act else z
