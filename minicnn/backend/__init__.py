"""Kernel backends behind one contract.

``get_backend(name)`` returns a :class:`Backend`: a namespace holding one
function per kernel in :data:`KERNELS`, all with the signatures documented in
:mod:`minicnn.backend.reference`.

* ``"numpy"``: the plain-NumPy reference (always available, slow, readable).
* ``"numba"``: ``@njit`` kernels (:mod:`minicnn.backend.numba_kernels`).
* ``"cython"``: compiled kernels (:mod:`minicnn.backend.cython_kernels`).
* ``"auto"``: per kernel, the backend listed first in :data:`AUTO_PREFERENCE`
  that provides it (the order is justified by ``benchmarks/``).
"""

import importlib
from types import SimpleNamespace

KERNELS = (
    "conv2d_forward", "conv2d_backward_input", "conv2d_backward_weight",
    "maxpool2d_forward", "maxpool2d_backward",
    "avgpool2d_forward", "avgpool2d_backward",
    "dropout_forward", "dropout_backward",
    "spatial_dropout_forward", "spatial_dropout_backward",
    "bias_act_forward", "bias_act_backward",
    "matmul", "adam_update", "softmax_xent",
    "conv2d_bias_act_forward", "dense_bias_act_forward", "augment_batch",
    "depthwise_conv2d_forward", "depthwise_conv2d_bias_act_forward",
    "depthwise_conv2d_backward_input", "depthwise_conv2d_backward_weight", "depthwise_conv2d_bias_act_backward",
    "batchnorm_forward", "batchnorm_inference_forward", "batchnorm_backward",
)

#: Kernels a backend may lack; layers fall back to the contract kernels without them.
#: ``conv2d_winograd_bias_act_forward`` (NumPy reference + Cython): 3x3 stride-1 convs by Winograd
#: F(2x2, 3x3), 2.25x fewer multiply-adds (see :class:`minicnn.layers.Conv2D` for when it is used).
#: ``conv2d_backward_weight_from_input`` (NumPy reference + Cython): the weight gradient rebuilt from the
#: layer input per sample, so a Winograd training forward needs no im2col buffer.
#: ``conv2d_winograd_backward_weight``: the weight gradient of a 3x3 stride-1 conv by Winograd F(2x2, 3x3).
#: ``conv2d_winograd_bias_act_maxpool2_forward``: Winograd conv + 2x2 max-pool in one pass (inference).
#: ``conv2d_direct_bias_act_maxpool2_forward``: a shallow conv + 2x2 max-pool by a direct loop (inference).
#: ``conv2d_winograd_bias_add_act_forward``: the Winograd conv with a tensor added before the activation (a
#: residual block's second conv and its merge in one pass, inference).
#: ``conv2d_direct_bias_act_forward``: a shallow conv (small ``KH*KW*C``) by a direct loop, no im2col (inference).
#: ``winograd_weight_transform``: the weights of a 3x3 conv transformed for the Winograd forwards, which accept them
#: in place of the weights (a layer whose weights cannot change transforms them once, not per call).
#: ``pointwise_conv2d_bias_act_forward`` (NumPy reference + Cython): a 1x1 stride-1 conv's inference product in
#: register tiles, the epilogue fused (:class:`minicnn.layers.Conv2D`'s pointwise route, float32).
#: ``separable_conv2d_bias_act_forward`` (NumPy reference, Numba composition, Cython): a depthwise conv then a
#: pointwise one per block of output rows, the depthwise output kept in cache (inference, float32).
#: ``conv2d_blocked_bias_act_forward`` (NumPy reference, Numba composition, Cython): a conv's inference forward in
#: register tiles of output pixels x channels over the input rows, the epilogue fused (the strided 3x3 convs, the
#: 1x1 stride-2 projections and the RGB stems of the zoo nets, float32: :class:`minicnn.layers.Conv2D`).
#: ``conv2d_winograd16_bias_act_forward``, ``conv2d_winograd16_bias_add_act_forward`` (NumPy reference, Numba
#: composition, Cython): Winograd F(2x2, 3x3) inference for 16-channel multiples with each tile in registers (the
#: 16 -> 16 convs of the zoo's ResNet-8, float32: :class:`minicnn.layers.Conv2D`).
#: ``softmax_shift_rows``, ``softmax_normalize_rows`` (NumPy reference + Cython): the passes of the float64
#: prediction softmax around NumPy's ``exp`` (:func:`minicnn._predict.softmax`; equal bits on every backend).
OPTIONAL_KERNELS = ("conv2d_winograd_bias_act_forward", "conv2d_backward_weight_from_input",
                    "conv2d_winograd_backward_weight",
                    "conv2d_winograd_bias_act_maxpool2_forward", "conv2d_direct_bias_act_maxpool2_forward",
                    "softmax_shift_rows", "softmax_normalize_rows", "conv2d_winograd_bias_add_act_forward",
                    "conv2d_direct_bias_act_forward", "winograd_weight_transform",
                    "pointwise_conv2d_bias_act_forward", "separable_conv2d_bias_act_forward",
                    "conv2d_blocked_bias_act_forward", "conv2d_winograd16_bias_act_forward",
                    "conv2d_winograd16_bias_add_act_forward")

