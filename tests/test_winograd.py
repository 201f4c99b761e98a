"""Winograd F(2x2, 3x3) forward conv (Cython kernel and NumPy twin) against the direct reference.

``conv2d_winograd_bias_act_forward(y, x, w, b, work, act, alpha, pt, pl)`` must
equal ``reference.conv2d_bias_act_forward`` with stride 1 and dilation 1 up to
rounding, on odd and even output sizes, "valid" and "same" padding, asymmetric
and cropped outputs, every activation, float32 and float64. Outputs (and the
workspace) are pre-filled with NaN so an element left unwritten fails; the
Cython kernel must give the same bits for 1 and 2 OpenMP threads and for any
number of workspace slots, and reject bad arguments by name.
"""


import numpy as np
import pytest
from helpers import kernel_module

from minicnn.backend import reference as ref
from minicnn.backend import tuning
from minicnn.backend.activation_codes import CODES

BACKENDS = ("numpy", "numba", "cython")
DTYPES = (np.float32, np.float64)
ACTS = [(code, 0.1 if name == "leaky_relu" else 0.01) for name, code in sorted(CODES.items())]


_module = kernel_module


def _problem(N, H, W, C, F, pt, pb, pl, pr, dtype, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, H, W, C)).astype(dtype)
    w = rng.standard_normal((3, 3, C, F)).astype(dtype)
    b = rng.standard_normal(F).astype(dtype)
    return x, w, b, (H + pt + pb - 2, W + pl + pr - 2)


def _direct(x, w, b, Ho, Wo, act, alpha, pt, pl):
    """The direct reference ``f(conv(x, w) + b)`` and the pre-activation ``conv(x, w)``."""
    N, _, _, C = x.shape
    F = w.shape[3]
    out = []
    for code, bias in ((act, b), (0, np.zeros_like(b))):
        y = np.empty((N, Ho, Wo, F), x.dtype)
        col = np.empty((N, Ho * Wo, 9 * C), x.dtype)
        ref.conv2d_bias_act_forward(y, x, w, bias, col, code, alpha, 1, 1, pt, pl, 1, 1)
        out.append(y)
    return out


def _winograd(module, x, w, b, Ho, Wo, act, alpha, pt, pl, slots=2):
    N, H, W, C = x.shape
    F = w.shape[3]
    y = np.full((N, Ho, Wo, F), np.nan, x.dtype)
    work = np.full((slots, tuning.winograd_workspace_length(H, W, C, F, Ho, Wo)), np.nan, x.dtype)
    module.conv2d_winograd_bias_act_forward(y, x, w, b, work, act, alpha, pt, pl)
    return y


def _assert_close(got, want, pre):
    """Tolerance relative to the pre-activation scale (sums of up to 9*C products)."""
    tol = 1e-5 if want.dtype == np.float32 else 1e-12
    scale = max(float(np.abs(pre).max(initial=0.0)), 1.0)
    assert not np.isnan(got).any()
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * scale)


#        N   H   W   C   F  pt pb pl pr
CASES = [
    (1, 3, 3, 1, 1, 0, 0, 0, 0),        # one output pixel: a single partial tile
    (2, 5, 5, 3, 7, 0, 0, 0, 0),        # odd 3x3 output
    (1, 6, 8, 16, 16, 0, 0, 0, 0),      # even 4x6 output, valid
    (5, 7, 7, 3, 16, 1, 1, 1, 1),       # "same", odd 7x7
    (2, 8, 8, 1, 16, 1, 1, 1, 1),       # digits-like first layer, "same", even
    (2, 13, 13, 32, 64, 0, 0, 0, 0),    # MNIST conv2-like, odd 11x11, several tile blocks
    (1, 12, 13, 16, 7, 1, 1, 1, 1),     # "same", even x odd
    (2, 9, 11, 32, 1, 1, 0, 0, 1),      # asymmetric padding, one filter
    (1, 10, 10, 3, 64, 2, 2, 2, 2),     # padding 2: border tiles all around
    (2, 11, 9, 16, 16, 0, -1, 1, -2),   # output cropped below the "valid" size
    (1, 4, 13, 32, 7, 0, 1, 0, 0),      # one tile row, odd width
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES)
def test_winograd_matches_direct_reference(backend, dtype, case):
    module = _module(backend)
    N, H, W, C, F, pt, pb, pl, pr = case
    x, w, b, (Ho, Wo) = _problem(N, H, W, C, F, pt, pb, pl, pr, dtype)
    for act, alpha in ACTS:
        want, pre = _direct(x, w, b, Ho, Wo, act, alpha, pt, pl)
        got = _winograd(module, x, w, b, Ho, Wo, act, alpha, pt, pl)
        assert got.dtype == dtype
        _assert_close(got, want, pre)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("C, F", [(1, 1), (3, 7), (16, 16), (32, 64)])
