"""The residual merge fused into the second conv at inference: ``conv2d_winograd_bias_add_act_forward``.

The kernel ``y = f((conv(x, w) + b) + s)`` on every backend against its NumPy twin and against the unfused
steps (Winograd conv with the identity, the add, the activation), outputs and workspace pre-filled with NaN,
on shapes with partial tiles, several tile blocks, padding, batch 1 to 5, every activation, float32 and
float64; the Cython kernel with the same bits for 1 and 2 threads (a single image's tile blocks split across
the team included); and a residual block's inference output (identity and projection shortcuts, with and
without BatchNorm, every backend) equal to the unfused path and bit-identical across thread counts.
"""

import warnings

import numpy as np
import pytest
from helpers import kernel_module

from minicnn.backend import reference as ref
from minicnn.backend import tuning
from minicnn.backend.activation_codes import CODES, IDENTITY

BACKENDS = ("numpy", "numba", "cython")
DTYPES = (np.float32, np.float64)
ACTS = [(code, 0.1 if name == "leaky_relu" else 0.01) for name, code in sorted(CODES.items())]

#        N   H   W   C   F  pt pl  (bottom/right padding: "same" when pt = 1)
CASES = [
    (1, 3, 3, 1, 1, 0, 0),        # one output pixel: a single partial tile
    (2, 5, 5, 3, 7, 1, 1),        # odd "same" 5x5: partial last tiles
    (1, 6, 8, 16, 16, 1, 1),      # even "same"
    (3, 13, 13, 32, 64, 0, 0),    # odd 11x11 "valid", 36 tiles = one block
    (1, 14, 14, 8, 9, 1, 1),      # 49 tiles: two blocks (25 + 24), channel and filter tails
    (5, 15, 17, 8, 16, 1, 1),     # 72 tiles, batch 5
    (2, 9, 11, 32, 1, 1, 0),      # asymmetric padding, one filter
]


def _problem(N, H, W, C, F, pt, pl, dtype, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, H, W, C)).astype(dtype)
    w = rng.standard_normal((3, 3, C, F)).astype(dtype)
    b = rng.standard_normal(F).astype(dtype)
    Ho, Wo = H + 2 * pt - 2, W + 2 * pl - 2
    s = rng.standard_normal((N, Ho, Wo, F)).astype(dtype) * 3
    return x, w, b, s


def _fused(module, x, w, b, s, act, alpha, pt, pl, slots=2):
    N, H, W, C = x.shape
    _, Ho, Wo, F = s.shape
    y = np.full(s.shape, np.nan, x.dtype)
    work = np.full((slots, tuning.winograd_workspace_length(H, W, C, F, Ho, Wo)), np.nan, x.dtype)
    module.conv2d_winograd_bias_add_act_forward(y, x, w, b, s, work, act, alpha, pt, pl)
    return y


def _unfused(module, x, w, b, s, act, alpha, pt, pl):
    """The block's separate steps: conv + b (identity), + s, then f(... + 0)."""
    N, H, W, C = x.shape
    F = w.shape[3]
    z = np.full(s.shape, np.nan, x.dtype)
    work = np.full((2, tuning.winograd_workspace_length(H, W, C, F, *s.shape[1:3])), np.nan, x.dtype)
    module.conv2d_winograd_bias_act_forward(z, x, w, b, work, IDENTITY, alpha, pt, pl)
    z += s
    y = np.empty_like(z)
    module.bias_act_forward(y.reshape(-1, F), z.reshape(-1, F), np.zeros(F, x.dtype), act, alpha)
    return y


def _direct(x, w, b, s, act, alpha, pt, pl):
    """``f(direct conv + b + s)`` from the direct (im2col) reference, and the pre-activation scale."""
    N, H, W, C = x.shape
    _, Ho, Wo, F = s.shape
    z = np.empty(s.shape, x.dtype)
    ref.conv2d_bias_act_forward(z, x, w, b, np.empty((N, Ho * Wo, 9 * C), x.dtype), IDENTITY, 0.0, 1, 1, pt, pl,
                                1, 1)
    z += s
    y = np.empty_like(z)
    ref.bias_act_forward(y.reshape(-1, F), z.reshape(-1, F), np.zeros(F, x.dtype), act, alpha)
    return y, z


