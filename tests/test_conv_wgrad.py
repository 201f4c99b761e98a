"""Conv weight gradient from the layer input (Cython kernel and NumPy twin) against the col-based reference.

``conv2d_backward_weight_from_input(dw, dy, x, work, sh, sw, pt, pl, dh, dwl)``
must equal ``reference.conv2d_backward_weight(dw, dy, col)`` with ``col`` the
im2col of ``x`` (filled by ``reference.conv2d_forward``) up to rounding, for
any kernel size, stride, dilation and padding, more and fewer samples than the
8 fixed groups, float32 and float64. Outputs and workspaces are pre-filled
with NaN (an element left unwritten, or stale scratch read, fails); the Cython
and Numba kernels must give the same bits for 1 and 2 threads and for any number
of workspace slots, and reject bad arguments by name.
"""

import itertools

import numpy as np
import pytest
from helpers import kernel_module

from minicnn.backend import reference as ref
from minicnn.backend import tuning

BACKENDS = ("numpy", "numba", "cython")
DTYPES = (np.float32, np.float64)


_module = kernel_module


def _out(size, pad_before, pad_after, kernel, stride, dilation):
    return (size + pad_before + pad_after - dilation * (kernel - 1) - 1) // stride + 1


def _problem(N, H, W, C, F, KH, KW, sh, sw, pt, pb, pl, pr, dh, dw, dtype, seed=0):
    """``x``, ``dy`` and the expected ``dw`` (col-based reference)."""
    rng = np.random.default_rng(seed)
    Ho, Wo = _out(H, pt, pb, KH, sh, dh), _out(W, pl, pr, KW, sw, dw)
    x = rng.standard_normal((N, H, W, C)).astype(dtype)
    dy = rng.standard_normal((N, Ho, Wo, F)).astype(dtype)
    col = np.empty((N, Ho * Wo, KH * KW * C), dtype)
    ref.conv2d_forward(np.empty((N, Ho, Wo, F), dtype), x, np.zeros((KH, KW, C, F), dtype), col,
                       sh, sw, pt, pl, dh, dw)
    want = np.empty((KH, KW, C, F), dtype)
    ref.conv2d_backward_weight(want, dy, col)
    return x, dy, want


def _wgrad(module, x, dy, KH, KW, geometry, slots=2, work=None):
    N, H, W, C = x.shape
    _, Ho, Wo, F = dy.shape
    if work is None:
        work = np.full(tuning.conv_wgrad_workspace_length(N, H, W, C, KH, KW, F, Ho, Wo, slots), np.nan, x.dtype)
    dw = np.full((KH, KW, C, F), np.nan, x.dtype)
    module.conv2d_backward_weight_from_input(dw, dy, x, work, *geometry)
    return dw


def _assert_close(got, want):
    """Tolerance relative to the gradient's scale (sums of N*Ho*Wo products)."""
    tol = 1e-4 if want.dtype == np.float32 else 1e-11
    scale = max(float(np.abs(want).max(initial=0.0)), 1.0)
    assert got.dtype == want.dtype
    assert not np.isnan(got).any()
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * scale)


# every (kernel, stride, dilation, padding) combination, with (N, C, F) cycling through their values
KERNELS = [(1, 1), (3, 3), (2, 3), (5, 5)]
SIZES = list(itertools.product((1, 3, 9, 17), (1, 3, 32), (1, 5, 64)))
GEOMETRIES = [(k, s, d, p) for k, s, d, p in itertools.product(KERNELS, (1, 2), (1, 2), (0, 1, 2))]
CASES = []
for i, ((KH, KW), s, d, p) in enumerate(GEOMETRIES):
    N, C, F = SIZES[(7 * i) % len(SIZES)]
    H, W = 11, 10 if i % 2 else 12
    #            N  H  W  C  F  KH  KW sh sw pt pb           pl pr dh dw
    CASES.append((N, H, W, C, F, KH, KW, s, s, p, (p + 1) % 3, p, p, d, d))
