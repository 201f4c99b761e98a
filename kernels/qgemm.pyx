# cython: language_level=3
"""int8 inference kernels on AVX512-VNNI: quantize, pad, and the u8 x s8 products with a float epilogue (whose
result is written as float32, or quantized as the next int8 layer's uint8 input: ``*_requant``).

Built only at the ``avx512`` level with ``-mavx512vnni`` (:data:`minicnn.backend.isa.FEATURE_MODULES`) and
loaded only where the CPU reports AVX512_VNNI (:mod:`minicnn.backend.lowp`); the NumPy twins with the same
signatures are in :mod:`minicnn.backend.reference.qgemm`.

Shape letters: M rows (samples x pixels), K inner size, Kp = K padded to a multiple of 4, N output columns,
Np = N padded to a multiple of 16. Activations are uint8 with a zero point ``z`` (``q = clip(rint(x * inv_scale)
+ z, 0, 255)``, Jacob et al. 2018); weights int8 symmetric per output column, packed ``(Kp/4, Np, 4)``.
"""

from cython.parallel cimport prange


include "_parallel.pxi"
include "_lowp.pxi"

from libc.string cimport memset

cdef extern from "qgemm_vnni.h" nogil:
    ctypedef struct qg_requant:
        uint8_t *q
        float inv, z
        Py_ssize_t Ho, Wo, L, Wq, Cq, pt, pl
    void qgemm_vnni_rows(const uint8_t *a, const int8_t *bp, int32_t *c, float *y, const int32_t *zcorr,
                         const float *scale, const float *bias, int relu, Py_ssize_t m_begin, Py_ssize_t m_end,
                         Py_ssize_t Kp, Py_ssize_t N, Py_ssize_t Np, Py_ssize_t Ho, Py_ssize_t Wo, Py_ssize_t Hp,
                         Py_ssize_t Wp, Py_ssize_t C, Py_ssize_t sh, Py_ssize_t sw, const Py_ssize_t *taps,
                         Py_ssize_t ntaps, int pool, const qg_requant *out)
    void qg_quantize_run(uint8_t *dst, const float *src, Py_ssize_t L, float inv, float z)
    void qg_quantize_run_spread4(uint8_t *dst, const float *src, Py_ssize_t L, float inv, float z)
    void qg_quantize_rows4(uint8_t *dst, const float *src, Py_ssize_t W, Py_ssize_t pl, Py_ssize_t Wp, float inv,
                           float z, int zero_point)

def quantize_u8(uint8_t[:, ::1] q, const float[:, ::1] x, float inv_scale, int zero_point):
    """``q[:, :K] = clip(rint(x * inv_scale) + zero_point, 0, 255)``, ``q[:, K:] = zero_point``."""
    cdef Py_ssize_t M = x.shape[0], K = x.shape[1], Kp = q.shape[1], m, k
    cdef float z = zero_point
    if q.shape[0] != M or Kp < K or not 0 <= zero_point <= 255:
        raise ValueError(f"q ({q.shape[0]}, {Kp}) cannot hold x ({M}, {K}) with zero_point={zero_point}")
    for m in prange(M, nogil=True, schedule="static", num_threads=team(M * K)):
        qg_quantize_run(&q[m, 0], &x[m, 0], K, inv_scale, z)
        for k in range(K, Kp):
            q[m, k] = <uint8_t>zero_point


