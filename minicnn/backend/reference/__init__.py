"""Plain-NumPy reference kernels: the ground truth every fast backend is tested against.

The backend contract (shared by ``reference``, ``numba_kernels`` and
``cython_kernels``; same names, same signatures):

* Arguments are outputs first, then inputs, then sizes. Outputs are
  preallocated, C-contiguous arrays of the input dtype (float32 or float64);
  the kernel writes every element of each output (no caller zeroing needed).
* Image tensors are channels-last: ``x`` is ``(N, H, W, C)``; conv weights are
  ``(KH, KW, C, F)``. Output spatial sizes are taken from the output's shape;
  ``pt, pl`` are the top/left zero padding (bottom/right padding is whatever
  the output size implies).
* The conv workspace ``col`` is ``(N, Ho*Wo, KH*KW*C)``, columns ordered
  ``(kh, kw, c)`` to match ``w.reshape(KH*KW*C, F)``. ``conv2d_forward`` fills it
  and ``conv2d_backward_weight`` reads it; ``dcol`` is the same shape (the
  Cython kernel also accepts ``S < N`` per-thread slots ``(S, Ho*Wo, K)``
  and then uses at most ``S`` threads; its contents are scratch).
* Max-pool ``argmax`` is int64 ``(N, Ho, Wo, C)`` holding ``h * W + w`` of the
  winning input position (the first maximum in row-major window order).
  Avg-pool divides by the number of *valid* (non-padding) elements.
* Dropout kernels take flat 1-D arrays (element-wise) or ``(N, S, C)`` arrays
  (channel-wise, mask index ``n * C + c``), the two hash keys and the keep
  threshold of :mod:`minicnn.backend.hash_rng`, and a ``scale`` that is cast to
  the data dtype before multiplying. Backward regenerates the same mask.
* Bias+activation kernels work on 2-D ``(M, C)`` views; ``act`` is a code from
  :mod:`minicnn.backend.activation_codes` and ``alpha`` the leaky-relu slope.
  The backward computes the derivative from the *output* ``y``; ``y`` may alias
  ``x`` and ``dx`` may alias ``dy``.
* BatchNorm kernels work on 2-D ``(M, C)`` views and take a ``(B, 2, C)``
  float64 scratch ``partial``: the rows split into ``B`` contiguous blocks whose
  sums are added in block order (results depend on ``B``, never on threads).

One module per op family, named as the Cython sources ``kernels/*.pyx``
(``_im2col.py`` holds what ``kernels/_im2col.pxi`` holds); each opens with a
legend of its shape letters, and this package re-exports every kernel.
"""

# one line per op family (kernels/<family>.pyx)
from .augment import *  # noqa: F401,F403
from .batchnorm import *  # noqa: F401,F403
from .bias_act import *  # noqa: F401,F403
from .blocked_conv import *  # noqa: F401,F403
from .conv import *  # noqa: F401,F403
from .conv_wgrad import *  # noqa: F401,F403
from .depthwise import *  # noqa: F401,F403
from .dropout import *  # noqa: F401,F403
from .gemm import *  # noqa: F401,F403
from .loss import *  # noqa: F401,F403
from .optim import *  # noqa: F401,F403
from .pointwise import *  # noqa: F401,F403
from .pool import *  # noqa: F401,F403
from .winograd import *  # noqa: F401,F403
from .winograd16 import *  # noqa: F401,F403

NAME = "numpy"
