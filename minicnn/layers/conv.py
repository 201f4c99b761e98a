"""2-D convolution (channels-last), with the bias and activation fused in."""

import math

import numpy as np

from ..backend.activation_codes import CODES
from ..backend.tuning import (conv_wgrad_workspace_length, conv_winograd_wgrad_workspace_length,
                              winograd_workspace_length)
from .base import Layer, activation_code, glorot_or_he_uniform
from .geometry import as_pair, check_padding, window_geometry
from .window_limits import check_window


def _slots(layer, n):
    """Thread slots of a per-thread workspace for ``n`` samples: at most the team the kernels run with."""
    return min(n, layer.kernels.team_size())


def _team(layer):
    """Thread slots of a Winograd workspace: the whole team (with fewer samples than threads, the kernel
    splits each sample's tile blocks across the threads)."""
    return layer.kernels.team_size()


#: Fewest channels into a 3x3 stride-1 conv for which Winograd F(2x2, 3x3) is used: it lost to the direct
#: kernel at C = 1 (0.79-0.91x: digits and MNIST first layers) and C = 4, won from C = 6 up at 1 and 2
#: threads (1.37-1.51x at C = 8, 2.2x on the MNIST 32 -> 64 layer), ``benchmarks/bench_winograd.py``.
WINOGRAD_MIN_CHANNELS = 8
_WINOGRAD = "conv2d_winograd_bias_act_forward"
_WGRAD_FROM_INPUT = "conv2d_backward_weight_from_input"
_WINOGRAD_WGRAD = "conv2d_winograd_backward_weight"
#: Fewest input channels of a 3x3 stride-1 conv (on the Winograd forward) whose weight gradient runs by
#: Winograd F(2x2, 3x3) (``conv2d_winograd_backward_weight``) instead of im2col + GEMM from the input.
#: Measured (batch 64, 1 thread, minima of 21 interleaved calls, Cython at avx2): 32x32x8->16 2.33 -> 1.47 ms,
#: 32x32x16->16 4.42 -> 2.93, 16x16x16->16 0.94 -> 0.63, 16x16x32->32 3.36 -> 1.99, 8x8x64->64 3.20 -> 1.69
#: (``benchmarks/bench_conv_wgrad.py``); the baseline (SSE2) build lost at 16 channels (6.6 against 4.4 ms).
WINOGRAD_WGRAD_MIN_CHANNELS = WINOGRAD_MIN_CHANNELS
_WINOGRAD_POOL = "conv2d_winograd_bias_act_maxpool2_forward"
_DIRECT_POOL = "conv2d_direct_bias_act_maxpool2_forward"
_WINOGRAD_ADD = "conv2d_winograd_bias_add_act_forward"
_WINOGRAD_WEIGHTS = "winograd_weight_transform"
#: Largest inner size ``K = KH*KW*C`` for which a conv followed by a 2x2 max-pool runs, at inference, as the
#: direct conv + pool kernel (no im2col, no conv output): a first layer on 1-3 channels. Measured on the digits
#: conv (K = 9, 64 samples, 1 thread): conv + pool 90 us as two kernels (im2col + register-blocked product,
#: then max-pool with winners) against ~25 us fused (``benchmarks/profile_step.py``).
DIRECT_POOL_MAX_K = 27
#: Fewest channels of a shallow (``K <= DIRECT_POOL_MAX_K``) 3x3 stride-1 conv whose inference conv + 2x2
#: max-pool runs as Winograd + pool instead of the direct kernel: the direct kernel's fast path is for one
#: channel. Measured on the 3-channel first layer (3 -> 32, "same", 1 thread, Cython, medians of 11,
#: ``benchmarks/bench_cpu_levels.py`` shapes): direct / Winograd + pool 0.10 / 0.03 ms at 28 px batch 1,
#: 0.87 / 0.19 at batch 8, 18.4 / 5.1 at batch 64; 0.54 / 0.13 at 64 px batch 1, 12.3 / 0.98 at batch 8;
#: 2.2 / 0.46 at 128 px batch 1, 54 / 16 at batch 8 (im2col + BLAS + pool in between: 0.04-24 ms); on 2
#: channels 16.6 / 9.1 ms (28 px, batch 64) and 27 / 6.4 (64 px, batch 16).
WINOGRAD_POOL_MIN_CHANNELS = 2
_DIRECT = "conv2d_direct_bias_act_forward"
#: Most weights ``KH*KW*C*F`` of a conv whose inference forward (no max-pool after it) runs as the direct kernel:
#: taps read from the input rows, the epilogue in registers, no im2col columns (the RGB stems of the zoo nets, the
#: 1x1 stride-2 projections, the ResNet-style 16 -> 32 stride-2 3x3 conv; a pointwise conv keeps its one dense
#: product over the batch, as fast or faster inside the MobileNet-style net: 0.27 / 0.28, 0.22 / 0.21 and 0.40 /
#: 0.38 ms direct / dense for 16 -> 32, 32 -> 64 and 64 -> 64 at batch 64). The
#: direct kernel reloads every weight once per 4 output pixels: it wins while they stay in the L1 cache. Measured (``benchmarks/bench_conv_routes.py
#: --stems`` and the same kernels on other shapes, 1 thread, Cython ``avx2``, minima of 11-21 calls, load 8-9):
#: direct / im2col 0.89 / 1.72 ms for 64 x 32x32x3 -> 16 (27 x 16 weights), 0.24 / 0.39 at stride 2, 0.55 / 0.84
#: for 64 x 28x28x1 -> 32, 0.50 / 0.93 for 5x5 on 16x16x3 -> 16, 0.50 / 0.72 for 3x3 stride 2 8 -> 16 and 0.24 /
#: 0.33 for 16 -> 16 (144 x 16 = 2304 weights); 1x1 stride 2 16 -> 32 0.43 / 0.57; 1x1 64 -> 64 on 16x16 1.52 /
#: 1.88 (dense product 1.92); for 3x3 stride 2 16 -> 32 on 32x32 (4608 weights) 2.27-2.33 / 2.46-2.83 at batch 64
#: and 0.23 / 0.26 at batch 8 (ONNX Runtime's node 2.36 / 0.21); behind above (3x3 stride 2 32 -> 64, 18432:
#: 2.45-2.89 / 1.66-2.17; 1x1 64 -> 128, 8192: 0.23 / 0.20 for the dense product).
DIRECT_MAX_WEIGHTS = 4608
_IDENTITY = CODES["identity"]
#: The float32 inference product of a pointwise conv: register tiles of pixels x output channels, the weights read
#: in place, the epilogue fused (``kernels/pointwise_gemm.h``), where the dense product (SciPy's OpenBLAS sgemm,
#: in calls of at most 10^6 multiply-adds, then the epilogue per block) ran the MobileNet-style 1x1 convs in 1.04-1.31x
#: the time at batch 64 and 1.02-1.28x at batch 8 (``benchmarks/bench_pointwise.py``; ``kernels/pointwise.pyx`` has
#: the measurement).
POINTWISE_KERNEL = "pointwise_conv2d_bias_act_forward"
#: Levels whose build of the pointwise module the layers run: measured (same shapes, one thread, medians of 41,
#: ``MINICNN_CPU_LEVEL`` forced) at ``avx2`` it ran at 0.95-1.37x the dense product's speed (behind on 2 of 5
#: shapes; 0.58-1.25x before its tiles were kept out of line, ``kernels/pointwise_gemm.h``) and at ``baseline``
#: (GCC splits its vectors into SSE halves) at 1/20, while OpenBLAS dispatches on the CPU by itself.
POINTWISE_LEVELS = ("avx512",)


