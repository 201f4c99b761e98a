# cython: language_level=3
"""Winograd F(2x2, 3x3) forward convolution (Lavin & Gray 2015), NHWC, Cython + OpenMP.

``y = f(conv(x, w) + b)`` for a 3x3 kernel, stride 1, dilation 1, any top/left
zero padding (bottom/right padding implied by the output size). ``Conv2D``
uses it for its inference forward and for its input gradient (a conv of the
output gradient with the flipped, transposed kernel); the training forward
stays im2col, whose columns the weight gradient reads.
Each 2x2 output tile costs 16 multiplies per (input channel, filter) instead of
36, so the products do 2.25x fewer multiply-adds than im2col + GEMM.

Algorithm (matrices in ``winograd_tf.h`` and in the NumPy twin
``minicnn.backend.reference.conv2d_winograd_bias_act_forward``):

* ``U = G g G^T``: the weights, transformed once per call (before the parallel
  loop) into ``U (16, C, F)``, i.e. 16 matrices ``U_k (C, F)``; or given
  transformed, ``(4, 4, C, F)`` from ``winograd_weight_transform`` (weights
  that do not change between calls), and read in place;
* per sample (OpenMP ``prange`` over the batch, schedule dynamic, one thread
  per sample; with fewer samples than threads, over the samples' tile blocks)
  and per block of tiles in raster order (a sample's tiles cut into
  ``ceil(tiles / TILE_BLOCK)`` blocks of equal size): ``V = B^T d B`` of each 4x4xC
  input tile (zero-extended past the image and the padding) into 16 row-major
  matrices ``V_k (tiles, C)``; 16 products ``M_k (tiles, F) = V_k @ U_k``
  (single-threaded BLAS, as in ``conv.pyx``); ``Y = A^T M A`` of each tile,
  then ``_bias_act_rows`` on its (at most) 2x2 output pixels while they are in
  L1, written into ``y`` (only the valid outputs of a partial last tile).

Workspace (caller-provided ``work``, 2-D ``(slots, L)``, C-contiguous, dtype of
``x``, ``L >= winograd_workspace_length(H, W, C, F, Ho, Wo)``)::

    row 0: [ U (16*C*F) | scratch of thread 0 ]
    row t: [ unused     | scratch of thread t ]
    scratch = V (16 * (T*C + 16)) | M (16 * (T*F + 16)) | patch (16*C) | out (4*F)

with ``T = min(TILE_BLOCK, tiles per sample)`` (the most tiles a block holds) and the 16 matrices ``V_k``
(``M_k``) ``T*C + 16`` (``T*F + 16``) elements apart (``STRIDE_PAD``).

``U`` sits at the head of row 0 (written once per call by the calling thread; unused when given);
every row keeps the same offset so each OpenMP thread ``t`` (``t < slots``)
uses its own row's scratch. With fewer slots than the team, fewer threads
run (``min(team, slots)``). Nothing is allocated per call. Each sample's
result depends only on that sample (fixed block order, no cross-thread
reduction): bit-identical for any thread count.

``conv2d_winograd_bias_add_act_forward`` adds a tensor ``s`` of the output's shape before the
activation, in the same epilogue: ``f((conv + b) + s)``, a residual block's merge at inference.

``conv2d_winograd_bias_act_maxpool2_forward`` fuses a 2x2 stride-2 max-pool:
the same per-sample routine (flag ``pool``) reduces each whole tile to one
pooled pixel in its output transform (``wino_output_max_*``), so the conv
output is never written. Same workspace rule, with the conv output size.
"""

from cython.parallel cimport prange
from openmp cimport omp_get_thread_num

ctypedef fused floating:
    float
    double

include "_parallel.pxi"
include "_bias_act_rows.pxi"
include "_ndarray.pxi"
include "_blas.pxi"
include "_winograd_tile.pxi"


