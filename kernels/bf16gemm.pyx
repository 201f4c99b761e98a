# cython: language_level=3
"""bfloat16 inference kernels on AVX512-BF16: rounding to bfloat16, padding, and the products.

Built only at the ``avx512`` level with ``-mavx512bf16`` (:data:`minicnn.backend.isa.FEATURE_MODULES`) and
loaded only where the CPU reports AVX512_BF16 (:mod:`minicnn.backend.lowp`); the NumPy twins with the same
signatures are in :mod:`minicnn.backend.reference.bf16gemm`.

Shape letters: M rows (samples x pixels), K inner size, Kp = K padded to a multiple of 2, N output columns,
Np = N padded to a multiple of 16. bfloat16 values are held as their uint16 bits; weights packed
``(Kp/2, Np, 2)``.
"""

from cython.parallel cimport prange

include "_parallel.pxi"
include "_lowp.pxi"

from libc.string cimport memset

cdef extern from "bf16gemm_avx512.h" nogil:
    void bf16gemm_rows(const uint16_t *a, const uint16_t *bp, float *y, const float *bias, int relu,
                       Py_ssize_t m_begin, Py_ssize_t m_end, Py_ssize_t Kp, Py_ssize_t N, Py_ssize_t Np,
                       Py_ssize_t Ho, Py_ssize_t Wo, Py_ssize_t Hp, Py_ssize_t Wp, Py_ssize_t C, Py_ssize_t sh,
                       Py_ssize_t sw, const Py_ssize_t *taps, Py_ssize_t ntaps, int pool)
    void bg_round_run(uint16_t *dst, const float *src, Py_ssize_t L)


def to_bf16(uint16_t[:, ::1] q, const float[:, ::1] x):
    """``q[:, :K]`` = the bfloat16 bits of ``x`` rounded to nearest even, ``q[:, K:] = 0``."""
    cdef Py_ssize_t M = x.shape[0], K = x.shape[1], Kp = q.shape[1], m
    if q.shape[0] != M or Kp < K:
        raise ValueError(f"q ({q.shape[0]}, {Kp}) cannot hold x ({M}, {K})")
    for m in prange(M, nogil=True, schedule="static", num_threads=team(M * K)):
        bg_round_run(&q[m, 0], &x[m, 0], K)
        memset(&q[m, 0] + K, 0, (Kp - K) * sizeof(uint16_t))


def to_bf16_pad(uint16_t[:, :, :, ::1] xp, const float[:, :, :, ::1] x, Py_ssize_t pt, Py_ssize_t pl):
    """``xp (N, Hp, Wp, Cp)`` = the bfloat16 bits of ``x (N, H, W, C)`` at offset ``(pt, pl)`` in the first ``C``
    channels, 0 (+0.0) everywhere else (a convolution's padding; channels ``C..Cp`` meet zero weights)."""
    cdef Py_ssize_t N = x.shape[0], H = x.shape[1], W = x.shape[2], C = x.shape[3], Cp = xp.shape[3]
    cdef Py_ssize_t Hp = xp.shape[1], Wp = xp.shape[2], row, n, i, j
    cdef uint16_t *base
    if xp.shape[0] != N or Cp < C or pt < 0 or pl < 0 or pt + H > Hp or pl + W > Wp:
        raise ValueError(f"xp ({xp.shape[0]}, {Hp}, {Wp}, {Cp}) cannot hold x ({N}, {H}, {W}, {C}) at "
                         f"offset ({pt}, {pl})")
    for row in prange(N * Hp, nogil=True, schedule="static", num_threads=team(N * Hp * Wp * Cp)):
        n = row // Hp
        i = row % Hp - pt
        base = &xp[n, row % Hp, 0, 0]
        memset(base, 0, Wp * Cp * sizeof(uint16_t))
        if 0 <= i < H:
            if Cp == C:
                bg_round_run(base + pl * C, &x[n, i, 0, 0], W * C)
            else:
                for j in range(W):
                    bg_round_run(base + (pl + j) * Cp, &x[n, i, j, 0], C)


