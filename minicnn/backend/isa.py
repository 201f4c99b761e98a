"""Instruction-set levels of the compiled kernels: what the build compiles at each level, and the level chosen at run time.

One build holds every level (one wheel is right on every x86-64 CPU):

============  ====================  ====================================================================
level         compiler target       CPU features required at run time (NumPy's names)
============  ====================  ====================================================================
``baseline``  x86-64 (SSE2)         none: every x86-64 CPU, and the only level of a non-x86 build
``avx2``      ``-march=x86-64-v3``  AVX, AVX2, FMA3, F16C, BMI, BMI2, LZCNT, MOVBE (and x86-64-v2's)
``avx512``    ``-march=x86-64-v4``  ``avx2``'s and AVX512F, AVX512CD, AVX512BW, AVX512DQ, AVX512VL
============  ====================  ====================================================================

Every ``kernels/<name>.pyx`` is compiled at ``baseline`` into
``minicnn.backend._<name>``; the modules of :data:`LEVEL_MODULES` are also
compiled at a higher level into ``minicnn.backend._<level>._<name>`` (only
those measured faster there, so the build stays short). At import,
:mod:`minicnn.backend.cython_kernels` loads, per module, the build of the
highest level not above the chosen one (:func:`module_name`).

The level is chosen once per process by :func:`choose_level`: the highest
level whose features the CPU reports (NumPy's run-time CPU detection, which
also checks that the operating system saves the vector registers), or the
level named by the environment variable ``MINICNN_CPU_LEVEL``
(``baseline``, ``avx2``, ``avx512`` or ``auto``), which may lower it (tests
run every level the machine has) and never raise it: a level the CPU lacks
is refused with :class:`CPULevelError`, naming the variable and the missing
features. Nothing here reads the building machine's CPU: the build compiles
every level whatever machine runs it.

Results are bit-identical across thread counts for a given machine, backend
and level. Between levels they may differ in the last bits where a module is
compiled with fused multiply-add (:data:`FMA_MODULES`); the comparisons with
the NumPy reference keep their tolerances at every level.

The Numba kernels are not concerned: Numba compiles them for the host CPU when
first called (``NUMBA_CPU_NAME`` / ``NUMBA_CPU_FEATURES`` choose another target,
e.g. ``NUMBA_CPU_NAME=generic`` for a cache shared between machines);
:func:`minicnn.backend.levels.numba_target` reports the target.

This module imports only the standard library (``setup.py`` loads it by path).
"""

import os

#: The levels, lowest first.
LEVELS = ("baseline", "avx2", "avx512")

#: The environment variable that forces a level (at most the CPU's).
ENV_VAR = "MINICNN_CPU_LEVEL"

_V2 = ("SSE3", "SSSE3", "SSE41", "SSE42", "POPCNT", "CX16", "LAHF")
_V3 = _V2 + ("AVX", "AVX2", "FMA3", "F16C", "BMI", "BMI2", "LZCNT", "MOVBE")
_V4 = _V3 + ("AVX512F", "AVX512CD", "AVX512BW", "AVX512DQ", "AVX512VL")

#: level -> (compiler flags, CPU features required, the psABI name of the level).
LEVEL_TABLE = {
    "baseline": (("-march=x86-64",), (), "x86-64"),
    "avx2": (("-march=x86-64-v3",), _V3, "x86-64-v3"),
    "avx512": (("-march=x86-64-v4",), _V4, "x86-64-v4"),
}

