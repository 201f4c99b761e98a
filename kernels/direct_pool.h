/* One sample of a direct conv (any stride, padding, dilation) followed by a 2x2, stride-2 max-pool.
 *
 * y (Hp, Wp, F) = max over the 2x2 window of conv(x (H, W, C), w (KH, KW, C, F)): pooled pixel
 * (pi, pj) is the max of conv outputs (2pi + a, 2pj + b), a, b in {0, 1}, each summed over the taps
 * (i, j, c) in order that fall inside the image (padded taps add nothing), first term first, no
 * fused multiply-add. No im2col buffer and no conv output are written: for a shallow input
 * (a first layer on 1-3 channels, K = KH*KW*C = 9) the forward of conv + pool is a few loads per
 * multiply-add. The bias and activation are applied by the caller to the pooled rows
 * (max(f(v + b)) = f(max(v) + b) for the monotonic activations). Included by kernels/conv.pyx.
 */
#ifndef MINICNN_DIRECT_POOL_H
#define MINICNN_DIRECT_POOL_H
#include <math.h>
#include <stddef.h>
#include <string.h>
#include "direct_conv.h"   /* DIRECT_CONV_EPI, _direct_conv_epi8: the bias + activation epilogue */
#ifdef __AVX__
#include <immintrin.h>
#endif

#define DIRECT_POOL_SCALAR(NAME, T)                                                                    \
static inline void NAME(T *restrict y, const T *restrict x, const T *restrict w, ptrdiff_t H,          \
                        ptrdiff_t W, ptrdiff_t C, ptrdiff_t KH, ptrdiff_t KW, ptrdiff_t F, ptrdiff_t Hp, \
                        ptrdiff_t Wp, int sh, int sw, int pt, int pl, int dh, int dw, ptrdiff_t f0)     \
{                                                                                                      \
    for (ptrdiff_t pi = 0; pi < Hp; pi++)                                                              \
        for (ptrdiff_t pj = 0; pj < Wp; pj++)                                                          \
            for (ptrdiff_t f = f0; f < F; f++) {                                                       \
                T best = -INFINITY;                                                                    \
                for (int a = 0; a < 2; a++)                                                            \
                    for (int b = 0; b < 2; b++) {                                                      \
                        ptrdiff_t oh = 2 * pi + a, ow = 2 * pj + b;                                    \
                        T acc = 0;                                                                     \
                        for (ptrdiff_t i = 0; i < KH; i++) {                                           \
                            ptrdiff_t ih = oh * sh - pt + i * dh;                                      \
                            if (ih < 0 || ih >= H) continue;                                           \
                            for (ptrdiff_t j = 0; j < KW; j++) {                                       \
                                ptrdiff_t iw = ow * sw - pl + j * dw;                                  \
                                if (iw < 0 || iw >= W) continue;                                       \
                                const T *xs = x + (ih * W + iw) * C;                                   \
                                const T *ws = w + (i * KW + j) * C * F + f;                            \
                                for (ptrdiff_t c = 0; c < C; c++) acc += xs[c] * ws[c * F];            \
                            }                                                                          \
                        }                                                                              \
                        if (acc > best || isnan(acc)) best = acc;                                      \
                    }                                                                                  \
                y[(pi * Wp + pj) * F + f] = best;                                                      \
            }                                                                                          \
}

DIRECT_POOL_SCALAR(direct_conv_maxpool2_f64, double)
DIRECT_POOL_SCALAR(_direct_conv_maxpool2_f32_scalar, float)

#ifdef __AVX__
/* acc + v * w: one fused multiply-add where the level has FMA (one rounding: the 3x3 one-channel route's
 * sums then differ from the generic loop's in the last bits, within the tolerance of the reference
 * comparisons; every sample is computed alone, so the bits depend on no thread count). Measured on the
 * digits conv + pool (64 samples, 8x8x1 -> 16, avx2 level, AMD Zen 4, one thread, minima): 17.4 us with a
 * multiply and an add per tap and 8 channels at a time, 12.2-13.8 us with the 4 window positions x 16
 * channels in flight and a fused multiply-add (17.9 us without it: the add chains bound it). */
