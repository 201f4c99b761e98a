"""The direct inference kernel of shallow convs (``conv2d_direct_bias_act_forward``: the RGB stems) and its route.

The kernel of each backend against the NumPy reference (outputs NaN-prefilled) over every geometry the kernel
handles (kernel sizes, strides, paddings, dilations, output-width tails of the 4-pixel blocks, channel tails of the
16/8-channel blocks, every activation, float32/float64, batch 1..N), 1 vs 2 threads bit-identical, and bit-equal to
the same backend's im2col route where that route runs the shallow product (K < CONV_SMALL_K: same taps, same
order). The layer: the route is chosen by the shape only, its inference forward equals its training forward bit for
bit and a one-sample prediction equals the same sample in a batch; torch parity of the inference forward.
"""

import numpy as np
import pytest

from minicnn.backend import reference as ref
from minicnn.backend.tuning import CONV_SMALL_K
from minicnn.layers import Conv2D
from minicnn.layers.conv import DIRECT_MAX_WEIGHTS
from minicnn.threads import thread_limits

from helpers import build_layer, importable_backends, kernel_module

FAST = ("numba", "cython")
#: (act code, alpha): identity, relu, leaky relu (in registers) and tanh, sigmoid (the row epilogue after).
ACTS = [(0, 0.0), (1, 0.0), (2, 0.1), (3, 0.0), (4, 0.0)]
# (H, W, C, F, KH, KW, sh, sw, pt, pl, dh, dw): 3x3 "same" at stride 1 and 2 (the stems), valid, asymmetric
# padding, 1x1 / 2x3 / 5x5 kernels, dilation; widths whose output leaves 0-3 pixels after the 4-pixel blocks;
# F with 16-, 8- and scalar-channel tails; C = 1-4.
GEOMETRIES = [
    (9, 11, 3, 16, 3, 3, 1, 1, 1, 1, 1, 1), (9, 10, 3, 33, 3, 3, 2, 2, 0, 0, 1, 1), (8, 8, 3, 24, 3, 3, 2, 2, 1, 1, 1, 1),
    (7, 9, 2, 7, 3, 3, 1, 1, 0, 0, 1, 1), (6, 13, 1, 17, 3, 3, 1, 1, 1, 1, 1, 1), (10, 7, 4, 8, 2, 3, 1, 2, 1, 0, 1, 1),
    (11, 12, 3, 15, 5, 5, 1, 1, 2, 2, 1, 1), (9, 9, 3, 5, 3, 3, 1, 1, 2, 2, 2, 2), (5, 6, 3, 40, 1, 1, 2, 2, 0, 0, 1, 1),
    (3, 3, 3, 9, 3, 3, 1, 1, 1, 1, 1, 1), (12, 12, 3, 32, 3, 3, 2, 2, 0, 1, 1, 1), (4, 22, 2, 1, 3, 3, 1, 1, 1, 1, 1, 1),
]


def _out(H, W, KH, KW, sh, sw, pt, pl, dh, dw):
    """Output size when the bottom/right padding equals the top/left one."""
    return (H + 2 * pt - dh * (KH - 1) - 1) // sh + 1, (W + 2 * pl - dw * (KW - 1) - 1) // sw + 1


def _case(rng, dtype, N, H, W, C, F, KH, KW):
    x = rng.standard_normal((N, H, W, C)).astype(dtype)
    w = (rng.standard_normal((KH, KW, C, F)) / np.sqrt(KH * KW * C)).astype(dtype)
    b = rng.standard_normal(F).astype(dtype)
    return x, w, b