CASES += [
    (9, 7, 26, 32, 64, 3, 3, 1, 1, 0, 0, 0, 0, 1, 1),     # MNIST-conv2-like: 2-row blocks over 5-row samples
    (17, 9, 9, 3, 5, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1),       # thin layer: one block spans several samples
    (3, 8, 9, 2, 4, 3, 2, 2, 1, 1, 0, 0, 1, 2, 1),        # anisotropic stride and dilation
    (2, 6, 7, 4, 3, 2, 2, 1, 1, 0, -2, 0, -1, 1, 1),      # output cropped below the "valid" size
    (2, 5, 5, 3, 4, 3, 3, 1, 1, 3, 3, 3, 3, 1, 1),        # padding wider than the kernel: zero rows
    (1, 30, 30, 64, 128, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1),   # Wo*K*F > 1e6: 7-row blocks for the packed GEMM
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES, ids=[f"case{i}" for i in range(len(CASES))])
def test_wgrad_from_input_matches_col_reference(backend, dtype, case):
    module = _module(backend)
    N, H, W, C, F, KH, KW, sh, sw, pt, pb, pl, pr, dh, dw = case
    x, dy, want = _problem(*case, dtype, seed=len(CASES))
    _assert_close(_wgrad(module, x, dy, KH, KW, (sh, sw, pt, pl, dh, dw)), want)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_wgrad_from_input_empty_problems(backend, dtype):
    module = _module(backend)
    rng = np.random.default_rng(1)
    g = (1, 1, 0, 0, 1, 1)
    # empty batch / empty output: the gradient is zero
    for x, dy in [(np.zeros((0, 5, 5, 2), dtype), np.zeros((0, 3, 3, 4), dtype)),
                  (rng.standard_normal((2, 2, 2, 2)).astype(dtype), np.zeros((2, 0, 0, 4), dtype))]:
        np.testing.assert_array_equal(_wgrad(module, x, dy, 3, 3, g), np.zeros((3, 3, 2, 4), dtype))
    # no input channels or no filters: nothing to write, no error
    assert _wgrad(module, np.zeros((2, 5, 5, 0), dtype), np.ones((2, 3, 3, 4), dtype), 3, 3, g).shape == (3, 3, 0, 4)
    assert _wgrad(module, np.ones((2, 5, 5, 2), dtype), np.zeros((2, 3, 3, 0), dtype), 3, 3, g).shape == (3, 3, 2, 0)


def test_wgrad_workspace_length_agrees():
    cy = _module("cython")
    shapes = [(128, 26, 26, 32, 3, 3, 64, 24, 24), (128, 28, 28, 1, 3, 3, 32, 26, 26), (64, 8, 8, 1, 3, 3, 16, 8, 8),
              (17, 9, 9, 3, 3, 3, 5, 9, 9), (3, 5, 5, 0, 3, 3, 4, 3, 3), (0, 5, 5, 2, 3, 3, 4, 3, 3),
              (2, 2, 2, 2, 3, 3, 4, 0, 0), (32, 32, 32, 64, 3, 3, 128, 32, 32), (1, 1, 1, 1, 1, 1, 1, 1, 1)]
    for shape in shapes:
        for slots in (1, 2, 3):
            assert cy.conv_wgrad_workspace_length(*shape, slots) == tuning.conv_wgrad_workspace_length(*shape, slots)
    # G partials of K*F plus the slots; independent of H and W; small next to the (N, P, K) col
    N, H, W, C, KH, KW, F, Ho, Wo = shapes[0]
    one, two = (tuning.conv_wgrad_workspace_length(*shapes[0], s) for s in (1, 2))
    assert one > 8 * 9 * C * F and two > one
    assert tuning.conv_wgrad_workspace_length(N, 99, 99, C, KH, KW, F, Ho, Wo, 2) == two
    assert two < N * Ho * Wo * KH * KW * C // 100
    for module in (cy, tuning):
        with pytest.raises(ValueError, match="C=-1"):
            module.conv_wgrad_workspace_length(2, 5, 5, -1, 3, 3, 4, 3, 3, 1)
        with pytest.raises(ValueError, match="slots must be >= 1; received slots=0"):
            module.conv_wgrad_workspace_length(2, 5, 5, 1, 3, 3, 4, 3, 3, 0)


def test_groups_match_the_col_based_kernel():
    from minicnn.backend import _conv, _conv_wgrad

    assert _conv_wgrad.DW_GROUPS == _conv.DW_GROUPS == tuning.DW_GROUPS


