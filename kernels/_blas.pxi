# Included by the kernels that call BLAS (``include "_blas.pxi"`` after the ``floating`` fused type):
# the one set of SciPy BLAS wrappers in the precision of ``floating``. Column-major, as BLAS is: a
# row-major ``C = A @ B`` is computed as ``C^T = B^T @ A^T`` (swap the operands), so no array is ever
# transposed in memory. Single-threaded in the kernels' threads (see ``minicnn.threads``).

from scipy.linalg.cython_blas cimport dgemm, dgemv, sgemm, sgemv


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
