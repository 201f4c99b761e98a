"""The register-blocked direct conv's inference forward (``conv2d_blocked_bias_act_forward``) and the route that runs it.

The compiled kernel against its NumPy twin (outputs NaN-prefilled) over geometries (kernel 1x1 to 5x5 and
non-square, strides 1-3 and unequal, paddings 0-2 and unequal, dilation 1-2), output widths around the register
tiles' widths (8, 6, 3 pixels at the three levels, twice that for one vector of filters), heights of one and of
several units of rows (the last one shorter), input channels 0-33 and
filters 1-65 (the 2-vector panels, the 1-vector tiles and the scalar tail of every level), every activation,
float32 and float64, the Numba and Cython twins; the twin is the im2col conv's values; 1 vs 2 threads bit-identical;
a NaN input reaches exactly the outputs whose windows hold it; shapes that do not match are refused naming them.
The route: a float32 conv's inference forward runs it where it is compiled at a level of ``BLOCKED_LEVELS`` and the
shape is within the route's bounds (every other conv, float64, the NumPy and Numba backends keep their routes;
tests/level_check.py checks the choice at every level), equal to the training forward.
"""

import numpy as np
import pytest

from minicnn.backend import get_backend
from minicnn.backend import reference as ref
from minicnn.layers import Conv2D
from minicnn.layers.conv import BLOCKED_KERNEL, BLOCKED_LEVELS, BLOCKED_MIN_FILTERS
from minicnn.threads import thread_limits

from helpers import build_layer, importable_backends, kernel_module

NAME = "conv2d_blocked_bias_act_forward"
ACTS = [(0, 0.0), (1, 0.0), (2, 0.1), (3, 0.0), (4, 0.0)]
#: (H, W, KH, KW, sh, sw, pt, pl, dh, dw): output widths 1-20 around the tiles, every geometry parameter moved.
GEOMETRIES = [(9, 9, 3, 3, 1, 1, 1, 1, 1, 1), (12, 33, 3, 3, 2, 2, 1, 1, 1, 1), (16, 16, 1, 1, 2, 2, 0, 0, 1, 1),
              (7, 19, 5, 5, 2, 1, 2, 2, 1, 1), (10, 25, 2, 3, 1, 3, 0, 2, 1, 1), (11, 14, 3, 3, 1, 1, 2, 0, 2, 2),
              (5, 40, 3, 1, 1, 2, 1, 0, 1, 1), (3, 3, 3, 3, 1, 1, 1, 1, 1, 1), (6, 17, 1, 1, 1, 1, 0, 0, 1, 1),
              # tall enough for several units of rows per sample, the last one shorter (the band's budget)
              (40, 37, 3, 3, 1, 1, 1, 1, 1, 1), (41, 30, 3, 3, 2, 2, 1, 1, 1, 1)]
CHANNELS = [(3, 16), (16, 32), (1, 1), (17, 15), (32, 64), (5, 33), (2, 65), (0, 8), (8, 48)]


def _out(H, W, KH, KW, sh, sw, pt, pl, dh, dw):
    """"same"-like output size: the windows that start inside the padded image."""
    return (H + 2 * pt - dh * (KH - 1) - 1) // sh + 1, (W + 2 * pl - dw * (KW - 1) - 1) // sw + 1


def _case(rng, dtype, N, H, W, C, KH, KW, F):
    x = rng.standard_normal((N, H, W, C)).astype(dtype)
    w = (rng.standard_normal((KH, KW, C, F)) / np.sqrt(max(KH * KW * C, 1))).astype(dtype)
    b = rng.standard_normal(F).astype(dtype)
    return x, w, b


