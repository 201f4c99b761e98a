# cython: language_level=3
"""The pointwise (1x1, stride 1, unpadded) convolution's inference forward, Cython + OpenMP.

Shape letters: P pixels (``N*H*W``: the rows), C input channels, F output channels.

``pointwise_conv2d_bias_act_forward(y, x, w, b, act, alpha)``: ``y (P, F) = f(x (P, C) @ w (C, F) + b)``, the
same arguments as ``dense_bias_act_forward``. In float32 the product runs as ``pointwise_gemm.h`` (register tiles
of pixels x output channels, the weights read in place, the epilogue in registers for identity, relu and leaky
relu), in blocks of ``PW_BLOCK`` rows spread over the team; other activations take the row pass of
``_bias_act_rows.pxi`` on each block while it is in cache. Each output is the sum of its C products in channel
order (fused multiply-adds at the levels with FMA: this module is in ``isa.FMA_MODULES``), the same operations
whoever computes it: the bits depend neither on the team nor on the blocks. They equal the NumPy twin's
(``minicnn.backend.reference.pointwise``) at ``baseline`` and agree within rounding at the FMA levels. float64 runs
the same sums as a plain loop (the layers route float64 to the dense product).

Measured against ``dense_bias_act_forward`` (SciPy's OpenBLAS sgemm in calls of at most 10^6 multiply-adds, its
small-matrix path, ``kernels/gemm.pyx``, then the epilogue), the MobileNet-style 1x1 convs, one thread, avx512,
medians of 41 interleaved calls, ``python benchmarks/bench_pointwise.py --rounds 41`` (2026-12-07 22:34 UTC, load
~4.5 on 2 cores): pointwise / dense 0.171 / 0.224 ms for 16 -> 32 on 16x16, 0.156 / 0.172 for 32 -> 64 on 8x8,
0.302 / 0.317 for 64 -> 64, 0.152 / 0.157 for 64 -> 128 on 4x4, 0.310 / 0.330 for 128 -> 128 at batch 64 (49-56
Gmadd/s: dense / pointwise 1.31, 1.11, 1.05, 1.04, 1.06; ONNX Runtime's nodes 0.15-0.30 ms); at batch 8 1.28,
1.07, 1.04, 1.02, 1.03. Before the tiles of ``pointwise_gemm.h`` were kept out of line (GCC reloaded their row
offsets from the stack inside the block function) the same run gave 1.23, 1.02, 0.94, 0.94, 0.89. Without
contraction (a multiply and an add) the kernel ran 0.23-0.49 ms: behind the sgemm. At ``avx2`` (forced on this
CPU) the ratios were 1.37, 1.10, 1.00, 0.96, 0.95: the layers keep the dense product there
(``minicnn.layers.conv.POINTWISE_LEVELS``).

``separable_conv2d_bias_act_forward``: a depthwise-separable block's inference, the depthwise rows of each block of
output rows (``depthwise_rows.h``) multiplied by the pointwise weights while in cache. Measured against the
depthwise kernel followed by the pointwise kernel or by the dense product, the MobileNet-style zoo net's five
blocks, one thread, ``python benchmarks/bench_pointwise.py --separable`` (22:35 UTC, load 3-4.5 on 2 cores, medians
of 41-61 interleaved rounds): the better two-kernel route over the fused one 0.95-1.05 at batch 64 (fused 0.27-0.29,
0.24-0.30, 0.45, 0.19-0.21, 0.36-0.38 ms; the depthwise kernel alone 0.11, 0.09, 0.09, 0.04, 0.04), 1.03-1.10 at
batch 8: a tie within the load's noise at batch 64, ahead at batch 8, and one layer call less per block. On 2
threads (``--threads 2 --minima``, minima of 101: on the loaded machine the medians of a 2-thread call measured the
wait for a descheduled worker, 0.8-1.7 either way) 0.95-1.09, fused 0.175, 0.143, 0.220, 0.110, 0.198 ms at batch
64. Before each thread's depthwise buffer began on a cache line of its own (``SEP_ALIGN``; from malloc two
buffers shared the line at their boundary, rewritten by every unit) the fused kernel ran on 2 threads, minima of
201 interleaved with the aligned build (22:42 UTC): 0.240 / 0.166, 0.153 / 0.126, 0.232 / 0.202, 0.114 / 0.098,
0.189 / 0.177 ms: 1.58-1.78x its 1-thread speed on the last four blocks (1.89-1.92x aligned), where depthwise +
pointwise ran 1.87-1.96x.
"""

cimport cython
from cython.parallel cimport prange
from libc.stdlib cimport free, malloc
from openmp cimport omp_get_thread_num

ctypedef fused floating:
    float
    double

include "_parallel.pxi"
include "_bias_act_rows.pxi"

cdef extern from "pointwise_gemm.h" nogil:
    void pw_rows_f32(float *y, const float *x, const float *w, const float *bias, Py_ssize_t M, Py_ssize_t C,
                     Py_ssize_t F, int act, float alpha)

