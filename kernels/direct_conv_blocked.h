/* Register-blocked direct convolution (channels-last), inference only: the taps read from the input rows, no
   im2col columns, a tile of output pixels x output channels kept in registers for the whole sum.

   Shape letters: H, W, C input height, width, channels of one sample (NHWC); KH, KW kernel height, width;
   F filters; Wo output width; K = KH*KW*C the taps of one output pixel, ordered (kh, kw, c) as im2col's columns
   and w (KH, KW, C, F) read in place as (K, F); sh, sw strides; pt, pl top/left zero padding; dh, dw dilations.

   Output rows oh0 <= oh < oh1 of one sample: y (oh1 - oh0, Wo, F) = f(conv(x, w) + b). The input rows they read
   are copied into a zero-bordered band of rows of Wb = (Wo - 1) * sw + (KW - 1) * dw + 1 columns from input column
   -pl, so padded taps read zeros with no bounds test (direct_conv.h's band): all of the unit's rows at once where
   output rows share input rows, else the KH rows of each output row. A tile is
   DB_MR consecutive output pixels of the row x 2 vectors of output channels (then 1 vector, then one channel at a
   time): per tap, the two weight vectors are loaded once and each pixel's input value is broadcast once for both,
   so the 2 * DB_MR accumulators (16 of 32 registers at avx512) take one fused multiply-add per load pair.

   Every output is sum_k a[k] * w[k, f], the products added in k order onto 0: "acc + a * w", contracted to one
   fused multiply-add at the levels with FMA (the module is in isa.FMA_MODULES), one rounding per operation at
   baseline. Vector lanes and the scalar tail compile to the same operation, so a result depends neither on the
   tiles nor on the thread team; at baseline the NumPy twin (the same sum over k on whole columns) gives the same
   bits, at the FMA levels it agrees within rounding. The epilogue for identity, relu and leaky relu runs on the
   accumulators before their one store (vec_bias_act.h); with bias NULL the raw sums are stored (the caller runs
   the row pass of the other activations). Vectors are GCC vector extensions: 16 floats at avx512 (DB_MR = 8),
   8 floats below (DB_MR = 6 with AVX's 16 registers, 3 at baseline where GCC splits each into two SSE halves). */
#ifndef MINICNN_DIRECT_CONV_BLOCKED_H
#define MINICNN_DIRECT_CONV_BLOCKED_H
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include "vec_bias_act.h"

#if defined(__AVX512F__)
#define DB_VL 16
#define DB_MR 8
#define DB_ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7)
#define DB_ROWSW(X) DB_ROWS(X) X(8) X(9) X(10) X(11) X(12) X(13) X(14) X(15)
#elif defined(__AVX__)
#define DB_VL 8
#define DB_MR 6
#define DB_ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5)
#define DB_ROWSW(X) DB_ROWS(X) X(6) X(7) X(8) X(9) X(10) X(11)
#else
#define DB_VL 8
#define DB_MR 3
#define DB_ROWS(X) X(0) X(1) X(2)
#define DB_ROWSW(X) DB_ROWS(X) X(3) X(4) X(5)
#endif
#define DB_ROWS1(X) X(0)

typedef float db_v __attribute__((vector_size(DB_VL * 4), aligned(4)));
typedef int db_vi __attribute__((vector_size(DB_VL * 4)));
#define DB_LD(p) (*(const db_v *)(p))
#define DB_ST(p, v) (*(db_v *)(p) = (v))

#define DB_OUT(o, acc, bo) do {                                                                          \
    db_v v_ = (acc);                                                                                     \
    if (bias)                                                                                            \
        VEC_BIAS_ACT(db_v, db_vi, v_, DB_LD(bias + (bo)), act, alpha);                                   \
    DB_ST((o), v_);                                                                                      \
} while (0)

#define DB_DECL(r) db_v a##r##0 = {0}, a##r##1 = {0};
/* Pixel r's tap: from base g_[r / 3] (every third pixel's pointer) at 0, ps or 2 * ps, so the addresses take
   x86's scaled index with ps in one register (eight separate offsets spilled registers: 41 against 51 Gmadd/s). */
