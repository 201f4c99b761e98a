"""Translate a fitted minicnn network into ONNX nodes (NCHW inside the graph), one function per layer kind.

The builder writes through a small sink (:class:`NodeSink`): ``const`` adds an
initializer, ``node`` adds an operator and returns its output name. The plain
exporter (``minicnn.onnx``) and the skl2onnx converter (``minicnn.onnx._skl2onnx``)
each provide one, so the layer translation exists once.

Shape letters: N samples, H/W height/width, C channels, D features, K outputs.
"""

import contextlib
import copy

import numpy as np

from ..backend.activation_codes import CODES
from ..layers import (Activation, AvgPool2D, BatchNorm, Chain, Conv2D, Dense, DepthwiseConv2D, Dropout, Flatten,
                      GlobalAvgPool2D, GlobalMaxPool2D, MaxPool2D, Residual, SpatialDropout2D)
from ..layers.geometry import window_geometry
from . import ExportError

#: ONNX operator of each activation (identity adds no node); one entry per code in ``activation_codes``.
ACTIVATION_OPS = {"identity": None, "relu": "Relu", "leaky_relu": "LeakyRelu", "tanh": "Tanh",
                  "sigmoid": "Sigmoid"}
assert set(ACTIVATION_OPS) == set(CODES), "every activation code needs an ONNX operator"

#: ONNX TensorProto element type of the ``label`` output, by NumPy dtype kind of ``classes_``.
LABEL_KINDS = {"i": "INT64", "u": "INT64", "b": "BOOL", "f": "DOUBLE", "U": "STRING", "O": "STRING"}


class NodeSink:
    """Where nodes go: subclasses implement :meth:`const` and :meth:`node`."""

    def const(self, hint, array):
        """Add ``array`` as an initializer; return its name."""
        raise NotImplementedError

    def node(self, op, inputs, hint, **attrs):
        """Add operator ``op`` on ``inputs`` (names); return the name of its (single) output."""
        raise NotImplementedError


# ----------------------------------------------------------------------------- the fitted model's facts
class Fitted:
    """What the export needs from a fitted estimator or Predictor (read once, validated here)."""

    def __init__(self, model):
        kind = _kind(model)
        with _holding(model):   # a fit in another thread finishes first: never mid-fit weights
            self.is_classifier = kind == "CNNClassifier"
            self.network = copy.deepcopy(model.network_)   # a snapshot: a later fit cannot change the export
            self.input_shape = tuple(int(d) for d in model.input_shape_)   # (h, w, c)
            # the layout of the last fit (set_params(data_format=...) takes effect at the next fit)
            fitted = getattr(model, "_fitted_params", None)
            self.data_format = fitted()["data_format"] if fitted is not None else model.data_format
            self.n_features = int(model.n_features_in_)
            self.n_outputs = int(model.n_outputs_)
            self.y_ndim = int(getattr(model, "_y_ndim", 1))
            self.classes = label_array(model.classes_) if self.is_classifier else None

    def user_shape(self):
        """Per-sample image shape in ``data_format`` order."""
        h, w, c = self.input_shape
        return (c, h, w) if self.data_format == "channels_first" else (h, w, c)


def _holding(model):
    """The estimator's lock (fit, partial_fit and set_params hold it), or no lock for a Predictor."""
    lock = getattr(model, "_lock", None)
    return lock() if lock is not None else contextlib.nullcontext()


def _kind(model):
    from ..predictor import Predictor

    if isinstance(model, Predictor):
        return model.estimator
    from ..estimator import CNNClassifier, CNNRegressor

    if not isinstance(model, (CNNClassifier, CNNRegressor)):
        raise TypeError(f"model must be a fitted CNNClassifier, CNNRegressor or a Predictor from "
                        f"minicnn.load_predictor; received {type(model).__name__}")
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(model, "network_")
    return "CNNClassifier" if isinstance(model, CNNClassifier) else "CNNRegressor"


def label_array(classes):
    """``classes_`` as the array the ``label`` output gathers from (int64, bool, float64 or str)."""
    classes = np.asarray(classes)
    kind = classes.dtype.kind
    if kind == "O" and not all(isinstance(c, str) for c in classes):
        raise ExportError(f"classes_ of dtype object can be exported only when every label is a str; "
                          f"received classes_={classes.tolist()!r}")
    if kind not in LABEL_KINDS:
        raise ExportError(f"classes_ of dtype {classes.dtype} cannot be an ONNX label tensor "
                          f"(supported: integers, bools, floats, strings)")
    if kind == "u" and classes.size and classes.max() > np.iinfo(np.int64).max:
        raise ExportError(f"classes_ holds unsigned labels above 2**63 - 1 ({classes.max()}): ONNX labels are int64")
    if kind in "iu":
        return classes.astype(np.int64)
    if kind == "f":
        return classes.astype(np.float64)
    if kind in "UO":
        return np.array([str(c) for c in classes], dtype=object)
    return classes.astype(bool)


