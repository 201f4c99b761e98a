/* Row-major c (M, N) = a (M, K) @ b (K, N) for a few rows and a long inner dimension (a dense layer on one
 * sample or a small batch after a large feature map: M = 1..16, K = 9216..65536, N = 128), columns n0 <= n < n1
 * only. Shape letters: M rows of a and c, K the inner dimension, N the columns of b and c; lda, ldb, ldc the row
 * strides; kc the rows of b per chunk.
 *
 * Each c[m, n] is summed over k in order, first term a[m, 0] * b[0, n], one rounding per multiply and per add (no
 * fused multiply-add; the module is compiled with -ffp-contract=off): the same bits whatever the column range,
 * the row count, the vector width or the block a value falls in, so a row computed alone or beside others gives the
 * same bits, and so does a team of any size working on fixed parts (kernels/gemm.pyx gives each thread slices of
 * the inner dimension, fixed by the shape, and adds their sums in slice order).
 *
 * The product is bound by reading b (8 MiB for 16384 x 128 floats), once per call: the inner dimension runs in
 * chunks of kc rows; within a chunk, blocks of rows x vectors of columns keep their sums in registers while they
 * pass over the chunk (the first pass reads the chunk from memory, the next ones from L1/L2), and the sums wait in
 * c between chunks. Register blocks (AVX: 16 vector registers): 4 rows x 2 vectors, 3 x 3, 2 x 4 and one row x 8
 * vectors (a one-row product: 64 floats of sums, 8 independent chains), then one-vector blocks, then a scalar tail
 * for the last columns. From 2 rows (pf > 0) each block prefetches its columns pf rows ahead: it walks a chunk in
 * strided column panels, which the hardware prefetcher follows poorly. A float and a double version (the same code,
 * a vector of 8 or 4 values).
 * Included by kernels/gemm.pyx (cdef extern).
 */
#ifndef MINICNN_STREAM_GEMM_H
#define MINICNN_STREAM_GEMM_H
#include <stddef.h>
#include <string.h>
#ifdef __AVX__
#define STREAM_GEMM_VECTOR 1
#define STREAM_GEMM_VBYTES 32
#else
#define STREAM_GEMM_VECTOR 0   /* no vector path: the caller keeps BLAS */
#define STREAM_GEMM_VBYTES 16
#endif

#define STREAM_UNROLL _Pragma("GCC unroll 16")
/* At x86-64-v4 (AVX-512: 32 vector registers, multiplies that take their broadcast operand from memory) groups of 8
 * rows run as blocks of 8 rows x 4 vectors first (kernels/gemm.pyx has the measurement): the same sums in the same
 * order, so the same bits as the blocks of 4 rows. */
#if defined(__AVX512F__) && defined(__AVX512VL__)
#define STREAM_ROWS8 1
#else
#define STREAM_ROWS8 0
#endif

/* One register block: rows [0, MB) of a/c (already offset), vectors [n, n + NB * W) of columns, chunk [k0, k1). */
#define STREAM_BLOCK(T, V, W, MB, NB)                                                                          \
static inline void _stream_block_##T##_##MB##x##NB(T *restrict c, const T *restrict a, const T *restrict b,   \
                                                    ptrdiff_t lda, ptrdiff_t ldb, ptrdiff_t ldc, ptrdiff_t n,   \
                                                    ptrdiff_t k0, ptrdiff_t k1, ptrdiff_t pf)                   \
{                                                                                                              \
    V s[MB][NB], bv;                                                                                           \
    T av[MB];                                                                                                  \
    ptrdiff_t k = k0;                                                                                          \
    if (k0 == 0) {                                                                                             \
        STREAM_UNROLL for (int j = 0; j < NB; j++) {                                                           \
            memcpy(&bv, b + n + j * W, sizeof bv);                                                             \
            STREAM_UNROLL for (int i = 0; i < MB; i++) s[i][j] = a[i * lda] * bv;                              \
        }                                                                                                      \
        k = 1;                                                                                                 \
    } else {                                                                                                   \
        STREAM_UNROLL for (int i = 0; i < MB; i++)                                                             \
            STREAM_UNROLL for (int j = 0; j < NB; j++) memcpy(&s[i][j], c + i * ldc + n + j * W, sizeof bv);   \
    }                                                                                                          \
    for (; k < k1; k++) {                                                                                      \
        if (pf)                                                                                                \
            STREAM_UNROLL for (int j = 0; j < NB; j++)                                                         \
                if ((j * W * (int)sizeof(T)) % 64 == 0)                                                        \
                    __builtin_prefetch(b + (k + pf) * ldb + n + j * W, 0, 3);                                  \
        STREAM_UNROLL for (int i = 0; i < MB; i++) av[i] = a[i * lda + k];                                     \
        STREAM_UNROLL for (int j = 0; j < NB; j++) {                                                           \
            memcpy(&bv, b + k * ldb + n + j * W, sizeof bv);                                                   \
            STREAM_UNROLL for (int i = 0; i < MB; i++) s[i][j] = s[i][j] + av[i] * bv;                         \
        }                                                                                                      \
    }                                                                                                          \
    STREAM_UNROLL for (int i = 0; i < MB; i++)                                                                 \
        STREAM_UNROLL for (int j = 0; j < NB; j++) memcpy(c + i * ldc + n + j * W, &s[i][j], sizeof bv);       \
}