#define DB_AT(r) g_[(r) / 3][((r) % 3) * ps]
#define DB_MAC2(r) { const float s_ = DB_AT(r); a##r##0 = a##r##0 + s_ * w0; a##r##1 = a##r##1 + s_ * w1; }
#define DB_MAC1(r) { const float s_ = DB_AT(r); a##r##0 = a##r##0 + s_ * w0; }
#define DB_OUT2(r) DB_OUT(y + (r) * F, a##r##0, 0); DB_OUT(y + (r) * F + DB_VL, a##r##1, DB_VL);
#define DB_OUT1(r) DB_OUT(y + (r) * F, a##r##0, 0);

/* One tile: output pixels given by ROWS (DB_ROWS or DB_ROWS1) at y, y + F, ...; their taps at a, a + ps, ...
   (ps = sw * C, the band's step between neighbouring output pixels; rs its step between kernel rows); NV (1 or 2)
   vectors of channels from w. */
#define DB_TILE(name, ROWS, NV)                                                                          \
static inline void name(float *y, const float *a, const float *w, const float *bias, ptrdiff_t ps,       \
                        ptrdiff_t KH, ptrdiff_t KW, ptrdiff_t C, ptrdiff_t rs, int dw, ptrdiff_t F,      \
                        int act, float alpha)                                                            \
{                                                                                                        \
    ROWS(DB_DECL)                                                                                        \
    const float *wk = w;                                                                                 \
    /* undilated: a kernel row's KW * C taps are contiguous in the band (and in w): one loop */          \
    const ptrdiff_t J = dw == 1 ? 1 : KW, T = dw == 1 ? KW * C : C;                                      \
    for (ptrdiff_t i = 0; i < KH; i++)                                                                   \
        for (ptrdiff_t j = 0; j < J; j++) {                                                              \
            const float *g_[6];                                                                          \
            for (int t_ = 0; t_ < 6; t_++) g_[t_] = a + i * rs + j * dw * C + 3 * t_ * ps;              \
            for (ptrdiff_t c = 0; c < T; c++, wk += F) {                                                 \
                const db_v w0 = DB_LD(wk);                                                               \
                const db_v w1 = NV == 2 ? DB_LD(wk + DB_VL) : w0;                                        \
                if (NV == 2) { ROWS(DB_MAC2) } else { ROWS(DB_MAC1) }                                    \
                for (int t_ = 0; t_ < 6; t_++) g_[t_]++;                                                 \
            }                                                                                            \
        }                                                                                                \
    if (NV == 2) { ROWS(DB_OUT2) } else { ROWS(DB_OUT1) }                                                \
}

DB_TILE(db_tile_m2, DB_ROWS, 2)
DB_TILE(db_tile_12, DB_ROWS1, 2)
DB_TILE(db_tile_m1, DB_ROWS, 1)
DB_TILE(db_tile_w1, DB_ROWSW, 1)
DB_TILE(db_tile_11, DB_ROWS1, 1)

/* Channels [f0, F) of output pixels [0, Wo) one value at a time: a vector lane's sums and epilogue. */
#define DB_SCALAR(NAME, T)                                                                               \
static inline void NAME(T *y, const T *a, const T *w, const T *bias, ptrdiff_t ps, ptrdiff_t KH,         \
                        ptrdiff_t KW, ptrdiff_t C, ptrdiff_t rs, int dw, ptrdiff_t F, ptrdiff_t Wo,      \
                        ptrdiff_t f0, int act, T alpha)                                                  \
{                                                                                                        \
    for (ptrdiff_t m = 0; m < Wo; m++)                                                                   \
        for (ptrdiff_t f = f0; f < F; f++) {                                                             \
            T acc = 0;                                                                                   \
            const T *wk = w + f;                                                                         \
            for (ptrdiff_t i = 0; i < KH; i++)                                                           \
                for (ptrdiff_t j = 0; j < KW; j++) {                                                     \
                    const T *ak = a + m * ps + i * rs + j * dw * C;                                      \
                    for (ptrdiff_t c = 0; c < C; c++, wk += F)                                           \
                        acc = acc + ak[c] * wk[0];                                                       \
                }                                                                                        \
            if (bias) {                                                                                  \
                T z = acc + bias[f];                                                                     \
                if (act == 1)                                                                            \
                    z = z < 0 ? (T)0 : z;                                                                \
                else if (act == 2)                                                                       \
                    z = z > 0 ? z : z * alpha;                                                           \
                acc = z;                                                                                 \
            }                                                                                            \
            y[m * F + f] = acc;                                                                          \
        }                                                                                                \
}

