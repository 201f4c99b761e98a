"""Build a standalone ``onnx.ModelProto`` with ``onnx.helper`` (the graph of :func:`minicnn.onnx.export_onnx`)."""

import numbers

import numpy as np

from .. import __version__
from . import DEFAULT_INPUT_NDIM, INPUT_NDIMS
from . import ExportError
from ._graph import (LABEL_KINDS, Fitted, NodeSink, emit_classifier_outputs, emit_input, emit_network,
                     emit_regressor_output)


class HelperSink(NodeSink):
    """Collects nodes and initializers for ``onnx.helper.make_graph``; names are unique by a counter."""

    def __init__(self, onnx):
        self.onnx, self.nodes, self.initializers, self._count = onnx, [], [], 0

    def _name(self, hint):
        self._count += 1
        return f"{hint}_{self._count}"

    def const(self, hint, array):
        name = self._name(hint)
        self.initializers.append(self.onnx.numpy_helper.from_array(array, name))
        return name

    def node(self, op, inputs, hint, _output=None, **attrs):
        output = _output or self._name(hint)
        self.nodes.append(self.onnx.helper.make_node(op, list(inputs), [output], name=self._name(op), **attrs))
        return output


def check_input_ndim(input_ndim, fitted):
    """``input_ndim`` (None: the default rank) validated against the fitted input shape."""
    if input_ndim is None:
        return DEFAULT_INPUT_NDIM
    if not isinstance(input_ndim, numbers.Integral) or isinstance(input_ndim, bool) or input_ndim not in INPUT_NDIMS:
        raise ValueError(f"input_ndim must be one of {INPUT_NDIMS} or None; received input_ndim={input_ndim!r}")
    input_ndim = int(input_ndim)   # a NumPy integer as any int; 4.0 is refused, as for every integer parameter
    if input_ndim == 3 and fitted.input_shape[2] != 1:
        raise ValueError(f"input_ndim=3 takes single-channel (n, height, width) images, but the model was fitted "
                         f"on {fitted.input_shape[2]} channels (input_shape_={fitted.input_shape})")
    return input_ndim


def input_dims(fitted, ndim):
    """Per-sample dimensions of the ``X`` input of rank ``ndim``."""
    h, w, _ = fitted.input_shape
    return {2: [fitted.n_features], 3: [h, w], 4: list(fitted.user_shape())}[ndim]


def build_model(onnx, model, *, opset, input_ndim, embedding=False):
    """The checked ModelProto of ``model`` (see :func:`minicnn.onnx.export_onnx`)."""
    fitted = Fitted(model)
    ndim = check_input_ndim(input_ndim, fitted)
    helper, T = onnx.helper, onnx.TensorProto
    sink = HelperSink(onnx)
    x = emit_input(sink, "X", fitted, ndim)
    extra = []
    if embedding:
        from ..embedding import resolve_layer

        tap = resolve_layer(fitted.network, None)
        logits, _ = emit_network(sink, x, fitted.network, tap=tap)
        width = int(np.prod(fitted.network.layers[tap].output_shape))
        extra = [helper.make_tensor_value_info("embedding", T.FLOAT, ["N", width])]
    else:
        logits = emit_network(sink, x, fitted.network)
    inputs = [helper.make_tensor_value_info("X", T.FLOAT, ["N", *input_dims(fitted, ndim)])]
    if fitted.is_classifier:
        emit_classifier_outputs(sink, logits, fitted, "label", "probabilities")
        label_type = getattr(T, LABEL_KINDS[fitted.classes.dtype.kind if fitted.classes.dtype != object else "O"])
        outputs = [helper.make_tensor_value_info("label", label_type, ["N"]),
                   helper.make_tensor_value_info("probabilities", T.FLOAT, ["N", fitted.n_outputs])]
    else:
        emit_regressor_output(sink, logits, fitted, "variable")
        shape = ["N"] if fitted.y_ndim == 1 else ["N", fitted.n_outputs]
        outputs = [helper.make_tensor_value_info("variable", T.FLOAT, shape)]
    outputs += extra
    name = "CNNClassifier" if fitted.is_classifier else "CNNRegressor"
    graph = helper.make_graph(sink.nodes, f"minicnn_{name}", inputs, outputs, sink.initializers)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="minicnn",
                              producer_version=__version__, doc_string=f"minicnn {name}")
    # a model's IR version: the lowest that this opset needs, so older runtimes read it too
    proto.ir_version = min(onnx.IR_VERSION, _ir_version_for(onnx, opset))
    try:
        onnx.checker.check_model(proto, full_check=True)
    except onnx.checker.ValidationError as exc:   # a translation fault, not a user error
        raise ExportError(f"the exported graph failed onnx.checker: {exc}") from exc
    return proto


def _ir_version_for(onnx, opset):
    """The lowest IR version of the onnx releases that introduced ``opset`` (``onnx.helper.VERSION_TABLE``)."""
    versions = [row[1] for row in getattr(onnx.helper, "VERSION_TABLE", ()) if row[2] == opset]
    return min(versions, default=onnx.IR_VERSION)
