"""A recorded inference pass (:mod:`minicnn._replay`) gives the layers' own pass, bit for bit, and is really used.

Swept: every layer kind the recording binds (each conv route: Winograd, direct, pointwise, im2col, the fused conv +
pool kernels; depthwise; dense; every pooling; activation; flatten; dropout passing its input through), the layers
it runs as usual in between (BatchNorm folds, residual blocks, depthwise-separable chains, dropout scaled at test
time), a first layer that sees the input through a view, on every importable backend, batches 1 and 3 and thread
teams 1 and 2; then what must drop or bypass a recording: a replaced parameter array, weights changed in place,
another memory layout of the same shape, a refolded BatchNorm, a new backend, released workspaces,
pickling.
"""

import pickle

import numpy as np
import pytest

from minicnn import _replay
from minicnn.layers import (Activation, AvgPool2D, BatchNorm, Chain, Conv2D, Dense, DepthwiseConv2D, Dropout,
                            Flatten, GlobalAvgPool2D, GlobalMaxPool2D, MaxPool2D, Residual, SpatialDropout2D)
from minicnn.network import Sequential
from minicnn.threads import thread_limits

from helpers import importable_backends

BACKENDS = importable_backends()


def _nets():
    """name -> (layer factory, per-sample input shape, whether every step after the input is recorded)."""
    return {
        # conv + 2x2 max-pool fused by the direct kernel (one channel), dropout passing through, flatten, dense
        "digits": (lambda: [Conv2D(16, 3, padding="same", activation="relu"), MaxPool2D(2), Dropout(0.25),
                            Flatten(), Dense(12, activation="relu"), Dropout(0.5), Dense(10)], (8, 8, 1), True),
        # 3 -> 8 shallow conv + pool (Winograd + pool or direct), 8 -> 16 Winograd + pool, dense
        "rgb": (lambda: [Conv2D(8, 3, padding="same", activation="relu"), MaxPool2D(2),
                         Conv2D(16, 3, padding="same", activation="relu"), MaxPool2D(2), Flatten(), Dense(10)],
                (12, 12, 3), True),
        # Winograd without a pool, pointwise, strided im2col, direct, depthwise, every pooling, activation
        "routes": (lambda: [Conv2D(8, 3, padding="same", activation="relu"), Conv2D(8, 3, padding="same"),
                            Activation("leaky_relu"), Conv2D(12, 1, activation="relu"), Conv2D(8, 5, strides=2,
                                                                                               padding="same"),
                            DepthwiseConv2D(3, padding="same", activation="relu"), AvgPool2D(2, padding="same"),
                            MaxPool2D(3, strides=1, padding="same"), SpatialDropout2D(0.3), Conv2D(6, 3),
                            GlobalMaxPool2D(), Dense(5)], (10, 9, 2), True),
        "global average": (lambda: [Conv2D(4, 3, strides=2, activation="tanh"), GlobalAvgPool2D(), Dense(3)],
                           (7, 7, 1), True),
        # run as usual between recorded steps: a BatchNorm fold, a residual block, test-time dropout scaling
        "mixed": (lambda: [Conv2D(8, 3, padding="same"), BatchNorm(), Activation("relu"),
                           Residual(Chain([Conv2D(8, 3, padding="same", activation="relu"),
                                           Conv2D(8, 3, padding="same")])),
                           Dropout(0.5, scaling="test_time"), Chain([DepthwiseConv2D(3, padding="same"),
                                                                     Conv2D(16, 1, activation="relu")]),
                           GlobalAvgPool2D(), Dense(4)], (8, 8, 3), False),
        # the first layers see the input through a view (flatten) or pass it on (dropout): run as usual
        "flat input": (lambda: [Flatten(), Dense(7, activation="relu"), Dense(3)], (4, 4, 2), False),
        "dropout first": (lambda: [Dropout(0.2), Conv2D(4, 3, activation="relu"), Flatten(), Dense(3)], (6, 6, 1),
                          True),
    }


NETS = _nets()


def _network(name, backend, seed=0):
    factory, shape, _ = NETS[name]
    net = Sequential(factory(), backend=backend)
    net.build(shape, rng=np.random.default_rng(seed))
    rng = np.random.default_rng(seed + 1)
    for layer in net.walk():   # non-trivial BatchNorm statistics, so a fold changes the weights
        if isinstance(layer, BatchNorm):
            layer.running_mean[...] = rng.standard_normal(layer.running_mean.shape)
            layer.running_var[...] = rng.random(layer.running_var.shape) + 0.5
            layer.params["gamma"][...] = rng.random(layer.params["gamma"].shape) + 0.5
    return net


def _layers_pass(net, x):
    """The layers' own inference pass (no recording), copied."""
    return _replay._run(net._inference_plan(), x, 0).copy()


def _recordings(net):
    state = net.__dict__.get("_replays")
    return {} if state is None else state[1]


def _same_outcome(call, reference):
    outcomes = []
    for f in (call, reference):
        try:
            outcomes.append(("value", f()))
        except Exception as exc:   # the comparison is the point: the same error on both paths
            outcomes.append((type(exc), str(exc)))
    (kind, got), (expected_kind, expected) = outcomes
    assert kind == expected_kind
    if kind == "value":
        _same(got, expected)
    else:
        assert got == expected


def _same(a, b):
    assert a.dtype == b.dtype and a.shape == b.shape
    assert a.tobytes() == b.tobytes()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", list(NETS))
