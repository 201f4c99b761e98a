"""Gradients of every layer (float64): finite differences on the NumPy backend, the compiled backends against it.

Finite differences check the math once, on the reference; each compiled
backend (Numba, Cython) must then give the reference's outputs and gradients
(training and inference forward, dx, every parameter gradient) for the same
layers and inputs, which covers the same kernels at a fraction of the cost.
"""

import numpy as np
import pytest

from minicnn.layers import (Activation, AvgPool2D, BatchNorm, Conv2D, Dense, DepthwiseConv2D, Dropout, Flatten,
                            GlobalAvgPool2D, GlobalMaxPool2D, MaxPool2D, SpatialDropout2D)

from gradcheck import check_against_numpy, check_layer_gradients

from helpers import build_layer, importable_backends

COMPILED = importable_backends(("numba", "cython"))

IMAGE_LAYERS = {
    "conv_valid": lambda: Conv2D(3, 3, activation="tanh"),
    "conv_same_stride2": lambda: Conv2D(2, 3, strides=2, padding="same", activation="relu"),
    "conv_dilated_nobias": lambda: Conv2D(2, (3, 2), dilation=2, padding=1, use_bias=False,
                                          activation="sigmoid"),
    "conv_even_same_leaky": lambda: Conv2D(2, 2, padding="same", activation="leaky_relu", alpha=0.2),
    "maxpool": lambda: MaxPool2D(2),
    "maxpool_overlap_same": lambda: MaxPool2D(3, strides=2, padding="same"),
    "avgpool": lambda: AvgPool2D(2),
    "avgpool_pad": lambda: AvgPool2D(3, strides=2, padding=1),
    "gap": lambda: GlobalAvgPool2D(),
    "gmp": lambda: GlobalMaxPool2D(),
    "depthwise_valid": lambda: DepthwiseConv2D(3, activation="tanh"),
    "depthwise_same_stride2": lambda: DepthwiseConv2D(3, strides=2, padding="same", activation="relu"),
    "depthwise_dilated_nobias": lambda: DepthwiseConv2D((3, 2), dilation=2, padding=1, use_bias=False,
                                                        activation="sigmoid"),
    "flatten": lambda: Flatten(),
    "batchnorm4d": lambda: BatchNorm(),
    "relu": lambda: Activation("relu"),
    "leaky_relu": lambda: Activation("leaky_relu", alpha=0.1),
    "tanh": lambda: Activation("tanh"),
    "sigmoid": lambda: Activation("sigmoid"),
    "identity": lambda: Activation("identity"),
}
FLAT_LAYERS = {
    "dense_identity": lambda: Dense(4),
    "dense_relu_nobias": lambda: Dense(3, activation="relu", use_bias=False),
    "batchnorm2d": lambda: BatchNorm(),
}


def build(layer, shape, backend):
    return build_layer(layer, shape, backend, seed=1)


IMAGE_X = np.random.default_rng(2).standard_normal((2, 7, 6, 3))
FLAT_X = np.random.default_rng(3).standard_normal((4, 5))


@pytest.mark.parametrize("name", sorted(IMAGE_LAYERS))
def test_image_layer_gradients(name):
    check_layer_gradients(build(IMAGE_LAYERS[name](), (7, 6, 3), "numpy"), IMAGE_X)


@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("name", sorted(IMAGE_LAYERS))
def test_image_layer_backends_match_numpy(name, backend):
    check_against_numpy(lambda b: build(IMAGE_LAYERS[name](), (7, 6, 3), b), IMAGE_X, backend)


@pytest.mark.parametrize("name", sorted(FLAT_LAYERS))
def test_flat_layer_gradients(name):
    check_layer_gradients(build(FLAT_LAYERS[name](), (5,), "numpy"), FLAT_X)


@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("name", sorted(FLAT_LAYERS))
def test_flat_layer_backends_match_numpy(name, backend):
    check_against_numpy(lambda b: build(FLAT_LAYERS[name](), (5,), b), FLAT_X, backend)


DROPOUTS = [(Dropout, (5, 4, 3)), (SpatialDropout2D, (5, 4, 3)), (Dropout, (7,))]


def dropout_layer(cls, shape, scaling, backend):
    layer = build(cls(0.4, scaling=scaling), shape, backend)
    layer.seed, layer.layer_id = 123, 4
    return layer


def same_step(layer):
    layer.step = 7


@pytest.mark.parametrize("cls, shape", DROPOUTS)
@pytest.mark.parametrize("scaling", ["inverted", "test_time"])
def test_dropout_gradients_with_fixed_step(cls, shape, scaling):
    layer = dropout_layer(cls, shape, scaling, "numpy")
    x = np.random.default_rng(4).standard_normal((3, *shape))
    check_layer_gradients(layer, x, before_forward=lambda: same_step(layer))


@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("cls, shape", DROPOUTS)
@pytest.mark.parametrize("scaling", ["inverted", "test_time"])
def test_dropout_backends_match_numpy(cls, shape, scaling, backend):
    x = np.random.default_rng(4).standard_normal((3, *shape))
    check_against_numpy(lambda b: dropout_layer(cls, shape, scaling, b), x, backend, before_forward=same_step)


def test_a_wrong_kernel_fails_the_backend_comparison():
    """The comparison is sharp: a compiled backend whose kernel is off by one ulp-scale bias fails it."""
    from minicnn.backend import get_backend

    real = get_backend("numpy")
    skewed = type(real)(**{**vars(real), "name": "skewed"})

    def maxpool2d_backward(dx, dy, *args):
        real.maxpool2d_backward(dx, dy, *args)
        dx *= 1 + 1e-6

    skewed.maxpool2d_backward = maxpool2d_backward
    with pytest.raises(AssertionError, match="dx"):
        check_against_numpy(lambda b: build(MaxPool2D(2), (7, 6, 3), skewed if b != "numpy" else b), IMAGE_X,
                            "skewed")


def test_first_layer_skips_input_gradient():
    layer = build(Conv2D(2, 3), (5, 5, 1), "numpy")
    layer.needs_input_grad = False
    x = np.random.default_rng(0).standard_normal((2, 5, 5, 1))
    layer.forward(x, True)
    assert layer.backward(np.ones((2, 3, 3, 2))) is None
    check_layer_gradients(layer, x)