@pytest.mark.parametrize("backend", FAST)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_direct_conv_matches_reference(backend, dtype, geometry):
    H, W, C, F, KH, KW, sh, sw, pt, pl, dh, dw = geometry
    Ho, Wo = _out(H, W, KH, KW, sh, sw, pt, pl, dh, dw)
    kernel = getattr(kernel_module(backend), "conv2d_direct_bias_act_forward")
    im2col = getattr(kernel_module(backend), "conv2d_bias_act_forward")
    rng = np.random.default_rng(H * 100 + W + C)
    tol = 2e-5 if dtype == np.float32 else 1e-12
    for N in (1, 2, 5):
        x, w, b = _case(rng, dtype, N, H, W, C, F, KH, KW)
        for act, alpha in ACTS:
            want = np.full((N, Ho, Wo, F), np.nan, dtype)
            ref.conv2d_direct_bias_act_forward(want, x, w, b, act, alpha, sh, sw, pt, pl, dh, dw)
            got = np.full_like(want, np.nan)
            kernel(got, x, w, b, act, alpha, sh, sw, pt, pl, dh, dw)
            np.testing.assert_allclose(got, want, rtol=tol, atol=tol)
            if KH * KW * C < CONV_SMALL_K:   # the im2col route's shallow product: the same sums in the same order
                same = np.full_like(want, np.nan)
                im2col(same, x, w, b, np.empty((N, Ho * Wo, KH * KW * C), dtype), act, alpha,
                       sh, sw, pt, pl, dh, dw)
                np.testing.assert_array_equal(got, same)


@pytest.mark.parametrize("backend", FAST)
@pytest.mark.parametrize("stride", [1, 2])
def test_direct_conv_is_bit_identical_on_1_and_2_threads(backend, stride):
    """A shape large enough for a team of two (the RGB stem at batch 16)."""
    kernel = getattr(kernel_module(backend), "conv2d_direct_bias_act_forward")
    x, w, b = _case(np.random.default_rng(1), np.float32, 16, 32, 32, 3, 33, 3, 3)
    Ho = Wo = 32 // stride
    want = np.empty((16, Ho, Wo, 33), np.float32)
    ref.conv2d_direct_bias_act_forward(want, x, w, b, 2, 0.1, stride, stride, 1 - (stride - 1), 1 - (stride - 1), 1, 1)
    runs = []
    for n_threads in (1, 2):
        got = np.full_like(want, np.nan)
        with thread_limits(n_threads):
            kernel(got, x, w, b, 2, 0.1, stride, stride, 2 - stride, 2 - stride, 1, 1)
        runs.append(got)
    np.testing.assert_allclose(runs[0], want, rtol=2e-5, atol=2e-5)
    np.testing.assert_array_equal(runs[0], runs[1])


@pytest.mark.parametrize("backend", FAST)
def test_direct_conv_without_taps_is_the_epilogue_of_zero(backend):
    kernel = getattr(kernel_module(backend), "conv2d_direct_bias_act_forward")
    x = np.ones((2, 4, 4, 0), np.float32)
    w, b = np.ones((3, 3, 0, 5), np.float32), np.linspace(-1, 1, 5).astype(np.float32)
    got = np.full((2, 4, 4, 5), np.nan, np.float32)
    kernel(got, x, w, b, 1, 0.0, 1, 1, 1, 1, 1, 1)
    want = np.full_like(got, np.nan)
    ref.conv2d_direct_bias_act_forward(want, x, w, b, 1, 0.0, 1, 1, 1, 1, 1, 1)
    np.testing.assert_array_equal(got, want)


def test_cython_direct_conv_names_a_mismatched_argument():
    kernel = getattr(kernel_module("cython"), "conv2d_direct_bias_act_forward")
    x, w, b = _case(np.random.default_rng(2), np.float32, 2, 6, 6, 3, 8, 3, 3)
    with pytest.raises(ValueError, match="shapes do not match"):
        kernel(np.empty((2, 6, 6, 9), np.float32), x, w, b, 1, 0.0, 1, 1, 1, 1, 1, 1)
    with pytest.raises(ValueError, match="y has dtype float64"):
        kernel(np.empty((2, 6, 6, 8)), x, w, b, 1, 0.0, 1, 1, 1, 1, 1, 1)


@pytest.mark.parametrize("layer, shape, direct", [
    (Conv2D(16, 3, padding="same"), (32, 32, 3), True), (Conv2D(16, 3, strides=2, padding="same"), (32, 32, 3), True),
    (Conv2D(8, 3), (9, 9, 2), True), (Conv2D(32, 3), (9, 9, 1), True), (Conv2D(16, 3, strides=2), (9, 9, 16), True),
    (Conv2D(32, 3, strides=2), (9, 9, 16), True), (Conv2D(33, 3, strides=2), (9, 9, 16), False),
    (Conv2D(32, 1, strides=2), (9, 9, 16), True), (Conv2D(64, 1, strides=2), (9, 9, 64), True),
    (Conv2D(73, 1, strides=2), (9, 9, 64), False), (Conv2D(32, 1), (9, 9, 16), False),
    (Conv2D(64, 3, strides=2), (9, 9, 32), False),
    (Conv2D(8, 3, padding="same"), (9, 9, 16), False)])   # the last: Winograd; (32, 1) on 16: the pointwise route
