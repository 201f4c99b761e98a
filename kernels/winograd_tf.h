/* Winograd F(2x2, 3x3) transforms (Lavin & Gray 2015), vectorized over the channel axis (NHWC).
 *
 *   B^T = [1  0 -1  0]     G = [ 1    0    0 ]     A^T = [1  1  1  0]
 *         [0  1  1  0]         [1/2  1/2  1/2]           [0  1 -1 -1]
 *         [0 -1  1  0]         [1/2 -1/2  1/2]
 *         [0  1  0 -1]         [ 0    0    1 ]
 *
 * Input tile d (4x4), filter g (3x3), output tile Y (2x2):
 *   V = B^T d B,  U = G g G^T,  Y = A^T (U .* V) A  (summed over input channels).
 * Position k = 4 * r + s of the 4x4 transformed tile is stored at ``base + k * stride``.
 * Every operation is a plain add/subtract (or * 0.5, exact) in the data precision, in a fixed
 * order; no fused multiply-add (the build uses -ffp-contract=off).
 * Included by kernels/winograd.pyx and kernels/_winograd_tile.pxi (cdef extern).
 */
#ifndef MINICNN_WINOGRAD_TF_H
#define MINICNN_WINOGRAD_TF_H
#include <stddef.h>

/* Prefetch ``bytes`` from ``p`` for reading, one request per 64-byte line. */
static inline void wino_prefetch(const void *p, ptrdiff_t bytes)
{
    const char *q = (const char *)p;
    for (ptrdiff_t l = 0; l < bytes; l += 64)
        __builtin_prefetch(q + l, 0, 3);
}

/* Filters per chunk of the weight transform (two local tables of 25 x 64 elements). */
#define WINO_WCHUNK 64

/* GCC turns the weight transform's row copies into inline ``rep movsq`` (a memcpy of 256 bytes): 3/4 of the
 * transform's time in a profile. Plain vector loads and stores instead (same values). */
#if defined(__GNUC__) && !defined(__clang__)
#define WINO_NO_MEMCPY __attribute__((optimize("no-tree-loop-distribute-patterns")))
#else
#define WINO_NO_MEMCPY
#endif

#define WINO_DEFINE_TRANSFORMS(T, SUFFIX)                                                          \
/* U[k] (C x F) of the filter w (3, 3, C, F): U[k][c][f] at u + k * ustride + c * F + f.               \
 * Worked in chunks of WINO_WCHUNK filters through two small local tables: the 9 taps of a chunk are   \
 * read row by row into g, the 16 results written into o, then each result row copied out whole. The  \
 * taps (and the 16 matrices U_k) lie C * F elements apart: for C * F a multiple of 1024 floats every   \
 * one of the 9 + 16 rows maps to the same L1 set, and touching them all per 8 filters thrashed it      \
 * (measured 55 us for C = 32, F = 64, 112 us for 64 x 64, against ~3 us for 16 x 16). Same            \
 * operations in the same order per element as before: the same bits. */                               \
