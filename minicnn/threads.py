"""The one thread knob: ``n_threads`` for Numba, OpenMP and BLAS together.

Three thread pools live in this process: Numba's (``prange`` kernels, the
``omp`` threading layer), GNU OpenMP's (the Cython kernels' ``prange``) and
OpenBLAS's (pthreads, used by NumPy/SciPy GEMMs). On 2 cores, letting BLAS run
2 threads right after an OpenMP region (or while OpenMP threads call BLAS)
oversubscribes the cores: spinning OpenMP workers and OpenBLAS workers wait on
each other and a GEMM ran up to 60x slower (``benchmarks/bench_threads.py``).

Design: **OpenMP/Numba own the cores, BLAS runs single-threaded.** Inside
:func:`thread_limits` the batch-parallel kernels use ``n_threads`` threads and
each thread calls one-thread BLAS on its own sample (the Cython conv kernels
do per-sample GEMMs inside ``prange``), so only one runtime ever has busy
threads. Measured (``benchmarks/bench_threads.py``, 2 cores): a 512^3 sgemm
took 1.4 ms before any OpenMP region and 13 ms right after one with
``OMP_WAIT_POLICY=passive`` (so a passive wait policy does *not* remove the
cliff and nothing here touches the environment); with BLAS at 2 threads
inside OpenMP's per-sample loop a conv training step took 2.3-2.6 s against
0.19-0.32 s inside :func:`thread_limits`. On the MNIST conv shape the
per-sample layout ran within ~15% of one big 2-thread GEMM on a quiet machine
and about 2x faster on a loaded one (a 2-thread BLAS stalls whenever another
process takes a core).

Scope of the settings: Numba's and OpenMP's thread counts are per calling
Python thread (enter the context in the thread that runs the kernels); the
BLAS limit is process-wide, so concurrent contexts share it through a counter
and the first one to enter / last one to leave sets / restores it.

Fork safety: GNU OpenMP (libgomp) is not fork-safe; a ``fork()``-ed child of a
process that ran a parallel region hangs in its first parallel region. Use the
``spawn`` or ``forkserver`` start methods for ``multiprocessing`` (joblib's
default ``loky`` backend already spawns fresh workers; Dask workers are
separate processes too).

Importing this module is cheap: threadpoolctl is imported when the context is
first entered, and Numba only if it is already loaded (entering the context
costs a few microseconds once the BLAS libraries were scanned).
"""

import numbers
import os
import sys
import threading
from contextlib import contextmanager

#: Environment variables whose value caps the default thread count (set e.g. by
#: joblib/loky and Dask in their workers, or by a user sharing the machine).
LIMIT_ENV_VARS = ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS")

_blas_lock = threading.Lock()
_blas_state = {"depth": 0, "saved": [], "controllers": [], "scan_key": None}


def _env_limit(name):
    """The first positive integer of environment variable ``name`` (``"4,2"`` -> 4), or None."""
    value = os.environ.get(name, "").split(",")[0].strip()
    try:
        limit = int(value)
    except ValueError:
        return None
    return limit if limit > 0 else None