cdef extern from "depthwise_rows.h" nogil:
    enum: DW_MAXKW
    void dw_row_f32(float *y, const float *x, const float *w, Py_ssize_t step, Py_ssize_t W, Py_ssize_t C,
                    Py_ssize_t KW, Py_ssize_t i0, Py_ssize_t i1, Py_ssize_t ih0, Py_ssize_t Wo, int dh, int dw,
                    int sw, int pl, Py_ssize_t Cfull, const float *bias, int act, float alpha)

cdef enum:
    # Rows per parallel block (a multiple of every level's tile height: 8, 6, 3); a block's epilogue row pass
    # reads its rows while they are in cache (minicnn/backend/tuning.py mirrors it as POINTWISE_BLOCK_ROWS).
    PW_BLOCK = 48
    # Fewest output pixels per parallel unit of the separable kernel (whole output rows of one sample): as many
    # rows of the pointwise product as one of its blocks.
    SEP_PIXELS = 48
    # Alignment in bytes of each thread's depthwise buffer (a cache line).
    SEP_ALIGN = 64


cdef void _block(floating *y, const floating *x, const floating *w, const floating *b, Py_ssize_t M,
                 Py_ssize_t C, Py_ssize_t F, int act, floating alpha) noexcept nogil:
    """Rows ``[0, M)``: the product, then (activations after leaky relu) the row pass of the epilogue."""
    cdef Py_ssize_t m, f, c
    cdef floating acc
    cdef bint fused = act <= ACT_LEAKY_RELU
    if floating is float:
        pw_rows_f32(y, x, w, b if fused else NULL, M, C, F, act, alpha)
    else:
        for m in range(M):
            for f in range(F):
                acc = 0
                for c in range(C):
                    acc = acc + x[m * C + c] * w[c * F + f]
                y[m * F + f] = acc
        fused = False
    if not fused:
        _bias_act_rows(y, b, M, F, act, alpha)


@cython.cdivision(True)
def pointwise_conv2d_bias_act_forward(floating[:, ::1] y, const floating[:, ::1] x, const floating[:, ::1] w,
                                      const floating[::1] b, int act, double alpha):
    """``y = f(x @ w + b)``: blocks of ``PW_BLOCK`` rows in parallel, the epilogue fused (see the module)."""
    cdef Py_ssize_t P = y.shape[0], F = y.shape[1], C = x.shape[1], blocks, g, m0
    if x.shape[0] != P or w.shape[0] != C or w.shape[1] != F or b.shape[0] != F:
        raise ValueError(f"pointwise_conv2d_bias_act_forward shapes do not match: y ({y.shape[0]}, {F}), "
                         f"x ({x.shape[0]}, {C}), w ({w.shape[0]}, {w.shape[1]}), b ({b.shape[0]},)")
    if P * F == 0:
        return
    cdef floating *yp = &y[0, 0]
    cdef const floating *xp = &x[0, 0] if C > 0 else NULL
    cdef const floating *wp = &w[0, 0] if C > 0 else NULL
    cdef const floating *bp = &b[0]
    cdef floating a = <floating>alpha
    blocks = (P + PW_BLOCK - 1) // PW_BLOCK
    cdef int nt = team(P * C * F)
    if nt == 1 or blocks == 1:
        for g in range(blocks):
            m0 = g * PW_BLOCK
            _block(yp + m0 * F, xp + m0 * C if C > 0 else NULL, wp, bp, min(<Py_ssize_t>PW_BLOCK, P - m0), C, F,
                   act, a)
        return
    for g in prange(blocks, nogil=True, schedule="static", num_threads=nt):
        m0 = g * PW_BLOCK
        _block(yp + m0 * F, xp + m0 * C if C > 0 else NULL, wp, bp, min(<Py_ssize_t>PW_BLOCK, P - m0), C, F, act, a)


# ----------------------------------------------------------------------------- separable: depthwise then pointwise
@cython.cdivision(True)
cdef void _separable_unit(float *y, float *buf, const float *x, const float *wd, const float *bd, int act_d,
                          float alpha_d, const float *wp, const float *bp, int act_p, float alpha_p, Py_ssize_t n,
                          Py_ssize_t r0, Py_ssize_t r1, Py_ssize_t H, Py_ssize_t W, Py_ssize_t C, Py_ssize_t KH,
                          Py_ssize_t KW, Py_ssize_t Ho, Py_ssize_t Wo, Py_ssize_t F, int sh, int sw, int pt, int pl,
                          int dh, int dw) noexcept nogil:
    """Output rows ``[r0, r1)`` of sample ``n``: their depthwise rows into ``buf``, then the pointwise product."""
    cdef Py_ssize_t oh, ih0, i0, i1, rows = (r1 - r0) * Wo
    cdef float *out = y + (n * Ho + r0) * Wo * F
    for oh in range(r0, r1):
        ih0 = oh * sh - pt
        i0 = 0
        while i0 < KH and ih0 + i0 * dh < 0:
            i0 += 1
        i1 = i0
        while i1 < KH and ih0 + i1 * dh < H:
            i1 += 1
        dw_row_f32(buf + (oh - r0) * Wo * C, x + n * H * W * C, wd, C, W, C, KW, i0, i1, ih0, Wo, dh, dw, sw, pl, C,
                   bd, act_d, alpha_d)
    _block(out, buf, wp, bp, rows, C, F, act_p, alpha_p)


