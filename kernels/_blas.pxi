# Included by the kernels that call BLAS (``include "_blas.pxi"`` after the ``floating`` fused type):
# the one set of SciPy BLAS wrappers in the precision of ``floating``. Column-major, as BLAS is: a
# row-major ``C = A @ B`` is computed as ``C^T = B^T @ A^T`` (swap the operands), so no array is ever
# transposed in memory. Single-threaded in the kernels' threads (see ``minicnn.threads``).
#
# The routines are the ones ``scipy.linalg.cython_blas`` calls, looked up at import by
# ``minicnn.backend.blas`` (a ``cimport`` of that module would import ``scipy.linalg`` and its
# dependencies on every cold start: ~0.2 s).

ctypedef void (*_sgemm_t)(const char *transa, const char *transb, const int *m, const int *n, const int *k,
                          const float *alpha, const float *a, const int *lda, const float *b, const int *ldb,
                          const float *beta, float *c, const int *ldc) noexcept nogil
ctypedef void (*_dgemm_t)(const char *transa, const char *transb, const int *m, const int *n, const int *k,
                          const double *alpha, const double *a, const int *lda, const double *b, const int *ldb,
                          const double *beta, double *c, const int *ldc) noexcept nogil
ctypedef void (*_sgemv_t)(const char *trans, const int *m, const int *n, const float *alpha, const float *a,
                          const int *lda, const float *x, const int *incx, const float *beta, float *y,
                          const int *incy) noexcept nogil
ctypedef void (*_dgemv_t)(const char *trans, const int *m, const int *n, const double *alpha, const double *a,
                          const int *lda, const double *x, const int *incx, const double *beta, double *y,
                          const int *incy) noexcept nogil

cdef _sgemm_t sgemm = NULL
cdef _dgemm_t dgemm = NULL
cdef _sgemv_t sgemv = NULL
cdef _dgemv_t dgemv = NULL


cdef _bind_blas():
    global sgemm, dgemm, sgemv, dgemv
    from minicnn.backend.blas import blas_addresses

    found = blas_addresses()
    sgemm = <_sgemm_t><size_t>found["sgemm"]
    dgemm = <_dgemm_t><size_t>found["dgemm"]
    sgemv = <_sgemv_t><size_t>found["sgemv"]
    dgemv = <_dgemv_t><size_t>found["dgemv"]


_bind_blas()


cdef inline void _gemm(char transa, char transb, int m, int n, int k,
                       const floating *a, int lda, const floating *b, int ldb,
                       floating beta, floating *c, int ldc) noexcept nogil:
    """Column-major ``c = op(a) @ op(b) + beta * c``."""
    cdef floating one = 1
    if floating is float:
        sgemm(&transa, &transb, &m, &n, &k, &one, <float *>a, &lda, <float *>b, &ldb, &beta, c, &ldc)
    else:
        dgemm(&transa, &transb, &m, &n, &k, &one, <double *>a, &lda, <double *>b, &ldb, &beta, c, &ldc)


cdef inline void _gemv(char trans, int m, int n, const floating *a, int lda,
                       const floating *x, int incx, floating *y) noexcept nogil:
    """Column-major ``y = op(a) @ x`` (``a`` is ``m x n``)."""
    cdef floating one = 1, zero = 0
    cdef int incy = 1
    if floating is float:
        sgemv(&trans, &m, &n, &one, <float *>a, &lda, <float *>x, &incx, &zero, y, &incy)
    else:
        dgemv(&trans, &m, &n, &one, <double *>a, &lda, <double *>x, &incx, &zero, y, &incy)
