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

* Stale caches: Numba keys a cached kernel on its own source file only, yet a
  kernel's machine code also holds the ``@jit`` helpers it calls from other
  modules and the constants it reads (``tuning``). So that an edit of a helper
  (or an upgrade changing only helpers) never leaves old code running,
  :func:`refresh_cache_dir` drops the cached kernels of a cache directory when
  the digest of this package's sources (:func:`sources_digest`) differs from
  the one stamped there.

Importing this module is cheap: ``numba`` is imported on the first use of
:func:`jit` or :func:`configure_threading`, and nothing is compiled until a
kernel is first called.
"""

import hashlib
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

_state = {"threading_layer": None, "digest": None, "refreshed": set()}

#: The file stamping, in a Numba cache directory, the sources digest its cached kernels were built from.
STAMP_NAME = "minicnn-sources.stamp"


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


def sources_digest(root=None):
    """A digest of the name, size and modification time of every ``.py`` file under ``root``.

    Parameters
    ----------
    root : str, optional
        The folder to walk (``__pycache__`` folders skipped); this package, ``minicnn.backend``, by default:
        its Numba kernels, their helpers and the constants they compile in.

    Returns
    -------
    str
        A hexadecimal SHA-256 digest; it changes when any source file is edited, added, removed or replaced
        (the same file facts Numba keys its own cache on: size and modification time).
    """
    root = os.path.dirname(os.path.abspath(__file__)) if root is None else root
    digest = hashlib.sha256()
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = sorted(name for name in subfolders if name != "__pycache__")
        for name in sorted(files):
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                info = os.stat(path)
                digest.update(f"{os.path.relpath(path, root)}\0{info.st_size}\0{info.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def refresh_cache_dir(path, digest):
    """Drop the cached Numba kernels of ``path`` unless it is stamped with ``digest``; then stamp it.

    Parameters
    ----------
    path : str
        A Numba cache directory (``dispatcher._cache.cache_path``).
    digest : str
        The sources digest the kernels about to be compiled or loaded come from (:func:`sources_digest`).

    Returns
    -------
    bool
        Whether cached kernels were dropped (the stamp was missing or differed). A directory that cannot be
        read or written is left alone (Numba then compiles without caching there).
    """
    stamp = os.path.join(path, STAMP_NAME)
    try:
        with open(stamp, encoding="ascii") as file:
            if file.read().strip() == digest:
                return False
    except (OSError, UnicodeDecodeError):
        pass
    try:
        for name in os.listdir(path):
            if name.endswith((".nbi", ".nbc")):
                try:
                    os.remove(os.path.join(path, name))
                except FileNotFoundError:   # another process dropped it first
                    pass
        from ..files import write_text   # atomic: a reader sees the old stamp or the new one, whole

        write_text(stamp, digest + "\n", encoding="ascii")
    except OSError:
        return False
    return True


def _refresh_once(dispatcher, func):
    """Apply :func:`refresh_cache_dir` to the cache directory of a kernel of this package, once per process."""
    if not (getattr(func, "__module__", "") or "").startswith(__name__.rpartition(".")[0] + "."):
        return
    path = getattr(getattr(dispatcher, "_cache", None), "cache_path", None)
    if path is None or path in _state["refreshed"]:
        return
    if _state["digest"] is None:
        _state["digest"] = sources_digest()
    _state["refreshed"].add(path)
    if os.path.isdir(path):
        refresh_cache_dir(path, _state["digest"])


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
            dispatcher = numba.njit(**flags)(func)
            if flags["cache"]:
                _refresh_once(dispatcher, func)
            return dispatcher
        except RuntimeError as exc:
            if not flags["cache"] or "no locator available" not in str(exc):
                raise
            return numba.njit(**{**flags, "cache": False})(func)

    return decorate
