"""Dropout semantics: inference identity, mean preservation, reproducible masks, channel drops, scaling."""

import re

import numpy as np
import pytest

from minicnn.backend import get_backend
from minicnn.backend.hash_rng import dropout_key, hash_reference, keep_threshold
from minicnn.layers import Dropout, SpatialDropout2D


def make(cls, shape, rate=0.3, scaling="inverted", seed=11, layer_id=2):
    layer = cls(rate, scaling=scaling)
    layer.build(shape, dtype=np.float32, rng=None, backend=get_backend("numpy"))
    layer.seed, layer.layer_id = seed, layer_id
    return layer


@pytest.mark.parametrize("cls", [Dropout, SpatialDropout2D])
def test_inference_is_identity(cls):
    x = np.random.default_rng(0).standard_normal((4, 5, 5, 3)).astype(np.float32)
    layer = make(cls, x.shape[1:])
    np.testing.assert_array_equal(layer.forward(x, training=False), x)


@pytest.mark.parametrize("cls", [Dropout, SpatialDropout2D])
@pytest.mark.parametrize("rate", [0.1, 0.5, 0.8])
def test_training_preserves_the_mean_and_drops_the_rate(cls, rate):
    x = np.ones((64, 16, 16, 32), dtype=np.float32)
    layer = make(cls, x.shape[1:], rate=rate)
    y = layer.forward(x, training=True)
    n_bits = x.size if cls is Dropout else 64 * 32
    tol = 4 * np.sqrt(rate * (1 - rate) / n_bits)            # 4 standard errors
    assert abs((y == 0).mean() - rate) < tol
    assert abs(y.mean() - 1.0) < tol / (1 - rate)
    assert set(np.unique(y)) <= {0.0, np.float32(1 / (1 - rate))}


def test_masks_reproducible_for_same_seed_and_step_and_differ_across_steps():
    x = np.ones((8, 100), dtype=np.float32)
    a, b = make(Dropout, (100,)), make(Dropout, (100,))
    first_a, first_b = a.forward(x, True).copy(), b.forward(x, True).copy()
    np.testing.assert_array_equal(first_a, first_b)
    second_a = a.forward(x, True).copy()
    assert (second_a != first_a).mean() > 0.2
    c = make(Dropout, (100,), seed=12)
    assert (c.forward(x, True) != first_a).mean() > 0.2
    d = make(Dropout, (100,), layer_id=3)
    assert (d.forward(x, True) != first_a).mean() > 0.2


def test_mask_is_the_documented_hash():
    x = np.ones(1000, dtype=np.float32)
    layer = make(Dropout, (1000,), rate=0.25)
    y = layer.forward(x[None], True)[0]
    key = dropout_key(11, 2, 0)
    keep = hash_reference(np.arange(1000), *key) < keep_threshold(0.25)
    np.testing.assert_array_equal(y != 0, keep)


def test_spatial_dropout_zeroes_whole_channels():
    x = np.random.default_rng(1).uniform(1, 2, (16, 6, 5, 12)).astype(np.float32)
    layer = make(SpatialDropout2D, x.shape[1:], rate=0.5)
    y = layer.forward(x, True)
    dropped = (y == 0).all(axis=(1, 2))
    kept = (y != 0).all(axis=(1, 2))
    assert (dropped | kept).all()
    assert 0 < dropped.mean() < 1
    np.testing.assert_allclose(y[kept[:, None, None, :].repeat(6, 1).repeat(5, 2)],
                               2 * x[kept[:, None, None, :].repeat(6, 1).repeat(5, 2)], rtol=1e-6)


def test_backward_uses_the_forward_mask():
    x = np.random.default_rng(2).standard_normal((4, 50)).astype(np.float32)
    layer = make(Dropout, (50,), rate=0.5)
    y = layer.forward(x, True).copy()
    dx = layer.backward(np.ones_like(x))
    np.testing.assert_array_equal(dx != 0, y != 0)


@pytest.mark.parametrize("rate", [0.2, 0.5])
def test_test_time_scaling_matches_inverted_in_expectation(rate):
    """Classic dropout: train unscaled, multiply by the keep probability 1 - rate at inference."""
    x = np.random.default_rng(3).uniform(0, 1, (1, 200_000)).astype(np.float32)
    classic = make(Dropout, (200_000,), rate=rate, scaling="test_time")
    inverted = make(Dropout, (200_000,), rate=rate)
    train_classic = classic.forward(x, True).mean()
    infer_classic = classic.forward(x, False).mean()
    np.testing.assert_allclose(classic.forward(x, False), x * np.float32(1 - rate), rtol=1e-6)
    # expectation of training output equals inference output, for both schemes
    assert abs(train_classic - infer_classic) < 0.01 * infer_classic
    assert abs(inverted.forward(x, True).mean() - inverted.forward(x, False).mean()) < 0.01 * x.mean()


def test_rate_zero_is_identity_in_training():
    x = np.ones((2, 10), dtype=np.float32)
    layer = make(Dropout, (10,), rate=0.0)
    np.testing.assert_array_equal(layer.forward(x, True), x)


@pytest.mark.parametrize("rate", [-0.1, 1.0, 1.5, "0.5", None, True])
def test_invalid_rate_names_the_value(rate):
    with pytest.raises(ValueError, match="received rate=" + re.escape(repr(rate))):
        Dropout(rate)


def test_invalid_scaling_names_the_value():
    with pytest.raises(ValueError, match="scaling='rate'"):
        Dropout(0.5, scaling="rate")


def test_spatial_dropout_needs_image_input():
    with pytest.raises(ValueError, match="input_shape=\\(10,\\)"):
        make(SpatialDropout2D, (10,))