@pytest.mark.parametrize("pad", [0, 1])
def test_winograd_channel_counts(backend, C, F, pad):
    module = _module(backend)
    x, w, b, (Ho, Wo) = _problem(2, 6, 9, C, F, pad, pad, pad, pad, np.float32, seed=C * F)
    want, pre = _direct(x, w, b, Ho, Wo, 1, 0.0, pad, pad)
    _assert_close(_winograd(module, x, w, b, Ho, Wo, 1, 0.0, pad, pad), want, pre)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_winograd_empty_problems(backend, dtype):
    module = _module(backend)
    rng = np.random.default_rng(1)
    b = rng.standard_normal(4).astype(dtype)
    # no input channels: y = f(b) everywhere
    x, w = np.zeros((2, 5, 5, 0), dtype), np.zeros((3, 3, 0, 4), dtype)
    y = _winograd(module, x, w, b, 3, 3, 4, 0.0, 0, 0)
    np.testing.assert_allclose(y, np.broadcast_to(1 / (1 + np.exp(-b)), y.shape), rtol=1e-6)
    # empty batch / empty output: nothing to write, no error
    w = rng.standard_normal((3, 3, 2, 4)).astype(dtype)
    assert _winograd(module, np.zeros((0, 5, 5, 2), dtype), w, b, 3, 3, 1, 0.0, 0, 0).shape == (0, 3, 3, 4)
    assert _winograd(module, np.zeros((1, 2, 2, 2), dtype), w, b, 0, 0, 1, 0.0, 0, 0).shape == (1, 0, 0, 4)


def test_winograd_workspace_length_agrees():
    cy = _module("cython")
    for shape in [(26, 26, 32, 64, 24, 24), (8, 8, 1, 16, 8, 8), (3, 3, 1, 1, 1, 1), (5, 5, 0, 4, 3, 3),
                  (2, 2, 2, 4, 0, 0), (101, 7, 5, 3, 99, 5)]:
        assert cy.winograd_workspace_length(*shape) == tuning.winograd_workspace_length(*shape)
    # U (16*C*F) plus the scratch of one block of tiles: grows with C and F, not with H and W
    assert tuning.winograd_workspace_length(26, 26, 32, 64, 24, 24) >= 16 * 32 * 64 + 16 * 36 * (32 + 64)
    assert tuning.winograd_workspace_length(260, 260, 32, 64, 258, 258) == tuning.winograd_workspace_length(
        26, 26, 32, 64, 24, 24)
    for module in (cy, tuning):
        with pytest.raises(ValueError, match="C=-1"):
            module.winograd_workspace_length(5, 5, -1, 4, 3, 3)


def test_cython_winograd_same_bits_for_any_thread_count_and_slots():
    cy = _module("cython")
    from minicnn.threads import thread_limits

    # 12 * 12 * 12 * 9 * 16 * 32 / 16 >= MIN_PARALLEL_WORK: the loop really runs on 2 threads
    x, w, b, (Ho, Wo) = _problem(12, 13, 14, 16, 32, 0, 1, 1, 0, np.float32, seed=3)
    results = []
    for n_threads in (1, 2):
        for slots in (1, 2, 3):
            with thread_limits(n_threads):
                results.append(_winograd(cy, x, w, b, Ho, Wo, 2, 0.1, 0, 1, slots=slots))
    for other in results[1:]:
        np.testing.assert_array_equal(other, results[0])
    want, pre = _direct(x, w, b, Ho, Wo, 2, 0.1, 0, 1)
    _assert_close(results[0], want, pre)