cdef void _run(const uint16_t *a, const uint16_t *bp, float *y, const float *bias, int relu, Py_ssize_t M,
               Py_ssize_t Kp, Py_ssize_t N, Py_ssize_t Np, Py_ssize_t Ho=0, Py_ssize_t Wo=0, Py_ssize_t Hp=0,
               Py_ssize_t Wp=0, Py_ssize_t C=0, Py_ssize_t sh=0, Py_ssize_t sw=0, const Py_ssize_t *taps=NULL,
               Py_ssize_t ntaps=0, int pool=0) noexcept nogil:
    cdef Py_ssize_t chunk, begin
    cdef Py_ssize_t rows = LOWP_CHUNK_ROWS // 4 if pool else LOWP_CHUNK_ROWS   # a pooled row is 4 conv rows
    for chunk in prange((M + rows - 1) // rows, schedule="static", num_threads=team(M * Kp * N * (4 if pool else 1))):
        begin = chunk * rows
        bf16gemm_rows(a, bp, y, bias, relu, begin, min(begin + rows, M), Kp, N, Np, Ho, Wo, Hp, Wp, C, sh, sw, taps,
                      ntaps, pool)


def gemm_bf16_bias_act(float[:, ::1] y, const uint16_t[:, ::1] a, const uint16_t[:, :, ::1] bp,
                       const float[::1] bias, int act):
    """``y = act(a @ w + bias)`` (bfloat16 inputs, float32 sums); ``act`` 0 (identity) or 1 (relu)."""
    cdef Py_ssize_t M = y.shape[0], N = y.shape[1], Kp = a.shape[1], Np = bp.shape[1]
    if a.shape[0] != M or Kp != 2 * bp.shape[0] or Np % 16 or Np < N or bp.shape[2] != 2 or bias.shape[0] != N:
        raise ValueError(f"shapes do not match: output ({M}, {N}), a ({a.shape[0]}, {Kp}), packed weights "
                         f"({bp.shape[0]}, {Np}, {bp.shape[2]}), bias ({bias.shape[0]},); expected a (M, Kp), "
                         f"packed weights (Kp/2, Np >= N multiple of 16, 2), bias (N,)")
    if act not in (0, 1):
        raise ValueError(f"act must be 0 (identity) or 1 (relu); received act={act!r}")
    if M and N:
        with nogil:
            _run(&a[0, 0], &bp[0, 0, 0], &y[0, 0], &bias[0], act, M, Kp, N, Np)


def conv_bf16_bias_act(float[:, ::1] y, const uint16_t[:, :, :, ::1] xp, const uint16_t[:, :, ::1] bp,
                       const float[::1] bias, int act, Py_ssize_t Ho, Py_ssize_t Wo, Py_ssize_t KH, Py_ssize_t KW,
                       Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t dh, Py_ssize_t dw, bint pool):
    """:func:`gemm_bf16_bias_act` of the im2col rows of the padded input ``xp (N, Hp, Wp, C)``, read in place
    (``C`` even), ``y (N*Ho*Wo, F)``; with ``pool`` followed by a 2x2 stride-2 max-pool, ``y (N*(Ho//2)*(Wo//2),
    F)`` (equal bits: the epilogue is monotonic)."""
    cdef Py_ssize_t M = y.shape[0], F = y.shape[1], B = xp.shape[0], Hp = xp.shape[1], Wp = xp.shape[2]
    cdef Py_ssize_t C = xp.shape[3]
    if C % 2 or M != B * ((Ho // 2) * (Wo // 2) if pool else Ho * Wo) or (pool and (Ho < 2 or Wo < 2)) \
            or (Ho - 1) * sh + (KH - 1) * dh >= Hp or (Wo - 1) * sw + (KW - 1) * dw >= Wp or Ho < 1 or Wo < 1 \
            or KH * KW * C != 2 * bp.shape[0] or bp.shape[1] % 16 or bp.shape[1] < F or bp.shape[2] != 2 \
            or bias.shape[0] != F:
        raise ValueError(f"shapes do not match: output ({M}, {F}) for {Ho}x{Wo} windows {KH}x{KW} (strides {sh}, "
                         f"{sw}, dilations {dh}, {dw}, pool={pool}) of xp ({B}, {Hp}, {Wp}, {C}), packed weights "
                         f"({bp.shape[0]}, {bp.shape[1]}, {bp.shape[2]}); C must be even")
    if act not in (0, 1):
        raise ValueError(f"act must be 0 (identity) or 1 (relu); received act={act!r}")
    cdef Py_ssize_t[::1] taps = _window_taps(KH, KW, dh, dw, Wp, C)
    if M and F:
        with nogil:
            _run(&xp[0, 0, 0, 0], &bp[0, 0, 0], &y[0, 0], &bias[0], act, M, KH * KW * C, F, bp.shape[1], Ho, Wo, Hp,
                 Wp, C, sh, sw, &taps[0], KH * KW, pool)
