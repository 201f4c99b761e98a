"""A recorded inference pass (:mod:`minicnn._replay`) never outlives what the layers' own pass reads at each call.

Swept, on the NumPy and the compiled backends, against the layers' own pass bit for bit: every setting a recorded
layer kind reads per call (a conv's, a depthwise conv's, a dense layer's and an activation's ``act`` and ``alpha``, a
new ``params`` dict, a dropout's ``scaling`` and ``rate``) changed after the pass was recorded, with the layer in the
recorded head (its kernel takes the network's input) or further on; networks with nothing to replay (recorded once
per shape, not on every pass); first steps that copy a strided input in Python (each input's own values); random
networks with random changes between passes (weights in place or replaced, training steps, BatchNorm statistics,
released workspaces, slopes, Monte-Carlo passes; batches 1-3, teams 1 and 2).
"""

import numpy as np
import pytest

from minicnn import _replay
from minicnn.layers import (Activation, AvgPool2D, BatchNorm, Chain, Conv2D, Dense, DepthwiseConv2D, Dropout, Flatten,
                            GlobalAvgPool2D, GlobalMaxPool2D, MaxPool2D, SpatialDropout2D)
from minicnn.layers.base import activation_code
from minicnn.network import Sequential
from minicnn.threads import thread_limits

from helpers import importable_backends

BACKENDS = importable_backends(("numpy", "cython"))

#: name -> (layer factory, per-sample input shape): every recorded kind, first (the head) and further on
NETS = {
    "conv head": (lambda: [Conv2D(8, 3, padding="same", activation="leaky_relu"), Activation("leaky_relu"),
                           DepthwiseConv2D(3, padding="same", activation="leaky_relu"), Dropout(0.3),
                           SpatialDropout2D(0.3), Conv2D(16, 3, strides=2, padding="same", activation="leaky_relu"),
                           Flatten(), Dense(6, activation="leaky_relu"), Dense(3)], (6, 6, 2)),
    "dense head": (lambda: [Dense(5, activation="leaky_relu"), Activation("leaky_relu"), Dropout(0.2),
                            Dense(3, activation="leaky_relu")], (7,)),
    "dropout head": (lambda: [Dropout(0.3), Conv2D(4, 3, activation="leaky_relu"), Flatten(), Dense(3)], (6, 6, 1)),
}


def _changes(layer):
    """``(what, prepare, change)`` for each setting ``layer``'s own pass reads: ``prepare`` runs before recording."""
    def nothing(layer):
        pass

    out = []
    if getattr(layer, "activation", None) == "leaky_relu":
        out.append(("alpha", nothing, lambda l: setattr(l, "alpha", 0.37)))
    if "act" in layer.__dict__:
        out.append(("act", nothing, lambda l: setattr(l, "act", activation_code("tanh", l.alpha))))
    if layer.params:
        out.append(("params dict", nothing,
                    lambda l: setattr(l, "params", {k: (v * -1.5).astype(v.dtype) for k, v in l.params.items()})))
    if isinstance(layer, Dropout):
        out.append(("scaling", nothing, lambda l: setattr(l, "scaling", "test_time")))

        def no_rate(l):
            l.scaling, l.rate = "test_time", 0.0   # the identity at inference: passed through when recorded

        out.append(("rate", no_rate, lambda l: setattr(l, "rate", 0.5)))
    return out


def _cases():
    for name, (factory, _) in NETS.items():
        for index, layer in enumerate(factory()):
            for what, _, _ in _changes(layer):
                yield name, index, what


def _network(name, backend):
    factory, shape = NETS[name]
    net = Sequential(factory(), backend=backend)
    net.build(shape, rng=np.random.default_rng(0))
    for layer in net.layers:   # non-zero biases, so a changed activation shows on every output
        if "b" in layer.params:
            layer.params["b"][...] = np.random.default_rng(1).standard_normal(layer.params["b"].shape)
    return net


def _layers_pass(net, x):
    return _replay._run(net._inference_plan(), x, 0).copy()


def _same(a, b):
    assert a.dtype == b.dtype and a.shape == b.shape
    assert a.tobytes() == b.tobytes()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name, index, what", list(_cases()))
def test_a_setting_changed_after_recording_is_seen(name, index, what, backend):
    net = _network(name, backend)
    layer = net.layers[index]
    _, prepare, change = next(c for c in _changes(layer) if c[0] == what)
    prepare(layer)
    x = np.random.default_rng(2).standard_normal((3, *net.input_shape)).astype(np.float32)
    before = net.forward(x).copy()
    _same(net.forward(x).copy(), before)   # replayed
    assert len(net._replays[1]) == 1
    change(layer)
    expected = _layers_pass(net, x)
    assert expected.tobytes() != before.tobytes()   # the change matters
    _same(net.forward(x).copy(), expected)
    _same(net.forward(x).copy(), expected)   # recorded again with the new setting, replayed
    _same(net.forward(x).copy(), expected)
    assert len(net._replays[1]) == 1


