# Included by the Winograd F(2x2, 3x3) kernels (``include "_winograd_tile.pxi"``): the input transform
# ``V = B^T d B`` of one 4x4xC input tile, inside the image or across its border, NHWC.
#
# The including module defines the fused type ``floating`` (float, double) first. The forward
# (``winograd.pyx``) and the weight gradient (``conv_wgrad.pyx``) read their tiles the same way:
# a tile whose 4x4 pixels all lie in the image is transformed in place; a border tile is first
# copied into a zero-extended 4x4xC patch (the padding and the pixels past the image are zeros).


cdef extern from "winograd_tf.h" nogil:
    void wino_input_f32(float *v, Py_ssize_t vstride, const float *d, Py_ssize_t row, Py_ssize_t C)
    void wino_input_f64(double *v, Py_ssize_t vstride, const double *d, Py_ssize_t row, Py_ssize_t C)


cdef inline void _input_tf(floating *v, Py_ssize_t vstride, const floating *d, Py_ssize_t row,
                           Py_ssize_t C) noexcept nogil:
    """``V = B^T d B`` of the tile whose pixel ``(i, j)`` lies at ``d + i * row + j * C``."""
    if floating is float:
        wino_input_f32(v, vstride, d, row, C)
    else:
        wino_input_f64(v, vstride, d, row, C)


cdef inline void _input_tile(floating *v, Py_ssize_t vstride, const floating *xs, floating *patch,
                             Py_ssize_t H, Py_ssize_t W, Py_ssize_t C, Py_ssize_t r0, Py_ssize_t c0) noexcept nogil:
    """``V = B^T d B`` of the tile ``d`` whose top-left pixel is ``(r0, c0)`` of the sample ``xs (H, W, C)``.

    ``patch`` (``16 * C`` elements of scratch) receives the zero-extended tile when it crosses the border.
    """
    cdef Py_ssize_t a, j, c
    cdef const floating *src
    cdef floating *dst
    if r0 >= 0 and c0 >= 0 and r0 + 4 <= H and c0 + 4 <= W:
        _input_tf(v, vstride, xs + (r0 * W + c0) * C, W * C, C)
        return
    for a in range(4):
        for j in range(4):
            dst = patch + (a * 4 + j) * C
            if 0 <= r0 + a < H and 0 <= c0 + j < W:
                src = xs + ((r0 + a) * W + c0 + j) * C
                for c in range(C):
                    dst[c] = src[c]
            else:
                for c in range(C):
                    dst[c] = 0
    _input_tf(v, vstride, patch, 4 * C, C)