def pointwise_kernel(kernels, name=POINTWISE_KERNEL):
    """Kernel ``name`` of the compiled pointwise module where it runs at a level of :data:`POINTWISE_LEVELS`, else None."""
    if getattr(kernels, "sources", {}).get(name) != "cython":
        return None
    from ..backend import cython_kernels   # already imported: a kernel of the backend comes from it

    return getattr(kernels, name) if cython_kernels.MODULE_LEVELS.get("pointwise") in POINTWISE_LEVELS else None


#: The float32 inference forward of a conv on the register-blocked direct kernel (``kernels/direct_conv_blocked.h``:
#: tiles of output pixels x 2 vectors of filters in registers over the input rows, fused multiply-adds, the epilogue
#: fused) where the weights are few enough, there are at least a vector's worth of filters and the conv is neither
#: on the Winograd nor on the pointwise route. Measured (``benchmarks/bench_conv_routes.py --stems --rounds 11``, 1
#: thread, ``avx512``, batch 64, medians, load ~7 on 2 cores), blocked / direct / im2col ms: RGB stem 3 -> 16 on
#: 32x32 0.66 / 0.94 / 1.8+, at stride 2 0.18 / 0.24 / 0.42; 3x3 stride 2 16 -> 32 on 32x32 1.79 / 2.36 / 3.0+,
#: 32 -> 64 on 16x16 1.62 / 2.2+ / 2.26; 1x1 stride 2 16 -> 32 0.31 / 0.50 / 0.82 and 32 -> 64 0.19 / 0.24 / 0.31;
#: 3x3 stride 2 16 -> 16 0.85 / 1.22 / 2.29; 5x5 stride 2 16 -> 32 (12800 weights) 8.3 / 10.6 / 11.3; batch 8 the
#: same order (ONNX Runtime's one-node graphs in the same run: 1.20, 0.24, 2.5+, 2.05, 1.41, 0.47 ms). Behind: a
#: 4-pixel-wide output (3x3 stride 2 64 -> 128 on 8x8: 8.5 against 1.9 for im2col: every tile one pixel).
BLOCKED_KERNEL = "conv2d_blocked_bias_act_forward"
#: Levels whose build of the blocked module the layers run (``MINICNN_CPU_LEVEL`` forced, same benchmark): at
#: ``avx2`` (6-pixel tiles, one-pixel tails on 16- and 8-pixel rows) it lost to the direct kernel on the stride-2
#: convs (3x3 16 -> 32 2.8 / 2.3 ms minima, 32 -> 64 2.9 / 2.5) while still ahead on the stems (0.73 / 0.92).
BLOCKED_LEVELS = ("avx512",)
#: Fewest filters of a conv on the blocked route: below a vector of 16 floats its tiles are scalar.
BLOCKED_MIN_FILTERS = 16
#: Most weights ``KH*KW*C*F`` of a conv on the blocked route.
BLOCKED_MAX_WEIGHTS = 18432
#: Fewest output columns of a conv on the blocked route: a row narrower than a tile (8 pixels at ``avx512``) runs
#: one pixel at a time.
BLOCKED_MIN_WIDTH = 8


