/* int8 matrix product on AVX512-VNNI (included by kernels/qgemm.pyx only, compiled with -mavx512vnni).
 *
 * Shape letters: M rows of A (samples x pixels), Kp inner size padded to a multiple of 4, N output columns,
 * Np = N padded to a multiple of 16.
 *   a  (M, Kp)        uint8   activations (their zero point added: q = round(x / s) + z)
 *   bp (Kp/4, Np, 4)  int8    weights packed so that one 64-byte load holds 4 consecutive k of 16 columns
 *   c  (M, N)         int32   c[m, n] = sum_k a[m, k] * w[k, n]   (exact: VPDPBUSD adds 4 u8 x s8 products
 *                             into each int32 lane without intermediate saturation)
 *   y  (M, N)         float32 y[m, n] = act((float)(c[m, n] - zcorr[n]) * scale[n] + bias[n])
 *   or q              uint8   y quantized as the next int8 layer's input, written where that layer reads it
 *                             (qg_requant): no float32 activations in memory between two int8 layers
 * A convolution reads its rows of A straight from the zero-point-padded input (implicit im2col: the windows
 * are never copied), when C is a multiple of 4.
 * where zcorr[n] = z * sum_k w[k, n] removes the activations' zero point (the unsigned x signed offset trick).
 * Each output element is computed by one thread in one fixed order: integer results are exact, and the float
 * epilogue is one conversion, one multiply and one add (no contraction), as the NumPy reference.
 */
#include <immintrin.h>
#include <stdint.h>
#include <string.h>

/* rows: kernels/lowp_rows.h says where each starts (stepped here pixel by pixel, without a division per row) */

#define QG_MR 4   /* rows of a register block */

/* acc += a (16 lanes of 4 uint8) . b (16 lanes of 4 int8), VPDPBUSD. Written as inline assembly with the
 * accumulator tied to the output: with GCC 12's intrinsic the register allocator copies every accumulator twice
 * per step of the inner loop (two vmovdqa per VPDPBUSD, and a spill); the AMD Zen 4 this was measured on hides
 * most of those copies at register renaming (the conv + pool kernel gained about 1%), a CPU that does not would
 * lose more. */
