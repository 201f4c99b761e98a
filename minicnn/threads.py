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
``OMP_WAIT_POLICY=passive`` (so a passive wait policy does *not* remove that
cliff); with BLAS at 2 threads
inside OpenMP's per-sample loop a conv training step took 2.3-2.6 s against
0.19-0.32 s inside :func:`thread_limits`. On the MNIST conv shape the
per-sample layout ran within ~15% of one big 2-thread GEMM on a quiet machine
and about 2x faster on a loaded one (a 2-thread BLAS stalls whenever another
process takes a core).

Scope of the settings: Numba's and OpenMP's thread counts are per calling
Python thread (enter the context in the thread that runs the kernels); the
BLAS limit is process-wide, so concurrent contexts share it through a counter
and the first one to enter / last one to leave sets / restores it.

Contention: when the environment sets no OpenMP wait policy, minicnn shortens
libgomp's idle spinning before the runtime loads
(:func:`configure_openmp_waiting`), so a default team never trains slower than
one thread while another process keeps a core busy.

Fork safety: GNU OpenMP (libgomp) is not fork-safe; a ``fork()``-ed child of a
process that ran a parallel region hung in its first parallel region, and
Numba's ``omp`` layer kills such a child (SIGTERM). An ``os.register_at_fork``
hook therefore runs every kernel of a forked child on one thread (one thread
never touches the parent's thread team): ``multiprocessing``'s ``fork`` start
method (Python 3.11's default on Linux) and joblib's ``multiprocessing``
backend work, single-threaded. A child whose parent had launched Numba's
``omp`` thread pool cannot run Numba parallel kernels at all:
:func:`thread_limits` raises a ``RuntimeError`` naming the start method
instead of letting Numba kill the process. The ``spawn`` and ``forkserver``
start methods (and joblib's default ``loky`` backend, Dask workers) start
fresh processes and keep every thread.

Importing this module is cheap: threadpoolctl is imported when the context is
first entered, and Numba only if it is already loaded (entering the context
costs a few microseconds once the BLAS libraries were scanned).
"""

import numbers
import os
import sys
import threading
import time
from contextlib import nullcontext

from .backend.environment import (  # noqa: F401 (public here too)
    OPENMP_SPINCOUNT, THREAD_ENV_VARS, WAIT_POLICY_ENV_VARS, ThreadEnvironmentError, configure_openmp_waiting,
    environment_error)

#: Environment variables whose value caps the default thread count (set e.g. by
#: joblib/loky and Dask in their workers, or by a user sharing the machine).
LIMIT_ENV_VARS = ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS")

#: Upper bound of ``n_threads`` in the estimators: far above any useful count, far below the ~10**5 threads at
#: which GNU OpenMP fails to create its team and the process crashes (measured: n_threads=100000 segfaulted a
#: Cython fit).
MAX_THREADS = 1024

#: Elementary operations (units of ``Sequential.forward_work_per_sample``) a call must give each thread of its
#: team: a call doing ``work`` runs on at most ``work // MIN_WORK_PER_THREAD`` threads (at least 1). Measured on a
#: 16-CPU machine (benchmarks/RESULTS.md, "Scaling on a 16-core machine"): the digits model (~1.7 M per batch of 64)
#: trained fastest on 2 threads and predicted no faster past 1 (141k samples/s on 2 threads, 101k on 16); one MNIST
#: sample (~12 M) predicted fastest on 4-8 threads (469 us, 586 us on 16); a MNIST training batch (~1.5 G) gained up
#: to 16 threads.
MIN_WORK_PER_THREAD = 2 ** 21

_blas_lock = threading.Lock()
_openmp_state = {}
_blas_state = {"depth": 0, "saved": [], "controllers": [], "scan_key": None, "compiled": None}


def _env_limit(name):
    """The first positive integer of environment variable ``name`` (``"4,2"`` -> 4), or None."""
    value = _environ_get(name)
    if value is None:
        return None
    value = value.split(",")[0].strip()
    try:
        limit = int(value)
    except ValueError:
        return None
    return limit if limit > 0 else None


_environ_keys = {}


def _environ_get(name):
    """``os.environ.get(name)``, without its cost for an unset variable.

    ``os.environ.get`` of an unset name raises and catches a ``KeyError`` inside (~1.2 us here): reading the
    two limits of :data:`LIMIT_ENV_VARS` cost more than a one-sample prediction's forward pass on the digits
    model. The mapping's own store is read instead (its encoded key looked up once per ``os.environ`` object);
    an ``os.environ`` replaced by another mapping is asked directly.
    """
    environ = os.environ
    entry = _environ_keys.get(name)
    if entry is None or entry[0] is not environ:
        try:
            entry = (environ, environ._data, environ.encodekey(name), environ.decodevalue)
        except AttributeError:   # not os._Environ (e.g. a test's plain dict)
            return environ.get(name)
        _environ_keys[name] = entry
    value = entry[1].get(entry[2])
    return None if value is None else entry[3](value)


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
        cpus = _machine_cpus() or 1
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

    (:func:`thread_limits` then runs a ``None`` team on :func:`default_team_size`
    of them.)

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
    if type(n_threads) is int and n_threads >= 1:   # the usual case, without the ABC check (~1 us)
        return n_threads
    if isinstance(n_threads, bool) or not isinstance(n_threads, numbers.Integral) or n_threads < 1:
        raise ValueError(f"n_threads must be a positive int or None; received n_threads={n_threads!r}")
    return int(n_threads)


#: Seconds a reading of the machine's runnable-task count is reused by :func:`default_team_size`.
LOAD_SAMPLE_SECONDS = 0.5
_load_state = {"time": -1e9, "others": 0}


def _other_runnable_tasks():
    """Tasks of other processes running or waiting for a CPU now (``/proc/loadavg``), or 0 when unknown.

    The fourth field of ``/proc/loadavg`` counts the runnable tasks of the
    whole machine, this process's own threads included; those are taken off
    (:func:`_own_runnable_threads`): a thread pool of this process still
    spinning after its last parallel region (an OpenMP team of PyTorch's or
    of these kernels, for a few milliseconds) is not another process's load,
    and counting it made a 2-thread training step after a PyTorch step run
    on one thread every time (``benchmarks/bench_zoo.py``). Read at most every
    :data:`LOAD_SAMPLE_SECONDS` (a read costs a few microseconds per thread of
    this process; a one-sample prediction takes about ten). The teams of this
    process's other threads inside :func:`thread_limits` are added back by
    :func:`_team_of` (:func:`_teams_of_other_threads`).
    """
    now = time.monotonic()
    if now - _load_state["time"] >= LOAD_SAMPLE_SECONDS:
        try:
            running = int(_read_proc("/proc/loadavg").split()[3].split(b"/")[0])
            # the reading thread is one of the running tasks: with no other, this process's threads need no count
            others = max(0, running - _own_runnable_threads()) if running > 1 else 0
        except (OSError, ValueError, IndexError):
            others = 0
        _load_state.update(time=now, others=others)
    return _load_state["others"]


def _read_proc(path):
    """The bytes of a small ``/proc`` file (``os.read``: ~2 us, against ~20 us for ``open(path).read()``)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.read(fd, 4096)
    finally:
        os.close(fd)


def _own_runnable_threads():
    """Threads of this process running or waiting for a CPU (state ``R`` in ``/proc/self/task/*/stat``), >= 1.

    The reading thread is one of them; a thread that ends while it is read is skipped.
    """
    own = 0
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return 1
    for task in tasks:
        try:
            stat = _read_proc(f"/proc/self/task/{task}/stat")
        except OSError:
            continue
        state = stat[stat.rfind(b")") + 2:stat.rfind(b")") + 3]   # the field after the command name
        own += state == b"R"
    return max(1, own)


def default_team_size():
    """Threads for ``n_threads=None``: the available CPUs less those other processes keep busy (at least 1).

    A parallel kernel is as slow as its slowest thread: a worker sharing a
    core with a busy process runs at half speed or waits for a time slice, so
    a team of every CPU trained slower than one thread on a loaded machine
    (``benchmarks/bench_contention.py``). The busy count is the machine's
    runnable tasks besides this thread (:func:`_other_runnable_tasks`), and is
    only used when this process may run on every CPU of the machine (in a
    smaller CPU set, the machine-wide count says nothing about its CPUs).

    Returns
    -------
    int
        ``max(1, available_cpus() - other runnable tasks)``.

    Examples
    --------
    >>> 1 <= default_team_size() <= available_cpus()
    True
    """
    return _team_of(available_cpus())


def _team_of(cpus):
    """:func:`default_team_size` given :func:`available_cpus` (read once by :func:`thread_limits`)."""
    if cpus == 1 or cpus != (_machine_cpus() or cpus):
        return cpus
    return max(1, cpus - _other_runnable_tasks() - _teams_of_other_threads())


#: Thread ident -> team of the outermost :func:`thread_limits` that thread is in: the CPUs this process's own
#: concurrent calls keep busy (its runnable threads are left out of the machine's count, see
#: :func:`_other_runnable_tasks`, so two threads predicting at once must still see each other's teams).
_in_flight = {}


def _teams_of_other_threads():
    """Threads the kernel teams of this process's other threads inside :func:`thread_limits` use now."""
    if not _in_flight:   # the usual case: no other thread of this process is predicting or fitting
        return 0
    me = threading.get_ident()
    return sum(n for ident, n in list(_in_flight.items()) if ident != me)


def _busy_capped(n):
    """An explicit team of ``n`` for a step, lowered to the CPUs other processes leave free when any is busy.

    A kernel's threads split a step in fixed shares (results must not depend on the team), so a worker on a
    core that another process keeps busy finishes its share last: at best (a large step) at the speed of one
    thread, and a small step is all wait for a time slice. Measured on 2 cores with other processes busy
    (``benchmarks/bench_contention.py --inference``, ``benchmarks/compare.py``), 2 threads / 1 thread speed:
    one MNIST sample 0.06, a digits batch of 512 0.09, MNIST batches of 8 / 32 / 128 0.80 / 0.72 / 0.86 (and
    1.04-1.40 in a run where the load had just dropped), a MNIST training step 0.49. An explicit count above
    the CPUs on a quiet machine is kept.
    """
    cpus = available_cpus()
    free = _team_of(cpus)
    return min(n, free) if free < cpus else n


def _machine_cpus():
    """``os.cpu_count()``, read once: it reads ``/sys`` on every call (measured 12 us, more than a digits
    one-sample prediction) and the machine's CPU count does not change under a running process."""
    if "cpus" not in _load_state:
        _load_state["cpus"] = os.cpu_count()
    return _load_state["cpus"]


def _numba():
    """Numba, with minicnn's threading layer chosen before its threads start."""
    from .backend import jit

    configure_openmp_waiting()
    jit.configure_threading()
    import numba

    _openmp_state["numba"] = numba   # configured: thread_limits reuses it (~4 us per call otherwise)
    return numba


def _openmp():
    """The compiled OpenMP helper module, or None when the extensions are not built (looked up once)."""
    if "module" not in _openmp_state:
        configure_openmp_waiting()
        try:
            from .backend import _openmp as module
        except ImportError:
            module = None
        _openmp_state["module"] = module
    return _openmp_state["module"]


def _blas_controllers():
    """``(get_num_threads, set_num_threads)`` of each loaded BLAS library, scanned once per set of loaded modules.

    Building a ``ThreadpoolController`` walks every loaded shared library
    (measured 1.6 ms per ``threadpool_limits`` call, more than a digits
    training step), so the scan is cached and repeated only when new modules
    were imported since (e.g. SciPy bringing its own OpenBLAS). For OpenBLAS
    the pair is the library's own C functions, looked up once (going through
    the controller looked the symbols up again on every call: ~1 us per
    library per entry of :func:`thread_limits`).
    """
    key = len(sys.modules)
    if _blas_state["scan_key"] != key:
        found = _openblas_accessors()
        if found is None:
            from threadpoolctl import ThreadpoolController

            controller = ThreadpoolController()
            found = [_blas_accessors(lc) for lc in controller.lib_controllers if lc.user_api == "blas"]
        _blas_state["controllers"] = found
        _blas_state["scan_key"] = len(sys.modules)
    return _blas_state["controllers"]


#: Start of the file name of every BLAS library threadpoolctl controls (its controllers' ``filename_prefixes``;
#: ``tests/test_cold_start.py`` checks this list against threadpoolctl's).
BLAS_FILE_PREFIXES = ("libopenblas", "libblas", "libscipy_openblas", "openblas", "libblis", "libflexiblas",
                      "libmkl_rt", "mkl_rt")

#: OpenBLAS symbol names: ``{prefix}openblas_get_num_threads{suffix}`` (threadpoolctl's affixes: SciPy's and
#: NumPy's wheels bundle OpenBLAS as ``scipy_...`` / ``scipy_...64_``).
_OPENBLAS_AFFIXES = tuple((p, s) for p in ("", "scipy_") for s in ("", "64_", "_64"))


def _named_by(path, prefix, suffix):
    """Whether the file name of ``path`` carries the symbol affixes (``libscipy_openblas64_-....so``: scipy_, 64_)."""
    stem = os.path.basename(path).lower().split(".so")[0].split("-")[0]
    return stem.startswith(f"lib{prefix}openblas") and stem.endswith(f"openblas{suffix}")


def _openblas_accessors():
    """``(get, set)`` of every loaded BLAS library when all are OpenBLAS with a process-wide pool; else None.

    The usual case (NumPy's and SciPy's bundled OpenBLAS, nothing else) without threadpoolctl: importing it
    and building a ``ThreadpoolController`` (which inspects every loaded library) took ~6 ms of CPU (15-25 ms
    on a loaded machine) in the first threaded call of a fresh process, against ~1 ms for a whole MNIST
    one-sample prediction. The BLAS libraries are the mapped files named like one
    (:data:`BLAS_FILE_PREFIXES`, read from ``/proc/self/maps``); any that is not an OpenBLAS built with
    pthreads or without threads (``openblas_get_parallel`` 1 or 0), or a system without ``/proc``, gives None
    and :func:`_blas_controllers` asks threadpoolctl.
    """
    try:
        with open("/proc/self/maps") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    paths = []
    for line in lines:
        fields = line.split(None, 5)
        if len(fields) == 6 and os.path.basename(fields[5]).lower().startswith(BLAS_FILE_PREFIXES):
            if fields[5] not in paths:
                paths.append(fields[5])
    import ctypes

    found = []
    for path in paths:
        try:
            library = ctypes.CDLL(path, mode=getattr(os, "RTLD_NOLOAD", 0) | ctypes.RTLD_LOCAL)   # loaded already
        except OSError:
            return None
        for prefix, suffix in sorted(_OPENBLAS_AFFIXES, key=lambda a: not _named_by(path, *a)):
            get, set_, parallel = (getattr(library, f"{prefix}openblas_{name}{suffix}", None)
                                   for name in ("get_num_threads", "set_num_threads", "get_parallel"))
            if get is not None and set_ is not None and parallel is not None:
                break
        else:
            return None   # not an OpenBLAS (MKL, BLIS, FlexiBLAS, a reference BLAS): threadpoolctl knows them
        if parallel() not in (0, 1):   # OpenMP-threaded OpenBLAS: a pool per calling thread, as threadpoolctl handles
            return None
        found.append((get, set_))
    return found


def _blas_accessors(controller):
    """Getter and setter of a BLAS library's process-wide thread count."""
    symbol = getattr(controller, "_get_symbol", None)
    if (controller.internal_api == "openblas" and symbol is not None
            and getattr(controller, "threading_layer", None) != "openmp"):
        getter, setter = symbol("openblas_get_num_threads"), symbol("openblas_set_num_threads")
        if getter is not None and setter is not None:
            return getter, setter
    return controller.get_num_threads, lambda n: _set_blas_threads(controller, n)


def _set_blas_threads(controller, n):
    """Set a BLAS library's process-wide thread count from whichever Python thread calls.

    threadpoolctl 3.8 lets only the first Python thread that limited OpenBLAS
    change it again while that thread lives; from any other thread (a Dask
    worker task, a web server's request thread) the limit is silently ignored
    and BLAS ran 2 threads inside our OpenMP kernels. This module already
    serializes BLAS limits process-wide (``_blas_lock`` and the depth count),
    so it calls the library's setter directly (the path for BLAS libraries
    whose C functions :func:`_blas_accessors` does not look up itself).
    """
    setter = getattr(controller, "_real_set_num_threads", None)
    (setter or controller.set_num_threads)(n)


def _enter_blas_single():
    compiled = _blas_state["compiled"]
    if compiled is not None and compiled.blas_enter(len(sys.modules)):
        return   # every loaded BLAS an OpenBLAS whose C functions the compiled helper holds (_held_in_c)
    with _blas_lock:
        if _blas_state["depth"] == 0:
            controllers = _blas_controllers()
            compiled = _held_in_c(controllers)
            if compiled is not None and compiled.blas_enter(_blas_state["scan_key"]):
                return
            saved = []
            for get_threads, set_threads in controllers:
                old = get_threads()
                if old != 1:
                    set_threads(1)
                saved.append((set_threads, old))
            _blas_state["saved"] = saved
        _blas_state["depth"] += 1


def _exit_blas_single():
    compiled = _blas_state["compiled"]
    if compiled is not None and compiled.blas_exit():
        return
    with _blas_lock:
        _blas_state["depth"] -= 1
        if _blas_state["depth"] == 0:
            for set_threads, old in _blas_state["saved"]:
                if old != 1 and old is not None:
                    set_threads(old)
            _blas_state["saved"] = []


def _held_in_c(controllers):
    """The compiled helper holding ``controllers`` (OpenBLAS C functions) by address, or None (the Python path).

    Called with :data:`_blas_lock` held and no Python-path context open: the helper is (re)configured for the
    libraries of the last scan, keyed by its ``scan_key``; where any library is not reached through its C
    functions (threadpoolctl's controller of MKL, BLIS, an OpenMP OpenBLAS), it holds nothing, so its
    outermost entries refuse and every context takes the Python path (never both paths at once).
    """
    import ctypes

    openmp = _openmp()
    if openmp is None or not hasattr(openmp, "blas_enter"):
        return None
    _blas_state["compiled"] = openmp
    if _blas_state.get("python_for") is controllers:   # scanned before and found not all in C: unchanged
        return None
    _blas_state["python_for"] = None
    if controllers and all(isinstance(f, ctypes._CFuncPtr) for pair in controllers for f in pair):
        addresses = [tuple(ctypes.cast(f, ctypes.c_void_p).value for f in pair) for pair in controllers]
        if len(addresses) <= openmp.BLAS_MAX_LIBRARIES:
            openmp.blas_configure(addresses, _blas_state["scan_key"])
            return openmp
    openmp.blas_configure(None, -1)
    _blas_state["python_for"] = controllers
    return None


def team_for_work(n, work):
    """Threads worth running for a call doing ``work`` operations with at most ``n`` threads.

    Parameters
    ----------
    n : int
        The most threads (a resolved ``n_threads``).
    work : int or None
        The call's elementary operations (see :data:`MIN_WORK_PER_THREAD`); None: no cap.

    Returns
    -------
    int
        ``min(n, max(1, work // MIN_WORK_PER_THREAD))``.

    Examples
    --------
    >>> team_for_work(16, 3 * MIN_WORK_PER_THREAD), team_for_work(2, 10), team_for_work(4, None)
    (3, 1, 4)
    """
    if work is None:
        return n
    return max(1, min(n, int(work) // MIN_WORK_PER_THREAD))


def thread_limits(n_threads=None, work=None):
    """Run the enclosed code with at most ``n_threads`` kernel threads and one BLAS thread.

    Sets Numba's thread count (clamped to ``NUMBA_NUM_THREADS``, its pool
    size; only when Numba is already imported, which a Numba backend is
    before its kernels can run), OpenMP's thread count (Cython kernels) and limits BLAS to one thread
    (the kernels call BLAS per sample from their own threads), then restores
    all three on exit, also when an exception escapes.

    Parameters
    ----------
    n_threads : int or None
        Threads for the batch-parallel kernels; None means
        :func:`default_team_size` (the available CPUs that other processes
        leave free, read when the context is entered). With ``work`` given
        (a step of fit or predict), an explicit count is lowered the same
        way while other processes keep CPUs busy: a team sharing a busy core
        ran small steps up to 18x slower than one thread, and large ones up
        to 2x (:func:`_busy_capped`).
    work : int or None
        Elementary operations of one step inside the context (a forward pass:
        ``batch * network.forward_work_per_sample()``; a training step:
        :meth:`~minicnn.network.Sequential.training_work`): the team is capped
        at :func:`team_for_work` threads, because a step too small to share ran
        slower on more threads. None: no cap.

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
    return _ThreadLimits(n_threads, work)


class _ThreadLimits:
    """The context of :func:`thread_limits` (a class: a generator context costs ~1.5 us more per call).

    Everything is read and set when the context is entered, as a generator's body would: creating it checks
    nothing. A count equal to the one in force is not set again on entry. One object may be entered again while
    entered (nested, or from several threads at once): what each entry saved is kept per thread, last in first
    out, so every exit restores what its own entry found.
    """

    __slots__ = ("n_threads", "work", "_saved")

    def __init__(self, n_threads, work):
        self.n_threads, self.work = n_threads, work
        self._saved = {}   # thread ident -> the state its innermost open entry saved, and the enclosing entry

    def __enter__(self):
        n_threads, work = self.n_threads, self.work
        if n_threads is not None:
            n_threads = resolve_n_threads(n_threads)
        if n_threads == 1 or (work is not None and work < 2 * MIN_WORK_PER_THREAD):
            n = 1   # team_for_work caps any count at 1: the CPU counts and the machine's load cannot change it
        elif n_threads is None:
            n = team_for_work(_team_of(available_cpus()), work)
        else:
            n = team_for_work(_busy_capped(n_threads) if n_threads > 1 and work is not None else n_threads, work)
        n = _fork_safe_threads(n)
        # Numba is only touched when something already imported it (a Numba backend
        # imports it when loaded): importing it here would cost ~0.3 s on the
        # cold-start path of a Cython-only ("auto") model.
        numba = (_openmp_state.get("numba") or _numba()) if "numba" in sys.modules else None
        openmp = _openmp_state["module"] if "module" in _openmp_state else _openmp()
        old_numba = _numba_get_num_threads(numba) if numba is not None else None
        old_omp = openmp.get_max_threads() if openmp is not None else None
        if numba is not None:
            wanted = min(n, numba.config.NUMBA_NUM_THREADS)
            if wanted != old_numba:
                numba.set_num_threads(wanted)
        if openmp is not None and n != old_omp:
            openmp.set_num_threads(n)
        _enter_blas_single()
        me = threading.get_ident()
        outermost = me not in _in_flight   # a nested context (fit inside a caller's limits) is the same team
        if outermost:
            _in_flight[me] = n
        saved = self._saved   # this thread's entries, innermost first: (state, the entry it is nested in)
        saved[me] = ((numba, old_numba, openmp, old_omp, me if outermost else None), saved.get(me))
        return n

    def __exit__(self, *exc_info):
        me, saved = threading.get_ident(), self._saved
        (numba, old_numba, openmp, old_omp, outermost), enclosing = saved[me]
        if enclosing is None:
            del saved[me]
        else:
            saved[me] = enclosing
        if outermost is not None:
            _in_flight.pop(outermost, None)
        _exit_blas_single()
        if openmp is not None:
            openmp.set_num_threads(old_omp)
        if numba is not None:
            numba.set_num_threads(old_numba)
        return False


def kernel_thread_limits(n_threads, work, backend):
    """:func:`thread_limits` for a call doing ``work`` operations, or nothing when it cannot go parallel.

    Below the Cython kernels' parallel threshold every kernel runs on the
    calling thread whatever the OpenMP setting, and OpenBLAS runs products of
    fewer than 2^18 multiply-adds on one thread too (one-row products large
    enough for the Cython dense kernel's gemv, which OpenBLAS threads earlier,
    are never below it: ``kernels/gemm.pyx``), so setting and restoring
    three thread counts (~2-3 us) would only delay a one-sample prediction, whose
    forward pass on the digits model takes ~10 us. Numba kernels have no such
    threshold: a backend using any of them always gets the limits.

    Parameters
    ----------
    n_threads : int or None
        Validated as by :func:`resolve_n_threads`.
    work : int
        Upper bound of any kernel's elementary operations in the call
        (e.g. ``batch * network.forward_work_per_sample()``); also caps the
        team (:func:`team_for_work`).
    backend : Backend
        The kernels that will run (``backend.sources`` says where each comes from).

    Returns
    -------
    context manager

    Examples
    --------
    >>> from minicnn.backend import get_backend
    >>> with kernel_thread_limits(1, 10, get_backend("numpy")):
    ...     pass
    """
    if n_threads is not None and (type(n_threads) is not int or n_threads < 1):
        # None and a plain positive int need no check (resolving None reads the affinity mask and the
        # environment: ~5 us, half of a digits one-sample prediction, for a team that may not be needed)
        resolve_n_threads(n_threads)
    if work < _parallel_threshold() and not getattr(backend, "uses_numba", True):
        return _NO_LIMITS
    return thread_limits(n_threads, work)


_NO_LIMITS = nullcontext()


def _parallel_threshold():
    """The Cython kernels' parallel threshold (0 when they are not built: then nothing is skipped)."""
    threshold = _openmp_state.get("threshold")
    if threshold is None:
        openmp = _openmp()
        threshold = _openmp_state["threshold"] = openmp.PARALLEL_WORK_THRESHOLD if openmp is not None else 0
    return threshold


# ---------------------------------------------------------------------------- fork safety

_fork_state = {"child": False, "numba_layer": None}


def _numba_pool_layer():
    """Numba's threading layer if its thread pool was launched in this process, else None."""
    numba = sys.modules.get("numba")
    if numba is None:
        return None
    try:
        return numba.threading_layer()
    except ValueError:   # no parallel kernel ran: no pool yet
        return None


def _after_fork_in_child():
    """``os.register_at_fork`` hook: a forked child runs the OpenMP kernels on one thread."""
    openmp = _openmp_state.get("module")
    _fork_state.update(child=True, numba_layer=_numba_pool_layer())
    if openmp is not None:
        openmp.set_num_threads(1)   # also for kernels called outside thread_limits


def _fork_safe_threads(n):
    """``n``, or 1 in a forked child; a clear error where a forked child cannot run Numba's parallel kernels."""
    if not _fork_state["child"]:
        return n
    if _fork_state["numba_layer"] == "omp":
        raise RuntimeError(
            "this process was forked (multiprocessing start method 'fork', or joblib's 'multiprocessing' "
            "backend) after Numba had started its GNU OpenMP thread pool, which cannot run in a forked child "
            "(Numba would kill it). Use the 'spawn' or 'forkserver' start method "
            "(multiprocessing.get_context('spawn'); joblib's default 'loky' backend), or the 'cython' backend.")
    return 1


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


# ---------------------------------------------------------------------------- environment errors

def _numba_get_num_threads(numba):
    """``numba.get_num_threads()`` (which launches Numba's pool on first use); an environment error as one."""
    try:
        return numba.get_num_threads()
    except ValueError as exc:   # unknown or unloadable NUMBA_THREADING_LAYER, bad thread counts
        raise environment_error("Numba", exc) from exc
