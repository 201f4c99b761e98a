"""The fused kernels (Adam update, softmax cross-entropy, dense matmul) against their NumPy twins.

Each compiled kernel is compared with ``minicnn.backend.reference`` on every
backend that provides it: bit-identical where the contract says so (Adam,
matmul splits), within float rounding where libm and NumPy may differ by an
ulp (``exp``/``log`` of the loss).
"""

import numpy as np
import pytest

from minicnn.backend import get_backend
from minicnn.backend import reference as ref
from minicnn.layers import Conv2D, Dense, Flatten, MaxPool2D
from minicnn.losses import softmax_cross_entropy
from minicnn.network import Sequential
from minicnn.optim import Adam, SGD

from helpers import build_layer, importable_backends, kernel_module


def kernel(backend, name):
    return getattr(kernel_module(backend), name)


BACKENDS = ("numpy", "numba", "cython")


# ----------------------------------------------------------------------------- Adam
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [1, 7, 100_003])
@pytest.mark.parametrize("decay", [1.0, 0.999])
def test_adam_update_bit_identical_to_reference(backend, dtype, n, decay):
    rng = np.random.default_rng(n)
    p0, m0 = rng.standard_normal(n).astype(dtype), rng.standard_normal(n).astype(dtype) * 0.1
    v0, g = rng.random(n).astype(dtype) * 0.01, rng.standard_normal(n).astype(dtype)
    args = (3e-3 / (1 - 0.9**3), 0.9, 0.999, 1 - 0.999**3, 1e-8, decay)
    expected = [a.copy() for a in (p0, m0, v0)]
    ref.adam_update(*expected, g, *args)
    got = [a.copy() for a in (p0, m0, v0)]
    kernel(backend, "adam_update")(*got, g, *args)
    for e, o in zip(expected, got):
        np.testing.assert_array_equal(o, e)


@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
def test_fused_adam_on_a_flat_buffer_matches_unfused_per_array_numpy(weight_decay):
    rng = np.random.default_rng(0)
    shapes = [(3, 3, 1, 4), (4,), (16, 10), (10,)]
    params = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    flat = np.concatenate([p.ravel() for p in params])
    fused, unfused = Adam(1e-2, weight_decay=weight_decay), Adam(1e-2, weight_decay=weight_decay)
    unfused.state = [unfused._init_state(p) for p in params]
    kernels = get_backend("cython") if _has("cython") else get_backend("numpy")
    for _ in range(4):
        grads = [rng.standard_normal(s).astype(np.float32) for s in shapes]
        fused.step([(flat, np.concatenate([g.ravel() for g in grads]))], kernels=kernels)
        unfused.iterations += 1
        for p, g, state in zip(params, grads, unfused.state):
            super(Adam, unfused)._step_one(p, g, state, None)   # the per-array NumPy path
    np.testing.assert_array_equal(flat, np.concatenate([p.ravel() for p in params]))


def test_optimizer_regroups_per_array_state_into_flat_layout():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal(5), rng.standard_normal((2, 3))
    opt = Adam(0.1)
    opt.step([(a, np.ones_like(a)), (b, np.ones_like(b))])
    flat = np.concatenate([a.ravel(), b.ravel()])
    opt.step([(flat, np.ones_like(flat))])
    assert len(opt.state) == 1 and opt.state[0][0].shape == flat.shape
    sgd = SGD(0.1)
    sgd.step([(a, np.ones_like(a)), (b, np.ones_like(b))])
    sgd.step([(flat, np.ones_like(flat))])
    with pytest.raises(ValueError, match="do not match"):
        opt.step([(a, np.ones_like(a))])


def _has(backend):
    return backend in importable_backends((backend,))


# ----------------------------------------------------------------------------- softmax cross-entropy
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1, 2), (64, 10), (7, 3)])
def test_softmax_xent_matches_reference(backend, dtype, shape):
    rng = np.random.default_rng(2)
    logits = (rng.standard_normal(shape) * 20).astype(dtype)
    logits[0, 0] = 1e4 if dtype == np.float32 else 1e30   # no overflow
    labels = rng.integers(0, shape[1], shape[0]).astype(np.int64)
    expected_grad = np.empty_like(logits)
    expected = ref.softmax_xent(expected_grad, logits, labels)
    grad = np.full_like(logits, np.nan)
    loss = kernel(backend, "softmax_xent")(grad, logits, labels)
    assert isinstance(loss, float)
    np.testing.assert_allclose(loss, expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-6 if dtype == np.float32 else 1e-12, atol=1e-12)
    # against the textbook float64 formula
    z = logits.astype(np.float64)
    logp = z - z.max(1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(1, keepdims=True))
    np.testing.assert_allclose(loss, -logp[np.arange(shape[0]), labels].mean(), rtol=1e-10)