@pytest.mark.parametrize("backend", ["numba", "cython"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_wgrad_same_bits_for_any_thread_count_and_slots(backend, dtype):
    cy = _module(backend)
    from minicnn.threads import thread_limits

    # 16 * 100 * 144 * 48 / 16 >= MIN_PARALLEL_WORK: the group loop really runs on 2 threads;
    # groups of 2 samples of 10 output rows in blocks of 14 rows (Wo*K*F = 69120): blocks span samples
    case = (16, 12, 12, 16, 48, 3, 3, 1, 1, 0, 0, 0, 0, 1, 1)
    x, dy, want = _problem(*case, dtype, seed=3)
    g = (1, 1, 0, 0, 1, 1)
    results = []
    for n_threads in (1, 2):
        for slots in (1, 2, 3):
            with thread_limits(n_threads):
                results.append(_wgrad(cy, x, dy, 3, 3, g, slots=slots))
    for other in results[1:]:
        np.testing.assert_array_equal(other, results[0])
    _assert_close(results[0], want)


@pytest.mark.parametrize("backend", ["numba", "cython"])
def test_wgrad_reuses_the_workspace(backend):
    """Stale workspace contents (the previous call's) never leak into the result."""
    cy = _module(backend)
    case = (9, 9, 9, 8, 8, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1)
    x, dy, want = _problem(*case, np.float64, seed=4)
    g = (1, 1, 1, 1, 1, 1)
    work = np.full(tuning.conv_wgrad_workspace_length(9, 9, 9, 8, 3, 3, 8, 9, 9, 2), np.nan)
    first = _wgrad(cy, x, dy, 3, 3, g, work=work)
    _wgrad(cy, -x, 2 * dy, 3, 3, g, work=work)
    np.testing.assert_array_equal(_wgrad(cy, x, dy, 3, 3, g, work=work), first)
    _assert_close(first, want)


@pytest.mark.parametrize("backend", BACKENDS)
def test_wgrad_checks_the_workspace_length(backend):
    module = _module(backend)
    x = np.zeros((2, 6, 6, 3), np.float32)
    dy = np.zeros((2, 4, 4, 4), np.float32)
    dw = np.empty((3, 3, 3, 4), np.float32)
    L = tuning.conv_wgrad_workspace_length(2, 6, 6, 3, 3, 3, 4, 4, 4, 1)
    module.conv2d_backward_weight_from_input(dw, dy, x, np.empty(L, np.float32), 1, 1, 0, 0, 1, 1)
    with pytest.raises(ValueError, match=r"work must have length >= %d.*\(one slot\).*%d" % (L, L - 1)):
        module.conv2d_backward_weight_from_input(dw, dy, x, np.empty(L - 1, np.float32), 1, 1, 0, 0, 1, 1)


def test_cython_wgrad_checks_its_arguments():
    cy = _module("cython")
    f = cy.conv2d_backward_weight_from_input
    x = np.zeros((2, 6, 6, 3), np.float32)
    dy = np.zeros((2, 4, 4, 4), np.float32)
    dw = np.empty((3, 3, 3, 4), np.float32)
    work = np.zeros(cy.conv_wgrad_workspace_length(2, 6, 6, 3, 3, 3, 4, 4, 4, 2), np.float32)
    g = (1, 1, 0, 0, 1, 1)
    f(dw, dy, x, work, *g)
    with pytest.raises(TypeError, match="x must be a float32 or float64 numpy.ndarray; received int32"):
        f(dw, dy, x.astype(np.int32), work, *g)
    with pytest.raises(TypeError, match="dw must be a numpy.ndarray; received list"):
        f(dw.tolist(), dy, x, work, *g)
    with pytest.raises(ValueError, match="dy has dtype float64, expected float32"):
        f(dw, dy.astype(np.float64), x, work, *g)
    with pytest.raises(ValueError, match="work has dtype float64"):
        f(dw, dy, x, work.astype(np.float64), *g)
    with pytest.raises(ValueError, match="dw has dtype float64"):
        f(dw.astype(np.float64), dy, x, work, *g)
    with pytest.raises(ValueError, match="x must be C-contiguous"):
        f(dw, dy, np.asfortranarray(x), work, *g)
    with pytest.raises(ValueError, match="dy must be C-contiguous"):
        f(dw, np.zeros((2, 4, 8, 4), np.float32)[:, :, ::2], x, work, *g)
    with pytest.raises(ValueError, match="work must be C-contiguous"):
        f(dw, dy, x, np.empty(2 * work.size, np.float32)[::2], *g)
    with pytest.raises(ValueError, match=r"work must be 1-D; received shape \(1, %d\)" % work.size):
        f(dw, dy, x, work[None], *g)
    with pytest.raises(ValueError, match=r"dw must be 4-D; received shape \(27, 4\)"):
        f(dw.reshape(27, 4), dy, x, work, *g)
    with pytest.raises(ValueError, match=r"shapes do not match: dw \(3, 3, 3, 4\), dy \(3, 4, 4, 4\)"):
        f(dw, np.zeros((3, 4, 4, 4), np.float32), x, work, *g)
    with pytest.raises(ValueError, match=r"shapes do not match: dw \(3, 3, 2, 4\)"):
        f(np.empty((3, 3, 2, 4), np.float32), dy, x, work, *g)
    with pytest.raises(ValueError, match=r"shapes do not match: dw \(3, 3, 3, 5\)"):
        f(np.empty((3, 3, 3, 5), np.float32), dy, x, work, *g)
    with pytest.raises(ValueError, match="strides and dilations must be >= 1; received sh=0"):
        f(dw, dy, x, work, 0, 1, 0, 0, 1, 1)
    with pytest.raises(ValueError, match="dwl=0"):
        f(dw, dy, x, work, 1, 1, 0, 0, 1, 0)
    with pytest.raises(ValueError, match="padding must be >= 0; received pt=0, pl=-1"):
        f(dw, dy, x, work, 1, 1, 0, -1, 1, 1)
    ro = np.empty_like(dw)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="dw must be writable"):
        f(ro, dy, x, work, *g)
    ro = work.copy()
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="work must be writable"):
        f(dw, dy, x, ro, *g)


