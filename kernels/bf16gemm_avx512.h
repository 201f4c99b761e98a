/* bfloat16 matrix product on AVX512-BF16 (included by kernels/bf16gemm.pyx only, compiled with -mavx512bf16).
 *
 * Shape letters: M rows of A (samples x pixels), Kp inner size padded to a multiple of 2, N output columns,
 * Np = N padded to a multiple of 16.
 *   a  (M, Kp)        uint16  activations as bfloat16 bits
 *   bp (Kp/2, Np, 2)  uint16  weights as bfloat16 bits, packed so that one 64-byte load holds 2 consecutive k
 *                             of 16 columns
 *   y  (M, N)         float32 y[m, n] = act(sum_k a[m, k] * w[k, n] + bias[n])
 * VDPBF16PS adds the two exact products of a pair of k to a float32 lane; the pairs are added in k order, each
 * output element by one thread: results do not depend on the team.
 */
#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include "lowp_rows.h"

#define BG_MR 4
#define BG_NV 4

/* One register block: rows rows[0..mr) (each a pointer to its first inner element), columns n0 .. n0 + 16 nv;
 * the inner dimension is read as ntaps runs of 2 * C2 values at offsets tapoff[t] (one run for a matrix row,
 * one per tap for a convolution window read in place). With pool, the 4 rows are one 2x2 window of the conv
 * output and the maximum of their sums goes through the (monotonic) epilogue. */
static inline __attribute__((always_inline)) void
bg_block(const int mr, const int nv, const int pool, const uint16_t *const *rows, const Py_ssize_t *tapoff,
         Py_ssize_t ntaps, Py_ssize_t C2, const uint16_t *bp, float *y, const float *bias, int relu,
         Py_ssize_t m0, Py_ssize_t n0, Py_ssize_t N, Py_ssize_t Np)
{
    __m512 acc[BG_MR][BG_NV];
    for (int r = 0; r < mr; r++)
        for (int j = 0; j < nv; j++)
            acc[r][j] = _mm512_setzero_ps();
    const uint16_t *brow = bp + n0 * 2;
    for (Py_ssize_t t = 0; t < ntaps; t++) {
        const Py_ssize_t off = tapoff[t];
        for (Py_ssize_t c2 = 0; c2 < C2; c2++, brow += Np * 2) {
            __m512i bv[BG_NV];
            for (int j = 0; j < nv; j++)
                bv[j] = _mm512_loadu_si512((const void *)(brow + 32 * j));
            for (int r = 0; r < mr; r++) {
                int32_t word;
                memcpy(&word, rows[r] + off + 2 * c2, 4);
                __m512i av = _mm512_set1_epi32(word);
                for (int j = 0; j < nv; j++)
                    acc[r][j] = _mm512_dpbf16_ps(acc[r][j], (__m512bh)av, (__m512bh)bv[j]);
            }
        }
    }
    int out_rows = mr;
    if (pool) {
        for (int j = 0; j < nv; j++)
            acc[0][j] = _mm512_max_ps(_mm512_max_ps(acc[0][j], acc[1][j]), _mm512_max_ps(acc[2][j], acc[3][j]));
        out_rows = 1;
    }
    for (int j = 0; j < nv; j++) {
        Py_ssize_t n = n0 + 16 * j;
        Py_ssize_t left = N - n;
        __mmask16 mask = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1u);
        __m512 bi = _mm512_maskz_loadu_ps(mask, bias + n);
        for (int r = 0; r < out_rows; r++) {
            __m512 v = _mm512_add_ps(acc[r][j], bi);
            if (relu)
                v = _mm512_max_ps(_mm512_setzero_ps(), v);   /* v < 0 ? 0 : v: a NaN stays NaN */
            _mm512_mask_storeu_ps(y + (m0 + r) * N + n, mask, v);
        }
    }
}

#define BG_CASE(MR, NV) case (MR) * 8 + (NV): \
    bg_block(MR, NV, 0, rows, tapoff, ntaps, C2, bp, y, bias, relu, m0, n0, N, Np); break;
#define BG_POOL_CASE(NV) case NV: \
    bg_block(4, NV, 1, rows, tapoff, ntaps, C2, bp, y, bias, relu, m0, n0, N, Np); break;

