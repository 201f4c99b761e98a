"""Small helpers shared by several test modules (one definition each)."""

import numpy as np

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


def kernel_module(backend):
    """The module holding ``backend``'s kernels, optional ones included ("numpy" or "cython"); skips if not built."""
    import importlib

    import pytest

    name = {"numpy": "minicnn.backend.reference", "cython": "minicnn.backend.cython_kernels"}[backend]
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        pytest.skip(f"backend {backend!r} not importable: {exc}")


def build_layer(layer, shape, backend, dtype=np.float64, seed=0):
    """``layer`` built for per-sample ``shape`` on ``backend`` (a name or a Backend), weights from ``seed``."""
    kernels = get_backend(backend) if isinstance(backend, str) else backend
    layer.build(shape, dtype=dtype, rng=np.random.default_rng(seed), backend=kernels)
    return layer

