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

#define WGRAD_DEFINE(T, SUFFIX)                                                                     \
/* Z = A dY A^T of one 2x2xF output-gradient tile; pixel (i, j) of dY at dy + i * row + j * F. */   \
static inline void wgrad_dy_##SUFFIX(T *restrict z, ptrdiff_t zstride, const T *restrict dy,       \
                                     ptrdiff_t row, ptrdiff_t F)                                    \
{                                                                                                   \
    const T *d0 = dy, *d1 = dy + row;                                                               \
    for (ptrdiff_t f = 0; f < F; f++) {                                                             \
        T a0 = d0[f], a1 = d0[F + f], b0 = d1[f], b1 = d1[F + f];                                   \
        /* u = A dY (4 x 2), rows */                                                                \
        T u00 = a0, u01 = a1;                                                                       \
        T u10 = a0 + b0, u11 = a1 + b1;                                                             \
        T u20 = a0 - b0, u21 = a1 - b1;                                                             \
        T u30 = -b0, u31 = -b1;                                                                     \
        /* Z = u A^T (4 x 4) */                                                                     \
        z[0 * zstride + f] = u00;                                                                   \
        z[1 * zstride + f] = u00 + u01;                                                             \
        z[2 * zstride + f] = u00 - u01;                                                             \
        z[3 * zstride + f] = -u01;                                                                  \
        z[4 * zstride + f] = u10;                                                                   \
        z[5 * zstride + f] = u10 + u11;                                                             \
        z[6 * zstride + f] = u10 - u11;                                                             \
        z[7 * zstride + f] = -u11;                                                                  \
        z[8 * zstride + f] = u20;                                                                   \
        z[9 * zstride + f] = u20 + u21;                                                             \
        z[10 * zstride + f] = u20 - u21;                                                            \
        z[11 * zstride + f] = -u21;                                                                 \
        z[12 * zstride + f] = u30;                                                                  \
        z[13 * zstride + f] = u30 + u31;                                                            \
        z[14 * zstride + f] = u30 - u31;                                                            \
        z[15 * zstride + f] = -u31;                                                                 \
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

WGRAD_DEFINE(float, f32)
WGRAD_DEFINE(double, f64)

#undef WGRAD_DEFINE
#endif
