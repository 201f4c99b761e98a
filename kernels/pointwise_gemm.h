/* The pointwise (1x1, stride 1, unpadded) convolution as a product of the pixels by the weights, blocked in registers.

   Shape letters: P pixels (rows of x and y: N*H*W), C input channels (the inner size), F output channels.
   y (P, F) = f(x (P, C) @ w (C, F) + b (F)), every array row-major with leading dimensions C, F, F.

   A tile of PW_MR pixels x 2 vectors of output channels keeps its 2 * PW_MR accumulators in registers while the
   C products are added into them: per input channel, two weight vectors are loaded and each pixel's input value is
   broadcast once for both. The weights are read as given (no packed copy): a panel of 2 vectors x C is at most a
   few kB of the L1 cache for the channel counts of small nets, and the tiles walk it contiguously row by row.
   Channels after the last full pair of vectors go one vector at a time, then one channel at a time.

   Every output is sum_c x[p, c] * w[c, f], the products added in channel order: "acc + x * w", contracted to one
   fused multiply-add at the levels that have FMA (the module is in isa.FMA_MODULES: 1.2-1.6x the speed of the
   separate multiply and add, which cost the same pipes' slots twice), one rounding per operation at baseline. The
   vector lanes and the scalar tail compile to the same operation, so a result depends neither on the blocking nor
   on the thread team; at baseline the NumPy twin (the same loop over c on whole columns) gives the same bits, at
   the FMA levels it agrees within rounding. The epilogue for identity, relu and leaky relu
   runs on the accumulators before their one store (the bits of _bias_act_rows.pxi: "0 if z < 0 else z",
   "z if z > 0 else z * a", a NaN stays NaN); with bias NULL the raw sums are stored (the caller runs the row pass).

   Vectors are GCC vector extensions: 16 floats at the avx512 level (MR = 8: 16 accumulators of 32 registers),
   8 floats below (MR = 6 with AVX's 16 registers, 3 at baseline where GCC splits each into two SSE halves). */

#if defined(__AVX512F__)
#define PW_VL 16
#elif defined(__AVX__)
#define PW_VL 8
#else
#define PW_VL 8
#endif

#include "vec_bias_act.h"

typedef float pw_v __attribute__((vector_size(PW_VL * 4), aligned(4)));
typedef int pw_vi __attribute__((vector_size(PW_VL * 4)));
#define PW_LD(p) (*(const pw_v *)(p))
#define PW_ST(p, v) (*(pw_v *)(p) = (v))

/* The store of one accumulator vector at o, with the epilogue f(acc + b[bo..]) when bias is not NULL. */
#define PW_OUT(o, acc, bo) do {                                                                       \
    pw_v v_ = (acc);                                                                                  \
    if (bias)                                                                                         \
        VEC_BIAS_ACT(pw_v, pw_vi, v_, PW_LD(bias + (bo)), act, alpha);                                \
    PW_ST((o), v_);                                                                                   \
} while (0)

#define PW_DECL(r) pw_v a##r##0 = {0}, a##r##1 = {0};
#define PW_MAC2(r) { const float s_ = xk[(r) * C]; a##r##0 = a##r##0 + s_ * w0; a##r##1 = a##r##1 + s_ * w1; }
#define PW_MAC1(r) { const float s_ = xk[(r) * C]; a##r##0 = a##r##0 + s_ * w0; }
#define PW_OUT2(r) PW_OUT(y + (r) * F, a##r##0, 0); PW_OUT(y + (r) * F + PW_VL, a##r##1, PW_VL);
#define PW_OUT1(r) PW_OUT(y + (r) * F, a##r##0, 0);

#define PW_ROWS1(X) X(0)
#if defined(__AVX512F__)
#define PW_MR 8
#define PW_ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7)
#elif defined(__AVX__)
#define PW_MR 6
#define PW_ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5)
#else
#define PW_MR 3
#define PW_ROWS(X) X(0) X(1) X(2)
#endif