def _assert_close(got, want, pre):
    tol = 1e-5 if want.dtype == np.float32 else 1e-12
    scale = max(float(np.abs(pre).max(initial=0.0)), 1.0)
    assert not np.isnan(got).any()
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * scale)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES)
def test_bias_add_act_matches_reference(backend, dtype, case):
    """Every backend against the NumPy twin (and the twin against the direct conv), every activation."""
    module = kernel_module(backend)
    N, H, W, C, F, pt, pl = case
    x, w, b, s = _problem(N, H, W, C, F, pt, pl, dtype)
    for act, alpha in ACTS:
        want = _fused(ref, x, w, b, s, act, alpha, pt, pl)
        direct, pre = _direct(x, w, b, s, act, alpha, pt, pl)
        _assert_close(want, direct, pre)
        got = _fused(module, x, w, b, s, act, alpha, pt, pl)
        assert got.dtype == dtype
        _assert_close(got, want, pre)


@pytest.mark.parametrize("backend", ("numba", "cython"))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES)
def test_bias_add_act_equals_the_unfused_steps(backend, dtype, case):
    """The fused epilogue adds in the order of the separate passes: the same values (a zero's sign aside)."""
    module = kernel_module(backend)
    N, H, W, C, F, pt, pl = case
    x, w, b, s = _problem(N, H, W, C, F, pt, pl, dtype, seed=1)
    for act, alpha in ACTS:
        np.testing.assert_array_equal(_fused(module, x, w, b, s, act, alpha, pt, pl),
                                      _unfused(module, x, w, b, s, act, alpha, pt, pl))


@pytest.mark.parametrize("backend", ("numba", "cython"))
@pytest.mark.parametrize("shape", [(1, 26, 26, 32, 64, 0, 0), (1, 14, 14, 64, 64, 1, 1), (4, 12, 13, 16, 32, 1, 1)])
def test_bias_add_act_same_bits_for_1_and_2_threads(backend, shape):
    """One image (its tile blocks split across the team: 144 tiles in 4 blocks, 49 in 25 + 24) and a batch."""
    module = kernel_module(backend)
    from minicnn.threads import thread_limits

    x, w, b, s = _problem(*shape, np.float32, seed=5)
    out = []
    for n_threads in (1, 2):
        for slots in (1, 2):
            with thread_limits(n_threads):
                out.append(_fused(module, x, w, b, s, 1, 0.0, shape[5], shape[6], slots=slots))
    for other in out[1:]:
        np.testing.assert_array_equal(other, out[0])


@pytest.mark.parametrize("pool", [False, True])
def test_balanced_blocks_one_image_same_bits_for_1_and_2_threads(pool):
    """49 tiles (7 x 7: the grid's second conv at 28 px) now run as blocks of 25 and 24 on two threads."""
    cy = kernel_module("cython")
    from minicnn.threads import thread_limits

    x, w, b, _ = _problem(1, 14, 14, 64, 64, 1, 1, np.float32, seed=7)
    work = np.full((2, tuning.winograd_workspace_length(14, 14, 64, 64, 14, 14)), np.nan, np.float32)
    out = []
    for n_threads in (1, 2):
        with thread_limits(n_threads):
            if pool:
                y = np.full((1, 7, 7, 64), np.nan, np.float32)
                cy.conv2d_winograd_bias_act_maxpool2_forward(y, x, w, b, work, 1, 0.0, 1, 1, 14, 14)
            else:
                y = np.full((1, 14, 14, 64), np.nan, np.float32)
                cy.conv2d_winograd_bias_act_forward(y, x, w, b, work, 1, 0.0, 1, 1)
            out.append(y)
    np.testing.assert_array_equal(out[0], out[1])
    want = np.full(out[0].shape, np.nan, np.float32)
    if pool:
        ref.conv2d_winograd_bias_act_maxpool2_forward(want, x, w, b, None, 1, 0.0, 1, 1, 14, 14)
    else:
        ref.conv2d_winograd_bias_act_forward(want, x, w, b, None, 1, 0.0, 1, 1)
    _assert_close(out[0], want, want)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("bad, message", [("cropped", "s must have y's shape"), ("output", "s must not be y")])