DB_SCALAR(db_scalar_f32, float)
DB_SCALAR(db_scalar_f64, double)

/* One output row of pixels [0, Wo) from the band (its first pixel's taps at a): panels of channels outermost
   (a panel of the weights stays in cache while the tiles pass). */
static inline void db_row_f32(float *y, const float *a, const float *w, const float *bias, ptrdiff_t ps,
                              ptrdiff_t KH, ptrdiff_t KW, ptrdiff_t C, ptrdiff_t rs, int dw, ptrdiff_t F,
                              ptrdiff_t Wo, int act, float alpha)
{
    ptrdiff_t f0 = 0, m;
    for (; f0 + 2 * DB_VL <= F; f0 += 2 * DB_VL) {
        const float *bp = bias ? bias + f0 : 0;
        for (m = 0; m + DB_MR <= Wo; m += DB_MR)
            db_tile_m2(y + m * F + f0, a + m * ps, w + f0, bp, ps, KH, KW, C, rs, dw, F, act, alpha);
        for (; m < Wo; m++)
            db_tile_12(y + m * F + f0, a + m * ps, w + f0, bp, ps, KH, KW, C, rs, dw, F, act, alpha);
    }
    for (; f0 + DB_VL <= F; f0 += DB_VL) {
        const float *bp = bias ? bias + f0 : 0;
        m = 0;
        for (; m + 2 * DB_MR <= Wo; m += 2 * DB_MR)
            db_tile_w1(y + m * F + f0, a + m * ps, w + f0, bp, ps, KH, KW, C, rs, dw, F, act, alpha);
        for (; m + DB_MR <= Wo; m += DB_MR)
            db_tile_m1(y + m * F + f0, a + m * ps, w + f0, bp, ps, KH, KW, C, rs, dw, F, act, alpha);
        for (; m < Wo; m++)
            db_tile_11(y + m * F + f0, a + m * ps, w + f0, bp, ps, KH, KW, C, rs, dw, F, act, alpha);
    }
    db_scalar_f32(y, a, w, bias, ps, KH, KW, C, rs, dw, F, Wo, f0, act, alpha);   /* the last F - f0 < DB_VL */
}

/* One output row in float64: the same sums, plain loops (the layers run float64 convs elsewhere). */
static inline void db_row_f64(double *y, const double *a, const double *w, const double *bias, ptrdiff_t ps,
                              ptrdiff_t KH, ptrdiff_t KW, ptrdiff_t C, ptrdiff_t rs, int dw, ptrdiff_t F,
                              ptrdiff_t Wo, int act, double alpha)
{
    db_scalar_f64(y, a, w, bias, ps, KH, KW, C, rs, dw, F, Wo, 0, act, alpha);
}

/* Floats of the band of a unit of rb output rows: every input row they read when output rows share input rows
   (span > sh), else the KH rows of one output row. */
static inline ptrdiff_t db_band_length(ptrdiff_t KH, ptrdiff_t C, ptrdiff_t Wb, ptrdiff_t rb, int sh, int dh)
{
    ptrdiff_t span = (KH - 1) * dh + 1;
    return (span > sh ? (rb - 1) * sh + span : KH) * Wb * C;
}

