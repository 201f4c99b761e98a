/* Direct convolution of a shallow input (K = KH*KW*C small: a first layer on 1-3 channels), inference only.
 *
 * Shape letters: H, W, C input height, width, channels of one sample (NHWC); KH, KW kernel height, width;
 * F filters; Wo output width; K = KH*KW*C the taps of one output pixel, ordered (kh, kw, c) as im2col's
 * columns and w (KH, KW, C, F) reshaped (K, F); sh, sw strides; pt, pl top/left zero padding; dh, dw
 * dilations.
 *
 * Output rows oh0 <= oh < oh1 of one sample: y (oh1 - oh0, Wo, F) = f(conv(x, w) + b), no im2col columns.
 * Each output pixel reads its K taps through one table of K offsets from a zero-bordered copy of the KH
 * input rows its output row reads (a band of a few hundred values, refilled per output row). Every output is summed over k in order, first term a[0] * w[0, f], no fused
 * multiply-add: the same values, in the same order, as the im2col + shallow-product route
 * (small_gemm.h), so both give the same bits. With AVX the accumulators of 4 pixels x 16 (then 8)
 * channels stay in registers across k and the bias and the activation (identity, relu, leaky relu: the
 * expressions of _bias_act_rows.pxi) are applied to them before the one store; other activations
 * (act > 2) store the bare sums and the caller runs the row epilogue. Included by kernels/conv.pyx.
 */
#ifndef MINICNN_DIRECT_CONV_H
#define MINICNN_DIRECT_CONV_H
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#ifdef __AVX__
#include <immintrin.h>
#endif

/* Epilogue of one value: z = s + b, then the activation, as _bias_act_rows (act > 2: the bare sum). */
#define DIRECT_CONV_EPI(T, s, bias, f, act, alpha)                                                     \
    ((act) > 2 ? (s) : (act) == 1 ? ((s) + (bias)[f] < 0 ? (T)0 : (s) + (bias)[f])                     \
     : (act) == 2 ? ((s) + (bias)[f] > 0 ? (s) + (bias)[f] : ((s) + (bias)[f]) * (alpha))               \
     : (s) + (bias)[f])

/* One output pixel, channels f0 <= f < F, scalar: taps a[off[k]]. */
#define DIRECT_CONV_PIXEL_SCALAR(NAME, T)                                                              \
static inline void NAME(T *restrict yp, const T *restrict a, const ptrdiff_t *restrict off,            \
                        const T *restrict w, const T *restrict bias, int act, T alpha, ptrdiff_t K,    \
                        ptrdiff_t F, ptrdiff_t f0)                                                     \
{                                                                                                      \
    for (ptrdiff_t f = f0; f < F; f++) {                                                               \
        T s = a[off[0]] * w[f];                                                                        \
        for (ptrdiff_t k = 1; k < K; k++)                                                              \
            s = s + a[off[k]] * w[k * F + f];                                                          \
        yp[f] = DIRECT_CONV_EPI(T, s, bias, f, act, alpha);                                            \
    }                                                                                                  \
}

DIRECT_CONV_PIXEL_SCALAR(_direct_conv_pixel_f32, float)
DIRECT_CONV_PIXEL_SCALAR(_direct_conv_pixel_f64, double)

#ifdef __AVX__
static inline __m256 _direct_conv_epi8(__m256 s, const float *bias, int act, __m256 va)
{
    if (act > 2)
        return s;
    __m256 z = _mm256_add_ps(s, _mm256_loadu_ps(bias));
    if (act == 1)   /* z < 0 ? 0 : z (max_ps returns its second operand, z, for a NaN z or z = -0) */
        return _mm256_max_ps(_mm256_setzero_ps(), z);
    if (act == 2)   /* z > 0 ? z : z * alpha */
        return _mm256_blendv_ps(_mm256_mul_ps(z, va), z, _mm256_cmp_ps(z, _mm256_setzero_ps(), _CMP_GT_OQ));
    return z;
}

#define DIRECT_CONV_STEP4(R, A)                                                                        \
    v = _mm256_set1_ps(A[o]);                                                                          \
    s##R##0 = _mm256_add_ps(s##R##0, _mm256_mul_ps(v, b0));                                            \
    s##R##1 = _mm256_add_ps(s##R##1, _mm256_mul_ps(v, b1));

