# cython: language_level=3
"""Matrix product for the dense layers, split over OpenMP threads, single-threaded BLAS per block.

Inside :func:`minicnn.threads.thread_limits` BLAS runs one thread (OpenMP
owns the cores), so a plain ``np.dot`` in a dense layer would use one core
only. ``matmul`` cuts the rows of the output into one block per thread of the
team and runs one single-threaded sgemm per block: each output element is
still one BLAS dot product over the full inner dimension.

Row-major ``C = op(A) @ op(B)`` is column-major ``C^T = op(B)^T @ op(A)^T``, so
no array is copied or transposed in memory.
"""

from cython.parallel cimport prange

ctypedef fused floating:
    float
    double

include "_parallel.pxi"
include "_bias_act_rows.pxi"
include "_ndarray.pxi"
include "_blas.pxi"

# Fewest output rows per block (smaller blocks re-stream B for little gain).
# A single output row with at least GEMV_MIN_WEIGHTS weights that stream_gemm.h does not take (the baseline
# build, or a transposed operand: the gradients) goes to gemv: SciPy's OpenBLAS
# (0.3.30) packs the whole weight matrix for a one-row sgemm, measured 412 us for the MNIST
# model's 9216 x 128 dense layer on one sample, against ~80 us for gemv (NumPy's OpenBLAS 0.3.31
# forwards such calls to gemv itself). Small layers keep sgemm, so one-sample and batch
# predictions stay bit-identical there (scikit-learn's subset-invariance checks). The bound is
# the kernels' parallel threshold (2^18): OpenBLAS threads a gemv from ~9k elements, but a call
# below the threshold runs outside minicnn.threads.thread_limits (kernel_thread_limits), where
# BLAS may have 2 threads; with this bound such a call never reaches gemv.
#
# A one-row product with a gemv is split along its inner dimension into _k_slices(N, K) slices (at
# least GEMV_SPLIT_WEIGHTS weights each, at most GEMV_MAX_SPLITS), one gemv per slice into its own row
# of partial sums, spread over the team, then the partial sums are added in slice order: one sample's
# 9216 x 128 dense layer (71 us of a ~270 us MNIST prediction on one thread) uses every thread of its
# team (a single-threaded BLAS call would not), and each slice streams contiguous rows of the weights
# (splitting the outputs instead made each gemv read a narrow strided column block: 104 us on one
# thread). The slices depend on the shapes only, never on the team, so every team gives the same bits.
cdef enum:
    MIN_BLOCK_ROWS = 32
    GEMV_MIN_WEIGHTS = 262144
    GEMV_SPLIT_WEIGHTS = 131072
    GEMV_MAX_SPLITS = 8


