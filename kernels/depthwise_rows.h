/* Hot loops of the float32 depthwise kernels (kernels/depthwise.pyx), in C with GCC vector extensions.

   Shape letters as in depthwise.pyx: H, W input height and width, C channels, KH, KW kernel height and width,
   Wo output width. Portable: the 8-float vectors compile to AVX on an AVX build and to SSE pairs on a baseline
   one; named vector accumulators stay in registers, where GCC kept the Cython loops' accumulator array on the
   stack (a store-to-load chain per tap). Measured, forward 3x3 of 8 x 32 x 32 x 64 in cache, one thread: 9.4
   Gmadd/s with the array, 16.9 with 4 pixels x 16 channels in registers. Software prefetch of the next pixels'
   inputs was tried and measured slower out of cache. Each lane still adds its products in tap order (mul then
   add, no contraction), as the scalar loops do. */

#include "vec_bias_act.h"

typedef float dw_v8 __attribute__((vector_size(32), aligned(4)));
#define DW_LD(p) (*(const dw_v8 *)(p))
#define DW_ST(p, v) (*(dw_v8 *)(p) = (v))

typedef int dw_v8i __attribute__((vector_size(32)));
static const float dw_zero16[16] = {0};

#define DW_MAXKW 64
/* The store of one accumulator vector (channels [bo, bo + 8)), with the epilogue in registers when bias
   (vec_bias_act.h). */
#define DW_OUT(o, acc, bo) do {                                                                   \
    dw_v8 v_ = (acc);                                                                             \
    if (bias)                                                                                     \
        VEC_BIAS_ACT(dw_v8, dw_v8i, v_, DW_LD(bias + (bo)), act, alpha);                          \
    DW_ST((o), v_);                                                                               \
} while (0)

#if defined(__AVX512F__)
/* At avx512, a 3-wide undilated kernel at stride 1 or 2 (the 3x3 depthwise layers of MobileNet-style nets) takes
   dw_row3_f32: one 16-float vector per channel block, 4 pixels per block as dw_row_f32, but each input column of
   a kernel row is loaded once for the taps and pixels that read it (6 columns for 4 pixels at stride 1, 9 at
   stride 2, where dw_row_f32 loads 12) and the border columns are a per-block choice of pointer (a column outside
   the image reads dw_zero16, as dw_row_f32 does), so border blocks run the same code as inside ones. The same
   products added in the same order as dw_row_f32: the same bits. */
typedef float dw_v16 __attribute__((vector_size(64), aligned(4)));
typedef int dw_v16i __attribute__((vector_size(64)));
#define DW_LD16(p) (*(const dw_v16 *)(p))
#define DW_OUT16(o, acc, bo) do {                                                                 \
    dw_v16 v_ = (acc);                                                                            \
    if (bias)                                                                                     \
        VEC_BIAS_ACT(dw_v16, dw_v16i, v_, DW_LD16(bias + (bo)), act, alpha);                      \
    *(dw_v16 *)(o) = v_;                                                                          \
} while (0)
/* The pixels k0 .. k0 + 3 of a block (those of the npx the block has) from their accumulators, into o. */
#define DW_STORE4(k0, p, q, r, t) do {                                                            \
    if (npx > (k0)) DW_OUT16(o + (k0) * C, p, c0);                                                \
    if (npx > (k0) + 1) DW_OUT16(o + ((k0) + 1) * C, q, c0);                                      \
    if (npx > (k0) + 2) DW_OUT16(o + ((k0) + 2) * C, r, c0);                                      \
    if (npx > (k0) + 3) DW_OUT16(o + ((k0) + 3) * C, t, c0);                                      \
} while (0)
#define DW_COL(k) DW_LD16(in[k] ? xr + off[k] : dw_zero16)
#define DW_TAPS(a, p, q, r) a = a + p * w0; a = a + q * w1; a = a + r * w2;