static inline WINO_NO_MEMCPY void wino_weight_##SUFFIX(T *restrict u, ptrdiff_t ustride,           \
                                        const T *restrict w, ptrdiff_t C, ptrdiff_t F)             \
{                                                                                                   \
    const T h = (T)0.5;                                                                             \
    const ptrdiff_t s = C * F; /* stride between taps (i, j) */                                     \
    T g[9][WINO_WCHUNK], o[16][WINO_WCHUNK];                                                        \
    for (ptrdiff_t c = 0; c < C; c++) {                                                             \
        for (ptrdiff_t f0 = 0; f0 < F; f0 += WINO_WCHUNK) {                                         \
            const ptrdiff_t n = F - f0 < WINO_WCHUNK ? F - f0 : WINO_WCHUNK;                        \
            for (int k = 0; k < 9; k++) {                                                           \
                const T *src = w + k * s + c * F + f0;                                              \
                for (ptrdiff_t j = 0; j < n; j++)                                                   \
                    g[k][j] = src[j];                                                               \
            }                                                                                       \
            for (ptrdiff_t j = 0; j < n; j++) {                                                     \
                T g00 = g[0][j], g01 = g[1][j], g02 = g[2][j];                                      \
                T g10 = g[3][j], g11 = g[4][j], g12 = g[5][j];                                      \
                T g20 = g[6][j], g21 = g[7][j], g22 = g[8][j];                                      \
                /* t = G g (4 x 3), rows */                                                        \
                T t00 = g00, t01 = g01, t02 = g02;                                                  \
                T t10 = (g00 + g10 + g20) * h, t11 = (g01 + g11 + g21) * h, t12 = (g02 + g12 + g22) * h; \
                T t20 = (g00 - g10 + g20) * h, t21 = (g01 - g11 + g21) * h, t22 = (g02 - g12 + g22) * h; \
                T t30 = g20, t31 = g21, t32 = g22;                                                  \
                /* U = t G^T (4 x 4) */                                                            \
                o[0][j] = t00;                                                                      \
                o[1][j] = (t00 + t01 + t02) * h;                                                    \
                o[2][j] = (t00 - t01 + t02) * h;                                                    \
                o[3][j] = t02;                                                                      \
                o[4][j] = t10;                                                                      \
                o[5][j] = (t10 + t11 + t12) * h;                                                    \
                o[6][j] = (t10 - t11 + t12) * h;                                                    \
                o[7][j] = t12;                                                                      \
                o[8][j] = t20;                                                                      \
                o[9][j] = (t20 + t21 + t22) * h;                                                    \
                o[10][j] = (t20 - t21 + t22) * h;                                                   \
                o[11][j] = t22;                                                                     \
                o[12][j] = t30;                                                                     \
                o[13][j] = (t30 + t31 + t32) * h;                                                   \
                o[14][j] = (t30 - t31 + t32) * h;                                                   \
                o[15][j] = t32;                                                                     \
            }                                                                                       \
            for (int k = 0; k < 16; k++) {                                                          \
                T *dst = u + k * ustride + c * F + f0;                                              \
                for (ptrdiff_t j = 0; j < n; j++)                                                   \
                    dst[j] = o[k][j];                                                               \
            }                                                                                       \
        }                                                                                           \
    }                                                                                               \
}                                                                                                   \
                                                                                                    \
/* V = B^T d B of one 4x4xC input tile; pixel (i, j) of d at d + i * row + j * C (channels c0..C-1). */ \
static inline void wino_input_tail_##SUFFIX(T *restrict v, ptrdiff_t vstride, const T *restrict d,     \
                                            ptrdiff_t row, ptrdiff_t C, ptrdiff_t c0)                  \
{                                                                                                   \
    const T *d0 = d, *d1 = d + row, *d2 = d + 2 * row, *d3 = d + 3 * row;                           \
    for (ptrdiff_t c = c0; c < C; c++) {                                                            \
        T t[4][4];                                                                                  \
        for (int j = 0; j < 4; j++) {                                                               \
            T a0 = d0[j * C + c], a1 = d1[j * C + c], a2 = d2[j * C + c], a3 = d3[j * C + c];       \
            t[0][j] = a0 - a2;                                                                      \
            t[1][j] = a1 + a2;                                                                      \
            t[2][j] = a2 - a1;                                                                      \
            t[3][j] = a1 - a3;                                                                      \
        }                                                                                           \
        for (int r = 0; r < 4; r++) {                                                               \
            v[(4 * r + 0) * vstride + c] = t[r][0] - t[r][2];                                       \
            v[(4 * r + 1) * vstride + c] = t[r][1] + t[r][2];                                       \
            v[(4 * r + 2) * vstride + c] = t[r][2] - t[r][1];                                       \
            v[(4 * r + 3) * vstride + c] = t[r][1] - t[r][3];                                       \
        }                                                                                           \
    }                                                                                               \
}                                                                                                   \
                                                                                                    \
/* The max-pool rule of kernels/pool.pyx: strict '>' keeps the first maximum; a NaN wins and      \
 * then stays. */                                                                                  \
static inline T wino_max_##SUFFIX(T best, T v)                                                      \
{                                                                                                   \
    return ((v > best) | ((v != v) & (best == best))) ? v : best;                                   \
}                                                                                                   \
                                                                                                    \
/* Y = A^T M A of one tile (filters f0..F-1). pool == 0: the 2x2xF output block, pixel (i, j) at   \
 * y + i * row + j * F. pool != 0: one pixel y[f] = max of the tile's 4 outputs, taken in raster   \
 * order (0,0), (0,1), (1,0), (1,1) with wino_max (row unused). The flag is a compile-time        \
 * constant at every call site (wino_output / wino_output_max), so each variant is inlined alone. */ \
