"""The int8 model of :func:`minicnn.quantize.quantize` as ONNX QuantizeLinear / DequantizeLinear (QDQ) pairs.

The float32 graph of the model (:func:`minicnn.onnx.to_onnx_model`) gets, in front of each int8 ``Conv`` and
``Gemm``, a ``QuantizeLinear -> DequantizeLinear`` pair on the activation (uint8, the calibrated scale and zero
point) and its weights as int8 initializers behind a per-channel ``DequantizeLinear`` (symmetric, zero point 0,
axis of the output channel): the QDQ format of ONNX Runtime's static quantization, whose graph optimizer fuses
such pairs into integer kernels (QLinearConv, QGemm) where it can.
"""

import numpy as np

from ..layers import Conv2D, Dense
from . import ExportError, import_onnx, to_onnx_model


def _products_in_graph_order(quantized):
    """The int8 products, checked to be the model's conv and dense layers one to one (as the graph emits them)."""
    from .._lowp_steps import Product

    products = [s for s in quantized._steps if isinstance(s, Product)]
    layers = [layer for layer in quantized.model.network_.descendants() if isinstance(layer, (Conv2D, Dense))]
    if quantized.precision != "int8" or [p.layer for p in products] != layers:
        raise ExportError("export_onnx_qdq writes int8 models whose every conv and dense layer runs int8 (no "
                          "BatchNorm folded, no conv inside a block); received a model with layer precisions "
                          f"{quantized.layer_precisions_} at precision={quantized.precision!r}")
    return products


def to_qdq_model(quantized, opset=13):
    """The checked ``onnx.ModelProto`` of an int8 :class:`~minicnn.quantize.QuantizedPredictor` (see the module)."""
    onnx = import_onnx()
    products = _products_in_graph_order(quantized)
    proto = to_onnx_model(quantized.model, opset=opset)
    graph, helper, numpy_helper = proto.graph, onnx.helper, onnx.numpy_helper
    inits = {init.name: init for init in graph.initializer}
    targets = [node for node in graph.node if node.op_type in ("Conv", "Gemm")]
    if len(targets) != len(products):
        raise ExportError(f"the graph has {len(targets)} Conv/Gemm nodes for {len(products)} int8 layers")
    new_nodes, added = [], []
    for node in graph.node:
        if node.op_type in ("Conv", "Gemm"):
            k = targets.index(node)
            state = products[k].state
            x_scale = np.array(state["x_scale"], np.float32)
            names = {s: f"qdq{k}_{s}" for s in ("xs", "xz", "xq", "xdq", "wq", "ws", "wz", "wdq")}
            added += [numpy_helper.from_array(x_scale, names["xs"]),
                      numpy_helper.from_array(np.array(state["zero_point"], np.uint8), names["xz"])]
            new_nodes += [helper.make_node("QuantizeLinear", [node.input[0], names["xs"], names["xz"]], [names["xq"]]),
                          helper.make_node("DequantizeLinear", [names["xq"], names["xs"], names["xz"]],
                                           [names["xdq"]])]
            w = numpy_helper.to_array(inits[node.input[1]])
            axis = 0 if node.op_type == "Conv" else 1   # Conv (F, C, KH, KW); Gemm (D, K)
            shape = [1] * w.ndim
            shape[axis] = -1
            w_scale = state["w_scale"].astype(np.float32)
            wq = np.clip(np.rint(w / w_scale.reshape(shape)), -127, 127).astype(np.int8)
            added += [numpy_helper.from_array(wq, names["wq"]), numpy_helper.from_array(w_scale, names["ws"]),
                      numpy_helper.from_array(np.zeros(len(w_scale), np.int8), names["wz"])]
            new_nodes.append(helper.make_node("DequantizeLinear", [names["wq"], names["ws"], names["wz"]],
                                              [names["wdq"]], axis=axis))
            node.input[0], node.input[1] = names["xdq"], names["wdq"]
        new_nodes.append(node)
    used = {name for node in new_nodes for name in node.input}
    kept = [init for init in graph.initializer if init.name in used]
    del graph.node[:], graph.initializer[:]
    graph.node.extend(new_nodes)
    graph.initializer.extend(kept + added)
    try:
        onnx.checker.check_model(proto, full_check=True)
    except onnx.checker.ValidationError as exc:   # a translation fault, not a user error
        raise ExportError(f"the QDQ graph failed onnx.checker: {exc}") from exc
    return proto
