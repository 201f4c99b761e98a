# cython: language_level=3
"""Winograd F(2x2, 3x3) inference forward with each tile in registers, for 16-channel multiples (NHWC, float32).

Shape letters: N samples; H, W, C input height, width, channels; F filters; Ho, Wo output height, width.

``conv2d_winograd16_bias_act_forward(y, x, u, b, act, alpha, pt, pl)``: ``y (N, Ho, Wo, F) = f(conv(x (N, H, W, C),
w) + b (F,))`` for a 3x3 kernel, stride 1, dilation 1, top/left zero padding ``pt``, ``pl`` (bottom/right implied by
the output size), the weights given transformed: ``u (4, 4, C, F)`` from ``winograd_weight_transform``. ``C`` and
``F`` multiples of 16, ``C <= 64``. ``conv2d_winograd16_bias_add_act_forward(y, x, u, b, s, act, alpha, pt, pl)``
adds ``s`` (the output's shape) before the activation: ``f((conv + b) + s)``. No workspace: each thread keeps its
blocks of tiles on its stack (``kernels/winograd16.h``: the input transform of a 4x4 tile in registers, 8 tiles'
products accumulated side by side per transformed position and vector of filters, the output transform and the
epilogue in registers). Work units are tile rows (two output rows of one sample), spread statically over the team;
the bits depend neither on the team nor on the units. The NumPy twin is ``minicnn.backend.reference.winograd16``
(the reference Winograd's sums; here the channel sums are fused multiply-adds at the levels with FMA: agreement
within float rounding).
"""

cimport cython
from cython.parallel cimport prange

include "_parallel.pxi"

cdef extern from "winograd16.h" nogil:
    enum:
        W16_MAXC
    void w16_rows_f32(float *y, const float *x, const float *U, const float *bias, const float *skip, int act,
                      float alpha, Py_ssize_t H, Py_ssize_t W, Py_ssize_t C, Py_ssize_t F, Py_ssize_t Ho,
                      Py_ssize_t Wo, Py_ssize_t pt, Py_ssize_t pl, Py_ssize_t ty0, Py_ssize_t ty1)

WINOGRAD16_MAX_CHANNELS = W16_MAXC


@cython.cdivision(True)
cdef _run(str name, float[:, :, :, ::1] y, const float[:, :, :, ::1] x, const float[:, :, :, ::1] u,
          const float[::1] b, const float *sp, int act, double alpha, int pt, int pl):
    cdef Py_ssize_t N = x.shape[0], H = x.shape[1], W = x.shape[2], C = x.shape[3]
    cdef Py_ssize_t Ho = y.shape[1], Wo = y.shape[2], F = y.shape[3]
    if (y.shape[0] != N or u.shape[0] != 4 or u.shape[1] != 4 or u.shape[2] != C or u.shape[3] != F
            or b.shape[0] != F):
        raise ValueError(f"{name} shapes do not match: y ({y.shape[0]}, {Ho}, {Wo}, {F}), x ({N}, {H}, {W}, {C}), "
                         f"u ({u.shape[0]}, {u.shape[1]}, {u.shape[2]}, {u.shape[3]}), b ({b.shape[0]},)")
    if C % 16 or F % 16 or C > W16_MAXC or C == 0:
        raise ValueError(f"{name} takes C and F multiples of 16, 16 <= C <= {W16_MAXC}; received C={C}, F={F}")
    if act < 0 or act > 4:
        raise ValueError(f"{name} takes act in 0..4; received act={act}")
    if pt < 0 or pl < 0:
        raise ValueError(f"{name} takes pt, pl >= 0; received pt={pt}, pl={pl}")
    if N * Ho * Wo * F == 0:
        return
    cdef float *yp = &y[0, 0, 0, 0]
    cdef const float *xp = &x[0, 0, 0, 0]
    cdef const float *up = &u[0, 0, 0, 0]
    cdef const float *bp = &b[0]
    cdef float a = <float>alpha
    cdef Py_ssize_t th = (Ho + 1) // 2, U = N * th, t, n, r
    cdef Py_ssize_t ys = Ho * Wo * F, xs = H * W * C
    cdef int nt = team(N * th * ((Wo + 1) // 2) * 16 * C * F)
    if U < nt:
        nt = <int>U
    if nt == 1:
        for n in range(N):
            w16_rows_f32(yp + n * ys, xp + n * xs, up, bp, sp + n * ys if sp != NULL else NULL, act, a, H, W, C,
                         F, Ho, Wo, pt, pl, 0, th)
    else:
        for t in prange(U, nogil=True, schedule="static", num_threads=nt):
            n = t // th
            r = t % th
            w16_rows_f32(yp + n * ys, xp + n * xs, up, bp, sp + n * ys if sp != NULL else NULL, act, a, H, W, C,
                         F, Ho, Wo, pt, pl, r, r + 1)


def conv2d_winograd16_bias_act_forward(float[:, :, :, ::1] y, const float[:, :, :, ::1] x,
                                       const float[:, :, :, ::1] u, const float[::1] b, int act, double alpha,
                                       int pt, int pl):
    """``y = f(conv(x, w) + b)`` from the transformed weights ``u`` (see the module)."""
    _run("conv2d_winograd16_bias_act_forward", y, x, u, b, NULL, act, alpha, pt, pl)


def conv2d_winograd16_bias_add_act_forward(float[:, :, :, ::1] y, const float[:, :, :, ::1] x,
                                           const float[:, :, :, ::1] u, const float[::1] b,
                                           const float[:, :, :, ::1] s, int act, double alpha, int pt, int pl):
    """``y = f((conv(x, w) + b) + s)`` from the transformed weights ``u`` (see the module)."""
    if s.shape[0] != y.shape[0] or s.shape[1] != y.shape[1] or s.shape[2] != y.shape[2] or s.shape[3] != y.shape[3]:
        raise ValueError(f"conv2d_winograd16_bias_add_act_forward needs s of y's shape ({y.shape[0]}, {y.shape[1]}, "
                         f"{y.shape[2]}, {y.shape[3]}); received ({s.shape[0]}, {s.shape[1]}, {s.shape[2]}, "
                         f"{s.shape[3]})")
    cdef const float *sp = NULL
    if s.shape[0] * s.shape[1] * s.shape[2] * s.shape[3]:
        sp = &s[0, 0, 0, 0]
    _run("conv2d_winograd16_bias_add_act_forward", y, x, u, b, sp, act, alpha, pt, pl)