/* Four output pixels (taps a0..a3[off[k]], outputs y0..y3), 16 then 8 channels at a time; returns the first
 * channel left for the scalar tail. */
static inline ptrdiff_t _direct_conv_pixels4_f32(float *y0, float *y1, float *y2, float *y3, const float *a0,
                                                 const float *a1, const float *a2, const float *a3,
                                                 const ptrdiff_t *restrict off, const float *restrict w,
                                                 const float *restrict bias, int act, float alpha,
                                                 ptrdiff_t K, ptrdiff_t F)
{
    __m256 va = _mm256_set1_ps(alpha);
    ptrdiff_t f = 0;
    for (; f + 16 <= F; f += 16) {
        __m256 b0 = _mm256_loadu_ps(w + f), b1 = _mm256_loadu_ps(w + f + 8), v;
        ptrdiff_t o = off[0];
        v = _mm256_set1_ps(a0[o]);
        __m256 s00 = _mm256_mul_ps(v, b0), s01 = _mm256_mul_ps(v, b1);
        v = _mm256_set1_ps(a1[o]);
        __m256 s10 = _mm256_mul_ps(v, b0), s11 = _mm256_mul_ps(v, b1);
        v = _mm256_set1_ps(a2[o]);
        __m256 s20 = _mm256_mul_ps(v, b0), s21 = _mm256_mul_ps(v, b1);
        v = _mm256_set1_ps(a3[o]);
        __m256 s30 = _mm256_mul_ps(v, b0), s31 = _mm256_mul_ps(v, b1);
        for (ptrdiff_t k = 1; k < K; k++) {
            o = off[k];
            b0 = _mm256_loadu_ps(w + k * F + f);
            b1 = _mm256_loadu_ps(w + k * F + f + 8);
            DIRECT_CONV_STEP4(0, a0)
            DIRECT_CONV_STEP4(1, a1)
            DIRECT_CONV_STEP4(2, a2)
            DIRECT_CONV_STEP4(3, a3)
        }
        _mm256_storeu_ps(y0 + f, _direct_conv_epi8(s00, bias + f, act, va));
        _mm256_storeu_ps(y0 + f + 8, _direct_conv_epi8(s01, bias + f + 8, act, va));
        _mm256_storeu_ps(y1 + f, _direct_conv_epi8(s10, bias + f, act, va));
        _mm256_storeu_ps(y1 + f + 8, _direct_conv_epi8(s11, bias + f + 8, act, va));
        _mm256_storeu_ps(y2 + f, _direct_conv_epi8(s20, bias + f, act, va));
        _mm256_storeu_ps(y2 + f + 8, _direct_conv_epi8(s21, bias + f + 8, act, va));
        _mm256_storeu_ps(y3 + f, _direct_conv_epi8(s30, bias + f, act, va));
        _mm256_storeu_ps(y3 + f + 8, _direct_conv_epi8(s31, bias + f + 8, act, va));
    }
    for (; f + 8 <= F; f += 8) {
        __m256 b0 = _mm256_loadu_ps(w + f), v;
        ptrdiff_t o = off[0];
        __m256 s0 = _mm256_mul_ps(_mm256_set1_ps(a0[o]), b0), s1 = _mm256_mul_ps(_mm256_set1_ps(a1[o]), b0);
        __m256 s2 = _mm256_mul_ps(_mm256_set1_ps(a2[o]), b0), s3 = _mm256_mul_ps(_mm256_set1_ps(a3[o]), b0);
        for (ptrdiff_t k = 1; k < K; k++) {
            o = off[k];
            b0 = _mm256_loadu_ps(w + k * F + f);
            v = _mm256_set1_ps(a0[o]);
            s0 = _mm256_add_ps(s0, _mm256_mul_ps(v, b0));
            v = _mm256_set1_ps(a1[o]);
            s1 = _mm256_add_ps(s1, _mm256_mul_ps(v, b0));
            v = _mm256_set1_ps(a2[o]);
            s2 = _mm256_add_ps(s2, _mm256_mul_ps(v, b0));
            v = _mm256_set1_ps(a3[o]);
            s3 = _mm256_add_ps(s3, _mm256_mul_ps(v, b0));
        }
        _mm256_storeu_ps(y0 + f, _direct_conv_epi8(s0, bias + f, act, va));
        _mm256_storeu_ps(y1 + f, _direct_conv_epi8(s1, bias + f, act, va));
        _mm256_storeu_ps(y2 + f, _direct_conv_epi8(s2, bias + f, act, va));
        _mm256_storeu_ps(y3 + f, _direct_conv_epi8(s3, bias + f, act, va));
    }
    return f;
}

