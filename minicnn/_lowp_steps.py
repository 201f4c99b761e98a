"""The steps of a reduced-precision inference pass: conv and dense layers as int8 or bf16 products, the rest float32.

A :class:`Product` runs a :class:`~minicnn.layers.Conv2D` (its windows read in place from the encoded, padded
input; a 2x2 max-pool after it inside the same kernel) or a
:class:`~minicnn.layers.Dense` (a BatchNorm folded into either first) as one reduced-precision matrix product
with its bias and activation in the float32 epilogue; every other layer (pooling, flatten, dropout at
inference, composite blocks) runs its own float32 forward, except a flatten or an inverted dropout between two
int8 products: those are chained (:func:`chain_products`), the first writing its output quantized as the
second's uint8 input. A codec says how a precision encodes activations
and weights and which kernel multiplies them:

* :class:`Int8` (Jacob et al. 2018; ONNX Runtime's static quantization, U8S8): activations uint8 with a
  per-tensor scale and zero point from calibration, weights int8 symmetric per output channel
  (``scale = max|w| / 127``), products exact in int32, dequantized in float32.
* :class:`BF16`: activations and weights rounded to bfloat16 (round to nearest even), products accumulated
  in float32; no calibration.
"""

import math

import numpy as np

from .backend.activation_codes import IDENTITY, RELU
from .backend.reference.bias_act import bias_act_forward
from .layers import Conv2D, Dense, Dropout, Flatten
from .layers.folding import FoldedBatchNorm

#: Largest inner size of an int8 product: ``K * 255 * 127`` must stay below 2**31 (int32 accumulation).
INT8_MAX_K = (2**31 - 1) // (255 * 127)


def activation_range(values, calibration, percentile):
    """``(low, high)`` of a layer input over the calibration data, widened to hold 0 (zero stays exact).

    ``"max"``: the observed minimum and maximum (ONNX Runtime's MinMax calibrator); ``"percentile"``: the
    ``100 - percentile`` and ``percentile`` percentiles of every value (its Percentile calibrator, symmetric).
    ``values``: a list of float32 arrays (one per calibration batch).
    """
    if calibration == "max":
        low = min(float(v.min()) for v in values)
        high = max(float(v.max()) for v in values)
    else:
        flat = np.concatenate([v.ravel() for v in values])
        low, high = (float(q) for q in np.percentile(flat, [100.0 - percentile, percentile]))
    return min(low, 0.0), max(high, 0.0)


