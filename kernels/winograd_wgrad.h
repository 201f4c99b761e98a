/* Transforms of the Winograd F(2x2, 3x3) weight gradient (kernels/conv_wgrad.pyx), NHWC.
 *
 * The forward is Y = A^T (U .* V) A per 2x2 output tile, U = G g G^T, V = B^T d B (winograd_tf.h has
 * B, G, A and the input transform V, reused here). Its gradient with respect to U is
 * dU = (A dY A^T) .* V, summed over the tiles, and dg = G^T dU G:
 *
 *   A = [1  0]     G^T = [1  1/2  1/2  0]
 *       [1  1]           [0  1/2 -1/2  0]
 *       [1 -1]           [0  1/2  1/2  1]
 *       [0 -1]
 *
 * Position k = 4 * r + s of a 4x4 transformed tile is stored at ``base + k * stride``. Plain
 * adds, subtracts and exact halvings in the data precision, in a fixed order (-ffp-contract=off),
 * vectorized by the compiler over the channel axis.
 */
#ifndef MINICNN_WINOGRAD_WGRAD_H
#define MINICNN_WINOGRAD_WGRAD_H
#include <stddef.h>

#define WGRAD_DEFINE(T, SUFFIX, VT, LANES)                                                          \
/* Z = A dY A^T of one 2x2xF output-gradient tile; pixel (i, j) of dY at dy + i * row + j * F.      \
 * Vectors of LANES filters (GCC vector extensions: AVX at the avx2 build, SSE pairs at baseline),  \
 * then the remaining filters one by one: each filter's values are the same either way. */         \
static inline void wgrad_dy_##SUFFIX(T *restrict z, ptrdiff_t zstride, const T *restrict dy,       \
                                     ptrdiff_t row, ptrdiff_t F)                                    \
{                                                                                                   \
    const T *d0 = dy, *d1 = dy + row;                                                               \
    ptrdiff_t f = 0;                                                                                \
    for (; f + LANES <= F; f += LANES) {                                                            \
        VT a0, a1, b0, b1;                                                                          \
        __builtin_memcpy(&a0, d0 + f, sizeof(VT));                                                  \
        __builtin_memcpy(&a1, d0 + F + f, sizeof(VT));                                              \
        __builtin_memcpy(&b0, d1 + f, sizeof(VT));                                                  \
        __builtin_memcpy(&b1, d1 + F + f, sizeof(VT));                                              \
        VT u[4][2] = {{a0, a1}, {a0 + b0, a1 + b1}, {a0 - b0, a1 - b1}, {-b0, -b1}};                \
        for (int r = 0; r < 4; r++) {                                                               \
            VT z0 = u[r][0], z1 = u[r][0] + u[r][1], z2 = u[r][0] - u[r][1], z3 = -u[r][1];         \
            __builtin_memcpy(z + (4 * r + 0) * zstride + f, &z0, sizeof(VT));                       \
            __builtin_memcpy(z + (4 * r + 1) * zstride + f, &z1, sizeof(VT));                       \
            __builtin_memcpy(z + (4 * r + 2) * zstride + f, &z2, sizeof(VT));                       \
            __builtin_memcpy(z + (4 * r + 3) * zstride + f, &z3, sizeof(VT));                       \
        }                                                                                           \
    }                                                                                               \
    for (; f < F; f++) {                                                                            \
        T a0 = d0[f], a1 = d0[F + f], b0 = d1[f], b1 = d1[F + f];                                   \
        T u[4][2] = {{a0, a1}, {a0 + b0, a1 + b1}, {a0 - b0, a1 - b1}, {-b0, -b1}};                 \
        for (int r = 0; r < 4; r++) {                                                               \
            z[(4 * r + 0) * zstride + f] = u[r][0];                                                 \
            z[(4 * r + 1) * zstride + f] = u[r][0] + u[r][1];                                       \
            z[(4 * r + 2) * zstride + f] = u[r][0] - u[r][1];                                       \
            z[(4 * r + 3) * zstride + f] = -u[r][1];                                                \
        }                                                                                           \
    }                                                                                               \
}                                                                                                   \
                                                                                                    \
/* dw (3, 3, C, F) = G^T dU G, dU[k] (C x F) at du + k * C * F. */                                  \
static inline void wgrad_out_##SUFFIX(T *restrict dw, const T *restrict du, ptrdiff_t C, ptrdiff_t F) \
{                                                                                                   \
    const T h = (T)0.5;                                                                             \
    const ptrdiff_t s = C * F;                                                                      \
    for (ptrdiff_t e = 0; e < s; e++) {                                                             \
        T t[3][4];                                                                                  \
        for (int j = 0; j < 4; j++) {                                                               \
            T x0 = du[j * s + e], x1 = du[(4 + j) * s + e];                                         \
            T x2 = du[(8 + j) * s + e], x3 = du[(12 + j) * s + e];                                  \
            t[0][j] = x0 + (x1 + x2) * h;                                                           \
            t[1][j] = (x1 - x2) * h;                                                                \
            t[2][j] = (x1 + x2) * h + x3;                                                           \
        }                                                                                           \
        for (int i = 0; i < 3; i++) {                                                               \
            dw[(3 * i + 0) * s + e] = t[i][0] + (t[i][1] + t[i][2]) * h;                            \
            dw[(3 * i + 1) * s + e] = (t[i][1] - t[i][2]) * h;                                      \
            dw[(3 * i + 2) * s + e] = (t[i][1] + t[i][2]) * h + t[i][3];                            \
        }                                                                                           \
    }                                                                                               \
}

typedef float wgrad_v8f __attribute__((vector_size(32)));
typedef double wgrad_v4d __attribute__((vector_size(32)));
WGRAD_DEFINE(float, f32, wgrad_v8f, 8)
WGRAD_DEFINE(double, f64, wgrad_v4d, 4)

#undef WGRAD_DEFINE
#endif