@pytest.mark.parametrize("backend", BACKENDS)
def test_softmax_xent_rejects_labels_out_of_range(backend):
    logits = np.zeros((3, 4), dtype=np.float32)
    with pytest.raises(ValueError, match="labels must be in"):
        kernel(backend, "softmax_xent")(np.empty_like(logits), logits, np.array([0, 4, 1], dtype=np.int64))


def test_loss_function_accepts_other_label_and_logit_dtypes():
    loss, grad = softmax_cross_entropy(np.zeros((2, 3), dtype=np.float16), np.array([0, 2], dtype=np.int32))
    assert np.isclose(loss, np.log(3)) and grad.dtype == np.float64


# ----------------------------------------------------------------------------- matmul
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("trans_a, trans_b", [(0, 0), (1, 0), (0, 1), (1, 1)])
@pytest.mark.parametrize("M, N, K", [(128, 64, 300), (5, 3, 2), (33, 1, 7), (0, 3, 2), (4, 3, 0),
                                     (1, 300, 900)])   # one row of >= 2^18 weights: the gemv path
def test_matmul_matches_reference(backend, dtype, trans_a, trans_b, M, N, K):
    rng = np.random.default_rng(3)
    a = rng.standard_normal((K, M) if trans_a else (M, K)).astype(dtype)
    b = rng.standard_normal((N, K) if trans_b else (K, N)).astype(dtype)
    expected = np.empty((M, N), dtype=dtype)
    ref.matmul(expected, a, b, trans_a, trans_b)
    got = np.full((M, N), np.nan, dtype=dtype)
    kernel(backend, "matmul")(got, a, b, trans_a, trans_b)
    np.testing.assert_allclose(got, expected, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("trans_a, trans_b", [(0, 0), (1, 0), (0, 1), (1, 1)])
@pytest.mark.parametrize("M, N, K", [(256, 96, 512),
                                     (1, 100, 2700), (1, 2100, 130)])   # one row split into gemv blocks
def test_matmul_same_for_1_and_2_threads(backend, trans_a, trans_b, M, N, K):
    """Big enough for one block of rows (or of a single row's outputs) per thread (work >= 2^18): the
    split changes no bit, with NaN-filled outputs; the dense forward's fused split too."""
    if not _has(backend):
        pytest.skip(f"{backend} backend not available")
    from minicnn.threads import thread_limits

    kernels = get_backend(backend)
    rng = np.random.default_rng(4)
    a = rng.standard_normal((K, M) if trans_a else (M, K)).astype(np.float32)
    b = rng.standard_normal((N, K) if trans_b else (K, N)).astype(np.float32)
    bias = rng.standard_normal(N).astype(np.float32)
    expected = np.empty((M, N), dtype=np.float32)
    ref.matmul(expected, a, b, trans_a, trans_b)
    out, dense = [], []
    for n in (1, 2):
        c = np.full((M, N), np.nan, dtype=np.float32)
        with thread_limits(n):
            kernels.matmul(c, a, b, trans_a, trans_b)
            if not trans_a and not trans_b:
                y = np.full((M, N), np.nan, dtype=np.float32)
                kernels.dense_bias_act_forward(y, a, b, bias, 1, 0.0)   # 1: relu (activation_codes)
                dense.append(y)
        out.append(c)
    np.testing.assert_array_equal(out[0], out[1])
    np.testing.assert_allclose(out[0], expected, rtol=1e-5, atol=1e-4)
    if dense:
        np.testing.assert_array_equal(dense[0], dense[1])
        np.testing.assert_allclose(dense[0], np.maximum(expected + bias, 0), rtol=1e-5, atol=1e-4)


# ----------------------------------------------------------------------------- flat parameter buffer
def test_network_packs_parameters_into_one_flat_buffer_and_repacks():
    net = Sequential([Conv2D(4, 3, activation="relu"), MaxPool2D(2), Flatten(), Dense(10)], backend="numpy")
    net.build((8, 8, 1), rng=np.random.default_rng(0))
    (flat_p, flat_g), = net.flat_params_and_grads()
    pairs = net.params_and_grads()
    assert flat_p.size == net.n_params == sum(p.size for p, _ in pairs)
    assert all(np.shares_memory(p, flat_p) and np.shares_memory(g, flat_g) for p, g in pairs)
    np.testing.assert_array_equal(flat_p, np.concatenate([p.ravel() for p, _ in pairs]))
    replaced = net.layers[-1].params["w"] * 2
    net.layers[-1].params["w"] = replaced
    (flat_p2, _), = net.flat_params_and_grads()    # a replaced array is packed again
    assert np.shares_memory(net.layers[-1].params["w"], flat_p2)
    np.testing.assert_array_equal(net.layers[-1].params["w"], replaced)


# ----------------------------------------------------------------------------- conv workspace slots
@pytest.mark.parametrize("slots", [1, 2, 3])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_cython_conv_backward_input_with_per_thread_slots_matches_full_workspace(slots, n_threads):
    if not _has("cython"):
        pytest.skip("cython backend not built")
    from minicnn.threads import thread_limits

    cy = get_backend("cython")
    rng = np.random.default_rng(5)
    N, H, W, C, F = 6, 9, 9, 8, 16
    w = rng.standard_normal((3, 3, C, F)).astype(np.float32)
    dy = rng.standard_normal((N, 9, 9, F)).astype(np.float32)
    expected = np.empty((N, H, W, C), np.float32)
    ref.conv2d_backward_input(expected, np.empty((N, 81, 9 * C), np.float32), dy, w, 1, 1, 1, 1, 1, 1)
    full, slotted = np.empty_like(expected), np.empty_like(expected)
    with thread_limits(n_threads):
        cy.conv2d_backward_input(full, np.empty((N, 81, 9 * C), np.float32), dy, w, 1, 1, 1, 1, 1, 1)
        cy.conv2d_backward_input(slotted, np.empty((slots, 81, 9 * C), np.float32), dy, w, 1, 1, 1, 1, 1, 1)
    np.testing.assert_array_equal(slotted, full)
    np.testing.assert_allclose(full, expected, rtol=1e-4, atol=1e-4)


def test_conv_layer_uses_small_backward_workspace_on_cython():
    if not _has("cython"):
        pytest.skip("cython backend not built")
    # 6 filters: below WINOGRAD_MIN_CHANNELS, so the input gradient takes the im2col path
    net = Sequential([Conv2D(4, 3, activation="relu"), Conv2D(6, 3, activation="relu"), Flatten(), Dense(3)],
                     backend="cython")
    net.build((10, 10, 2), rng=np.random.default_rng(0))
    x = np.random.default_rng(1).random((16, 10, 10, 2), dtype=np.float32)
    net.backward(np.ones_like(net.forward(x, training=True)))
    assert net.layers[1]._buffers["dcol"].size < net.layers[1]._buffers["col"].size


# ----------------------------------------------------------------------------- fused bias + activation epilogues
ACTS = [(0, 0.01), (1, 0.01), (2, 0.1), (3, 0.01), (4, 0.01)]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("act, alpha", ACTS)
@pytest.mark.parametrize("C, F, pad", [(1, 16, 1), (3, 5, 0), (32, 8, 1)])
def test_conv2d_bias_act_forward_matches_unfused(backend, dtype, act, alpha, C, F, pad):
    rng = np.random.default_rng(6)
    x = rng.standard_normal((5, 7, 7, C)).astype(dtype)
    w = rng.standard_normal((3, 3, C, F)).astype(dtype)
    b = rng.standard_normal(F).astype(dtype)
    Ho = 7 + 2 * pad - 2
    geometry = (1, 1, pad, pad, 1, 1)
    expected = np.empty((5, Ho, Ho, F), dtype)
    ref.conv2d_forward(expected, x, w, np.empty((5, Ho * Ho, 9 * C), dtype), *geometry)
    e2 = expected.reshape(-1, F)
    ref.bias_act_forward(e2, e2, b, act, alpha)
    y = np.full_like(expected, np.nan)
    col = np.empty((5, Ho * Ho, 9 * C), dtype)
    kernel(backend, "conv2d_bias_act_forward")(y, x, w, b, col, act, alpha, *geometry)
    tol = 1e-4 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(y, expected, rtol=tol, atol=tol)
    expected_col = np.empty_like(col)
    ref.conv2d_forward(np.empty_like(y), x, w, expected_col, *geometry)
    np.testing.assert_array_equal(col, expected_col)   # backward_weight still reads it


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("act, alpha", ACTS)
@pytest.mark.parametrize("M, D, U", [(1, 256, 64), (128, 300, 10), (70, 5, 3), (1, 2100, 130)])
def test_dense_bias_act_forward_matches_unfused(backend, dtype, act, alpha, M, D, U):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((M, D)).astype(dtype)
    w = (rng.standard_normal((D, U)) / np.sqrt(D)).astype(dtype)
    b = rng.standard_normal(U).astype(dtype)
    expected = np.empty((M, U), dtype)
    ref.matmul(expected, x, w, 0, 0)
    ref.bias_act_forward(expected, expected, b, act, alpha)
    y = np.full_like(expected, np.nan)
    kernel(backend, "dense_bias_act_forward")(y, x, w, b, act, alpha)
    tol = 1e-4 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(y, expected, rtol=tol, atol=tol)


def test_cython_fused_epilogue_bit_identical_to_cython_unfused():
    if not _has("cython"):
        pytest.skip("cython backend not built")
    cy = get_backend("cython")
    rng = np.random.default_rng(8)
    x = rng.standard_normal((4, 9, 9, 8)).astype(np.float32)
    w = rng.standard_normal((3, 3, 8, 16)).astype(np.float32)
    b = rng.standard_normal(16).astype(np.float32)
    col = np.empty((4, 49, 72), np.float32)
    unfused, fused = np.empty((4, 7, 7, 16), np.float32), np.empty((4, 7, 7, 16), np.float32)
    cy.conv2d_forward(unfused, x, w, col, 1, 1, 0, 0, 1, 1)
    u2 = unfused.reshape(-1, 16)
    cy.bias_act_forward(u2, u2, b, 1, 0.01)
    cy.conv2d_bias_act_forward(fused, x, w, b, col, 1, 0.01, 1, 1, 0, 0, 1, 1)
    np.testing.assert_array_equal(fused, unfused)


def test_cython_weight_gradient_same_with_numpy_or_scipy_sgemm():
    if not _has("cython"):
        pytest.skip("cython backend not built")
    from minicnn.backend import _conv, cython_kernels

    rng = np.random.default_rng(9)
    dy = rng.standard_normal((10, 6, 6, 16)).astype(np.float32)
    col = rng.standard_normal((10, 36, 27)).astype(np.float32)
    expected = np.empty((3, 3, 3, 16), np.float32)
    ref.conv2d_backward_weight(expected, dy, col)
    results = []
    address = cython_kernels._numpy_sgemm64_address()
    try:
        for addr in (0, address):
            _conv.set_sgemm64(addr)
            out = np.full_like(expected, np.nan)
            _conv.conv2d_backward_weight(out, dy, col)
            results.append(out)
    finally:
        _conv.set_sgemm64(address)
    for out in results:
        np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)