BACKEND_NAMES = ("numpy", "numba", "cython", "auto")

_MODULES = {
    "numpy": "minicnn.backend.reference",
    "numba": "minicnn.backend.numba_kernels",
    "cython": "minicnn.backend.cython_kernels",
}

# Per-kernel preference for "auto": first backend that provides the kernel wins.
#
# Measured (benchmarks/bench_auto_preference.py, reference-model shapes, medians of interleaved
# calls, 1 thread, load average ~4 on 2 cores, after the fixes of issue #5), microseconds
# numba / cython:
#   MNIST  conv2d_forward 32->64      68593 / 56916   conv 1->32   8662 / 5509
#          conv2d_backward_weight     63758 / 63620   backward_input 37509 / 36076
#          maxpool2d_forward           2289 /  2055   maxpool2d_backward  5623 / 3113
#          bias_act_forward            1160 /  1122   bias_act_backward   1791 / 2506
#          dropout_forward              287 /   413   spatial_dropout      165 /  194
#          matmul (3 dense GEMMs)     ~4200 / ~4400   adam_update (1.2M)   654 /  733
#   digits conv2d_forward 1->16         113 /    98   maxpool fwd/bwd  45 / 37, 69 / 28
#          dropout (16k)                6.2 /   8.7   adam (17k)         8.4 / 9.0
# Cython wins or ties on the kernels that dominate a step (conv, pooling, bias_act forward);
# Numba is ahead by 0.1-0.7 ms per MNIST step on bias_act_backward and dropout. Cython is
# kept for every kernel anyway: "auto" then never imports Numba (~0.3 s) nor JIT-compiles
# (~25 s cold, 0.9 s from cache), so a loaded model predicts from a cold start without it,
# and only one OpenMP runtime (libgomp via Cython) owns the cores during a step; mixing
# Numba's pool with it costs more than the 0.1-0.7 ms (spinning workers of one runtime
# stall the other's parallel regions on 2 cores).
AUTO_PREFERENCE = {kernel: ("cython", "numba", "numpy") for kernel in KERNELS}
# Winograd only where it is compiled: the NumPy reference is for testing, "auto" must not fall back to it.
AUTO_PREFERENCE["conv2d_winograd_bias_act_forward"] = ("cython",)
AUTO_PREFERENCE["conv2d_backward_weight_from_input"] = ("cython",)
AUTO_PREFERENCE["conv2d_winograd_backward_weight"] = ("cython",)
AUTO_PREFERENCE["conv2d_winograd_bias_act_maxpool2_forward"] = ("cython",)
AUTO_PREFERENCE["conv2d_direct_bias_act_maxpool2_forward"] = ("cython",)
AUTO_PREFERENCE["conv2d_winograd_bias_add_act_forward"] = ("cython",)
AUTO_PREFERENCE["conv2d_direct_bias_act_forward"] = ("cython",)
AUTO_PREFERENCE["winograd_weight_transform"] = ("cython",)
AUTO_PREFERENCE["pointwise_conv2d_bias_act_forward"] = ("cython",)
AUTO_PREFERENCE["separable_conv2d_bias_act_forward"] = ("cython",)
AUTO_PREFERENCE["conv2d_blocked_bias_act_forward"] = ("cython",)
AUTO_PREFERENCE["conv2d_winograd16_bias_act_forward"] = ("cython",)
AUTO_PREFERENCE["conv2d_winograd16_bias_add_act_forward"] = ("cython",)
AUTO_PREFERENCE["softmax_shift_rows"] = AUTO_PREFERENCE["softmax_normalize_rows"] = ("cython", "numpy")

