"""Where the Cython kernels' BLAS comes from: SciPy's, found without importing ``scipy.linalg``.

The kernels (``kernels/_blas.pxi``) call the LP64 Fortran BLAS routines that
``scipy.linalg.cython_blas`` wraps. Importing that module runs
``scipy/linalg/__init__.py`` first (Python imports a package before its
submodule), which pulls in SciPy's array-API layer, ``numpy.testing`` and
``numpy.f2py``: measured ~0.2 s of a 0.35 s cold start (a fresh process that
loads a model with :func:`minicnn.load_predictor` and predicts one sample).

So the routines are looked up in the shared library SciPy links for them:
``dlopen`` of ``cython_blas``'s extension file (no Python module is created,
nothing of SciPy runs) loads SciPy's BLAS as its dependency, and the symbols
SciPy's own wheels call (``scipy_sgemm_``, ...: the prefix of their bundled
OpenBLAS) are looked up there. These are the very functions
``scipy.linalg.cython_blas`` calls, so results are unchanged. Where the file
or a symbol is not found (SciPy built against another BLAS, other symbol
names), or where ``MINICNN_BLAS_LOOKUP=module`` asks for it, the routines come
from ``scipy.linalg.cython_blas``'s exported C functions instead (the old path:
same functions, slower import).
"""

import ctypes
import importlib.machinery
import importlib.util
import os

#: The BLAS routines the kernels call (``kernels/_blas.pxi``), LP64 Fortran interface.
ROUTINES = ("sgemm", "dgemm", "sgemv", "dgemv")

#: Symbol names tried in SciPy's BLAS library, ``{}`` being a routine: SciPy's wheels bundle OpenBLAS with the
#: ``scipy_`` prefix (``nm -D --undefined-only scipy/linalg/cython_blas*.so``).
LIBRARY_SYMBOLS = ("scipy_{}_",)

#: Environment variable choosing the lookup: ``library`` (default: the shared library, falling back to the
#: module) or ``module`` (always import ``scipy.linalg.cython_blas``).
LOOKUP_ENV_VAR = "MINICNN_BLAS_LOOKUP"
LOOKUPS = ("library", "module")

_state = {}


def blas_addresses():
    """Addresses of the BLAS routines the Cython kernels call (looked up once per process).

    Returns
    -------
    dict
        ``{"lookup": "library" or "module", "sgemm": int, "dgemm": int, "sgemv": int, "dgemv": int}``:
        where the addresses came from, and each routine's address (LP64: 32-bit ``int`` sizes).

    Raises
    ------
    RuntimeError
        If ``MINICNN_BLAS_LOOKUP`` is set to something other than ``library`` or ``module`` (an error of the
        environment, not of any argument: the backends report a ``ValueError`` at import as Numba's).
    ImportError
        If SciPy is not installed (the compiled kernels need its BLAS).

    Examples
    --------
    >>> found = blas_addresses()
    >>> found["lookup"] in LOOKUPS and all(found[name] > 0 for name in ROUTINES)
    True
    """
    if not _state:
        lookup = os.environ.get(LOOKUP_ENV_VAR, "library") or "library"
        if lookup not in LOOKUPS:
            raise RuntimeError(f"{LOOKUP_ENV_VAR} must be one of {LOOKUPS}; received {LOOKUP_ENV_VAR}={lookup!r}")
        found = _library_addresses() if lookup == "library" else None
        if found is None:
            lookup, found = "module", _module_addresses()
        _state.update(found, lookup=lookup)
    return dict(_state)


def _cython_blas_file():
    """Path of ``scipy/linalg/cython_blas.<suffix>`` found without importing SciPy, or None."""
    spec = importlib.util.find_spec("scipy")   # a top-level find_spec imports nothing
    for root in (spec.submodule_search_locations or []) if spec is not None else []:
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            path = os.path.join(root, "linalg", "cython_blas" + suffix)
            if os.path.isfile(path):
                return path
    return None


def _library_addresses():
    """The routines from the library ``cython_blas`` links, or None when any is not found."""
    path = _cython_blas_file()
    if path is None:
        return None
    try:
        library = ctypes.CDLL(path)   # dlopen: loads its BLAS dependency; runs no Python code
    except OSError:
        return None
    found = {}
    for routine in ROUTINES:
        for pattern in LIBRARY_SYMBOLS:
            try:
                found[routine] = ctypes.cast(getattr(library, pattern.format(routine)), ctypes.c_void_p).value
                break
            except AttributeError:
                continue
        if not found.get(routine):
            return None
    return found


def _module_addresses():
    """The routines exported by ``scipy.linalg.cython_blas`` (``__pyx_capi__`` capsules)."""
    from scipy.linalg import cython_blas

    get_name = ctypes.pythonapi.PyCapsule_GetName
    get_name.restype, get_name.argtypes = ctypes.c_char_p, [ctypes.py_object]
    get_pointer = ctypes.pythonapi.PyCapsule_GetPointer
    get_pointer.restype, get_pointer.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
    capsules = cython_blas.__pyx_capi__
    return {routine: get_pointer(capsules[routine], get_name(capsules[routine])) for routine in ROUTINES}
