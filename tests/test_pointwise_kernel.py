"""The pointwise conv's inference product (``pointwise_conv2d_bias_act_forward``) and the route that runs it.

The compiled kernel against its NumPy twin (outputs NaN-prefilled) over pixel counts around the register tiles'
heights (8, 6, 3 rows at the three levels) and the parallel blocks (48 rows), input channels 0-130 and output
channels 1-130 (the 2-vector panels, the 1-vector panel and the scalar tail of every level), every activation,
float32 and float64, the Numba and Cython twins; 1 vs 2 threads bit-identical; a NaN input reaches exactly the outputs of its pixel; shapes that
do not match are refused naming them. The route: a float32 pointwise conv's inference forward runs it where it is
compiled at a level where it beats the dense product (float64, the NumPy and Numba backends and the lower levels
keep the dense product; tests/level_check.py checks the choice at every level), equal to the training forward.
"""

import numpy as np
import pytest

from minicnn.backend import get_backend
from minicnn.backend import reference as ref
from minicnn.layers import Conv2D
from minicnn.layers.conv import POINTWISE_LEVELS
from minicnn.threads import thread_limits

from helpers import build_layer, importable_backends, kernel_module

NAME = "pointwise_conv2d_bias_act_forward"
ACTS = [(0, 0.0), (1, 0.0), (2, 0.1), (3, 0.0), (4, 0.0)]
PIXELS = (1, 3, 7, 8, 9, 47, 48, 49, 100)
CHANNELS = [(1, 1), (3, 16), (16, 32), (17, 15), (32, 64), (5, 33), (64, 130), (130, 48), (0, 8), (8, 7), (2, 31)]


def _case(rng, dtype, P, C, F):
    x = rng.standard_normal((P, C)).astype(dtype)
    w = (rng.standard_normal((C, F)) / np.sqrt(max(C, 1))).astype(dtype)
    b = rng.standard_normal(F).astype(dtype)
    return x, w, b


@pytest.mark.parametrize("backend", ["numba", "cython"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("C, F", CHANNELS)
def test_matches_reference(backend, dtype, C, F):
    kernel = getattr(kernel_module(backend), NAME)
    rng = np.random.default_rng(C * 1000 + F)
    tol = 2e-5 if dtype == np.float32 else 1e-12
    for P in PIXELS:
        x, w, b = _case(rng, dtype, P, C, F)
        for act, alpha in ACTS:
            want = np.full((P, F), np.nan, dtype)
            ref.pointwise_conv2d_bias_act_forward(want, x, w, b, act, alpha)
            got = np.full_like(want, np.nan)
            kernel(got, x, w, b, act, alpha)
            np.testing.assert_allclose(got, want, rtol=tol, atol=tol, err_msg=f"P={P} act={act}")


def test_reference_is_the_dense_product():
    rng = np.random.default_rng(0)
    x, w, b = _case(rng, np.float64, 13, 7, 9)
    for act, alpha in ACTS:
        got, want = np.full((13, 9), np.nan), np.full((13, 9), np.nan)
        ref.pointwise_conv2d_bias_act_forward(got, x, w, b, act, alpha)
        ref.dense_bias_act_forward(want, x, w, b, act, alpha)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("backend", ["numba", "cython"])
@pytest.mark.parametrize("act, alpha", ACTS)
@pytest.mark.parametrize("C, F", [(16, 32), (64, 64), (37, 21)])
def test_bit_identical_on_1_and_2_threads(backend, act, alpha, C, F):
    kernel = getattr(kernel_module(backend), NAME)
    x, w, b = _case(np.random.default_rng(1), np.float32, 4099, C, F)   # above the parallel threshold, a tail block
    runs = []
    for n_threads in (1, 2):
        y = np.full((4099, F), np.nan, np.float32)
        with thread_limits(n_threads):
            kernel(y, x, w, b, act, alpha)
        runs.append(y)
    np.testing.assert_array_equal(runs[0].view(np.uint32), runs[1].view(np.uint32))


@pytest.mark.parametrize("backend", ["numba", "cython"])
@pytest.mark.parametrize("act, alpha", ACTS)
def test_nan_reaches_only_its_pixel(backend, act, alpha):
    kernel = getattr(kernel_module(backend), NAME)
    x, w, b = _case(np.random.default_rng(2), np.float32, 50, 20, 40)
    x[17, 3] = np.nan
    y = np.full((50, 40), np.nan, np.float32)
    kernel(y, x, w, b, act, alpha)
    assert np.isnan(y[17]).all()
    assert not np.isnan(np.delete(y, 17, axis=0)).any()


@pytest.mark.parametrize("backend", ["numba", "cython"])
def test_mismatched_shapes_are_refused(backend):
    kernel = getattr(kernel_module(backend), NAME)
    x, w, b = _case(np.random.default_rng(3), np.float32, 10, 4, 6)
    for y, xx, ww, bb in [(np.empty((10, 6), np.float32), x, w[:3], b), (np.empty((9, 6), np.float32), x, w, b),
                          (np.empty((10, 6), np.float32), x, w, b[:5])]:
        with pytest.raises(ValueError, match="shapes do not match"):
            kernel(y, xx, ww, bb, 0, 0.0)


@pytest.mark.parametrize("backend", importable_backends(("numpy", "numba", "cython", "auto")))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_route_runs_the_kernel_for_float32_only(backend, dtype, monkeypatch):
    conv = build_layer(Conv2D(24, 1, activation="relu"), (5, 6, 16), backend, dtype=dtype)
    conv.params["b"][:] = np.random.default_rng(4).standard_normal(24)
    x = np.random.default_rng(5).standard_normal((3, 5, 6, 16)).astype(dtype)
    want = conv.forward(x, training=True).copy()
    calls = []
    kernel = getattr(conv.kernels, NAME, None)
    if kernel is not None:
        monkeypatch.setattr(conv.kernels, NAME, lambda *args: calls.append(1) or kernel(*args))
    got = conv.forward(x, training=False)
    compiled = get_backend(backend).sources.get(NAME) == "cython"
    runs = compiled and kernel_module("cython").MODULE_LEVELS["pointwise"] in POINTWISE_LEVELS
    assert calls == ([1] if runs and dtype == np.float32 else [])
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)
