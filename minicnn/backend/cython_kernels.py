"""The compiled Cython kernels (built by ``setup.py`` from ``kernels/*.pyx``).

Importing this module fails with ImportError when the extensions were not built
(e.g. the source tree imported without ``pip install -e .``).

The kernels parallelize over the batch with OpenMP and call single-threaded
BLAS per sample; run them inside :func:`minicnn.threads.thread_limits` so that
OpenMP owns the cores and BLAS stays at one thread (see that module).
"""

from ._bias_act import bias_act_backward, bias_act_forward  # noqa: F401
from ._conv import (  # noqa: F401
    conv2d_backward_input,
    conv2d_backward_weight,
    conv2d_forward,
)
from ._dropout import (  # noqa: F401
    dropout_backward,
    dropout_forward,
    spatial_dropout_backward,
    spatial_dropout_forward,
)
from ._pool import (  # noqa: F401
    avgpool2d_backward,
    avgpool2d_forward,
    maxpool2d_backward,
    maxpool2d_forward,
)

NAME = "cython"