def blocked_kernel(kernels):
    """The compiled blocked conv where it runs at a level of :data:`BLOCKED_LEVELS`, else None."""
    if getattr(kernels, "sources", {}).get(BLOCKED_KERNEL) != "cython":
        return None
    from ..backend import cython_kernels   # already imported: a kernel of the backend comes from it

    return getattr(kernels, BLOCKED_KERNEL) if cython_kernels.MODULE_LEVELS.get("blocked_conv") in BLOCKED_LEVELS \
        else None


#: The float32 inference forward of a 3x3 stride-1 conv on the Winograd route with the tiles in registers
#: (``kernels/winograd16.h``: the input transform of a 4x4 tile of 16 channels in registers, 8 tiles' products side by
#: side per transformed position, the output transform, bias, added tensor and activation in registers), where its
#: weights come transformed (:meth:`Conv2D._winograd_weights`: read-only folded weights) and the channels and filters
#: are those of :data:`WINOGRAD16_SHAPES`. Measured by ``python benchmarks/bench_winograd16.py`` (one process,
#: interleaved, 15 rounds, min / median ms, ``avx512``; 2026-12-08 00:10 UTC, load ~5.5 on 2 cores; a quiet rerun at
#: 00:57 gave 16 -> 16 3.16 / 3.58 against 2.46 / 2.65 and 32 -> 32 1.90 / 2.06 against 1.49 / 1.61 at batch 64, 1
#: thread, ahead at 2 threads and batch 8 too: 32 -> 32 is the next shape to measure for the route), Winograd + 16
#: sgemm / registers: 16 -> 16 on 32x32 batch 64, 1 thread 3.12 / 3.32 against
#: 2.44 / 2.65 (+ add 3.48 / 7.5 against 2.89 / 3.05), 2 threads 3.98 / 8.25 against 3.48 / 4.42 (+ add 4.08 / 8.35
#: against 3.91 / 6.61); batch 8, 1 thread 0.339 / 0.384 against 0.220 / 0.232, 2 threads 0.183 / 0.252 against
#: 0.133 / 0.179. Behind: 64 -> 64 on 8x8 (1.62 against 2.59); 32 -> 32 on 16x16 ahead on 1 thread (2.07 / 2.34
#: against 1.72 / 2.12) but not on 2. The zoo's ResNet-8 inference (route on / off per call, interleaved, 21 and 61
#: rounds): batch 64 0.94x (1 thread) and 0.93x (2 threads) the time, batch 8 0.93x and 0.88x (medians).
WINOGRAD16_KERNEL = "conv2d_winograd16_bias_act_forward"
WINOGRAD16_ADD_KERNEL = "conv2d_winograd16_bias_add_act_forward"
#: Levels whose build of the module the layers run (below ``avx512`` its 16-float vectors are split).
WINOGRAD16_LEVELS = ("avx512",)
#: (input channels, filters) of the convs on the route: those measured faster at batch 8 and 64, 1 and 2 threads.
WINOGRAD16_SHAPES = ((16, 16),)