/* One output pixel, 16 then 8 channels at a time; returns the first channel left for the scalar tail. */
static inline ptrdiff_t _direct_conv_pixel1_f32(float *yp, const float *a, const ptrdiff_t *restrict off,
                                                const float *restrict w, const float *restrict bias, int act,
                                                float alpha, ptrdiff_t K, ptrdiff_t F)
{
    __m256 va = _mm256_set1_ps(alpha);
    ptrdiff_t f = 0;
    for (; f + 16 <= F; f += 16) {
        __m256 v = _mm256_set1_ps(a[off[0]]);
        __m256 s0 = _mm256_mul_ps(v, _mm256_loadu_ps(w + f)), s1 = _mm256_mul_ps(v, _mm256_loadu_ps(w + f + 8));
        for (ptrdiff_t k = 1; k < K; k++) {
            v = _mm256_set1_ps(a[off[k]]);
            s0 = _mm256_add_ps(s0, _mm256_mul_ps(v, _mm256_loadu_ps(w + k * F + f)));
            s1 = _mm256_add_ps(s1, _mm256_mul_ps(v, _mm256_loadu_ps(w + k * F + f + 8)));
        }
        _mm256_storeu_ps(yp + f, _direct_conv_epi8(s0, bias + f, act, va));
        _mm256_storeu_ps(yp + f + 8, _direct_conv_epi8(s1, bias + f + 8, act, va));
    }
    for (; f + 8 <= F; f += 8) {
        __m256 s = _mm256_mul_ps(_mm256_set1_ps(a[off[0]]), _mm256_loadu_ps(w + f));
        for (ptrdiff_t k = 1; k < K; k++)
            s = _mm256_add_ps(s, _mm256_mul_ps(_mm256_set1_ps(a[off[k]]), _mm256_loadu_ps(w + k * F + f)));
        _mm256_storeu_ps(yp + f, _direct_conv_epi8(s, bias + f, act, va));
    }
    return f;
}
#endif

/* Output rows [oh0, oh1) of one sample. Per output row, the KH input rows its windows read are copied into a
 * zero-bordered band (KH, Wb, C), Wb = (Wo - 1) * sw + (KW - 1) * dw + 1 columns from input column -pl: every
 * tap is then read through one offset table, with no bounds test (padded taps read the band's zeros, as
 * im2col's columns hold them). Returns 0 when the scratch (offset table, band) could not be allocated
 * (nothing written). */
