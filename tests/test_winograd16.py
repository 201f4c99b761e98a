"""The Winograd F(2x2, 3x3) inference forward with tiles in registers (``conv2d_winograd16_bias_act_forward``,
``conv2d_winograd16_bias_add_act_forward``) and the route that runs it.

The compiled and Numba kernels against the NumPy twin (outputs NaN-prefilled) over output maps 1x1 to 9x9 and
32x32 (partial and whole last tiles, tile rows shorter and longer than a block of 8 tiles), paddings 0-2 (border
tiles reading past the image), input sizes other than the output's, C and F in 16-64, every activation, with and
without the added tensor; 1 vs 2 threads bit-identical; a NaN input reaches exactly the outputs whose windows hold
it; bad arguments are refused naming them. The route: a float32 Conv2D's inference forward (and a residual block's
merge) runs it where it is compiled at a level of ``WINOGRAD16_LEVELS`` for the shapes of the route, equal to the
training forward within rounding (tests/level_check.py checks the choice at every level).
"""

import numpy as np
import pytest

from minicnn.backend import get_backend
from minicnn.backend import reference as ref
from minicnn.layers import Conv2D
from minicnn.layers.conv import WINOGRAD16_KERNEL, winograd16_kernel
from minicnn.threads import thread_limits

from helpers import build_layer, kernel_module

NAMES = ("conv2d_winograd16_bias_act_forward", "conv2d_winograd16_bias_add_act_forward")
ACTS = [(0, 0.0), (1, 0.0), (2, 0.1), (3, 0.0), (4, 0.0)]
#: (H, W, Ho, Wo, pt, pl): outputs 1x1 to 9x9 and 32x32, "same", "valid" and wider paddings.
GEOMETRIES = [(1, 1, 1, 1, 1, 1), (2, 3, 2, 3, 1, 1), (3, 3, 1, 1, 0, 0), (5, 4, 5, 4, 1, 1), (7, 9, 7, 9, 1, 1),
              (9, 9, 7, 7, 0, 0), (9, 8, 11, 10, 2, 2), (6, 9, 8, 9, 2, 1), (32, 32, 32, 32, 1, 1),
              (17, 33, 17, 33, 1, 1)]
CHANNELS = [(16, 16), (16, 32), (32, 16), (48, 64), (64, 16)]


def _case(rng, N, H, W, C, F, Ho, Wo):
    x = rng.standard_normal((N, H, W, C)).astype(np.float32)
    w = (rng.standard_normal((3, 3, C, F)) / np.sqrt(9 * C)).astype(np.float32)
    u = np.empty((4, 4, C, F), np.float32)
    ref.winograd_weight_transform(u, w)
    b = rng.standard_normal(F).astype(np.float32)
    s = rng.standard_normal((N, Ho, Wo, F)).astype(np.float32)
    return x, w, u, b, s


def _call(kernels, add, y, x, u, b, s, act, alpha, pt, pl):
    if add:
        getattr(kernels, NAMES[1])(y, x, u, b, s, act, alpha, pt, pl)
    else:
        getattr(kernels, NAMES[0])(y, x, u, b, act, alpha, pt, pl)