cdef extern from "winograd_tf.h" nogil:
    void wino_prefetch(const void *p, Py_ssize_t nbytes)
    void wino_weight_f32(float *u, Py_ssize_t ustride, const float *w, Py_ssize_t C, Py_ssize_t F)
    void wino_weight_f64(double *u, Py_ssize_t ustride, const double *w, Py_ssize_t C, Py_ssize_t F)
    void wino_output_f32(float *y, Py_ssize_t row, const float *m, Py_ssize_t mstride, Py_ssize_t F)
    void wino_output_f64(double *y, Py_ssize_t row, const double *m, Py_ssize_t mstride, Py_ssize_t F)
    void wino_output_max_f32(float *y, const float *m, Py_ssize_t mstride, Py_ssize_t F)
    void wino_output_max_f64(double *y, const double *m, Py_ssize_t mstride, Py_ssize_t F)


# Tiles per block: V (16 x 36 x C) and M (16 x 36 x F) stay in L2 between the input transform,
# the 16 products and the output transform. Measured on the MNIST conv2 shape (one thread,
# medians of 15 interleaved rounds): 16.3 / 15.6 / 15.5 / 15.7 / 15.7 / 15.7 ms for blocks of
# 12 / 24 / 36 / 48 / 72 / 144 tiles (flat from 24 on; 36 keeps the scratch at ~220 KB).
cdef enum:
    TILE_BLOCK = 36
WINOGRAD_TILE_BLOCK = TILE_BLOCK   # for Python (minicnn/backend/tuning.py mirrors it; a test compares)


