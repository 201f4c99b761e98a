# cython: language_level=3
"""Conv weight gradient from the layer input (im2col per sample into per-thread slots), Cython + OpenMP.

``conv2d_backward_weight_from_input(dw, dy, x, work, sh, sw, pt, pl, dh, dwl)``
computes ``dw = col.T @ dy`` (``reference.conv2d_backward_weight``) without the
``(N, Ho*Wo, KH*KW*C)`` column buffer of the im2col forward: each sample's
columns are rebuilt from ``x`` into a small per-thread slot and consumed at
once while they are in cache. The forward is then free to skip im2col (e.g.
Winograd), and the 85 MB ``col`` of the MNIST model's second conv leaves the
peak memory.

Algorithm: the batch is cut into ``G = min(N, DW_GROUPS)`` fixed groups of
consecutive samples (as ``conv.pyx``'s ``conv2d_backward_weight``; independent
of the thread count). OpenMP ``prange`` over the groups (schedule static, chunk
1); per group, the output rows ``(n, oh)`` of its samples are taken in order,
in blocks of ``R`` rows (a block may end in one sample and go on in the next,
as the rows of ``dy`` do): im2col of the block into the thread's slot, then
``part[g] (K, F) += col_block.T (K, R*Wo) @ dy_block (R*Wo, F)`` with one
single-threaded GEMM (``beta = 0`` for the group's first block). Finally
``dw = ((part[0] + part[1]) + ...) + part[G-1]`` elementwise. Every partial
depends on its group only: bit-identical for any OpenMP thread count and any
number of slots. ``R`` (see ``BLOCK_MNK``) keeps each GEMM in OpenBLAS's
unpacked small-matrix path where it can, and the slot in L2 (55 KB on the
MNIST conv2, at most 512 KB in float32).

Workspace (caller-provided ``work``, 1-D, C-contiguous, writable, dtype of
``x``; ``L = len(work)``)::

    [ part (G * K * F) | slot 0 (S) | slot 1 (S) | ... ]

with ``K = KH*KW*C``, ``S = min(R, ceil(N/G)*Ho) * Wo * K``;
:func:`conv_wgrad_workspace_length` returns ``G*K*F + slots*S``. The kernel
derives ``slots = (L - G*K*F) // S`` from the length (``L >= G*K*F + S``
required: one slot); OpenMP thread ``t`` uses slot ``t`` and at most ``slots``
threads run. Nothing is allocated per call.
"""

from cython.parallel cimport prange
from libc.stdint cimport int64_t
from openmp cimport omp_get_thread_num

ctypedef fused floating:
    float
    double

include "_parallel.pxi"
include "_ndarray.pxi"
include "_im2col.pxi"
include "_blas.pxi"

# Fixed sample groups whose partial gradients are summed in order (same as conv.pyx's DW_GROUPS).
cdef enum:
    _GROUPS = 8
DW_GROUPS = _GROUPS

# Block of output rows per im2col + GEMM step (``_block_rows``). OpenBLAS (0.3.30/0.3.31, SkylakeX
# kernels, picked on this Zen 4 machine) runs an sgemm with m*n*k <= 1e6 by its direct "small
# matrix" kernel, without packing. When one output row fits (Wo*K*F <= BLOCK_MNK), a block is the
# most rows R with R*Wo*K*F <= BLOCK_MNK and R*Wo*K <= SLOT_CAP (thin layers, e.g. a 1-channel
# input: several samples per block). Measured on the MNIST conv2 shape (N=128, 26x26x32 -> 64,
# one thread, medians): 28.3 ms for 2-row blocks (m*n*k = 0.88M), 30.3 ms for 1 row, 32-39 ms for
# 3 rows up to whole samples (packed path); the col-based conv2d_backward_weight took 38 ms.
# Otherwise (the packed path anyway) R = PACKED_SLOT // (Wo*K) rows, at least 1: a block of
# k = R*Wo ~ 128-512 GEMM rows amortizes reading and writing the K x F partial per call, and the
# slot (512 KB in float32) stays in L2. Measured (one thread, ms for R = 1 / 2 / 4 / 8 / 16 /
# whole sample): N=32 32x32x64 -> 128 "same": 57.7 / 55.8 / 53.8 / 53.9 / 54.4 / 55.4 (col-based
# 61.6); N=16 56x56x64 -> 64: 47.4 / 46.0 / 45.9 / 46.1 / 46.2 / 61.4 (col-based 57.4).
cdef enum:
    BLOCK_MNK = 1000000
    SLOT_CAP = 65536
    PACKED_SLOT = 131072