def test_cython_winograd_reuses_the_workspace():
    """Stale workspace contents (the previous call's) never leak into the result."""
    cy = _module("cython")
    x, w, b, (Ho, Wo) = _problem(3, 9, 9, 8, 8, 1, 1, 1, 1, np.float64, seed=4)
    work = np.empty((2, cy.winograd_workspace_length(9, 9, 8, 8, Ho, Wo)), np.float64)
    first, again = np.empty((3, Ho, Wo, 8)), np.empty((3, Ho, Wo, 8))
    cy.conv2d_winograd_bias_act_forward(first, x, w, b, work, 1, 0.0, 1, 1)
    cy.conv2d_winograd_bias_act_forward(np.empty_like(first), -x, 2 * w, b, work, 3, 0.0, 1, 1)
    cy.conv2d_winograd_bias_act_forward(again, x, w, b, work, 1, 0.0, 1, 1)
    np.testing.assert_array_equal(again, first)


def test_cython_winograd_checks_its_arguments():
    cy = _module("cython")
    f = cy.conv2d_winograd_bias_act_forward
    x = np.zeros((2, 6, 6, 3), np.float32)
    w = np.zeros((3, 3, 3, 4), np.float32)
    b = np.zeros(4, np.float32)
    y = np.empty((2, 4, 4, 4), np.float32)
    L = cy.winograd_workspace_length(6, 6, 3, 4, 4, 4)
    work = np.zeros((2, L), np.float32)
    f(y, x, w, b, work, 1, 0.0, 0, 0)
    f(y, x, w, b, np.empty((1, L + 5), np.float32), 1, 0.0, 0, 0)   # longer rows, one slot: fine
    with pytest.raises(TypeError, match="x must be a float32 or float64"):
        f(y, x.astype(np.int32), w, b, work, 1, 0.0, 0, 0)
    with pytest.raises(TypeError, match="y must be a numpy.ndarray"):
        f(y.tolist(), x, w, b, work, 1, 0.0, 0, 0)
    with pytest.raises(ValueError, match="w has dtype float64"):
        f(y, x, w.astype(np.float64), b, work, 1, 0.0, 0, 0)
    with pytest.raises(ValueError, match="work has dtype float64"):
        f(y, x, w, b, work.astype(np.float64), 1, 0.0, 0, 0)
    with pytest.raises(ValueError, match="x must be C-contiguous"):
        f(y, np.asfortranarray(x), w, b, work, 1, 0.0, 0, 0)
    with pytest.raises(ValueError, match="work must be C-contiguous"):
        f(y, x, w, b, np.empty((L, 2), np.float32).T, 1, 0.0, 0, 0)
    with pytest.raises(ValueError, match="work must be 2-D"):
        f(y, x, w, b, work.ravel(), 1, 0.0, 0, 0)
    with pytest.raises(ValueError, match=r"work must be \(slots >= 1, L >= %d\).*\(2, %d\)" % (L, L - 1)):
        f(y, x, w, b, work[:, :-1].copy(), 1, 0.0, 0, 0)
    with pytest.raises(ValueError, match=r"work must be .*\(0, %d\)" % L):
        f(y, x, w, b, work[:0], 1, 0.0, 0, 0)
    with pytest.raises(ValueError, match=r"w must be \(3, 3, C, F\).*\(5, 5, 3, 4\)"):
        f(y, x, np.zeros((5, 5, 3, 4), np.float32), b, work, 1, 0.0, 0, 0)
    with pytest.raises(ValueError, match=r"shapes do not match.*b \(5,\)"):
        f(y, x, w, np.zeros(5, np.float32), work, 1, 0.0, 0, 0)
    with pytest.raises(ValueError, match=r"shapes do not match.*y \(3, 4, 4, 4\)"):
        f(np.empty((3, 4, 4, 4), np.float32), x, w, b, work, 1, 0.0, 0, 0)
    with pytest.raises(ValueError, match=r"shapes do not match.*w \(3, 3, 2, 4\)"):
        f(y, x, np.zeros((3, 3, 2, 4), np.float32), b, work, 1, 0.0, 0, 0)
    with pytest.raises(ValueError, match="padding must be >= 0; received pt=-1"):
        f(y, x, w, b, work, 1, 0.0, -1, 0)
    ro = np.empty_like(y)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="y must be writable"):
        f(ro, x, w, b, work, 1, 0.0, 0, 0)


