"""The compiled Cython kernels (built by ``setup.py`` from ``kernels/*.pyx``).

Importing this module fails with ImportError when the extensions were not built
(e.g. the source tree imported without ``pip install -e .``).

The kernels parallelize over the batch with OpenMP and call single-threaded
BLAS per sample; run them inside :func:`minicnn.threads.thread_limits` so that
OpenMP owns the cores and BLAS stays at one thread (see that module).
"""

import os

from .environment import configure_openmp_waiting

configure_openmp_waiting()   # before the first compiled module loads libgomp

from ._batchnorm import batchnorm_backward, batchnorm_forward, batchnorm_inference_forward  # noqa: F401,E402
from ._bias_act import bias_act_backward, bias_act_forward  # noqa: F401,E402

from ._conv import (  # noqa: F401
    conv2d_bias_act_forward,
    conv2d_backward_input,
    conv2d_backward_weight,
    conv2d_direct_bias_act_maxpool2_forward,
    conv2d_forward,
    set_sgemm64,
)
from ._conv_wgrad import (  # noqa: F401
    conv2d_backward_weight_from_input,
    conv_wgrad_workspace_length,
    set_sgemm64 as set_wgrad_sgemm64,
)
from ._augment import augment_batch  # noqa: F401
from ._depthwise import (  # noqa: F401
    depthwise_conv2d_backward_input, depthwise_conv2d_backward_weight, depthwise_conv2d_bias_act_forward,
    depthwise_conv2d_forward)
from ._dropout import (  # noqa: F401
    dropout_backward,
    dropout_forward,
    spatial_dropout_backward,
    spatial_dropout_forward,
)
from ._gemm import dense_bias_act_forward, matmul  # noqa: F401
from ._loss import softmax_normalize_rows, softmax_shift_rows, softmax_xent  # noqa: F401
from ._optim import adam_update  # noqa: F401
from ._pool import (  # noqa: F401
    avgpool2d_backward,
    avgpool2d_forward,
    maxpool2d_backward,
    maxpool2d_forward,
)
from ._winograd import (  # noqa: F401
    conv2d_winograd_bias_act_forward,
    conv2d_winograd_bias_act_maxpool2_forward,
    winograd_workspace_length,
)

NAME = "cython"


def _numpy_sgemm64_address():
    """Address of ``sgemm`` in NumPy's bundled OpenBLAS (ILP64, ``scipy_sgemm_64_``), or 0.

    The wheels of NumPy 2.x ship ``numpy.libs/libscipy_openblas64_*.so``; it
    is already loaded by NumPy, so opening it again costs nothing. Anything
    else (another BLAS, a missing symbol) returns 0 and the kernels keep
    SciPy's BLAS.
    """
    import ctypes
    import glob
    import os

    import numpy

    root = os.path.dirname(os.path.dirname(numpy.__file__))
    for path in sorted(glob.glob(os.path.join(root, "numpy.libs", "libscipy_openblas64_*.so"))):
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