cdef inline Py_ssize_t _block_tiles(Py_ssize_t Ho, Py_ssize_t Wo) noexcept nogil:
    """Most tiles per block (the workspace's rule): ``min(TILE_BLOCK, tiles of one sample)``."""
    cdef Py_ssize_t tiles = ((Ho + 1) // 2) * ((Wo + 1) // 2)
    return tiles if tiles < TILE_BLOCK else TILE_BLOCK


cdef inline Py_ssize_t _run_tiles(Py_ssize_t Ho, Py_ssize_t Wo) noexcept nogil:
    """Tiles per block as run: the sample's tiles cut into ``ceil(tiles / TILE_BLOCK)`` blocks of equal size
    (the last one up to a tile less), never more than :func:`_block_tiles`. A function of the shape only (the
    bits do not depend on the team). Equal blocks let the threads of one-sample inference share a sample evenly:
    the 7x7 tiles of the 3-channel grid's second conv at 28 px ran as blocks of 36 and 13 tiles (one thread
    did 3/4 of the work), now 25 and 24."""
    cdef Py_ssize_t tiles = ((Ho + 1) // 2) * ((Wo + 1) // 2)
    cdef Py_ssize_t blocks = (tiles + TILE_BLOCK - 1) // TILE_BLOCK
    if blocks <= 1:
        return tiles
    return (tiles + blocks - 1) // blocks


# Padding (elements) added to the stride between the 16 matrices V_k and M_k: with strides that
# are multiples of 4 KiB the 16 streams of a transform map to the same L1 sets (measured: tile
# block 48 took 26.4 ms against 18.5 ms for 36 on the MNIST conv2 shape, one thread).
cdef enum:
    STRIDE_PAD = 16
WINOGRAD_STRIDE_PAD = STRIDE_PAD   # for Python (minicnn/backend/tuning.py mirrors it)


cdef inline Py_ssize_t _scratch_length(Py_ssize_t C, Py_ssize_t F, Py_ssize_t T) noexcept nogil:
    return 16 * (T * C + STRIDE_PAD) + 16 * (T * F + STRIDE_PAD) + 16 * C + 4 * F


cdef Py_ssize_t _workspace_length(Py_ssize_t C, Py_ssize_t F, Py_ssize_t Ho, Py_ssize_t Wo) noexcept nogil:
    return 16 * C * F + _scratch_length(C, F, _block_tiles(Ho, Wo))


def winograd_workspace_length(Py_ssize_t H, Py_ssize_t W, Py_ssize_t C, Py_ssize_t F,
                              Py_ssize_t Ho, Py_ssize_t Wo):
    """Row length ``L`` of the ``(slots, L)`` workspace of :func:`conv2d_winograd_bias_act_forward`.

    ``16*C*F`` (the transformed weights, used in row 0 only) plus one thread's
    scratch for a block of ``T = min(36, ceil(Ho/2)*ceil(Wo/2))`` tiles:
    ``16*(T*C + 16) + 16*(T*F + 16) + 16*C + 4*F``. A pure function of the
    shapes (``H`` and ``W`` do not change it).
    """
    if min(H, W, C, F, Ho, Wo) < 0:
        raise ValueError(f"sizes must be >= 0; received H={H}, W={W}, C={C}, F={F}, Ho={Ho}, Wo={Wo}")
    return _workspace_length(C, F, Ho, Wo)


cdef inline void _output_tf(floating *y, Py_ssize_t row, const floating *m, Py_ssize_t mstride,
                            Py_ssize_t F) noexcept nogil:
    if floating is float:
        wino_output_f32(y, row, m, mstride, F)
    else:
        wino_output_f64(y, row, m, mstride, F)


cdef inline void _output_max_tf(floating *y, const floating *m, Py_ssize_t mstride,
                                Py_ssize_t F) noexcept nogil:
    """``y[f]`` = max of the tile's 4 outputs (max-pool order and NaN rule of ``pool.pyx``)."""
    if floating is float:
        wino_output_max_f32(y, m, mstride, F)
    else:
        wino_output_max_f64(y, m, mstride, F)


cdef void _block(floating *y, const floating *x, const floating *U, const floating *b, floating *ws,
                 int act, floating alpha, Py_ssize_t H, Py_ssize_t W, Py_ssize_t C, Py_ssize_t F,
                 Py_ssize_t Ho, Py_ssize_t Wo, Py_ssize_t pt, Py_ssize_t pl, Py_ssize_t T,
                 bint pool, Py_ssize_t t0, const floating *skip) noexcept nogil:
    """The block of up to ``T`` tiles starting at tile ``t0`` of one sample (see :func:`_sample`).

    Blocks are fixed by ``T`` alone and write disjoint output tiles, so a sample's blocks may run
    on different threads (one-sample inference) with the same bits as on one. With ``skip`` (not
    NULL; the sample's ``(Ho, Wo, F)`` tensor, never with ``pool``) each output is ``f((v + b) +
    skip)``: the bias added first (identity), then the skip value added and the activation taken
    (:func:`_bias_act_rows` with the skip row as its bias), while the tile is in L1.
    """
    cdef Py_ssize_t tw = (Wo + 1) // 2, tiles = ((Ho + 1) // 2) * tw
    cdef Py_ssize_t Hp = Ho // 2, Wp = Wo // 2
    cdef Py_ssize_t vs = T * C + STRIDE_PAD, ms = T * F + STRIDE_PAD
    cdef floating *V = ws
    cdef floating *M = V + 16 * vs
    cdef floating *patch = M + 16 * ms
    cdef floating *out = patch + 16 * C
    cdef Py_ssize_t nb, i, k, ty, tx, r0, c0, a, c, rows, cols
    cdef floating *dst
    nb = tiles - t0 if tiles - t0 < T else T
    # input transform: V_k[i, :] for the nb tiles of the block
    for i in range(nb):
        ty = (t0 + i) // tw
        tx = (t0 + i) - ty * tw
        r0 = 2 * ty - pt
        c0 = 2 * tx - pl
        if pool and (ty >= Hp or tx >= Wp):
            # partial tile dropped by the pool: a zero row in each V_k (see above)
            for k in range(16):
                dst = V + k * vs + i * C
                for c in range(C):
                    dst[c] = 0
            continue
        if r0 + 4 >= 0 and r0 + 6 <= H and c0 >= 0 and c0 + 2 <= W:
            # prefetch the two input rows that this tile's columns add to the next tile
            # row (x streams from memory): input transform 20 -> 9 us per MNIST conv2
            # sample in a one-thread microbenchmark, ~0.5-1 ms per forward
            wino_prefetch(x + ((r0 + 4) * W + c0) * C, 2 * C * sizeof(floating))
            wino_prefetch(x + ((r0 + 5) * W + c0) * C, 2 * C * sizeof(floating))
        # inside the image, or a border tile through a zero-extended 4x4xC patch
        _input_tile(V + i * C, vs, x, patch, H, W, C, r0, c0)
    # M_k (nb, F) = V_k (nb, C) @ U_k (C, F)
    for k in range(16):
        _gemm(c'N', c'N', <int>F, <int>nb, <int>C, U + k * C * F, <int>F, V + k * vs, <int>C, 0,
              M + k * ms, <int>F)
    # output transform + bias + activation, per tile while in L1
    if pool:
        # one pooled pixel (ty, tx) per whole tile
        for i in range(nb):
            ty = (t0 + i) // tw
            tx = (t0 + i) - ty * tw
            if ty >= Hp or tx >= Wp:
                continue
            dst = y + (ty * Wp + tx) * F
            _output_max_tf(dst, M + i * F, ms, F)
            _bias_act_rows(dst, b, 1, F, act, alpha)
        return
    for i in range(nb):
        ty = (t0 + i) // tw
        tx = (t0 + i) - ty * tw
        r0 = 2 * ty
        c0 = 2 * tx
        if r0 + 2 <= Ho and c0 + 2 <= Wo:
            dst = y + (r0 * Wo + c0) * F
            _output_tf(dst, Wo * F, M + i * F, ms, F)
            if skip == NULL:
                _bias_act_rows(dst, b, 2, F, act, alpha)
                _bias_act_rows(dst + Wo * F, b, 2, F, act, alpha)
            else:
                _bias_act_rows(dst, b, 2, F, ACT_IDENTITY, alpha)
                _bias_act_rows(dst + Wo * F, b, 2, F, ACT_IDENTITY, alpha)
                _bias_act_rows(dst, skip + (r0 * Wo + c0) * F, 1, 2 * F, act, alpha)
                _bias_act_rows(dst + Wo * F, skip + ((r0 + 1) * Wo + c0) * F, 1, 2 * F, act, alpha)
        else:
            # partial last tile: full 2x2 into ``out``, copy the valid part
            _output_tf(out, 2 * F, M + i * F, ms, F)
            rows = Ho - r0 if Ho - r0 < 2 else 2
            cols = Wo - c0 if Wo - c0 < 2 else 2
            for a in range(rows):
                dst = y + ((r0 + a) * Wo + c0) * F
                for c in range(cols * F):
                    dst[c] = out[a * 2 * F + c]
                if skip == NULL:
                    _bias_act_rows(dst, b, cols, F, act, alpha)
                else:
                    _bias_act_rows(dst, b, cols, F, ACT_IDENTITY, alpha)
                    _bias_act_rows(dst, skip + ((r0 + a) * Wo + c0) * F, 1, cols * F, act, alpha)


cdef void _sample(floating *y, const floating *x, const floating *U, const floating *b, floating *ws,
                  int act, floating alpha, Py_ssize_t H, Py_ssize_t W, Py_ssize_t C, Py_ssize_t F,
                  Py_ssize_t Ho, Py_ssize_t Wo, Py_ssize_t pt, Py_ssize_t pl, Py_ssize_t T,
                  bint pool, const floating *skip) noexcept nogil:
    """One sample ``y (Ho, Wo, F) = f(conv(x (H, W, C)) + b)`` with the thread's scratch ``ws``.

    With ``pool``: ``y (Ho // 2, Wo // 2, F)``, the 2x2 stride-2 max-pool of it; each of the
    ``(Ho // 2) x (Wo // 2)`` whole tiles is reduced to one pixel ``f(max(4 outputs) + b)`` (see
    :func:`conv2d_winograd_bias_act_maxpool2_forward`). The tiles and blocks stay those of the
    unpooled conv: BLAS may round a product row differently depending on its position in the
    block and on the block's row count, so the partial tiles of an odd ``Ho``/``Wo`` (dropped
    by the pool) keep their rows in the products, as zeros, without input or output transform.
    """
    cdef Py_ssize_t tiles = ((Ho + 1) // 2) * ((Wo + 1) // 2), t0 = 0
    while t0 < tiles:
        _block(y, x, U, b, ws, act, alpha, H, W, C, F, Ho, Wo, pt, pl, T, pool, t0, skip)
        t0 += T


cdef void _winograd_forward(floating *y, const floating *x, const floating *w, const floating *b,
                            floating *work, Py_ssize_t ldwork, Py_ssize_t slots, int act, floating alpha,
                            Py_ssize_t N, Py_ssize_t H, Py_ssize_t W, Py_ssize_t C, Py_ssize_t F,
                            Py_ssize_t Ho, Py_ssize_t Wo, Py_ssize_t pt, Py_ssize_t pl,
                            bint pool, const floating *skip, bint transformed) noexcept nogil:
    """The conv (``pool`` false: ``y (N, Ho, Wo, F)``, plus ``skip (N, Ho, Wo, F)`` before the activation
    unless NULL) or its 2x2 max-pool (``y (N, Ho//2, Wo//2, F)``). ``transformed``: ``w`` holds ``U (16, C, F)``
    already (:func:`winograd_weight_transform`), read in place of row 0's copy."""
    cdef Py_ssize_t n, e, T, blocks
    cdef Py_ssize_t Hy = Ho // 2 if pool else Ho, Wy = Wo // 2 if pool else Wo
    cdef int nt
    cdef const floating *U = w if transformed else work
    if N == 0 or Hy == 0 or Wy == 0 or F == 0:
        return
    if C == 0:
        for e in range(N * Hy * Wy * F):
            y[e] = 0
        if skip == NULL:
            _bias_act_rows(y, b, N * Hy * Wy, F, act, alpha)
        else:
            _bias_act_rows(y, b, N * Hy * Wy, F, ACT_IDENTITY, alpha)
            _bias_act_rows(y, skip, 1, N * Hy * Wy * F, act, alpha)
        return
    if not transformed:
        if floating is float:
            wino_weight_f32(work, C * F, w, C, F)
        else:
            wino_weight_f64(work, C * F, w, C, F)
    # T as for the unpooled conv: the pooled variant keeps the same blocks
    T = _run_tiles(Ho, Wo)
    nt = team(N * Ho * Wo * 9 * C * F // 16)
    if nt > slots:
        nt = <int>slots
    if nt == 1:   # no parallel region at all: entering one costs ~1 us even for a team of one
        for n in range(N):
            _sample(y + n * Hy * Wy * F, x + n * H * W * C, U, b, work + 16 * C * F,
                    act, alpha, H, W, C, F, Ho, Wo, pt, pl, T, pool, NULL if skip == NULL else skip + n * Hy * Wy * F)
        return
    blocks = (((Ho + 1) // 2) * ((Wo + 1) // 2) + T - 1) // T
    if N < nt and blocks > 1:
        # fewer samples than threads (one-sample inference): the tile blocks of every sample are the work items
        for e in prange(N * blocks, schedule="dynamic", num_threads=nt):
            _block(y + (e // blocks) * Hy * Wy * F, x + (e // blocks) * H * W * C, U, b,
                   work + omp_get_thread_num() * ldwork + 16 * C * F,
                   act, alpha, H, W, C, F, Ho, Wo, pt, pl, T, pool, (e % blocks) * T,
                   NULL if skip == NULL else skip + (e // blocks) * Hy * Wy * F)
        return
    for n in prange(N, schedule="dynamic", num_threads=nt):
        _sample(y + n * Hy * Wy * F, x + n * H * W * C, U, b,
                work + omp_get_thread_num() * ldwork + 16 * C * F,
                act, alpha, H, W, C, F, Ho, Wo, pt, pl, T, pool, NULL if skip == NULL else skip + n * Hy * Wy * F)


cdef _run(str name, y, x, w, b, work, int act, double alpha, int pt, int pl, Py_ssize_t Ho,
          Py_ssize_t Wo, bint pool, s=None):
    """Checks shared by the wrappers, then the kernel. Without ``pool`` the conv output size
    ``Ho, Wo`` is ``y``'s (the arguments are ignored); with ``pool`` it is given and ``y`` must be
    ``(N, Ho // 2, Wo // 2, F)``. ``s``: None, or the skip tensor of ``y``'s shape (no ``pool``)."""
    cdef int t = _float_type(x, "x")
    cdef cnp.ndarray xa = _array(x, t, 4, False, "x"), ya = _array(y, t, 4, True, "y")
    cdef cnp.ndarray wa = _array(w, t, 4, False, "w"), ba = _array(b, t, 1, False, "b")
    cdef cnp.ndarray ka = _array(work, t, 2, True, "work")
    cdef cnp.ndarray sa = None
    if s is not None:
        sa = _array(s, t, 4, False, "s")
        if s.shape != y.shape:
            raise ValueError(f"{name}: s must have y's shape {y.shape}; received shape {s.shape}")
        if cnp.PyArray_DATA(sa) == cnp.PyArray_DATA(ya):
            raise ValueError(f"{name}: s must not be y (the output is written before s is read)")
    cdef cnp.npy_intp *xd = cnp.PyArray_DIMS(xa)
    cdef cnp.npy_intp *yd = cnp.PyArray_DIMS(ya)
    cdef cnp.npy_intp *wd = cnp.PyArray_DIMS(wa)
    cdef cnp.npy_intp *kd = cnp.PyArray_DIMS(ka)
    cdef bint transformed = wd[0] == 4 and wd[1] == 4
    if not transformed and (wd[0] != 3 or wd[1] != 3):
        raise ValueError(f"w must be (3, 3, C, F) for Winograd F(2x2, 3x3), or its transform (4, 4, C, F); "
                         f"received shape {w.shape}")
    if yd[0] != xd[0] or wd[2] != xd[3] or yd[3] != wd[3] or cnp.PyArray_DIMS(ba)[0] != wd[3]:
        raise ValueError(f"{name} shapes do not match: y {y.shape}, x {x.shape}, "
                         f"w {w.shape}, b {b.shape}")
    if not pool:
        Ho, Wo = yd[1], yd[2]
    elif yd[1] != Ho // 2 or yd[2] != Wo // 2:
        raise ValueError(f"y must be (N, Ho // 2, Wo // 2, F) = {(xd[0], Ho // 2, Wo // 2, wd[3])} for "
                         f"Ho={Ho}, Wo={Wo}; received shape {y.shape}")
    if pt < 0 or pl < 0:
        raise ValueError(f"padding must be >= 0; received pt={pt}, pl={pl}")
    cdef Py_ssize_t L = _workspace_length(xd[3], wd[3], Ho, Wo)
    if kd[0] < 1 or kd[1] < L:
        raise ValueError(f"work must be (slots >= 1, L >= {L}) for these shapes; received shape {work.shape}")
    if t == cnp.NPY_FLOAT:
        _winograd_forward(<float *>cnp.PyArray_DATA(ya), <const float *>cnp.PyArray_DATA(xa),
                          <const float *>cnp.PyArray_DATA(wa), <const float *>cnp.PyArray_DATA(ba),
                          <float *>cnp.PyArray_DATA(ka), kd[1], kd[0], act, <float>alpha,
                          xd[0], xd[1], xd[2], xd[3], wd[3], Ho, Wo, pt, pl, pool,
                          NULL if sa is None else <const float *>cnp.PyArray_DATA(sa), transformed)
    else:
        _winograd_forward(<double *>cnp.PyArray_DATA(ya), <const double *>cnp.PyArray_DATA(xa),
                          <const double *>cnp.PyArray_DATA(wa), <const double *>cnp.PyArray_DATA(ba),
                          <double *>cnp.PyArray_DATA(ka), kd[1], kd[0], act, alpha,
                          xd[0], xd[1], xd[2], xd[3], wd[3], Ho, Wo, pt, pl, pool,
                          NULL if sa is None else <const double *>cnp.PyArray_DATA(sa), transformed)


def conv2d_winograd_bias_act_forward(y, x, w, b, work, int act, double alpha, int pt, int pl):
    """``y = f(conv(x, w) + b)`` for a 3x3 stride-1 conv by Winograd F(2x2, 3x3).

    ``y (N, Ho, Wo, F)``, ``x (N, H, W, C)``, ``w (3, 3, C, F)`` (or its transform
    ``U (4, 4, C, F)`` from :func:`winograd_weight_transform`: the same bits, without
    transforming the weights per call), ``b (F,)``,
    ``work (slots, L)`` scratch with ``L >= winograd_workspace_length(H, W, C,
    F, Ho, Wo)`` and ``slots >= 1`` (at most ``slots`` threads run), all of
    ``x``'s dtype and C-contiguous; ``act``/``alpha`` as for
    ``conv2d_bias_act_forward``; ``pt, pl >= 0`` top/left zero padding.
    Takes plain ndarrays (checked against the contract, see ``_ndarray.pxi``).
    """
    _run("conv2d_winograd_bias_act_forward", y, x, w, b, work, act, alpha, pt, pl, 0, 0, False)


def conv2d_winograd_bias_add_act_forward(y, x, w, b, s, work, int act, double alpha, int pt, int pl):
    """``y = f((conv(x, w) + b) + s)``: :func:`conv2d_winograd_bias_act_forward` with a tensor added before
    the activation (the second conv of a residual block at inference, ``s`` the skip path's output).

    ``s (N, Ho, Wo, F)`` of ``y``'s shape and dtype, C-contiguous (it may not
    be ``y`` itself); every other argument as for
    :func:`conv2d_winograd_bias_act_forward`. Per output the bias is added
    first, then ``s``, then the activation taken, in the tile's epilogue while
    it is in L1: the values of the unfused ``z = conv + b`` (identity), ``z +
    s``, ``f(... + 0)`` (a residual block's separate merge pass), bit for bit
    up to the sign of a zero. Same threading and bit-identity across thread
    counts as the kernel without ``s``.
    """
    _run("conv2d_winograd_bias_add_act_forward", y, x, w, b, work, act, alpha, pt, pl, 0, 0, False, s)


def conv2d_winograd_bias_act_maxpool2_forward(y, x, w, b, work, int act, double alpha, int pt, int pl,
                                              Py_ssize_t Ho, Py_ssize_t Wo):
    """``y = maxpool_2x2/2(f(conv(x, w) + b))``: the Winograd conv fused with a 2x2 stride-2 max-pool.

    Arguments as :func:`conv2d_winograd_bias_act_forward`, except that ``Ho, Wo
    >= 2`` give the conv output size (bottom/right padding implied as there)
    and ``y`` is ``(N, Ho // 2, Wo // 2, F)``: the max-pool with a 2x2 window,
    stride 2, no padding, floor mode. ``work (slots, L)`` follows the same rule,
    ``L >= winograd_workspace_length(H, W, C, F, Ho, Wo)`` with the *conv* size
    ``Ho, Wo`` (the pooled variant needs no more). No conv output is written.

    Each F(2x2, 3x3) tile is one pool window: per whole tile and filter the
    output transform keeps ``v = max`` of the 4 conv outputs (raster order,
    strict ``>``, a NaN wins: the rule of ``maxpool2d_forward``), then stores
    ``f(v + b)``, one add and one activation per pooled pixel. With odd
    ``Ho``/``Wo`` the partial tiles of the last conv row/column (dropped by
    the pool) get neither input nor output transform, but keep their (zero)
    rows in the 16 block products: the blocks of tiles stay those of the
    unpooled kernel, whose BLAS rounding can depend on a row's position in
    the block (measured: 1-ulp differences for F = 1 or 7 otherwise). For
    even ``Ho`` and ``Wo`` (MNIST: 24x24) there are no such tiles. Rounding of ``v + b`` and every
    activation are non-decreasing in ``v`` (``leaky_relu`` needs ``alpha >=
    0``), so on finite values this equals ``conv2d_winograd_bias_act_forward``
    followed by ``maxpool2d_forward`` bit for bit (up to the sign of a zero).
    NaN differs in detail: here a NaN conv output wins the max before the
    activation (so ``relu`` maps the whole window to 0), while the unfused path
    activates each output first. Same threading (the team estimated from the
    conv size, one thread per sample, no parallel region for a team of one)
    and bit-identical results for any thread count as the unfused kernel.
    """
    if Ho < 2 or Wo < 2:
        raise ValueError(f"conv output size must be >= 2 for a 2x2 max-pool; received Ho={Ho}, Wo={Wo}")
    _run("conv2d_winograd_bias_act_maxpool2_forward", y, x, w, b, work, act, alpha, pt, pl, Ho, Wo, True)


def winograd_weight_transform(u, w):
    """``u = G g G^T`` of every filter tap grid ``g`` of ``w``: the transformed weights the forwards read.

    ``u (4, 4, C, F)`` (output, every element written), ``w (3, 3, C, F)``,
    same dtype, C-contiguous. ``u[r, s, c, f]`` is the entry ``(r, s)`` of the
    4x4 transform of ``w[:, :, c, f]`` (``winograd_tf.h``): the matrices
    ``U_k (C, F)``, ``k = 4 * r + s``, that every call of
    :func:`conv2d_winograd_bias_act_forward` (and its add and max-pool
    variants) computes from ``w`` before its products. Passing ``u`` in place
    of ``w`` gives the same bits and skips that step (a third of the call for
    64 -> 64 channels on one 8x8 image), for weights that do not change
    between calls (a layer's folded inference weights).
    """
    cdef int t = _float_type(w, "w")
    cdef cnp.ndarray ua = _array(u, t, 4, True, "u"), wa = _array(w, t, 4, False, "w")
    cdef cnp.npy_intp *ud = cnp.PyArray_DIMS(ua)
    cdef cnp.npy_intp *wd = cnp.PyArray_DIMS(wa)
    if wd[0] != 3 or wd[1] != 3 or ud[0] != 4 or ud[1] != 4 or ud[2] != wd[2] or ud[3] != wd[3]:
        raise ValueError(f"winograd_weight_transform needs u (4, 4, C, F) and w (3, 3, C, F); received u "
                         f"{u.shape}, w {w.shape}")
    if t == cnp.NPY_FLOAT:
        wino_weight_f32(<float *>cnp.PyArray_DATA(ua), wd[2] * wd[3], <const float *>cnp.PyArray_DATA(wa),
                        wd[2], wd[3])
    else:
        wino_weight_f64(<double *>cnp.PyArray_DATA(ua), wd[2] * wd[3], <const double *>cnp.PyArray_DATA(wa),
                        wd[2], wd[3])
