"""What instruction set each backend's kernels run at, in one line for reports (``summary()``, ``minicnn bench``).

The compiled kernels run at the level :mod:`minicnn.backend.isa` chose when
they were imported; the Numba kernels at the CPU Numba compiles for (the host,
unless ``NUMBA_CPU_NAME`` says otherwise); the NumPy reference has no level of
its own.
"""

import os

from . import isa


def numba_target(environ=None):
    """The CPU the Numba kernels are compiled for: ``NUMBA_CPU_NAME`` when set, else the host's (LLVM's name).

    ``NUMBA_CPU_FEATURES``, when set, is appended (``"generic +avx2"``).
    Imports llvmlite (already loaded wherever a Numba kernel ran).

    Examples
    --------
    >>> numba_target({"NUMBA_CPU_NAME": "generic", "NUMBA_CPU_FEATURES": "+avx2,+fma"})
    'generic +avx2,+fma'
    """
    environ = os.environ if environ is None else environ
    name = environ.get("NUMBA_CPU_NAME")
    if not name:
        from llvmlite import binding

        name = f"host ({binding.get_host_cpu_name()})"
    features = environ.get("NUMBA_CPU_FEATURES")
    return f"{name} {features}" if features else name


def describe(backends):
    """One line naming the instruction set each of ``backends`` (backend names) runs at, for reports.

    ``"cython"``: the level of the compiled kernels (imports them); ``"numba"``: :func:`numba_target`;
    the NumPy reference has no level of its own.

    Examples
    --------
    >>> describe({"numpy"})
    'cpu level: none (NumPy)'
    """
    parts = []
    if "cython" in backends:
        try:
            from . import cython_kernels
        except ImportError:
            parts.append("cpu level: none (compiled kernels not built)")
        else:
            level = cython_kernels.CPU_LEVEL
            parts.append(f"cpu level: {level} ({isa.LEVEL_TABLE[level][2]}; {isa.ENV_VAR} forces a lower one)")
    if "numba" in backends:
        parts.append(f"numba target: {numba_target()}")
    return ", ".join(parts) or "cpu level: none (NumPy)"