cdef void _run(const uint8_t *a, const int8_t *bp, int32_t *c, float *y, const int32_t *zcorr, const float *scale,
               const float *bias, int relu, Py_ssize_t M, Py_ssize_t Kp, Py_ssize_t N, Py_ssize_t Np,
               Py_ssize_t Ho=0, Py_ssize_t Wo=0, Py_ssize_t Hp=0, Py_ssize_t Wp=0, Py_ssize_t C=0, Py_ssize_t sh=0,
               Py_ssize_t sw=0, const Py_ssize_t *taps=NULL, Py_ssize_t ntaps=0, int pool=0,
               const qg_requant *out=NULL) noexcept nogil:
    cdef Py_ssize_t chunk, begin
    cdef Py_ssize_t rows = LOWP_CHUNK_ROWS // 4 if pool else LOWP_CHUNK_ROWS   # a pooled row is 4 conv rows
    for chunk in prange((M + rows - 1) // rows, schedule="static", num_threads=team(M * Kp * N * (4 if pool else 1))):
        begin = chunk * rows
        qgemm_vnni_rows(a, bp, c, y, zcorr, scale, bias, relu, begin, min(begin + rows, M), Kp, N, Np,
                        Ho, Wo, Hp, Wp, C, sh, sw, taps, ntaps, pool, out)


cdef void _check_product(Py_ssize_t M, Py_ssize_t N, Py_ssize_t am, Py_ssize_t Kp, Py_ssize_t K4, Py_ssize_t Np,
                         Py_ssize_t lanes) except *:
    if am != M or Kp != 4 * K4 or Np % 16 or Np < N or lanes != 4:
        raise ValueError(f"shapes do not match: output ({M}, {N}), a ({am}, {Kp}), packed weights ({K4}, {Np}, "
                         f"{lanes}); expected a (M, Kp) and packed weights (Kp/4, Np >= N multiple of 16, 4)")


def qgemm_u8s8(int32_t[:, ::1] c, const uint8_t[:, ::1] a, const int8_t[:, :, ::1] bp):
    """``c = a @ w`` exactly in int32 (``w`` the unpacked ``bp``)."""
    cdef Py_ssize_t M = c.shape[0], N = c.shape[1]
    _check_product(M, N, a.shape[0], a.shape[1], bp.shape[0], bp.shape[1], bp.shape[2])
    if M and N:
        with nogil:
            _run(&a[0, 0], &bp[0, 0, 0], &c[0, 0], NULL, NULL, NULL, NULL, 0, M, a.shape[1], N, bp.shape[1])


def qgemm_u8s8_bias_act(float[:, ::1] y, const uint8_t[:, ::1] a, const int8_t[:, :, ::1] bp,
                        const int32_t[::1] zcorr, const float[::1] scale, const float[::1] bias, int act):
    """``y = act(float32(a @ w - zcorr) * scale + bias)``; ``act`` 0 (identity) or 1 (relu)."""
    cdef Py_ssize_t M = y.shape[0], N = y.shape[1]
    _check_product(M, N, a.shape[0], a.shape[1], bp.shape[0], bp.shape[1], bp.shape[2])
    if act not in (0, 1):
        raise ValueError(f"act must be 0 (identity) or 1 (relu); received act={act!r}")
    if zcorr.shape[0] != N or scale.shape[0] != N or bias.shape[0] != N:
        raise ValueError(f"zcorr, scale and bias must have {N} values each")
    if M and N:
        with nogil:
            _run(&a[0, 0], &bp[0, 0, 0], NULL, &y[0, 0], &zcorr[0], &scale[0], &bias[0], act, M, a.shape[1], N,
                 bp.shape[1])


def quantize_pad_u8(uint8_t[:, :, :, ::1] xp, const float[:, :, :, ::1] x, float inv_scale, int zero_point,
                    Py_ssize_t pt, Py_ssize_t pl):
    """``xp (N, Hp, Wp, Cp)`` = ``x (N, H, W, C)`` quantized as :func:`quantize_u8` at offset ``(pt, pl)`` in the
    first ``C`` channels, ``zero_point`` everywhere else (a convolution's padding, and channels ``C..Cp``
    that make the channel count a multiple of 4: zero weights)."""
    cdef Py_ssize_t N = x.shape[0], H = x.shape[1], W = x.shape[2], C = x.shape[3], Cp = xp.shape[3]
    cdef Py_ssize_t Hp = xp.shape[1], Wp = xp.shape[2], row, n, i, j
    cdef uint8_t *base
    cdef float z = zero_point
    if xp.shape[0] != N or Cp < C or pt < 0 or pl < 0 or pt + H > Hp or pl + W > Wp or not 0 <= zero_point <= 255:
        raise ValueError(f"xp ({xp.shape[0]}, {Hp}, {Wp}, {Cp}) cannot hold x ({N}, {H}, {W}, {C}) at "
                         f"offset ({pt}, {pl}) with zero_point={zero_point}")
    for row in prange(N * Hp, nogil=True, schedule="static", num_threads=team(N * Hp * Wp * Cp)):
        n = row // Hp
        i = row % Hp - pt
        base = &xp[n, row % Hp, 0, 0]
        if not 0 <= i < H:
            memset(base, zero_point, Wp * Cp)
        elif Cp == C:
            memset(base, zero_point, pl * C)
            qg_quantize_run(base + pl * C, &x[n, i, 0, 0], W * C, inv_scale, z)
            memset(base + (pl + W) * C, zero_point, (Wp - pl - W) * C)
        elif C == 1 and Cp == 4:   # one 32-bit lane per pixel
            memset(base, zero_point, pl * 4)
            qg_quantize_run_spread4(base + pl * 4, &x[n, i, 0, 0], W, inv_scale, z)
            memset(base + (pl + W) * 4, zero_point, (Wp - pl - W) * 4)
        else:
            memset(base, zero_point, Wp * Cp)
            for j in range(W):
                qg_quantize_run(base + (pl + j) * Cp, &x[n, i, j, 0], C, inv_scale, z)


def quantize_pad_rows4_u8(uint8_t[:, :, :, ::1] xp, const float[:, :, :, ::1] x, float inv_scale, int zero_point,
                          Py_ssize_t pt, Py_ssize_t pl):
    """One-channel ``x (N, H, W, 1)`` quantized and padded as :func:`quantize_pad_u8` into ``P (N, Hp, Wp + 3)``,
    written with each pixel's next 3 beside it: ``xp[n, i, j, c] = P[n, i, j + c]``, ``xp (N, Hp, Wp, 4)`` (a
    kernel row of up to 4 taps is one 4-byte group: a conv reads it as a 1-wide kernel over 4 channels)."""
    cdef Py_ssize_t N = x.shape[0], H = x.shape[1], W = x.shape[2], Hp = xp.shape[1], Wp = xp.shape[2], row, n, i
    cdef uint8_t *base
    cdef float z = zero_point
    if x.shape[3] != 1 or xp.shape[3] != 4 or xp.shape[0] != N or pt < 0 or pl < 0 or pt + H > Hp \
            or pl > Wp + 2 or not 0 <= zero_point <= 255:
        raise ValueError(f"xp ({xp.shape[0]}, {Hp}, {Wp}, {xp.shape[3]}) cannot hold x ({N}, {H}, {W}, "
                         f"{x.shape[3]}) at offset ({pt}, {pl}) with zero_point={zero_point}; expected one channel "
                         f"in, four out")
    for row in prange(N * Hp, nogil=True, schedule="static", num_threads=team(N * Hp * Wp * 4)):
        n = row // Hp
        i = row % Hp - pt
        base = &xp[n, row % Hp, 0, 0]
        if not 0 <= i < H:
            memset(base, zero_point, Wp * 4)
        else:
            qg_quantize_rows4(base, &x[n, i, 0, 0], W, pl, Wp, inv_scale, z, zero_point)


def qconv_u8s8_bias_act(float[:, ::1] y, const uint8_t[:, :, :, ::1] xp, const int8_t[:, :, ::1] bp,
                        const int32_t[::1] zcorr, const float[::1] scale, const float[::1] bias, int act,
                        Py_ssize_t Ho, Py_ssize_t Wo, Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t sh, Py_ssize_t sw,
                        Py_ssize_t dh, Py_ssize_t dw, bint pool):
    """:func:`qgemm_u8s8_bias_act` of the im2col rows of the padded input ``xp (N, Hp, Wp, C)`` (no padding
    left to add), read in place: ``C`` a multiple of 4, ``y (N*Ho*Wo, F)``; with ``pool``, followed by a 2x2
    stride-2 max-pool, ``y (N*(Ho//2)*(Wo//2), F)`` (equal bits: the epilogue is monotonic)."""
    cdef Py_ssize_t M = y.shape[0], F = y.shape[1], Wp = xp.shape[2], C = xp.shape[3]
    _check_conv(M, F, xp.shape[0], xp.shape[1], Wp, C, bp.shape[0], bp.shape[1], bp.shape[2], zcorr.shape[0],
                scale.shape[0], bias.shape[0], act, Ho, Wo, KH, KW, sh, sw, dh, dw, pool)
    cdef Py_ssize_t[::1] taps = _window_taps(KH, KW, dh, dw, Wp, C)
    if M and F:
        with nogil:
            _run(&xp[0, 0, 0, 0], &bp[0, 0, 0], NULL, &y[0, 0], &zcorr[0], &scale[0], &bias[0], act, M, KH * KW * C,
                 F, bp.shape[1], Ho, Wo, xp.shape[1], Wp, C, sh, sw, &taps[0], KH * KW, pool)


cdef void _check_conv(Py_ssize_t M, Py_ssize_t F, Py_ssize_t B, Py_ssize_t Hp, Py_ssize_t Wp, Py_ssize_t C,
                      Py_ssize_t K4, Py_ssize_t Np, Py_ssize_t lanes, Py_ssize_t nz, Py_ssize_t ns, Py_ssize_t nb,
                      int act, Py_ssize_t Ho, Py_ssize_t Wo, Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t sh,
                      Py_ssize_t sw, Py_ssize_t dh, Py_ssize_t dw, bint pool) except *:
    if C % 4 or M != B * ((Ho // 2) * (Wo // 2) if pool else Ho * Wo) or (pool and (Ho < 2 or Wo < 2)) \
            or (Ho - 1) * sh + (KH - 1) * dh >= Hp or (Wo - 1) * sw + (KW - 1) * dw >= Wp or Ho < 1 or Wo < 1:
        raise ValueError(f"shapes do not match: output ({M}, {F}) for {Ho}x{Wo} windows {KH}x{KW} (strides {sh}, "
                         f"{sw}, dilations {dh}, {dw}) of xp ({B}, {Hp}, {Wp}, {C}); C must be a multiple of 4")
    _check_product(M, F, M, KH * KW * C, K4, Np, lanes)
    if act not in (0, 1):
        raise ValueError(f"act must be 0 (identity) or 1 (relu); received act={act!r}")
    if nz != F or ns != F or nb != F:
        raise ValueError(f"zcorr, scale and bias must have {F} values each")


cdef qg_requant _requant_target(uint8_t *q, Py_ssize_t B, Py_ssize_t Hq, Py_ssize_t Wq, Py_ssize_t Cq,
                                Py_ssize_t Bq, Py_ssize_t Ho, Py_ssize_t Wo, Py_ssize_t F, float inv_scale,
                                int zero_point, Py_ssize_t pt, Py_ssize_t pl) except *:
    """Where :func:`qgemm_vnni_rows` writes rows of pixels ``(b, i, j)`` of ``Ho x Wo`` quantized: ``q[b, pt + i,
    pl + j, :F]`` of ``q (Bq, Hq, Wq, Cq)``; ``zero_point`` is written everywhere else in ``q`` (padding, channels
    past ``F``)."""
    cdef qg_requant out
    if Bq != B or Cq < F or pt < 0 or pl < 0 or pt + Ho > Hq or pl + Wo > Wq or not 0 <= zero_point <= 255:
        raise ValueError(f"q ({Bq}, {Hq}, {Wq}, {Cq}) cannot hold {B} outputs of {Ho}x{Wo}x{F} at offset "
                         f"({pt}, {pl}) with zero_point={zero_point}")
    out.q, out.inv, out.z = q, inv_scale, zero_point
    out.Ho, out.Wo, out.L, out.Wq, out.Cq, out.pt, out.pl = Ho, Wo, Hq * Wq * Cq, Wq, Cq, pt, pl
    if B and (Cq != F or Hq != Ho or Wq != Wo):   # a gap: the zero point first (then the kernel writes the rest)
        with nogil:
            memset(q, zero_point, B * out.L)
    return out


def qgemm_u8s8_requant(uint8_t[:, ::1] q, const uint8_t[:, ::1] a, const int8_t[:, :, ::1] bp,
                       const int32_t[::1] zcorr, const float[::1] scale, const float[::1] bias, int act,
                       float inv_scale, int zero_point):
    """:func:`qgemm_u8s8_bias_act` quantized as the next layer's input (:func:`quantize_u8` of its float32 output,
    the same bits): ``q[:, :N] = quantize(y)``, ``q[:, N:] = zero_point``; ``q (M, Kq)`` uint8, ``Kq >= N``."""
    cdef Py_ssize_t M = a.shape[0], N = zcorr.shape[0]
    _check_product(M, N, M, a.shape[1], bp.shape[0], bp.shape[1], bp.shape[2])
    if act not in (0, 1):
        raise ValueError(f"act must be 0 (identity) or 1 (relu); received act={act!r}")
    if scale.shape[0] != N or bias.shape[0] != N:
        raise ValueError(f"zcorr, scale and bias must have {N} values each")
    cdef uint8_t *target = &q[0, 0] if q.shape[0] and q.shape[1] else NULL
    cdef qg_requant out = _requant_target(target, M, 1, 1, q.shape[1], q.shape[0], 1, 1, N, inv_scale, zero_point,
                                          0, 0)
    if M and N:
        with nogil:
            _run(&a[0, 0], &bp[0, 0, 0], NULL, NULL, &zcorr[0], &scale[0], &bias[0], act, M, a.shape[1], N,
                 bp.shape[1], 0, 0, 0, 0, 0, 0, 0, NULL, 0, 0, &out)


def qconv_u8s8_requant(uint8_t[:, :, :, ::1] q, const uint8_t[:, :, :, ::1] xp, const int8_t[:, :, ::1] bp,
                       const int32_t[::1] zcorr, const float[::1] scale, const float[::1] bias, int act,
                       float inv_scale, int zero_point, Py_ssize_t pt, Py_ssize_t pl, Py_ssize_t Ho, Py_ssize_t Wo,
                       Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t dh, Py_ssize_t dw,
                       bint pool):
    """:func:`qconv_u8s8_bias_act` quantized as the next layer's input: ``q (N, Hq, Wq, Cq)`` is
    :func:`quantize_pad_u8` of its float32 output ``(N, Ho', Wo', F)`` (``Ho', Wo'`` halved with ``pool``) at
    offset ``(pt, pl)`` (the same bits; with ``Hq, Wq, Cq = Ho', Wo', F``, the rows of a flattened dense input)."""
    cdef Py_ssize_t F = zcorr.shape[0], B = xp.shape[0], Wp = xp.shape[2], C = xp.shape[3]
    cdef Py_ssize_t Hy = Ho // 2 if pool else Ho, Wy = Wo // 2 if pool else Wo, M = B * Hy * Wy
    _check_conv(M, F, B, xp.shape[1], Wp, C, bp.shape[0], bp.shape[1], bp.shape[2], F, scale.shape[0],
                bias.shape[0], act, Ho, Wo, KH, KW, sh, sw, dh, dw, pool)
    cdef uint8_t *target = &q[0, 0, 0, 0] if q.shape[0] and q.shape[1] and q.shape[2] and q.shape[3] else NULL
    cdef qg_requant out = _requant_target(target, B, q.shape[1], q.shape[2], q.shape[3], q.shape[0], Hy, Wy, F,
                                          inv_scale, zero_point, pt, pl)
    cdef Py_ssize_t[::1] taps = _window_taps(KH, KW, dh, dw, Wp, C)
    if M and F:
        with nogil:
            _run(&xp[0, 0, 0, 0], &bp[0, 0, 0], NULL, NULL, &zcorr[0], &scale[0], &bias[0], act, M, KH * KW * C,
                 F, bp.shape[1], Ho, Wo, xp.shape[1], Wp, C, sh, sw, &taps[0], KH * KW, pool, &out)