# A product of 1 to STREAM_MAX_M rows with at least GEMV_MIN_WEIGHTS weights, neither operand transposed (a dense
# layer after a large feature map, on one sample or a small batch), runs as stream_gemm.h where the module has its
# vector path (AVX): the weights stream from memory once, in chunks of STREAM_KC rows, the sums of a block of rows x
# columns in registers (one row: 64 floats of sums). Before it, one row went to gemv split along K (below) and 2-16
# rows to sgemm (which packs all the weights first). Measured at the avx2 level on an AMD Zen 4 (1 thread, minima,
# loaded machine): 1 x 16384 @ 16384 x 128 (the 3-channel grid's dense layer at 64 px, batch 1) with the weights in
# cache 0.163 ms (gemv) -> 0.111 ms, weights evicted 0.86 -> 0.48 ms; 1 x 65536 (128 px) 3.4 -> 2.4 ms; 8 rows at
# 16384: 1.71 (sgemm) -> 0.41 ms in cache, compute-bound (8 x 128 sums per weight row, a multiply and an add each:
# Zen 4 runs 2 vector multiplies and 2 vector adds per cycle, so a fused multiply-add would not be faster there); 16
# rows 1.64 -> 1.03 ms; from 32 rows sgemm was as fast or faster (2.9 vs 2.8 ms at 64), hence STREAM_MAX_M. From 2
# rows each block prefetches its columns STREAM_PREFETCH rows ahead (the next chunk): the blocks walk a chunk in
# strided column panels, which the hardware prefetcher follows poorly; 8 x 65536 weights not in cache 7.1 -> 3.5 ms,
# 4 rows 9.5 -> 2.8 ms, 5 rows 6.5 -> 3.8 ms (the previous kernel), 2-3 rows level; on one row it was slower (2.2 ->
# 3.3 ms: one row's panels are 4 cache lines wide, which the hardware follows). Chunks of 16-256 rows were within
# noise of each other from 2 rows; one row runs chunks of STREAM_KC_ONE_ROW rows (its two 64-float panels then read
# the same 4 KiB at once): 1 x 65536 1.71 -> 1.41 ms (minima, two runs agree), 1 x 16384 in cache 0.116 -> 0.107 ms.
# In the 3-channel grid net (benchmarks/profile_inference.py, 1 thread, minima of 20 calls, load ~6 on 2 cores,
# two interleaved rounds) the 128 px dense layer went 3.0 -> 1.85 ms at batch 1 and 6.2-10.3 -> 3.2-3.3 ms at batch 8,
# the 64 px one 0.18-0.24 -> 0.15-0.20 ms at batch 1 and 1.46-1.55 -> 0.71-1.05 ms at batch 8. The team splits
# the inner dimension as the gemv does (_k_slices: 2-8 slices by the weights' shape, each a streamed product of all
# the columns into c or its own rows of partial sums, added in slice order) and counts the weights read as the work.
# It split the columns before (a cache line of floats at a time): each thread then read half of every 512-byte
# weight row, and the cores' adjacent-line prefetchers pulled the other half too, so two threads gained little on
# one sample: the MNIST model's 9216 x 128 layer 71 -> 61 us from 1 to 2 threads (median; OpenMP workers spinning),
# against 47 -> 35 us (minimum) in a C loop splitting K in halves (columns: 48), 1 x 16384 98 -> 59 us (columns: 83).
# The whole MNIST one-sample forward on 2 threads (the two kernels swapped in one process, medians of 150 calls,
# OpenMP workers kept spinning, load ~6): 0.149 -> 0.125 ms; on 1 thread 0.199 -> 0.192 ms.
# Every value is a sum over its slice's k in order, the slices' sums added in order: the slices depend on N and K
# only, so the bits depend neither on the team nor on the row count.
# Not kept: a copy of the weights packed once in this kernel's read order (per chunk of 64 rows, 16-column panels
# contiguous; the same sums in the same order, so the same bits), as ONNX Runtime packs its constant weights. In a
# C loop at the avx2 level, 1 thread, minima of 21-31 interleaved calls (loaded machine), it was no faster: 8 x
# 16384 with the weights evicted between calls 0.77-0.85 -> 0.74-0.80 ms (noise), 8 x 65536 2.98-3.05 -> 3.18-3.33
# ms, one row slower (1 x 9216 evicted 0.22 -> 0.53 ms: four 64-byte panel streams instead of one 512-byte row);
# prefetching 2-8 chunks ahead instead of one was no faster either. 8 rows are bound by the multiplies and adds (8 x
# 16384 in cache 0.46 ms, ~36 GMAC/s of the ~59 two multiplies and two adds per cycle allow), and 8 x 65536 by
# memory (32 MiB in ~2.9 ms). What gains on 8-16 rows is this module's avx512 build (x86-64-v4: 32 vector registers,
# multiplies that take their broadcast operand from memory), where stream_gemm.h runs groups of 8 rows as blocks of 8
# rows x 4 vectors (STREAM_ROWS8; the same sums in the same order, the same bits as the avx2 build): the avx2 and
# avx512 builds side by side in one process, 1 thread, medians (minima) of 9 interleaved rounds, load ~4.5: 8 x 16384
# 0.746 (0.609) -> 0.579 (0.518) ms, 16 x 16384 1.56 (1.32) -> 1.21 (1.03), 8 x 3136 0.172 (0.106) -> 0.121 (0.089),
# 8 x 65536 level (memory), 1 and 4 rows 0.94-1.08x.
cdef extern from "stream_gemm.h" nogil:
    const int STREAM_GEMM_VECTOR
    void stream_gemm_float(float *c, const float *a, const float *b, Py_ssize_t M, Py_ssize_t K, Py_ssize_t lda,
                           Py_ssize_t ldb, Py_ssize_t ldc, Py_ssize_t n0, Py_ssize_t n1, Py_ssize_t kc,
                           Py_ssize_t pf)
    void stream_gemm_double(double *c, const double *a, const double *b, Py_ssize_t M, Py_ssize_t K,
                            Py_ssize_t lda, Py_ssize_t ldb, Py_ssize_t ldc, Py_ssize_t n0, Py_ssize_t n1,
                            Py_ssize_t kc, Py_ssize_t pf)
