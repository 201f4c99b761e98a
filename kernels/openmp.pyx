# cython: language_level=3
"""The OpenMP runtime (GNU libgomp) that the Cython kernels' ``prange`` loops use.

``omp_set_num_threads`` sets the *calling thread's* team size for later
parallel regions (an OpenMP internal control variable is per thread), so set it
from the thread that will call the kernels (see ``minicnn.threads``).
"""

include "_parallel.pxi"

#: Kernels whose work (elementary operations) is below this run on the calling thread alone.
PARALLEL_WORK_THRESHOLD = MIN_PARALLEL_WORK


cdef extern from "omp.h" nogil:
    void omp_set_num_threads(int n)
    int omp_get_num_procs()


def set_num_threads(int n):
    """Set the number of OpenMP threads of the calling thread's next parallel regions.

    Parameters
    ----------
    n : int
        Positive thread count.
    """
    if n < 1:
        raise ValueError(f"n must be a positive int; received n={n!r}")
    omp_set_num_threads(n)


def get_max_threads():
    """Return the team size the calling thread's next parallel region would use.

    Returns
    -------
    int
    """
    return omp_get_max_threads()


def get_num_procs():
    """Return the number of processors OpenMP sees (honours the CPU affinity mask).

    Returns
    -------
    int
    """
    return omp_get_num_procs()
