"""A kernel given an array of non-native byte order either refuses it (naming the argument) or computes what it
computes from the native array: never the byte-swapped bits read as numbers.

The calls are those a network of every layer kind makes (forward in training and inference, backward), recorded
on the compiled and Numba backends; each float array argument of each call is swapped in turn.
"""

import numpy as np
import pytest

from minicnn.backend import KERNELS, OPTIONAL_KERNELS, Backend, get_backend
from minicnn.layers import (Activation, AvgPool2D, BatchNorm, Chain, Conv2D, Dense, DepthwiseConv2D, Dropout,
                            Flatten, GlobalAvgPool2D, MaxPool2D, Residual)
from minicnn.threads import thread_limits

from helpers import importable_backends


def _recording(backend):
    """``backend`` with each kernel recording ``(name, copies of its arguments)`` before it runs."""
    calls, kernels = [], dict(vars(backend))
    for name in set(KERNELS) | set(OPTIONAL_KERNELS):
        function = kernels.get(name)
        if function is None:
            continue

        def record(*args, _function=function, _name=name):
            calls.append((_name, [a.copy() if isinstance(a, np.ndarray) else a for a in args]))
            return _function(*args)
        kernels[name] = record
    return Backend(**kernels), calls


def _network():
    block = Residual(Chain([Conv2D(16, 3, padding="same", activation="relu"), Conv2D(16, 3, padding="same")]))
    return Chain([Conv2D(8, 3, padding="same", activation="relu"), Conv2D(16, 3, padding="same"), BatchNorm(),
                  Activation("relu"), MaxPool2D(2), block, DepthwiseConv2D(3, padding="same"), BatchNorm(),
                  Conv2D(16, 1), AvgPool2D(2), Dropout(0.3), Conv2D(16, 1, activation="relu"), GlobalAvgPool2D(),
                  Flatten(), Dense(5, activation="tanh")])


def _calls(name):
    recording, calls = _recording(get_backend(name))
    net = _network()
    net.build((8, 8, 3), dtype=np.float32, rng=np.random.default_rng(0), backend=recording)
    x = np.random.default_rng(1).standard_normal((2, 8, 8, 3)).astype(np.float32)
    with thread_limits(1):
        y = net.forward(x, training=True)
        net.backward(np.ones_like(y))
        net.forward(x, training=False)
        net.forward(x[:1], training=False)
    seen, kept = {}, []
    for kernel, args in calls:   # two calls of each kernel at most
        if seen.get(kernel, 0) < 2:
            seen[kernel] = seen.get(kernel, 0) + 1
            kept.append((kernel, args))
    return kept


def _refusals():
    """The exceptions a refusal may raise: ValueError, TypeError and Numba's typing error (it names the argument)."""
    try:
        from numba.core.errors import TypingError
    except ImportError:
        return ValueError, TypeError
    return ValueError, TypeError, TypingError


def _run(function, args):
    args = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
    with thread_limits(1):
        function(*args)
    return args


@pytest.mark.parametrize("backend", importable_backends(("cython", "numba")))
def test_every_kernel_refuses_or_reads_a_byte_swapped_argument(backend):
    kernels = get_backend(backend)
    calls = _calls(backend)
    assert len({name for name, _ in calls}) >= 10, "the network no longer reaches the kernels it should"
    checked = 0
    for name, args in calls:
        function = getattr(kernels, name)
        native = _run(function, args)
        for i, a in enumerate(args):
            if not (isinstance(a, np.ndarray) and a.dtype.kind == "f" and a.size):
                continue
            swapped = list(args)
            swapped[i] = a.astype(a.dtype.newbyteorder())
            try:
                got = _run(function, swapped)
            except _refusals() as exc:   # refused: fine
                assert str(exc), f"{name}: argument {i} refused without a message"
                continue
            checked += 1
            for j, (want, have) in enumerate(zip(native, got)):
                if isinstance(want, np.ndarray):
                    np.testing.assert_array_equal(have.astype(want.dtype), want,
                                                  err_msg=f"{backend} {name}: argument {i} byte-swapped changed "
                                                          f"argument {j}")
    assert checked or backend == "cython"
