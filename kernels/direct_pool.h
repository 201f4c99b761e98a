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
/* 3x3, stride 1, undilated, one input channel (a first layer on grey images): the input is copied once into
 * a zero-bordered patch (no bounds checks left), and for each block of 8 output channels the 9 weight
 * vectors stay in registers while the loop runs over every pooled pixel. Same sum order as the generic loop
 * (padded taps add +0). Returns 0 when the patch would not fit its stack buffer (the caller falls back). */
#define DIRECT_POOL_PATCH 4096
static inline int _direct3x3c1_maxpool2_f32(float *restrict y, const float *restrict x, const float *restrict w,
                                            ptrdiff_t H, ptrdiff_t W, ptrdiff_t F, ptrdiff_t Hp, ptrdiff_t Wp,
                                            int pt, int pl, ptrdiff_t *f_done)
{
    ptrdiff_t R = 2 * Hp + 2, S = 2 * Wp + 2;
    float xp[DIRECT_POOL_PATCH];
    if (R * S > DIRECT_POOL_PATCH) return 0;
    for (ptrdiff_t r = 0; r < R; r++)
        for (ptrdiff_t s = 0; s < S; s++) {
            ptrdiff_t ih = r - pt, iw = s - pl;
            xp[r * S + s] = (ih >= 0 && ih < H && iw >= 0 && iw < W) ? x[ih * W + iw] : 0.0f;
        }
    ptrdiff_t f = 0;
    for (; f + 8 <= F; f += 8) {
        __m256 w0 = _mm256_loadu_ps(w + 0 * F + f), w1 = _mm256_loadu_ps(w + 1 * F + f);
        __m256 w2 = _mm256_loadu_ps(w + 2 * F + f), w3 = _mm256_loadu_ps(w + 3 * F + f);
        __m256 w4 = _mm256_loadu_ps(w + 4 * F + f), w5 = _mm256_loadu_ps(w + 5 * F + f);
        __m256 w6 = _mm256_loadu_ps(w + 6 * F + f), w7 = _mm256_loadu_ps(w + 7 * F + f);
        __m256 w8 = _mm256_loadu_ps(w + 8 * F + f);
        for (ptrdiff_t pi = 0; pi < Hp; pi++)
            for (ptrdiff_t pj = 0; pj < Wp; pj++) {
                __m256 m = _mm256_setzero_ps();
                for (int q = 0; q < 4; q++) {
                    const float *p0 = xp + (2 * pi + (q >> 1)) * S + 2 * pj + (q & 1);
                    const float *p1 = p0 + S, *p2 = p1 + S;
                    __m256 s = _mm256_mul_ps(_mm256_set1_ps(p0[0]), w0);
                    s = _mm256_add_ps(s, _mm256_mul_ps(_mm256_set1_ps(p0[1]), w1));
                    s = _mm256_add_ps(s, _mm256_mul_ps(_mm256_set1_ps(p0[2]), w2));
                    s = _mm256_add_ps(s, _mm256_mul_ps(_mm256_set1_ps(p1[0]), w3));
                    s = _mm256_add_ps(s, _mm256_mul_ps(_mm256_set1_ps(p1[1]), w4));
                    s = _mm256_add_ps(s, _mm256_mul_ps(_mm256_set1_ps(p1[2]), w5));
                    s = _mm256_add_ps(s, _mm256_mul_ps(_mm256_set1_ps(p2[0]), w6));
                    s = _mm256_add_ps(s, _mm256_mul_ps(_mm256_set1_ps(p2[1]), w7));
                    s = _mm256_add_ps(s, _mm256_mul_ps(_mm256_set1_ps(p2[2]), w8));
                    if (q == 0) m = s;
                    else {   /* max that keeps a NaN: max_ps returns s when either is NaN; a NaN m stays */
                        __m256 nan_m = _mm256_cmp_ps(m, m, _CMP_UNORD_Q);
                        m = _mm256_blendv_ps(_mm256_max_ps(m, s), m, nan_m);
                    }
                }
                _mm256_storeu_ps(y + (pi * Wp + pj) * F + f, m);
            }
    }
    *f_done = f;
    return 1;
}
#endif

static inline void direct_conv_maxpool2_f32(float *restrict y, const float *restrict x, const float *restrict w,
                                            ptrdiff_t H, ptrdiff_t W, ptrdiff_t C, ptrdiff_t KH, ptrdiff_t KW,
                                            ptrdiff_t F, ptrdiff_t Hp, ptrdiff_t Wp, int sh, int sw, int pt, int pl,
                                            int dh, int dw, ptrdiff_t f0)
{
    ptrdiff_t f = f0;
#ifdef __AVX__
    if (f == 0 && KH == 3 && KW == 3 && C == 1 && sh == 1 && sw == 1 && dh == 1 && dw == 1
            && _direct3x3c1_maxpool2_f32(y, x, w, H, W, F, Hp, Wp, pt, pl, &f)) {
        if (f < F)
            _direct_conv_maxpool2_f32_scalar(y, x, w, H, W, C, KH, KW, F, Hp, Wp, sh, sw, pt, pl, dh, dw, f);
        return;
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
}

#endif