@pytest.mark.parametrize("backend", ["numba", "cython"])
@pytest.mark.parametrize("add", [False, True])
@pytest.mark.parametrize("C, F", CHANNELS)
def test_matches_reference(backend, add, C, F):
    kernels = kernel_module(backend)
    rng = np.random.default_rng(C * 100 + F)
    for H, W, Ho, Wo, pt, pl in GEOMETRIES:
        x, w, u, b, s = _case(rng, 2, H, W, C, F, Ho, Wo)
        for act, alpha in ACTS:
            want = np.full((2, Ho, Wo, F), np.nan, np.float32)
            got = want.copy()
            _call(ref, add, want, x, u, b, s, act, alpha, pt, pl)
            _call(kernels, add, got, x, u, b, s, act, alpha, pt, pl)
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4,
                                       err_msg=f"{backend} add={add} {(H, W, Ho, Wo, pt, pl)} act={act}")
            # the twin is the conv itself: the im2col reference with the same geometry
            if not add and act == 0:
                conv = np.full_like(want, np.nan)
                ref.conv2d_direct_bias_act_forward(conv, x, w, b, 0, 0.0, 1, 1, pt, pl, 1, 1)
                np.testing.assert_allclose(got, conv, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("add", [False, True])
def test_threads_bit_identical(add):
    kernels = kernel_module("cython")
    rng = np.random.default_rng(5)
    for H, W, Ho, Wo, pt, pl in GEOMETRIES:
        x, w, u, b, s = _case(rng, 3, H, W, 16, 32, Ho, Wo)
        out = []
        for n in (1, 2):
            y = np.full((3, Ho, Wo, 32), np.nan, np.float32)
            with thread_limits(n):
                _call(kernels, add, y, x, u, b, s, 2, 0.1, pt, pl)
            out.append(y)
        assert np.array_equal(out[0], out[1])
    # a batch large enough to go parallel
    x, w, u, b, s = _case(rng, 16, 32, 32, 16, 16, 32, 32)
    out = []
    for n in (1, 2):
        y = np.full((16, 32, 32, 16), np.nan, np.float32)
        with thread_limits(n):
            _call(kernels, add, y, x, u, b, s, 1, 0.0, 1, 1)
        out.append(y)
    assert np.array_equal(out[0], out[1])


@pytest.mark.parametrize("backend", ["numba", "cython"])   # (the NumPy twin's matrix products spread it per tile)
def test_nan_reaches_its_windows(backend):
    kernels = kernel_module(backend)
    rng = np.random.default_rng(7)
    x, w, u, b, s = _case(rng, 1, 9, 9, 16, 16, 9, 9)
    x[0, 4, 6, 3] = np.nan
    y = np.full((1, 9, 9, 16), -7.0, np.float32)
    getattr(kernels, NAMES[0])(y, x, u, b, 0, 0.0, 1, 1)
    bad = np.isnan(y).any(axis=3)[0]
    # the transforms add and subtract only the taps a position needs: exactly the outputs whose 3x3 windows hold
    # input (4, 6) (padding 1): rows 3-5 x columns 5-7
    want = np.zeros((9, 9), bool)
    want[3:6, 5:8] = True
    assert np.array_equal(bad, want)


@pytest.mark.parametrize("backend", ["numpy", "numba", "cython"])
def test_bad_arguments_named(backend):
    kernels = ref if backend == "numpy" else kernel_module(backend)
    rng = np.random.default_rng(1)
    x, w, u, b, s = _case(rng, 1, 5, 5, 16, 16, 5, 5)
    y = np.empty((1, 5, 5, 16), np.float32)
    with pytest.raises(ValueError, match="C=8"):
        getattr(kernels, NAMES[0])(np.empty((1, 5, 5, 16), np.float32), x[..., :8].copy(), u[:, :, :8].copy(), b,
                                   0, 0.0, 1, 1)
    with pytest.raises(ValueError, match="F=8"):
        getattr(kernels, NAMES[0])(np.empty((1, 5, 5, 8), np.float32), x, u[..., :8].copy(), b[:8].copy(), 0, 0.0,
                                   1, 1)
    with pytest.raises(ValueError, match="shapes do not match"):
        getattr(kernels, NAMES[0])(y, x, w, b, 0, 0.0, 1, 1)   # untransformed weights
    with pytest.raises(ValueError, match="act=7"):
        getattr(kernels, NAMES[0])(y, x, u, b, 7, 0.0, 1, 1)
    with pytest.raises(ValueError, match="pt=-1"):
        getattr(kernels, NAMES[0])(y, x, u, b, 0, 0.0, -1, 1)
    with pytest.raises(ValueError, match="s"):
        getattr(kernels, NAMES[1])(y, x, u, b, s[:, :4].copy(), 0, 0.0, 1, 1)


#: (per-sample input shape, Conv2D arguments, routed when compiled): 16 -> 16 "same" and "valid" on the route; other
#: channel counts keep the Winograd of 16 products.
ROUTES = [((9, 9, 16), dict(filters=16, kernel_size=3, padding="same"), True),
          ((7, 6, 16), dict(filters=16, kernel_size=3, padding="valid"), True),
          ((8, 8, 32), dict(filters=32, kernel_size=3, padding="same"), False),
          ((8, 8, 16), dict(filters=32, kernel_size=3, padding="same"), False)]


@pytest.mark.parametrize("backend", ["numpy", "numba", "cython", "auto"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("frozen", [True, False])
@pytest.mark.parametrize("shape, arguments, routed", ROUTES)
def test_route_runs_the_kernel_where_it_is_bounded(backend, dtype, frozen, shape, arguments, routed, monkeypatch):
    """Inference runs the register-tile kernels for the route's shapes with transformed (read-only) weights, where
    they are compiled at a level of the route; the forward and the residual merge equal the training forward."""
    conv = build_layer(Conv2D(**arguments, activation="relu"), shape, backend, dtype=dtype)
    conv.params["b"][:] = np.random.default_rng(5).standard_normal(conv.filters)
    if frozen:   # as the BatchNorm-folded copies: read-only arrays of their own, whose transform is kept
        conv.params["w"] = conv.params["w"].copy()
        conv.params["w"].flags.writeable = False
    x = np.random.default_rng(6).standard_normal((3, *shape)).astype(dtype)
    want = conv.forward(x, training=True).copy()
    calls = []
    for name in ("conv2d_winograd16_bias_act_forward", "conv2d_winograd16_bias_add_act_forward"):
        kernel = getattr(conv.kernels, name, None)
        if kernel is not None:
            monkeypatch.setattr(conv.kernels, name, lambda *args, k=kernel, n=name: calls.append(n) or k(*args))
    got = conv.forward(x, training=False)
    runs = (winograd16_kernel(get_backend(backend)) is not None and routed and frozen and dtype == np.float32)
    assert calls == (["conv2d_winograd16_bias_act_forward"] if runs else [])
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)
    # the residual merge: act((conv + b) + s)
    conv.act = 0
    plain = conv.forward(x, training=True).copy()
    skip = np.random.default_rng(7).standard_normal(plain.shape).astype(dtype)
    if conv.adds_skip():
        calls.clear()
        merged = conv.forward_add(x, skip, 1, 0.0)
        assert calls == (["conv2d_winograd16_bias_add_act_forward"] if runs else [])
        np.testing.assert_allclose(merged, np.maximum(plain + skip, 0), rtol=tol, atol=tol)
