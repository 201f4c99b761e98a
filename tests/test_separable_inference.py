"""A depthwise-separable block's inference in one pass (``separable_conv2d_bias_act_forward``, :mod:`minicnn.layers.separable`).

The kernel against its NumPy twin (the depthwise reference then the pointwise one), outputs NaN-prefilled, over
channels 16-48, output channels with every tail of the pointwise tiles, 3x3 and 5x3 kernels, strides 1 and 2,
"same" and "valid" padding, dilation, batches 1, 3 and 8, every depthwise activation it fuses and every pointwise
one; 1 vs 2 threads bit-identical; what it does not take is refused naming it. The route: a chain's inference plan
fuses a depthwise step with the pointwise conv after it (BatchNorm folded or not), equal to the unfused pass, and
falls back to the two layers where the kernel is not compiled or the channels are not a multiple of 16.
"""

import numpy as np
import pytest

from minicnn.backend import reference as ref
from minicnn.layers import Activation, BatchNorm, Chain, Conv2D, DepthwiseConv2D
from minicnn.layers.folding import fold_batchnorm
from minicnn.layers.separable import SeparableInference
from minicnn.threads import thread_limits

from helpers import build_layer, importable_backends, kernel_module

NAME = "separable_conv2d_bias_act_forward"
# (H, W, KH, KW, sh, sw, pt, pl, dh, dw): 3x3 same at stride 1 and 2, valid, a 5x3 kernel, dilation 2, odd sizes
GEOMETRIES = [(8, 8, 3, 3, 1, 1, 1, 1, 1, 1), (9, 7, 3, 3, 2, 2, 1, 1, 1, 1), (8, 8, 3, 3, 2, 2, 0, 0, 1, 1),
              (6, 11, 3, 3, 1, 1, 0, 0, 1, 1), (7, 9, 5, 3, 1, 2, 2, 1, 1, 1), (9, 9, 3, 3, 1, 1, 2, 2, 2, 2),
              (3, 3, 3, 3, 1, 1, 1, 1, 1, 1)]


def _out(H, W, KH, KW, sh, sw, pt, pl, dh, dw):
    return (H + 2 * pt - dh * (KH - 1) - 1) // sh + 1, (W + 2 * pl - dw * (KW - 1) - 1) // sw + 1


def _case(rng, N, H, W, C, F, KH, KW):
    x = rng.standard_normal((N, H, W, C)).astype(np.float32)
    wd = rng.standard_normal((KH, KW, C)).astype(np.float32) / 3
    wp = (rng.standard_normal((C, F)) / np.sqrt(C)).astype(np.float32)
    return x, wd, rng.standard_normal(C).astype(np.float32), wp, rng.standard_normal(F).astype(np.float32)


@pytest.mark.parametrize("backend", ["numba", "cython"])
@pytest.mark.parametrize("geometry", GEOMETRIES)
@pytest.mark.parametrize("C, F", [(16, 8), (32, 33), (48, 1), (16, 64)])
def test_kernel_matches_reference(backend, geometry, C, F):
    H, W, KH, KW, sh, sw, pt, pl, dh, dw = geometry
    Ho, Wo = _out(*geometry)
    kernel = getattr(kernel_module(backend), NAME)
    rng = np.random.default_rng(C + F + H)
    for N in (1, 3, 8):
        x, wd, bd, wp, bp = _case(rng, N, H, W, C, F, KH, KW)
        for act_d, alpha_d in [(0, 0.0), (1, 0.0), (2, 0.2)]:
            for act_p, alpha_p in [(0, 0.0), (1, 0.0), (2, 0.1), (3, 0.0), (4, 0.0)]:
                args = (x, wd, bd, act_d, alpha_d, wp, bp, act_p, alpha_p, sh, sw, pt, pl, dh, dw)
                want = np.full((N, Ho, Wo, F), np.nan, np.float32)
                ref.separable_conv2d_bias_act_forward(want, *args)
                got = np.full_like(want, np.nan)
                kernel(got, *args)
                np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-5, err_msg=f"N={N} {act_d} {act_p}")


