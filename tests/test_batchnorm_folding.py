"""BatchNorm folded into the preceding Conv2D / DepthwiseConv2D / Dense at inference (``minicnn.layers.folding``).

Every foldable kind, with and without each activation after the BatchNorm, on every backend and dtype: the
folded inference pass equals the layers run one by one up to rounding; the fold is refreshed when weights,
``gamma``/``beta`` or the running statistics change; pickles never carry it; the top-level plan still fuses a
following 2x2 max-pool.
"""

import pickle

import numpy as np
import pytest

from minicnn.backend.activation_codes import CODES
from minicnn.layers import Activation, BatchNorm, Chain, Conv2D, Dense, DepthwiseConv2D, MaxPool2D
from minicnn.layers.folding import FoldedBatchNorm
from minicnn.network import Sequential
from minicnn.threads import thread_limits

from helpers import build_layer, importable_backends

BACKENDS = importable_backends(("numpy", "numba", "cython"))
DTYPES = (np.float32, np.float64)
KINDS = {
    "conv": (lambda: Conv2D(6, 3, padding="same", use_bias=False), (7, 6, 4)),
    "conv_bias": (lambda: Conv2D(5, 3, strides=2, padding="same"), (9, 8, 3)),
    "winograd": (lambda: Conv2D(8, 3, padding="same", use_bias=False), (8, 8, 8)),
    "depthwise": (lambda: DepthwiseConv2D(3, padding="same", use_bias=False), (7, 6, 5)),
    "dense": (lambda: Dense(7, use_bias=False), (9,)),
}


def _randomize(layers, rng):
    """Weights, BatchNorm parameters and running statistics away from their initial values."""
    for layer in layers:
        for value in layer.params.values():
            value[...] = rng.standard_normal(value.shape)
        if isinstance(layer, BatchNorm):
            layer.params["gamma"][...] = rng.uniform(0.5, 2, layer.params["gamma"].shape)
            layer.running_mean[...] = rng.standard_normal(layer.running_mean.shape)
            layer.running_var[...] = rng.uniform(0.2, 3, layer.running_var.shape)


def _unfolded(layers, x):
    for layer in layers:
        x = layer.forward(x, False)
    return x.copy()


def _assert_rounding_only(got, want):
    tol = 1e-5 if want.dtype == np.float32 else 1e-12
    scale = max(float(np.abs(want).max(initial=0.0)), 1.0)
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * scale)


def _chain(kind, act, backend, dtype, seed=0):
    make, shape = KINDS[kind]
    layers = [make(), BatchNorm()] + ([] if act is None else [Activation(act)])
    chain = build_layer(Chain(layers), shape, backend, dtype=dtype)
    rng = np.random.default_rng(seed)
    _randomize(layers, rng)
    x = rng.standard_normal((3, *shape)).astype(dtype)
    return chain, layers, x


@pytest.mark.parametrize("act", [None, *sorted(CODES)])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("backend", BACKENDS)
def test_folded_inference_equals_the_layers_one_by_one(backend, kind, dtype, act):
    chain, layers, x = _chain(kind, act, backend, dtype)
    plan = chain._inference_layers()
    assert len(plan) == 1 and isinstance(plan[0], FoldedBatchNorm), "the stack is folded into one layer"
    with thread_limits(1):
        got = chain.forward(x, False).copy()
        want = _unfolded(layers, x)
    assert got.dtype == dtype
    _assert_rounding_only(got, want)


@pytest.mark.parametrize("backend", BACKENDS)
def test_fold_follows_every_change_of_its_sources(backend):
    """Weights and bias (in place), gamma/beta, and running statistics (a training pass) each refresh the fold."""
    chain, layers, x = _chain("conv_bias", "relu", backend, np.float64)
    conv, norm, _ = layers
    changes = [lambda: conv.params["w"].__imul__(1.5), lambda: conv.params["b"].__iadd__(0.3),
               lambda: norm.params["gamma"].__imul__(0.5), lambda: norm.params["beta"].__isub__(1.0),
               lambda: chain.forward(x * 3 + 1, True), lambda: norm.running_var.__imul__(4.0)]
    before = chain.forward(x, False).copy()
    for i, change in enumerate(changes):
        change()
        got = chain.forward(x, False).copy()
        assert not np.array_equal(got, before), f"change {i} did not reach the folded output"
        _assert_rounding_only(got, _unfolded(layers, x))
        before = got


def test_training_passes_never_fold():
    """Training runs the three layers (batch statistics, gradients): the chain's training output is theirs."""
    chain, layers, x = _chain("conv", "relu", "numpy", np.float64)
    got = chain.forward(x, True).copy()
    want = x
    for layer in layers:
        want = layer.forward(want, True)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("backend", BACKENDS)
