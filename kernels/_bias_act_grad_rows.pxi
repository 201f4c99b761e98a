# Included by kernels that take the bias + activation backward on rows (``include "_bias_act_grad_rows.pxi"``
# after ``_bias_act_rows.pxi``, whose activation codes it reads): ``bias_act_backward`` in ``bias_act.pyx`` and
# the fused depthwise backward in ``depthwise.pyx``, so both compute ``dz`` with the same operations (same bits).


cdef inline void _grad_rows(floating *dx, floating *acc, const floating *dy, const floating *y,
                            Py_ssize_t r0, Py_ssize_t r1, Py_ssize_t C,
                            int act, floating a) noexcept nogil:
    """``dx = dy * f'(y)`` on rows ``[r0, r1)``, summing each column into ``acc``."""
    cdef Py_ssize_t m, c, o
    cdef floating g, v
    for c in range(C):
        acc[c] = 0
    for m in range(r0, r1):
        o = m * C
        if act == ACT_RELU:
            for c in range(C):
                g = dy[o + c] if y[o + c] > 0 else 0
                dx[o + c] = g
                acc[c] += g
        elif act == ACT_LEAKY_RELU:
            for c in range(C):
                g = dy[o + c] if y[o + c] > 0 else dy[o + c] * a
                dx[o + c] = g
                acc[c] += g
        elif act == ACT_TANH:
            for c in range(C):
                v = y[o + c]
                g = dy[o + c] * (1 - v * v)
                dx[o + c] = g
                acc[c] += g
        elif act == ACT_SIGMOID:
            for c in range(C):
                v = y[o + c]
                g = dy[o + c] * (v * (1 - v))
                dx[o + c] = g
                acc[c] += g
        else:
            for c in range(C):
                g = dy[o + c]
                dx[o + c] = g
                acc[c] += g