_cache = {}


class Backend(SimpleNamespace):
    """A set of kernels; ``sources`` says which backend each came from.

    ``uses_numba`` is True when any kernel is a Numba one (whose thread pool
    must always be set, see :func:`minicnn.threads.kernel_thread_limits`).

    ``team_size()`` is the number of threads the kernels that take
    per-thread workspaces (the compiled ones) run with now, the number of
    slots to give those workspaces: ``omp_get_max_threads()``, which
    :func:`minicnn.threads.thread_limits` sets from ``n_threads``; 1 for
    backends without compiled kernels (their kernels take no per-thread
    workspace).

    Examples
    --------
    >>> get_backend("numpy").team_size()
    1
    """

    def __init__(self, **kernels):
        super().__init__(**kernels)
        self.uses_numba = "numba" in self.sources.values()
        if "team_size" not in kernels:
            self.team_size = _openmp_max_threads(self.sources)

    def __repr__(self):
        return f"Backend({self.name!r})"


def _one():
    return 1


def _openmp_max_threads(sources):
    """``omp_get_max_threads`` of the compiled kernels when ``sources`` use them, else a constant 1."""
    if "cython" in sources.values():
        try:
            from . import _openmp
        except ImportError:
            pass
        else:
            return _openmp.get_max_threads   # >= 1 (the OpenMP runtime's nthreads-var)
    return _one


def _load_module(name):
    try:
        return importlib.import_module(_MODULES[name])
    except ImportError:
        return None
    except ValueError as exc:   # Numba refuses its environment on import (e.g. NUMBA_NUM_THREADS=0)
        from .environment import environment_error

        raise environment_error("Numba", exc) from exc


def _resolve(name):
    if name != "auto":
        module = _load_module(name)
        if module is None:
            raise ImportError(f"backend={name!r} is not available: {_MODULES[name]} failed to import")
        missing = [k for k in KERNELS if not hasattr(module, k)]
        if missing:
            raise ImportError(f"backend={name!r} lacks kernels {missing}")
        present = [k for k in KERNELS + OPTIONAL_KERNELS if hasattr(module, k)]
        return Backend(name=name, sources={k: name for k in present}, **{k: getattr(module, k) for k in present})
    kernels, sources = {}, {}
    for kernel in KERNELS + OPTIONAL_KERNELS:
        for candidate in AUTO_PREFERENCE[kernel]:
            module = _load_module(candidate)
            if module is not None and hasattr(module, kernel):
                kernels[kernel], sources[kernel] = getattr(module, kernel), candidate
                break
    return Backend(name="auto", sources=sources, **kernels)


def get_backend(name="auto"):
    """Return the kernels of backend ``name``.

    Parameters
    ----------
    name : {"auto", "numpy", "numba", "cython"}

    Returns
    -------
    Backend
        Namespace with one attribute per kernel in :data:`KERNELS` (and per
        kernel of :data:`OPTIONAL_KERNELS` the backend has), plus ``name``
        and ``sources`` (which backend serves each kernel).

    Examples
    --------
    >>> get_backend("numpy").name
    'numpy'
    """
    if name not in BACKEND_NAMES:
        raise ValueError(f"backend must be one of {BACKEND_NAMES}; received backend={name!r}")
    if name not in _cache:
        _cache[name] = _resolve(name)
    return _cache[name]