static inline void dw_row3_f32(float *y, const float *x, const float *w, Py_ssize_t step, Py_ssize_t W,
                               Py_ssize_t C, Py_ssize_t i0, Py_ssize_t i1, Py_ssize_t ih0, Py_ssize_t Wo, int dh,
                               int sw, int pl, Py_ssize_t Cfull, const float *bias, int act, float alpha)
{
    const Py_ssize_t ncol = 3 * sw + 3;
    Py_ssize_t off[9];
    int in[9];
    for (Py_ssize_t ow0 = 0; ow0 < Wo; ow0 += 4) {
        const Py_ssize_t iwb = ow0 * sw - pl, npx = Wo - ow0 < 4 ? Wo - ow0 : 4;
        for (Py_ssize_t k = 0; k < 9; k++) {   /* column iwb + k: inside the image and read by a pixel of the block */
            const Py_ssize_t iw = iwb + k;
            in[k] = k < ncol && iw >= 0 && iw < W && k <= (npx - 1) * sw + 2;
            off[k] = iw * C;
        }
        float *out = y + ow0 * C;
        for (Py_ssize_t c0 = 0; c0 < Cfull; c0 += 16) {
            dw_v16 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
            for (Py_ssize_t i = i0; i < i1; i++) {
                const float *xr = x + (ih0 + i * dh) * W * C + c0, *wr = w + i * 3 * step + c0;
                const dw_v16 w0 = DW_LD16(wr), w1 = DW_LD16(wr + step), w2 = DW_LD16(wr + 2 * step);
                if (sw == 1) {
                    const dw_v16 x0 = DW_COL(0), x1 = DW_COL(1), x2 = DW_COL(2), x3 = DW_COL(3), x4 = DW_COL(4),
                                 x5 = DW_COL(5);
                    DW_TAPS(a0, x0, x1, x2) DW_TAPS(a1, x1, x2, x3) DW_TAPS(a2, x2, x3, x4) DW_TAPS(a3, x3, x4, x5)
                } else {
                    const dw_v16 x0 = DW_COL(0), x1 = DW_COL(1), x2 = DW_COL(2), x3 = DW_COL(3), x4 = DW_COL(4),
                                 x5 = DW_COL(5), x6 = DW_COL(6), x7 = DW_COL(7), x8 = DW_COL(8);
                    DW_TAPS(a0, x0, x1, x2) DW_TAPS(a1, x2, x3, x4) DW_TAPS(a2, x4, x5, x6) DW_TAPS(a3, x6, x7, x8)
                }
            }
            float *o = out + c0;
            DW_STORE4(0, a0, a1, a2, a3);
        }
    }
}
/* dw_row3_f32 at stride 1 on a row of 8 or more pixels: 8 pixels per block, the 10 input columns they read loaded
   once per kernel row (the same products in the same order: the same bits). Measured on the zoo net's stride-1
   3x3 layers, batch 64, one thread, minima of 40: 16x16x16 0.101 -> 0.086 ms, 8x8x64 0.073 -> 0.065; rows of 4
   keep 4-pixel blocks (8-pixel ones ran 0.031 -> 0.036 ms there). */
static inline void dw_row3x8_f32(float *y, const float *x, const float *w, Py_ssize_t step, Py_ssize_t W,
                                 Py_ssize_t C, Py_ssize_t i0, Py_ssize_t i1, Py_ssize_t ih0, Py_ssize_t Wo, int dh,
                                 int pl, Py_ssize_t Cfull, const float *bias, int act, float alpha)
{
    Py_ssize_t off[10];
    int in[10];
    for (Py_ssize_t ow0 = 0; ow0 < Wo; ow0 += 8) {
        const Py_ssize_t iwb = ow0 - pl, npx = Wo - ow0 < 8 ? Wo - ow0 : 8;
        for (Py_ssize_t k = 0; k < 10; k++) {   /* column iwb + k: inside the image and read by a pixel of the block */
            const Py_ssize_t iw = iwb + k;
            in[k] = iw >= 0 && iw < W && k <= npx + 1;
            off[k] = iw * C;
        }
        float *out = y + ow0 * C;
        for (Py_ssize_t c0 = 0; c0 < Cfull; c0 += 16) {
            dw_v16 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0}, a4 = {0}, a5 = {0}, a6 = {0}, a7 = {0};
            for (Py_ssize_t i = i0; i < i1; i++) {
                const float *xr = x + (ih0 + i * dh) * W * C + c0, *wr = w + i * 3 * step + c0;
                const dw_v16 w0 = DW_LD16(wr), w1 = DW_LD16(wr + step), w2 = DW_LD16(wr + 2 * step);
                const dw_v16 x0 = DW_COL(0), x1 = DW_COL(1), x2 = DW_COL(2), x3 = DW_COL(3), x4 = DW_COL(4),
                             x5 = DW_COL(5), x6 = DW_COL(6), x7 = DW_COL(7), x8 = DW_COL(8), x9 = DW_COL(9);
                DW_TAPS(a0, x0, x1, x2) DW_TAPS(a1, x1, x2, x3) DW_TAPS(a2, x2, x3, x4) DW_TAPS(a3, x3, x4, x5)
                DW_TAPS(a4, x4, x5, x6) DW_TAPS(a5, x5, x6, x7) DW_TAPS(a6, x6, x7, x8) DW_TAPS(a7, x7, x8, x9)
            }
            float *o = out + c0;
            DW_STORE4(0, a0, a1, a2, a3);
            DW_STORE4(4, a4, a5, a6, a7);
        }
    }
}
#endif

