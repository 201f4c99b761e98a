"""Inference passes replayed: a network's kernel calls recorded once per input shape and thread team, then re-run.

Between its kernels an inference pass runs each layer's Python: buffer lookups, the choice of a route, argument
unpacking. On small inputs that is most of the pass: on the digits model's one-sample prediction (a conv + pool, two
dense layers) the three kernels took ~1.5 us and the layers around them ~3 us more (``benchmarks/bench_percall.py``).

The first inference pass of a network on an input of a given shape, with a given thread team, runs the layers as
usual with a recording stand-in for the backend of each layer whose inference forward is known to be kernel calls
only (:data:`DISPATCH_ONLY`). The calls seen (kernel, arguments: the layers' own buffers, parameters and views of
them) are kept; later passes on the same shape and team call the same kernels with the same arguments, the new input
put where the recorded one was. The same kernels on the same arrays give the same bits as the layers' own pass.

What a pass does not record runs as usual: layers outside the table (composites, BatchNorm folds, dropout scaled at
test time), the first layers when they see the input through a view the recording cannot rebind (a Flatten of
the input) and a step whose output no kernel wrote (a Flatten copying a strided input). Their outputs must be the
arrays the recording saw (the layers' buffers), else the pass continues through the layers and the shape's recording
is dropped.

A recording holds the parameter arrays and the settings (:data:`SETTINGS`) it saw: a layer whose parameter array or
setting was replaced (``layer.params["w"] = a``, ``layer.alpha = 0.2``) is run as usual again (the recording is
dropped and made again at the next pass), as :meth:`minicnn.network.Sequential.flat_params_and_grads` repacks such
an array. An input of another dtype or memory layout than recorded runs the layers (the recording stays for the
usual one). Building the network or switching its backend gives it a new inference plan, which drops every recording
(:func:`forward`); so do released workspaces (``release_buffers``) and pickling. A recording keeps the buffers it
wrote alive: at most :data:`MAX_RECORDINGS` per network. A shape with nothing to replay (every step sees the input)
is not recorded again.
"""

from operator import is_not

import numpy as np

from .backend.activation_codes import CODES
from .layers import (Activation, AvgPool2D, Conv2D, Dense, DepthwiseConv2D, Dropout, Flatten, GlobalAvgPool2D,
                     GlobalMaxPool2D, MaxPool2D, SpatialDropout2D)

#: Layers whose inference forward (and fused conv + pool forward) does nothing but call kernels of ``layer.kernels``
#: on the layer's buffers, parameters, its input and views of them, and return one of those (exact types: a subclass
#: may compute in Python). Their recorded kernel calls are the whole pass.
DISPATCH_ONLY = frozenset({Conv2D, DepthwiseConv2D, Dense, Flatten, Activation, MaxPool2D, AvgPool2D,
                           GlobalMaxPool2D, GlobalAvgPool2D})

#: Layers that are the identity at inference when their forward returns its input (dropout scaled in training);
#: scaled at test time they compute in Python and run as usual.
PASS_THROUGH = frozenset({Dropout, SpatialDropout2D})

#: Attributes of a recorded layer that its own pass reads at every call, besides its parameter arrays: a recording
#: holds the values it saw, and one replaced (``layer.alpha = 0.2``, a dropout's ``scaling``, a new ``layer.params``
#: dict) drops it as a replaced parameter array does. (Pools and Flatten read their build-time geometry only.)
SETTINGS = {Conv2D: ("params", "act", "alpha"), DepthwiseConv2D: ("params", "act", "alpha"),
            Dense: ("params", "act", "alpha"), Activation: ("act", "alpha"), Dropout: ("scaling", "rate"),
            SpatialDropout2D: ("scaling", "rate")}

_LEAKY = CODES["leaky_relu"]

#: Recordings kept per network (input shape and team); the oldest goes first.
MAX_RECORDINGS = 8

