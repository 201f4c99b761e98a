"""A BatchNorm folded into the layer before it (:mod:`minicnn.layers.folding`) follows every setting it is folded from.

Swept: each foldable kind (Conv2D, DepthwiseConv2D, Dense) with and without a fused Activation, then a setting the
fold reads changed after an inference pass (the BatchNorm's ``eps``, the fused activation's ``act`` and ``alpha``),
on the NumPy and the compiled backends: the next inference pass equals the unfolded layers' own pass (up to the
fold's rounding) and differs from the pass before the change.
"""

import numpy as np
import pytest

from minicnn.layers import Activation, BatchNorm, Conv2D, Dense, DepthwiseConv2D, Flatten
from minicnn.layers.base import activation_code
from minicnn.network import Sequential

from helpers import importable_backends

BACKENDS = importable_backends(("numpy", "cython"))

#: name -> (the foldable layer, per-sample input shape, the layers after the BatchNorm (and activation))
FOLDABLE = {
    "conv": (lambda: Conv2D(6, 3, padding="same"), (5, 5, 2), lambda: [Flatten(), Dense(3)]),
    "depthwise": (lambda: DepthwiseConv2D(3, padding="same"), (5, 5, 3), lambda: [Flatten(), Dense(3)]),
    "dense": (lambda: Dense(7), (9,), lambda: [Dense(3)]),
}


def _set_eps(net):
    net.layers[1].eps = 0.75


def _set_alpha(net):
    net.layers[2].alpha = 0.4


def _set_act(net):
    net.layers[2].act = activation_code("tanh", net.layers[2].alpha)


#: change -> (whether the network has an activation after the BatchNorm, the change)
CHANGES = {"eps": (False, _set_eps), "eps, activation fused": (True, _set_eps), "alpha": (True, _set_alpha),
           "act": (True, _set_act)}


def _network(kind, with_activation, backend):
    layer, shape, rest = FOLDABLE[kind]
    activation = [Activation("leaky_relu")] if with_activation else []
    net = Sequential([layer(), BatchNorm(), *activation, *rest()], backend=backend)
    net.build(shape, rng=np.random.default_rng(0))
    bn, rng = net.layers[1], np.random.default_rng(1)
    bn.running_mean[...] = rng.standard_normal(bn.running_mean.shape)
    bn.running_var[...] = rng.random(bn.running_var.shape) * 0.05 + 0.01   # small: eps matters
    return net, shape


def _unfolded(net, x):
    for layer in net.layers:
        x = layer.forward(x, False)
    return np.array(x)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("change", list(CHANGES))
@pytest.mark.parametrize("kind", list(FOLDABLE))
def test_a_setting_the_fold_reads_changed_after_a_pass_refolds(kind, change, backend):
    with_activation, apply = CHANGES[change]
    net, shape = _network(kind, with_activation, backend)
    x = np.random.default_rng(2).standard_normal((3, *shape)).astype(np.float32)
    before = np.array(net.forward(x))
    np.testing.assert_allclose(before, _unfolded(net, x), rtol=1e-4, atol=1e-4)
    apply(net)
    expected = _unfolded(net, x)
    assert not np.allclose(expected, before, rtol=1e-3, atol=1e-3)   # the change matters
    for _ in range(2):   # the pass after the change, then a replayed one
        np.testing.assert_allclose(np.array(net.forward(x)), expected, rtol=1e-4, atol=1e-4)