/* Input rows ih0, ih0 + step, ... (n of them) into band rows 0 .. n - 1 of Wb * C values, zero outside the image. */
#define DB_FILL(NAME, T)                                                                                 \
static inline void NAME(T *band, const T *x, ptrdiff_t H, ptrdiff_t W, ptrdiff_t C, ptrdiff_t Wb, int pl, \
                        ptrdiff_t ih0, ptrdiff_t step, ptrdiff_t n)                                      \
{                                                                                                        \
    /* the band's columns q hold input columns iw = q - pl: [q0, q1) inside the image */                 \
    ptrdiff_t q0 = pl < 0 ? 0 : pl, q1 = W + pl < Wb ? W + pl : Wb;                                      \
    if (q1 < q0) q1 = q0;                                                                                \
    for (ptrdiff_t r = 0; r < n; r++) {                                                                  \
        ptrdiff_t ih = ih0 + r * step;                                                                   \
        T *bi = band + r * Wb * C;                                                                       \
        if (ih < 0 || ih >= H) {                                                                         \
            memset(bi, 0, Wb * C * sizeof(T));                                                           \
            continue;                                                                                    \
        }                                                                                                \
        memset(bi, 0, q0 * C * sizeof(T));                                                               \
        if (q1 > q0) memcpy(bi + q0 * C, x + (ih * W + q0 - pl) * C, (q1 - q0) * C * sizeof(T));         \
        memset(bi + q1 * C, 0, (Wb - q1) * C * sizeof(T));                                               \
    }                                                                                                    \
}

DB_FILL(db_fill_f32, float)
DB_FILL(db_fill_f64, double)

/* Output rows [oh0, oh1) of one sample through the band (scratch: db_band_length values); ROW is db_row_f32/_f64.
   When output rows share input rows (span > sh: a 3x3 stride-1 or -2 conv) every input row of the unit is copied
   once (a 3x3 stride-1 conv on 8 rows: 10 row copies instead of 24); else each output row copies its KH rows. */
#define DB_ROWS_OF(NAME, T, ROW, FILL)                                                                   \
static inline void NAME(T *restrict y, const T *restrict x, const T *restrict w, const T *restrict bias, \
                        T *restrict band, int act, T alpha, ptrdiff_t H, ptrdiff_t W, ptrdiff_t C,       \
                        ptrdiff_t KH, ptrdiff_t KW, ptrdiff_t F, ptrdiff_t Wo, int sh, int sw, int pt,   \
                        int pl, int dh, int dw, ptrdiff_t oh0, ptrdiff_t oh1)                            \
{                                                                                                        \
    ptrdiff_t Wb = (Wo - 1) * sw + (KW - 1) * dw + 1, span = (KH - 1) * dh + 1;                          \
    if (span > sh) {                                                                                     \
        FILL(band, x, H, W, C, Wb, pl, oh0 * sh - pt, 1, (oh1 - oh0 - 1) * sh + span);                   \
        for (ptrdiff_t oh = oh0; oh < oh1; oh++)                                                         \
            ROW(y + (oh - oh0) * Wo * F, band + (oh - oh0) * sh * Wb * C, w, bias, (ptrdiff_t)sw * C,    \
                KH, KW, C, dh * Wb * C, dw, F, Wo, act, alpha);                                          \
        return;                                                                                          \
    }                                                                                                    \
    for (ptrdiff_t oh = oh0; oh < oh1; oh++) {                                                           \
        FILL(band, x, H, W, C, Wb, pl, oh * sh - pt, dh, KH);                                            \
        ROW(y + (oh - oh0) * Wo * F, band, w, bias, (ptrdiff_t)sw * C, KH, KW, C, Wb * C, dw, F, Wo, act, \
            alpha);                                                                                      \
    }                                                                                                    \
}

DB_ROWS_OF(db_rows_f32, float, db_row_f32, db_fill_f32)
DB_ROWS_OF(db_rows_f64, double, db_row_f64, db_fill_f64)

#endif