def test_direct_route_is_chosen_by_the_shape(layer, shape, direct):
    conv = build_layer(layer, shape, "numpy")
    KH, KW, C, F = conv.params["w"].shape
    assert conv._direct is direct
    assert direct == (KH * KW * C * F <= DIRECT_MAX_WEIGHTS and not conv._winograd_forward and not conv._pointwise)


@pytest.mark.parametrize("backend", importable_backends(("numpy", "numba", "cython", "auto")))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("strides, padding", [(1, "same"), (2, "same"), (1, "valid"), (2, "valid")])
@pytest.mark.parametrize("activation, use_bias", [("relu", True), ("leaky_relu", False), ("tanh", True),
                                                  ("identity", True)])
def test_direct_inference_forward_equals_training_forward_and_one_sample(backend, dtype, strides, padding,
                                                                        activation, use_bias):
    # 15 filters: below the blocked route's vector (BLOCKED_MIN_FILTERS; test_blocked_conv.py has that route)
    conv = build_layer(Conv2D(15, 3, strides=strides, padding=padding, activation=activation, use_bias=use_bias),
                       (11, 10, 3), backend, dtype=dtype)
    if use_bias:
        conv.params["b"][:] = np.random.default_rng(3).standard_normal(15)
    assert conv._direct and not conv._blocked
    x = np.random.default_rng(4).standard_normal((7, 11, 10, 3)).astype(dtype)
    want = conv.forward(x, training=True).copy()   # im2col + product, columns kept for the weight gradient
    conv._buffers["y"].fill(np.nan)
    got = conv.forward(x, training=False).copy()
    np.testing.assert_array_equal(got, want)   # K = 27 < CONV_SMALL_K: the same sums as the im2col route
    for n in (0, 6):
        one = conv.forward(x[n:n + 1], training=False)
        np.testing.assert_array_equal(one[0], got[n])


@pytest.mark.parametrize("backend", importable_backends(("numba", "cython")))
@pytest.mark.parametrize("k, stride, padding, dilation, C", [(3, 1, "same", 1, 3), (3, 2, "same", 1, 3),
                                                            (3, 1, "valid", 2, 3), (2, 1, "valid", 1, 4),
                                                            (3, 2, "valid", 1, 2)])
def test_direct_inference_forward_matches_torch(backend, k, stride, padding, dilation, C):
    torch = pytest.importorskip("torch")
    conv = build_layer(Conv2D(12, k, strides=stride, padding=padding, dilation=dilation, activation="relu"),
                       (13, 12, C), backend)
    assert conv._direct
    conv.params["b"][:] = np.random.default_rng(5).standard_normal(12) * 0.1
    x = np.random.default_rng(6).standard_normal((5, 13, 12, C))
    xt = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())
    if padding == "same":   # TensorFlow "same": the extra row/column (if any) at the bottom/right
        total_h = max((-(-13 // stride) - 1) * stride + k - 13, 0)
        total_w = max((-(-12 // stride) - 1) * stride + k - 12, 0)
        xt = torch.nn.functional.pad(xt, (conv.pl, total_w - conv.pl, conv.pt, total_h - conv.pt))
    t = torch.nn.Conv2d(C, 12, k, stride=stride, dilation=dilation).double()
    with torch.no_grad():
        t.weight.copy_(torch.from_numpy(conv.params["w"].transpose(3, 2, 0, 1).copy()))
        t.bias.copy_(torch.from_numpy(conv.params["b"]))
        want = torch.relu(t(xt)).numpy().transpose(0, 2, 3, 1)
    np.testing.assert_allclose(conv.forward(x, training=False), want, rtol=1e-10, atol=1e-10)
