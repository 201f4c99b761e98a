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


# ---------------------------------------------------------------------------- BLAS thread counts, held in C
#
# ``minicnn.threads`` runs BLAS on one thread inside its limits: the outermost entry saves the process-wide thread
# count of each loaded OpenBLAS and sets 1, the last exit restores it. Through ctypes each get or set cost 0.2-0.4 us,
# 2.6 us per context with NumPy's and SciPy's OpenBLAS (more than a digits one-sample forward pass): here the same
# C functions are called by address. Each function below holds the GIL from start to end, so entries and exits from
# several Python threads are serialized as the Python lock serialized them.

ctypedef int (*_blas_get_t)() noexcept nogil
ctypedef void (*_blas_set_t)(int) noexcept nogil

#: Most BLAS libraries held (a process loads one or two OpenBLAS: NumPy's and SciPy's).
BLAS_MAX_LIBRARIES = 8

cdef _blas_get_t _blas_get[8]
cdef _blas_set_t _blas_set[8]
cdef int _blas_saved[8]
cdef int _blas_count = -1        # -1: nothing held (blas_enter refuses the outermost entry)
cdef Py_ssize_t _blas_key = -1
cdef Py_ssize_t _blas_depth = 0


def blas_configure(addresses, Py_ssize_t key):
    """Hold the BLAS libraries whose ``openblas_get_num_threads`` / ``openblas_set_num_threads`` are at ``addresses``.

    Parameters
    ----------
    addresses : sequence of (int, int) or None
        The C addresses of each library's ``int get(void)`` and ``void set(int)``; None holds nothing (every
        outermost :func:`blas_enter` then returns False).
    key : int
        Tags this set of libraries: :func:`blas_enter` refuses an outermost entry under another key.

    Returns
    -------
    bool
        False (nothing changed) while an entry is open.
    """
    global _blas_count, _blas_key
    cdef Py_ssize_t i
    if _blas_depth:
        return False
    if addresses is None:
        _blas_count, _blas_key = -1, -1
        return True
    pairs = list(addresses)
    if len(pairs) > BLAS_MAX_LIBRARIES:
        raise ValueError(f"at most {BLAS_MAX_LIBRARIES} BLAS libraries are held; received {len(pairs)}")
    for i in range(len(pairs)):
        _blas_get[i] = <_blas_get_t><size_t>pairs[i][0]
        _blas_set[i] = <_blas_set_t><size_t>pairs[i][1]
    _blas_count, _blas_key = len(pairs), key
    return True


def blas_enter(Py_ssize_t key):
    """Enter a one-thread BLAS context: the outermost entry saves each count and sets 1 where it differs.

    Returns
    -------
    bool
        False, doing nothing, for an outermost entry when nothing is held or ``key`` is not the held set's.
    """
    global _blas_depth
    cdef Py_ssize_t i
    if _blas_depth == 0:
        if _blas_count < 0 or key != _blas_key:
            return False
        for i in range(_blas_count):
            _blas_saved[i] = _blas_get[i]()
            if _blas_saved[i] != 1:
                _blas_set[i](1)
    _blas_depth += 1
    return True


def blas_exit():
    """Leave a context of :func:`blas_enter`: the last exit restores the saved counts.

    Returns
    -------
    bool
        False, doing nothing, when no context is open.
    """
    global _blas_depth
    cdef Py_ssize_t i
    if _blas_depth == 0:
        return False
    _blas_depth -= 1
    if _blas_depth == 0:
        for i in range(_blas_count):
            if _blas_saved[i] != 1:
                _blas_set[i](_blas_saved[i])
    return True


def blas_depth():
    """The number of open :func:`blas_enter` contexts (0: the counts are the libraries' own)."""
    return _blas_depth
