"""A depthwise-separable block's inference in one pass: the depthwise conv and the pointwise conv after it.

At inference a :class:`~minicnn.layers.DepthwiseConv2D` (BatchNorm and activation folded in, :mod:`.folding`)
followed by a pointwise :class:`~minicnn.layers.Conv2D` (1x1, stride 1, unpadded) run as
``separable_conv2d_bias_act_forward`` where it is compiled: each block of output rows computes its depthwise
rows into a per-thread buffer and multiplies them by the pointwise weights while they are in cache, so the
depthwise output never goes to memory (ONNX Runtime keeps the two nodes apart). Equal to the two layers' forwards
up to rounding (the kernel's module is built with fused multiply-add, ``isa.FMA_MODULES``).
"""

import numpy as np

from .conv import Conv2D, pointwise_kernel
from .depthwise import DepthwiseConv2D
from .folding import FoldedBatchNorm

#: The backend kernel (``kernels/pointwise.pyx``).
KERNEL = "separable_conv2d_bias_act_forward"
#: Activations the depthwise part may fuse in registers (identity, relu, leaky relu: the codes up to 2).
_MAX_DEPTHWISE_ACT = 2


def _layer(step):
    """The layer a step of an inference plan runs (a folded copy for a :class:`FoldedBatchNorm`)."""
    return step.folded() if isinstance(step, FoldedBatchNorm) else step


def _source(step):
    """The layer of the tree a step of an inference plan stands for (the conv of a :class:`FoldedBatchNorm`)."""
    return step.layer if isinstance(step, FoldedBatchNorm) else step


class SeparableInference:
    """Inference stand-in for a depthwise step then a pointwise step of a chain (layers or folded BatchNorms).

    Parameters
    ----------
    depthwise, pointwise
        Consecutive steps of an inference plan (see :func:`fuse_separable`).
    """

    def __init__(self, depthwise, pointwise):
        self.depthwise, self.pointwise = depthwise, pointwise

    @property
    def input_shape(self):
        """The depthwise step's per-sample input shape."""
        return _layer(self.depthwise).input_shape

    @property
    def output_shape(self):
        """The pointwise step's per-sample output shape."""
        return _layer(self.pointwise).output_shape

    def describe(self):
        """Both steps, as ``summary()`` shows them."""
        return f"{_layer(self.depthwise).describe()} + pointwise {_layer(self.pointwise).describe()}"

    def forward(self, x, training=False):
        """Both steps' inference forward, fused where the kernel is compiled and the shapes fit it."""
        if training:
            raise ValueError("SeparableInference runs inference passes only; received training=True")
        dw, pw = _layer(self.depthwise), _layer(self.pointwise)
        C = x.shape[-1]
        kernel = pointwise_kernel(dw.kernels, KERNEL)   # where the pointwise product beats the dense one
        if not (kernel is not None and x.dtype == np.float32 and dw.dtype == pw.dtype == np.float32
                and x.flags.c_contiguous and C % 16 == 0 and dw.act <= _MAX_DEPTHWISE_ACT):
            return pw.forward(dw.forward(x, False), False)
        y = pw._buffer("y", (x.shape[0], *pw.output_shape))
        kernel(y, x, dw.params["w"], dw.params.get("b", dw._zero_bias), dw.act, dw.alpha,
               pw.params["w"].reshape(C, pw.filters), pw.params.get("b", pw._zero_bias), pw.act, pw.alpha,
               *dw._geometry())
        return y


def fuse_separable(plan):
    """``plan`` (an inference plan of a chain) with each depthwise step followed by a pointwise conv step
    replaced by one :class:`SeparableInference`.

    Examples
    --------
    >>> import numpy as np
    >>> from minicnn.backend import get_backend
    >>> from minicnn.layers import Chain, Conv2D, DepthwiseConv2D
    >>> chain = Chain([DepthwiseConv2D(3, padding="same"), Conv2D(8, 1), Conv2D(8, 3)])
    >>> chain.build((6, 6, 16), dtype=np.float32, rng=np.random.default_rng(0), backend=get_backend("numpy"))
    (4, 4, 8)
    >>> [type(step).__name__ for step in fuse_separable(chain.layers)]
    ['SeparableInference', 'Conv2D']
    """
    out, i = [], 0
    while i < len(plan):
        step = plan[i]
        nxt = plan[i + 1] if i + 1 < len(plan) else None
        if (nxt is not None and isinstance(_source(step), DepthwiseConv2D) and isinstance(_source(nxt), Conv2D)
                and getattr(_source(nxt), "_pointwise", False)):   # set at build: 1x1, stride 1, unpadded
            out.append(SeparableInference(step, nxt))
            i += 2
        else:
            out.append(step)
            i += 1
    return out
