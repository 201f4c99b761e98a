"""Numba flags and the one decorator every Numba kernel uses (flags live only here).

* ``FASTMATH`` stays off: kernels must match :mod:`minicnn.backend.reference`
  (fast-math reassociates sums and drops NaN semantics).
* ``PARALLEL`` turns ``prange`` loops into threads; ``CACHE`` stores compiled
  machine code on disk (from cache a kernel loads in milliseconds instead of
  compiling for seconds); ``BOUNDSCHECK`` is for debugging only.
* Threading layer: Numba's ``workqueue`` layer aborts the process when two
  Python threads call parallel kernels at once, so :func:`configure_threading`
  picks the first available layer of :data:`THREADING_LAYERS` (``omp``, then
  ``tbb``) unless the user set ``NUMBA_THREADING_LAYER`` explicitly. GNU
  OpenMP does not survive ``fork()``: use spawn/forkserver for worker processes.

Importing this module is cheap: ``numba`` is imported on the first use of
:func:`jit` or :func:`configure_threading`, and nothing is compiled until a
kernel is first called.
"""

import importlib
import os

FASTMATH = False
PARALLEL = True
CACHE = True
BOUNDSCHECK = False
#: NumPy semantics for float division by zero (inf/nan, no exception check in hot loops).
ERROR_MODEL = "numpy"

#: Thread-safe Numba threading layers, in order of preference.
THREADING_LAYERS = ("omp", "tbb")

_state = {"threading_layer": None}


def _layer_available(layer):
    """Whether Numba's threading-layer extension ``layer`` can be loaded."""
    try:
        importlib.import_module(f"numba.np.ufunc.{layer}pool")
    except Exception:  # ImportError, or an incompatible TBB raising at import
        return False
    return True


def configure_threading():
    """Choose Numba's threading layer (once, before any parallel kernel runs).

    An explicit ``NUMBA_THREADING_LAYER`` environment variable always wins.
    Otherwise the first available layer of :data:`THREADING_LAYERS` is set in
    ``numba.config.THREADING_LAYER``; if none is available Numba's default
    stays. Once Numba has launched its threads the layer can no longer change.

    Returns
    -------
    str
        The layer requested from Numba (``"default"`` when left to Numba).

    Examples
    --------
    >>> configure_threading() in ("omp", "tbb", "default", "workqueue", "safe", "threadsafe", "forksafe")
    True
    """
    if _state["threading_layer"] is None:
        import numba

        if os.environ.get("NUMBA_THREADING_LAYER"):
            layer = numba.config.THREADING_LAYER
        else:
            layer = next((name for name in THREADING_LAYERS if _layer_available(name)), "default")
            numba.config.THREADING_LAYER = layer
        _state["threading_layer"] = layer
    return _state["threading_layer"]


def jit(parallel=False, **options):
    """Decorator compiling a kernel with ``numba.njit`` and the flags of this module.

    Caching falls back to off when Numba finds no writable cache directory
    (e.g. a read-only install without ``NUMBA_CACHE_DIR``), where
    ``njit(cache=True)`` would otherwise fail at import with "no locator
    available".

    Parameters
    ----------
    parallel : bool, default=False
        Compile ``prange`` loops as parallel loops (only if :data:`PARALLEL`).
    **options
        Further ``numba.njit`` options (override the module flags).

    Returns
    -------
    callable
        A decorator turning a Python function into a Numba dispatcher.

    Examples
    --------
    >>> @jit()
    ... def add(a, b):
    ...     return a + b
    >>> add(1, 2)
    3
    """
    configure_threading()
    import numba

    flags = dict(fastmath=FASTMATH, boundscheck=BOUNDSCHECK, parallel=bool(parallel and PARALLEL),
                 nogil=True, cache=CACHE, error_model=ERROR_MODEL)
    flags.update(options)

    def decorate(func):
        try:
            return numba.njit(**flags)(func)
        except RuntimeError as exc:
            if not flags["cache"] or "no locator available" not in str(exc):
                raise
            return numba.njit(**{**flags, "cache": False})(func)

    return decorate


# ---------------------------------------------------------------------------- environment errors

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