/* One tile: rows given by ROWS (PW_ROWS or PW_ROWS1), NV (1 or 2) vectors of output channels from y, w, bias.
   Not inlined: inside the Cython block function GCC ran short of general registers for the PW_MR row offsets and
   reloaded them from the stack in the inner loop (4096 x 64 -> 64 on avx512: 0.338 ms, 49.6 Gmadd/s, against
   0.298 ms for the same loop compiled alone); a call per tile of 2 * PW_MR * PW_VL * C multiply-adds costs nothing
   next to that. */
#define PW_TILE(name, ROWS, NV)                                                                       \
static __attribute__((noinline)) void name(float *y, const float *x, const float *w, const float *bias, Py_ssize_t C,   \
                        Py_ssize_t F, int act, float alpha)                                          \
{                                                                                                     \
    ROWS(PW_DECL)                                                                                     \
    for (Py_ssize_t c = 0; c < C; c++) {                                                              \
        const float *xk = x + c, *wk = w + c * F;                                                     \
        const pw_v w0 = PW_LD(wk);                                                                    \
        const pw_v w1 = NV == 2 ? PW_LD(wk + PW_VL) : w0;                                             \
        if (NV == 2) { ROWS(PW_MAC2) } else { ROWS(PW_MAC1) }                                         \
    }                                                                                                 \
    if (NV == 2) { ROWS(PW_OUT2) } else { ROWS(PW_OUT1) }                                             \
}

PW_TILE(pw_tile_m2, PW_ROWS, 2)
PW_TILE(pw_tile_12, PW_ROWS1, 2)
PW_TILE(pw_tile_m1, PW_ROWS, 1)
PW_TILE(pw_tile_11, PW_ROWS1, 1)

/* Rows [0, M) of y = x @ w (+ the fused epilogue when bias is not NULL; act 0-2 only), x and y already offset to
   the first row. Column panels outermost: a panel of the weights stays in the L1 cache while the rows pass. */
static inline void pw_rows_f32(float *y, const float *x, const float *w, const float *bias, Py_ssize_t M,
                               Py_ssize_t C, Py_ssize_t F, int act, float alpha)
{
    Py_ssize_t f0 = 0, m;
    for (; f0 + 2 * PW_VL <= F; f0 += 2 * PW_VL) {
        const float *bp = bias ? bias + f0 : 0;
        for (m = 0; m + PW_MR <= M; m += PW_MR)
            pw_tile_m2(y + m * F + f0, x + m * C, w + f0, bp, C, F, act, alpha);
        for (; m < M; m++)
            pw_tile_12(y + m * F + f0, x + m * C, w + f0, bp, C, F, act, alpha);
    }
    for (; f0 + PW_VL <= F; f0 += PW_VL) {
        const float *bp = bias ? bias + f0 : 0;
        for (m = 0; m + PW_MR <= M; m += PW_MR)
            pw_tile_m1(y + m * F + f0, x + m * C, w + f0, bp, C, F, act, alpha);
        for (; m < M; m++)
            pw_tile_11(y + m * F + f0, x + m * C, w + f0, bp, C, F, act, alpha);
    }
    if (f0 < F) {   /* the last F - f0 < PW_VL channels, one at a time: the same sums as a vector lane */
        for (m = 0; m < M; m++) {
            const float *xr = x + m * C;
            float *yr = y + m * F;
            for (Py_ssize_t f = f0; f < F; f++) {
                float acc = 0.0f;
                for (Py_ssize_t c = 0; c < C; c++)
                    acc = acc + xr[c] * w[c * F + f];
                if (bias) {
                    float z = acc + bias[f];
                    if (act == 1)
                        z = z < 0 ? 0.0f : z;
                    else if (act == 2)
                        z = z > 0 ? z : z * alpha;
                    acc = z;
                }
                yr[f] = acc;
            }
        }
    }
}