static inline void wino_output_tail_##SUFFIX(T *restrict y, ptrdiff_t row, const T *restrict m,      \
                                             ptrdiff_t mstride, ptrdiff_t F, ptrdiff_t f0, int pool) \
{                                                                                                   \
    for (ptrdiff_t f = f0; f < F; f++) {                                                            \
        T s0[4], s1[4];                                                                             \
        for (int j = 0; j < 4; j++) {                                                               \
            T m0 = m[(0 + j) * mstride + f], m1 = m[(4 + j) * mstride + f];                         \
            T m2 = m[(8 + j) * mstride + f], m3 = m[(12 + j) * mstride + f];                        \
            s0[j] = m0 + m1 + m2;                                                                   \
            s1[j] = m1 - m2 - m3;                                                                   \
        }                                                                                           \
        T y00 = s0[0] + s0[1] + s0[2], y01 = s0[1] - s0[2] - s0[3];                                 \
        T y10 = s1[0] + s1[1] + s1[2], y11 = s1[1] - s1[2] - s1[3];                                 \
        if (pool) {                                                                                 \
            y[f] = wino_max_##SUFFIX(wino_max_##SUFFIX(wino_max_##SUFFIX(y00, y01), y10), y11);     \
        } else {                                                                                    \
            y[f] = y00;                                                                             \
            y[F + f] = y01;                                                                         \
            y[row + f] = y10;                                                                       \
            y[row + F + f] = y11;                                                                   \
        }                                                                                           \
    }                                                                                               \
}

WINO_DEFINE_TRANSFORMS(float, f32)
WINO_DEFINE_TRANSFORMS(double, f64)

#undef WINO_DEFINE_TRANSFORMS

/* The same operations, in the same order, on AVX vectors of channels (8 floats / 4 doubles);
 * the scalar functions above finish the remaining channels. Each lane computes exactly what the
 * scalar code computes for its channel, so the results do not depend on C's remainder. */
#ifdef __AVX__
#include <immintrin.h>
#define WINO_DEFINE_VECTOR(T, SUFFIX, VT, LANES, LOAD, STORE, ADD, SUB, CMP, AND, OR, BLEND)                            \
static inline void wino_input_##SUFFIX(T *restrict v, ptrdiff_t vstride, const T *restrict d,       \
                                       ptrdiff_t row, ptrdiff_t C)                                  \
{                                                                                                   \
    ptrdiff_t c = 0;                                                                                \
    for (; c + LANES <= C; c += LANES) {                                                            \
        const T *p = d + c;                                                                         \
        for (int r = 0; r < 4; r++) {                                                               \
            /* row r of B^T d: t = d0 - d2, d1 + d2, d2 - d1, d1 - d3 */                           \
            const T *pa = p + (r == 0 ? 0 : 1) * row;                                               \
            const T *pb = p + (r == 3 ? 3 : 2) * row;                                               \
            VT t0, t1, t2, t3;                                                                      \
            if (r == 0) {                                                                           \
                t0 = SUB(LOAD(pa), LOAD(pb)); t1 = SUB(LOAD(pa + C), LOAD(pb + C));                 \
                t2 = SUB(LOAD(pa + 2 * C), LOAD(pb + 2 * C)); t3 = SUB(LOAD(pa + 3 * C), LOAD(pb + 3 * C)); \
            } else if (r == 1) {                                                                    \
                t0 = ADD(LOAD(pa), LOAD(pb)); t1 = ADD(LOAD(pa + C), LOAD(pb + C));                 \
                t2 = ADD(LOAD(pa + 2 * C), LOAD(pb + 2 * C)); t3 = ADD(LOAD(pa + 3 * C), LOAD(pb + 3 * C)); \
            } else if (r == 2) {                                                                    \
                t0 = SUB(LOAD(pb), LOAD(pa)); t1 = SUB(LOAD(pb + C), LOAD(pa + C));                 \
                t2 = SUB(LOAD(pb + 2 * C), LOAD(pa + 2 * C)); t3 = SUB(LOAD(pb + 3 * C), LOAD(pa + 3 * C)); \
            } else {                                                                                \
                t0 = SUB(LOAD(pa), LOAD(pb)); t1 = SUB(LOAD(pa + C), LOAD(pb + C));                 \
                t2 = SUB(LOAD(pa + 2 * C), LOAD(pb + 2 * C)); t3 = SUB(LOAD(pa + 3 * C), LOAD(pb + 3 * C)); \
            }                                                                                       \
            T *q = v + 4 * r * vstride + c;                                                         \
            STORE(q, SUB(t0, t2));                                                                  \
            STORE(q + vstride, ADD(t1, t2));                                                        \
            STORE(q + 2 * vstride, SUB(t2, t1));                                                    \
            STORE(q + 3 * vstride, SUB(t1, t3));                                                    \
        }                                                                                           \
    }                                                                                               \
    wino_input_tail_##SUFFIX(v, vstride, d, row, C, c);                                             \
}                                                                                                   \
                                                                                                    \