#ifdef __FMA__
#define D3C1_MADD(acc, v, w) _mm256_fmadd_ps(v, w, acc)
#else
#define D3C1_MADD(acc, v, w) _mm256_add_ps(acc, _mm256_mul_ps(v, w))
#endif

/* Max of a pool window's 4 conv outputs (q = 0..3 in order) that keeps a NaN, as the scalar loop: max_ps returns
 * its second operand when either is NaN, and a NaN running max stays. */
static inline __m256 _d3c1_max4(__m256 a, __m256 b, __m256 c, __m256 d)
{
    __m256 m = _mm256_blendv_ps(_mm256_max_ps(a, b), a, _mm256_cmp_ps(a, a, _CMP_UNORD_Q));
    m = _mm256_blendv_ps(_mm256_max_ps(m, c), m, _mm256_cmp_ps(m, m, _CMP_UNORD_Q));
    return _mm256_blendv_ps(_mm256_max_ps(m, d), m, _mm256_cmp_ps(m, m, _CMP_UNORD_Q));
}

/* One pooled pixel, 16 output channels: the 4 conv outputs of its window in flight together (8 accumulators),
 * each tap's two weight vectors loaded once and each patch value broadcast once for both halves; every output
 * sums its 9 taps in order, first term first. p: the window's top-left value in the patch (row stride S). */
static inline void _d3c1_pool16(float *restrict yp, const float *restrict p, const float *restrict w, ptrdiff_t S,
                                ptrdiff_t F, const float *bias, int act, __m256 va)
{
    __m256 a0, a1, b0, b1, c0, c1, d0, d1, v, w0, w1;
    w0 = _mm256_loadu_ps(w);
    w1 = _mm256_loadu_ps(w + 8);
    v = _mm256_set1_ps(p[0]);
    a0 = _mm256_mul_ps(v, w0);
    a1 = _mm256_mul_ps(v, w1);
    v = _mm256_set1_ps(p[1]);
    b0 = _mm256_mul_ps(v, w0);
    b1 = _mm256_mul_ps(v, w1);
    v = _mm256_set1_ps(p[S]);
    c0 = _mm256_mul_ps(v, w0);
    c1 = _mm256_mul_ps(v, w1);
    v = _mm256_set1_ps(p[S + 1]);
    d0 = _mm256_mul_ps(v, w0);
    d1 = _mm256_mul_ps(v, w1);
#define D3C1_ACC(R, O)                                                                                 \
    v = _mm256_set1_ps(p[O]);                                                                          \
    R##0 = D3C1_MADD(R##0, v, w0);                                                                     \
    R##1 = D3C1_MADD(R##1, v, w1);
#define D3C1_TAP(T, O)                                                                                 \
    w0 = _mm256_loadu_ps(w + (T) * F);                                                                 \
    w1 = _mm256_loadu_ps(w + (T) * F + 8);                                                             \
    D3C1_ACC(a, (O)) D3C1_ACC(b, (O) + 1) D3C1_ACC(c, (O) + S) D3C1_ACC(d, (O) + S + 1)
    D3C1_TAP(1, 1) D3C1_TAP(2, 2) D3C1_TAP(3, S) D3C1_TAP(4, S + 1) D3C1_TAP(5, S + 2)
    D3C1_TAP(6, 2 * S) D3C1_TAP(7, 2 * S + 1) D3C1_TAP(8, 2 * S + 2)
#undef D3C1_TAP
#undef D3C1_ACC
    _mm256_storeu_ps(yp, _direct_conv_epi8(_d3c1_max4(a0, b0, c0, d0), bias, act, va));
    _mm256_storeu_ps(yp + 8, _direct_conv_epi8(_d3c1_max4(a1, b1, c1, d1), bias + 8, act, va));
}