# ----------------------------------------------------------------------------- input
def emit_input(sink, x, fitted, ndim):
    """The user's input ``x`` (rank ``ndim``, ``data_format`` layout, float32) as NCHW images."""
    h, w, c = fitted.input_shape
    if ndim == 2 or ndim == 3:
        shape = (-1, *fitted.user_shape()) if ndim == 2 else (-1, 1, h, w)
        layout = fitted.data_format if ndim == 2 else "channels_first"
        x = sink.node("Reshape", [x, sink.const("input_shape", np.array(shape, dtype=np.int64))], "images")
    else:
        layout = fitted.data_format
    if layout == "channels_last":
        x = sink.node("Transpose", [x], "nchw", perm=[0, 3, 1, 2])
    return x


# ----------------------------------------------------------------------------- layers
def _activation(sink, x, activation, alpha, hint):
    op = ACTIVATION_OPS[activation]
    if op is None:
        return x
    if op == "LeakyRelu":
        return sink.node(op, [x], hint, alpha=float(alpha))
    return sink.node(op, [x], hint)


def _pads(layer, dilation=(1, 1)):
    """ONNX ``pads`` [top, left, bottom, right]: the same split as the engine (``window_geometry``)."""
    H, W, _ = layer.input_shape
    (kh, kw) = layer.kernel_size if isinstance(layer, (Conv2D, DepthwiseConv2D)) else layer.pool_size
    (sh, sw) = layer.strides
    pad_h, pad_w = (layer.padding, layer.padding) if isinstance(layer.padding, str) else layer.padding
    _, top, bottom = window_geometry(H, kh, sh, dilation[0], pad_h)
    _, left, right = window_geometry(W, kw, sw, dilation[1], pad_w)
    return [top, left, bottom, right]


def _conv(sink, x, layer):
    w = np.ascontiguousarray(layer.params["w"].transpose(3, 2, 0, 1), dtype=np.float32)   # (F, C, KH, KW)
    inputs = [x, sink.const("conv_w", w)]
    if layer.use_bias:
        inputs.append(sink.const("conv_b", layer.params["b"].astype(np.float32)))
    y = sink.node("Conv", inputs, "conv", kernel_shape=list(layer.kernel_size), strides=list(layer.strides),
                  dilations=list(layer.dilation), pads=_pads(layer, layer.dilation))
    return _activation(sink, y, layer.activation, layer.alpha, "conv_act")


def _depthwise_conv(sink, x, layer):
    """A grouped Conv with one group per channel (torch's ``groups=C``)."""
    channels = layer.input_shape[-1]
    w = np.ascontiguousarray(layer.params["w"].transpose(2, 0, 1)[:, None], dtype=np.float32)   # (C, 1, KH, KW)
    inputs = [x, sink.const("depthwise_w", w)]
    if layer.use_bias:
        inputs.append(sink.const("depthwise_b", layer.params["b"].astype(np.float32)))
    y = sink.node("Conv", inputs, "depthwise", group=channels, kernel_shape=list(layer.kernel_size),
                  strides=list(layer.strides), dilations=list(layer.dilation), pads=_pads(layer, layer.dilation))
    return _activation(sink, y, layer.activation, layer.alpha, "depthwise_act")


def _dense(sink, x, layer):
    inputs = [x, sink.const("dense_w", layer.params["w"].astype(np.float32))]
    if layer.use_bias:
        inputs.append(sink.const("dense_b", layer.params["b"].astype(np.float32)))
    y = sink.node("Gemm", inputs, "dense")
    return _activation(sink, y, layer.activation, layer.alpha, "dense_act")


def _pool(sink, x, layer):
    common = {"kernel_shape": list(layer.pool_size), "strides": list(layer.strides), "pads": _pads(layer)}
    if layer.mode == "max":     # padded positions never win: ONNX pads max-pool with -inf
        return sink.node("MaxPool", [x], "maxpool", **common)
    # the engine divides by the count of non-padding elements of each window
    return sink.node("AveragePool", [x], "avgpool", count_include_pad=0, **common)


def _global_avg_pool(sink, x, layer):
    y = sink.node("GlobalAveragePool", [x], "gap")
    return sink.node("Flatten", [y], "gap_flat", axis=1)


def _global_max_pool(sink, x, layer):
    y = sink.node("GlobalMaxPool", [x], "gmp")
    return sink.node("Flatten", [y], "gmp_flat", axis=1)


