# Included by the kernels (``include "_parallel.pxi"``): when a kernel goes parallel.
#
# An OpenMP parallel region costs a fork/join (a few microseconds with idle
# spinning workers, far more when another process holds the second core and
# the region must wait for a descheduled worker). Below ``MIN_PARALLEL_WORK``
# elementary operations a kernel runs on the calling thread alone
# (``num_threads=1``). Measured on the digits model (every kernel of a batch
# of 64 does at most ~140k operations): a training step took 1.04 ms on 1
# thread and 1.77 ms on 2 threads without a threshold; with 2**16 the dense
# products, max-pool and Adam still went parallel and 2 threads stayed ~15%
# slower than 1 (115k vs 140k samples/s); with 2**18 the whole digits step
# runs on one thread, while every MNIST kernel that matters (>= 1M operations)
# stays parallel. The choice depends only on the problem size, never on the
# result: every kernel gives the same bits for any team.

from openmp cimport omp_get_max_threads

cdef enum:
    MIN_PARALLEL_WORK = 262144


cdef inline int team(Py_ssize_t work) noexcept nogil:
    """Threads for a parallel loop doing ``work`` elementary operations."""
    if work < MIN_PARALLEL_WORK:
        return 1
    return omp_get_max_threads()