class Int8:
    """int8 codec: uint8 activations with a zero point, int8 per-channel weights, int32 products."""

    name, dtype = "int8", np.uint8

    def __init__(self, kernels):
        from .backend.reference import qgemm

        self.kernels, self.k_multiple, self._ref = kernels, qgemm.K_MULTIPLE, qgemm

    def prepare(self, w, b, x_range):
        """Quantized weights and the epilogue's constants for ``w (K, N)``, ``b (N,)`` and the input range."""
        low, high = x_range
        x_scale = (high - low) / 255.0 or 1.0
        zero_point = int(np.clip(round(-low / x_scale), 0, 255))
        w = w.astype(np.float64)
        w_scale = np.abs(w).max(axis=0) / 127.0
        w_scale[w_scale == 0] = 1.0
        wq = np.clip(np.rint(w / w_scale), -127, 127).astype(np.int8)
        return {"packed": self._ref.pack_int8(wq), "zero_point": zero_point, "w_scale": w_scale,
                "inv_scale": np.float32(1.0 / x_scale), "x_scale": x_scale,
                "zcorr": (zero_point * wq.sum(axis=0, dtype=np.int64)).astype(np.int32),
                "scale": (x_scale * w_scale).astype(np.float32), "bias": b.astype(np.float32)}

    def encode(self, out, x, state):
        self.kernels.quantize_u8(out, x, state["inv_scale"], state["zero_point"])

    def conv_channels(self, channels):
        """Channels of the padded input an in-place conv reads: a multiple of 4 (one 4-byte group per tap)."""
        return -(-channels // 4) * 4

    def pad_input(self, xp, x, state, pt, pl):
        self.kernels.quantize_pad_u8(xp, x, state["inv_scale"], state["zero_point"], pt, pl)

    def pad_rows4(self, xp, x, state, pt, pl):
        """:meth:`pad_input` of a one-channel image, each pixel with its next 3 (:func:`rows4`)."""
        self.kernels.quantize_pad_rows4_u8(xp, x, state["inv_scale"], state["zero_point"], pt, pl)

    def conv(self, y, xp, state, act, *geometry):
        self.kernels.qconv_u8s8_bias_act(y, xp, state["packed"], state["zcorr"], state["scale"], state["bias"], act,
                                         *geometry)

    def product(self, y, a, state, act):
        self.kernels.qgemm_u8s8_bias_act(y, a, state["packed"], state["zcorr"], state["scale"], state["bias"], act)

    def conv_requant(self, q, xp, state, act, target, pt, pl, *geometry):
        """:meth:`conv` quantized as the input of the layer whose state is ``target``, into ``q``."""
        self.kernels.qconv_u8s8_requant(q, xp, state["packed"], state["zcorr"], state["scale"], state["bias"], act,
                                        target["inv_scale"], target["zero_point"], pt, pl, *geometry)

    def product_requant(self, q, a, state, act, target):
        """:meth:`product` quantized as the input of the layer whose state is ``target``, into ``q``."""
        self.kernels.qgemm_u8s8_requant(q, a, state["packed"], state["zcorr"], state["scale"], state["bias"], act,
                                        target["inv_scale"], target["zero_point"])


class BF16:
    """bf16 codec: activations and weights rounded to bfloat16, float32 products."""

    name, dtype = "bf16", np.uint16

    def __init__(self, kernels):
        from .backend.reference import bf16gemm

        self.kernels, self.k_multiple, self._ref = kernels, bf16gemm.K_MULTIPLE, bf16gemm

    def prepare(self, w, b, x_range):
        return {"packed": self._ref.pack_bf16(self._ref.bf16_bits(w.astype(np.float32))),
                "bias": b.astype(np.float32)}

    def encode(self, out, x, state):
        self.kernels.to_bf16(out, x)

    def conv_channels(self, channels):
        return -(-channels // 2) * 2

    def pad_input(self, xp, x, state, pt, pl):
        self.kernels.to_bf16_pad(xp, x, pt, pl)

    def conv(self, y, xp, state, act, *geometry):
        self.kernels.conv_bf16_bias_act(y, xp, state["packed"], state["bias"], act, *geometry)

    def product(self, y, a, state, act):
        self.kernels.gemm_bf16_bias_act(y, a, state["packed"], state["bias"], act)


def product_layer(layer):
    """The Conv2D or Dense a reduced-precision product runs for ``layer`` (a BatchNorm folded in), or None."""
    if isinstance(layer, FoldedBatchNorm):
        layer = layer.folded()
    return layer if isinstance(layer, (Conv2D, Dense)) else None


def fusable_pool(layer, following):
    """Whether ``following`` is a 2x2 stride-2 unpadded max-pool of conv ``layer``'s whole output (floor)."""
    Ho, Wo, F = layer.output_shape
    return (getattr(following, "mode", None) == "max" and following.pool_size == (2, 2)
            and following.strides == (2, 2) and (following.pt, following.pl) == (0, 0)
            and following.output_shape == (Ho // 2, Wo // 2, F))


def rows4(layer, codec):
    """Whether an int8 conv reads each kernel row as one 4-byte group (one input channel, up to 4 taps a row, no
    column dilation): a 1-wide kernel over the pixel and its next 3 (:meth:`Int8.pad_rows4`), 3x fewer
    multiply-add steps than the channel padded to 4 for a 3x3 kernel; the same integer sums."""
    return (codec.name == "int8" and isinstance(layer, Conv2D) and layer.params["w"].shape[2] == 1
            and layer.kernel_size[1] <= 4 and layer.dilation[1] == 1)


def transparent(layer):
    """Whether ``layer`` at inference only passes its input on (a flatten, an inverted dropout): two int8
    products on either side of it chain (:meth:`Product.chain`)."""
    return isinstance(layer, Flatten) or (isinstance(layer, Dropout) and (layer.scaling != "test_time"
                                                                          or layer.rate == 0.0))


class Product:
    """One conv or dense layer as a reduced-precision product (see the module docstring).

    Parameters
    ----------
    layer : Conv2D or Dense
    codec : Int8 or BF16
    x_range : (float, float) or None
        The calibrated input range (int8).
    pool : MaxPool2D or None
        A 2x2 max-pool after the conv (:func:`fusable_pool`) run inside the product: the maximum of each window's accumulators goes through the epilogue (monotonic), so the
        result equals pooling the product's output.
    """

    def __init__(self, layer, codec, x_range, pool=None):
        w = layer.params["w"]
        self.conv = isinstance(layer, Conv2D)
        self.rows4 = rows4(layer, codec)
        if self.rows4:   # (KH, KW, 1, F) -> (KH, 1, 4, F): a kernel row's taps as the 4 channels, zeros past KW
            KH, KW, _, F = w.shape
            w = np.concatenate([w.transpose(0, 2, 1, 3), np.zeros((KH, 1, 4 - KW, F), w.dtype)], axis=2)
        self.channels = codec.conv_channels(w.shape[2]) if self.conv else None
        if self.channels is not None and self.channels != w.shape[2]:   # zero weights for the padding channels
            w = np.concatenate([w, np.zeros((*w.shape[:2], self.channels - w.shape[2], w.shape[3]), w.dtype)], axis=2)
        self.K, self.N = math.prod(w.shape[:-1]), w.shape[-1]
        self.Kp = -(-self.K // codec.k_multiple) * codec.k_multiple
        self.codec, self.layer, self.pool = codec, layer, pool
        self.output_shape = (pool or layer).output_shape
        bias = layer.params.get("b", np.zeros(self.N, w.dtype))
        self.state = codec.prepare(w.reshape(self.K, self.N), bias, x_range)
        self.act = layer.act if layer.act in (IDENTITY, RELU) else IDENTITY
        self.post = None if self.act == layer.act else (layer.act, layer.alpha)
        self.next, self.encoded_input = None, False

    def chainable(self, following):
        """Whether this product can write its output as ``following``'s encoded input (:meth:`chain`): both int8,
        no activation left after the epilogue, and a conv's output read by a dense product without padding."""
        return (self.codec.name == following.codec.name == "int8" and self.post is None and not following.rows4
                and (following.conv or not self.conv or following.Kp == following.K == math.prod(self.output_shape)))

    def chain(self, following):
        """Quantize this product's output in its epilogue as ``following``'s uint8 input (the bits the float32
        output quantized by ``following`` would give): no float32 activations between the two."""
        self.next, following.encoded_input = following, True

    def input_shape(self, N):
        """The shape of the encoded input of ``N`` samples: the padded image ``(N, Hp, Wp, channels)`` of a conv
        (the windows are read in place), the rows ``(N, Kp)`` of a dense product."""
        if not self.conv:
            return (N, self.Kp)
        layer, (H, W, _) = self.layer, self.layer.input_shape
        Ho, Wo, _ = layer.output_shape
        (KH, KW), (sh, sw), (dh, dw) = layer.kernel_size, layer.strides, layer.dilation
        Hp = max(layer.pt + H, (Ho - 1) * sh + (KH - 1) * dh + 1)
        if self.rows4:   # one column per window start (each holds the next 3)
            return (N, Hp, max((Wo - 1) * sw + 1, layer.pl + W - 3), 4)
        return (N, Hp, max(layer.pl + W, (Wo - 1) * sw + (KW - 1) * dw + 1), self.channels)

    def forward(self, x):
        """The layer's output (a new array) for its float32 input ``x`` (its encoded input when a product before it
        is chained to it): float, or the next product's encoded input when chained (:meth:`chain`)."""
        codec, state = self.codec, self.state
        N = x.shape[0]
        dtype = self.layer.params["w"].dtype if self.encoded_input else x.dtype
        encoded = x if self.encoded_input else self._encode(np.ascontiguousarray(x, np.float32))
        if self.next is not None:
            return self._requant(encoded)
        if self.conv:   # the windows read in place from the padded input
            y = np.empty((N * math.prod(self.output_shape[:2]), self.N), np.float32)
            codec.conv(y, encoded, state, self.act, *self._geometry())
        else:
            y = np.empty((N, self.N), np.float32)
            codec.product(y, encoded, state, self.act)
        if self.post is not None:   # monotonic: equal before or after the pooling
            bias_act_forward(y, y, np.zeros(self.N, np.float32), *self.post)
        return y.reshape(N, *self.output_shape).astype(dtype, copy=False)

    def _geometry(self):
        layer, (Ho, Wo, _) = self.layer, self.layer.output_shape
        (KH, KW), (dh, dw) = layer.kernel_size, layer.dilation
        if self.rows4:
            KW = dw = 1
        return (Ho, Wo, KH, KW, *layer.strides, dh, dw, self.pool is not None)

    def _encode(self, x):
        """The encoded input (:meth:`input_shape`) of float32 ``x``."""
        encoded = np.empty(self.input_shape(x.shape[0]), self.codec.dtype)
        if self.rows4:
            self.codec.pad_rows4(encoded, x, self.state, self.layer.pt, self.layer.pl)
        elif self.conv:
            self.codec.pad_input(encoded, x, self.state, self.layer.pt, self.layer.pl)
        else:
            self.codec.encode(encoded, x.reshape(x.shape[0], -1), self.state)
        return encoded

    def _requant(self, encoded):
        """This product's output as the next product's encoded input."""
        following = self.next
        q = np.empty(following.input_shape(encoded.shape[0]), np.uint8)
        if not self.conv:
            self.codec.product_requant(q, encoded, self.state, self.act, following.state)
        elif following.conv:
            self.codec.conv_requant(q, encoded, self.state, self.act, following.state, following.layer.pt,
                                    following.layer.pl, *self._geometry())
        else:   # the flattened rows of the dense product: (N, Ho', Wo', F) with no padding
            self.codec.conv_requant(q.reshape(-1, *self.output_shape), encoded, self.state, self.act,
                                    following.state, 0, 0, *self._geometry())
        return q


def chain_products(steps):
    """``steps`` with each int8 :class:`Product` chained to the next one where only :func:`transparent` layers
    lie between them (those are left out: the identity at inference)."""
    chained, i = [], 0
    while i < len(steps):
        step, j = steps[i], i + 1
        chained.append(step)
        while j < len(steps) and not isinstance(steps[j], Product) and transparent(steps[j]):
            j += 1
        if isinstance(step, Product) and j < len(steps) and isinstance(steps[j], Product) \
                and step.chainable(steps[j]):
            step.chain(steps[j])
            i = j
        else:
            i += 1
    return chained