@pytest.mark.parametrize("backend", ["numba", "cython"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("C, F", CHANNELS)
def test_matches_reference(backend, dtype, C, F):
    kernel = getattr(kernel_module(backend), NAME)
    rng = np.random.default_rng(C * 1000 + F)
    tol = 3e-5 if dtype == np.float32 else 1e-12
    for H, W, KH, KW, sh, sw, pt, pl, dh, dw in GEOMETRIES:
        Ho, Wo = _out(H, W, KH, KW, sh, sw, pt, pl, dh, dw)
        x, w, b = _case(rng, dtype, 2, H, W, C, KH, KW, F)
        for act, alpha in ACTS:
            want = np.full((2, Ho, Wo, F), np.nan, dtype)
            ref.conv2d_blocked_bias_act_forward(want, x, w, b, act, alpha, sh, sw, pt, pl, dh, dw)
            got = np.full_like(want, np.nan)
            kernel(got, x, w, b, act, alpha, sh, sw, pt, pl, dh, dw)
            np.testing.assert_allclose(got, want, rtol=tol, atol=tol,
                                       err_msg=f"geometry {(H, W, KH, KW, sh, sw, pt, pl, dh, dw)} act={act}")


@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_reference_is_the_im2col_conv(geometry):
    H, W, KH, KW, sh, sw, pt, pl, dh, dw = geometry
    Ho, Wo = _out(*geometry)
    x, w, b = _case(np.random.default_rng(1), np.float64, 3, H, W, 5, KH, KW, 7)
    for act, alpha in ACTS:
        got, want = np.full((3, Ho, Wo, 7), np.nan), np.full((3, Ho, Wo, 7), np.nan)
        ref.conv2d_blocked_bias_act_forward(got, x, w, b, act, alpha, sh, sw, pt, pl, dh, dw)
        ref.conv2d_bias_act_forward(want, x, w, b, np.empty((3, Ho * Wo, KH * KW * 5)), act, alpha, sh, sw, pt,
                                    pl, dh, dw)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("backend", ["numba", "cython"])
@pytest.mark.parametrize("act, alpha", ACTS)
@pytest.mark.parametrize("C, F, k, s", [(16, 32, 3, 2), (3, 16, 3, 1), (32, 64, 1, 2), (7, 21, 3, 1)])
def test_bit_identical_on_1_and_2_threads(backend, act, alpha, C, F, k, s):
    kernel = getattr(kernel_module(backend), NAME)
    x, w, b = _case(np.random.default_rng(2), np.float32, 7, 20, 20, C, k, k, F)   # above the parallel threshold
    p = k // 2
    Ho, Wo = _out(20, 20, k, k, s, s, p, p, 1, 1)
    runs = []
    for n_threads in (1, 2):
        y = np.full((7, Ho, Wo, F), np.nan, np.float32)
        with thread_limits(n_threads):
            kernel(y, x, w, b, act, alpha, s, s, p, p, 1, 1)
        runs.append(y)
    np.testing.assert_array_equal(runs[0].view(np.uint32), runs[1].view(np.uint32))


@pytest.mark.parametrize("backend", ["numba", "cython"])
def test_nan_reaches_only_its_windows(backend):
    kernel = getattr(kernel_module(backend), NAME)
    x, w, b = _case(np.random.default_rng(3), np.float32, 2, 12, 12, 16, 3, 3, 32)
    x[1, 5, 6, 3] = np.nan
    y = np.full((2, 6, 6, 32), np.nan, np.float32)
    kernel(y, x, w, b, 0, 0.0, 2, 2, 1, 1, 1, 1)
    # output (oh, ow) reads input rows 2*oh - 1 .. 2*oh + 1: row 5 -> oh 2, 3; column 6 -> ow 3 (3 reads 5..7)
    hit = np.zeros(y.shape, bool)
    hit[1, 2:4, 3:4] = True
    assert np.isnan(y[hit]).all()
    assert not np.isnan(y[~hit]).any()


@pytest.mark.parametrize("backend", ["numba", "cython"])
def test_mismatched_shapes_are_refused(backend):
    kernel = getattr(kernel_module(backend), NAME)
    x, w, b = _case(np.random.default_rng(4), np.float32, 2, 6, 6, 4, 3, 3, 8)
    for y, ww, bb in [(np.empty((2, 6, 6, 8), np.float32), w[:, :, :3].copy(), b),
                      (np.empty((3, 6, 6, 8), np.float32), w, b),
                      (np.empty((2, 6, 6, 8), np.float32), w, b[:5]),
                      (np.empty((2, 6, 6, 7), np.float32), w, b)]:
        with pytest.raises(ValueError, match="shapes do not match"):
            kernel(y, x, ww, bb, 0, 0.0, 1, 1, 1, 1, 1, 1)


#: (input shape, Conv2D arguments, on the route): the zoo nets' convs it takes and one past each bound.
ROUTE_CASES = [((32, 32, 3), dict(filters=16, kernel_size=3, padding="same"), True),
               ((32, 32, 3), dict(filters=16, kernel_size=3, strides=2, padding="same"), True),
               ((32, 32, 16), dict(filters=32, kernel_size=3, strides=2, padding="same"), True),
               ((16, 16, 32), dict(filters=64, kernel_size=3, strides=2, padding="same"), True),
               ((32, 32, 16), dict(filters=32, kernel_size=1, strides=2, padding="same"), True),
               ((16, 16, 32), dict(filters=64, kernel_size=1, strides=2, padding="same"), True),
               ((32, 32, 3), dict(filters=BLOCKED_MIN_FILTERS - 1, kernel_size=3, padding="same"), False),
               ((16, 16, 32), dict(filters=64, kernel_size=3, strides=3, padding="same"), False),   # Wo 6
               ((16, 16, 64), dict(filters=64, kernel_size=3, strides=2, padding="same"), False),   # weights
               ((16, 16, 16), dict(filters=32, kernel_size=3, padding="same"), False),   # Winograd
               ((16, 16, 16), dict(filters=32, kernel_size=1), False)]                   # pointwise


@pytest.mark.parametrize("backend", importable_backends(("numpy", "numba", "cython", "auto")))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, arguments, routed", ROUTE_CASES)
def test_route_runs_the_kernel_where_it_is_bounded(backend, dtype, shape, arguments, routed, monkeypatch):
    conv = build_layer(Conv2D(**arguments, activation="relu"), shape, backend, dtype=dtype)
    conv.params["b"][:] = np.random.default_rng(5).standard_normal(conv.filters)
    x = np.random.default_rng(6).standard_normal((3, *shape)).astype(dtype)
    want = conv.forward(x, training=True).copy()
    calls = []
    kernel = getattr(conv.kernels, BLOCKED_KERNEL, None)
    if kernel is not None:
        monkeypatch.setattr(conv.kernels, BLOCKED_KERNEL, lambda *args: calls.append(1) or kernel(*args))
    got = conv.forward(x, training=False)
    compiled = get_backend(backend).sources.get(BLOCKED_KERNEL) == "cython"
    runs = compiled and kernel_module("cython").MODULE_LEVELS["blocked_conv"] in BLOCKED_LEVELS
    assert calls == ([1] if runs and routed and dtype == np.float32 else [])
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)

