"""Sequential: whole-network gradient check, summary, learning, seeded reproducibility."""

import numpy as np
import pytest

from minicnn.layers import (Activation, AvgPool2D, BatchNorm, Conv2D, Dense, Dropout, Flatten, MaxPool2D,
                            SpatialDropout2D)
from minicnn.losses import softmax_cross_entropy
from minicnn.network import Sequential
from minicnn.optim import SGD, Adam
from minicnn.training import train_epoch

from gradcheck import ATOL, RTOL, numerical_grad


def small_net(backend="numpy", dtype=np.float64):
    return Sequential([
        Conv2D(3, 3, padding="same", activation="relu"), BatchNorm(), SpatialDropout2D(0.3),
        MaxPool2D(2), Conv2D(4, 2, activation="tanh"), AvgPool2D(2, padding="same"), Flatten(),
        Dense(5, activation="leaky_relu"), Dropout(0.2), Dense(3),
    ], backend=backend, dtype=dtype)


def test_whole_network_gradient_check():
    rng = np.random.default_rng(0)
    net = small_net()
    net.build((6, 6, 2), rng=rng)
    x = rng.standard_normal((3, 6, 6, 2))
    labels = np.array([0, 2, 1])
    steps = [layer for layer in net.layers if layer.stochastic]

    def loss():
        for layer in steps:
            layer.step = 5
        return softmax_cross_entropy(net.forward(x, training=True), labels)[0]

    for layer in steps:
        layer.step = 5
    _, grad = softmax_cross_entropy(net.forward(x, training=True), labels)
    net.backward(grad)
    analytic = [g.copy() for _, g in net.params_and_grads()]
    for (param, _), got in zip(net.params_and_grads(), analytic):
        np.testing.assert_allclose(got, numerical_grad(loss, param), rtol=RTOL, atol=ATOL)


def test_summary_marks_dropout_and_counts_parameters():
    net = small_net()
    net.build((6, 6, 2), rng=np.random.default_rng(0))
    text = net.summary()
    assert text.count("<-- dropout") == 2
    assert "SpatialDropout2D(rate=0.3, spatial" in text
    assert f"Total params: {net.n_params:,}" in text
    assert net.n_params == (3 * 3 * 2 * 3 + 3) + 2 * 3 + (2 * 2 * 3 * 4 + 4) + (4 * 5 + 5) + (5 * 3 + 3)
    assert "(None, 3, 3, 3)" in text


def digits_subset():
    from sklearn.datasets import load_digits
    digits = load_digits()
    X = (digits.images / 16.0).astype(np.float32)[..., None]
    order = np.random.default_rng(0).permutation(len(X))   # the file is ordered by writer
    return X[order], digits.target[order]


def fit_digits(seed, epochs=8, backend="numpy"):
    X, y = digits_subset()
    rng = np.random.default_rng(seed)
    net = Sequential([Conv2D(8, 3, padding="same", activation="relu"), MaxPool2D(2), Dropout(0.25),
                      Flatten(), Dense(32, activation="relu"), Dense(10)], backend=backend)
    net.build((8, 8, 1), rng=rng)
    opt = Adam(3e-3)
    losses = [train_epoch(net, softmax_cross_entropy, opt, X[:1200], y[:1200], 32, rng) for _ in range(epochs)]
    accuracy = (net.forward(X[1200:]).argmax(axis=1) == y[1200:]).mean()
    return net, losses, accuracy


def test_small_network_learns_digits():
    _, losses, accuracy = fit_digits(0)
    assert losses[-1] < 0.25 * losses[0]
    assert accuracy > 0.93


def test_same_seed_same_weights_and_different_seed_differs():
    a, _, _ = fit_digits(1, epochs=2)
    b, _, _ = fit_digits(1, epochs=2)
    c, _, _ = fit_digits(2, epochs=2)
    for (pa, _), (pb, _), (pc, _) in zip(a.params_and_grads(), b.params_and_grads(), c.params_and_grads()):
        np.testing.assert_array_equal(pa, pb)
        assert not np.array_equal(pa, pc)


def test_xor_like_problem_is_learned_with_sgd_nesterov():
    rng = np.random.default_rng(3)
    X = rng.uniform(-1, 1, (400, 2))
    y = ((X[:, 0] > 0) ^ (X[:, 1] > 0)).astype(int)
    net = Sequential([Dense(16, activation="tanh"), Dense(16, activation="relu"), Dense(2)],
                     backend="numpy", dtype=np.float64)
    net.build((2,), rng=rng)
    opt = SGD(0.1, momentum=0.9, nesterov=True)
    for _ in range(60):
        train_epoch(net, softmax_cross_entropy, opt, X, y, 32, rng)
    assert (net.forward(X).argmax(axis=1) == y).mean() > 0.95


def test_mc_pass_keeps_dropout_active_but_batchnorm_in_inference():
    net = small_net()
    net.build((6, 6, 2), rng=np.random.default_rng(0))
    x = np.random.default_rng(1).standard_normal((4, 6, 6, 2))
    plain = net.forward(x).copy()
    np.testing.assert_array_equal(net.forward(x), plain)
    p0, p0_again, p1 = (net.forward(x, mc_pass=i).copy() for i in (0, 0, 1))
    np.testing.assert_array_equal(p0, p0_again)
    assert not np.allclose(p0, p1)
    assert not np.allclose(p0, plain)
    assert all(layer.step == 0 for layer in net.layers if layer.stochastic)


def test_pickle_round_trip_rebinds_kernels():
    import pickle
    net = small_net()
    net.build((6, 6, 2), rng=np.random.default_rng(0))
    x = np.random.default_rng(1).standard_normal((2, 6, 6, 2))
    clone = pickle.loads(pickle.dumps(net))
    np.testing.assert_array_equal(clone.forward(x), net.forward(x))


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_conv_filters_validation_names_value(bad):
    with pytest.raises(ValueError, match=f"filters={bad!r}"):
        Conv2D(bad)


def test_activation_validation_names_value():
    with pytest.raises(ValueError, match="activation='gelu'"):
        Activation("gelu")