/* One output row, channels [0, Cfull) in blocks of 16, pixels 4 at a time with their 8 accumulators in
   registers (each tap's weights loaded once for the 4). Row taps i0 <= i < i1 (those inside the image);
   a block with a column tap outside the image (a border, or fewer than 4 pixels left) reads dw_zero16
   there, as the reference reads its zero padding. With bias (not NULL) the epilogue f(acc + bias) runs
   on the accumulators before the single store. KW <= DW_MAXKW. */
static inline void dw_row_f32(float *y, const float *x, const float *w, Py_ssize_t step, Py_ssize_t W,
                              Py_ssize_t C, Py_ssize_t KW, Py_ssize_t i0, Py_ssize_t i1, Py_ssize_t ih0,
                              Py_ssize_t Wo, int dh, int dw, int sw, int pl, Py_ssize_t Cfull,
                              const float *bias, int act, float alpha)
{
#if defined(__AVX512F__)
    if (KW == 3 && dw == 1 && sw == 1 && Wo >= 8) {
        dw_row3x8_f32(y, x, w, step, W, C, i0, i1, ih0, Wo, dh, pl, Cfull, bias, act, alpha);
        return;
    }
    if (KW == 3 && dw == 1 && sw <= 2) {
        dw_row3_f32(y, x, w, step, W, C, i0, i1, ih0, Wo, dh, sw, pl, Cfull, bias, act, alpha);
        return;
    }
#endif
    const Py_ssize_t ps = (Py_ssize_t)sw * C;
    const float *cols[4 * DW_MAXKW];   /* a border block: per (pixel, column tap) the input column, or NULL */
    for (Py_ssize_t ow0 = 0; ow0 < Wo; ow0 += 4) {
        const Py_ssize_t iwb = ow0 * sw - pl, npx = Wo - ow0 < 4 ? Wo - ow0 : 4;
        const int inside = npx == 4 && iwb >= 0 && iwb + 3 * sw + (KW - 1) * dw < W;
        if (!inside)
            for (Py_ssize_t k = 0; k < 4; k++)
                for (Py_ssize_t j = 0; j < KW; j++) {
                    Py_ssize_t iw = iwb + k * sw + j * dw;
                    cols[k * KW + j] = (k < npx && iw >= 0 && iw < W) ? x + iw * C : NULL;
                }
        float *out = y + ow0 * C;
        for (Py_ssize_t c0 = 0; c0 < Cfull; c0 += 16) {
            dw_v8 a0 = {0}, b0 = {0}, a1 = {0}, b1 = {0}, a2 = {0}, b2 = {0}, a3 = {0}, b3 = {0};
            for (Py_ssize_t i = i0; i < i1; i++) {
                const Py_ssize_t roff = (ih0 + i * dh) * W * C + c0;
                const float *wr = w + i * KW * step + c0;
                if (inside) {
                    const float *xr = x + roff + iwb * C;
                    for (Py_ssize_t j = 0; j < KW; j++) {
                        const float *xp = xr + j * dw * C, *wp = wr + j * step;
                        dw_v8 wl = DW_LD(wp), wh = DW_LD(wp + 8);
                        a0 = a0 + DW_LD(xp) * wl;          b0 = b0 + DW_LD(xp + 8) * wh;
                        a1 = a1 + DW_LD(xp + ps) * wl;     b1 = b1 + DW_LD(xp + ps + 8) * wh;
                        a2 = a2 + DW_LD(xp + 2 * ps) * wl; b2 = b2 + DW_LD(xp + 2 * ps + 8) * wh;
                        a3 = a3 + DW_LD(xp + 3 * ps) * wl; b3 = b3 + DW_LD(xp + 3 * ps + 8) * wh;
                    }
                } else {
                    for (Py_ssize_t j = 0; j < KW; j++) {
                        const float *wp = wr + j * step;
                        const float *p0 = cols[j], *p1 = cols[KW + j], *p2 = cols[2 * KW + j], *p3 = cols[3 * KW + j];
                        p0 = p0 ? p0 + roff : dw_zero16;  p1 = p1 ? p1 + roff : dw_zero16;
                        p2 = p2 ? p2 + roff : dw_zero16;  p3 = p3 ? p3 + roff : dw_zero16;
                        dw_v8 wl = DW_LD(wp), wh = DW_LD(wp + 8);
                        a0 = a0 + DW_LD(p0) * wl; b0 = b0 + DW_LD(p0 + 8) * wh;
                        a1 = a1 + DW_LD(p1) * wl; b1 = b1 + DW_LD(p1 + 8) * wh;
                        a2 = a2 + DW_LD(p2) * wl; b2 = b2 + DW_LD(p2 + 8) * wh;
                        a3 = a3 + DW_LD(p3) * wl; b3 = b3 + DW_LD(p3 + 8) * wh;
                    }
                }
            }
            float *o = out + c0;
            DW_OUT(o, a0, c0); DW_OUT(o + 8, b0, c0 + 8);
            if (npx > 1) { o += C; DW_OUT(o, a1, c0); DW_OUT(o + 8, b1, c0 + 8); }
            if (npx > 2) { o += C; DW_OUT(o, a2, c0); DW_OUT(o + 8, b2, c0 + 8); }
            if (npx > 3) { o += C; DW_OUT(o, a3, c0); DW_OUT(o + 8, b3, c0 + 8); }
        }
    }
}

