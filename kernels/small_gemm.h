/* Row-major c (P, F) = a (P, K) @ b (K, F) for a shallow K (a first conv layer on 1-3 channels).
 *
 * Each output row is summed over k in order, first term a[0] * b[0, f], no fused multiply-add:
 * the same rounding as the scalar loop (and, up to summation order, as BLAS). With AVX the
 * accumulators of 16 (then 8) output channels stay in registers across k; the scalar tail
 * handles the rest; four rows run together (more independent sums in flight). Included by
 * kernels/conv.pyx (cdef extern).
 */
#ifndef MINICNN_SMALL_GEMM_H
#define MINICNN_SMALL_GEMM_H
#include <stddef.h>
#ifdef __AVX__
#include <immintrin.h>
#endif

/* One output row from channel f0 on: 16, then 8 channels in registers, then a scalar tail. */
static inline void small_gemm_row_f32(float *restrict cp, const float *restrict ap, const float *restrict b,
                                      ptrdiff_t K, ptrdiff_t F, ptrdiff_t f)
{
#ifdef __AVX__
    for (; f + 16 <= F; f += 16) {
        __m256 v = _mm256_set1_ps(ap[0]);
        __m256 acc0 = _mm256_mul_ps(v, _mm256_loadu_ps(b + f));
        __m256 acc1 = _mm256_mul_ps(v, _mm256_loadu_ps(b + f + 8));
        for (ptrdiff_t k = 1; k < K; k++) {
            v = _mm256_set1_ps(ap[k]);
            acc0 = _mm256_add_ps(acc0, _mm256_mul_ps(v, _mm256_loadu_ps(b + k * F + f)));
            acc1 = _mm256_add_ps(acc1, _mm256_mul_ps(v, _mm256_loadu_ps(b + k * F + f + 8)));
        }
        _mm256_storeu_ps(cp + f, acc0);
        _mm256_storeu_ps(cp + f + 8, acc1);
    }
    for (; f + 8 <= F; f += 8) {
        __m256 acc = _mm256_mul_ps(_mm256_set1_ps(ap[0]), _mm256_loadu_ps(b + f));
        for (ptrdiff_t k = 1; k < K; k++)
            acc = _mm256_add_ps(acc, _mm256_mul_ps(_mm256_set1_ps(ap[k]), _mm256_loadu_ps(b + k * F + f)));
        _mm256_storeu_ps(cp + f, acc);
    }
#endif
    for (; f < F; f++) {
        float s = ap[0] * b[f];
        for (ptrdiff_t k = 1; k < K; k++)
            s = s + ap[k] * b[k * F + f];
        cp[f] = s;
    }
}

#ifdef __AVX__
#define SMALL_GEMM_ROW4_STEP(R, A, K_)                                                                   \
    v = _mm256_set1_ps(A[K_]);                                                                         \
    s##R##0 = _mm256_add_ps(s##R##0, _mm256_mul_ps(v, b0));                                            \
    s##R##1 = _mm256_add_ps(s##R##1, _mm256_mul_ps(v, b1));
#endif

static inline void small_gemm_f32(float *restrict c, const float *restrict a, const float *restrict b,
                                  ptrdiff_t P, ptrdiff_t K, ptrdiff_t F)
{
    ptrdiff_t p = 0;
#ifdef __AVX__
    /* Four rows at a time: 8 independent accumulators per 16 channels, where one row's 2 chains
     * waited on the add latency (the 3 -> 16 channel first conv of the zoo nets, K = 27: see
     * benchmarks/RESULTS.md). Every element keeps the one-row order: a[0] * b[0], then + a[k] * b[k]. */
    for (; p + 4 <= P; p += 4) {
        const float *a0 = a + p * K, *a1 = a0 + K, *a2 = a1 + K, *a3 = a2 + K;
        float *c0 = c + p * F;
        ptrdiff_t f = 0;
        for (; f + 16 <= F; f += 16) {
            __m256 b0 = _mm256_loadu_ps(b + f), b1 = _mm256_loadu_ps(b + f + 8), v;
            v = _mm256_set1_ps(a0[0]);
            __m256 s00 = _mm256_mul_ps(v, b0), s01 = _mm256_mul_ps(v, b1);
            v = _mm256_set1_ps(a1[0]);
            __m256 s10 = _mm256_mul_ps(v, b0), s11 = _mm256_mul_ps(v, b1);
            v = _mm256_set1_ps(a2[0]);
            __m256 s20 = _mm256_mul_ps(v, b0), s21 = _mm256_mul_ps(v, b1);
            v = _mm256_set1_ps(a3[0]);
            __m256 s30 = _mm256_mul_ps(v, b0), s31 = _mm256_mul_ps(v, b1);
            for (ptrdiff_t k = 1; k < K; k++) {
                b0 = _mm256_loadu_ps(b + k * F + f);
                b1 = _mm256_loadu_ps(b + k * F + f + 8);
                SMALL_GEMM_ROW4_STEP(0, a0, k)
                SMALL_GEMM_ROW4_STEP(1, a1, k)
                SMALL_GEMM_ROW4_STEP(2, a2, k)
                SMALL_GEMM_ROW4_STEP(3, a3, k)
            }
            _mm256_storeu_ps(c0 + f, s00);
            _mm256_storeu_ps(c0 + f + 8, s01);
            _mm256_storeu_ps(c0 + F + f, s10);
            _mm256_storeu_ps(c0 + F + f + 8, s11);
            _mm256_storeu_ps(c0 + 2 * F + f, s20);
            _mm256_storeu_ps(c0 + 2 * F + f + 8, s21);
            _mm256_storeu_ps(c0 + 3 * F + f, s30);
            _mm256_storeu_ps(c0 + 3 * F + f + 8, s31);
        }
        small_gemm_row_f32(c0, a0, b, K, F, f);
        small_gemm_row_f32(c0 + F, a1, b, K, F, f);
        small_gemm_row_f32(c0 + 2 * F, a2, b, K, F, f);
        small_gemm_row_f32(c0 + 3 * F, a3, b, K, F, f);
    }
#endif
    for (; p < P; p++)
        small_gemm_row_f32(c + p * F, a + p * K, b, K, F, 0);
}

static inline void small_gemm_f64(double *restrict c, const double *restrict a, const double *restrict b,
                                  ptrdiff_t P, ptrdiff_t K, ptrdiff_t F)
{
    for (ptrdiff_t p = 0; p < P; p++) {
        const double *ap = a + p * K;
        double *cp = c + p * F;
        for (ptrdiff_t f = 0; f < F; f++) {
            double s = ap[0] * b[f];
            for (ptrdiff_t k = 1; k < K; k++)
                s = s + ap[k] * b[k * F + f];
            cp[f] = s;
        }
    }
}
#endif