def _flatten(sink, x, layer):
    if len(layer.input_shape) == 1:   # already (N, D): the engine's reshape is the identity
        return x
    # the engine flattens NHWC maps: (h, w, c) order
    y = sink.node("Transpose", [x], "nhwc", perm=[0, 2, 3, 1])
    return sink.node("Flatten", [y], "flat", axis=1)


def _batch_norm(sink, x, layer):
    # inference form: (x - running_mean) / sqrt(running_var + eps) * gamma + beta over channels (axis 1 in NCHW
    # and in (N, D))
    arrays = [layer.params["gamma"], layer.params["beta"], layer.running_mean, layer.running_var]
    names = [sink.const(hint, a.astype(np.float32)) for hint, a in zip(("bn_gamma", "bn_beta", "bn_mean", "bn_var"),
                                                                       arrays)]
    return sink.node("BatchNormalization", [x, *names], "batchnorm", epsilon=float(layer.eps))


def _dropout(sink, x, layer):
    if layer.scaling == "test_time" and layer.rate > 0.0:   # the keep probability, in float32 as the engine does
        keep = sink.const("keep", np.array(1.0 - layer.rate, dtype=np.float32))
        return sink.node("Mul", [x, keep], "dropout_keep")
    return x


def _standalone_activation(sink, x, layer):
    return _activation(sink, x, layer.activation, layer.alpha, "act")


def _chain(sink, x, layer, emit):
    for inner in layer.sublayers():
        x = emit(x, inner)
    return x


def _residual(sink, x, layer, emit):
    main = emit(x, layer.main)
    skip = x if layer.shortcut is None else emit(x, layer.shortcut)
    y = sink.node("Add", [main, skip], "residual_add")
    return _activation(sink, y, layer.activation, layer.alpha, "residual_act")


#: One translator per layer class (subclasses are matched by their exact class only).
TRANSLATORS = {Conv2D: _conv, Dense: _dense, MaxPool2D: _pool, AvgPool2D: _pool, GlobalAvgPool2D: _global_avg_pool,
               Flatten: _flatten, BatchNorm: _batch_norm, Dropout: _dropout, SpatialDropout2D: _dropout,
               Activation: _standalone_activation, DepthwiseConv2D: _depthwise_conv,
               GlobalMaxPool2D: _global_max_pool}
#: Translators of composite layers: ``translate(sink, x, layer, emit)``, ``emit(x, sublayer)`` translating a sublayer.
COMPOSITE_TRANSLATORS = {Chain: _chain, Residual: _residual}


def emit_network(sink, x, network, tap=None):
    """Every layer of ``network`` (a built Sequential) applied to NCHW images ``x``; returns the output name.

    The layer tree is translated recursively: a composite's translator emits
    its sublayers (through ``emit``) and joins them (e.g. ``Add``). With
    ``tap`` (the index of a top-level layer with vector outputs), returns
    ``(output, embedding)``: ``embedding`` is that layer's output, as
    :func:`minicnn.embedding.embed` (``transform``) returns it.
    """
    index = {id(layer): i for i, layer in enumerate(network.descendants())}

    def emit(x, layer):
        composite = COMPOSITE_TRANSLATORS.get(type(layer))
        if composite is not None:
            return composite(sink, x, layer, emit)
        translate = TRANSLATORS.get(type(layer))
        if translate is None:
            raise ExportError(f"layer {index[id(layer)]} ({type(layer).__name__}) has no ONNX translation")
        return translate(sink, x, layer)

    tapped = None
    for position, layer in enumerate(network.sublayers()):
        x = emit(x, layer)
        if position == tap:   # the penultimate layer: vectors (a Flatten, gap or dense precedes the output layer)
            tapped = sink.node("Flatten", [x], "embedding", axis=1, _output="embedding")
    return x if tap is None else (x, tapped)


# ----------------------------------------------------------------------------- outputs
def emit_classifier_outputs(sink, logits, fitted, label, probabilities):
    """``probabilities`` = softmax(logits) (float32); ``label`` = classes_[argmax] (first maximum, as NumPy)."""
    sink.node("Softmax", [logits], probabilities, axis=1, _output=probabilities)
    index = sink.node("ArgMax", [logits], "argmax", axis=1, keepdims=0)
    sink.node("Gather", [sink.const("classes", fitted.classes), index], label, axis=0, _output=label)


def emit_regressor_output(sink, values, fitted, variable):
    """``variable`` shaped like ``predict``: (N,) for a 1-D target, else (N, K)."""
    shape = (-1,) if fitted.y_ndim == 1 else (-1, fitted.n_outputs)
    sink.node("Reshape", [values, sink.const("variable_shape", np.array(shape, dtype=np.int64))], variable,
              _output=variable)