cdef enum:
    STREAM_MAX_M = 16
    STREAM_KC = 64
    STREAM_KC_ONE_ROW = 8
    STREAM_PREFETCH = 64


# Most multiply-adds M * N * K of one sgemm call: a block of rows of c whose product is larger runs as several calls of
# at most this many, where each call keeps to at least MIN_BLOCK_ROWS rows. SciPy's OpenBLAS (0.3.30) runs a call of
# up to 10^6 multiply-adds through its small-matrix kernel (no packing) and packs both operands above: 61 x 256 @
# 256 x 64 took 18.2 us, 62 rows 25.8 us (1 thread, AMD Zen 4, minima); the digits CNN's hidden layer at batch 64,
# 26.4 us in one call, 18.6 us as two calls of 32 rows. Each row of c is the same sgemm dot product whatever the
# block, so the split changes no bit of the small-matrix path (the packed path's blocking may differ in the last
# bits, as it did between row counts before).
cdef enum:
    SGEMM_SMALL_MNK = 1000000


cdef inline void _stream_part(floating *c, const floating *a, const floating *b, Py_ssize_t M, Py_ssize_t K,
                              Py_ssize_t lda, Py_ssize_t ldb, Py_ssize_t N, Py_ssize_t n0,
                              Py_ssize_t n1) noexcept nogil:
    cdef Py_ssize_t pf = STREAM_PREFETCH if M > 1 else 0, kc = STREAM_KC if M > 1 else STREAM_KC_ONE_ROW
    if floating is float:
        stream_gemm_float(c, a, b, M, K, lda, ldb, N, n0, n1, kc, pf)
    else:
        stream_gemm_double(c, a, b, M, K, lda, ldb, N, n0, n1, kc, pf)


cdef void _stream_slice(floating *c, floating *partials, const floating *a, const floating *b, Py_ssize_t s,
                        Py_ssize_t S, Py_ssize_t M, Py_ssize_t N, Py_ssize_t K, Py_ssize_t lda,
                        Py_ssize_t ldb) noexcept nogil:
    """Slice ``s`` of ``S`` of :func:`_stream`: inner indices ``[s * K // S, (s + 1) * K // S)`` into ``c`` (slice 0)
    or row ``s - 1`` of ``partials`` (``M * N`` values each)."""
    cdef Py_ssize_t k0 = s * K // S, k1 = (s + 1) * K // S
    _stream_part(c if s == 0 else partials + (s - 1) * M * N, a + k0, b + k0 * ldb, M, k1 - k0, lda, ldb, N, 0, N)