# For Python (minicnn/backend/tuning.py mirrors them; a test compares).
WGRAD_BLOCK_MNK, WGRAD_SLOT_CAP, WGRAD_PACKED_SLOT = BLOCK_MNK, SLOT_CAP, PACKED_SLOT


# The optional second sgemm (_sgemm64.pxi). Measured (one thread, medians): MNIST conv2
# (small-matrix blocks) 28.2 ms with it, 28.1 ms with SciPy's sgemm (equal within noise);
# N=32 32x32x64 -> 128 (packed blocks) 58.3 against 65.0 ms.
include "_sgemm64.pxi"


cdef inline void _gemm_nt(int m, int n, int k, const floating *a, int lda, const floating *b, int ldb,
                          floating beta, floating *c, int ldc) noexcept nogil:
    """Column-major ``c = a @ b.T + beta * c`` in the precision of ``floating``."""
    cdef char tn = c'N', tt = c'T'
    cdef floating one = 1
    cdef int64_t m64 = m, n64 = n, k64 = k, lda64 = lda, ldb64 = ldb, ldc64 = ldc
    if floating is float and _sgemm64 != NULL:
        _sgemm64(&tn, &tt, &m64, &n64, &k64, &one, a, &lda64, b, &ldb64, &beta, c, &ldc64)
    else:
        _gemm(tn, tt, m, n, k, a, lda, b, ldb, beta, c, ldc)


cdef inline Py_ssize_t _block_rows(Py_ssize_t Wo, Py_ssize_t K, Py_ssize_t F) noexcept nogil:
    """Output rows ``R >= 1`` per im2col block (a block may span samples); see ``BLOCK_MNK``."""
    cdef Py_ssize_t r, s
    if Wo * K * F == 0:
        return 1
    if Wo * K * F > BLOCK_MNK:
        r = PACKED_SLOT // (Wo * K)
        return r if r > 1 else 1
    r = BLOCK_MNK // (Wo * K * F)
    s = SLOT_CAP // (Wo * K)
    if s < r:
        r = s
    return r if r > 1 else 1


