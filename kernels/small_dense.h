/* Row-major c (M, N) = a (M, K) @ b (K, N) for small weights (a dense layer of a small model: K = 256, N = 64 on
 * the digits CNN), rows m0 <= m < m1 only, N a multiple of 16. Shape letters: M rows of a and c, K the inner
 * dimension, N the columns of b and c; lda, ldb, ldc the row strides.
 *
 * Each c[m, n] is a[m, 0] * b[0, n], then a fused multiply-add per k in order: the same bits whatever the row block
 * a row falls in, so a row computed alone (one sample) or beside others (a batch), and any team of threads (each
 * takes its own rows), give the same bits. Blocks of 6 rows x 16 columns (12 of the 16 vector registers), then
 * pairs of rows x 32, 16 columns, then a single row x 64, 32, 16 columns, keep their sums in registers over the whole inner dimension: b's 16-column panel (K x 64 bytes)
 * stays in L1/L2 across the row blocks and nothing is packed. SciPy's OpenBLAS sgemm packs both operands per
 * call: on 64 x 256 @ 256 x 64 (1 thread, AMD Zen 4, avx2 level) it took 24-27 us against 19 us here (a multiply
 * and an add per k: 38 us, its add chains bound it). SMALL_DENSE_VECTOR is 0 where the level lacks FMA (the
 * caller keeps BLAS). Included by kernels/gemm.pyx (cdef extern).
 */
#ifndef MINICNN_SMALL_DENSE_H
#define MINICNN_SMALL_DENSE_H
#include <stddef.h>
#if defined(__AVX__) && defined(__FMA__)
#include <immintrin.h>
#define SMALL_DENSE_VECTOR 1

#define SMALL_DENSE_BLOCK(MB)                                                                          \
static inline void _small_dense_block##MB(float *restrict c, const float *restrict a, const float *restrict b, \
                                          ptrdiff_t K, ptrdiff_t lda, ptrdiff_t ldb, ptrdiff_t ldc)    \
{                                                                                                      \
    __m256 s0[MB], s1[MB], b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);                       \
    for (int r = 0; r < MB; r++) {                                                                     \
        __m256 v = _mm256_set1_ps(a[r * lda]);                                                         \
        s0[r] = _mm256_mul_ps(v, b0);                                                                  \
        s1[r] = _mm256_mul_ps(v, b1);                                                                  \
    }                                                                                                  \
    for (ptrdiff_t k = 1; k < K; k++) {                                                                \
        b0 = _mm256_loadu_ps(b + k * ldb);                                                             \
        b1 = _mm256_loadu_ps(b + k * ldb + 8);                                                         \
        for (int r = 0; r < MB; r++) {                                                                 \
            __m256 v = _mm256_set1_ps(a[r * lda + k]);                                                 \
            s0[r] = _mm256_fmadd_ps(v, b0, s0[r]);                                                     \
            s1[r] = _mm256_fmadd_ps(v, b1, s1[r]);                                                     \
        }                                                                                              \
    }                                                                                                  \
    for (int r = 0; r < MB; r++) {                                                                     \
        _mm256_storeu_ps(c + r * ldc, s0[r]);                                                          \
        _mm256_storeu_ps(c + r * ldc + 8, s1[r]);                                                      \
    }                                                                                                  \
}
SMALL_DENSE_BLOCK(6)
#undef SMALL_DENSE_BLOCK

/* One row x NP panels of 8 columns (the rows left after the 6-row blocks: one sample, or a batch's last rows): NP
 * independent chains, where a 16-column block on one row waited on the latency of its 2. */
#define SMALL_DENSE_ROW(NP)                                                                            \
static inline void _small_dense_row##NP(float *restrict c, const float *restrict a, const float *restrict b, \
                                        ptrdiff_t K, ptrdiff_t ldb)                                    \
{                                                                                                      \
    __m256 s[NP], v = _mm256_set1_ps(a[0]);                                                            \
    for (int p = 0; p < NP; p++)                                                                       \
        s[p] = _mm256_mul_ps(v, _mm256_loadu_ps(b + 8 * p));                                           \
    for (ptrdiff_t k = 1; k < K; k++) {                                                                \
        v = _mm256_set1_ps(a[k]);                                                                      \
        for (int p = 0; p < NP; p++)                                                                   \
            s[p] = _mm256_fmadd_ps(v, _mm256_loadu_ps(b + k * ldb + 8 * p), s[p]);                     \
    }                                                                                                  \
    for (int p = 0; p < NP; p++)                                                                       \
        _mm256_storeu_ps(c + 8 * p, s[p]);                                                             \
}
SMALL_DENSE_ROW(8)
SMALL_DENSE_ROW(4)
SMALL_DENSE_ROW(2)
#undef SMALL_DENSE_ROW

