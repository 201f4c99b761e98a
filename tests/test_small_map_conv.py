"""Shallow convs on small maps (the digits first layer and its kin), pooled or not, against the NumPy reference.

Sweeps the kind the 3x3 one-channel route of ``conv2d_direct_bias_act_maxpool2_forward`` belongs to (its
16- and 8-channel window blocks with fused multiply-adds, the scalar channel tail): maps 2..9 (square and not),
1..3 input channels, 1..33 filters, "same" and "valid" padding, with the 2x2 max-pool and without it
(``conv2d_direct_bias_act_forward``), batch 1, 3 and 64, every activation, float32 and float64. Outputs are
NaN-prefilled (every element written); the compiled kernels agree with the reference within its tolerance and
give the same bits on 1 and 2 threads.
"""

import numpy as np
import pytest

from minicnn.backend import reference as ref
from minicnn.threads import thread_limits

from helpers import kernel_module

FAST = ("numba", "cython")
#: (act code, alpha): identity, relu, leaky relu, tanh, sigmoid.
ACTS = [(0, 0.0), (1, 0.0), (2, 0.1), (3, 0.0), (4, 0.0)]
POOLED = "conv2d_direct_bias_act_maxpool2_forward"
PLAIN = "conv2d_direct_bias_act_forward"


def _problem(N, H, W, C, F, pad, dtype, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, H, W, C)).astype(dtype)
    w = rng.standard_normal((3, 3, C, F)).astype(dtype)
    b = rng.standard_normal(F).astype(dtype)
    p = 1 if pad == "same" else 0
    return x, w, b, (1, 1, p, p, 1, 1), H + 2 * p - 2, W + 2 * p - 2


def _check(backend, name, N, H, W, C, F, pad, dtype, seed=0, acts=ACTS):
    """The activations ``acts`` of kernel ``name`` on one shape against the reference (NaN-prefilled outputs)."""
    x, w, b, geometry, Ho, Wo = _problem(N, H, W, C, F, pad, dtype, seed)
    shape = (N, Ho // 2, Wo // 2, F) if name == POOLED else (N, Ho, Wo, F)
    if 0 in shape:
        return
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for act, alpha in acts:
        want = np.full(shape, np.nan, dtype)
        getattr(ref, name)(want, x, w, b, act, alpha, *geometry)
        got = np.full(shape, np.nan, dtype)
        getattr(kernel_module(backend), name)(got, x, w, b, act, alpha, *geometry)
        assert not np.isnan(want).any()
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol * 10,
                                   err_msg=f"{backend} {name} N={N} {H}x{W}x{C}->{F} {pad} act={act}")


@pytest.mark.parametrize("backend", FAST)
@pytest.mark.parametrize("name", [POOLED, PLAIN])
@pytest.mark.parametrize("pad", ["same", "valid"])
@pytest.mark.parametrize("H", range(2, 10))
def test_one_channel_small_maps_every_filter_count_match_reference(backend, name, pad, H):
    """One input channel (the route with the window blocks): every filter count 1..33 (16-, 8-channel blocks and
    each scalar tail), square and one-wider maps, batch 3; the activations in turn over the filter counts."""
    for F in range(1, 34):
        for W in (H, H + 1):
            _check(backend, name, 3, H, W, 1, F, pad, np.float32, seed=F, acts=[ACTS[(F + W) % len(ACTS)]])


@pytest.mark.parametrize("backend", FAST)
@pytest.mark.parametrize("name", [POOLED, PLAIN])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("C", [1, 2, 3])
def test_shallow_small_maps_channels_batches_match_reference(backend, name, dtype, C):
    """1..3 input channels, maps 2..9, filter counts around the block sizes, batch 1, 3 and 64."""
    for H in range(2, 10):
        for F in (1, 7, 8, 9, 16, 17, 24, 33):
            for N in (1, 3, 64) if H in (2, 8, 9) else (1,):
                for pad in ("same", "valid"):
                    _check(backend, name, N, H, H, C, F, pad, dtype, seed=H * F)


@pytest.mark.parametrize("backend", FAST)
@pytest.mark.parametrize("F", [16, 24, 33])
def test_one_channel_pooled_route_same_bits_for_1_and_2_threads(backend, F):
    """Batch large enough that the compiled loop really runs on 2 threads (work above the 2**18 threshold)."""
    x, w, b, geometry, Ho, Wo = _problem(512, 8, 8, 1, F, "same", np.float32, F)
    f = getattr(kernel_module(backend), POOLED)
    out = []
    for n in (1, 2):
        y = np.full((512, Ho // 2, Wo // 2, F), np.nan, np.float32)
        with thread_limits(n):
            f(y, x, w, b, 2, 0.1, *geometry)
        out.append(y)
    assert not np.isnan(out[0]).any()
    np.testing.assert_array_equal(out[0].view(np.uint32), out[1].view(np.uint32))


def test_one_channel_pooled_route_keeps_a_nan_of_any_window_position():
    """A NaN conv output at any of the 4 positions of a pool window gives NaN (as the reference's max-pool)."""
    f = getattr(kernel_module("cython"), POOLED)
    for F in (8, 16, 24):
        for i in range(4):
            for j in range(4):
                x = np.random.default_rng(i * 4 + j).standard_normal((1, 4, 4, 1)).astype(np.float32)
                x[0, i, j, 0] = np.nan
                w = np.ones((3, 3, 1, F), np.float32)
                want = np.full((1, 1, 1, F), np.nan, np.float32)
                ref.conv2d_direct_bias_act_maxpool2_forward(want, x, w, np.zeros(F, np.float32), 0, 0.0,
                                                            1, 1, 0, 0, 1, 1)
                got = np.zeros((1, 1, 1, F), np.float32)
                f(got, x, w, np.zeros(F, np.float32), 0, 0.0, 1, 1, 0, 0, 1, 1)
                np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=f"F={F} nan at {i},{j}")