#: Modules (``kernels/<name>.pyx`` stems) also compiled at each level above ``baseline``: those measured
#: clearly faster there (``benchmarks/bench_cpu_levels.py``, 1 thread, medians; docs/CPU_LEVELS.md has the
#: table). At ``avx2``: the direct conv + pool (~270x on MNIST's first layer: its AVX path needs AVX), max-pool
#: forward (~30x), dropout (~4x), Winograd + pool (~2.8x), bias + activation backward (0.6-4x, erratic), Adam
#: (1.0-1.5x), the dense product of 1-16 rows on large weights (``kernels/stream_gemm.h``: its AVX path; 1.5-2.6x),
#: depthwise conv (forward, input and weight gradients 2-5x in cache, 1.5-3x out of cache: its 8-float vector
#: loops run as SSE pairs at baseline), BatchNorm (1.1-1.6x), the conv weight gradient from the input (its
#: Winograd transforms: 32x32x16->16, batch 64, 6.6 -> 2.9 ms). At ``avx512``: dropout (5.2-5.6x), bias +
#: activation backward (1.2-7.9x, erratic; faster than ``avx2`` in 4 of 5 runs), depthwise (1.0-1.2x over
#: ``avx2``; BatchNorm was not faster there) and the dense product of 8-16 rows (blocks of 8 rows, see
#: ``kernels/gemm.pyx``). Not listed (equal at every level: their time is BLAS's, which
#: dispatches on its own, or too small to matter): loss, augment, openmp. A module not listed at a
#: level runs the build of the highest lower level that lists it, else ``baseline``.
LEVEL_MODULES = {
    "avx2": ("batchnorm", "bias_act", "conv", "conv_wgrad", "depthwise", "dropout", "gemm", "optim", "pool",
             "pointwise", "winograd", "blocked_conv"),
    "avx512": ("bias_act", "depthwise", "dropout", "gemm", "pointwise", "blocked_conv", "winograd16"),
}

#: Modules compiled with fused multiply-add contraction (``-ffp-contract=fast``) at the levels that have
#: FMA; every other build keeps ``-ffp-contract=off`` (one rounding per operation, as the reference). The
#: pointwise conv's product (compute-bound: the multiply and the add cost two slots of the FMA pipes where a fused
#: one costs one) ran 1.2-1.6x faster contracted (``kernels/pointwise.pyx``); no other kernel fuses it or is
#: compared with it bit for bit. Not the others: the conv module contracted (at ``avx512``) ran the direct conv +
#: pool 1.4x faster on MNIST's first layer and 0.86x as fast on the 3-channel one, against ``avx2`` without
#: (medians, loaded machine), and the depthwise forward (bound by its loads) within 2% at batch 64: no clear gain,
#: while without contraction every fused kernel rounds exactly as the unfused kernels it is compared with bit for bit.
FMA_MODULES = ("pointwise", "blocked_conv", "winograd16")

#: Modules built only for an instruction-set extension on top of a level (the reduced-precision inference
#: kernels), as one extension of that level with the extension's flags, never at ``baseline`` nor for a
#: non-x86-64 target: module -> (level, extra compiler flags, CPU features required at run time (NumPy's
#: names), the feature's name in error messages). The level dispatch never loads them;
#: :mod:`minicnn.backend.lowp` loads one where the CPU reports its features and refuses elsewhere.
FEATURE_MODULES = {
    "qgemm": ("avx512", ("-mavx512vnni",), ("AVX512VNNI",), "avx512_vnni"),
    "bf16gemm": ("avx512", ("-mavx512bf16",), ("AVX512BF16",), "avx512_bf16"),
}


class CPULevelError(RuntimeError):
    """``MINICNN_CPU_LEVEL`` names an unknown level, or one this CPU or this build cannot run.

    A ``RuntimeError``: it is a property of the environment, not of any argument.
    """


def is_x86_64(platform_tag):
    """Whether a build for ``platform_tag`` (``sysconfig.get_platform()``) targets x86-64 (levels above baseline).

    Examples
    --------
    >>> is_x86_64("linux-x86_64"), is_x86_64("win-amd64"), is_x86_64("linux-aarch64")
    (True, True, False)
    >>> is_x86_64("macosx-11.0-universal2")
    False
    """
    return platform_tag.lower().endswith(("x86_64", "amd64"))


def compile_flags(level, module, x86_64=True):
    """Compiler flags selecting ``level`` for kernel module ``module`` (a ``kernels/*.pyx`` stem).

    ``baseline`` names its target explicitly on x86-64 (some compilers default to a higher one) and
    nothing elsewhere (``x86_64=False``: the compiler's default target).

    Examples
    --------
    >>> compile_flags("baseline", "conv")
    ['-march=x86-64', '-ffp-contract=off']
    >>> compile_flags("baseline", "conv", x86_64=False)
    ['-ffp-contract=off']
    >>> compile_flags("avx512", "dropout")
    ['-march=x86-64-v4', '-ffp-contract=off']
    """
    contract = "fast" if level != "baseline" and module in FMA_MODULES else "off"
    extra = FEATURE_MODULES[module][1] if module in FEATURE_MODULES else ()
    return [*(LEVEL_TABLE[level][0] if x86_64 else ()), *extra, f"-ffp-contract={contract}"]


