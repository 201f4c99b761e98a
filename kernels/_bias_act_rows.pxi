# Included by kernels that fuse the bias + activation epilogue into their own loop
# (``include "_bias_act_rows.pxi"`` after the ``floating`` fused type). The same
# operations as ``bias_act_forward`` in ``bias_act.pyx``, so fused and unfused
# results are bit-identical.

from libc.math cimport exp as _exp_d, expf as _exp_f, tanh as _tanh_d, tanhf as _tanh_f

cdef enum:
    ACT_IDENTITY = 0
    ACT_RELU = 1
    ACT_LEAKY_RELU = 2
    ACT_TANH = 3
    ACT_SIGMOID = 4

#: The codes above, by name, in every including module (minicnn/backend/activation_codes.py mirrors them).
ROW_ACTIVATION_CODES = {"identity": ACT_IDENTITY, "relu": ACT_RELU, "leaky_relu": ACT_LEAKY_RELU, "tanh": ACT_TANH,
                        "sigmoid": ACT_SIGMOID}


cdef inline void _bias_act_rows(floating *y, const floating *b, Py_ssize_t M, Py_ssize_t C,
                                int act, floating a) noexcept nogil:
    """In place on ``M`` rows of ``C`` values: ``y = f(y + b)``."""
    cdef Py_ssize_t m, c
    cdef floating z
    cdef floating *row
    for m in range(M):
        row = y + m * C
        if act == ACT_RELU:
            for c in range(C):
                z = row[c] + b[c]
                row[c] = 0 if z < 0 else z   # a NaN stays NaN (as np.maximum): max(0, z)
        elif act == ACT_LEAKY_RELU:
            for c in range(C):
                z = row[c] + b[c]
                row[c] = z if z > 0 else z * a
        elif act == ACT_TANH:
            for c in range(C):
                if floating is float:
                    row[c] = _tanh_f(row[c] + b[c])
                else:
                    row[c] = _tanh_d(row[c] + b[c])
        elif act == ACT_SIGMOID:
            for c in range(C):
                if floating is float:
                    row[c] = 1 / (1 + _exp_f(-(row[c] + b[c])))
                else:
                    row[c] = 1 / (1 + _exp_d(-(row[c] + b[c])))
        else:
            for c in range(C):
                row[c] = row[c] + b[c]