# ----------------------------------------------------------------------------- fused conv + 2x2 max-pool
#: (N, H, W, pt, pb, pl, pr): odd/even conv output sizes, padding 0/1/2 (and asymmetric), N 1/3
POOL_GEOMETRIES = [
    (1, 8, 9, 0, 0, 0, 0),      # 6x7: even x odd, valid
    (3, 7, 6, 1, 1, 1, 1),      # 7x6: odd x even, "same"
    (3, 9, 9, 2, 2, 2, 2),      # 11x11: odd, padding 2, border tiles all around
    (1, 6, 6, 1, 1, 1, 1),      # 6x6: even, "same"
    (3, 4, 5, 0, 0, 0, 0),      # 2x3: one pooled row
    (1, 10, 7, 2, 0, 1, 2),     # 10x8: asymmetric padding
    (3, 9, 8, 0, -1, 1, 0),     # 6x7: conv output cropped below the "valid" size
]


def _winograd_pool(module, x, w, b, Ho, Wo, act, alpha, pt, pl, slots=2):
    N, H, W, C = x.shape
    F = w.shape[3]
    y = np.full((N, Ho // 2, Wo // 2, F), np.nan, x.dtype)
    work = np.full((slots, tuning.winograd_workspace_length(H, W, C, F, Ho, Wo)), np.nan, x.dtype)
    module.conv2d_winograd_bias_act_maxpool2_forward(y, x, w, b, work, act, alpha, pt, pl, Ho, Wo)
    return y


def _unfused_pool(module, x, w, b, Ho, Wo, act, alpha, pt, pl):
    """``module``'s Winograd forward, then the reference 2x2 stride-2 max-pool."""
    conv = _winograd(module, x, w, b, Ho, Wo, act, alpha, pt, pl)
    y = np.full((x.shape[0], Ho // 2, Wo // 2, w.shape[3]), np.nan, x.dtype)
    ref.maxpool2d_forward(y, np.empty(y.shape, np.int64), conv, 2, 2, 2, 2, 0, 0)
    return y


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("C", [8, 16, 32])
@pytest.mark.parametrize("F", [1, 7, 64])
@pytest.mark.parametrize("geometry", POOL_GEOMETRIES)
def test_winograd_maxpool2_equals_winograd_then_maxpool(backend, dtype, C, F, geometry):
    """Same bits as the same backend's unfused Winograd forward followed by the max-pool."""
    module = _module(backend)
    N, H, W, pt, pb, pl, pr = geometry
    x, w, b, (Ho, Wo) = _problem(N, H, W, C, F, pt, pb, pl, pr, dtype, seed=C + F)
    for act, alpha in ACTS:
        got = _winograd_pool(module, x, w, b, Ho, Wo, act, alpha, pt, pl)
        assert got.dtype == dtype and got.shape == (N, Ho // 2, Wo // 2, F)
        assert not np.isnan(got).any()
        np.testing.assert_array_equal(got, _unfused_pool(module, x, w, b, Ho, Wo, act, alpha, pt, pl))


@pytest.mark.parametrize("dtype", DTYPES)
def test_winograd_maxpool2_cython_close_to_reference(dtype):
    cy = _module("cython")
    x, w, b, (Ho, Wo) = _problem(3, 13, 12, 32, 64, 1, 0, 0, 1, dtype, seed=7)
    for act, alpha in ACTS:
        want = _winograd_pool(ref, x, w, b, Ho, Wo, act, alpha, 1, 0)
        _assert_close(_winograd_pool(cy, x, w, b, Ho, Wo, act, alpha, 1, 0), want, want)


@pytest.mark.parametrize("backend", BACKENDS)
def test_winograd_maxpool2_no_input_channels(backend):
    module = _module(backend)
    b = np.random.default_rng(2).standard_normal(4)
    x, w = np.zeros((2, 5, 6, 0)), np.zeros((3, 3, 0, 4))
    y = _winograd_pool(module, x, w, b, 3, 4, 4, 0.0, 0, 0)
    np.testing.assert_allclose(y, np.broadcast_to(1 / (1 + np.exp(-b)), (2, 1, 2, 4)), rtol=1e-12)


def test_cython_winograd_maxpool2_same_bits_for_any_thread_count_and_slots():
    cy = _module("cython")
    from minicnn.threads import thread_limits

    # 12 * (4 * 6 * 6) * 9 * 16 * 32 / 16 >= MIN_PARALLEL_WORK: the loop really runs on 2 threads
    x, w, b, (Ho, Wo) = _problem(12, 14, 13, 16, 32, 0, 0, 1, 0, np.float32, seed=5)
    results = []
    for n_threads in (1, 2):
        for slots in (1, 2, 3):
            with thread_limits(n_threads):
                results.append(_winograd_pool(cy, x, w, b, Ho, Wo, 2, 0.1, 0, 1, slots=slots))
    for other in results[1:]:
        np.testing.assert_array_equal(other, results[0])
    with thread_limits(2):
        np.testing.assert_array_equal(results[0], _unfused_pool(cy, x, w, b, Ho, Wo, 2, 0.1, 0, 1))


def test_cython_winograd_maxpool2_reuses_the_workspace():
    cy = _module("cython")
    x, w, b, (Ho, Wo) = _problem(3, 9, 9, 8, 8, 1, 1, 1, 1, np.float64, seed=4)
    work = np.empty((2, cy.winograd_workspace_length(9, 9, 8, 8, Ho, Wo)), np.float64)
    f = cy.conv2d_winograd_bias_act_maxpool2_forward
    first, again = np.empty((3, Ho // 2, Wo // 2, 8)), np.empty((3, Ho // 2, Wo // 2, 8))
    f(first, x, w, b, work, 1, 0.0, 1, 1, Ho, Wo)
    cy.conv2d_winograd_bias_act_forward(np.empty((3, Ho, Wo, 8)), -x, 2 * w, b, work, 3, 0.0, 1, 1)
    f(again, x, w, b, work, 1, 0.0, 1, 1, Ho, Wo)
    np.testing.assert_array_equal(again, first)


@pytest.mark.parametrize("backend", BACKENDS)
def test_winograd_maxpool2_checks_its_arguments(backend):
    module = _module(backend)
    f = module.conv2d_winograd_bias_act_maxpool2_forward
    x = np.zeros((2, 7, 7, 3), np.float32)
    w = np.zeros((3, 3, 3, 4), np.float32)
    b = np.zeros(4, np.float32)
    y = np.empty((2, 2, 2, 4), np.float32)
    L = tuning.winograd_workspace_length(7, 7, 3, 4, 5, 5)
    work = np.zeros((2, L), np.float32)
    f(y, x, w, b, work, 1, 0.0, 0, 0, 5, 5)
    with pytest.raises(ValueError, match=r"received Ho=1, Wo=5"):
        f(np.empty((2, 0, 2, 4), np.float32), x, w, b, work, 1, 0.0, 0, 0, 1, 5)
    with pytest.raises(ValueError, match=r"received Ho=4, Wo=0"):
        f(np.empty((2, 2, 0, 4), np.float32), x, w, b, work, 1, 0.0, 0, 0, 4, 0)
    with pytest.raises(ValueError, match=r"y must be \(N, Ho // 2, Wo // 2, F\) = \(2, 2, 2, 4\).*"
                                         r"Ho=5, Wo=5.*\(2, 3, 2, 4\)"):
        f(np.empty((2, 3, 2, 4), np.float32), x, w, b, work, 1, 0.0, 0, 0, 5, 5)
    with pytest.raises(ValueError, match=r"y must be .*\(2, 5, 5, 4\)"):   # the conv-sized output
        f(np.empty((2, 5, 5, 4), np.float32), x, w, b, work, 1, 0.0, 0, 0, 5, 5)
    if backend != "cython":
        return   # the reference and Numba ignore the workspace and leave the array contract to NumPy
    with pytest.raises(ValueError, match=r"work must be \(slots >= 1, L >= %d\).*\(2, %d\)" % (L, L - 1)):
        f(y, x, w, b, work[:, :-1].copy(), 1, 0.0, 0, 0, 5, 5)
    with pytest.raises(ValueError, match=r"work must be .*\(0, %d\)" % L):
        f(y, x, w, b, work[:0], 1, 0.0, 0, 0, 5, 5)
    with pytest.raises(ValueError, match=r"maxpool2_forward shapes do not match.*b \(5,\)"):
        f(y, x, w, np.zeros(5, np.float32), work, 1, 0.0, 0, 0, 5, 5)
    with pytest.raises(ValueError, match="padding must be >= 0; received pt=0, pl=-2"):
        f(y, x, w, b, work, 1, 0.0, 0, -2, 5, 5)
    with pytest.raises(ValueError, match="work has dtype float64"):
        f(y, x, w, b, work.astype(np.float64), 1, 0.0, 0, 0, 5, 5)
    with pytest.raises(TypeError, match="y must be a numpy.ndarray"):
        f(y.tolist(), x, w, b, work, 1, 0.0, 0, 0, 5, 5)


def test_numba_winograd_kernels_same_bits_for_1_and_2_threads():
    """Forward, fused max-pool and weight gradient from the input: one sample per prange iteration."""
    nb = _module("numba")
    from minicnn.threads import thread_limits

    x, w, b, (Ho, Wo) = _problem(6, 14, 13, 16, 32, 1, 1, 0, 1, np.float32, seed=9)
    dy = np.random.default_rng(3).standard_normal((6, Ho, Wo, 32)).astype(np.float32)
    work = np.zeros(tuning.conv_wgrad_workspace_length(6, 14, 13, 16, 3, 3, 32, Ho, Wo, 2), np.float32)
    results = []
    for n_threads in (1, 2):
        with thread_limits(n_threads):
            dw = np.full((3, 3, 16, 32), np.nan, np.float32)
            nb.conv2d_backward_weight_from_input(dw, dy, x, work, 1, 1, 1, 0, 1, 1)
            results.append((_winograd(nb, x, w, b, Ho, Wo, 2, 0.1, 1, 0),
                            _winograd_pool(nb, x, w, b, Ho, Wo, 2, 0.1, 1, 0), dw))
    for one, two in zip(*results):
        np.testing.assert_array_equal(one, two)


@pytest.mark.parametrize("pool", [False, True])
def test_cython_winograd_one_sample_split_across_threads_same_bits(pool):
    """Fewer samples than threads: the tile blocks of a sample run on different threads, same bits as one."""
    cy = _module("cython")
    from minicnn.threads import thread_limits

    # MNIST conv2: 144 tiles = 4 blocks per sample, work above the parallel threshold for N = 1
    x, w, b, (Ho, Wo) = _problem(1, 26, 26, 32, 64, 0, 0, 0, 0, np.float32, seed=11)
    run = _winograd_pool if pool else _winograd
    out = []
    for n_threads in (1, 2):
        with thread_limits(n_threads):
            out.append(run(cy, x, w, b, Ho, Wo, 1, 0.0, 0, 0, slots=2))
    np.testing.assert_array_equal(out[0], out[1])
    want = _winograd_pool(ref, x, w, b, Ho, Wo, 1, 0.0, 0, 0) if pool else _winograd(ref, x, w, b, Ho, Wo, 1, 0.0,
                                                                                      0, 0)
    _assert_close(out[1], want, want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("pool", [False, True])
@pytest.mark.parametrize("H, W, C, F", [(26, 26, 32, 64), (24, 24, 33, 40), (66, 66, 1, 128)])
def test_cython_winograd_one_sample_on_any_team_with_raw_or_transformed_weights(H, W, C, F, pool, dtype):
    """One sample on a team of 1, 2 or 3 threads (its tile blocks shared out: 4, 4 and 29 blocks here), with raw
    weights (transformed per call into the workspace, NaN-filled) or weights given transformed
    (``winograd_weight_transform``): the same bits every time, and the reference's values."""
    cy = _module("cython")
    from minicnn.threads import thread_limits

    x, w, b, (Ho, Wo) = _problem(1, H, W, C, F, 0, 0, 0, 0, dtype, seed=C)
    u = np.full((4, 4, C, F), np.nan, dtype)
    cy.winograd_weight_transform(u, w)
    run = _winograd_pool if pool else _winograd
    out = []
    for weights in (w, u):
        for n_threads in (1, 2, 3):
            with thread_limits(n_threads):
                out.append(run(cy, x, weights, b, Ho, Wo, 2, 0.1, 0, 0, slots=3))
    for y in out[1:]:
        np.testing.assert_array_equal(y, out[0])
    want = (_winograd_pool if pool else _winograd)(ref, x, w, b, Ho, Wo, 2, 0.1, 0, 0)
    _assert_close(out[0], want, want)