/* As _d3c1_pool16 for 8 output channels (4 accumulators). */
static inline void _d3c1_pool8(float *restrict yp, const float *restrict p, const float *restrict w, ptrdiff_t S,
                               ptrdiff_t F, const float *bias, int act, __m256 va)
{
    __m256 a, b, c, d, w0 = _mm256_loadu_ps(w);
    a = _mm256_mul_ps(_mm256_set1_ps(p[0]), w0);
    b = _mm256_mul_ps(_mm256_set1_ps(p[1]), w0);
    c = _mm256_mul_ps(_mm256_set1_ps(p[S]), w0);
    d = _mm256_mul_ps(_mm256_set1_ps(p[S + 1]), w0);
    static const int row[9] = {0, 0, 0, 1, 1, 1, 2, 2, 2}, col[9] = {0, 1, 2, 0, 1, 2, 0, 1, 2};
    for (int t = 1; t < 9; t++) {
        const float *q = p + row[t] * S + col[t];
        w0 = _mm256_loadu_ps(w + t * F);
        a = D3C1_MADD(a, _mm256_set1_ps(q[0]), w0);
        b = D3C1_MADD(b, _mm256_set1_ps(q[1]), w0);
        c = D3C1_MADD(c, _mm256_set1_ps(q[S]), w0);
        d = D3C1_MADD(d, _mm256_set1_ps(q[S + 1]), w0);
    }
    _mm256_storeu_ps(yp, _direct_conv_epi8(_d3c1_max4(a, b, c, d), bias, act, va));
}

/* 3x3, stride 1, undilated, one input channel (a first layer on grey images): the input is copied once into
 * a zero-bordered patch (no bounds checks left); blocks of 16 output channels run _d3c1_pool16 over every
 * pooled pixel, then a block of 8 _d3c1_pool8. Same sum order as the generic loop (padded taps add +0), each
 * tap fused (D3C1_MADD) where the level has FMA. Returns 0 when the patch would not fit its stack buffer (the caller falls back). */
#define DIRECT_POOL_PATCH 4096
static inline int _direct3x3c1_maxpool2_f32(float *restrict y, const float *restrict x, const float *restrict w,
                                            const float *bias, int act, float alpha, ptrdiff_t H, ptrdiff_t W,
                                            ptrdiff_t F, ptrdiff_t Hp, ptrdiff_t Wp, int pt, int pl,
                                            ptrdiff_t *f_done)
{
    __m256 va = _mm256_set1_ps(alpha);
    ptrdiff_t R = 2 * Hp + 2, S = 2 * Wp + 2;
    float xp[DIRECT_POOL_PATCH];
    if (R * S > DIRECT_POOL_PATCH) return 0;
    /* patch columns s hold input columns iw = s - pl: [s0, s1) inside the image */
    ptrdiff_t s0 = pl < 0 ? 0 : pl, s1 = W + pl < S ? W + pl : S;
    if (s1 < s0) s1 = s0;
    for (ptrdiff_t r = 0; r < R; r++) {
        ptrdiff_t ih = r - pt;
        float *row = xp + r * S;
        if (ih < 0 || ih >= H || s1 == s0) {
            memset(row, 0, S * sizeof(float));
            continue;
        }
        for (ptrdiff_t s = 0; s < s0; s++) row[s] = 0.0f;
        memcpy(row + s0, x + ih * W + s0 - pl, (s1 - s0) * sizeof(float));
        for (ptrdiff_t s = s1; s < S; s++) row[s] = 0.0f;
    }
    ptrdiff_t f = 0;
    for (; f + 16 <= F; f += 16)
        for (ptrdiff_t pi = 0; pi < Hp; pi++)
            for (ptrdiff_t pj = 0; pj < Wp; pj++)
                _d3c1_pool16(y + (pi * Wp + pj) * F + f, xp + 2 * pi * S + 2 * pj, w + f, S, F, bias + f, act, va);
    for (; f + 8 <= F; f += 8)
        for (ptrdiff_t pi = 0; pi < Hp; pi++)
            for (ptrdiff_t pj = 0; pj < Wp; pj++)
                _d3c1_pool8(y + (pi * Wp + pj) * F + f, xp + 2 * pi * S + 2 * pj, w + f, S, F, bias + f, act, va);
    *f_done = f;
    return 1;
}
#endif