/* Output rows [m_begin, m_end), every column; row m of A starts at a + m * Kp, or, for a convolution
 * (Ho > 0), at the window of output pixel m = (b, i, j) in the padded input (Hp, Wp, C per sample); with
 * pool, a convolution's row m is the 2x2 max-pooled pixel (b, i, j) of Ho/2 x Wo/2 (floor). */
static void bf16gemm_rows(const uint16_t *a, const uint16_t *bp, float *y, const float *bias, int relu,
                          Py_ssize_t m_begin, Py_ssize_t m_end, Py_ssize_t Kp, Py_ssize_t N, Py_ssize_t Np,
                          Py_ssize_t Ho, Py_ssize_t Wo, Py_ssize_t Hp, Py_ssize_t Wp, Py_ssize_t C,
                          Py_ssize_t sh, Py_ssize_t sw, const Py_ssize_t *taps, Py_ssize_t ntaps, int pool)
{
    const Py_ssize_t zero = 0;
    const Py_ssize_t *tapoff = Ho > 0 ? taps : &zero;
    const Py_ssize_t C2 = Ho > 0 ? C / 2 : Kp / 2;
    if (Ho <= 0)
        ntaps = 1;
    for (Py_ssize_t n0 = 0; n0 < N; n0 += 16 * BG_NV) {
        Py_ssize_t vectors = (N - n0 + 15) / 16;
        int nv = vectors > BG_NV ? BG_NV : (int)vectors;
        if (pool) {
            for (Py_ssize_t m0 = m_begin; m0 < m_end; m0++) {
                const uint16_t *rows[BG_MR];
                for (int r = 0; r < 4; r++)
                    rows[r] = a + lowp_pooled_row(m0, r, Ho, Wo, Hp, Wp, C, sh, sw);
                switch (nv) { BG_POOL_CASE(4) BG_POOL_CASE(3) BG_POOL_CASE(2) BG_POOL_CASE(1) }
            }
            continue;
        }
        for (Py_ssize_t m0 = m_begin; m0 < m_end; m0 += BG_MR) {
            int mr = m_end - m0 > BG_MR ? BG_MR : (int)(m_end - m0);
            const uint16_t *rows[BG_MR];
            for (int r = 0; r < mr; r++)
                rows[r] = a + lowp_row(m0 + r, Kp, Ho, Wo, Hp, Wp, C, sh, sw);
            switch (mr * 8 + nv) {
                BG_CASE(4, 4) BG_CASE(4, 3) BG_CASE(4, 2) BG_CASE(4, 1)
                BG_CASE(3, 4) BG_CASE(3, 3) BG_CASE(3, 2) BG_CASE(3, 1)
                BG_CASE(2, 4) BG_CASE(2, 3) BG_CASE(2, 2) BG_CASE(2, 1)
                BG_CASE(1, 4) BG_CASE(1, 3) BG_CASE(1, 2) BG_CASE(1, 1)
            }
        }
    }
}

/* dst[i] = the bfloat16 bits of src[i], rounded to nearest even (NaN stays a quiet NaN), for i < L. */
static void bg_round_run(uint16_t *dst, const float *src, Py_ssize_t L)
{
    const __m512i one = _mm512_set1_epi32(1), half = _mm512_set1_epi32(0x7FFF);
    const __m512i absmask = _mm512_set1_epi32(0x7FFFFFFF), inf = _mm512_set1_epi32(0x7F800000);
    const __m512i quiet = _mm512_set1_epi32(0x40);
    for (Py_ssize_t i = 0; i < L; i += 16) {
        Py_ssize_t left = L - i;
        __mmask16 mask = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1u);
        __m512i bits = _mm512_maskz_loadu_epi32(mask, src + i);
        __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(bits, 16), one);
        __m512i rounded = _mm512_srli_epi32(_mm512_add_epi32(bits, _mm512_add_epi32(half, lsb)), 16);
        __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(bits, absmask), inf);
        rounded = _mm512_mask_or_epi32(rounded, nan, _mm512_srli_epi32(bits, 16), quiet);
        _mm256_mask_storeu_epi16(dst + i, mask, _mm512_cvtepi32_epi16(rounded));
    }
}
