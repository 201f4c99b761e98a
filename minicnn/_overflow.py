"""Where a forward pass overflowed: run only when a prediction's output is non-finite (the cheap check on the
output decides; this locates), so the error names the layer whose activations first became non-finite."""

import copy

import numpy as np

#: Largest |weight| a fitted float32 model plausibly holds; beyond it the advice is the model, not X.
WEIGHT_LIMIT = 1e6
#: Samples forwarded layer by layer to locate the overflow (the first ones that overflowed).
_LOCATE_SAMPLES = 8


def _largest(layer):
    values = [np.max(np.abs(p)) for inner in layer.walk() for p in inner.params.values() if np.size(p)]
    return float(max(values)) if values else 0.0


def locate(network, images):
    """``(index, layer, inner, largest |weight| in inner)`` of the first top-level layer whose output on
    ``images`` is non-finite (inference mode), or None when every layer's output is finite. ``inner``: the
    innermost layer of a block (:func:`_inner`) whose output became non-finite, or ``layer`` itself.

    Runs on a copy of the network (the caller may hold its lock, and its buffers stay as they were).
    """
    net = copy.deepcopy(network)
    x = np.ascontiguousarray(images, dtype=net.dtype)
    with np.errstate(all="ignore"):
        for index, layer in enumerate(net.layers):
            y = layer.forward(x, False)
            if not np.isfinite(y).all():
                inner = _inner(layer, x) or layer
                return index, layer, inner, _largest(inner)
            x = y
    return None


def _inner(block, x):
    """The innermost layer of ``block`` (a Chain or Residual) whose inference output on ``x`` is non-finite,
    or None (a leaf layer, or only the block's own merge overflowed)."""
    from .layers.composite import Chain, Residual

    if not isinstance(block, (Chain, Residual)):
        return None
    for layer in block.layers:
        y = layer.forward(x, False)
        if not np.isfinite(y).all():
            return _inner(layer, x) or layer
        if isinstance(block, Chain):   # a chain's layers run one after another; a residual's paths read x
            x = y
    return None


def overflow_message(network, images, bad_rows, n):
    """The ValueError text for an output non-finite on ``bad_rows`` (a boolean mask) of ``n`` samples."""
    bad = int(np.count_nonzero(bad_rows))
    largest_x = float(np.max(np.abs(images))) if np.size(images) else 0.0
    head = (f"The network's output overflowed float32 (non-finite) for {bad} of {n} samples of X "
            f"(largest |value| in X: {largest_x:.3g})")
    found = None if network is None else locate(network, images[np.flatnonzero(bad_rows)[:_LOCATE_SAMPLES]])
    if found is None:
        return f"{head}: scale X (e.g. StandardScaler, or divide 8-bit images by 255)"
    index, layer, inner, weight = found
    where = f"activations first became non-finite at layer {index}, {type(layer).__name__}({layer.describe()})"
    if inner is not layer:
        where += f", inside it, {type(inner).__name__}({inner.describe()})"
    model_weight = max((_largest(each) for each in network.layers), default=0.0)
    if model_weight > WEIGHT_LIMIT:
        return (f"{head}; {where}, whose largest |weight| is {weight:.3g} (the model's: {model_weight:.3g}): the "
                f"model's weights are far outside a fitted model's range; refit it or check the model file")
    return f"{head}; {where}: scale X (e.g. StandardScaler, or divide 8-bit images by 255)"
