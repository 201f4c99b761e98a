/* Row-major c (M, N) = a (M, K) @ b (K, N) for a few rows and a long inner dimension (a dense layer after a
 * large feature map: K = 65536, N = 128), columns n0 <= n < n1 only.
 *
 * Each c[m, n] is summed over k in order, first term a[m, 0] * b[0, n], one rounding per multiply and per
 * add (no fused multiply-add): the same bits whatever the column range, the row count or the block a
 * value falls in. The inner dimension runs in chunks of kc rows: the chunk's 16-column slab of b
 * (kc x 16 values, 16 KiB for kc = 256) stays in L1 while every block of 4 rows passes over it, so b streams
 * from memory once, where a BLAS sgemm packs all of it first; the partial sums wait in c between chunks.
 * Included by kernels/gemm.pyx (cdef extern).
 */
#ifndef MINICNN_STREAM_GEMM_H
#define MINICNN_STREAM_GEMM_H
#include <stddef.h>
#ifdef __AVX__
#include <immintrin.h>
#define STREAM_GEMM_VECTOR 1
#else
#define STREAM_GEMM_VECTOR 0   /* no vector path: the caller keeps BLAS */
#endif

/* c[m, n] for one row and columns [n, n1), inner chunk [k0, k1) (k0 == 0: the first term starts the sum). */
static inline void _stream_row_tail_f32(float *restrict c, const float *restrict a, const float *restrict b,
                                        ptrdiff_t ldb, ptrdiff_t n, ptrdiff_t n1, ptrdiff_t k0, ptrdiff_t k1)
{
    for (; n < n1; n++) {
        ptrdiff_t k = k0;
        float s;
        if (k0 == 0) { s = a[0] * b[n]; k = 1; } else s = c[n];
        for (; k < k1; k++)
            s = s + a[k] * b[k * ldb + n];
        c[n] = s;
    }
}

static inline void stream_gemm_f32(float *restrict c, const float *restrict a, const float *restrict b,
                                   ptrdiff_t M, ptrdiff_t K, ptrdiff_t lda, ptrdiff_t ldb, ptrdiff_t ldc,
                                   ptrdiff_t n0, ptrdiff_t n1, ptrdiff_t kc)
{
    for (ptrdiff_t k0 = 0; k0 < K; k0 += kc) {
        ptrdiff_t k1 = k0 + kc < K ? k0 + kc : K;
        ptrdiff_t n = n0;
#ifdef __AVX__
        for (; n + 16 <= n1; n += 16) {
            ptrdiff_t m = 0;
            for (; m + 4 <= M; m += 4) {
                const float *a0 = a + m * lda, *a1 = a0 + lda, *a2 = a1 + lda, *a3 = a2 + lda;
                float *c0 = c + m * ldc + n, *c1 = c0 + ldc, *c2 = c1 + ldc, *c3 = c2 + ldc;
                __m256 s00, s01, s10, s11, s20, s21, s30, s31, b0, b1, v;
                ptrdiff_t k = k0;
                if (k0 == 0) {
                    b0 = _mm256_loadu_ps(b + n);
                    b1 = _mm256_loadu_ps(b + n + 8);
                    v = _mm256_set1_ps(a0[0]); s00 = _mm256_mul_ps(v, b0); s01 = _mm256_mul_ps(v, b1);
                    v = _mm256_set1_ps(a1[0]); s10 = _mm256_mul_ps(v, b0); s11 = _mm256_mul_ps(v, b1);
                    v = _mm256_set1_ps(a2[0]); s20 = _mm256_mul_ps(v, b0); s21 = _mm256_mul_ps(v, b1);
                    v = _mm256_set1_ps(a3[0]); s30 = _mm256_mul_ps(v, b0); s31 = _mm256_mul_ps(v, b1);
                    k = 1;
                } else {
                    s00 = _mm256_loadu_ps(c0); s01 = _mm256_loadu_ps(c0 + 8);
                    s10 = _mm256_loadu_ps(c1); s11 = _mm256_loadu_ps(c1 + 8);
                    s20 = _mm256_loadu_ps(c2); s21 = _mm256_loadu_ps(c2 + 8);
                    s30 = _mm256_loadu_ps(c3); s31 = _mm256_loadu_ps(c3 + 8);
                }
                for (; k < k1; k++) {
                    b0 = _mm256_loadu_ps(b + k * ldb + n);
                    b1 = _mm256_loadu_ps(b + k * ldb + n + 8);
                    v = _mm256_set1_ps(a0[k]);
                    s00 = _mm256_add_ps(s00, _mm256_mul_ps(v, b0)); s01 = _mm256_add_ps(s01, _mm256_mul_ps(v, b1));
                    v = _mm256_set1_ps(a1[k]);
                    s10 = _mm256_add_ps(s10, _mm256_mul_ps(v, b0)); s11 = _mm256_add_ps(s11, _mm256_mul_ps(v, b1));
                    v = _mm256_set1_ps(a2[k]);
                    s20 = _mm256_add_ps(s20, _mm256_mul_ps(v, b0)); s21 = _mm256_add_ps(s21, _mm256_mul_ps(v, b1));
                    v = _mm256_set1_ps(a3[k]);
                    s30 = _mm256_add_ps(s30, _mm256_mul_ps(v, b0)); s31 = _mm256_add_ps(s31, _mm256_mul_ps(v, b1));
                }
                _mm256_storeu_ps(c0, s00); _mm256_storeu_ps(c0 + 8, s01);
                _mm256_storeu_ps(c1, s10); _mm256_storeu_ps(c1 + 8, s11);
                _mm256_storeu_ps(c2, s20); _mm256_storeu_ps(c2 + 8, s21);
                _mm256_storeu_ps(c3, s30); _mm256_storeu_ps(c3 + 8, s31);
            }
            for (; m < M; m++) {
                const float *am = a + m * lda;
                float *cm = c + m * ldc + n;
                __m256 s0, s1, v;
                ptrdiff_t k = k0;
                if (k0 == 0) {
                    v = _mm256_set1_ps(am[0]);
                    s0 = _mm256_mul_ps(v, _mm256_loadu_ps(b + n));
                    s1 = _mm256_mul_ps(v, _mm256_loadu_ps(b + n + 8));
                    k = 1;
                } else {
                    s0 = _mm256_loadu_ps(cm);
                    s1 = _mm256_loadu_ps(cm + 8);
                }
                for (; k < k1; k++) {
                    v = _mm256_set1_ps(am[k]);
                    s0 = _mm256_add_ps(s0, _mm256_mul_ps(v, _mm256_loadu_ps(b + k * ldb + n)));
                    s1 = _mm256_add_ps(s1, _mm256_mul_ps(v, _mm256_loadu_ps(b + k * ldb + n + 8)));
                }
                _mm256_storeu_ps(cm, s0);
                _mm256_storeu_ps(cm + 8, s1);
            }
        }
#endif
        if (n < n1)
            for (ptrdiff_t m = 0; m < M; m++)
                _stream_row_tail_f32(c + m * ldc, a + m * lda, b, ldb, n, n1, k0, k1);
    }
}
#endif