def test_network_folds_before_the_max_pool_fusion_and_pickles_without_the_fold(backend):
    """conv-BN-relu-maxpool at the top level: folded, still fused with the pool where the backend can; a pickled
    network carries no folded copy and predicts the same after loading."""
    net = Sequential([Conv2D(8, 3, padding="same", use_bias=False), BatchNorm(), Activation("relu"),
                      MaxPool2D(2), Chain([DepthwiseConv2D(3, padding="same", use_bias=False), BatchNorm()]),
                      ], backend=backend, dtype=np.float64)
    net.build((8, 8, 8), np.random.default_rng(0))
    rng = np.random.default_rng(1)
    _randomize(list(net.walk())[1:], rng)
    x = rng.standard_normal((4, 8, 8, 8))
    with thread_limits(1):
        got = net.forward(x, False).copy()
        want = _unfolded([layer for layer in net.walk() if not isinstance(layer, (Sequential, Chain))], x)
    _assert_rounding_only(got, want)
    first, fused = net._inference_plan()[0]
    assert isinstance(first, FoldedBatchNorm)
    assert fused == first.layer.fuses_with(net.layers[3])
    assert fused or backend != "cython", "the compiled backend fuses the folded conv with the pool"
    state = pickle.dumps(net)
    assert b"FoldedBatchNorm" not in state
    with thread_limits(1):
        np.testing.assert_array_equal(pickle.loads(state).forward(x, False), got)


@pytest.mark.parametrize("act", sorted(CODES))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend", BACKENDS)
def test_fused_activation_training_pass_equals_the_layers_one_by_one(backend, dtype, act):
    """A BatchNorm + Activation in a chain run as one kernel (forward and backward): the layers' own results."""
    chain, layers, x = _chain("conv", act, backend, dtype)
    assert [type(layer).__name__ for layer in chain._pass_layers(True)] == ["Conv2D", "NormActivation"]
    dy = np.random.default_rng(3).standard_normal((x.shape[0], *chain.output_shape)).astype(dtype)
    with thread_limits(1):
        got = {"y": chain.forward(x, True).copy(), "dx": chain.backward(dy).copy()}
        got.update({f"{i}{k}": g.copy() for i, layer in enumerate(layers) for k, g in layer.grads.items()})
        y = x
        for layer in layers:
            y = layer.forward(y, True)
        want = {"y": y.copy()}
        g = dy
        for layer in reversed(layers):
            g = layer.backward(g)
        want["dx"] = g.copy()
        want.update({f"{i}{k}": v.copy() for i, layer in enumerate(layers) for k, v in layer.grads.items()})
    for name in want:
        _assert_rounding_only(got[name], want[name])


@pytest.mark.parametrize("backend", BACKENDS)
def test_fused_chain_gradients_match_finite_differences(backend):
    """conv-BN-tanh and dense-BN-leaky_relu chains, float64: every gradient against central differences."""
    from gradcheck import ATOL, RTOL, numerical_grad

    for kind, act in (("conv_bias", "tanh"), ("dense", "leaky_relu")):
        chain, layers, x = _chain(kind, act, backend, np.float64, seed=4)
        r = np.random.default_rng(5).standard_normal((x.shape[0], *chain.output_shape))

        def loss():
            return float(np.sum(chain.forward(x, True) * r))

        loss()
        dx = chain.backward(r.copy()).copy()
        grads = {(i, k): g.copy() for i, layer in enumerate(layers) for k, g in layer.grads.items()}
        np.testing.assert_allclose(dx, numerical_grad(loss, x), rtol=RTOL, atol=ATOL, err_msg="dx")
        for (i, k), grad in grads.items():
            np.testing.assert_allclose(grad, numerical_grad(loss, layers[i].params[k]), rtol=RTOL, atol=ATOL,
                                       err_msg=f"{kind} layer {i} d{k}")


#: The foldable kinds built with an activation of their own (``activation=``).
KINDS_WITH_ACTIVATION = {
    "conv": (lambda act: Conv2D(6, 3, padding="same", activation=act), (7, 6, 4)),
    "winograd": (lambda act: Conv2D(8, 3, padding="same", activation=act, use_bias=False), (8, 8, 8)),
    "depthwise": (lambda act: DepthwiseConv2D(3, padding="same", activation=act), (7, 6, 5)),
    "dense": (lambda act: Dense(7, activation=act), (9,)),
}


@pytest.mark.parametrize("after", [None, "relu"])
@pytest.mark.parametrize("own", sorted(set(CODES) - {"identity"}))
@pytest.mark.parametrize("kind", sorted(KINDS_WITH_ACTIVATION))
@pytest.mark.parametrize("backend", BACKENDS)
def test_a_layer_with_its_own_activation_is_not_folded(backend, kind, own, after):
    # BatchNorm(f(conv(x))) is no affine map of conv(x): folding it (and fusing a later Activation in place of f)
    # gave wrong outputs for hand-built stacks (a relu conv then BatchNorm: off by 1.22 in a 12-channel block)
    make, shape = KINDS_WITH_ACTIVATION[kind]
    layers = [make(own), BatchNorm()] + ([] if after is None else [Activation(after)])
    chain = build_layer(Chain(layers), shape, backend, dtype=np.float32)
    rng = np.random.default_rng(1)
    _randomize(layers, rng)
    x = rng.standard_normal((3, *shape)).astype(np.float32)
    assert not any(isinstance(step, FoldedBatchNorm) for step in chain._inference_layers())
    with thread_limits(1):
        got = chain.forward(x, False).copy()
        want = _unfolded(layers, x)
    _assert_rounding_only(got, want)
