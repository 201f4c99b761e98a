"""A network's backward after an inference pass asks for a training forward, replayed pass or not.

A replayed inference pass (:mod:`minicnn._replay`) calls kernels, not the layers' methods, so the layers cannot
tell that an inference pass came last: the network refuses the backward itself, as each layer does after its own
inference forward (tests/test_conv_forward_routes.py, tests/test_residual_fused.py).
"""

import numpy as np
import pytest

from helpers import importable_backends
from minicnn.network import Sequential
from minicnn.layers import Conv2D, Dense, DepthwiseConv2D, Flatten, GlobalAvgPool2D, MaxPool2D

STACKS = {
    "conv-pool-dense": lambda: [Conv2D(8, 3, padding="same", activation="relu"), MaxPool2D(2), Flatten(), Dense(4)],
    "depthwise-gap-dense": lambda: [Conv2D(8, 3, padding="same"), DepthwiseConv2D(3, padding="same",
                                                                               activation="relu"),
                                    GlobalAvgPool2D(), Dense(4)],
    "dense-only": lambda: [Flatten(), Dense(6, activation="relu"), Dense(3)],
}


@pytest.mark.parametrize("backend", importable_backends())
@pytest.mark.parametrize("stack", sorted(STACKS))
@pytest.mark.parametrize("inference_passes", [1, 2, 3])   # the 2nd and 3rd replay the recorded pass
def test_backward_after_an_inference_pass_is_refused(backend, stack, inference_passes):
    net = Sequential(STACKS[stack](), backend=backend)
    net.build((8, 8, 3), rng=np.random.default_rng(0))
    x = np.random.default_rng(1).standard_normal((2, 8, 8, 3)).astype(np.float32)
    y = net.forward(x, training=True)
    dy = np.ones_like(y)
    net.backward(dy)   # after a training pass: accepted
    for _ in range(inference_passes):
        net.forward(x, training=False)
    with pytest.raises(RuntimeError, match="training=True"):
        net.backward(dy)
    net.forward(x, training=True)
    assert net.backward(dy) is None or np.isfinite(net.backward(dy)).all()   # a training pass again: accepted


def test_backward_before_any_pass_is_refused():
    net = Sequential(STACKS["dense-only"](), backend="numpy")
    net.build((8, 8, 3), rng=np.random.default_rng(0))
    with pytest.raises(RuntimeError, match="training=True"):
        net.backward(np.ones((2, 3), np.float32))