# ----------------------------------------------------------------------------- Winograd F(2x2, 3x3) weight gradient
# 3x3 stride-1 convs: every top/left and bottom/right padding 0..3 (and a cropped output), odd and even output
# sizes (partial last tiles), channel and filter counts around the vector widths, batches below and above the
# 8 groups, blocks spanning samples (17 x 12x12, 16 + 24 channels: 204 tiles per block, 36 per sample)
WINO_CASES = []
for i, (pt, pb, pl, pr) in enumerate(itertools.product((0, 1, 2, 3), (0, 1, 3), (0, 2), (1, 3))):
    N, C, F = [(1, 1, 1), (3, 3, 5), (9, 8, 16), (17, 17, 9), (2, 33, 7), (8, 16, 32)][i % 6]
    H, W = [(5, 6), (7, 7), (8, 9), (3, 4)][i % 4]
    WINO_CASES.append((N, H, W, C, F, 3, 3, 1, 1, pt, pb, pl, pr, 1, 1))
WINO_CASES += [
    (17, 12, 12, 16, 24, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1),   # blocks span samples
    (2, 9, 9, 3, 4, 3, 3, 1, 1, 0, -2, 1, -1, 1, 1),      # output cropped below the "valid" size
    (64, 8, 8, 64, 64, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1),     # the ResNet-8 style net's last stage
    (1, 1, 1, 2, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1),        # a 1x1 image: one tile of padding
]


