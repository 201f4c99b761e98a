"""The reduced-precision inference kernels of a precision, where this CPU and build can run them.

``int8`` runs ``kernels/qgemm.pyx`` (AVX512-VNNI), ``bf16`` runs ``kernels/bf16gemm.pyx`` (AVX512-BF16): each is
compiled only at the ``avx512`` level with its extension's flags (:data:`minicnn.backend.isa.FEATURE_MODULES`)
and loaded only where NumPy's run-time CPU detection reports the features, and where ``MINICNN_CPU_LEVEL``
does not force a level below ``avx512``. Elsewhere :func:`kernels` refuses with
:class:`UnsupportedPrecisionError` naming the missing feature. ``backend="numpy"`` gives the NumPy twins
(:mod:`minicnn.backend.reference.qgemm`, :mod:`minicnn.backend.reference.bf16gemm`) on any CPU: the same
results, slowly (for tests and for checking a model's accuracy on a machine without the instructions).
"""

import importlib

from . import isa

#: Reduced precision -> its kernel module (a ``kernels/<name>.pyx`` stem of :data:`isa.FEATURE_MODULES`).
MODULES = {"int8": "qgemm", "bf16": "bf16gemm"}


class UnsupportedPrecisionError(RuntimeError):
    """This CPU (or build, or ``MINICNN_CPU_LEVEL``) cannot run the kernels of a reduced precision.

    A ``RuntimeError``: a property of the machine, not of an argument.
    """


def missing(precision, features=None):
    """What this CPU lacks for ``precision``: the feature names (the extension's first), empty when it has all.

    Examples
    --------
    >>> missing("int8", set(isa.LEVEL_TABLE["avx512"][1]) | {"AVX512VNNI"})
    ()
    >>> missing("bf16", set(isa.LEVEL_TABLE["avx512"][1]))
    ('avx512_bf16',)
    >>> missing("int8", {"AVX2"})[:2]
    ('avx512_vnni', 'SSE3')
    """
    level, _, required, name = isa.FEATURE_MODULES[MODULES[precision]]
    features = isa.cpu_features() if features is None else features
    absent = [name] if any(f not in features for f in required) else []
    return tuple(absent + list(isa.missing_features(level, features)))


def kernels(precision, backend="auto", features=None, environ=None):
    """The kernel module of ``precision`` (``"int8"`` or ``"bf16"``) for ``backend``.

    Parameters
    ----------
    precision : {"int8", "bf16"}
    backend : {"auto", "cython", "numpy"}, default="auto"
        ``"numpy"``: the NumPy twins (any CPU). ``"auto"`` and ``"cython"``: the compiled kernels, refused
        where they cannot run (``"numba"`` is accepted as ``"auto"``: there are no Numba twins).
    features : set of str, optional
        CPU features (NumPy's names; :func:`minicnn.backend.isa.cpu_features` by default).
    environ : mapping, optional
        The environment (``MINICNN_CPU_LEVEL`` may force a level below ``avx512``).

    Returns
    -------
    module
        With the kernels of :mod:`minicnn.backend.reference.qgemm` (int8) or ``.bf16gemm`` (bf16).

    Raises
    ------
    UnsupportedPrecisionError
        If the CPU lacks a feature (named, e.g. ``avx512_vnni``), ``MINICNN_CPU_LEVEL`` forces a lower level,
        or this build did not compile the module (a non-x86-64 build).
    """
    family = MODULES[precision]
    if backend == "numpy":
        return importlib.import_module(f"minicnn.backend.reference.{family}")
    level = isa.FEATURE_MODULES[family][0]
    absent = missing(precision, features)
    if absent:
        raise UnsupportedPrecisionError(
            f"precision={precision!r} needs the CPU feature {absent[0]} (and the {level} level's), which this CPU "
            f"lacks: missing {', '.join(absent)}; predict in float32 (precision='float32'), or use "
            f"backend='numpy' to run the same arithmetic slowly")
    chosen = isa.choose_level(environ, features)
    if isa.LEVELS.index(chosen) < isa.LEVELS.index(level):
        raise UnsupportedPrecisionError(
            f"precision={precision!r} runs kernels of level {level!r}, and {isa.ENV_VAR}={chosen!r} forces a lower "
            f"one; unset {isa.ENV_VAR} (or set it to {level!r}) to use them")
    name = isa.module_name(family, level)
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise UnsupportedPrecisionError(f"precision={precision!r}: this build has no {name} ({exc}); rebuild "
                                        f"on an x86-64 target (python setup.py build_ext)") from exc