@cython.cdivision(True)
def separable_conv2d_bias_act_forward(float[:, :, :, ::1] y, const float[:, :, :, ::1] x, const float[:, :, ::1] wd,
                                      const float[::1] bd, int act_d, double alpha_d, const float[:, ::1] wp,
                                      const float[::1] bp, int act_p, double alpha_p, int sh, int sw, int pt, int pl,
                                      int dh, int dw):
    """Inference ``y = fp(fd(depthwise(x, wd) + bd) @ wp + bp)`` in one pass (float32).

    A depthwise-separable block: each parallel unit (``SEP_PIXELS`` output pixels or more: whole output rows of
    one sample) computes its depthwise rows into a per-thread buffer (``dw_row_f32`` with the epilogue ``fd``:
    identity, relu or leaky relu) and multiplies them by the pointwise weights while they are in cache
    (``pw_rows_f32``, epilogue ``fp``): the depthwise output never goes to memory. Every output is the depthwise
    sums then the pointwise sums in the orders of the separate kernels, so the bits depend on neither the team nor
    the units. ``x (N, H, W, C)``, ``wd (KH, KW, C)``, ``bd (C,)``, ``wp (C, F)``, ``bp (F,)``,
    ``y (N, Ho, Wo, F)``; ``C`` a multiple of 16, ``KW <= DW_MAXKW``, ``act_d`` at most 2 (``ValueError``
    otherwise, and for shapes that do not match).
    """
    cdef Py_ssize_t N = x.shape[0], H = x.shape[1], W = x.shape[2], C = x.shape[3]
    cdef Py_ssize_t KH = wd.shape[0], KW = wd.shape[1], Ho = y.shape[1], Wo = y.shape[2], F = y.shape[3]
    cdef Py_ssize_t R, per, U, u, r0
    cdef float *buf
    if (wd.shape[2] != C or bd.shape[0] != C or wp.shape[0] != C or wp.shape[1] != F or bp.shape[0] != F
            or y.shape[0] != N):
        raise ValueError(f"separable_conv2d_bias_act_forward shapes do not match: y ({N}?, {Ho}, {Wo}, {F}) from "
                         f"x ({N}, {H}, {W}, {C}), wd ({KH}, {KW}, {wd.shape[2]}), bd ({bd.shape[0]},), "
                         f"wp ({wp.shape[0]}, {wp.shape[1]}), bp ({bp.shape[0]},)")
    if C % 16 != 0 or C == 0 or KW > DW_MAXKW or KH == 0 or KW == 0 or act_d > ACT_LEAKY_RELU:
        raise ValueError(f"separable_conv2d_bias_act_forward takes C a positive multiple of 16, 1 <= KW <= "
                         f"{DW_MAXKW} and act_d <= {ACT_LEAKY_RELU}; received C={C}, KH={KH}, KW={KW}, act_d={act_d}")
    if N * Ho * Wo * F == 0:
        return
    R = max(1, min(Ho, (SEP_PIXELS + Wo - 1) // Wo))
    per = (Ho + R - 1) // R
    U = N * per
    cdef float *yp = &y[0, 0, 0, 0]
    cdef const float *xp = &x[0, 0, 0, 0]
    cdef const float *wdp = &wd[0, 0, 0]
    cdef const float *bdp = &bd[0]
    cdef const float *wpp = &wp[0, 0]
    cdef const float *bpp = &bp[0]
    cdef float ad = <float>alpha_d, ap = <float>alpha_p
    cdef int nt = team(N * Ho * Wo * C * (KH * KW + F))
    if U < nt:
        nt = <int>U
    # one depthwise buffer per thread, each starting on a cache line of its own (L is a multiple of 16 floats:
    # C is): from malloc's 16-byte alignment, two threads' buffers shared a line that each unit rewrote
    cdef Py_ssize_t L = R * Wo * C
    cdef void *raw = malloc(nt * L * sizeof(float) + SEP_ALIGN)
    if raw == NULL:
        raise MemoryError()
    buf = <float *>((<size_t>raw + SEP_ALIGN - 1) & ~(<size_t>SEP_ALIGN - 1))
    if nt == 1:
        for u in range(U):
            r0 = (u % per) * R
            _separable_unit(yp, buf, xp, wdp, bdp, act_d, ad, wpp, bpp, act_p, ap, u // per, r0, min(Ho, r0 + R),
                            H, W, C, KH, KW, Ho, Wo, F, sh, sw, pt, pl, dh, dw)
    else:
        for u in prange(U, nogil=True, schedule="static", num_threads=nt):
            r0 = (u % per) * R
            _separable_unit(yp, buf + omp_get_thread_num() * L, xp, wdp, bdp, act_d, ad, wpp, bpp, act_p, ap,
                            u // per, r0, min(Ho, r0 + R), H, W, C, KH, KW, Ho, Wo, F, sh, sw, pt, pl, dh, dw)
    free(raw)
