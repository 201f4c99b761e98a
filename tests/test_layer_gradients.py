"""Finite-difference gradient checks (float64) of every layer, on every available backend."""

import numpy as np
import pytest

from minicnn.backend import get_backend
from minicnn.layers import (Activation, AvgPool2D, BatchNorm, Conv2D, Dense, Dropout, Flatten,
                            GlobalAvgPool2D, MaxPool2D, SpatialDropout2D)

from gradcheck import check_layer_gradients

from helpers import importable_backends



def available_backends():
    return importable_backends(("numpy", "numba", "cython"))


BACKENDS = available_backends()

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
    layer.build(shape, dtype=np.float64, rng=np.random.default_rng(1), backend=get_backend(backend))
    return layer


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", sorted(IMAGE_LAYERS))
def test_image_layer_gradients(name, backend):
    layer = build(IMAGE_LAYERS[name](), (7, 6, 3), backend)
    x = np.random.default_rng(2).standard_normal((2, 7, 6, 3))
    check_layer_gradients(layer, x)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", sorted(FLAT_LAYERS))
def test_flat_layer_gradients(name, backend):
    layer = build(FLAT_LAYERS[name](), (5,), backend)
    x = np.random.default_rng(3).standard_normal((4, 5))
    check_layer_gradients(layer, x)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cls, shape", [(Dropout, (5, 4, 3)), (SpatialDropout2D, (5, 4, 3)), (Dropout, (7,))])
@pytest.mark.parametrize("scaling", ["inverted", "test_time"])
def test_dropout_gradients_with_fixed_step(cls, shape, scaling, backend):
    layer = build(cls(0.4, scaling=scaling), shape, backend)
    layer.seed, layer.layer_id = 123, 4
    x = np.random.default_rng(4).standard_normal((3, *shape))

    def same_step():
        layer.step = 7

    check_layer_gradients(layer, x, before_forward=same_step)


def test_first_layer_skips_input_gradient():
    layer = build(Conv2D(2, 3), (5, 5, 1), "numpy")
    layer.needs_input_grad = False
    x = np.random.default_rng(0).standard_normal((2, 5, 5, 1))
    layer.forward(x, True)
    assert layer.backward(np.ones((2, 3, 3, 2))) is None
    check_layer_gradients(layer, x)
