"""The inference routes of the conv forward: sample groups of the im2col kernel, the 4-row shallow product,
and the pointwise (1x1) conv as one dense product.

Each route against the NumPy reference (outputs NaN-prefilled), 1 vs 2 threads bit-identical, and the layer's
inference forward against PyTorch's ``Conv2d``.
"""

import numpy as np
import pytest

from minicnn.backend import reference as ref
from minicnn.layers import Conv2D
from minicnn.threads import thread_limits

from helpers import build_layer, importable_backends, kernel_module

BACKENDS = ("numpy", "numba", "cython")
ACTS = [(0, 0.0), (1, 0.0), (2, 0.1)]


# (H, W, C, F, kernel, stride, pad): output pixels below, at and above the group size (512), inner sizes K below
# the shallow bound (K = 9, 12, 27: the 4-row product with its 1-3 row tail and 16/8/scalar channel tails) and above
# (K = 32, 144: BLAS), strided and 1x1 convs.
SHAPES = [(8, 8, 1, 16, 3, 1, 1), (7, 5, 3, 19, 3, 1, 1), (9, 9, 3, 7, 3, 2, 1), (16, 16, 3, 16, 3, 2, 1),
          (23, 23, 3, 32, 3, 1, 1), (22, 23, 4, 5, 1, 1, 0), (5, 5, 32, 24, 1, 1, 0), (6, 5, 16, 40, 3, 1, 1),
          (16, 16, 16, 32, 3, 2, 1), (8, 8, 32, 64, 1, 2, 0), (3, 2, 12, 9, 1, 1, 0), (1, 1, 27, 33, 1, 1, 0)]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("N", [1, 3, 8, 21])
@pytest.mark.parametrize("H, W, C, F, k, s, p", SHAPES)
def test_conv2d_bias_act_forward_groups_match_reference(backend, N, H, W, C, F, k, s, p):
    rng = np.random.default_rng(N * 1000 + H * 10 + C)
    x = rng.standard_normal((N, H, W, C)).astype(np.float32)
    w = (rng.standard_normal((k, k, C, F)) / np.sqrt(k * k * C)).astype(np.float32)
    b = rng.standard_normal(F).astype(np.float32)
    Ho, Wo = (H + 2 * p - k) // s + 1, (W + 2 * p - k) // s + 1
    geometry = (s, s, p, p, 1, 1)
    for act, alpha in ACTS:
        expected = np.empty((N, Ho, Wo, F), np.float32)
        ref.conv2d_forward(expected, x, w, np.empty((N, Ho * Wo, k * k * C), np.float32), *geometry)
        ref.bias_act_forward(expected.reshape(-1, F), expected.reshape(-1, F), b, act, alpha)
        kernel = getattr(kernel_module(backend), "conv2d_bias_act_forward")
        got = {}
        for n_threads in (1, 2):
            y = np.full_like(expected, np.nan)
            col = np.full((N, Ho * Wo, k * k * C), np.nan, np.float32)
            with thread_limits(n_threads):
                kernel(y, x, w, b, col, act, alpha, *geometry)
            got[n_threads] = y
            expected_col = np.empty_like(col)
            ref.conv2d_forward(np.empty_like(y), x, w, expected_col, *geometry)
            np.testing.assert_array_equal(col, expected_col)   # the weight gradient reads it
        np.testing.assert_allclose(got[1], expected, rtol=1e-4, atol=1e-4)
        np.testing.assert_array_equal(got[1], got[2])


@pytest.mark.parametrize("backend", importable_backends(BACKENDS))
@pytest.mark.parametrize("padding", ["valid", "same"])
@pytest.mark.parametrize("use_bias", [True, False])
@pytest.mark.parametrize("activation", ["identity", "relu", "leaky_relu"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pointwise_inference_forward_matches_training_forward(backend, padding, use_bias, activation, dtype):
    # 64 x 80 weights: above the direct route's bound (DIRECT_MAX_WEIGHTS), so the dense product runs
    conv = build_layer(Conv2D(80, 1, padding=padding, use_bias=use_bias, activation=activation), (7, 6, 64),
                       backend, dtype=dtype)
    if use_bias:
        conv.params["b"][:] = np.random.default_rng(3).standard_normal(80)
    assert conv._pointwise and not conv._direct
    x = np.random.default_rng(4).standard_normal((9, 7, 6, 64)).astype(dtype)
    want = conv.forward(x, training=True).copy()   # im2col + product, columns kept for the weight gradient
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for n_threads in (1, 2):
        with thread_limits(n_threads):
            conv._buffers["y"].fill(np.nan)
            got = conv.forward(x, training=False).copy()
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol)
        if n_threads == 1:
            first = got
    np.testing.assert_array_equal(first, got)


def test_pointwise_route_is_only_a_unit_stride_unpadded_1x1():
    for layer, shape, pointwise in [(Conv2D(4, 1), (5, 5, 3), True), (Conv2D(4, 1, padding="same"), (5, 5, 3), True),
                                    (Conv2D(4, 1, strides=2), (5, 5, 3), False),
                                    (Conv2D(4, 1, padding=1), (5, 5, 3), False),
                                    (Conv2D(4, 3, padding="same"), (5, 5, 3), False)]:
        assert build_layer(layer, shape, "numpy")._pointwise is pointwise, layer


def test_pointwise_inference_then_backward_asks_for_a_training_forward():
    conv = build_layer(Conv2D(4, 1), (5, 5, 3), "numpy")
    y = conv.forward(np.ones((2, 5, 5, 3)), training=False)
    with pytest.raises(RuntimeError, match="training=True"):
        conv.backward(np.ones_like(y))


@pytest.mark.parametrize("backend", importable_backends(BACKENDS))
@pytest.mark.parametrize("k, stride, padding", [(1, 1, "valid"), (1, 2, "valid"), (3, 1, "same"), (3, 2, "same")])
@pytest.mark.parametrize("C", [3, 16])
def test_conv_inference_forward_matches_torch(backend, k, stride, padding, C):
    torch = pytest.importorskip("torch")
    conv = build_layer(Conv2D(12, k, strides=stride, padding=padding, activation="relu"), (12, 12, C), backend)
    conv.params["b"][:] = np.random.default_rng(5).standard_normal(12) * 0.1
    x = np.random.default_rng(6).standard_normal((5, 12, 12, C))
    t = torch.nn.Conv2d(C, 12, k, stride=stride, padding=(k // 2 if padding == "same" and stride == 1 else 0)).double()
    with torch.no_grad():
        t.weight.copy_(torch.from_numpy(conv.params["w"].transpose(3, 2, 0, 1).copy()))
        t.bias.copy_(torch.from_numpy(conv.params["b"]))
        xt = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())
        if padding == "same" and stride == 2:   # TensorFlow "same": the extra row/column at the bottom/right
            xt = torch.nn.functional.pad(xt, (0, 1, 0, 1))
            t.padding = (0, 0)
        want = torch.relu(t(xt)).numpy().transpose(0, 2, 3, 1)
    np.testing.assert_allclose(conv.forward(x, training=False), want, rtol=1e-10, atol=1e-10)
