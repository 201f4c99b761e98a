/* Where a row of a reduced-precision product starts (included by bf16gemm_avx512.h; qgemm_vnni.h steps through
 * the same rows pixel by pixel).
 *
 * A dense product's row m starts at element m * Kp of A. A convolution's row m (Ho > 0) is output pixel
 * (b, i, j) of Ho x Wo, whose window starts at element ((b * Hp + i * sh) * Wp + j * sw) * C of the padded
 * input (Hp, Wp, C per sample); its taps lie at the offsets of the taps table (kernels/_lowp.pxi). With a fused
 * 2x2 max-pool, row m is pooled pixel (b, i, j) of Ho/2 x Wo/2 and its 4 conv rows r = 0..3 are the pixels
 * (2i + r / 2, 2j + r % 2).
 */
#ifndef MINICNN_LOWP_ROWS_H
#define MINICNN_LOWP_ROWS_H

static inline Py_ssize_t lowp_row(Py_ssize_t m, Py_ssize_t Kp, Py_ssize_t Ho, Py_ssize_t Wo, Py_ssize_t Hp,
                                  Py_ssize_t Wp, Py_ssize_t C, Py_ssize_t sh, Py_ssize_t sw)
{
    if (Ho <= 0)
        return m * Kp;
    Py_ssize_t b = m / (Ho * Wo), i = (m / Wo) % Ho, j = m % Wo;
    return ((b * Hp + i * sh) * Wp + j * sw) * C;
}

static inline Py_ssize_t lowp_pooled_row(Py_ssize_t m, int r, Py_ssize_t Ho, Py_ssize_t Wo, Py_ssize_t Hp,
                                         Py_ssize_t Wp, Py_ssize_t C, Py_ssize_t sh, Py_ssize_t sw)
{
    Py_ssize_t Hq = Ho / 2, Wq = Wo / 2;
    Py_ssize_t b = m / (Hq * Wq), i = 2 * ((m / Wq) % Hq) + r / 2, j = 2 * (m % Wq) + r % 2;
    return ((b * Hp + i * sh) * Wp + j * sw) * C;
}

#endif
