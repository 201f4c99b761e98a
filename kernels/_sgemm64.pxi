# Included by the kernels that may call a second sgemm (``include "_sgemm64.pxi"``): NumPy's bundled
# OpenBLAS through its ILP64 interface, registered at import by ``minicnn.backend.cython_kernels``
# (``set_sgemm64``) when found; NULL otherwise, and the kernel uses SciPy's BLAS. Each extension
# module has its own registration. Why each kernel wants it is measured next to its include.

from libc.stdint cimport int64_t

ctypedef void (*sgemm64_t)(const char *transa, const char *transb, const int64_t *m, const int64_t *n,
                           const int64_t *k, const float *alpha, const float *a, const int64_t *lda,
                           const float *b, const int64_t *ldb, const float *beta, float *c,
                           const int64_t *ldc) noexcept nogil

cdef sgemm64_t _sgemm64 = NULL


def set_sgemm64(size_t address):
    """Register (or with 0, forget) an ILP64 ``sgemm_`` at ``address`` for this module's products."""
    global _sgemm64
    _sgemm64 = <sgemm64_t>address