@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("batch", [1, 3])
def test_replayed_pass_equals_the_layers_pass_on_new_inputs(name, backend, n_threads, batch):
    net = _network(name, backend)
    shape = NETS[name][1]
    rng = np.random.default_rng(batch)
    with thread_limits(n_threads):
        for call in range(4):   # the first call records, the next ones replay on other inputs
            x = rng.standard_normal((batch, *shape)).astype(np.float32)
            expected = _layers_pass(net, x)
            got = net.forward(x).copy()
            _same(got, expected)
            _same(net.forward(x), expected)   # twice on one input: nothing left over from the call before
        recordings = _recordings(net)
        assert len(recordings) == 1   # one shape, one team: recorded once, then replayed
        assert net._replays[2] == {}   # never dropped: every step run as usual gave the array recorded
        (recording,) = recordings.values()
        if NETS[name][2]:
            assert type(recording.head) is list   # the first kernel calls take the new input in place of the old
            kinds = {type(args[0]).__name__ for kernel, args in recording.calls if kernel is _replay._checked}
            assert not kinds, kinds   # every step after the input is a recorded kernel call


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_recording_replays_kernel_calls_only_for_the_table_layers(backend):
    net = _network("mixed", backend)
    x = np.random.default_rng(0).standard_normal((2, 8, 8, 3)).astype(np.float32)
    net.forward(x)
    (recording,) = _recordings(net).values()
    run_as_usual = {type(args[0]).__name__ for kernel, args in recording.calls if kernel is _replay._checked}
    assert type(recording.head) is tuple   # the first step (a conv with its BatchNorm folded) runs as usual
    run_as_usual |= {type(layer).__name__ for layer, _ in recording.head}
    assert {"FoldedBatchNorm", "Residual", "Dropout", "Chain"} <= run_as_usual
    for kernel, args in recording.calls:
        if kernel is _replay._checked:
            assert type(args[0]) not in _replay.DISPATCH_ONLY


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_replaced_or_changed_parameter_is_seen(backend):
    net = _network("digits", backend)
    x = np.random.default_rng(0).random((1, 8, 8, 1), dtype=np.float32)
    net.forward(x)
    dense = net.layers[-1]
    dense.params["w"][...] *= 2   # in place (as the optimizer updates): the recording sees it
    _same(net.forward(x).copy(), _layers_pass(net, x))
    dense.params["w"] = dense.params["w"] * -1.5   # a new array: the recording holding the old one is dropped
    got = net.forward(x).copy()
    _same(got, _layers_pass(net, x))
    assert not _recordings(net)
    net.forward(x)   # recorded again with the new array, replayed
    _same(net.forward(x).copy(), _layers_pass(net, x))
    assert len(_recordings(net)) == 1


@pytest.mark.parametrize("backend", BACKENDS)
def test_another_memory_layout_of_the_same_shape_runs_the_layers(backend):
    net = _network("rgb", backend)
    base = np.random.default_rng(0).standard_normal((2, 12, 12, 3)).astype(np.float32)
    net.forward(base)
    strided = np.zeros((2, 12, 12, 6), np.float32)[..., ::2]
    strided[...] = base * 0.5
    for _ in range(_replay.MAX_DROPS + 2):   # however often: the recording of the usual layout stays
        for x in (strided, np.asfortranarray(base * 2)):   # the layers' outcome: their output, or their error
            _same_outcome(lambda: net.forward(x).copy(), lambda: _layers_pass(net, x))
    (recording,) = _recordings(net).values()
    _same(net.forward(base).copy(), _layers_pass(net, base))
    assert _recordings(net)[next(iter(_recordings(net)))] is recording


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_refolded_batchnorm_continues_through_the_layers(backend):
    net = _network("mixed", backend)
    x = np.random.default_rng(0).standard_normal((1, 8, 8, 3)).astype(np.float32)
    net.forward(x)
    norm = next(layer for layer in net.walk() if isinstance(layer, BatchNorm))
    for step in range(_replay.MAX_DROPS + 3):   # each change refolds: a new folded layer with its own buffers
        norm.running_mean[...] += 0.25
        _same(net.forward(x).copy(), _layers_pass(net, x))
        _same(net.forward(x).copy(), _layers_pass(net, x))


@pytest.mark.parametrize("backend", BACKENDS)
def test_rebuilding_switching_backends_releasing_and_pickling_drop_the_recordings(backend):
    net = _network("digits", backend)
    x = np.random.default_rng(0).random((3, 8, 8, 1), dtype=np.float32)
    expected = _layers_pass(net, x)
    net.forward(x)
    assert _recordings(net)
    net.set_backend(BACKENDS[0])
    _same(net.forward(x).copy(), _layers_pass(net, x))
    net.set_backend(backend)
    net.release_buffers()
    assert not _recordings(net)
    _same(net.forward(x).copy(), expected)
    clone = pickle.loads(pickle.dumps(net))
    assert "_replays" not in clone.__dict__
    _same(clone.forward(x).copy(), expected)
    _same(clone.forward(x).copy(), expected)
    net.build((8, 8, 1), rng=np.random.default_rng(5))
    _same(net.forward(x).copy(), _layers_pass(net, x))


def test_recordings_are_kept_per_shape_and_team_and_bounded():
    net = _network("digits", BACKENDS[-1])
    rng = np.random.default_rng(0)
    for n in range(1, _replay.MAX_RECORDINGS + 4):
        x = rng.random((n, 8, 8, 1), dtype=np.float32)
        net.forward(x)
        _same(net.forward(x).copy(), _layers_pass(net, x))
        assert len(_recordings(net)) <= _replay.MAX_RECORDINGS