def _wino_wgrad(module, x, dy, pt, pl, slots=2, work=None):
    N, H, W, C = x.shape
    _, Ho, Wo, F = dy.shape
    if work is None:
        work = np.full(tuning.conv_winograd_wgrad_workspace_length(N, C, F, Ho, Wo, slots), np.nan, x.dtype)
    dw = np.full((3, 3, C, F), np.nan, x.dtype)
    module.conv2d_winograd_backward_weight(dw, dy, x, work, pt, pl)
    return dw


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", WINO_CASES, ids=[f"case{i}" for i in range(len(WINO_CASES))])
def test_winograd_wgrad_matches_col_reference(backend, dtype, case):
    module = _module(backend)
    x, dy, want = _problem(*case, dtype, seed=len(WINO_CASES))
    _assert_close(_wino_wgrad(module, x, dy, case[9], case[11]), want)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_winograd_wgrad_empty_problems(backend, dtype):
    module = _module(backend)
    rng = np.random.default_rng(1)
    for x, dy in [(np.zeros((0, 5, 5, 2), dtype), np.zeros((0, 5, 5, 4), dtype)),
                  (rng.standard_normal((2, 2, 2, 2)).astype(dtype), np.zeros((2, 0, 0, 4), dtype))]:
        np.testing.assert_array_equal(_wino_wgrad(module, x, dy, 1, 1), np.zeros((3, 3, 2, 4), dtype))
    assert _wino_wgrad(module, np.zeros((2, 5, 5, 0), dtype), np.ones((2, 5, 5, 4), dtype), 1, 1).shape == (3, 3, 0, 4)
    assert _wino_wgrad(module, np.ones((2, 5, 5, 2), dtype), np.zeros((2, 5, 5, 0), dtype), 1, 1).shape == (3, 3, 2, 0)