def levels_of(module):
    """The levels ``module`` is compiled at, lowest first (``baseline`` first, except for :data:`FEATURE_MODULES`).

    Examples
    --------
    >>> levels_of("dropout")[0], levels_of("openmp"), levels_of("qgemm")
    ('baseline', ('baseline',), ('avx512',))
    """
    if module in FEATURE_MODULES:
        return (FEATURE_MODULES[module][0],)
    return tuple(level for level in LEVELS if level == "baseline" or module in LEVEL_MODULES[level])


def module_name(module, level):
    """The import name of kernel module ``module`` built at ``level``.

    Examples
    --------
    >>> module_name("conv", "baseline"), module_name("conv", "avx2")
    ('minicnn.backend._conv', 'minicnn.backend._avx2._conv')
    """
    if level == "baseline":
        return f"minicnn.backend._{module}"
    return f"minicnn.backend._{level}._{module}"


def cpu_features():
    """The CPU features the running machine reports: a set of NumPy's names (e.g. ``"AVX2"``).

    NumPy detects them at run time (CPUID, and the operating system's
    support for the wide registers); an empty set where NumPy does not say.
    """
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as features
    except ImportError:  # pragma: no cover - NumPy >= 2 always has it
        return set()
    return {name for name, present in features.items() if present}


def missing_features(level, features):
    """The features of ``level`` absent from ``features``, in table order.

    Examples
    --------
    >>> missing_features("avx2", {"AVX", "AVX2"})[:3]
    ('SSE3', 'SSSE3', 'SSE41')
    >>> missing_features("baseline", set())
    ()
    """
    return tuple(name for name in LEVEL_TABLE[level][1] if name not in features)


def choose_level(environ=None, features=None, built=LEVELS):
    """The level the compiled kernels run at in this process.

    Parameters
    ----------
    environ : mapping, optional
        The environment (``os.environ`` by default); ``MINICNN_CPU_LEVEL``
        in it forces a level, ``auto`` or unset chooses the highest.
    features : set of str, optional
        CPU features (NumPy's names; :func:`cpu_features` by default).
    built : sequence of str
        The levels this build compiled (``baseline`` only on non-x86).

    Returns
    -------
    str
        One of :data:`LEVELS`.

    Raises
    ------
    CPULevelError
        If ``MINICNN_CPU_LEVEL`` is not a level name, or names a level the CPU
        lacks features for, or one this build did not compile.

    Examples
    --------
    >>> choose_level({}, {"AVX512F"} | set(LEVEL_TABLE["avx2"][1]))
    'avx2'
    >>> choose_level({"MINICNN_CPU_LEVEL": "baseline"}, set(LEVEL_TABLE["avx512"][1]))
    'baseline'
    >>> choose_level({"MINICNN_CPU_LEVEL": "avx2"}, {"SSE3"})
    Traceback (most recent call last):
    ...
    minicnn.backend.isa.CPULevelError: MINICNN_CPU_LEVEL='avx2' needs CPU features this CPU lacks: SSE3 present, \
missing SSSE3, ..., AVX2, ...; set MINICNN_CPU_LEVEL to a lower level (baseline) or unset it
    """
    environ = os.environ if environ is None else environ
    features = cpu_features() if features is None else features
    runnable = [level for level in LEVELS if level in built and not missing_features(level, features)]
    value = environ.get(ENV_VAR, "").strip()
    if value in ("", "auto"):
        return runnable[-1]
    if value not in LEVELS:
        raise CPULevelError(f"{ENV_VAR} must be one of {LEVELS + ('auto',)}; received {ENV_VAR}={value!r}")
    if value not in built:
        raise CPULevelError(f"{ENV_VAR}={value!r}: this build has no kernels for level {value!r} (it has "
                            f"{', '.join(built)}); set {ENV_VAR} to one of those or unset it")
    missing = missing_features(value, features)
    if missing:
        present = [name for name in LEVEL_TABLE[value][1] if name in features]
        raise CPULevelError(
            f"{ENV_VAR}={value!r} needs CPU features this CPU lacks: "
            + (f"{', '.join(present)} present, " if present else "")
            + f"missing {', '.join(missing)}; set {ENV_VAR} to a lower level ({', '.join(runnable)}) or unset it")
    return value

