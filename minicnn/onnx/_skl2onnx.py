"""skl2onnx shape calculators and converters for CNNClassifier / CNNRegressor (see ``register_skl2onnx``).

The classifier is registered with the ``zipmap``, ``nocl`` and
``output_class_labels`` options, for which skl2onnx installs its own classifier parser
(``update_registered_converter``): ``zipmap`` then behaves exactly as for
scikit-learn's classifiers. Labels follow skl2onnx's convention: int64
(integer, bool and integral float classes) or string.
"""

import numpy as np

from . import MIN_OPSET, import_onnx
from . import ExportError
from ._graph import (Fitted, NodeSink, emit_classifier_outputs, emit_input, emit_network,
                     emit_regressor_output)

ALIASES = {"CNNClassifier": "MinicnnCNNClassifier", "CNNRegressor": "MinicnnCNNRegressor"}
CLASSIFIER_OPTIONS = {"zipmap": [True, False, "columns"], "nocl": [False, True], "output_class_labels": [False, True]}


def _import_skl2onnx():
    from . import INSTALL_HINT, require

    return require("skl2onnx", "register_skl2onnx", f"pip install skl2onnx (and {INSTALL_HINT})")


class ContainerSink(NodeSink):
    """Writes nodes and initializers into a skl2onnx ``ModelComponentContainer``."""

    def __init__(self, scope, container, onnx):
        self.scope, self.container, self.onnx = scope, container, onnx

    def const(self, hint, array):
        name = self.scope.get_unique_variable_name(hint)
        if array.dtype == object:
            self.container.add_initializer(name, self.onnx.TensorProto.STRING, list(array.shape),
                                           [str(s).encode("utf-8") for s in array])
        else:
            tensor = self.onnx.numpy_helper.from_array(np.ascontiguousarray(array))
            self.container.add_initializer(name, tensor.data_type, list(tensor.dims), tensor)
        return name

    def node(self, op, inputs, hint, _output=None, **attrs):
        output = _output or self.scope.get_unique_variable_name(hint)
        self.container.add_node(op, list(inputs), [output], name=self.scope.get_unique_operator_name(op),
                                op_version=MIN_OPSET, **attrs)
        return output


def _fitted(model, scope):
    """The model's facts, with labels in skl2onnx's convention (int64 or string; ``nocl``: class indices)."""
    fitted = Fitted(model)
    if fitted.is_classifier and scope.get_options(model, dict(nocl=False))["nocl"]:
        fitted.classes = np.arange(len(fitted.classes), dtype=np.int64)
    elif fitted.is_classifier and fitted.classes.dtype.kind in "bf":
        as_int = fitted.classes.astype(np.int64)
        if not np.array_equal(as_int, fitted.classes):
            raise ExportError(f"skl2onnx labels are int64 or strings; classes_={fitted.classes.tolist()!r} are "
                              f"not integers (use minicnn.export_onnx for a double label)")
        fitted.classes = as_int
    return fitted


def _input_ndim(operator, fitted):
    """Rank of the operator's input, checked against the fitted shape (unknown dimensions pass)."""
    from ._helper import check_input_ndim, input_dims

    shape = list(operator.inputs[0].type.shape)
    name = type(operator.raw_operator).__name__
    try:
        ndim = check_input_ndim(len(shape), fitted)
    except ValueError as exc:
        raise ExportError(f"the input of {name} has shape {shape}: {exc}") from None
    expected = input_dims(fitted, ndim)
    if any(isinstance(d, int) and d != e for d, e in zip(shape[1:], expected)):
        raise ExportError(f"the input of {name} has shape {shape}, but the fitted model takes (N, "
                          f"{', '.join(map(str, expected))}) (data_format={fitted.data_format!r})")
    return ndim


def calculate_shape(operator):
    """skl2onnx shape calculator: label/probabilities or variable, from the fitted model."""
    from skl2onnx.common.data_types import FloatTensorType, Int64TensorType, StringTensorType

    model = operator.raw_operator
    fitted = _fitted(model, operator.scope_inst)
    _input_ndim(operator, fitted)
    n = operator.inputs[0].type.shape[0]
    if fitted.is_classifier:
        label = StringTensorType if fitted.classes.dtype == object else Int64TensorType
        operator.outputs[0].type = label([n])
        operator.outputs[1].type = FloatTensorType([n, fitted.n_outputs])
    else:
        operator.outputs[0].type = FloatTensorType([n] if fitted.y_ndim == 1 else [n, fitted.n_outputs])


def convert(scope, operator, container):
    """skl2onnx converter: the same graph as :func:`minicnn.onnx.export_onnx` on the operator's input."""
    onnx = import_onnx()
    if container.target_opset is not None and container.target_opset < MIN_OPSET:
        raise ExportError(f"minicnn models need target_opset >= {MIN_OPSET}; received {container.target_opset}")
    fitted = _fitted(operator.raw_operator, scope)
    sink = ContainerSink(scope, container, onnx)
    x = operator.inputs[0].full_name
    if operator.inputs[0].type.to_onnx_type().tensor_type.elem_type != onnx.TensorProto.FLOAT:
        x = sink.node("Cast", [x], "cast_float", to=onnx.TensorProto.FLOAT)
    logits = emit_network(sink, emit_input(sink, x, fitted, _input_ndim(operator, fitted)), fitted.network)
    names = [o.full_name for o in operator.outputs]
    if fitted.is_classifier:
        emit_classifier_outputs(sink, logits, fitted, names[0], names[1])
    else:
        emit_regressor_output(sink, logits, fitted, names[0])


def register():
    """Register both estimators (idempotent)."""
    skl2onnx = _import_skl2onnx()
    from ..estimator import CNNClassifier, CNNRegressor

    skl2onnx.update_registered_converter(CNNClassifier, ALIASES["CNNClassifier"], calculate_shape, convert,
                                         options=CLASSIFIER_OPTIONS)
    skl2onnx.update_registered_converter(CNNRegressor, ALIASES["CNNRegressor"], calculate_shape, convert)