@pytest.mark.parametrize("backend", ["numba", "cython"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_winograd_wgrad_same_bits_for_any_thread_count_and_slots(backend, dtype):
    module = _module(backend)
    from minicnn.threads import thread_limits

    # 16 * 36 tiles * 4 * 16 * 48 / 16 >= MIN_PARALLEL_WORK: the group loop really runs on 2 threads
    case = (16, 12, 12, 16, 48, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1)
    x, dy, want = _problem(*case, dtype, seed=3)
    results = []
    for n_threads in (1, 2):
        for slots in (1, 2, 3):
            with thread_limits(n_threads):
                results.append(_wino_wgrad(module, x, dy, 1, 1, slots=slots))
    for other in results[1:]:
        np.testing.assert_array_equal(other, results[0])
    _assert_close(results[0], want)


@pytest.mark.parametrize("backend", ["numba", "cython"])
def test_winograd_wgrad_reuses_the_workspace(backend):
    module = _module(backend)
    case = (9, 9, 9, 8, 8, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1)
    x, dy, want = _problem(*case, np.float64, seed=4)
    work = np.full(tuning.conv_winograd_wgrad_workspace_length(9, 8, 8, 9, 9, 2), np.nan)
    first = _wino_wgrad(module, x, dy, 1, 1, work=work)
    _wino_wgrad(module, -x, 2 * dy, 1, 1, work=work)
    np.testing.assert_array_equal(_wino_wgrad(module, x, dy, 1, 1, work=work), first)
    _assert_close(first, want)


@pytest.mark.parametrize("backend", BACKENDS)
def test_winograd_wgrad_checks_the_workspace_length(backend):
    module = _module(backend)
    x, dy = np.zeros((2, 6, 6, 3), np.float32), np.zeros((2, 6, 6, 4), np.float32)
    dw = np.empty((3, 3, 3, 4), np.float32)
    L = tuning.conv_winograd_wgrad_workspace_length(2, 3, 4, 6, 6, 1)
    module.conv2d_winograd_backward_weight(dw, dy, x, np.empty(L, np.float32), 1, 1)
    with pytest.raises(ValueError, match=r"work must have length >= %d.*\(one slot\).*%d" % (L, L - 1)):
        module.conv2d_winograd_backward_weight(dw, dy, x, np.empty(L - 1, np.float32), 1, 1)


def test_cython_winograd_wgrad_checks_its_arguments():
    cy = _module("cython")
    f = cy.conv2d_winograd_backward_weight
    x, dy = np.zeros((2, 6, 6, 3), np.float32), np.zeros((2, 6, 6, 4), np.float32)
    dw = np.empty((3, 3, 3, 4), np.float32)
    work = np.zeros(cy.conv_winograd_wgrad_workspace_length(2, 3, 4, 6, 6, 2), np.float32)
    f(dw, dy, x, work, 1, 1)
    with pytest.raises(TypeError, match="x must be a float32 or float64 numpy.ndarray; received int32"):
        f(dw, dy, x.astype(np.int32), work, 1, 1)
    with pytest.raises(ValueError, match="dy has dtype float64, expected float32"):
        f(dw, dy.astype(np.float64), x, work, 1, 1)
    with pytest.raises(ValueError, match=r"dw must be \(3, 3, C, F\) for Winograd F\(2x2, 3x3\); received shape "
                                         r"\(5, 5, 3, 4\)"):
        f(np.empty((5, 5, 3, 4), np.float32), dy, x, work, 1, 1)
    with pytest.raises(ValueError, match=r"shapes do not match: dw \(3, 3, 3, 4\), dy \(3, 6, 6, 4\)"):
        f(dw, np.zeros((3, 6, 6, 4), np.float32), x, work, 1, 1)
    with pytest.raises(ValueError, match=r"shapes do not match: dw \(3, 3, 2, 4\)"):
        f(np.empty((3, 3, 2, 4), np.float32), dy, x, work, 1, 1)
    with pytest.raises(ValueError, match="padding must be >= 0; received pt=-1, pl=1"):
        f(dw, dy, x, work, -1, 1)
    with pytest.raises(ValueError, match=r"work must be 1-D"):
        f(dw, dy, x, work[None], 1, 1)
    for module in (cy, tuning):
        with pytest.raises(ValueError, match="C=-1"):
            module.conv_winograd_wgrad_workspace_length(2, -1, 4, 3, 3, 1)
        with pytest.raises(ValueError, match="slots must be >= 1; received slots=0"):
            module.conv_winograd_wgrad_workspace_length(2, 1, 4, 3, 3, 0)


# ----------------------------------------------------------------------------- the layer's Winograd weight-gradient route
def _layer_backends():
    from helpers import importable_backends

    return importable_backends(("numpy", "numba", "cython"))


@pytest.mark.parametrize("backend", _layer_backends())
@pytest.mark.parametrize("padding, shape", [("valid", (6, 5)), ("same", (5, 5)), (2, (4, 7)), (3, (3, 3))])
def test_conv_layer_gradients_through_the_winograd_weight_gradient(backend, padding, shape):
    """A 3x3 stride-1 conv with WINOGRAD_WGRAD_MIN_CHANNELS inputs: finite differences through the route, and the
    weight gradient equal to the direct reference's in float32 (odd sizes: partial tiles; padding 3: zero tiles)."""
    from gradcheck import check_layer_gradients
    from helpers import build_layer

    from minicnn.layers import Conv2D
    from minicnn.layers.conv import WINOGRAD_WGRAD_MIN_CHANNELS as C

    layer = Conv2D(5, 3, padding=padding, activation="tanh", use_bias=True)
    build_layer(layer, (*shape, C), backend, dtype=np.float64, seed=0)
    x = np.random.default_rng(2).standard_normal((2, *shape, C))
    check_layer_gradients(layer, x)
    assert ("wgrad_winograd" in layer._buffers) == ("wgrad" not in layer._buffers) == ("col" not in layer._buffers)

    layer = Conv2D(7, 3, padding=padding, use_bias=False)
    build_layer(layer, (*shape, C), backend, dtype=np.float32, seed=1)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((9, *shape, C)).astype(np.float32)
    dy = rng.standard_normal((9, *layer.output_shape)).astype(np.float32)
    layer.forward(x, training=True)
    layer.backward(dy)
    col = np.empty((9, dy.shape[1] * dy.shape[2], 9 * C), np.float32)
    ref.conv2d_forward(np.empty_like(dy), x, layer.params["w"], col, *layer._geometry())
    want = np.empty_like(layer.params["w"])
    ref.conv2d_backward_weight(want, dy, col)
    _assert_close(layer.grads["w"], want)


def test_conv_layer_takes_the_winograd_weight_gradient_from_its_threshold():
    from helpers import build_layer

    from minicnn.layers import Conv2D
    from minicnn.layers.conv import WINOGRAD_WGRAD_MIN_CHANNELS as C

    for channels, strides, winograd in [(C, 1, True), (C - 1, 1, False), (C, 2, False)]:
        layer = Conv2D(8, 3, strides=strides, padding="same")
        build_layer(layer, (6, 6, channels), "numpy", dtype=np.float64, seed=0)
        layer.forward(np.ones((2, 6, 6, channels)), training=True)
        layer.backward(np.ones((2, *layer.output_shape)))
        assert ("wgrad_winograd" in layer._buffers) == winograd, (channels, strides)