@pytest.mark.parametrize("stride", [1, 2])
def test_kernel_bit_identical_on_1_and_2_threads(stride):
    kernel = getattr(kernel_module("cython"), NAME)
    x, wd, bd, wp, bp = _case(np.random.default_rng(1), 16, 16, 16, 32, 48, 3, 3)
    runs = []
    for n_threads in (1, 2):
        y = np.full((16, 16 // stride, 16 // stride, 48), np.nan, np.float32)
        with thread_limits(n_threads):
            kernel(y, x, wd, bd, 1, 0.0, wp, bp, 1, 0.0, stride, stride, 1 if stride == 1 else 0,
                   1 if stride == 1 else 0, 1, 1)
        runs.append(y)
    np.testing.assert_array_equal(runs[0].view(np.uint32), runs[1].view(np.uint32))


def test_kernel_refuses_what_it_does_not_take():
    kernel = getattr(kernel_module("cython"), NAME)
    x, wd, bd, wp, bp = _case(np.random.default_rng(2), 2, 6, 6, 16, 8, 3, 3)
    y = np.empty((2, 6, 6, 8), np.float32)
    geometry = (1, 1, 1, 1, 1, 1)
    with pytest.raises(ValueError, match="act_d=3"):
        kernel(y, x, wd, bd, 3, 0.0, wp, bp, 0, 0.0, *geometry)
    x12, wd12, bd12, wp12, _ = _case(np.random.default_rng(3), 2, 6, 6, 12, 8, 3, 3)
    with pytest.raises(ValueError, match="C=12"):
        kernel(y, x12, wd12, bd12, 0, 0.0, wp12, bp, 0, 0.0, *geometry)
    with pytest.raises(ValueError, match="shapes do not match"):
        kernel(y, x, wd, bd, 0, 0.0, np.ascontiguousarray(wp[:, :7]), bp, 0, 0.0, *geometry)


def _sep_chain(C, F, stride, batch_norm):
    depthwise = DepthwiseConv2D(3, strides=stride, padding="same", use_bias=not batch_norm,
                                activation="identity" if batch_norm else "relu")
    layers = [depthwise, BatchNorm(), Activation("relu")] if batch_norm else [depthwise]
    pointwise = Conv2D(F, 1, use_bias=not batch_norm, activation="identity" if batch_norm else "relu")
    return Chain(layers + ([pointwise, BatchNorm(), Activation("relu")] if batch_norm else [pointwise]))


@pytest.mark.parametrize("backend", importable_backends(("numpy", "numba", "cython", "auto")))
@pytest.mark.parametrize("C, stride, batch_norm", [(16, 1, True), (32, 2, True), (16, 2, False), (12, 1, True)])
def test_chain_inference_fuses_and_equals_the_unfused_pass(backend, C, stride, batch_norm):
    chain = build_layer(_sep_chain(C, 24, stride, batch_norm), (9, 8, C), backend, dtype=np.float32)
    rng = np.random.default_rng(5)
    for layer in chain.walk():
        if isinstance(layer, BatchNorm):
            layer.running_mean[:] = rng.standard_normal(layer.running_mean.shape)
            layer.running_var[:] = rng.random(layer.running_var.shape) + 0.5
    x = rng.standard_normal((5, 9, 8, C)).astype(np.float32)
    plan = chain._inference_layers()
    assert [type(step) for step in plan] == [SeparableInference]
    got = chain.forward(x, training=False).copy()
    want = x
    for step in fold_batchnorm(chain.layers):   # the same folded steps, one after the other
        want = step.forward(want, False)
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-5)
    for n_threads in (1, 2):
        with thread_limits(n_threads):
            again = chain.forward(x, training=False)
        np.testing.assert_array_equal(again, got)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_the_network_itself_keeps_its_steps_apart():
    """A depthwise layer then a pointwise conv at the top level stay two steps (the int8/bf16 lowering reads the
    network's steps one by one); inside a ``sep`` block they are one."""
    from minicnn import CNNClassifier

    X = np.random.default_rng(0).random((8, 8, 8, 16), dtype=np.float32)
    clf = CNNClassifier(layers=("dw3", "conv16x1", "sep16", "gap"), padding="same", max_iter=1, batch_size=8,
                        random_state=0).fit(X, np.arange(8) % 2)
    top = [type(step).__name__ for step in clf.network_._inference_layers()]
    assert top[:2] == ["DepthwiseConv2D", "Conv2D"], top
    block = next(layer for layer in clf.network_.walk() if isinstance(layer, Chain) and layer.name == "sep16")
    assert [type(step) for step in block._inference_layers()] == [SeparableInference]