#: Recordings of one shape and team dropped (a layer run as usual gave another array) before that shape and team
#: is no longer recorded: every pass then runs the layers.
MAX_DROPS = 2


def forward(network, x):
    """The inference pass of ``network`` on ``x`` (``Sequential.forward(x, training=False)``), replayed when recorded.

    Parameters
    ----------
    network : Sequential
    x : ndarray (N, *network.input_shape)

    Returns
    -------
    ndarray (N, *network.output_shape)
        The last layer's output buffer, as the layers' own pass returns.
    """
    state = network.__dict__.get("_replays")
    if state is None or state[0] is not network.__dict__.get("_plan"):
        state = network._replays = (network._inference_plan(), {}, {}, network.kernels.team_size)
    steps, recordings, drops, team_size = state
    key = (x.shape, team_size())   # the team sizes the layers' per-thread workspaces
    recording = recordings.get(key)
    if recording is None:
        if drops.get(key, 0) > MAX_DROPS:
            return _run(steps, x, 0)
        recording, out = _record(steps, x)
        if recording is None:   # nothing to replay on this plan (every step sees the input): the layers from now on
            drops[key] = MAX_DROPS + 1
        else:
            if len(recordings) >= MAX_RECORDINGS:
                del recordings[next(iter(recordings))]
            recordings[key] = recording
        return out
    if x.dtype is not recording.dtype or x.strides != recording.strides:
        return _run(steps, x, 0)   # another dtype or memory layout of the shape: the layers (the recording stays)
    # a replaced parameter array or setting (identities compared in C loops: ~2x faster than a Python loop over a
    # small net's ~20 entries): recorded again at the next pass
    if any(map(is_not, map(dict.get, recording.holders, recording.names), recording.held)):
        del recordings[key]
        drops[key] = drops.get(key, 0) + 1
        return _run(steps, x, 0)
    return recording.replay(x, recordings, drops, key)


def _run(steps, x, start):
    """The layers' own inference pass from step ``start`` on (``x``: that step's input)."""
    for layer, pooled in steps[start:]:
        x = layer.forward_pooled(x) if pooled else layer.forward(x, False)
    return x


class _Changed(Exception):
    """A layer run as usual during a replay returned another array than recorded: ``args = (output, step)``."""


def _checked(layer, pooled, x, expected, step):
    """A step run as usual inside a replay: its output must be the array the recording saw."""
    out = layer.forward_pooled(x) if pooled else layer.forward(x, False)
    if out is not expected:
        raise _Changed(out, step)


class _Recording:
    """The calls of one recorded pass: ``head`` takes the input, ``calls`` run on the layers' arrays only."""

    __slots__ = ("dtype", "strides", "head", "head_out", "calls", "out", "holders", "names", "held", "steps",
                 "tail_start")

    def replay(self, x, recordings, drops, key):
        head = self.head
        if head is not None:
            if type(head) is list:   # [(kernel, arguments before the input, arguments after it)]
                for kernel, before, after in head:
                    kernel(*before, x, *after)
            else:   # the first layers, run as usual on the input
                out = _run(head, x, 0)
                if out is not self.head_out:
                    return self._drop(out, self.tail_start - 1, recordings, drops, key)
        try:
            for kernel, args in self.calls:
                kernel(*args)
        except _Changed as changed:
            return self._drop(*changed.args, recordings, drops, key)
        return self.out

    def _drop(self, out, step, recordings, drops, key):
        """Forget this recording; the pass goes on through the layers after ``step`` (whose output is ``out``)."""
        recordings.pop(key, None)
        drops[key] = drops.get(key, 0) + 1
        return _run(self.steps, out, step + 1)


class _Recorder:
    """A backend stand-in that records each kernel call (a name of ``kernels.sources``) before making it."""

    def __init__(self, kernels):
        self._kernels, self.calls, self._wrappers = kernels, [], {}

    def __getattr__(self, name):
        value = getattr(self._kernels, name)
        if name not in self._kernels.sources or not callable(value):
            return value
        wrapper = self._wrappers.get(name)
        if wrapper is None:   # one wrapper per kernel: layers compare kernels by identity
            calls = self.calls

            def wrapper(*args, **kwargs):
                calls.append((value, args, kwargs))
                return value(*args, **kwargs)

            self._wrappers[name] = wrapper
        return wrapper