/* Returns 1 when the bias and the activation were applied too (the 3x3 one-channel route, activation codes 0-2:
 * on the pooled vectors in registers, the expressions of _bias_act_rows), 0 when the caller still has to. */
static inline int direct_conv_maxpool2_f32(float *restrict y, const float *restrict x, const float *restrict w,
                                           const float *bias, int act, float alpha, ptrdiff_t H, ptrdiff_t W,
                                           ptrdiff_t C, ptrdiff_t KH, ptrdiff_t KW, ptrdiff_t F, ptrdiff_t Hp,
                                           ptrdiff_t Wp, int sh, int sw, int pt, int pl, int dh, int dw)
{
    ptrdiff_t f = 0;
#ifdef __AVX__
    if (KH == 3 && KW == 3 && C == 1 && sh == 1 && sw == 1 && dh == 1 && dw == 1
            && _direct3x3c1_maxpool2_f32(y, x, w, bias, act, alpha, H, W, F, Hp, Wp, pt, pl, &f)) {
        if (f == F)
            return act <= 2;
        _direct_conv_maxpool2_f32_scalar(y, x, w, H, W, C, KH, KW, F, Hp, Wp, sh, sw, pt, pl, dh, dw, f);
        if (act > 2)
            return 0;
        for (ptrdiff_t e = 0; e < Hp * Wp; e++)
            for (ptrdiff_t c = f; c < F; c++)
                y[e * F + c] = DIRECT_CONV_EPI(float, y[e * F + c], bias, c, act, alpha);
        return 1;
    }
    /* blocks of 8 output channels; the accumulators of the 4 window positions stay in registers */
    for (; f + 8 <= F; f += 8) {
        for (ptrdiff_t pi = 0; pi < Hp; pi++)
            for (ptrdiff_t pj = 0; pj < Wp; pj++) {
                __m256 acc[4];
                for (int q = 0; q < 4; q++) {
                    ptrdiff_t oh = 2 * pi + (q >> 1), ow = 2 * pj + (q & 1);
                    __m256 s = _mm256_setzero_ps();
                    for (ptrdiff_t i = 0; i < KH; i++) {
                        ptrdiff_t ih = oh * sh - pt + i * dh;
                        if (ih < 0 || ih >= H) continue;
                        for (ptrdiff_t j = 0; j < KW; j++) {
                            ptrdiff_t iw = ow * sw - pl + j * dw;
                            if (iw < 0 || iw >= W) continue;
                            const float *xs = x + (ih * W + iw) * C;
                            const float *ws = w + (i * KW + j) * C * F + f;
                            for (ptrdiff_t c = 0; c < C; c++)
                                s = _mm256_add_ps(s, _mm256_mul_ps(_mm256_set1_ps(xs[c]), _mm256_loadu_ps(ws + c * F)));
                        }
                    }
                    acc[q] = s;
                }
                /* max that keeps a NaN (as the scalar loop and the max-pool kernel): NaN wins */
                __m256 m = acc[0];
                for (int q = 1; q < 4; q++) {
                    __m256 nan_m = _mm256_cmp_ps(m, m, _CMP_UNORD_Q);
                    m = _mm256_blendv_ps(_mm256_max_ps(m, acc[q]), m, nan_m);   /* max_ps returns acc[q] when either is NaN */
                }
                _mm256_storeu_ps(y + (pi * Wp + pj) * F + f, m);
            }
    }
#endif
    if (f < F)
        _direct_conv_maxpool2_f32_scalar(y, x, w, H, W, C, KH, KW, F, Hp, Wp, sh, sw, pt, pl, dh, dw, f);
    return 0;
}

#endif