/* Rows [m, m + MB): column panels of NB vectors, then single vectors; returns the first column left over. */
#define STREAM_PANELS(T, MB, NB, W)                                                                            \
    {                                                                                                          \
        ptrdiff_t n = n0;                                                                                      \
        for (; n + NB * W <= n1; n += NB * W)                                                                  \
            _stream_block_##T##_##MB##x##NB(c + m * ldc, a + m * lda, b, lda, ldb, ldc, n, k0, k1, pf);           \
        for (; n + W <= n1; n += W)                                                                            \
            _stream_block_##T##_##MB##x1(c + m * ldc, a + m * lda, b, lda, ldb, ldc, n, k0, k1, pf);              \
        tail = n;                                                                                              \
    }

#if STREAM_ROWS8
#define STREAM_ROWS8_BLOCKS(T, V, W) STREAM_BLOCK(T, V, W, 8, 4) STREAM_BLOCK(T, V, W, 8, 1)
/* Rows [0, r8) of the chunk [k0, k1) in groups of 8 (r8 a multiple of 8), their last columns one value at a time. */
#define STREAM_ROWS8_PASS(T, W)                                                                                \
    if (r8) {                                                                                                  \
        ptrdiff_t n = n0;                                                                                      \
        for (; n + 4 * W <= n1; n += 4 * W)                                                                    \
            for (ptrdiff_t g = 0; g < r8; g += 8)                                                              \
                _stream_block_##T##_8x4(c + g * ldc, a + g * lda, b, lda, ldb, ldc, n, k0, k1, pf);            \
        for (; n + W <= n1; n += W)                                                                            \
            for (ptrdiff_t g = 0; g < r8; g += 8)                                                              \
                _stream_block_##T##_8x1(c + g * ldc, a + g * lda, b, lda, ldb, ldc, n, k0, k1, pf);            \
        if (n < n1)                                                                                            \
            _stream_tail_##T(c, a, b, r8, lda, ldb, ldc, n, n1, k0, k1);                                       \
    }
#else
#define STREAM_ROWS8_BLOCKS(T, V, W)
#define STREAM_ROWS8_PASS(T, W)
#endif

#define STREAM_GEMM(T, V, W)                                                                                   \
typedef T V __attribute__((vector_size(STREAM_GEMM_VBYTES)));                                                 \
STREAM_BLOCK(T, V, W, 4, 2) STREAM_BLOCK(T, V, W, 4, 1) STREAM_BLOCK(T, V, W, 3, 3) STREAM_BLOCK(T, V, W, 3, 1) \
STREAM_BLOCK(T, V, W, 2, 4) STREAM_BLOCK(T, V, W, 2, 1) STREAM_BLOCK(T, V, W, 1, 8) STREAM_BLOCK(T, V, W, 1, 1) \
STREAM_ROWS8_BLOCKS(T, V, W)                                                                                   \
                                                                                                               \
