"""Conv2D's Winograd routes: forward and input gradient of 3x3 stride-1 convs with >= 8 channels, and the
weight gradient rebuilt from the input that lets the training forward skip im2col.

The kernels are tested in test_winograd.py and test_conv_wgrad.py; here the layer: which configurations
take the routes, that the results equal the direct reference's, and finite-difference gradients through them.
"""

import numpy as np
import pytest

from minicnn.backend import get_backend
from minicnn.backend import reference as ref
from minicnn.layers import Conv2D
from minicnn.layers.conv import WINOGRAD_MIN_CHANNELS

from gradcheck import check_layer_gradients
from helpers import build_layer, importable_backends

# every backend has the Winograd kernels (a backend without them takes the im2col path: uses_winograd)
BACKENDS = importable_backends(("numpy", "numba", "cython"))
C = WINOGRAD_MIN_CHANNELS


def build(layer, shape, backend, dtype=np.float64, seed=0):
    """``build_layer``, then a random bias (the built layer's is zero) so that the bias path is checked too."""
    build_layer(layer, shape, backend, dtype=dtype, seed=seed)
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
    check_layer_gradients(layer, x)   # dx through the Winograd input gradient, dw rebuilt from x
    assert ("winograd_dx" in layer._buffers) == uses_winograd(backend)
    assert ("dcol" in layer._buffers) != uses_winograd(backend)
    assert ("wgrad_winograd" in layer._buffers) == ("col" not in layer._buffers) == uses_winograd(backend)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("padding, shape", [("valid", (9, 8)), ("same", (7, 7)), (2, (6, 9)), (3, (5, 5))])
def test_forward_and_gradients_equal_the_direct_reference(backend, dtype, padding, shape):
    layer = build(Conv2D(C + 3, 3, padding=padding, activation="leaky_relu", alpha=0.2), (*shape, C + 1),
                  backend, dtype)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, *shape, C + 1)).astype(dtype)
    w, b = layer.params["w"], layer.params["b"]
    expected = np.empty((3, *layer.output_shape), dtype)
    col = np.empty((3, expected.shape[1] * expected.shape[2], w[..., 0].size), dtype)
    ref.conv2d_bias_act_forward(expected, x, w, b, col, layer.act, layer.alpha, *layer._geometry())
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.forward(x, training=False), expected, **tol)
    assert ("winograd" in layer._buffers) == uses_winograd(backend)
    np.testing.assert_allclose(layer.forward(x, training=True), expected, **tol)

    dy = rng.standard_normal(expected.shape).astype(dtype)
    dx = layer.backward(dy)
    dz = np.empty_like(dy)
    ref.bias_act_backward(dz.reshape(-1, C + 3), np.empty(C + 3, dtype), dy.reshape(-1, C + 3),
                          expected.reshape(-1, C + 3), layer.act, layer.alpha)
    expected_dw = np.empty_like(w)
    ref.conv2d_backward_weight(expected_dw, dz, col)
    expected_dx = np.empty_like(x)
    ref.conv2d_backward_input(expected_dx, np.empty_like(col), dz, w, *layer._geometry())
    np.testing.assert_allclose(layer.grads["w"], expected_dw, **tol)
    np.testing.assert_allclose(dx, expected_dx, **tol)
    assert layer._winograd_input_grad == (padding != 3)   # top/left padding above 2: no flipped-kernel twin


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


# ----------------------------------------------------------------------------- conv + max-pool fused at inference
def _network(backend, layers, shape):
    from minicnn.network import Sequential

    net = Sequential(layers, backend=backend, dtype=np.float64)
    net.build(shape, rng=np.random.default_rng(5))
    return net


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", [(12, 12, C), (13, 11, C)])   # odd conv outputs: the pool drops a row/column
@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "tanh", "identity"])
def test_conv_then_max_pool_fuse_at_inference_with_identical_results(backend, shape, activation):
    from minicnn.layers import Dense, Flatten, MaxPool2D

    net = _network(backend, [Conv2D(C + 1, 3, padding="same", activation=activation), MaxPool2D(2), Flatten(),
                             Dense(3)], shape)
    x = np.random.default_rng(6).standard_normal((4, *shape))
    fused = net.forward(x, training=False).copy()
    assert [f for _, f in net._inference_plan()] == ([True, False, False] if uses_winograd(backend)
                                                    else [False] * 4)
    unfused = x
    for layer in net.layers:
        unfused = layer.forward(unfused, False)
    np.testing.assert_array_equal(fused, unfused)
    np.testing.assert_allclose(net.forward(x, training=True), unfused, rtol=1e-12, atol=1e-12)  # no dropout here


@pytest.mark.parametrize("pool_args", [dict(pool_size=3), dict(pool_size=2, strides=1), dict(pool_size=2, padding="same")])
def test_other_pools_do_not_fuse(pool_args):
    from minicnn.layers import MaxPool2D

    net = _network("cython" if uses_winograd("cython") else "numpy",
                   [Conv2D(C, 3, padding="same"), MaxPool2D(**pool_args)], (9, 9, C))
    assert [f for _, f in net._inference_plan()] == [False, False]


def test_the_plan_follows_the_backend():
    from minicnn.backend import Backend
    from minicnn.layers import MaxPool2D

    if not uses_winograd("cython"):
        pytest.skip("needs the cython backend")
    net = _network("cython", [Conv2D(C, 3), MaxPool2D(2)], (8, 8, C))
    assert net._inference_plan()[0][1] is True
    fused = "conv2d_winograd_bias_act_maxpool2_forward"
    without = Backend(**{k: v for k, v in vars(get_backend("cython")).items() if k not in (fused, "uses_numba")})
    net.set_backend(without)   # the same kernels but the fused one
    assert net._inference_plan() == [(net.layers[0], False), (net.layers[1], False)]


def test_backward_after_an_inference_forward_is_a_clear_error():
    layer = build(Conv2D(C, 3), (6, 6, C), "numpy")
    y = layer.forward(np.zeros((1, 6, 6, C)), training=False)
    with pytest.raises(RuntimeError, match="training=True"):
        layer.backward(np.ones_like(y))