def winograd16_kernel(kernels, name=WINOGRAD16_KERNEL):
    """The compiled register-tile Winograd kernel ``name`` where it runs at a level of :data:`WINOGRAD16_LEVELS`,
    else None."""
    if getattr(kernels, "sources", {}).get(name) != "cython":
        return None
    from ..backend import cython_kernels   # already imported: a kernel of the backend comes from it

    return getattr(kernels, name) if cython_kernels.MODULE_LEVELS.get("winograd16") in WINOGRAD16_LEVELS else None


class _WindowConv(Layer):
    """Settings and output geometry shared by :class:`Conv2D` and the depthwise convolution."""

    def __init__(self, kernel_size, strides, padding, dilation, use_bias, activation, alpha):
        super().__init__()
        self.kernel_size = as_pair(kernel_size, "kernel_size")
        self.strides = as_pair(strides, "strides")
        self.dilation = as_pair(dilation, "dilation")
        self.padding = check_padding(padding)
        self.use_bias = bool(use_bias)
        self.activation, self.alpha = activation, alpha
        self.act = activation_code(activation, alpha)

    def _output_size(self, input_shape):
        """``(Ho, Wo)`` for per-sample ``input_shape``; sets the top/left padding ``pt``, ``pl``."""
        if len(input_shape) != 3:
            raise ValueError(f"{type(self).__name__} expects (height, width, channels) inputs; "
                             f"received input_shape={input_shape}")
        H, W, _ = input_shape
        (KH, KW), (sh, sw), (dh, dw) = self.kernel_size, self.strides, self.dilation
        pad_h, pad_w = (self.padding, self.padding) if isinstance(self.padding, str) else self.padding
        Ho, self.pt, _ = window_geometry(H, KH, sh, dh, pad_h)
        Wo, self.pl, _ = window_geometry(W, KW, sw, dw, pad_w)
        if Ho < 1 or Wo < 1:
            raise ValueError(f"{type(self).__name__} kernel_size={self.kernel_size} with dilation={self.dilation} "
                             f"does not fit input of height x width {H}x{W} with padding={self.padding!r}")
        check_window(self, input_shape, (Ho, Wo), getattr(self, "filters", input_shape[2]))   # depthwise: F = C
        return Ho, Wo

    def _geometry(self):
        return (*self.strides, self.pt, self.pl, *self.dilation)

    def _pre_activation_grad(self, dy):
        """``dz``, the gradient before the fused bias and activation (the bias gradient into ``grads["b"]``).

        Without a bias and with the identity (a conv before BatchNorm) ``dz`` is ``dy`` itself: no pass.
        """
        if not self.use_bias and self.act == _IDENTITY:
            return dy
        C = dy.shape[-1]
        dz = self._buffer("dz", dy.shape)
        db = self.grads["b"] if self.use_bias else self._buffer("db", (C,))
        self.kernels.bias_act_backward(dz.reshape(-1, C), db, dy.reshape(-1, C), self._y.reshape(-1, C),
                                       self.act, self.alpha)
        return dz