def _record(steps, x):
    """Run the inference pass on ``x`` recording what can be replayed: ``(recording or None, output)``.

    No recording where every step sees the input (the output is a view of it) or a kernel was called with keyword
    arguments.
    """
    seen = []   # (layer, pooled, input, output, calls or None)
    h = x
    for layer, pooled in steps:
        kind = type(layer)
        calls = None
        if kind in DISPATCH_ONLY and hasattr(layer.kernels, "sources"):
            recorder = _Recorder(layer.kernels)
            layer.kernels = recorder
            try:
                out = layer.forward_pooled(h) if pooled else layer.forward(h, False)
            finally:
                layer.kernels = recorder._kernels
            calls = recorder.calls
        else:
            out = layer.forward_pooled(h) if pooled else layer.forward(h, False)
            if kind in PASS_THROUGH and out is h:
                calls = []
        if calls == [] and out is not h and not np.may_share_memory(out, h):
            calls = None   # no kernel made its output: a copy made in Python (a Flatten of a strided view), run as usual
        seen.append((layer, pooled, h, out, calls))
        h = out
    if any(kwargs for *_, calls in seen if calls for _, _, kwargs in calls):
        return None, h
    rec = _Recording()
    rec.dtype, rec.strides, rec.steps, rec.out = x.dtype, x.strides, steps, h

    def sees_input(a):
        return a is x or (isinstance(a, np.ndarray) and np.may_share_memory(a, x))

    # the head: the steps whose input is the network's input or a view of it
    tail = next((i for i, entry in enumerate(seen) if not sees_input(entry[2])), None)
    if tail is None:   # the output itself is (a view of) the input: nothing to replay
        return None, h
    rec.tail_start = tail
    head = []
    for layer, pooled, inp, out, calls in seen[:tail]:
        if calls is None:
            head = None
            break
        for kernel, args, _ in calls:
            at = [i for i, a in enumerate(args) if a is x]
            if len(at) != 1 or any(sees_input(a) for i, a in enumerate(args) if i != at[0]):
                head = None
                break
            head.append((kernel, args[:at[0]], args[at[0] + 1:]))
        if head is None or (out is not x and sees_input(out)):   # a view of the input feeds the next step
            head = None
            break
    if head is None:
        rec.head, rec.head_out = tuple(steps[:tail]), seen[tail - 1][3]   # a tuple: the steps
    else:
        rec.head, rec.head_out = (head or None), None
    rec.calls, params = [], []
    for index, (layer, pooled, inp, out, calls) in enumerate(seen[tail:], tail):
        if calls is None:   # run as usual, its output checked
            rec.calls.append((_checked, (layer, pooled, inp, out, index)))
            continue
        rec.calls.extend((kernel, args) for kernel, args, _ in calls)
        params.extend(_held(layer))
    if head is not None:   # the head's recorded calls hold its parameters and settings too
        for layer, *_ in seen[:tail]:
            params.extend(_held(layer))
    rec.holders, rec.names, rec.held = [h for h, _, _ in params], [n for _, n, _ in params], [v for *_, v in params]
    return rec, h


def _held(layer):
    """``(dict, name, value)`` of what a recorded layer's calls hold: its :data:`SETTINGS` and its parameter arrays."""
    settings = layer.__dict__
    names = SETTINGS.get(type(layer), ())
    if settings.get("act", _LEAKY) != _LEAKY:   # the slope only matters to leaky_relu (a new act drops the recording)
        names = tuple(name for name in names if name != "alpha")
    return ([(settings, name, settings[name]) for name in names if name in settings]
            + [(layer.params, name, value) for name, value in layer.params.items()])