def test_bias_add_act_refuses_a_bad_skip(backend, bad, message):
    """A skip of another shape, or the output array itself (written before the skip is read)."""
    module = kernel_module(backend)
    x, w, b, s = _problem(2, 6, 6, 8, 8, 1, 1, np.float32)
    work = np.zeros((1, tuning.winograd_workspace_length(6, 6, 8, 8, 6, 6)), np.float32)
    y, skip = (np.empty(s.shape, np.float32), np.ascontiguousarray(s[:, :5])) if bad == "cropped" else (s, s)
    with pytest.raises(ValueError, match=message):
        module.conv2d_winograd_bias_add_act_forward(y, x, w, b, skip, work, 1, 0.0, 1, 1)


# ----------------------------------------------------------------------------- the residual block


def _block_net(tokens, backend, batch_norm, shape=(12, 12, 8)):
    from minicnn import CNNClassifier

    rng = np.random.default_rng(0)
    X = rng.standard_normal((16, *shape)).astype(np.float32)
    clf = CNNClassifier(layers=tokens, padding="same", batch_norm=batch_norm, dropout="none", max_iter=2,
                        batch_size=8, backend=backend, n_threads=1, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # two iterations never converge
        clf.fit(X, np.arange(16) % 3)
    return clf, rng.standard_normal((5, *shape)).astype(np.float32)


def _unfused_forward(net, X):
    """The network's inference forward with every residual block's fused path turned off."""
    from minicnn.layers.composite import Residual

    blocks = [layer for layer in net.walk() if isinstance(layer, Residual)]
    assert blocks
    for block in blocks:
        block._fused_inference = lambda: None
    try:
        return net.forward(X, training=False).copy()
    finally:
        for block in blocks:
            del block._fused_inference


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("batch_norm", [False, True])
@pytest.mark.parametrize("tokens", [("res8", "res16s2", "gap"), ("conv8", "res8", "res8", "gap"),
                                    ("res16", "maxpool", "res16", "gap")])
def test_residual_inference_fused_equals_unfused(backend, batch_norm, tokens):
    """Identity and projection shortcuts, with and without BatchNorm: the fused merge changes no value."""
    from minicnn.layers.composite import Residual

    clf, X = _block_net(tokens, backend, batch_norm)
    net = clf.network_
    fused = [b for b in net.walk() if isinstance(b, Residual) and b._fused_inference() is not None]
    assert fused, "every block's second conv is a 3x3 Winograd conv with >= 8 channels: the merge fuses"
    for n in (1, 5):
        got = net.forward(X[:n], training=False).copy()
        want = _unfused_forward(net, X[:n])
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("tokens", [("res8", "res16s2", "gap"), ("conv16", "res16", "gap")])
def test_residual_inference_fused_same_bits_for_1_and_2_threads(tokens):
    from minicnn.threads import kernel_thread_limits

    clf, X = _block_net(tokens, "auto", True, shape=(26, 26, 8))
    net = clf.network_
    out = []
    for n_threads in (1, 2):
        for n in (1, 5):
            with kernel_thread_limits(n_threads, 10**9, net.kernels):
                out.append(net.forward(X[:n], training=False).copy())
    np.testing.assert_array_equal(out[0], out[2])
    np.testing.assert_array_equal(out[1], out[3])
    np.testing.assert_array_equal(out[0], out[1][:1])


def test_residual_backward_after_a_fused_inference_pass_is_refused():
    clf, X = _block_net(("res8", "gap"), "auto", False)
    block = clf.network_.layers[0]
    clf.network_.forward(X, training=False)
    with pytest.raises(RuntimeError, match="forward pass of the same batch with training=True"):
        block.backward(np.ones((5, 12, 12, 8), np.float32))
