"""Every layer workspace starts on a 64-byte cache line (``Layer._buffer``), whatever its dtype, size or reuse.

The kernels give each thread its own slot of a workspace; slots whose lengths are multiples of 16 floats then
never share a cache line between two threads, and vector loads and stores do not straddle lines. The speed is
measured in ``benchmarks/bench_workspace_alignment.py``; here only the layout and that the values do not move.
"""

import numpy as np
import pytest

from minicnn.layers import (BatchNorm, Conv2D, Dense, DepthwiseConv2D, Dropout, GlobalAvgPool2D, MaxPool2D,
                            Residual, SpatialDropout2D)
from minicnn.layers.base import WORKSPACE_ALIGNMENT, Layer
from minicnn.network import Sequential

from helpers import importable_backends

BACKENDS = importable_backends(("numpy", "numba", "cython"))
DTYPES = (np.float32, np.float64, np.uint32, np.int64, np.bool_, np.uint8, np.complex128)
#: Element counts: empty, odd, below and above NumPy's small-block cache and glibc's mmap threshold.
SIZES = (0, 1, 3, 17, 100, 1000, 5000, 40000, 300000)


def _aligned(array):
    return array.ctypes.data % WORKSPACE_ALIGNMENT == 0


@pytest.mark.parametrize("dtype", DTYPES)
def test_buffer_is_aligned_contiguous_and_reused_for_every_dtype_and_size(dtype):
    layer = Layer()
    layer.dtype = np.dtype(np.float32)
    for size in SIZES:
        for shape in ((size,), (1, size), (size, 1)):
            view = layer._buffer("work", shape, dtype)
            assert view.shape == shape and view.dtype == np.dtype(dtype)
            assert view.flags.c_contiguous and view.flags.writeable and view.flags.aligned
            assert size == 0 or _aligned(view), (dtype, shape, view.ctypes.data % WORKSPACE_ALIGNMENT)
            view[...] = 1   # the whole view is usable memory
    # a smaller request reuses the largest store (same first element), still aligned
    big = layer._buffer("work", (SIZES[-1],), dtype)
    small = layer._buffer("work", (7, 3), dtype)
    assert small.ctypes.data == big.ctypes.data and _aligned(small)
    # another dtype of the same name gets its own aligned store
    other = layer._buffer("work", (5,), np.float64 if np.dtype(dtype) != np.float64 else np.float32)
    assert _aligned(other)


def _network(backend, dtype):
    """Every layer that draws workspaces: Winograd and im2col convs, batch norm, depthwise, pools, dropouts, dense,
    a residual block with a projection."""
    block = Residual(Conv2D(16, 3, padding="same", activation="relu"), Conv2D(16, 1), activation="relu")
    net = Sequential([Conv2D(8, 3, padding="same", activation="relu"), BatchNorm(),
                      Conv2D(16, 3, padding="same", activation="relu"), SpatialDropout2D(0.2), block,
                      DepthwiseConv2D(3, padding="same", activation="relu"), MaxPool2D(2),
                      Conv2D(12, 3, strides=2, padding="same"), GlobalAvgPool2D(), Dropout(0.3), Dense(5)],
                     backend=backend, dtype=dtype)
    net.build((12, 12, 3), rng=np.random.default_rng(0))
    return net


@pytest.mark.parametrize("dtype", (np.float32, np.float64))
@pytest.mark.parametrize("backend", BACKENDS)
def test_every_layer_workspace_of_a_training_step_and_a_prediction_is_aligned(backend, dtype):
    net = _network(backend, dtype)
    x = np.random.default_rng(1).standard_normal((9, 12, 12, 3)).astype(dtype)
    y = net.forward(x, training=True)
    net.backward(np.ones_like(y))
    net.forward(x[:1])
    stores = [(layer, name, store) for layer in net.walk() for name, store in layer._buffers.items()]
    assert len(stores) >= 10
    for layer, name, store in stores:
        assert store.size == 0 or _aligned(store), (type(layer).__name__, name, store.ctypes.data % WORKSPACE_ALIGNMENT)
    for layer in net.walk():
        for name, view in layer._views.items():
            assert view.size == 0 or _aligned(view), (type(layer).__name__, name)


@pytest.mark.parametrize("backend", importable_backends(("numba", "cython")))
def test_aligned_workspaces_give_the_numpy_networks_values(backend):
    """The compiled networks, on aligned workspaces, still match the NumPy network (forward and gradients)."""
    nets = {name: _network(name, np.float64) for name in ("numpy", backend)}
    x = np.random.default_rng(1).standard_normal((9, 12, 12, 3))
    out = {name: net.forward(x, training=True) for name, net in nets.items()}
    np.testing.assert_allclose(out[backend], out["numpy"], rtol=1e-10, atol=1e-12)
    for net in nets.values():
        net.backward(np.ones_like(out["numpy"]))
    for (p, g), (q, h) in zip(nets["numpy"].params_and_grads(), nets[backend].params_and_grads()):
        np.testing.assert_allclose(h, g, rtol=1e-9, atol=1e-11)
