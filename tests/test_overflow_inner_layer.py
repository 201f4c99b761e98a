"""An overflow inside a block (residual, separable, BatchNorm'd conv) names the inner layer, not only the block.

The overflow message names the top-level layer whose activations first became non-finite
(``layer I, Residual(...)``); when that layer is a block of several weighted layers, it goes on to name the
innermost one whose output overflowed and that layer's largest weight, so a model file can be checked where it
went wrong. Swept over every block token (``res`` with identity and projection shortcuts, ``sep``, convs with
BatchNorm) x every weighted layer inside the block, through ``predict`` (the message is one function).
"""

import warnings

import numpy as np
import pytest

pytestmark = [pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning"),
              pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")]

NETS = {"res identity": ("conv4", "res4", "gap"), "res projection": ("res4s2", "gap"), "sep": ("sep4", "gap"),
        "conv batchnorm": ("conv4", "gap")}


def _model(tokens):
    from minicnn import CNNClassifier

    X = np.random.default_rng(0).random((30, 8, 8, 1), dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return CNNClassifier(layers=tokens, batch_norm=True, dropout="none", max_iter=1, random_state=0,
                             backend="numpy").fit(X, np.arange(30) % 3)


def _block(model):
    """``(index, layer)`` of the first top-level layer holding others (the first layer when none does)."""
    layers = model.network_.layers
    return next(((i, layer) for i, layer in enumerate(layers) if len(list(layer.walk())) > 1), (0, layers[0]))


def _cases():
    for name, tokens in NETS.items():
        index, block = _block(_model(tokens))
        weighted = [i for i, layer in enumerate(block.walk())
                    if layer.params.get("w") is not None]
        for inner in weighted:
            yield name, inner


@pytest.mark.parametrize("name, inner", list(_cases()))
def test_an_overflow_inside_a_block_names_the_inner_layer(name, inner):
    model = _model(NETS[name])
    index, block = _block(model)
    layer = list(block.walk())[inner]
    layer.params["w"][...] = 3e38
    with pytest.raises(ValueError, match="overflowed float32") as info:
        model.predict(np.full((3, 8, 8, 1), 2.0, np.float32))   # 2 x 3e38: even a 1x1 conv on one channel overflows
    text = str(info.value)
    assert f"layer {index}, {type(block).__name__}(" in text, text
    if layer is block:
        return
    assert f"inside it, {type(layer).__name__}({layer.describe()})" in text, text
    assert "whose largest |weight| is 3e+38" in text, text