static inline VT wino_vmax_##SUFFIX(VT best, VT v)                                                  \
{                                                                                                   \
    /* wino_max per lane: take v if v > best, or if v is NaN and best is not */                     \
    VT take = OR(CMP(v, best, _CMP_GT_OQ), AND(CMP(v, v, _CMP_UNORD_Q), CMP(best, best, _CMP_ORD_Q))); \
    return BLEND(best, v, take);                                                                    \
}                                                                                                   \
                                                                                                    \
static inline void wino_output_any_##SUFFIX(T *restrict y, ptrdiff_t row, const T *restrict m,      \
                                            ptrdiff_t mstride, ptrdiff_t F, int pool)               \
{                                                                                                   \
    ptrdiff_t f = 0;                                                                                \
    for (; f + LANES <= F; f += LANES) {                                                            \
        const T *p = m + f;                                                                         \
        VT s0[4], s1[4];                                                                            \
        for (int j = 0; j < 4; j++) {                                                               \
            VT m0 = LOAD(p + j * mstride), m1 = LOAD(p + (4 + j) * mstride);                        \
            VT m2 = LOAD(p + (8 + j) * mstride), m3 = LOAD(p + (12 + j) * mstride);                 \
            s0[j] = ADD(ADD(m0, m1), m2);                                                           \
            s1[j] = SUB(SUB(m1, m2), m3);                                                           \
        }                                                                                           \
        VT y00 = ADD(ADD(s0[0], s0[1]), s0[2]), y01 = SUB(SUB(s0[1], s0[2]), s0[3]);                \
        VT y10 = ADD(ADD(s1[0], s1[1]), s1[2]), y11 = SUB(SUB(s1[1], s1[2]), s1[3]);                \
        if (pool) {                                                                                 \
            STORE(y + f, wino_vmax_##SUFFIX(wino_vmax_##SUFFIX(wino_vmax_##SUFFIX(y00, y01), y10), y11)); \
        } else {                                                                                    \
            STORE(y + f, y00);                                                                      \
            STORE(y + F + f, y01);                                                                  \
            STORE(y + row + f, y10);                                                                \
            STORE(y + row + F + f, y11);                                                            \
        }                                                                                           \
    }                                                                                               \
    wino_output_tail_##SUFFIX(y, row, m, mstride, F, f, pool);                                      \
}
WINO_DEFINE_VECTOR(float, f32, __m256, 8, _mm256_loadu_ps, _mm256_storeu_ps, _mm256_add_ps, _mm256_sub_ps,
                   _mm256_cmp_ps, _mm256_and_ps, _mm256_or_ps, _mm256_blendv_ps)
WINO_DEFINE_VECTOR(double, f64, __m256d, 4, _mm256_loadu_pd, _mm256_storeu_pd, _mm256_add_pd, _mm256_sub_pd,
                   _mm256_cmp_pd, _mm256_and_pd, _mm256_or_pd, _mm256_blendv_pd)
#undef WINO_DEFINE_VECTOR
#else
#define wino_input_f32(v, vs, d, row, C) wino_input_tail_f32(v, vs, d, row, C, 0)
#define wino_input_f64(v, vs, d, row, C) wino_input_tail_f64(v, vs, d, row, C, 0)
#define wino_output_any_f32(y, row, m, ms, F, pool) wino_output_tail_f32(y, row, m, ms, F, 0, pool)
#define wino_output_any_f64(y, row, m, ms, F, pool) wino_output_tail_f64(y, row, m, ms, F, 0, pool)
#endif

/* The 2x2xF output block of one tile (pixel (i, j) at y + i * row + j * F), or its 2x2 max-pool:
 * y[f] = max of the tile's 4 outputs (wino_max order; for the fused conv + max-pool kernel). */
#define wino_output_f32(y, row, m, ms, F) wino_output_any_f32(y, row, m, ms, F, 0)
#define wino_output_f64(y, row, m, ms, F) wino_output_any_f64(y, row, m, ms, F, 0)
#define wino_output_max_f32(y, m, ms, F) wino_output_any_f32(y, 0, m, ms, F, 1)
#define wino_output_max_f64(y, m, ms, F) wino_output_any_f64(y, 0, m, ms, F, 1)
#endif
