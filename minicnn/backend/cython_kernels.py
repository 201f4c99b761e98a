"""The compiled Cython kernels (built by ``setup.py`` from ``kernels/*.pyx``).

Importing this module fails with ImportError when the extensions were not built
(e.g. the source tree imported without ``pip install -e .``).

The kernels parallelize over the batch with OpenMP and call single-threaded
BLAS per sample; run them inside :func:`minicnn.threads.thread_limits` so that
OpenMP owns the cores and BLAS stays at one thread (see that module).

Each kernel module is loaded in the build for the instruction-set level
chosen at import (:data:`CPU_LEVEL`: the CPU's highest, or the one
``MINICNN_CPU_LEVEL`` forces; see :mod:`minicnn.backend.isa`), falling back
per module to the highest lower level it was compiled at
(:data:`MODULE_LEVELS` says which). Importing raises
:class:`~minicnn.backend.isa.CPULevelError` when ``MINICNN_CPU_LEVEL`` asks
for a level this CPU or this build lacks.
"""

import importlib
import importlib.util
import os

from . import isa
from .environment import configure_openmp_waiting

configure_openmp_waiting()   # before the first compiled module loads libgomp

#: kernel module (``kernels/<name>.pyx`` stem) -> the kernels it gives this namespace.
EXPORTS = {
    "batchnorm": ("batchnorm_backward", "batchnorm_forward", "batchnorm_inference_forward"),
    "bias_act": ("bias_act_backward", "bias_act_forward"),
    "blocked_conv": ("conv2d_blocked_bias_act_forward",),
    "winograd16": ("conv2d_winograd16_bias_act_forward", "conv2d_winograd16_bias_add_act_forward"),
    "conv": ("conv2d_bias_act_forward", "conv2d_backward_input", "conv2d_backward_weight",
             "conv2d_direct_bias_act_forward", "conv2d_direct_bias_act_maxpool2_forward", "conv2d_forward"),
    "conv_wgrad": ("conv2d_backward_weight_from_input", "conv2d_winograd_backward_weight",
                   "conv_wgrad_workspace_length", "conv_winograd_wgrad_workspace_length"),
    "augment": ("augment_batch",),
    "depthwise": ("depthwise_conv2d_backward_input", "depthwise_conv2d_backward_weight",
                  "depthwise_conv2d_bias_act_forward", "depthwise_conv2d_forward",
                  "depthwise_conv2d_bias_act_backward", "depthwise_backward_workspace_length"),
    "dropout": ("dropout_backward", "dropout_forward", "spatial_dropout_backward", "spatial_dropout_forward"),
    "gemm": ("dense_bias_act_forward", "matmul"),
    "loss": ("softmax_normalize_rows", "softmax_shift_rows", "softmax_xent"),
    "optim": ("adam_update",),
    "pointwise": ("pointwise_conv2d_bias_act_forward", "separable_conv2d_bias_act_forward"),
    "pool": ("avgpool2d_backward", "avgpool2d_forward", "maxpool2d_backward", "maxpool2d_forward"),
    "winograd": ("conv2d_winograd_bias_act_forward", "conv2d_winograd_bias_act_maxpool2_forward",
                 "conv2d_winograd_bias_add_act_forward", "winograd_workspace_length", "winograd_weight_transform"),
}


def _is_built(module, level):
    return importlib.util.find_spec(isa.module_name(module, level)) is not None


def _built_levels():
    """The levels this build compiled: baseline, and each level with a module of :data:`isa.LEVEL_MODULES` built."""
    return tuple(level for level in isa.LEVELS
                 if level == "baseline" or any(_is_built(m, level) for m in isa.LEVEL_MODULES[level]))


#: The instruction-set level the compiled kernels run at in this process (:func:`minicnn.backend.isa.choose_level`).
CPU_LEVEL = isa.choose_level(built=_built_levels())


def _load(module):
    """Kernel module ``module`` built at the highest level not above :data:`CPU_LEVEL`, and that level.

    Each candidate is imported directly (a level not built is a ModuleNotFoundError naming that very module):
    looking each one up first (``find_spec``) searched the package directories twice, ~0.2 ms per module of a
    cold start.
    """
    top = isa.LEVELS.index(CPU_LEVEL)
    for level in reversed(isa.levels_of(module)):
        if isa.LEVELS.index(level) > top:
            continue
        name = isa.module_name(module, level)
        try:
            return importlib.import_module(name), level
        except ModuleNotFoundError as exc:
            if level == "baseline" or exc.name != name:   # baseline is always built; another module is missing
                raise
    raise AssertionError(module)   # pragma: no cover - baseline is always a candidate


_modules = {}
#: kernel module -> the level of the build loaded (at most :data:`CPU_LEVEL`).
MODULE_LEVELS = {}
for _name, _kernels in EXPORTS.items():
    _modules[_name], MODULE_LEVELS[_name] = _load(_name)
    globals().update({kernel: getattr(_modules[_name], kernel) for kernel in _kernels})
set_sgemm64 = _modules["conv"].set_sgemm64
set_wgrad_sgemm64 = _modules["conv_wgrad"].set_sgemm64

NAME = "cython"


def _numpy_sgemm64_address():
    """Address of ``sgemm`` in NumPy's bundled OpenBLAS (ILP64, ``scipy_sgemm_64_``), or 0.

    The wheels of NumPy 2.x ship ``numpy.libs/libscipy_openblas64_*.so``; it
    is already loaded by NumPy, so opening it again costs nothing. Anything
    else (another BLAS, a missing symbol) returns 0 and the kernels keep
    SciPy's BLAS.
    """
    import ctypes

    import numpy

    libs = os.path.join(os.path.dirname(os.path.dirname(numpy.__file__)), "numpy.libs")
    try:   # listed by hand: glob and fnmatch compile a regular expression (~1 ms of a cold start)
        names = sorted(n for n in os.listdir(libs) if n.startswith("libscipy_openblas64_") and n.endswith(".so"))
    except OSError:
        names = []
    for path in (os.path.join(libs, n) for n in names):
        try:
            lib = ctypes.CDLL(path)
            return ctypes.cast(lib.scipy_sgemm_64_, ctypes.c_void_p).value or 0
        except (OSError, AttributeError):
            continue
    return 0


if os.environ.get("MINICNN_NUMPY_SGEMM", "1") != "0":
    _address = _numpy_sgemm64_address()
    set_sgemm64(_address)
    set_wgrad_sgemm64(_address)
