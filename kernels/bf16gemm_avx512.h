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

#define BG_MR 4
#define BG_NV 4

static inline __attribute__((always_inline)) void
bg_block(const int mr, const int nv, const uint16_t *a, const uint16_t *bp, float *y, const float *bias, int relu,
         Py_ssize_t m0, Py_ssize_t n0, Py_ssize_t Kp, Py_ssize_t N, Py_ssize_t Np)
{
    __m512 acc[BG_MR][BG_NV];
    for (int r = 0; r < mr; r++)
        for (int j = 0; j < nv; j++)
            acc[r][j] = _mm512_setzero_ps();
    const Py_ssize_t K2 = Kp / 2;
    for (Py_ssize_t k2 = 0; k2 < K2; k2++) {
        __m512i bv[BG_NV];
        const uint16_t *brow = bp + (k2 * Np + n0) * 2;
        for (int j = 0; j < nv; j++)
            bv[j] = _mm512_loadu_si512((const void *)(brow + 32 * j));
        for (int r = 0; r < mr; r++) {
            int32_t word;
            memcpy(&word, a + (m0 + r) * Kp + 2 * k2, 4);
            __m512i av = _mm512_set1_epi32(word);
            for (int j = 0; j < nv; j++)
                acc[r][j] = _mm512_dpbf16_ps(acc[r][j], (__m512bh)av, (__m512bh)bv[j]);
        }
    }
    for (int j = 0; j < nv; j++) {
        Py_ssize_t n = n0 + 16 * j;
        Py_ssize_t left = N - n;
        __mmask16 mask = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1u);
        __m512 bi = _mm512_maskz_loadu_ps(mask, bias + n);
        for (int r = 0; r < mr; r++) {
            __m512 v = _mm512_add_ps(acc[r][j], bi);
            if (relu)
                v = _mm512_max_ps(v, _mm512_setzero_ps());
            _mm512_mask_storeu_ps(y + (m0 + r) * N + n, mask, v);
        }
    }
}

#define BG_CASE(MR, NV) case (MR) * 8 + (NV): \
    bg_block(MR, NV, a, bp, y, bias, relu, m0, n0, Kp, N, Np); break;

/* Rows [m_begin, m_end) of the product, every column. */
static void bf16gemm_rows(const uint16_t *a, const uint16_t *bp, float *y, const float *bias, int relu,
                          Py_ssize_t m_begin, Py_ssize_t m_end, Py_ssize_t Kp, Py_ssize_t N, Py_ssize_t Np)
{
    for (Py_ssize_t n0 = 0; n0 < N; n0 += 16 * BG_NV) {
        Py_ssize_t vectors = (N - n0 + 15) / 16;
        int nv = vectors > BG_NV ? BG_NV : (int)vectors;
        for (Py_ssize_t m0 = m_begin; m0 < m_end; m0 += BG_MR) {
            int mr = m_end - m0 > BG_MR ? BG_MR : (int)(m_end - m0);
            switch (mr * 8 + nv) {
                BG_CASE(4, 4) BG_CASE(4, 3) BG_CASE(4, 2) BG_CASE(4, 1)
                BG_CASE(3, 4) BG_CASE(3, 3) BG_CASE(3, 2) BG_CASE(3, 1)
                BG_CASE(2, 4) BG_CASE(2, 3) BG_CASE(2, 2) BG_CASE(2, 1)
                BG_CASE(1, 4) BG_CASE(1, 3) BG_CASE(1, 2) BG_CASE(1, 1)
            }
        }
    }
}

/* float32 -> bfloat16 bits, rounded to nearest even (NaN stays a quiet NaN). */
static inline uint16_t bf16_round(float x)
{
    uint32_t bits;
    memcpy(&bits, &x, 4);
    if ((bits & 0x7FFFFFFFu) > 0x7F800000u)
        return (uint16_t)((bits >> 16) | 0x40u);
    return (uint16_t)((bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16);
}
