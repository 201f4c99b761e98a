"""GlobalAvgPool2D runs the average-pool kernels with one window over the whole map: on every backend and dtype
its forward is the per-channel mean and its backward spreads ``dy / (H*W)``, for batch 1..N, square and
oblong maps and channel counts around the kernels' blocks; 1 vs 2 threads bit-identical, one sample as in a
batch."""

import numpy as np
import pytest

from minicnn.layers import GlobalAvgPool2D
from minicnn.threads import thread_limits

from helpers import build_layer, importable_backends

BACKENDS = importable_backends(("numpy", "numba", "cython"))
SHAPES = [(1, 1, 1, 1), (1, 4, 4, 128), (3, 2, 5, 7), (5, 8, 8, 64), (2, 7, 3, 17), (64, 4, 4, 16)]


@pytest.mark.parametrize("dtype", (np.float32, np.float64))
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("backend", BACKENDS)
def test_mean_and_its_gradient(backend, shape, dtype):
    N, H, W, C = shape
    rng = np.random.default_rng(sum(shape))
    x = rng.standard_normal(shape).astype(dtype)
    dy = rng.standard_normal((N, C)).astype(dtype)
    layer = build_layer(GlobalAvgPool2D(), (H, W, C), backend, dtype=dtype)
    y = layer.forward(x, training=True)
    assert y.shape == (N, C) and y.dtype == dtype
    tol = 1e-6 if dtype == np.float32 else 1e-14
    np.testing.assert_allclose(y, x.mean(axis=(1, 2), dtype=np.float64), rtol=tol, atol=tol)
    dx = layer.backward(dy)
    assert dx.shape == shape and dx.dtype == dtype
    np.testing.assert_allclose(dx, np.broadcast_to((dy / (H * W))[:, None, None, :], shape), rtol=tol, atol=tol)
    # one sample gives the bits it gets inside the batch
    one = build_layer(GlobalAvgPool2D(), (H, W, C), backend, dtype=dtype).forward(x[-1:], training=False)
    np.testing.assert_array_equal(one, y[-1:])


@pytest.mark.parametrize("backend", BACKENDS[1:])
def test_bit_identical_for_1_and_2_threads(backend):
    """Large enough for the compiled kernels to go parallel."""
    x = np.random.default_rng(0).standard_normal((64, 8, 8, 128)).astype(np.float32)
    dy = np.random.default_rng(1).standard_normal((64, 128)).astype(np.float32)
    results = []
    for threads in (1, 2):
        layer = build_layer(GlobalAvgPool2D(), (8, 8, 128), backend, dtype=np.float32)
        with thread_limits(threads):
            results.append((layer.forward(x, training=True).copy(), layer.backward(dy).copy()))
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)