cdef void _stream(floating *c, const floating *a, const floating *b, Py_ssize_t M, Py_ssize_t N, Py_ssize_t K,
                  Py_ssize_t lda, Py_ssize_t ldb, const floating *bias, int act, floating alpha,
                  floating *partials) noexcept nogil:
    """:func:`_matmul` by ``stream_gemm.h``: the inner dimension in ``_k_slices(N, K)`` slices spread over the team,
    their sums added in slice order (``partials``: ``(slices - 1) * M * N`` values)."""
    cdef Py_ssize_t S = _k_slices(N, K), s, e
    cdef int G = team(N * K)
    if G > S:
        G = <int>S
    if G <= 1:
        for s in range(S):
            _stream_slice(c, partials, a, b, s, S, M, N, K, lda, ldb)
    else:
        for s in prange(S, schedule="static", num_threads=G):
            _stream_slice(c, partials, a, b, s, S, M, N, K, lda, ldb)
    for s in range(1, S):
        for e in range(M * N):
            c[e] = c[e] + partials[(s - 1) * M * N + e]
    if bias != NULL:
        _bias_act_rows(c, bias, M, N, act, alpha)


cdef inline bint _streams(Py_ssize_t M, Py_ssize_t N, Py_ssize_t K, int trans_a, int trans_b) noexcept nogil:
    """Whether :func:`_matmul` runs the product as ``stream_gemm.h``."""
    return (STREAM_GEMM_VECTOR and not trans_a and not trans_b and 1 <= M <= STREAM_MAX_M
            and N * K >= GEMV_MIN_WEIGHTS)


cdef inline Py_ssize_t _k_slices(Py_ssize_t N, Py_ssize_t K) noexcept nogil:
    """Inner-dimension slices of a product of ``N * K >= GEMV_MIN_WEIGHTS`` weights that is split along ``K`` (a
    one-row gemv, or the streamed product): a function of the weights' shape only."""
    cdef Py_ssize_t splits = N * K // GEMV_SPLIT_WEIGHTS
    return min(splits, <Py_ssize_t>GEMV_MAX_SPLITS, K)


cdef inline Py_ssize_t _gemv_splits(Py_ssize_t M, Py_ssize_t N, Py_ssize_t K, int trans_a,
                                     int trans_b) noexcept nogil:
    """Inner-dimension slices of a one-row product that goes to gemv; 0 for any other product."""
    if M != 1 or N * K < GEMV_MIN_WEIGHTS or _streams(M, N, K, trans_a, trans_b):
        return 0
    return _k_slices(N, K)


cdef object _partials(Py_ssize_t M, Py_ssize_t N, Py_ssize_t K, int trans_a, int trans_b, int typenum):
    """The partial sums a product split along its inner dimension needs (an ndarray: ``slices * N`` values for a
    one-row gemv, ``(slices - 1) * M * N`` for the streamed product), or None for any other product."""
    cdef cnp.npy_intp size = _gemv_splits(M, N, K, trans_a, trans_b) * N
    if _streams(M, N, K, trans_a, trans_b):
        size = (_k_slices(N, K) - 1) * M * N
    return cnp.PyArray_EMPTY(1, &size, typenum, 0) if size else None


cdef inline void *_data(object arr):
    return cnp.PyArray_DATA(<cnp.ndarray>arr) if arr is not None else NULL