cdef Py_ssize_t _slot_length(Py_ssize_t N, Py_ssize_t Ho, Py_ssize_t Wo, Py_ssize_t K, Py_ssize_t F) noexcept nogil:
    """Elements of one slot: ``min(R, rows of the largest group) * Wo * K``."""
    cdef Py_ssize_t G = N if N < _GROUPS else _GROUPS
    cdef Py_ssize_t rows = ((N + G - 1) // G) * Ho if G > 0 else 0
    cdef Py_ssize_t R = _block_rows(Wo, K, F)
    return (R if R < rows else rows) * Wo * K


cdef Py_ssize_t _workspace_length(Py_ssize_t N, Py_ssize_t K, Py_ssize_t F, Py_ssize_t Ho, Py_ssize_t Wo,
                                  Py_ssize_t slots) noexcept nogil:
    cdef Py_ssize_t G = N if N < _GROUPS else _GROUPS
    return G * K * F + slots * _slot_length(N, Ho, Wo, K, F)


def conv_wgrad_workspace_length(Py_ssize_t N, Py_ssize_t H, Py_ssize_t W, Py_ssize_t C,
                                Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t F, Py_ssize_t Ho, Py_ssize_t Wo,
                                Py_ssize_t slots):
    """Length of the 1-D workspace of :func:`conv2d_backward_weight_from_input` for ``slots`` threads.

    ``G*K*F + slots*S`` with ``G = min(N, DW_GROUPS)``, ``K = KH*KW*C`` and the
    slot ``S = min(R, ceil(N/G)*Ho) * Wo * K`` for ``R`` output rows per im2col
    block (module docstring). A pure function of the shapes (``H`` and ``W`` do
    not change it); ``slots >= 1``.
    """
    if min(N, H, W, C, KH, KW, F, Ho, Wo) < 0:
        raise ValueError(f"sizes must be >= 0; received N={N}, H={H}, W={W}, C={C}, KH={KH}, KW={KW}, "
                         f"F={F}, Ho={Ho}, Wo={Wo}")
    if slots < 1:
        raise ValueError(f"slots must be >= 1; received slots={slots}")
    return _workspace_length(N, KH * KW * C, F, Ho, Wo, slots)


cdef void _group(floating *part, floating *slot, const floating *dy, const floating *x,
                 Py_ssize_t n0, Py_ssize_t n1, Py_ssize_t H, Py_ssize_t W, Py_ssize_t C,
                 Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t F, Py_ssize_t Ho, Py_ssize_t Wo, Py_ssize_t R,
                 int sh, int sw, int pt, int pl, int dh, int dwl) noexcept nogil:
    """``part (K, F) = col.T @ dy`` over samples ``n0 <= n < n1``, in blocks of ``R`` output rows, in order.

    The group's output rows ``(n, oh)`` are taken in order (``r = n*Ho + oh``);
    a block may end in one sample and go on in the next, as ``dy``'s rows do.
    """
    cdef Py_ssize_t K = KH * KW * C, r0, r1, r, n, oh, oh1
    cdef floating beta = 0
    cdef floating *dst
    r0 = n0 * Ho
    while r0 < n1 * Ho:
        r1 = r0 + R if r0 + R < n1 * Ho else n1 * Ho
        dst = slot
        r = r0
        while r < r1:
            n = r // Ho
            oh = r - n * Ho
            oh1 = oh + (r1 - r) if oh + (r1 - r) < Ho else Ho
            _im2col_rows(dst, x + n * H * W * C, H, W, C, KH, KW, oh, oh1, Wo, sh, sw, pt, pl, dh, dwl)
            dst += (oh1 - oh) * Wo * K
            r += oh1 - oh
        # part^T (F, K) (+)= dy_block^T (F, rows) @ col_block (rows, K), column-major
        _gemm_nt(<int>F, <int>K, <int>((r1 - r0) * Wo), dy + r0 * Wo * F, <int>F, slot, <int>K,
                 beta, part, <int>F)
        beta = 1
        r0 = r1


cdef void _sum_parts(floating *out, const floating *part, Py_ssize_t G, Py_ssize_t e0, Py_ssize_t e1,
                     Py_ssize_t KF) noexcept nogil:
    """``out[e] = ((part[0, e] + part[1, e]) + ...) + part[G-1, e]`` for ``e0 <= e < e1`` (vectorized)."""
    cdef Py_ssize_t g, e
    cdef const floating *p
    for e in range(e0, e1):
        out[e] = part[e]
    for g in range(1, G):
        p = part + g * KF
        for e in range(e0, e1):
            out[e] = out[e] + p[e]


# Elements per block of the final sum when it runs in parallel.
cdef enum:
    SUM_BLOCK = 4096


cdef void _sum_groups(floating *out, const floating *part, Py_ssize_t G, Py_ssize_t KF) noexcept nogil:
    """``out = ((part[0] + part[1]) + ...) + part[G-1]`` (``KF`` elements each), blocks in parallel."""
    cdef Py_ssize_t b, nb
    cdef int nt = team(KF * G)
    if nt == 1:
        _sum_parts(out, part, G, 0, KF, KF)
        return
    nb = (KF + SUM_BLOCK - 1) // SUM_BLOCK
    for b in prange(nb, schedule="static", num_threads=nt):
        _sum_parts(out, part, G, b * SUM_BLOCK, min((b + 1) * SUM_BLOCK, KF), KF)


cdef void _wgrad(floating *dw, const floating *dy, const floating *x, floating *work, Py_ssize_t slots,
                 Py_ssize_t N, Py_ssize_t H, Py_ssize_t W, Py_ssize_t C, Py_ssize_t KH, Py_ssize_t KW,
                 Py_ssize_t F, Py_ssize_t Ho, Py_ssize_t Wo,
                 int sh, int sw, int pt, int pl, int dh, int dwl) noexcept nogil:
    cdef Py_ssize_t K = KH * KW * C, KF = K * F, P = Ho * Wo, e, g
    cdef Py_ssize_t G = N if N < _GROUPS else _GROUPS
    cdef Py_ssize_t R = _block_rows(Wo, K, F), S = _slot_length(N, Ho, Wo, K, F)
    cdef floating *part = work
    cdef floating *slot0 = work + G * KF
    cdef int nt
    if KF == 0:
        return
    if N == 0 or P == 0:
        for e in range(KF):
            dw[e] = 0
        return
    nt = team(N * P * KF // 16)
    if nt > slots:
        nt = <int>slots
    if nt > G:
        nt = <int>G
    if nt == 1:   # no parallel region at all: entering one costs ~1 us even for a team of one
        for g in range(G):
            _group(part + g * KF, slot0, dy, x, g * N // G, (g + 1) * N // G, H, W, C, KH, KW, F, Ho, Wo, R,
                   sh, sw, pt, pl, dh, dwl)
    else:
        for g in prange(G, schedule="static", chunksize=1, num_threads=nt):
            _group(part + g * KF, slot0 + omp_get_thread_num() * S, dy, x, g * N // G, (g + 1) * N // G,
                   H, W, C, KH, KW, F, Ho, Wo, R, sh, sw, pt, pl, dh, dwl)
    _sum_groups(dw, part, G, KF)


def conv2d_backward_weight_from_input(dw, dy, x, work, int sh, int sw, int pt, int pl, int dh, int dwl):
    """Weight gradient ``dw = col.T @ dy`` of a conv, rebuilding ``col`` from the input ``x`` per sample.

    ``dw (KH, KW, C, F)`` (output, every element written), ``dy (N, Ho, Wo,
    F)`` the gradient wrt the conv output (pre-activation), ``x (N, H, W, C)``
    the conv input, ``work`` a 1-D scratch of length ``>=
    conv_wgrad_workspace_length(N, H, W, C, KH, KW, F, Ho, Wo, 1)``; all of
    ``x``'s dtype and C-contiguous. Geometry as ``conv2d_forward``: strides
    ``sh, sw >= 1``, top/left padding ``pt, pl >= 0``, dilations ``dh, dwl >= 1``.
    The number of per-thread slots is ``(len(work) - G*K*F) // slot``: a
    workspace sized for ``slots`` threads lets at most that many run. Result as
    ``reference.conv2d_backward_weight(dw, dy, col)`` up to summation order,
    bit-identical for any thread and slot count. Takes plain ndarrays (see
    ``_ndarray.pxi``).
    """
    cdef int t = _float_type(x, "x")
    cdef cnp.ndarray xa = _array(x, t, 4, False, "x"), dwa = _array(dw, t, 4, True, "dw")
    cdef cnp.ndarray dya = _array(dy, t, 4, False, "dy"), ka = _array(work, t, 1, True, "work")
    cdef cnp.npy_intp *xd = cnp.PyArray_DIMS(xa)
    cdef cnp.npy_intp *yd = cnp.PyArray_DIMS(dya)
    cdef cnp.npy_intp *wd = cnp.PyArray_DIMS(dwa)
    if yd[0] != xd[0] or wd[2] != xd[3] or wd[3] != yd[3]:
        raise ValueError(f"conv2d_backward_weight_from_input shapes do not match: dw {dw.shape}, dy {dy.shape}, "
                         f"x {x.shape}")
    if sh < 1 or sw < 1 or dh < 1 or dwl < 1:
        raise ValueError(f"strides and dilations must be >= 1; received sh={sh}, sw={sw}, dh={dh}, dwl={dwl}")
    if pt < 0 or pl < 0:
        raise ValueError(f"padding must be >= 0; received pt={pt}, pl={pl}")
    cdef Py_ssize_t N = xd[0], K = wd[0] * wd[1] * wd[2], F = wd[3], Ho = yd[1], Wo = yd[2]
    cdef Py_ssize_t need = _workspace_length(N, K, F, Ho, Wo, 1)
    cdef Py_ssize_t L = cnp.PyArray_DIMS(ka)[0], S = _slot_length(N, Ho, Wo, K, F)
    if L < need:
        raise ValueError(f"work must have length >= {need} for these shapes (one slot); received length {L}")
    cdef Py_ssize_t slots = (L - (need - S)) // S if S > 0 else 1
    if t == cnp.NPY_FLOAT:
        _wgrad(<float *>cnp.PyArray_DATA(dwa), <const float *>cnp.PyArray_DATA(dya),
               <const float *>cnp.PyArray_DATA(xa), <float *>cnp.PyArray_DATA(ka), slots,
               N, xd[1], xd[2], xd[3], wd[0], wd[1], F, Ho, Wo, sh, sw, pt, pl, dh, dwl)
    else:
        _wgrad(<double *>cnp.PyArray_DATA(dwa), <const double *>cnp.PyArray_DATA(dya),
               <const double *>cnp.PyArray_DATA(xa), <double *>cnp.PyArray_DATA(ka), slots,
               N, xd[1], xd[2], xd[3], wd[0], wd[1], F, Ho, Wo, sh, sw, pt, pl, dh, dwl)


# ----------------------------------------------------------------------------- Winograd F(2x2, 3x3) weight gradient
# ``conv2d_winograd_backward_weight(dw, dy, x, work, pt, pl)``: the weight gradient of a 3x3, stride-1,
# undilated conv in the Winograd domain of its forward (Lavin & Gray 2015). The forward computes per 2x2
# output tile ``Y = A^T (U .* V) A`` with ``U = G g G^T`` and ``V = B^T d B``; so ``dU_k (C, F) = sum over
# tiles of V_k^T Z_k`` with ``Z = A dY A^T`` (4x4 from the tile's 2x2xF output gradient), and ``dw = G^T dU
# G`` (``winograd_wgrad.h``): 16 products of C x F summed over the tiles, 2.25x fewer multiply-adds than
# the 9 taps of ``col.T @ dy``. Same groups and order as above: ``G = min(N, DW_GROUPS)`` fixed groups of
# consecutive samples (prange over them), each group's tiles (sample by sample, raster order) in blocks of
# ``T`` tiles (a block may span samples): input transform of the block's ``x`` tiles into ``V`` (16 x
# (T, C)), transform of its ``dy`` tiles into ``Z`` (16 x (T, F)), then ``part[g]_k (C, F) (+)= V_k^T @
# Z_k`` by 16 single-threaded GEMMs (beta = 0 for the group's first block); then ``dU = ((part[0] +
# part[1]) + ...) + part[G-1]`` elementwise and ``dw = G^T dU G``. Bit-identical for any thread count.
#
# Workspace (1-D, dtype of ``x``): ``[ part (G * 16*C*F) | slot 0 | slot 1 | ... ]``, each slot
# ``16*(T*C + PAD) + 16*(T*F + PAD) + 16*C + 4*F`` (V, Z with PAD between the 16 matrices as
# winograd.pyx's STRIDE_PAD, a zero-extended 4x4xC input patch and 2x2xF gradient patch for the border
# tiles); ``T = min(max(1, WINO_WGRAD_BUDGET // (C + F)), tiles of the largest group)``.

include "_winograd_tile.pxi"

cdef extern from "winograd_wgrad.h" nogil:
    void wgrad_dy_f32(float *z, Py_ssize_t zstride, const float *dy, Py_ssize_t row, Py_ssize_t F)
    void wgrad_dy_f64(double *z, Py_ssize_t zstride, const double *dy, Py_ssize_t row, Py_ssize_t F)
    void wgrad_out_f32(float *dw, const float *du, Py_ssize_t C, Py_ssize_t F)
    void wgrad_out_f64(double *dw, const double *du, Py_ssize_t C, Py_ssize_t F)

# Tile-channels per block, ``T * (C + F)``: V and Z of a block take 16 * T * (C + F) elements.
cdef enum:
    WINO_BUDGET = 8192
    WINO_PAD = 16
WINO_WGRAD_BUDGET, WINO_WGRAD_PAD = WINO_BUDGET, WINO_PAD   # tuning.py mirrors them; a test compares


cdef Py_ssize_t _wino_tiles(Py_ssize_t N, Py_ssize_t C, Py_ssize_t F, Py_ssize_t Ho, Py_ssize_t Wo) noexcept nogil:
    """Tiles per block ``T`` (see above)."""
    cdef Py_ssize_t G = N if N < _GROUPS else _GROUPS
    cdef Py_ssize_t tiles = ((N + G - 1) // G) * ((Ho + 1) // 2) * ((Wo + 1) // 2) if G > 0 else 0
    cdef Py_ssize_t T = WINO_BUDGET // (C + F) if C + F > 0 else 1
    if T < 1:
        T = 1
    return T if T < tiles else (tiles if tiles > 0 else 1)


cdef inline Py_ssize_t _wino_slot(Py_ssize_t C, Py_ssize_t F, Py_ssize_t T) noexcept nogil:
    return 16 * (T * C + WINO_PAD) + 16 * (T * F + WINO_PAD) + 16 * C + 4 * F


cdef Py_ssize_t _wino_length(Py_ssize_t N, Py_ssize_t C, Py_ssize_t F, Py_ssize_t Ho, Py_ssize_t Wo,
                             Py_ssize_t slots) noexcept nogil:
    cdef Py_ssize_t G = N if N < _GROUPS else _GROUPS
    return G * 16 * C * F + slots * _wino_slot(C, F, _wino_tiles(N, C, F, Ho, Wo))


def conv_winograd_wgrad_workspace_length(Py_ssize_t N, Py_ssize_t C, Py_ssize_t F, Py_ssize_t Ho, Py_ssize_t Wo,
                                         Py_ssize_t slots):
    """Length of the 1-D workspace of :func:`conv2d_winograd_backward_weight` for ``slots`` threads.

    ``G*16*C*F + slots * (16*(T*C + 16) + 16*(T*F + 16) + 16*C + 4*F)`` with ``G =
    min(N, DW_GROUPS)`` and ``T`` tiles per block (see above); ``slots >= 1``.
    """
    if min(N, C, F, Ho, Wo) < 0:
        raise ValueError(f"sizes must be >= 0; received N={N}, C={C}, F={F}, Ho={Ho}, Wo={Wo}")
    if slots < 1:
        raise ValueError(f"slots must be >= 1; received slots={slots}")
    return _wino_length(N, C, F, Ho, Wo, slots)


cdef void _wino_group(floating *part, floating *ws, const floating *dy, const floating *x,
                      Py_ssize_t n0, Py_ssize_t n1, Py_ssize_t H, Py_ssize_t W, Py_ssize_t C, Py_ssize_t F,
                      Py_ssize_t Ho, Py_ssize_t Wo, Py_ssize_t pt, Py_ssize_t pl, Py_ssize_t T) noexcept nogil:
    """``part[k] (C, F) = sum of V_k^T Z_k`` over the tiles of samples ``n0 <= n < n1``, in blocks of ``T``."""
    cdef Py_ssize_t tw = (Wo + 1) // 2, tps = ((Ho + 1) // 2) * ((Wo + 1) // 2)
    cdef Py_ssize_t total = (n1 - n0) * tps, t0 = 0, nb, i, t, n, loc, ty, tx, a, j, c, k
    cdef Py_ssize_t vs = T * C + WINO_PAD, zs = T * F + WINO_PAD
    cdef floating *V = ws
    cdef floating *Z = V + 16 * vs
    cdef floating *patch = Z + 16 * zs
    cdef floating *dpatch = patch + 16 * C
    cdef const floating *xs
    cdef const floating *src
    cdef floating *dst
    cdef floating beta = 0
    while t0 < total:
        nb = total - t0 if total - t0 < T else T
        for i in range(nb):
            t = t0 + i
            n = n0 + t // tps
            loc = t - (t // tps) * tps
            ty = loc // tw
            tx = loc - ty * tw
            xs = x + n * H * W * C
            _input_tile(V + i * C, vs, xs, patch, H, W, C, 2 * ty - pt, 2 * tx - pl)
            src = dy + ((n * Ho + 2 * ty) * Wo + 2 * tx) * F
            if 2 * ty + 2 <= Ho and 2 * tx + 2 <= Wo:
                if floating is float:
                    wgrad_dy_f32(Z + i * F, zs, src, Wo * F, F)
                else:
                    wgrad_dy_f64(Z + i * F, zs, src, Wo * F, F)
            else:
                # partial last tile: the missing outputs have a zero gradient
                for a in range(2):
                    for j in range(2):
                        dst = dpatch + (a * 2 + j) * F
                        if 2 * ty + a < Ho and 2 * tx + j < Wo:
                            for c in range(F):
                                dst[c] = src[(a * Wo + j) * F + c]
                        else:
                            for c in range(F):
                                dst[c] = 0
                if floating is float:
                    wgrad_dy_f32(Z + i * F, zs, dpatch, 2 * F, F)
                else:
                    wgrad_dy_f64(Z + i * F, zs, dpatch, 2 * F, F)
        # part_k^T (F, C) (+)= Z_k^T (F, nb) @ V_k (nb, C), column-major
        for k in range(16):
            _gemm_nt(<int>F, <int>C, <int>nb, Z + k * zs, <int>F, V + k * vs, <int>C, beta,
                     part + k * C * F, <int>F)
        beta = 1
        t0 += nb


cdef void _wino_wgrad(floating *dw, const floating *dy, const floating *x, floating *work, Py_ssize_t slots,
                      Py_ssize_t N, Py_ssize_t H, Py_ssize_t W, Py_ssize_t C, Py_ssize_t F,
                      Py_ssize_t Ho, Py_ssize_t Wo, Py_ssize_t pt, Py_ssize_t pl) noexcept nogil:
    cdef Py_ssize_t CF = C * F, UF = 16 * C * F, e, g
    cdef Py_ssize_t G = N if N < _GROUPS else _GROUPS
    cdef Py_ssize_t T = _wino_tiles(N, C, F, Ho, Wo), S = _wino_slot(C, F, T)
    cdef floating *slot0 = work + G * UF
    cdef int nt
    if CF == 0:
        return
    if N == 0 or Ho * Wo == 0:
        for e in range(9 * CF):
            dw[e] = 0
        return
    nt = team(N * Ho * Wo * 4 * CF // 16)
    if nt > slots:
        nt = <int>slots
    if nt > G:
        nt = <int>G
    if nt == 1:
        for g in range(G):
            _wino_group(work + g * UF, slot0, dy, x, g * N // G, (g + 1) * N // G, H, W, C, F, Ho, Wo, pt, pl, T)
    else:
        for g in prange(G, schedule="static", chunksize=1, num_threads=nt):
            _wino_group(work + g * UF, slot0 + omp_get_thread_num() * S, dy, x, g * N // G, (g + 1) * N // G,
                        H, W, C, F, Ho, Wo, pt, pl, T)
    _sum_groups(work, work, G, UF)   # dU, in place into part[0]
    if floating is float:
        wgrad_out_f32(dw, work, C, F)
    else:
        wgrad_out_f64(dw, work, C, F)


def conv2d_winograd_backward_weight(dw, dy, x, work, int pt, int pl):
    """Weight gradient of a 3x3, stride-1, undilated conv by Winograd F(2x2, 3x3), from the input ``x``.

    ``dw (3, 3, C, F)`` (output, every element written), ``dy (N, Ho, Wo, F)``
    the gradient wrt the conv output (pre-activation), ``x (N, H, W, C)`` the
    conv input, ``work`` a 1-D scratch of length ``>=
    conv_winograd_wgrad_workspace_length(N, C, F, Ho, Wo, 1)``; all of ``x``'s
    dtype and C-contiguous. ``pt, pl >= 0`` top/left zero padding (bottom/right
    implied by ``Ho, Wo``), as :func:`conv2d_winograd_bias_act_forward`. The
    number of per-thread slots is read from ``len(work)`` as in
    :func:`conv2d_backward_weight_from_input`. Equal to
    ``reference.conv2d_backward_weight`` up to rounding; bit-identical for any
    thread and slot count. Takes plain ndarrays (see ``_ndarray.pxi``).
    """
    cdef int t = _float_type(x, "x")
    cdef cnp.ndarray xa = _array(x, t, 4, False, "x"), dwa = _array(dw, t, 4, True, "dw")
    cdef cnp.ndarray dya = _array(dy, t, 4, False, "dy"), ka = _array(work, t, 1, True, "work")
    cdef cnp.npy_intp *xd = cnp.PyArray_DIMS(xa)
    cdef cnp.npy_intp *yd = cnp.PyArray_DIMS(dya)
    cdef cnp.npy_intp *wd = cnp.PyArray_DIMS(dwa)
    if wd[0] != 3 or wd[1] != 3:
        raise ValueError(f"dw must be (3, 3, C, F) for Winograd F(2x2, 3x3); received shape {dw.shape}")
    if yd[0] != xd[0] or wd[2] != xd[3] or wd[3] != yd[3]:
        raise ValueError(f"conv2d_winograd_backward_weight shapes do not match: dw {dw.shape}, dy {dy.shape}, "
                         f"x {x.shape}")
    if pt < 0 or pl < 0:
        raise ValueError(f"padding must be >= 0; received pt={pt}, pl={pl}")
    cdef Py_ssize_t N = xd[0], C = xd[3], F = wd[3], Ho = yd[1], Wo = yd[2]
    cdef Py_ssize_t need = _wino_length(N, C, F, Ho, Wo, 1)
    cdef Py_ssize_t L = cnp.PyArray_DIMS(ka)[0], S = _wino_slot(C, F, _wino_tiles(N, C, F, Ho, Wo))
    if L < need:
        raise ValueError(f"work must have length >= {need} for these shapes (one slot); received length {L}")
    cdef Py_ssize_t slots = (L - (need - S)) // S
    if t == cnp.NPY_FLOAT:
        _wino_wgrad(<float *>cnp.PyArray_DATA(dwa), <const float *>cnp.PyArray_DATA(dya),
                    <const float *>cnp.PyArray_DATA(xa), <float *>cnp.PyArray_DATA(ka), slots,
                    N, xd[1], xd[2], C, F, Ho, Wo, pt, pl)
    else:
        _wino_wgrad(<double *>cnp.PyArray_DATA(dwa), <const double *>cnp.PyArray_DATA(dya),
                    <const double *>cnp.PyArray_DATA(xa), <double *>cnp.PyArray_DATA(ka), slots,
                    N, xd[1], xd[2], C, F, Ho, Wo, pt, pl)