#: Networks whose every step sees the input (the output is the input or a buffer of a step reading it): nothing to
#: replay.
UNRECORDABLE = {
    "dense": ([lambda: Dense(4)], (6,)),
    "flatten dense": ([Flatten, lambda: Dense(4)], (3, 3, 2)),
    "dropout": ([lambda: Dropout(0.3)], (5,)),
    "flatten": ([Flatten], (2, 2, 3)),
    "dropout flatten dense": ([lambda: Dropout(0.3), Flatten, lambda: Dense(3, activation="relu")], (3, 3, 1)),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", list(UNRECORDABLE))
def test_a_network_with_nothing_to_replay_is_not_recorded_again_on_every_pass(name, backend, monkeypatch):
    factories, shape = UNRECORDABLE[name]
    net = Sequential([f() for f in factories], backend=backend)
    net.build(shape, rng=np.random.default_rng(0))
    attempts = []
    record = _replay._record
    monkeypatch.setattr(_replay, "_record", lambda steps, x: attempts.append(x.shape) or record(steps, x))
    rng = np.random.default_rng(3)
    for batch in (1, 2, 1, 2, 1):
        x = rng.standard_normal((batch, *shape)).astype(np.float32)
        _same(np.array(net.forward(x)), _layers_pass(net, x))
    assert attempts == [(1, *shape), (2, *shape)]   # once per shape: the passes after it run the layers
    assert not net._replays[1]


#: Networks whose first steps copy a strided input in Python (Flatten reshapes it by copying), and what is after.
COPYING_HEADS = {
    "flatten dense": (lambda: [Flatten(), Dense(3)], (4, 4, 2)),
    "flatten dense dense": (lambda: [Flatten(), Dense(4, activation="relu"), Dense(3)], (4, 4, 2)),
    "dropout flatten dense dense": (lambda: [Dropout(0.2), Flatten(), Dense(4, activation="tanh"), Dense(2)],
                                    (3, 5, 2)),
}


def _strided_forms(rng, batch, shape):
    """Non-contiguous inputs of ``(batch, *shape)``: every other column, reversed rows, a transposed copy's view."""
    wide = rng.standard_normal((batch, *shape[:-2], 2 * shape[-2], shape[-1])).astype(np.float32)
    yield wide[..., ::2, :]
    yield rng.standard_normal((batch, *shape)).astype(np.float32)[:, ::-1]
    yield np.asfortranarray(rng.standard_normal((batch, *shape)).astype(np.float32))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", list(COPYING_HEADS))
@pytest.mark.parametrize("batch", [1, 3])
def test_a_step_copying_the_input_in_python_never_replays_the_first_input(name, backend, batch):
    factory, shape = COPYING_HEADS[name]
    net = Sequential(factory(), backend=backend)
    net.build(shape, rng=np.random.default_rng(0))
    rng = np.random.default_rng(4)
    for _ in range(4):   # several inputs of each layout: each pass gives its own input's values
        for x in _strided_forms(rng, batch, shape):
            assert not np.may_share_memory(x.reshape(batch, -1), x)   # flattened by a copy
            _same(np.array(net.forward(x)), _layers_pass(net, x))


def _random_layers(rng):
    """A random stack of the recorded kinds and of steps run as usual (folds, separable chains, scaled dropout)."""
    acts = ["relu", "leaky_relu", "tanh", "identity", "sigmoid"]
    layers = []
    for _ in range(rng.integers(1, 6)):
        kind, act = rng.integers(8), str(rng.choice(acts))
        layers += [
            lambda: [Conv2D(int(rng.choice([4, 16, 17])), int(rng.choice([1, 3])), strides=int(rng.choice([1, 2])),
                            padding="same", activation=act)],
            lambda: [DepthwiseConv2D(3, padding="same", activation=act)],
            lambda: [Conv2D(8, 3, padding="same"), BatchNorm(), Activation(act)],
            lambda: [MaxPool2D(2, padding="same")],
            lambda: [AvgPool2D(2, padding="same")],
            lambda: [Dropout(0.3, scaling=str(rng.choice(["inverted", "test_time"])))],
            lambda: [SpatialDropout2D(0.2), Activation(act)],
            lambda: [Chain([DepthwiseConv2D(3, padding="same"), Conv2D(16, 1, activation="relu")])],
        ][kind]()
    pool = [GlobalAvgPool2D, GlobalMaxPool2D, Flatten][rng.integers(3)]()
    return layers + [pool, Dense(int(rng.integers(2, 7)), activation=str(rng.choice(acts)))]


def _event(net, rng, shape):
    """One change between passes: weights in place or replaced, a training step, BatchNorm statistics, released
    workspaces, a slope, a Monte-Carlo pass."""
    with_params = [layer for layer in net.walk() if layer.params]
    layer = with_params[rng.integers(len(with_params))]
    name = sorted(layer.params)[0]
    kind = rng.integers(7)
    if kind == 0:
        layer.params[name][...] *= 1.1
    elif kind == 1:
        layer.params[name] = (layer.params[name] * -1).astype(layer.params[name].dtype)
    elif kind == 2:
        y = net.forward(rng.standard_normal((int(rng.integers(1, 5)), *shape)).astype(np.float32), training=True)
        net.backward(np.ones_like(y))
    elif kind == 3:
        for norm in net.walk():
            if isinstance(norm, BatchNorm):
                norm.running_mean[...] += 0.1
    elif kind == 4:
        net.release_buffers()
    elif kind == 5:
        for act in (layer for layer in net.walk() if "act" in layer.__dict__):
            act.alpha = float(rng.random()) + 0.01
            act.act = activation_code("leaky_relu", act.alpha)
            break
    else:
        net.forward(rng.standard_normal((2, *shape)).astype(np.float32), mc_pass=int(rng.integers(5)))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("seed", range(3))
def test_random_networks_and_changes_between_passes_give_the_layers_pass(seed, backend):
    rng = np.random.default_rng(seed)
    for _ in range(4):
        shape = (int(rng.integers(4, 9)), int(rng.integers(8, 11)), int(rng.choice([1, 3, 16])))
        net = Sequential(_random_layers(rng), backend=backend)
        net.build(shape, rng=np.random.default_rng(seed))
        for step in range(12):
            if step % 2:
                _event(net, rng, shape)
            x = rng.standard_normal((int(rng.choice([1, 2, 3])), *shape)).astype(np.float32)
            with thread_limits(int(rng.choice([1, 2]))):
                _same(np.array(net.forward(x)), _layers_pass(net, x))