class Conv2D(_WindowConv):
    """2-D convolution over NHWC images: im2col + one matrix product per sample.

    A 3x3, stride-1, undilated conv with at least :data:`WINOGRAD_MIN_CHANNELS`
    input channels runs its inference forward by Winograd F(2x2, 3x3) (2.25x
    fewer multiply-adds; equal to the direct result up to float rounding),
    and with at least that many output channels its input gradient too (the
    gradient of a conv is the conv of ``dy`` with the flipped, transposed
    kernel). Its training forward is Winograd too when the backend can
    rebuild the weight gradient's columns from the input sample by sample
    (``conv2d_backward_weight_from_input``); otherwise it stays im2col, whose
    columns the weight gradient reads. At inference, such a conv followed
    by a 2x2 max-pool runs as one kernel (:meth:`fuses_with`). A conv with at
    most :data:`DIRECT_MAX_WEIGHTS` weights (an RGB stem, a small 1x1
    projection) runs its inference forward by the direct kernel
    (``conv2d_direct_bias_act_forward``: no im2col columns; the same bits as
    the im2col route where that route's product is the shallow loop,
    ``KH*KW*C < 32``, else equal up to rounding). Only backends that compile these kernels use them
    (``backend.sources``).

    Input shape
    -----------
    ``(N, H, W, C)``.

    Output shape
    ------------
    ``(N, Ho, Wo, filters)``: ``Ho = floor((H + pad_top + pad_bottom -
    dilation * (kernel - 1) - 1) / stride) + 1`` (``ceil(H / stride)`` with
    ``"same"``), likewise ``Wo``.

    Parameters
    ----------
    filters : int
        Number of output channels.
    kernel_size : int or (int, int), default=3
    strides : int or (int, int), default=1
    padding : {"valid", "same"} or int or (int, int), default="valid"
        ``"same"`` keeps ``ceil(size / stride)`` (TensorFlow convention).
    dilation : int or (int, int), default=1
    use_bias : bool, default=True
    activation : str, default="identity"
        Fused with the bias add: one pass over the output.
    alpha : float, default=0.01
        Negative slope of leaky_relu.

    Examples
    --------
    >>> import numpy as np
    >>> from minicnn.layers import Conv2D
    >>> from minicnn.backend import get_backend
    >>> conv = Conv2D(4, kernel_size=3, padding="same")
    >>> conv.build((8, 8, 1), dtype=np.float32, rng=np.random.default_rng(0),
    ...            backend=get_backend("numpy"))
    (8, 8, 4)
    """

    def __init__(self, filters, kernel_size=3, strides=1, padding="valid", dilation=1,
                 use_bias=True, activation="identity", alpha=0.01):
        if not (isinstance(filters, (int, np.integer)) and not isinstance(filters, bool) and filters >= 1):
            raise ValueError(f"filters must be a positive int; received filters={filters!r}")
        super().__init__(kernel_size, strides, padding, dilation, use_bias, activation, alpha)
        self.filters = int(filters)

    def _build(self, input_shape, rng):
        Ho, Wo = self._output_size(input_shape)
        C = input_shape[2]
        (KH, KW), (sh, sw), (dh, dw) = self.kernel_size, self.strides, self.dilation
        fan_in, fan_out = KH * KW * C, KH * KW * self.filters
        self.params["w"] = glorot_or_he_uniform(rng, (KH, KW, C, self.filters), fan_in, fan_out,
                                                self.activation, self.dtype)
        if self.use_bias:
            self.params["b"] = np.zeros(self.filters, dtype=self.dtype)
        self._zero_bias = np.zeros(self.filters, dtype=self.dtype)
        self._zero_input_bias = np.zeros(C, dtype=self.dtype)
        self.grads = {k: np.zeros(v.shape, v.dtype) for k, v in self.params.items()}   # untouched until used
        square3 = (KH, KW, sh, sw, dh, dw) == (3, 3, 1, 1, 1, 1)
        self._winograd_forward = square3 and C >= WINOGRAD_MIN_CHANNELS
        self._winograd_shallow_pool = square3 and C >= WINOGRAD_POOL_MIN_CHANNELS
        self._winograd_input_grad = (square3 and self.filters >= WINOGRAD_MIN_CHANNELS
                                     and self.pt <= 2 and self.pl <= 2)
        # a 1x1, stride-1, unpadded conv: its im2col columns are the input itself
        self._pointwise = (KH, KW, sh, sw, dh, dw, self.pt, self.pl) == (1, 1, 1, 1, 1, 1, 0, 0)
        # a shallow conv (an RGB stem): the direct kernel at inference, chosen by the shape only
        self._direct = (KH * KW * C * self.filters <= DIRECT_MAX_WEIGHTS and not self._winograd_forward
                        and not self._pointwise)
        self._blocked = (self.filters >= BLOCKED_MIN_FILTERS and KH * KW * C * self.filters <= BLOCKED_MAX_WEIGHTS
                         and Wo >= BLOCKED_MIN_WIDTH and not self._winograd_forward and not self._pointwise)
        return (Ho, Wo, self.filters)

    def _winograd_kernel(self, wanted):
        return getattr(self.kernels, _WINOGRAD, None) if wanted else None

    def _winograd16(self, x, y, name):
        """``(kernel, transformed weights)`` of the register-tile Winograd kernel ``name`` for this inference call
        (:data:`WINOGRAD16_KERNEL`), or None."""
        if (not self._winograd_forward or tuple(self.params["w"].shape[2:]) not in WINOGRAD16_SHAPES
                or not x.dtype == y.dtype == np.float32 or not x.flags.c_contiguous):
            return None
        kernel = winograd16_kernel(self.kernels, name)
        if kernel is None:
            return None
        u = self._winograd_weights()
        return (kernel, u) if u.shape[:2] == (4, 4) else None

    def _winograd_weights(self):
        """The weights for an inference Winograd kernel: their transform ``(4, 4, C, F)``, made once, where they are
        read-only arrays of their own (a BatchNorm-folded copy, :mod:`.folding`, whose weights are new arrays at each
        refold) and the backend has ``winograd_weight_transform``; else ``params["w"]`` (the kernel transforms it per call).

        The same bits either way; a third of a 64 -> 64 conv's call on one 8x8 image went to that transform.
        """
        w = self.params["w"]
        transform = getattr(self.kernels, _WINOGRAD_WEIGHTS, None)
        if w.flags.writeable or not w.flags.owndata or transform is None:   # (a read-only view may see changes)
            return w
        if self.__dict__.get("_winograd_u_of") is not w:
            u = np.empty((4, 4, *w.shape[2:]), w.dtype)
            transform(u, w)
            self._winograd_u, self._winograd_u_of = u, w
        return self._winograd_u

    def forward(self, x, training=False):
        N = x.shape[0]
        Ho, Wo, F = self.output_shape
        KH, KW, C, _ = self.params["w"].shape
        y = self._buffer("y", (N, Ho, Wo, F))
        winograd = self._winograd_kernel(self._winograd_forward)
        w16 = self._winograd16(x, y, WINOGRAD16_KERNEL) if winograd is not None and not training else None
        if w16 is not None:   # inference of a 16-channel conv with transformed weights: each tile in registers
            kernel, u = w16
            kernel(y, x, u, self.params.get("b", self._zero_bias), self.act, self.alpha, self.pt, self.pl)
            self._x_shape, self._y, self._col, self._x = x.shape, y, None, None
            return y
        if winograd is not None and (not training or hasattr(self.kernels, _WGRAD_FROM_INPUT)):
            H, W, _ = self.input_shape
            work = self._buffer("winograd", (_team(self), winograd_workspace_length(H, W, C, F, Ho, Wo)))
            winograd(y, x, self.params["w"] if training else self._winograd_weights(),
                     self.params.get("b", self._zero_bias), work, self.act, self.alpha, self.pt, self.pl)
            # training: the weight gradient rebuilds its columns from x (the previous layer's output buffer,
            # which nothing overwrites before this backward)
            self._x_shape, self._y, self._col, self._x = x.shape, y, None, x if training else None
            return y
        blocked = blocked_kernel(self.kernels) if getattr(self, "_blocked", False) and not training else None
        if blocked is not None and x.dtype == y.dtype == np.float32 and x.flags.c_contiguous:
            # inference of a conv with a vector of filters or more: register tiles over the input rows
            blocked(y, x, self.params["w"], self.params.get("b", self._zero_bias), self.act, self.alpha,
                    *self._geometry())
            self._x_shape, self._y, self._col, self._x = x.shape, y, None, None
            return y
        direct = getattr(self.kernels, _DIRECT, None) if getattr(self, "_direct", False) else None
        if not training and direct is not None and x.dtype == y.dtype and x.flags.c_contiguous:
            # inference of a conv with few weights: each pixel's taps read from x, the epilogue in registers (for
            # K < 32 the same bits as the im2col route below: the same taps summed in the same order)
            direct(y, x, self.params["w"], self.params.get("b", self._zero_bias), self.act, self.alpha,
                   *self._geometry())
            self._x_shape, self._y, self._col, self._x = x.shape, y, None, None
            return y
        if not training and getattr(self, "_pointwise", False) and x.dtype == y.dtype and x.flags.c_contiguous:
            # inference of a pointwise conv: one dense product over every pixel of the batch, no im2col copy
            # (MobileNet-style 1x1 convs: 0.5-0.7 ms per sample-by-sample im2col + sgemm at batch 64,
            # benchmarks/RESULTS.md)
            # (float32 where the register-tiled kernel runs: pointwise_kernel)
            product = pointwise_kernel(self.kernels) if y.dtype == np.float32 else None
            (product or self.kernels.dense_bias_act_forward)(y.reshape(N * Ho * Wo, F), x.reshape(N * Ho * Wo, C),
                                                             self.params["w"].reshape(C, F),
                                                             self.params.get("b", self._zero_bias), self.act,
                                                             self.alpha)
            self._x_shape, self._y, self._col, self._x = x.shape, y, None, None
            return y
        col = self._buffer("col", (N, Ho * Wo, KH * KW * C))
        self.kernels.conv2d_bias_act_forward(y, x, self.params["w"], self.params.get("b", self._zero_bias), col,
                                             self.act, self.alpha, *self._geometry())
        self._x_shape, self._y, self._col = x.shape, y, col
        return y

    def backward(self, dy):
        dz = self._pre_activation_grad(dy)
        if self._col is None:
            if getattr(self, "_x", None) is None:
                raise RuntimeError("Conv2D.backward needs the forward pass of the same batch with training=True "
                                   "first (an inference forward keeps nothing for the gradients)")
            self._weight_grad_from_input(dz)
        else:
            self.kernels.conv2d_backward_weight(self.grads["w"], dz, self._col)
        if not self.needs_input_grad:
            return None
        dx = self._buffer("dx", self._x_shape)
        winograd = self._winograd_kernel(self._winograd_input_grad)
        if winograd is not None:
            self._input_grad_winograd(winograd, dx, dz)
            return dx
        if self.kernel_size == (1, 1) and self.strides == (1, 1) and (self.pt, self.pl) == (0, 0):
            # pointwise: dx (N*H*W, C) = dz (N*H*W, F) @ w.T in one product, no columns and no col2im
            # (MobileNet's 1x1 convs, batch 64: 1.4-1.6x faster than per-sample GEMM + col2im, 1 thread)
            C, F = self.params["w"].shape[2:]
            self.kernels.matmul(dx.reshape(-1, C), dz.reshape(-1, F), self.params["w"].reshape(C, F), 0, 1)
            return dx
        N, Ho, Wo, _ = dz.shape
        P, K = Ho * Wo, math.prod(self.params["w"].shape[:3])
        if getattr(self.kernels, "sources", {}).get("conv2d_backward_input") == "cython":
            # per-thread slots instead of the whole batch (see kernels/conv.pyx)
            dcol = self._buffer("dcol", (_slots(self, N), P, K))
        else:
            dcol = self._buffer("dcol", (N, P, K))
        self.kernels.conv2d_backward_input(dx, dcol, dz, self.params["w"], *self._geometry())
        return dx

    def _weight_grad_from_input(self, dz):
        """``grads["w"]`` from the layer input kept by a Winograd training forward (no im2col columns).

        A 3x3 stride-1 conv with at least :data:`WINOGRAD_WGRAD_MIN_CHANNELS` input channels runs it by
        Winograd F(2x2, 3x3) too (``conv2d_winograd_backward_weight``), where the backend has it.
        """
        N, Ho, Wo, F = dz.shape
        H, W, C = self.input_shape
        KH, KW = self.kernel_size
        winograd = getattr(self.kernels, _WINOGRAD_WGRAD, None) if C >= WINOGRAD_WGRAD_MIN_CHANNELS else None
        if winograd is not None and self._winograd_forward:
            work = self._buffer("wgrad_winograd", (conv_winograd_wgrad_workspace_length(N, C, F, Ho, Wo,
                                                                                      _slots(self, N)),))
            winograd(self.grads["w"], dz, self._x, work, self.pt, self.pl)
            return
        work = self._buffer("wgrad", (conv_wgrad_workspace_length(N, H, W, C, KH, KW, F, Ho, Wo, _slots(self, N)),))
        getattr(self.kernels, _WGRAD_FROM_INPUT)(self.grads["w"], dz, self._x, work, *self._geometry())

    def fuses_with(self, following):
        """True when inference may run this conv and ``following`` (a layer) as one conv + max-pool kernel.

        ``following`` must be a 2x2, stride-2, unpadded max-pool (each Winograd
        tile is then one pool window) and this layer on the Winograd route, or
        shallow (``K = KH*KW*C <= DIRECT_POOL_MAX_K``: the direct kernel, or Winograd + pool
        for a 3x3 stride-1 conv on at least ``WINOGRAD_POOL_MIN_CHANNELS`` channels), of a
        backend that has the fused kernel. :class:`~minicnn.network.Sequential`
        asks when it plans its inference pass.
        """
        Ho, Wo, F = self.output_shape
        if not (getattr(following, "mode", None) == "max" and following.pool_size == (2, 2)
                and following.strides == (2, 2) and (following.pt, following.pl) == (0, 0)
                and following.output_shape == (Ho // 2, Wo // 2, F)):
            return False
        return self._pooled_kernel() is not None

    def _pooled_kernel(self):
        """The fused conv + 2x2 max-pool kernel of this layer's route, or None."""
        if self._winograd_forward:
            return getattr(self.kernels, _WINOGRAD_POOL, None)
        if math.prod(self.params["w"].shape[:3]) <= DIRECT_POOL_MAX_K:
            if self._winograd_shallow_pool:
                return getattr(self.kernels, _WINOGRAD_POOL, None) or getattr(self.kernels, _DIRECT_POOL, None)
            return getattr(self.kernels, _DIRECT_POOL, None)
        return None

    def forward_pooled(self, x):
        """Inference forward followed by a 2x2 max-pool (see :meth:`fuses_with`): the conv output is never stored.

        Winograd route of a conv whose forward is Winograd too (``C >= WINOGRAD_MIN_CHANNELS``):
        equal, bit for bit, to ``pool.forward(self.forward(x))`` on finite inputs
        (``max(f(v_i + b)) = f(max(v_i) + b)`` for the monotonic activations and the monotonic
        rounding of the bias add). The shallow routes are equal up to rounding: the direct kernel
        (one channel) sums the taps in the same order but skips padded ones, and a 3x3 stride-1
        conv on ``WINOGRAD_POOL_MIN_CHANNELS`` to 3 channels runs Winograd + pool while its
        forward runs im2col.
        """
        N = x.shape[0]
        H, W, C = self.input_shape
        Ho, Wo, F = self.output_shape
        y = self._buffer("y_pooled", (N, Ho // 2, Wo // 2, F))
        b = self.params.get("b", self._zero_bias)
        kernel = self._pooled_kernel()
        if kernel is getattr(self.kernels, _DIRECT_POOL, None):
            kernel(y, x, self.params["w"], b, self.act, self.alpha, *self._geometry())
            return y
        work = self._buffer("winograd", (_team(self), winograd_workspace_length(H, W, C, F, Ho, Wo)))
        kernel(y, x, self._winograd_weights(), b, work, self.act, self.alpha, self.pt, self.pl, Ho, Wo)
        return y

    def adds_skip(self):
        """True when inference may run this conv with a tensor added before its activation (:meth:`forward_add`).

        The Winograd route with an identity activation (the second conv of a residual
        block, BatchNorm folded), on a backend with ``conv2d_winograd_bias_add_act_forward``.
        """
        return (self._winograd_forward and self.act == _IDENTITY
                and getattr(self.kernels, _WINOGRAD_ADD, None) is not None)

    def forward_add(self, x, skip, act, alpha):
        """Inference ``act((conv(x) + b) + skip)`` in one pass (when :meth:`adds_skip`): a residual block's merge.

        ``skip`` has the output's shape and dtype (C-contiguous). Equal to this layer's
        forward followed by the add and the activation, up to the sign of a zero.
        """
        N = x.shape[0]
        H, W, C = self.input_shape
        Ho, Wo, F = self.output_shape
        y = self._buffer("y", (N, Ho, Wo, F))
        w16 = self._winograd16(x, y, WINOGRAD16_ADD_KERNEL) if skip.dtype == np.float32 else None
        if w16 is not None:
            kernel, u = w16
            kernel(y, x, u, self.params.get("b", self._zero_bias), skip, act, alpha, self.pt, self.pl)
            return y
        work = self._buffer("winograd", (_team(self), winograd_workspace_length(H, W, C, F, Ho, Wo)))
        getattr(self.kernels, _WINOGRAD_ADD)(y, x, self._winograd_weights(), self.params.get("b", self._zero_bias),
                                             skip, work, act, alpha, self.pt, self.pl)
        return y

    def _input_grad_winograd(self, winograd, dx, dz):
        """``dx`` = conv of ``dz`` (padded by 2 - pt, 2 - pl) with the kernel flipped and transposed."""
        H, W, C = self.input_shape
        Ho, Wo, F = self.output_shape
        flipped = self._buffer("w_flipped", (3, 3, F, C))
        np.copyto(flipped, self.params["w"][::-1, ::-1].transpose(0, 1, 3, 2))
        work = self._buffer("winograd_dx", (_team(self), winograd_workspace_length(Ho, Wo, F, C, H, W)))
        winograd(dx, dz, flipped, self._zero_input_bias, work, _IDENTITY, 0.0, 2 - self.pt, 2 - self.pl)

    def describe(self):
        KH, KW = self.kernel_size
        strides = "" if self.strides == (1, 1) else f", strides={self.strides}"
        dilation = "" if self.dilation == (1, 1) else f", dilation={self.dilation}"
        return f"{self.filters}, {KH}x{KW}{strides}{dilation}, padding={self.padding!r}, activation={self.activation!r}"
