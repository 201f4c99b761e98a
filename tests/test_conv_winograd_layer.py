"""Conv2D's Winograd routes: inference forward and input gradient of 3x3 stride-1 convs with >= 8 channels.

The kernel itself is tested in test_winograd.py; here the layer: which configurations take the route,
that its outputs equal the im2col path's, and finite-difference gradients through it.
"""

import numpy as np
import pytest

from minicnn.backend import get_backend
from minicnn.layers import Conv2D
from minicnn.layers.conv import WINOGRAD_MIN_CHANNELS

from gradcheck import check_layer_gradients
from helpers import importable_backends

# numba has no Winograd kernel: it must take the im2col path everywhere
BACKENDS = importable_backends(("numpy", "numba", "cython"))
C = WINOGRAD_MIN_CHANNELS


def build(layer, shape, backend, dtype=np.float64, seed=0):
    layer.build(shape, dtype=dtype, rng=np.random.default_rng(seed), backend=get_backend(backend))
    if layer.use_bias:
        layer.params["b"][...] = np.random.default_rng(seed + 1).standard_normal(layer.filters)
    return layer


def uses_winograd(backend):
    return hasattr(get_backend(backend), "conv2d_winograd_bias_act_forward")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("padding", ["valid", "same", 2])
@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_gradients_through_the_winograd_input_gradient(backend, padding, activation):
    layer = build(Conv2D(C, 3, padding=padding, activation=activation), (5, 4, C), backend)
    assert layer._winograd_input_grad
    x = np.random.default_rng(2).standard_normal((2, 5, 4, C))
    check_layer_gradients(layer, x)
    assert ("winograd_dx" in layer._buffers) == uses_winograd(backend)
    assert ("dcol" in layer._buffers) != uses_winograd(backend)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("padding, shape", [("valid", (9, 8)), ("same", (7, 7)), (2, (6, 9)), (3, (5, 5))])
def test_inference_forward_and_input_gradient_equal_the_im2col_path(backend, dtype, padding, shape):
    layer = build(Conv2D(C + 3, 3, padding=padding, activation="leaky_relu", alpha=0.2), (*shape, C + 1),
                  backend, dtype)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, *shape, C + 1)).astype(dtype)
    trained = layer.forward(x, training=True).copy()            # im2col (its columns feed the weight gradient)
    inferred = layer.forward(x, training=False).copy()
    assert ("winograd" in layer._buffers) == uses_winograd(backend)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(inferred, trained, **tol)

    dy = rng.standard_normal(trained.shape).astype(dtype)
    layer.forward(x, training=True)
    dx = layer.backward(dy).copy()
    route = layer._winograd_input_grad
    assert route == (padding != 3)   # top/left padding above 2 has no flipped-kernel equivalent: im2col
    layer._winograd_input_grad = False
    layer.forward(x, training=True)
    np.testing.assert_allclose(dx, layer.backward(dy), **tol)


@pytest.mark.parametrize("make, shape, forward, input_grad", [
    (lambda: Conv2D(8, 3), (6, 6, C - 1), False, True),                  # too few input channels
    (lambda: Conv2D(C - 1, 3), (6, 6, C), True, False),                  # too few output channels
    (lambda: Conv2D(8, 3, strides=2), (6, 6, C), False, False),
    (lambda: Conv2D(8, 3, dilation=2), (6, 6, C), False, False),
    (lambda: Conv2D(8, (3, 2)), (6, 6, C), False, False),
    (lambda: Conv2D(8, 5, padding="same"), (6, 6, C), False, False),
])
def test_which_configurations_take_the_route(make, shape, forward, input_grad):
    layer = build(make(), shape, "numpy")
    assert (layer._winograd_forward, layer._winograd_input_grad) == (forward, input_grad)


def test_eval_forward_matches_torch():
    torch = pytest.importorskip("torch")
    layer = build(Conv2D(16, 3, padding="same", activation="relu"), (9, 7, 12), "cython" if uses_winograd(
        "cython") else "numpy")
    x = np.random.default_rng(4).standard_normal((2, 9, 7, 12))
    conv = torch.nn.Conv2d(12, 16, 3, padding=1).double()
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(layer.params["w"].transpose(3, 2, 0, 1).copy()))
        conv.bias.copy_(torch.from_numpy(layer.params["b"]))
        expected = torch.relu(conv(torch.from_numpy(x.transpose(0, 3, 1, 2).copy()))).numpy().transpose(0, 2, 3, 1)
    np.testing.assert_allclose(layer.forward(x, training=False), expected, rtol=1e-9, atol=1e-12)
