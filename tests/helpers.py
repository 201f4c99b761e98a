"""Small helpers shared by several test modules."""

from minicnn.backend import get_backend


def importable_backends(names=("numpy", "numba", "cython", "auto")):
    """The backends among ``names`` that import on this machine (a missing build is skipped, not failed)."""
    found = []
    for name in names:
        try:
            get_backend(name)
        except ImportError:
            continue
        found.append(name)
    return found
