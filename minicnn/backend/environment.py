"""The environment of the thread runtimes (GNU OpenMP, Numba): what minicnn sets and how it reports bad settings.

Both are needed before a runtime starts, so the backends import this module
(it imports nothing of minicnn) before loading compiled kernels or Numba.
"""

import os


#: GNU OpenMP spin count minicnn sets when the environment sets no wait policy: an idle worker spins this
#: many iterations before it sleeps, instead of libgomp's default 300000. Measured with
#: ``benchmarks/bench_contention.py`` (MNIST training, Cython, one busy-loop process on 2 cores, machine
#: otherwise loaded too): n_threads=None / n_threads=1 = 0.54 with libgomp's default spin count, 0.86 with
#: OMP_WAIT_POLICY=active, 1.17 with this value, 1.26 with OMP_WAIT_POLICY=passive: spinning workers took
#: the core the busy process and the other worker needed. A short spin rather than passive waiting keeps
#: back-to-back parallel regions cheap on a quiet machine.
OPENMP_SPINCOUNT = "10000"

#: Environment variables by which a user already chose how OpenMP threads wait: then nothing is set.
WAIT_POLICY_ENV_VARS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")


def configure_openmp_waiting(environ=None):
    """Shorten GNU OpenMP's idle spinning before its runtime starts, unless the user chose a wait policy.

    libgomp reads ``GOMP_SPINCOUNT`` / ``OMP_WAIT_POLICY`` once, when it is
    loaded, so this runs before minicnn's compiled kernels (or Numba's ``omp``
    layer) load it; later calls change nothing. Sets
    ``GOMP_SPINCOUNT=`` :data:`OPENMP_SPINCOUNT` when neither variable of
    :data:`WAIT_POLICY_ENV_VARS` is set; an explicit setting always wins.
    Other libraries' OpenMP runtimes loaded later in the process (e.g.
    PyTorch's own copy of libgomp) read the same variable.

    Parameters
    ----------
    environ : mapping, optional
        The environment to update (``os.environ`` by default).

    Returns
    -------
    bool
        True when the spin count was set by this call.

    Examples
    --------
    >>> env = {"OMP_WAIT_POLICY": "active"}
    >>> configure_openmp_waiting(env), env
    (False, {'OMP_WAIT_POLICY': 'active'})
    >>> env = {}
    >>> configure_openmp_waiting(env), env == {"GOMP_SPINCOUNT": OPENMP_SPINCOUNT}
    (True, True)
    """
    environ = os.environ if environ is None else environ
    if any(environ.get(name) for name in WAIT_POLICY_ENV_VARS):
        return False
    environ["GOMP_SPINCOUNT"] = OPENMP_SPINCOUNT
    return True


#: Environment variables through which users configure the thread runtimes (named in environment errors).
THREAD_ENV_VARS = ("NUMBA_NUM_THREADS", "NUMBA_THREADING_LAYER", "NUMBA_DEFAULT_NUM_THREADS", "OMP_NUM_THREADS")


class ThreadEnvironmentError(RuntimeError):
    """A thread runtime refused this process's environment (e.g. ``NUMBA_NUM_THREADS=0``).

    A ``RuntimeError``, never a ``ValueError``: it is not an error in the
    arguments (network geometry, parameters) and is never reported as one.
    """


def environment_error(runtime, exc):
    """A :class:`ThreadEnvironmentError` for ``exc`` raised by ``runtime`` at start-up, naming the variables set.

    Examples
    --------
    >>> str(environment_error("Numba", ValueError("bad"))).startswith("Numba cannot start")
    True
    """
    found = ", ".join(f"{k}={os.environ[k]!r}" for k in THREAD_ENV_VARS if k in os.environ) or "none set"
    return ThreadEnvironmentError(
        f"{runtime} cannot start in this environment: {exc} (thread environment variables: {found}); "
        f"set each to a valid value (a positive integer of threads) or unset it")