/* Weight gradient of one tap, channels [c0, c0 + 16): sum over output columns lo <= ow < hi of
   x[ow*sw + a] * dy[ow], two columns at a time into two accumulator pairs added at the end. */
static inline void dw_wgrad16_f32(float *part, const float *xrow, const float *dyrow, Py_ssize_t C,
                                  Py_ssize_t lo, Py_ssize_t hi, Py_ssize_t a, int sw)
{
    dw_v8 a0 = {0}, b0 = {0}, a1 = {0}, b1 = {0};
    Py_ssize_t ow = lo;
    for (; ow + 1 < hi; ow += 2) {
        const float *xp = xrow + (ow * sw + a) * C, *gp = dyrow + ow * C;
        a0 = a0 + DW_LD(xp) * DW_LD(gp);                 b0 = b0 + DW_LD(xp + 8) * DW_LD(gp + 8);
        a1 = a1 + DW_LD(xp + sw * C) * DW_LD(gp + C);    b1 = b1 + DW_LD(xp + sw * C + 8) * DW_LD(gp + C + 8);
    }
    if (ow < hi) {
        const float *xp = xrow + (ow * sw + a) * C, *gp = dyrow + ow * C;
        a0 = a0 + DW_LD(xp) * DW_LD(gp);                 b0 = b0 + DW_LD(xp + 8) * DW_LD(gp + 8);
    }
    DW_ST(part, DW_LD(part) + (a0 + a1));
    DW_ST(part + 8, DW_LD(part + 8) + (b0 + b1));
}

/* Three neighbouring taps (input column offsets a, a + d, a + 2d) of one row at once, channels
   [c0, c0 + 16), over the output columns lo <= ow < hi where all three are inside: each dy block is
   loaded once for the three (loads per product 4/3 instead of 2). part points at the first tap; the
   next taps' gradients are C further each. */
static inline void dw_wgrad3x16_f32(float *part, const float *xrow, const float *dyrow, Py_ssize_t C,
                                    Py_ssize_t lo, Py_ssize_t hi, Py_ssize_t a, Py_ssize_t d, int sw)
{
    dw_v8 a0 = {0}, b0 = {0}, a1 = {0}, b1 = {0}, a2 = {0}, b2 = {0};
    const Py_ssize_t dc = d * C;
    for (Py_ssize_t ow = lo; ow < hi; ow++) {
        const float *xp = xrow + (ow * sw + a) * C, *gp = dyrow + ow * C;
        dw_v8 gl = DW_LD(gp), gh = DW_LD(gp + 8);
        a0 = a0 + DW_LD(xp) * gl;          b0 = b0 + DW_LD(xp + 8) * gh;
        a1 = a1 + DW_LD(xp + dc) * gl;     b1 = b1 + DW_LD(xp + dc + 8) * gh;
        a2 = a2 + DW_LD(xp + 2 * dc) * gl; b2 = b2 + DW_LD(xp + 2 * dc + 8) * gh;
    }
    DW_ST(part, DW_LD(part) + a0);                 DW_ST(part + 8, DW_LD(part + 8) + b0);
    DW_ST(part + C, DW_LD(part + C) + a1);         DW_ST(part + C + 8, DW_LD(part + C + 8) + b1);
    DW_ST(part + 2 * C, DW_LD(part + 2 * C) + a2); DW_ST(part + 2 * C + 8, DW_LD(part + 2 * C + 8) + b2);
}

/* One pixel's gradient, channels [0, Cfull) in blocks of 16: the sum over its n taps of src[t] * wt[t]
   (taps in the order given), accumulated in registers and stored once. */
static inline void dw_gather16_f32(float *out, const float *const *src, const float *const *wt, int n,
                                   Py_ssize_t Cfull)
{
    for (Py_ssize_t c0 = 0; c0 < Cfull; c0 += 16) {
        dw_v8 a = {0}, b = {0};
        for (int t = 0; t < n; t++) {
            a = a + DW_LD(src[t] + c0) * DW_LD(wt[t] + c0);
            b = b + DW_LD(src[t] + c0 + 8) * DW_LD(wt[t] + c0 + 8);
        }
        DW_ST(out + c0, a);
        DW_ST(out + c0 + 8, b);
    }
}