/* Rows [0, M) of c, columns [n, n1), chunk [k0, k1) one value at a time (the same order as the vectors). */   \
static inline void _stream_tail_##T(T *restrict c, const T *restrict a, const T *restrict b, ptrdiff_t M,     \
                                    ptrdiff_t lda, ptrdiff_t ldb, ptrdiff_t ldc, ptrdiff_t n, ptrdiff_t n1,   \
                                    ptrdiff_t k0, ptrdiff_t k1)                                               \
{                                                                                                              \
    for (ptrdiff_t m = 0; m < M; m++)                                                                          \
        for (ptrdiff_t j = n; j < n1; j++) {                                                                   \
            const T *am = a + m * lda;                                                                         \
            ptrdiff_t k = k0;                                                                                  \
            T s;                                                                                               \
            if (k0 == 0) { s = am[0] * b[j]; k = 1; } else s = c[m * ldc + j];                                 \
            for (; k < k1; k++)                                                                                \
                s = s + am[k] * b[k * ldb + j];                                                                \
            c[m * ldc + j] = s;                                                                                \
        }                                                                                                      \
}                                                                                                              \
                                                                                                               \
/* Rows [0, M) of the chunk [k0, k1): groups of 4 rows, then the 1-3 rows left. */                            \
static inline void _stream_chunk_##T(T *restrict c, const T *restrict a, const T *restrict b, ptrdiff_t M,     \
                                     ptrdiff_t lda, ptrdiff_t ldb, ptrdiff_t ldc, ptrdiff_t n0, ptrdiff_t n1,  \
                                     ptrdiff_t k0, ptrdiff_t k1, ptrdiff_t pf)                                 \
{                                                                                                              \
    {                                                                                                          \
        ptrdiff_t m = M - M % 4, tail = n0, n = n0;                                                            \
        for (; n + 2 * W <= n1; n += 2 * W)   /* every group of 4 rows over a panel while it is in L1 */       \
            for (ptrdiff_t g = 0; g < m; g += 4)                                                               \
                _stream_block_##T##_4x2(c + g * ldc, a + g * lda, b, lda, ldb, ldc, n, k0, k1, pf);               \
        for (; n + W <= n1; n += W)                                                                            \
            for (ptrdiff_t g = 0; g < m; g += 4)                                                               \
                _stream_block_##T##_4x1(c + g * ldc, a + g * lda, b, lda, ldb, ldc, n, k0, k1, pf);               \
        if (m)                                                                                                 \
            tail = n;                                                                                          \
        if (M - m == 3)                                                                                        \
            STREAM_PANELS(T, 3, 3, W)                                                                          \
        else if (M - m == 2)                                                                                   \
            STREAM_PANELS(T, 2, 4, W)                                                                          \
        else if (M - m == 1)                                                                                   \
            STREAM_PANELS(T, 1, 8, W)                                                                          \
        if (tail < n1)                                                                                         \
            _stream_tail_##T(c, a, b, M, lda, ldb, ldc, tail, n1, k0, k1);                                     \
    }                                                                                                          \
}                                                                                                              \
                                                                                                               \
static inline void stream_gemm_##T(T *restrict c, const T *restrict a, const T *restrict b, ptrdiff_t M,      \
                                   ptrdiff_t K, ptrdiff_t lda, ptrdiff_t ldb, ptrdiff_t ldc, ptrdiff_t n0,    \
                                   ptrdiff_t n1, ptrdiff_t kc, ptrdiff_t pfd)                                  \
{                                                                                                              \
    ptrdiff_t r8 = STREAM_ROWS8 ? M - M % 8 : 0;                                                               \
    for (ptrdiff_t k0 = 0; k0 < K; k0 += kc) {                                                                 \
        ptrdiff_t k1 = k0 + kc < K ? k0 + kc : K, pf = k1 + pfd <= K ? pfd : 0;                                \
        STREAM_ROWS8_PASS(T, W)                                                                                \
        if (r8 < M)                                                                                            \
            _stream_chunk_##T(c + r8 * ldc, a + r8 * lda, b, M - r8, lda, ldb, ldc, n0, n1, k0, k1, pf);       \
    }                                                                                                          \
}

STREAM_GEMM(float, stream_vf, (STREAM_GEMM_VBYTES / 4))
STREAM_GEMM(double, stream_vd, (STREAM_GEMM_VBYTES / 8))

#endif
