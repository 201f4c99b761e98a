/* Row-major c (P, F) = a (P, K) @ b (K, F) for a shallow K (a first conv layer on 1-3 channels).
 *
 * Each output row is summed over k in order, first term a[0] * b[0, f], no fused multiply-add:
 * the same rounding as the scalar loop (and, up to summation order, as BLAS). With AVX the
 * accumulators of 16 (then 8) output channels stay in registers across k; the scalar tail
 * handles the rest. Included by kernels/conv.pyx (cdef extern).
 */
#ifndef MINICNN_SMALL_GEMM_H
#define MINICNN_SMALL_GEMM_H
#include <stddef.h>
#ifdef __AVX__
#include <immintrin.h>
#endif

static inline void small_gemm_f32(float *restrict c, const float *restrict a, const float *restrict b,
                                  ptrdiff_t P, ptrdiff_t K, ptrdiff_t F)
{
    for (ptrdiff_t p = 0; p < P; p++) {
        const float *ap = a + p * K;
        float *cp = c + p * F;
        ptrdiff_t f = 0;
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