/* Two rows x NP panels of 8 columns (2 * NP chains): the pairs of rows left after the 6-row blocks. */
#define SMALL_DENSE_ROWS2(NP)                                                                          \
static inline void _small_dense_rows2_##NP(float *restrict c, const float *restrict a, const float *restrict b, \
                                           ptrdiff_t K, ptrdiff_t lda, ptrdiff_t ldb, ptrdiff_t ldc)   \
{                                                                                                      \
    __m256 s[NP], t[NP], v = _mm256_set1_ps(a[0]), u = _mm256_set1_ps(a[lda]);                         \
    for (int p = 0; p < NP; p++) {                                                                     \
        __m256 bp = _mm256_loadu_ps(b + 8 * p);                                                        \
        s[p] = _mm256_mul_ps(v, bp);                                                                   \
        t[p] = _mm256_mul_ps(u, bp);                                                                   \
    }                                                                                                  \
    for (ptrdiff_t k = 1; k < K; k++) {                                                                \
        v = _mm256_set1_ps(a[k]);                                                                      \
        u = _mm256_set1_ps(a[lda + k]);                                                                \
        for (int p = 0; p < NP; p++) {                                                                 \
            __m256 bp = _mm256_loadu_ps(b + k * ldb + 8 * p);                                          \
            s[p] = _mm256_fmadd_ps(v, bp, s[p]);                                                       \
            t[p] = _mm256_fmadd_ps(u, bp, t[p]);                                                       \
        }                                                                                              \
    }                                                                                                  \
    for (int p = 0; p < NP; p++) {                                                                     \
        _mm256_storeu_ps(c + 8 * p, s[p]);                                                             \
        _mm256_storeu_ps(c + ldc + 8 * p, t[p]);                                                       \
    }                                                                                                  \
}
SMALL_DENSE_ROWS2(4)
SMALL_DENSE_ROWS2(2)
#undef SMALL_DENSE_ROWS2

static inline void small_dense_f32(float *restrict c, const float *restrict a, const float *restrict b, ptrdiff_t K,
                                   ptrdiff_t N, ptrdiff_t lda, ptrdiff_t ldb, ptrdiff_t ldc, ptrdiff_t m0,
                                   ptrdiff_t m1)
{
    ptrdiff_t m6 = m0 + (m1 - m0) / 6 * 6;
    for (ptrdiff_t n = 0; n + 16 <= N; n += 16)
        for (ptrdiff_t m = m0; m < m6; m += 6)
            _small_dense_block6(c + m * ldc + n, a + m * lda, b + n, K, lda, ldb, ldc);
    ptrdiff_t m = m6;
    for (; m + 2 <= m1; m += 2) {
        ptrdiff_t n = 0;
        for (; n + 32 <= N; n += 32)
            _small_dense_rows2_4(c + m * ldc + n, a + m * lda, b + n, K, lda, ldb, ldc);
        for (; n + 16 <= N; n += 16)
            _small_dense_rows2_2(c + m * ldc + n, a + m * lda, b + n, K, lda, ldb, ldc);
    }
    for (; m < m1; m++) {
        ptrdiff_t n = 0;
        for (; n + 64 <= N; n += 64)
            _small_dense_row8(c + m * ldc + n, a + m * lda, b + n, K, ldb);
        for (; n + 32 <= N; n += 32)
            _small_dense_row4(c + m * ldc + n, a + m * lda, b + n, K, ldb);
        for (; n + 16 <= N; n += 16)
            _small_dense_row2(c + m * ldc + n, a + m * lda, b + n, K, ldb);
    }
}
#else
#define SMALL_DENSE_VECTOR 0
static inline void small_dense_f32(float *c, const float *a, const float *b, ptrdiff_t K, ptrdiff_t N,
                                   ptrdiff_t lda, ptrdiff_t ldb, ptrdiff_t ldc, ptrdiff_t m0, ptrdiff_t m1)
{
    (void)c; (void)a; (void)b; (void)K; (void)N; (void)lda; (void)ldb; (void)ldc; (void)m0; (void)m1;
}
#endif
#endif