cdef void _matmul(floating *c, const floating *a, const floating *b, Py_ssize_t M, Py_ssize_t N, Py_ssize_t K,
                  Py_ssize_t lda, Py_ssize_t ldb, int trans_a, int trans_b,
                  const floating *bias, int act, floating alpha, floating *partials) noexcept nogil:
    """``c = f(op(a) @ op(b) + bias)`` (no epilogue when ``bias`` is NULL); ``partials`` holds the values
    :func:`_partials` sizes (NULL when none)."""
    cdef char ta = b'T' if trans_a else b'N'
    cdef char tb = b'T' if trans_b else b'N'
    cdef Py_ssize_t G, g, e
    if M == 0 or N == 0:
        return
    if K == 0:
        for e in range(M * N):
            c[e] = 0
        if bias != NULL:
            _bias_act_rows(c, bias, M, N, act, alpha)
        return
    if _streams(M, N, K, trans_a, trans_b):
        _stream(c, a, b, M, N, K, lda, ldb, bias, act, alpha, partials)
        return
    if _gemv_splits(M, N, K, trans_a, trans_b):
        _gemv_split(c, partials, a, b, N, K, lda, ldb, trans_a, trans_b, bias, act, alpha)
        return
    G = team(M * N * K // 16)
    if G > M // MIN_BLOCK_ROWS:
        G = M // MIN_BLOCK_ROWS
    if G < 1:
        G = 1
    if G == 1:   # no parallel region at all: entering one costs ~1 us even for a team of one
        _rows(c, a, b, 0, M, N, K, lda, ldb, ta, tb, trans_a, bias, act, alpha)
        return
    for g in prange(G, schedule="static", chunksize=1, num_threads=G):
        _rows(c, a, b, g * M // G, (g + 1) * M // G, N, K, lda, ldb, ta, tb, trans_a, bias, act, alpha)


cdef void _gemv_split(floating *c, floating *partials, const floating *a, const floating *b, Py_ssize_t N,
                      Py_ssize_t K, Py_ssize_t lda, Py_ssize_t ldb, int trans_a, int trans_b,
                      const floating *bias, int act, floating alpha) noexcept nogil:
    """The one output row of :func:`_matmul` as gemvs over slices of the inner dimension, summed in order."""
    cdef Py_ssize_t splits = _gemv_splits(1, N, K, trans_a, trans_b), s, n
    cdef Py_ssize_t G = min(<Py_ssize_t>team(N * K), splits)
    cdef floating z
    if G == 1:
        for s in range(splits):
            _gemv_slice(partials, a, b, s, splits, N, K, lda, ldb, trans_a, trans_b)
    else:
        for s in prange(splits, schedule="static", num_threads=G):
            _gemv_slice(partials, a, b, s, splits, N, K, lda, ldb, trans_a, trans_b)
    for n in range(N):
        z = partials[n]
        for s in range(1, splits):
            z = z + partials[s * N + n]
        c[n] = z
    if bias != NULL:
        _bias_act_rows(c, bias, 1, N, act, alpha)


cdef inline void _gemv_slice(floating *partials, const floating *a, const floating *b, Py_ssize_t s,
                             Py_ssize_t splits, Py_ssize_t N, Py_ssize_t K, Py_ssize_t lda, Py_ssize_t ldb,
                             int trans_a, int trans_b) noexcept nogil:
    """Row ``s`` of the partial sums: inner indices ``[s * K // splits, (s + 1) * K // splits)`` of the row of
    op(a) (a vector of stride lda when trans_a, else 1) times those rows of op(b) (b is K x N, or N x K when
    trans_b; column-major N x K, or K x N)."""
    cdef Py_ssize_t k0 = s * K // splits, k1 = (s + 1) * K // splits
    cdef int incx = <int>lda if trans_a else 1
    if trans_b:
        _gemv(c'T', <int>(k1 - k0), <int>N, b + k0, <int>ldb, a + k0 * incx, incx, partials + s * N)
    else:
        _gemv(c'N', <int>N, <int>(k1 - k0), b + k0 * ldb, <int>ldb, a + k0 * incx, incx, partials + s * N)


cdef inline void _rows(floating *c, const floating *a, const floating *b, Py_ssize_t m0, Py_ssize_t m1,
                       Py_ssize_t N, Py_ssize_t K, Py_ssize_t lda, Py_ssize_t ldb, char ta, char tb, int trans_a,
                       const floating *bias, int act, floating alpha) noexcept nogil:
    """Rows ``[m0, m1)`` of :func:`_matmul`'s ``c`` (columns of the column-major ``C^T``), then the epilogue."""
    cdef Py_ssize_t rb = m1 - m0, r0 = m0, r1
    if (m1 - m0) * N * K > SGEMM_SMALL_MNK and SGEMM_SMALL_MNK // (N * K) >= MIN_BLOCK_ROWS:
        rb = SGEMM_SMALL_MNK // (N * K)
    while r0 < m1:
        r1 = min(m1, r0 + rb)
        _gemm(tb, ta, <int>N, <int>(r1 - r0), <int>K, b, <int>ldb,
              a + (r0 if trans_a else r0 * lda), <int>lda, 0, c + r0 * N, <int>N)
        r0 = r1
    if bias != NULL:
        _bias_act_rows(c + m0 * N, bias, m1 - m0, N, act, alpha)


def matmul(floating[:, ::1] c, const floating[:, ::1] a, const floating[:, ::1] b, int trans_a, int trans_b):
    """``c = op(a) @ op(b)`` with ``op(x) = x.T`` when ``trans_x`` is nonzero; ``c`` is ``(M, N)``."""
    cdef Py_ssize_t K = a.shape[0] if trans_a else a.shape[1]
    if c.shape[0] * c.shape[1] == 0:
        return
    partials = _partials(c.shape[0], c.shape[1], K, trans_a, trans_b,
                         cnp.NPY_FLOAT if floating is float else cnp.NPY_DOUBLE)
    _matmul(&c[0, 0], &a[0, 0] if a.shape[0] * a.shape[1] > 0 else NULL,
            &b[0, 0] if b.shape[0] * b.shape[1] > 0 else NULL,
            c.shape[0], c.shape[1], K, a.shape[1], b.shape[1], trans_a, trans_b, NULL, 0, 0,
            <floating *>_data(partials))


def dense_bias_act_forward(y, x, w, b, int act, double alpha):
    """``y = f(x @ w + b)``: each thread's block of rows gets its product and its epilogue.

    Takes plain ndarrays (checked against the contract, see ``_ndarray.pxi``):
    on a one-sample prediction the memoryview set-up cost more than the work.
    """
    cdef int t = _float_type(x, "x")
    cdef cnp.ndarray xa = _array(x, t, 2, False, "x"), ya = _array(y, t, 2, True, "y")
    cdef cnp.ndarray wa = _array(w, t, 2, False, "w"), ba = _array(b, t, 1, False, "b")
    cdef cnp.npy_intp *xd = cnp.PyArray_DIMS(xa)
    cdef cnp.npy_intp *yd = cnp.PyArray_DIMS(ya)
    cdef cnp.npy_intp *wd = cnp.PyArray_DIMS(wa)
    if yd[0] != xd[0] or wd[0] != xd[1] or yd[1] != wd[1] or cnp.PyArray_DIMS(ba)[0] != wd[1]:
        raise ValueError(f"dense_bias_act_forward shapes do not match: y {y.shape}, x {x.shape}, w {w.shape}, "
                         f"b {b.shape}")
    partials = _partials(yd[0], yd[1], xd[1], 0, 0, t)
    if t == cnp.NPY_FLOAT:
        _matmul(<float *>cnp.PyArray_DATA(ya), <const float *>cnp.PyArray_DATA(xa),
                <const float *>cnp.PyArray_DATA(wa), yd[0], yd[1], xd[1], xd[1], wd[1], 0, 0,
                <const float *>cnp.PyArray_DATA(ba), act, <float>alpha, <float *>_data(partials))
    else:
        _matmul(<double *>cnp.PyArray_DATA(ya), <const double *>cnp.PyArray_DATA(xa),
                <const double *>cnp.PyArray_DATA(wa), yd[0], yd[1], xd[1], xd[1], wd[1], 0, 0,
                <const double *>cnp.PyArray_DATA(ba), act, alpha, <double *>_data(partials))
