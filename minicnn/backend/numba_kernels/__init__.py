"""Numba kernels: same names, signatures and results as :mod:`minicnn.backend.reference`.

Read the contract in the ``reference`` package docstring. One module per op family,
named as the Cython sources ``kernels/*.pyx`` (``_*.py`` hold the helpers the
``kernels/_*.pxi`` files hold); this package re-exports every kernel. Batch loops are
``prange`` loops over samples (each thread writes its own slice, so results do
not depend on the thread count). Flags come from :mod:`minicnn.backend.jit`;
float32 and float64 each get their own compiled specialization on first call.

Convolution layout (measured, ``benchmarks/test_bench_kernels.py``): as in
the Cython backend, one GEMM per sample (``np.dot`` on contiguous 2-D arrays)
inside the ``prange`` next to its im2col/col2im, with BLAS held at one thread
by :func:`minicnn.threads.thread_limits`, so the kernel threads own the cores.
A single batch GEMM ran on that one BLAS thread and did not scale: 145.6 ms
for a MNIST conv fwd+bwd at both 1 and 2 threads. Outside ``thread_limits``
(BLAS at two threads inside two kernel threads) the per-sample layout
oversubscribes the cores: always call kernels inside ``thread_limits``.
Shallow products (``K = KH*KW*C < tuning.CONV_SMALL_K``, a first layer on 1-3 channels) are a
plain loop instead of BLAS, and the bias/activation epilogue runs per sample
while its output is in cache. The weight gradient sums fixed batch groups in
order: bit-identical for any thread count. Where ``np.dot`` cannot express a
call (beta = 1, a block of rows of a larger matrix), kernels call Numba's own
BLAS entry point ``numba_xxgemm`` (SciPy's BLAS, as ``np.dot``).
"""

from ..environment import configure_openmp_waiting

configure_openmp_waiting()   # before Numba's "omp" layer loads libgomp

# one line per op family (kernels/<family>.pyx)
from .augment import *  # noqa: E402,F401,F403
from .batchnorm import *  # noqa: E402,F401,F403
from .bias_act import *  # noqa: E402,F401,F403
from .blocked_conv import *  # noqa: E402,F401,F403
from .conv import *  # noqa: E402,F401,F403
from .conv_wgrad import *  # noqa: E402,F401,F403
from .depthwise import *  # noqa: E402,F401,F403
from .dropout import *  # noqa: E402,F401,F403
from .gemm import *  # noqa: E402,F401,F403
from .loss import *  # noqa: E402,F401,F403
from .optim import *  # noqa: E402,F401,F403
from .pointwise import *  # noqa: E402,F401,F403
from .pool import *  # noqa: E402,F401,F403
from .winograd import *  # noqa: E402,F401,F403
from .winograd16 import *  # noqa: E402,F401,F403

NAME = "numba"