static inline __attribute__((always_inline)) __m512i qg_dpbusd(__m512i acc, __m512i a, __m512i b)
{
    __asm__("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(a), "v"(b));
    return acc;
}
#define QG_NV 4   /* 16-column vectors of a register block (64 columns) */

/* Where a product's outputs go as the NEXT int8 layer's uint8 input, quantized with its inv_scale and zero
 * point z (q = clip(rint(y * inv) + z, 0, 255), the float32 operations of qg_quantize_run on the float32 y of
 * the epilogue: the same bits as writing y and quantizing it). Output row m is pixel (b, i, j) of an Ho x Wo
 * grid (1 x 1 for a dense product); its F values go to q + b * L + ((i + pt) * Wq + j + pl) * Cq. */
typedef struct {
    uint8_t *q;
    float inv, z;
    Py_ssize_t Ho, Wo, L, Wq, Cq, pt, pl;
} qg_requant;

/* Output pixel (b, i, j) of an Ho x Wo grid, stepped row by row (no division per row). */
typedef struct { Py_ssize_t b, i, j; } qg_pixel;

static inline qg_pixel qg_pixel_of(Py_ssize_t m, Py_ssize_t Ho, Py_ssize_t Wo)
{
    qg_pixel p = {m / (Ho * Wo), (m / Wo) % Ho, m % Wo};
    return p;
}

static inline void qg_step(qg_pixel *p, Py_ssize_t Ho, Py_ssize_t Wo)
{
    if (++p->j == Wo) {
        p->j = 0;
        if (++p->i == Ho) {
            p->i = 0;
            p->b++;
        }
    }
}

static inline uint8_t *qg_requant_row(const qg_requant *o, qg_pixel p)
{
    return o->q + p.b * o->L + ((p.i + o->pt) * o->Wq + p.j + o->pl) * o->Cq;
}

/* clip(rint(v * inv) + z, 0, 255) of 16 float32 lanes as uint8 (the float32 product rounded to nearest even). */
static inline __attribute__((always_inline)) __m512i qg_quantize16_epi32(__m512 v, __m512 vinv, __m512 vz)
{
    v = _mm512_roundscale_ps(_mm512_mul_ps(v, vinv), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    v = _mm512_min_ps(_mm512_max_ps(_mm512_add_ps(v, vz), _mm512_setzero_ps()), _mm512_set1_ps(255.0f));
    return _mm512_cvtps_epi32(v);
}

static inline __attribute__((always_inline)) __m128i qg_quantize16(__m512 v, __m512 vinv, __m512 vz)
{
    return _mm512_cvtepi32_epi8(qg_quantize16_epi32(v, vinv, vz));
}

/* One register block: rows rows[0..mr) (each a pointer to its first inner element), columns n0 .. n0 + 16 nv.
 * The inner dimension is read as ntaps runs of 4 * C4 bytes, run t at offset tapoff[t] from each row pointer
 * (a matrix row: one run; a convolution window on the padded input: one run per tap, im2col's order). */
static inline __attribute__((always_inline)) void
qg_block(const int mr, const int nv, const int pool, const uint8_t *const *rows, const Py_ssize_t *tapoff, Py_ssize_t ntaps,
         Py_ssize_t C4, const int8_t *bp, int32_t *c, float *y, const int32_t *zcorr, const float *scale,
         const float *bias, int relu, uint8_t *const *orow, float inv, float z, Py_ssize_t m0, Py_ssize_t n0,
         Py_ssize_t N, Py_ssize_t Np)
{
    __m512i acc[QG_MR][QG_NV];
    for (int r = 0; r < mr; r++)
        for (int j = 0; j < nv; j++)
            acc[r][j] = _mm512_setzero_si512();
    const int8_t *brow = bp + n0 * 4;
    for (Py_ssize_t t = 0; t < ntaps; t++) {
        const Py_ssize_t off = tapoff[t];
        for (Py_ssize_t c4 = 0; c4 < C4; c4++, brow += Np * 4) {
            __m512i bv[QG_NV];
            for (int j = 0; j < nv; j++)
                bv[j] = _mm512_loadu_si512((const void *)(brow + 64 * j));
            for (int r = 0; r < mr; r++) {
                int32_t word;
                memcpy(&word, rows[r] + off + 4 * c4, 4);
                __m512i av = _mm512_set1_epi32(word);
                for (int j = 0; j < nv; j++)
                    acc[r][j] = qg_dpbusd(acc[r][j], av, bv[j]);
            }
        }
    }
    int out_rows = mr;
    if (pool) {   /* the 4 rows are one 2x2 window of the conv output: its maximum (the epilogue is monotonic) */
        for (int j = 0; j < nv; j++)
            acc[0][j] = _mm512_max_epi32(_mm512_max_epi32(acc[0][j], acc[1][j]),
                                         _mm512_max_epi32(acc[2][j], acc[3][j]));
        out_rows = 1;
    }
    for (int j = 0; j < nv; j++) {
        Py_ssize_t n = n0 + 16 * j;
        Py_ssize_t left = N - n;
        __mmask16 mask = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1u);
        if (y == NULL && orow == NULL) {   /* the exact int32 sums */
            for (int r = 0; r < mr; r++)
                _mm512_mask_storeu_epi32(c + (m0 + r) * N + n, mask, acc[r][j]);
            continue;
        }
        __m512i zc = _mm512_maskz_loadu_epi32(mask, zcorr + n);
        __m512 sc = _mm512_maskz_loadu_ps(mask, scale + n);
        __m512 bi = _mm512_maskz_loadu_ps(mask, bias + n);
        for (int r = 0; r < out_rows; r++) {
            __m512 v = _mm512_cvtepi32_ps(_mm512_sub_epi32(acc[r][j], zc));
            v = _mm512_add_ps(_mm512_mul_ps(v, sc), bi);
            if (relu)
                v = _mm512_max_ps(_mm512_setzero_ps(), v);   /* v < 0 ? 0 : v: a NaN stays NaN */
            if (orow != NULL)
                _mm_mask_storeu_epi8(orow[r] + n, mask, qg_quantize16(v, _mm512_set1_ps(inv), _mm512_set1_ps(z)));
            else
                _mm512_mask_storeu_ps(y + (m0 + r) * N + n, mask, v);
        }
    }
}

#define QG_CASE(MR, NV) case (MR) * 8 + (NV): \
    qg_block(MR, NV, 0, rows, tapoff, ntaps, C4, bp, c, y, zcorr, scale, bias, relu, orow, inv, z, m0, n0, N, Np); break;

#define QG_POOL_CASE(NV) case NV: \
    qg_block(4, NV, 1, rows, tapoff, ntaps, C4, bp, c, y, zcorr, scale, bias, relu, orow, inv, z, m0, n0, N, Np); break;

/* Output rows [m_begin, m_end), every column; row m of A starts at a + m * Kp, or, for a convolution
 * (Ho > 0), at the window of output pixel m = (b, i, j) in the padded input xp (Hp, Wp, C per sample).
 * With pool, a convolution's output row m is the 2x2 max-pooled pixel (b, i, j) of Ho/2 x Wo/2 (floor). */
static void qgemm_vnni_rows(const uint8_t *a, const int8_t *bp, int32_t *c, float *y, const int32_t *zcorr,
                            const float *scale, const float *bias, int relu, Py_ssize_t m_begin,
                            Py_ssize_t m_end, Py_ssize_t Kp, Py_ssize_t N, Py_ssize_t Np,
                            Py_ssize_t Ho, Py_ssize_t Wo, Py_ssize_t Hp, Py_ssize_t Wp, Py_ssize_t C,
                            Py_ssize_t sh, Py_ssize_t sw, const Py_ssize_t *taps, Py_ssize_t ntaps, int pool,
                            const qg_requant *out)
{
    const Py_ssize_t zero = 0;
    const Py_ssize_t *tapoff = Ho > 0 ? taps : &zero;
    const Py_ssize_t C4 = Ho > 0 ? C / 4 : Kp / 4;
    /* the grid of the output rows: conv pixels, pooled pixels, or one row per sample of a dense product */
    const Py_ssize_t Hg = Ho <= 0 ? 1 : pool ? Ho / 2 : Ho, Wg = Ho <= 0 ? 1 : pool ? Wo / 2 : Wo;
    const float inv = out != NULL ? out->inv : 0.0f, z = out != NULL ? out->z : 0.0f;
    const int step = pool ? 1 : QG_MR;
    if (Ho <= 0)
        ntaps = 1;
    for (Py_ssize_t n0 = 0; n0 < N; n0 += 16 * QG_NV) {
        Py_ssize_t vectors = (N - n0 + 15) / 16;
        int nv = vectors > QG_NV ? QG_NV : (int)vectors;
        qg_pixel p = qg_pixel_of(m_begin, Hg, Wg);
        for (Py_ssize_t m0 = m_begin; m0 < m_end; m0 += step) {
            int mr = pool ? 1 : m_end - m0 > QG_MR ? QG_MR : (int)(m_end - m0);
            const uint8_t *rows[QG_MR];
            uint8_t *orows[QG_MR];
            for (int r = 0; r < mr; r++) {
                if (pool)   /* the 4 conv pixels of the 2x2 window of pooled pixel p */
                    for (int t = 0; t < 4; t++)
                        rows[t] = a + ((p.b * Hp + (2 * p.i + t / 2) * sh) * Wp + (2 * p.j + t % 2) * sw) * C;
                else
                    rows[r] = a + (Ho <= 0 ? p.b * Kp : ((p.b * Hp + p.i * sh) * Wp + p.j * sw) * C);
                orows[r] = out != NULL ? qg_requant_row(out, p) : NULL;
                qg_step(&p, Hg, Wg);
            }
            uint8_t *const *orow = out != NULL ? orows : NULL;
            if (pool) {
                switch (nv) { QG_POOL_CASE(4) QG_POOL_CASE(3) QG_POOL_CASE(2) QG_POOL_CASE(1) }
                continue;
            }
            switch (mr * 8 + nv) {
                QG_CASE(4, 4) QG_CASE(4, 3) QG_CASE(4, 2) QG_CASE(4, 1)
                QG_CASE(3, 4) QG_CASE(3, 3) QG_CASE(3, 2) QG_CASE(3, 1)
                QG_CASE(2, 4) QG_CASE(2, 3) QG_CASE(2, 2) QG_CASE(2, 1)
                QG_CASE(1, 4) QG_CASE(1, 3) QG_CASE(1, 2) QG_CASE(1, 1)
            }
        }
    }
}

/* dst[i] = clip(rint(src[i] * inv) + z, 0, 255) for i < L (the float32 product rounded to nearest even, then the
 * zero point added in float32, as the scalar formula; 16 values per step). */
static void qg_quantize_run(uint8_t *dst, const float *src, Py_ssize_t L, float inv, float z)
{
    const __m512 vinv = _mm512_set1_ps(inv), vz = _mm512_set1_ps(z);
    for (Py_ssize_t i = 0; i < L; i += 16) {
        Py_ssize_t left = L - i;
        __mmask16 mask = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1u);
        _mm_mask_storeu_epi8(dst + i, mask, qg_quantize16(_mm512_maskz_loadu_ps(mask, src + i), vinv, vz));
    }
}

