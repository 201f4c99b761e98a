/* Winograd F(2x2, 3x3) inference forward with the tile in registers, for C and F multiples of 16 (NHWC, float32).
 *
 * The channels of one pixel are whole 16-float vectors (GCC vector extensions: one zmm at avx512, two ymm or four
 * xmm below). Per block of W16_TB tiles of one tile row:
 *   input transform  V = B^T d B of each 4x4 tile, 16 channels at a time in registers (zero outside the image),
 *                    spilled to a stack buffer V[tile][position][channel];
 *   products         for each of the 16 positions and each vector of 16 filters, W16_TB independent accumulators
 *                    (one per tile) over the channels: acc[t] += V[t][pos][c] (broadcast) * U[pos][c][f..f+15]
 *                    (fused multiply-adds where the level has FMA: the module is in isa.FMA_MODULES);
 *   output transform Y = A^T M A in registers, then + bias, + the skip tensor (optional), the activation, and the
 *                    valid pixels of the 2x2 tile stored.
 * The weights come transformed, U (4, 4, C, F) from winograd_weight_transform. Every output is computed by the
 * same operations in the same order whichever thread runs its tile row: the bits depend neither on the team nor
 * on the units. Matrices as winograd_tf.h. Included by kernels/winograd16.pyx.
 */
#ifndef MINICNN_WINOGRAD16_H
#define MINICNN_WINOGRAD16_H
#include <math.h>
#include <stddef.h>
#include <string.h>

typedef float w16_v __attribute__((vector_size(64)));
typedef float w16_u __attribute__((vector_size(64), aligned(4), may_alias));
typedef int w16_i __attribute__((vector_size(64)));

/* Tiles per block (accumulators per position and vector of filters). */
#define W16_TB 8
/* Most input channels (the stack buffer V holds W16_TB * 16 * W16_MAXC floats). */
#define W16_MAXC 64

static inline w16_v w16_load(const float *p) { return (w16_v)(*(const w16_u *)p); }
static inline void w16_store(float *p, w16_v v) { *(w16_u *)p = (w16_u)v; }

/* f(v): identity (0), relu (1: max(0, v), NaN kept), leaky relu (2), tanh (3), sigmoid (4). */
static inline w16_v w16_act(w16_v v, int act, float alpha)
{
    if (act == 1) {
        w16_i neg = v < 0;
        return (w16_v)((w16_i)v & ~neg);
    }
    if (act == 2) {
        w16_i pos = v > 0;
        return (w16_v)(((w16_i)v & pos) | ((w16_i)(v * alpha) & ~pos));
    }
    if (act == 3 || act == 4) {
        float o[16];
        w16_store(o, v);
        for (int i = 0; i < 16; i++)
            o[i] = act == 3 ? tanhf(o[i]) : 1.0f / (1.0f + expf(-o[i]));
        return w16_load(o);
    }
    return v;
}