def test_ndarray_kernels_check_the_contract():
    if not _has("cython"):
        pytest.skip("cython backend not built")
    cy = get_backend("cython")
    x = np.zeros((2, 6, 6, 3), np.float32)
    w = np.zeros((3, 3, 3, 4), np.float32)
    b = np.zeros(4, np.float32)
    y, col = np.empty((2, 4, 4, 4), np.float32), np.empty((2, 16, 27), np.float32)
    cy.conv2d_bias_act_forward(y, x, w, b, col, 1, 0.0, 1, 1, 0, 0, 1, 1)
    with pytest.raises(ValueError, match="C-contiguous"):
        cy.conv2d_bias_act_forward(y, np.asfortranarray(x), w, b, col, 1, 0.0, 1, 1, 0, 0, 1, 1)
    with pytest.raises(ValueError, match="dtype"):
        cy.conv2d_bias_act_forward(y, x, w.astype(np.float64), b, col, 1, 0.0, 1, 1, 0, 0, 1, 1)
    with pytest.raises(ValueError, match="shapes do not match"):
        cy.conv2d_bias_act_forward(y, x, w, b, col[:1], 1, 0.0, 1, 1, 0, 0, 1, 1)
    with pytest.raises(TypeError):
        cy.dense_bias_act_forward(np.empty((2, 4)), [[1.0]], np.zeros((1, 4)), np.zeros(4), 0, 0.0)
    ro = np.empty((2, 4), np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="writable"):
        cy.dense_bias_act_forward(ro, np.zeros((2, 3), np.float32), np.zeros((3, 4), np.float32),
                                  np.zeros(4, np.float32), 0, 0.0)
    with pytest.raises(ValueError, match="argmax"):
        cy.maxpool2d_forward(np.empty((2, 3, 3, 3), np.float32), np.empty((2, 3, 3, 3), np.int32), x, 2, 2, 2, 2, 0, 0)