/* One channel padded to 4: dst[4 i] = clip(rint(src[i] * inv) + z, 0, 255) (as qg_quantize_run) and dst[4 i + 1
 * .. 4 i + 3] = z for i < L: one 32-bit lane per pixel (the first conv of a grayscale model). */
static void qg_quantize_run_spread4(uint8_t *dst, const float *src, Py_ssize_t L, float inv, float z)
{
    const __m512 vinv = _mm512_set1_ps(inv), vz = _mm512_set1_ps(z);
    const __m512i fill = _mm512_set1_epi32((int)((uint32_t)z * 0x01010100u));
    for (Py_ssize_t i = 0; i < L; i += 16) {
        Py_ssize_t left = L - i;
        __mmask16 mask = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1u);
        __m512i v = qg_quantize16_epi32(_mm512_maskz_loadu_ps(mask, src + i), vinv, vz);
        _mm512_mask_storeu_epi32(dst + 4 * i, mask, _mm512_or_si512(v, fill));
    }
}

/* One channel, kernel rows of up to 4 taps read as one 4-byte group: dst[4 j + c] = P[j + c] for j < Wp, c < 4,
 * where P (Wp + 3 bytes) is the image row quantized as qg_quantize_run at offset pl, the zero point elsewhere. */
static void qg_quantize_rows4(uint8_t *dst, const float *src, Py_ssize_t W, Py_ssize_t pl, Py_ssize_t Wp, float inv,
                              float z, int zero_point)
{
    uint8_t row[Wp + 3];
    memset(row, zero_point, Wp + 3);
    qg_quantize_run(row + pl, src, W < Wp + 3 - pl ? W : Wp + 3 - pl, inv, z);
    for (Py_ssize_t j = 0; j < Wp; j++)
        memcpy(dst + 4 * j, row + j, 4);
}