def available_cpus():
    """Number of CPUs this process may use: affinity mask, capped by explicit limits.

    Returns
    -------
    int
        ``len(os.sched_getaffinity(0))`` (``os.cpu_count()`` where affinity is
        unsupported), lowered to any positive ``OMP_NUM_THREADS`` or
        ``NUMBA_NUM_THREADS`` found in the environment.

    Examples
    --------
    >>> available_cpus() >= 1
    True
    """
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    slots = _dask_task_slots()
    if slots:   # tasks this Dask worker runs at once share its cores
        cpus = max(1, cpus // slots)
    for name in LIMIT_ENV_VARS:
        limit = _env_limit(name)
        if limit is not None:
            cpus = min(cpus, limit)
    return max(cpus, 1)


def _dask_task_slots():
    """Tasks a ``dask.distributed`` worker runs at once, when called from one of its tasks; else None.

    A nanny sets ``OMP_NUM_THREADS=1`` for its worker, but a worker without one
    (``dask worker --no-nanny``, in-process clusters) sets nothing, so each of
    its concurrent tasks would otherwise take every core. ``distributed`` is
    looked up, never imported: it is loaded only where Dask is in use.
    """
    distributed = sys.modules.get("distributed")
    if distributed is None:
        return None
    try:
        return int(distributed.get_worker().state.nthreads)
    except (ValueError, AttributeError):   # not inside a worker task
        return None


def resolve_n_threads(n_threads=None):
    """Validate ``n_threads`` and turn ``None`` into :func:`available_cpus`.

    Parameters
    ----------
    n_threads : int or None
        Positive number of threads, or None for every CPU this process may use.

    Returns
    -------
    int

    Raises
    ------
    ValueError
        If ``n_threads`` is not None and not a positive integer.

    Examples
    --------
    >>> resolve_n_threads(3)
    3
    >>> resolve_n_threads(None) == available_cpus()
    True
    """
    if n_threads is None:
        return available_cpus()
    if isinstance(n_threads, bool) or not isinstance(n_threads, numbers.Integral) or n_threads < 1:
        raise ValueError(f"n_threads must be a positive int or None; received n_threads={n_threads!r}")
    return int(n_threads)


def _numba():
    """Numba, with minicnn's threading layer chosen before its threads start."""
    from . import config

    config.configure_threading()
    import numba

    return numba


def _openmp():
    """The compiled OpenMP helper module, or None when the extensions are not built."""
    try:
        from .backend import _openmp
    except ImportError:
        return None
    return _openmp


def _blas_controllers():
    """threadpoolctl controllers of the loaded BLAS libraries, scanned once per set of loaded modules.

    Building a ``ThreadpoolController`` walks every loaded shared library
    (measured 1.6 ms per ``threadpool_limits`` call, more than a digits
    training step), so the scan is cached and repeated only when new modules
    were imported since (e.g. SciPy bringing its own OpenBLAS). Setting a
    library's thread count through its controller is one C call.
    """
    key = len(sys.modules)
    if _blas_state["scan_key"] != key:
        from threadpoolctl import ThreadpoolController

        controller = ThreadpoolController()
        _blas_state["controllers"] = [lc for lc in controller.lib_controllers if lc.user_api == "blas"]
        _blas_state["scan_key"] = len(sys.modules)
    return _blas_state["controllers"]


def _set_blas_threads(controller, n):
    """Set a BLAS library's process-wide thread count from whichever Python thread calls.

    threadpoolctl 3.8 lets only the first Python thread that limited OpenBLAS
    change it again while that thread lives; from any other thread (a Dask
    worker task, a web server's request thread) the limit is silently ignored
    and BLAS ran 2 threads inside our OpenMP kernels. This module already
    serializes BLAS limits process-wide (``_blas_lock`` and the depth count),
    so it calls the library's setter directly.
    """
    setter = getattr(controller, "_real_set_num_threads", None)
    (setter or controller.set_num_threads)(n)


def _enter_blas_single():
    with _blas_lock:
        if _blas_state["depth"] == 0:
            saved = []
            for lc in _blas_controllers():
                old = lc.get_num_threads()
                if old != 1:
                    _set_blas_threads(lc, 1)
                saved.append((lc, old))
            _blas_state["saved"] = saved
        _blas_state["depth"] += 1


def _exit_blas_single():
    with _blas_lock:
        _blas_state["depth"] -= 1
        if _blas_state["depth"] == 0:
            for lc, old in _blas_state["saved"]:
                if old != 1 and old is not None:
                    _set_blas_threads(lc, old)
            _blas_state["saved"] = []


@contextmanager
def thread_limits(n_threads=None):
    """Run the enclosed code with ``n_threads`` kernel threads and one BLAS thread.

    Sets Numba's thread count (clamped to ``NUMBA_NUM_THREADS``, its pool
    size; only when Numba is already imported, which a Numba backend is
    before its kernels can run), OpenMP's thread count (Cython kernels) and limits BLAS to one thread
    (the kernels call BLAS per sample from their own threads), then restores
    all three on exit, also when an exception escapes.

    Parameters
    ----------
    n_threads : int or None
        Threads for the batch-parallel kernels; None means
        :func:`available_cpus`.

    Yields
    ------
    int
        The resolved thread count.

    Examples
    --------
    >>> with thread_limits(1) as n:
    ...     n
    1
    """
    n = resolve_n_threads(n_threads)
    # Numba is only touched when something already imported it (a Numba backend
    # imports it when loaded): importing it here would cost ~0.3 s on the
    # cold-start path of a Cython-only ("auto") model.
    numba = _numba() if "numba" in sys.modules else None
    openmp = _openmp()
    old_numba = numba.get_num_threads() if numba is not None else None
    old_omp = openmp.get_max_threads() if openmp is not None else None
    if numba is not None:
        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    if openmp is not None:
        openmp.set_num_threads(n)
    _enter_blas_single()
    try:
        yield n
    finally:
        _exit_blas_single()
        if openmp is not None:
            openmp.set_num_threads(old_omp)
        if numba is not None:
            numba.set_num_threads(old_numba)