# ----------------------------------------------------------------------------- direct conv + 2x2 max-pool
#: (N, H, W, C, KH, KW, F, (sh, sw, pt, pl, dh, dw)): the 3x3 one-channel route (F with and without an
#: 8-channel tail, "same" and "valid", odd sizes), then the generic loop (channels, strides, dilation).
DIRECT_POOL_CASES = [
    (3, 8, 8, 1, 3, 3, 16, (1, 1, 1, 1, 1, 1)),     # digits first layer
    (2, 28, 28, 1, 3, 3, 32, (1, 1, 0, 0, 1, 1)),   # MNIST-like first layer, valid
    (2, 9, 7, 1, 3, 3, 13, (1, 1, 0, 2, 1, 1)),     # odd sizes, F tail, asymmetric padding
    (1, 5, 5, 1, 3, 3, 3, (1, 1, 1, 1, 1, 1)),      # F < 8: scalar loop only
    (2, 9, 8, 3, 3, 2, 9, (2, 1, 1, 0, 1, 2)),      # RGB, stride, dilation
    (1, 12, 12, 2, 5, 5, 8, (1, 1, 2, 2, 1, 1)),    # 5x5 "same"
]


def _direct_pool_problem(case, dtype, seed=0, nan=False):
    N, H, W, C, KH, KW, F, geometry = case
    sh, sw, pt, pl, dh, dw = geometry
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, H, W, C)).astype(dtype)
    if nan:
        x[0, H // 2, W // 3, 0] = np.nan
    w = rng.standard_normal((KH, KW, C, F)).astype(dtype)
    b = rng.standard_normal(F).astype(dtype)
    Ho = (H + 2 * pt - dh * (KH - 1) - 1) // sh + 1
    Wo = (W + 2 * pl - dw * (KW - 1) - 1) // sw + 1
    return x, w, b, (N, Ho // 2, Wo // 2, F), geometry


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", DIRECT_POOL_CASES)
def test_direct_conv_maxpool2_matches_conv_then_maxpool(backend, dtype, case):
    """Every pooled pixel written (NaN-prefilled), equal to the same backend's conv followed by its max-pool.

    (The backend's own unfused kernels, which the reference tests elsewhere: the fused kernel must agree with
    the layer-by-layer forward it replaces, NaN inputs included.)
    """
    for nan in (False, True):
        x, w, b, shape, geometry = _direct_pool_problem(case, dtype, seed=len(case[-1]) + case[6], nan=nan)
        N, Hp, Wp, F = shape
        for act, alpha in ACTS:
            if nan and act == 1:
                continue   # the compiled ReLU maps NaN to 0: max(relu(v)) != relu(max(v)) then (finite inputs only)
            conv = np.empty((N, 2 * Hp, 2 * Wp, F), dtype)   # the conv outputs the pool reads
            kernel(backend, "conv2d_bias_act_forward")(conv, x, w, b, np.empty((N, 4 * Hp * Wp, w[..., 0].size),
                                                                                dtype), act, alpha, *geometry)
            want = np.empty(shape, dtype)
            kernel(backend, "maxpool2d_forward")(want, np.empty(shape, np.int64), conv, 2, 2, 2, 2, 0, 0)
            got = np.full(shape, np.nan, dtype)
            kernel(backend, "conv2d_direct_bias_act_maxpool2_forward")(got, x, w, b, act, alpha, *geometry)
            tol = 1e-5 if dtype == np.float32 else 1e-12
            np.testing.assert_allclose(got, want, rtol=tol, atol=tol * 10)   # NaN where the reference has NaN


@pytest.mark.parametrize("backend", ("numba", "cython"))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", DIRECT_POOL_CASES)
def test_direct_conv_maxpool2_matches_reference(backend, dtype, case):
    """The fused direct conv + 2x2 max-pool against its NumPy twin, every pooled pixel written, every activation."""
    x, w, b, shape, geometry = _direct_pool_problem(case, dtype, seed=case[6])
    for act, alpha in ACTS:
        want = np.full(shape, np.nan, dtype)
        ref.conv2d_direct_bias_act_maxpool2_forward(want, x, w, b, act, alpha, *geometry)
        got = np.full(shape, np.nan, dtype)
        kernel(backend, "conv2d_direct_bias_act_maxpool2_forward")(got, x, w, b, act, alpha, *geometry)
        assert not np.isnan(want).any()
        tol = 1e-5 if dtype == np.float32 else 1e-12
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol * 10)


@pytest.mark.parametrize("backend", ["numba", "cython"])
def test_direct_conv_maxpool2_same_bits_for_1_and_2_threads(backend):
    from minicnn.threads import thread_limits

    f = kernel(backend, "conv2d_direct_bias_act_maxpool2_forward")
    # 64 * 4 * 14 * 14 * 9 * 32 / 16 >= 2**18: the Cython loop really runs on 2 threads
    x, w, b, shape, geometry = _direct_pool_problem((64, 28, 28, 1, 3, 3, 32, (1, 1, 0, 0, 1, 1)), np.float32)
    out = []
    for n in (1, 2):
        y = np.full(shape, np.nan, np.float32)
        with thread_limits(n):
            f(y, x, w, b, 1, 0.0, *geometry)
        out.append(y)
    np.testing.assert_array_equal(out[0], out[1])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("C", [1, 2, 3])
@pytest.mark.parametrize("padding", ["same", "valid"])
def test_shallow_first_layer_takes_the_measured_pooled_route_and_matches_unfused(backend, C, padding):
    """A 3x3 first conv on 1-3 channels + 2x2 max-pool at inference: one channel runs the direct kernel,
    2-3 channels Winograd + pool (``WINOGRAD_POOL_MIN_CHANNELS``); either equals the layer-by-layer forward."""
    from minicnn.layers import conv as conv_module

    if backend != "numpy":
        kernel(backend, "conv2d_winograd_bias_act_maxpool2_forward")   # skips when the backend is missing
    net = Sequential([Conv2D(32, 3, padding=padding, activation="relu"), MaxPool2D(2), Flatten(), Dense(4)],
                     backend=backend)
    net.build((13, 12, C), rng=np.random.default_rng(C))
    layer = net.layers[0]
    assert layer.fuses_with(net.layers[1])
    route = conv_module._WINOGRAD_POOL if C >= conv_module.WINOGRAD_POOL_MIN_CHANNELS else conv_module._DIRECT_POOL
    assert layer._pooled_kernel() is getattr(layer.kernels, route)
    x = np.random.default_rng(1).random((5, 13, 12, C), dtype=np.float32)
    fused = net.forward(x, training=False).copy()
    y = x
    for each in net.layers:
        y = each.forward(y, False)
    np.testing.assert_allclose(fused, y, rtol=1e-5, atol=1e-5)


def test_cython_direct_conv_maxpool2_checks_its_arguments():
    f = kernel("cython", "conv2d_direct_bias_act_maxpool2_forward")
    x, w, b = np.zeros((2, 8, 8, 1), np.float32), np.zeros((3, 3, 1, 4), np.float32), np.zeros(4, np.float32)
    with pytest.raises(ValueError, match=r"maxpool2_forward shapes do not match.*b \(5,\)"):
        f(np.empty((2, 4, 4, 4), np.float32), x, w, np.zeros(5, np.float32), 1, 0.0, 1, 1, 1, 1, 1, 1)
    with pytest.raises(ValueError, match="w has dtype float64"):
        f(np.empty((2, 4, 4, 4), np.float32), x, w.astype(np.float64), b, 1, 0.0, 1, 1, 1, 1, 1, 1)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_shallow_conv_then_maxpool_runs_fused_at_inference_and_matches_unfused(backend, activation):
    """The digits first layer (K = 9) fuses with its pool; inference equals the layer-by-layer forward."""
    if backend != "numpy":
        kernel(backend, "conv2d_direct_bias_act_maxpool2_forward")   # skips when the backend is missing
    net = Sequential([Conv2D(16, 3, padding="same", activation=activation), MaxPool2D(2), Flatten(), Dense(10)],
                     backend=backend)
    net.build((8, 8, 1), rng=np.random.default_rng(0))
    assert net.layers[0].fuses_with(net.layers[1])
    x = np.random.default_rng(1).random((5, 8, 8, 1), dtype=np.float32)
    fused = net.forward(x, training=False).copy()
    y = x
    for layer in net.layers:
        y = layer.forward(y, False)
    np.testing.assert_allclose(fused, y, rtol=1e-5, atol=1e-6)
    wide = Conv2D(4, 5, padding="same")   # K = 25 * 2 = 50: too deep for the direct route
    build_layer(wide, (8, 8, 2), backend, dtype=np.float32)
    pool = MaxPool2D(2)
    pool.build(wide.output_shape, dtype=np.float32, rng=None, backend=get_backend(backend))
    assert not wide.fuses_with(pool)