#define DIRECT_CONV_ROWS(NAME, T, BLOCK4, PIXEL1)                                                      \
static inline int NAME(T *restrict y, const T *restrict x, const T *restrict w, const T *restrict bias, \
                       int act, T alpha, ptrdiff_t H, ptrdiff_t W, ptrdiff_t C, ptrdiff_t KH,          \
                       ptrdiff_t KW, ptrdiff_t F, ptrdiff_t Wo, int sh, int sw, int pt, int pl, int dh, \
                       int dw, ptrdiff_t oh0, ptrdiff_t oh1)                                           \
{                                                                                                      \
    ptrdiff_t K = KH * KW * C, Wb = (Wo - 1) * sw + (KW - 1) * dw + 1;                                 \
    char *scratch = malloc(K * sizeof(ptrdiff_t) + KH * Wb * C * sizeof(T));                           \
    if (scratch == NULL) return 0;                                                                     \
    ptrdiff_t *off = (ptrdiff_t *)scratch;                                                             \
    T *band = (T *)(off + K);                                                                          \
    for (ptrdiff_t i = 0, k = 0; i < KH; i++)                                                          \
        for (ptrdiff_t j = 0; j < KW; j++)                                                             \
            for (ptrdiff_t c = 0; c < C; c++, k++)                                                     \
                off[k] = (i * Wb + j * dw) * C + c;                                                    \
    /* the band's columns q hold input columns iw = q - pl: [q0, q1) inside the image */               \
    ptrdiff_t q0 = pl < 0 ? 0 : pl, q1 = W + pl < Wb ? W + pl : Wb;                                    \
    if (q1 < q0) q1 = q0;                                                                              \
    for (ptrdiff_t oh = oh0; oh < oh1; oh++) {                                                         \
        T *yrow = y + (oh - oh0) * Wo * F;                                                             \
        for (ptrdiff_t i = 0; i < KH; i++) {                                                           \
            ptrdiff_t ih = oh * sh - pt + i * dh;                                                      \
            T *bi = band + i * Wb * C;                                                                 \
            if (ih < 0 || ih >= H) {                                                                   \
                for (ptrdiff_t e = 0; e < Wb * C; e++) bi[e] = 0;                                      \
                continue;                                                                              \
            }                                                                                          \
            for (ptrdiff_t e = 0; e < q0 * C; e++) bi[e] = 0;                                          \
            if (q1 > q0) memcpy(bi + q0 * C, x + (ih * W + q0 - pl) * C, (q1 - q0) * C * sizeof(T));   \
            for (ptrdiff_t e = q1 * C; e < Wb * C; e++) bi[e] = 0;                                     \
        }                                                                                              \
        ptrdiff_t ow = 0;                                                                              \
        BLOCK4                                                                                         \
        for (; ow < Wo; ow++)                                                                          \
            PIXEL1                                                                                     \
    }                                                                                                  \
    free(scratch);                                                                                     \
    return 1;                                                                                          \
}

DIRECT_CONV_ROWS(direct_conv_rows_f64, double, ,
                 _direct_conv_pixel_f64(yrow + ow * F, band + ow * sw * C, off, w, bias, act, alpha, K, F, 0);)

#ifdef __AVX__
#define DIRECT_CONV_AVX_BLOCK4                                                                         \
    for (; ow + 4 <= Wo; ow += 4) {                                                                    \
        float *y0 = yrow + ow * F;                                                                     \
        const float *a0 = band + ow * sw * C, *a1 = a0 + sw * C, *a2 = a1 + sw * C, *a3 = a2 + sw * C; \
        ptrdiff_t f = _direct_conv_pixels4_f32(y0, y0 + F, y0 + 2 * F, y0 + 3 * F, a0, a1, a2, a3, off, \
                                               w, bias, act, alpha, K, F);                             \
        _direct_conv_pixel_f32(y0, a0, off, w, bias, act, alpha, K, F, f);                             \
        _direct_conv_pixel_f32(y0 + F, a1, off, w, bias, act, alpha, K, F, f);                         \
        _direct_conv_pixel_f32(y0 + 2 * F, a2, off, w, bias, act, alpha, K, F, f);                     \
        _direct_conv_pixel_f32(y0 + 3 * F, a3, off, w, bias, act, alpha, K, F, f);                     \
    }
#define DIRECT_CONV_AVX_PIXEL1                                                                         \
    {                                                                                                  \
        const float *a0 = band + ow * sw * C;                                                          \
        ptrdiff_t f = _direct_conv_pixel1_f32(yrow + ow * F, a0, off, w, bias, act, alpha, K, F);      \
        _direct_conv_pixel_f32(yrow + ow * F, a0, off, w, bias, act, alpha, K, F, f);                  \
    }
DIRECT_CONV_ROWS(direct_conv_rows_f32, float, DIRECT_CONV_AVX_BLOCK4, DIRECT_CONV_AVX_PIXEL1)
#else
DIRECT_CONV_ROWS(direct_conv_rows_f32, float, ,
                 _direct_conv_pixel_f32(yrow + ow * F, band + ow * sw * C, off, w, bias, act, alpha, K, F, 0);)
#endif

#endif