/* Tile rows [ty0, ty1) of one sample: y (Ho, Wo, F), x (H, W, C), skip (Ho, Wo, F) or NULL. */
static void w16_rows_f32(float *restrict y, const float *restrict x, const float *restrict U,
                         const float *restrict bias, const float *restrict skip, int act, float alpha,
                         ptrdiff_t H, ptrdiff_t W, ptrdiff_t C, ptrdiff_t F, ptrdiff_t Ho, ptrdiff_t Wo,
                         ptrdiff_t pt, ptrdiff_t pl, ptrdiff_t ty0, ptrdiff_t ty1)
{
    /* V[k][t][c] at V + (k * W16_TB + t) * C + c: a position's 8 tiles side by side (not 4 KiB apart) */
    float V[16 * W16_TB * W16_MAXC] __attribute__((aligned(64)));
    float M[W16_TB][16][16] __attribute__((aligned(64)));
    const ptrdiff_t tw = (Wo + 1) / 2;
    memset(V, 0, sizeof(V));   /* tiles past a short block: zeros, or an earlier block's values (discarded) */
    for (ptrdiff_t ty = ty0; ty < ty1; ty++) {
        const ptrdiff_t r0 = 2 * ty - pt;
        for (ptrdiff_t tx0 = 0; tx0 < tw; tx0 += W16_TB) {
            const int nb = tw - tx0 < W16_TB ? (int)(tw - tx0) : W16_TB;
            for (int t = 0; t < nb; t++) {
                const ptrdiff_t c0 = 2 * (tx0 + t) - pl;
                for (ptrdiff_t cc = 0; cc < C; cc += 16) {
                    w16_v d[4][4], e[4][4];
                    if (r0 >= 0 && r0 + 4 <= H && c0 >= 0 && c0 + 4 <= W) {   /* inside the image */
                        for (int r = 0; r < 4; r++)
                            for (int s = 0; s < 4; s++)
                                d[r][s] = w16_load(x + ((r0 + r) * W + c0 + s) * C + cc);
                    } else {
                        for (int r = 0; r < 4; r++)
                            for (int s = 0; s < 4; s++) {
                                const ptrdiff_t row = r0 + r, col = c0 + s;
                                d[r][s] = (row >= 0 && row < H && col >= 0 && col < W)
                                              ? w16_load(x + (row * W + col) * C + cc) : (w16_v){0};
                            }
                    }
                    for (int s = 0; s < 4; s++) {
                        e[0][s] = d[0][s] - d[2][s];
                        e[1][s] = d[1][s] + d[2][s];
                        e[2][s] = d[2][s] - d[1][s];
                        e[3][s] = d[1][s] - d[3][s];
                    }
                    for (int r = 0; r < 4; r++) {
                        w16_store(V + ((4 * r + 0) * W16_TB + t) * C + cc, e[r][0] - e[r][2]);
                        w16_store(V + ((4 * r + 1) * W16_TB + t) * C + cc, e[r][1] + e[r][2]);
                        w16_store(V + ((4 * r + 2) * W16_TB + t) * C + cc, e[r][2] - e[r][1]);
                        w16_store(V + ((4 * r + 3) * W16_TB + t) * C + cc, e[r][1] - e[r][3]);
                    }
                }
            }
            for (ptrdiff_t f0 = 0; f0 < F; f0 += 16) {
                for (int k = 0; k < 16; k++) {
                    const float *u = U + k * C * F + f0;
                    const float *v = V + k * W16_TB * C;
                    w16_v a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0}, a4 = {0}, a5 = {0}, a6 = {0}, a7 = {0};
#pragma GCC unroll 16
                    for (ptrdiff_t c = 0; c < C; c++) {
                        const w16_v w = w16_load(u + c * F);
                        a0 += v[0 * C + c] * w;
                        a1 += v[1 * C + c] * w;
                        a2 += v[2 * C + c] * w;
                        a3 += v[3 * C + c] * w;
                        a4 += v[4 * C + c] * w;
                        a5 += v[5 * C + c] * w;
                        a6 += v[6 * C + c] * w;
                        a7 += v[7 * C + c] * w;
                    }
                    w16_store(M[0][k], a0);
                    w16_store(M[1][k], a1);
                    w16_store(M[2][k], a2);
                    w16_store(M[3][k], a3);
                    w16_store(M[4][k], a4);
                    w16_store(M[5][k], a5);
                    w16_store(M[6][k], a6);
                    w16_store(M[7][k], a7);
                }
                const w16_v b = w16_load(bias + f0);
                for (int t = 0; t < nb; t++) {
                    w16_v m[16], a[2][4], o[2][2];
                    for (int k = 0; k < 16; k++)
                        m[k] = w16_load(M[t][k]);
                    for (int s = 0; s < 4; s++) {
                        a[0][s] = m[s] + m[4 + s] + m[8 + s];
                        a[1][s] = m[4 + s] - m[8 + s] - m[12 + s];
                    }
                    for (int r = 0; r < 2; r++) {
                        o[r][0] = a[r][0] + a[r][1] + a[r][2];
                        o[r][1] = a[r][1] - a[r][2] - a[r][3];
                    }
                    const ptrdiff_t oy = 2 * ty, ox = 2 * (tx0 + t);
                    for (int r = 0; r < 2 && oy + r < Ho; r++)
                        for (int s = 0; s < 2 && ox + s < Wo; s++) {
                            const ptrdiff_t at = ((oy + r) * Wo + ox + s) * F + f0;
                            w16_v v = o[r][s] + b;
                            if (skip)
                                v = v + w16_load(skip + at);
                            w16_store(y + at, w16_act(v, act, alpha));
                        }
                }
            }
        }
    }
}

#endif
