"""Depthwise convolution kernels: every backend against the NumPy reference, the reference against PyTorch
(``conv2d(..., groups=C)``) and against finite differences, 1 vs 2 threads bit-identical.

Every case sweeps the four kernels (forward, fused bias+activation forward, input gradient, weight gradient);
outputs are pre-filled with NaN so an element a kernel leaves unwritten fails.
"""

import numpy as np
import pytest

from minicnn.backend import reference as ref
from minicnn.backend.activation_codes import CODES
from minicnn.threads import thread_limits

from gradcheck import ATOL, RTOL, numerical_grad
from helpers import kernel_module, parameter_names

BACKENDS = ("numpy", "numba", "cython")
DTYPES = (np.float32, np.float64)
NAMES = ("depthwise_conv2d_forward", "depthwise_conv2d_bias_act_forward",
         "depthwise_conv2d_backward_input", "depthwise_conv2d_backward_weight")

#        N  H  W   C KH KW sh sw pt pb pl pr dh dw
CASES = [
    (1, 5, 5, 1, 3, 3, 1, 1, 0, 0, 0, 0, 1, 1),       # batch 1, one channel, valid
    (2, 7, 6, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1),       # "same", odd sizes
    (2, 9, 8, 5, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1),       # stride 2, odd height
    (2, 8, 8, 4, 3, 3, 2, 2, 0, 0, 0, 0, 1, 1),       # stride 2 "valid": last input row/column never read
    (2, 9, 8, 4, 3, 2, 2, 1, 1, 0, 0, 1, 2, 1),       # stride 2, asymmetric padding, dilation 2
    (2, 8, 8, 19, 3, 3, 1, 1, 2, 2, 2, 2, 2, 2),      # dilation 2 "same", channels not a multiple of 8
    (3, 6, 7, 37, 5, 5, 1, 1, 2, 2, 2, 2, 1, 1),      # 5x5, many channels (blocks + remainder)
    (2, 5, 4, 6, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1),       # 1x1
    (1, 4, 5, 3, 5, 5, 1, 1, 4, 4, 5, 3, 1, 1),       # padding past the kernel
    (2, 6, 6, 16, 3, 3, 3, 2, 0, 2, 1, 0, 1, 2),      # stride 3x2, dilation along the width
    (2, 3, 3, 8, 3, 3, 1, 1, 0, 0, 0, 0, 1, 1),       # output 1x1
    (2, 11, 21, 48, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1),    # stride 2, wide rows: blocks of pixels and of channels
    (2, 9, 20, 32, 3, 3, 1, 1, 2, 2, 2, 2, 2, 2),     # dilation 2 "same", wide rows
    (3, 16, 16, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1),    # 3x3 stride 1 "same" on rows of 16: 8-pixel blocks (avx512)
    (1, 9, 13, 35, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1),     # rows of 13 (8 + a 5-pixel block), a channel tail of 3
    (2, 7, 7, 130, 3, 3, 1, 1, 0, 0, 0, 0, 1, 1),     # "valid", rows of 5 (4-pixel blocks), 8 blocks + 2 channels
    (3, 10, 10, 32, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1),    # 3x3 stride 2 "same", even size
    (8, 4, 4, 64, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1),      # a 4x4 map, batch 8: every block a border
    (0, 5, 5, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1),       # empty batch: dw is zero
]


def _out(size, before, after, k, stride, dilation):
    return (size + before + after - dilation * (k - 1) - 1) // stride + 1


def _problem(case, dtype, seed=0):
    N, H, W, C, KH, KW, sh, sw, pt, pb, pl, pr, dh, dw = case
    rng = np.random.default_rng(seed)
    Ho, Wo = _out(H, pt, pb, KH, sh, dh), _out(W, pl, pr, KW, sw, dw)
    x = rng.standard_normal((N, H, W, C)).astype(dtype)
    w = rng.standard_normal((KH, KW, C)).astype(dtype)
    b = rng.standard_normal(C).astype(dtype)
    dy = rng.standard_normal((N, Ho, Wo, C)).astype(dtype)
    return x, w, b, dy, (sh, sw, pt, pl, dh, dw)


def _kernels(backend):
    module = kernel_module(backend)
    missing = [name for name in NAMES if not hasattr(module, name)]
    assert not missing, f"backend {backend!r} lacks {missing}"
    return [getattr(module, name) for name in NAMES]


def _run(kernels, x, w, b, dy, geom, act=CODES["relu"], alpha=0.1):
    forward, bias_act, backward_input, backward_weight = kernels
    y, yb = np.full(dy.shape, np.nan, x.dtype), np.full(dy.shape, np.nan, x.dtype)
    dx, dw = np.full(x.shape, np.nan, x.dtype), np.full(w.shape, np.nan, x.dtype)
    forward(y, x, w, *geom)
    bias_act(yb, x, w, b, act, alpha, *geom)
    backward_input(dx, dy, w, *geom)
    backward_weight(dw, dy, x, *geom)
    return {"y": y, "y_bias_act": yb, "dx": dx, "dw": dw}


def _assert_close(got, want):
    """Only the summation order may differ: tolerance relative to the largest reference magnitude."""
    tol = 2e-5 if want.dtype == np.float32 else 1e-12
    scale = max(float(np.abs(want).max(initial=0.0)), 1.0)
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * scale)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("backend", BACKENDS[1:])
def test_matches_reference(backend, case, dtype):
    x, w, b, dy, geom = _problem(case, dtype)
    want = _run(_kernels("numpy"), x, w, b, dy, geom)
    got = _run(_kernels(backend), x, w, b, dy, geom)
    for name in want:
        assert got[name].dtype == dtype, name
        assert not np.isnan(got[name]).any(), f"{name} left unwritten"
        _assert_close(got[name], want[name])


#: Shapes of the fused epilogue: a channel tail (the epilogue runs on the stored row), whole 16-channel blocks
#: (it runs in registers, compiled float32) at stride 1 and 2, rows of 1-3 pixels past the blocks of 4, a
#: dilation, a 1x9 kernel (border blocks of 9 column taps), and float64.
BIAS_ACT_CASES = [
    ((3, 9, 7, 21, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1), np.float32),
    ((2, 9, 7, 32, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1), np.float32),
    ((2, 9, 10, 16, 3, 3, 2, 2, 0, 1, 0, 1, 1, 1), np.float32),
    ((2, 5, 6, 48, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1), np.float32),
    ((1, 4, 4, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1), np.float32),
    ((2, 8, 9, 16, 3, 3, 1, 1, 2, 2, 2, 2, 2, 2), np.float32),
    ((1, 6, 12, 16, 1, 9, 1, 1, 0, 0, 4, 4, 1, 1), np.float32),
    ((2, 9, 7, 32, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1), np.float64),
]


@pytest.mark.parametrize("case, dtype", BIAS_ACT_CASES)
@pytest.mark.parametrize("act", sorted(CODES))
@pytest.mark.parametrize("backend", BACKENDS)
def test_bias_act_is_conv_then_bias_act_forward(backend, act, case, dtype):
    """The fused epilogue gives the bits of ``depthwise_conv2d_forward`` then the backend's ``bias_act_forward``."""
    module = kernel_module(backend)
    forward, bias_act = _kernels(backend)[:2]
    x, w, b, dy, geom = _problem(case, dtype, seed=3)
    want, got = np.full(dy.shape, np.nan, dtype), np.full(dy.shape, np.nan, dtype)
    forward(want, x, w, *geom)
    want2 = want.reshape(-1, want.shape[-1])
    module.bias_act_forward(want2, want2, b, CODES[act], 0.2)
    bias_act(got, x, w, b, CODES[act], 0.2, *geom)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("backend", BACKENDS[1:])
def test_bit_identical_for_1_and_2_threads(backend):
    """Large enough to run parallel (Cython's threshold is 2**18 operations); both dtypes, stride 1 and 2."""
    kernels = _kernels(backend)
    for case in ((16, 13, 12, 40, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1), (13, 17, 16, 24, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1)):
        for dtype in DTYPES:
            x, w, b, dy, geom = _problem(case, dtype, seed=7)
            results = []
            for threads in (1, 2):
                with thread_limits(threads):
                    results.append(_run(kernels, x, w, b, dy, geom))
            for name in results[0]:
                np.testing.assert_array_equal(results[0][name], results[1][name], err_msg=name)


@pytest.mark.parametrize("case", CASES)
def test_reference_matches_torch(case):
    """PyTorch's grouped conv (``groups=C``, NCHW, weight ``(C, 1, KH, KW)``) on the same problem, float64."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x, w, b, dy, (sh, sw, pt, pl, dh, dw) = _problem(case, np.float64)
    N, H, W, C, KH, KW, _, _, _, pb, _, pr, _, _ = case
    xt = torch.tensor(x.transpose(0, 3, 1, 2), requires_grad=True)
    wt = torch.tensor(w.transpose(2, 0, 1)[:, None], requires_grad=True)
    # asymmetric (or cropping) padding: F.pad the input, then an unpadded conv
    yt = F.conv2d(F.pad(xt, (pl, pr, pt, pb)), wt, stride=(sh, sw), dilation=(dh, dw), groups=C)
    yt.backward(torch.tensor(dy.transpose(0, 3, 1, 2)))
    got = _run(_kernels("numpy"), x, w, b, dy, (sh, sw, pt, pl, dh, dw), act=CODES["identity"])
    np.testing.assert_allclose(got["y"], yt.detach().numpy().transpose(0, 2, 3, 1), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got["y_bias_act"], got["y"] + b, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got["dx"], xt.grad.numpy().transpose(0, 2, 3, 1), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got["dw"], wt.grad.numpy()[:, 0].transpose(1, 2, 0), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", [CASES[2], CASES[4], CASES[9]], ids=["stride2", "dilation2", "stride3x2"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_gradients_match_finite_differences(backend, case):
    """``dx`` and ``dw`` of ``loss = sum(f(conv(x, w) + b) * r)`` (tanh) against central differences, float64."""
    bias_act = _kernels(backend)[1]
    module = kernel_module(backend)
    backward_input, backward_weight = _kernels(backend)[2:]
    x, w, b, r, geom = _problem(case, np.float64, seed=11)
    tanh = CODES["tanh"]
    y = np.empty(r.shape)

    def loss():
        bias_act(y, x, w, b, tanh, 0.0, *geom)
        return float(np.sum(y * r))

    loss()
    g, db = np.empty(r.shape), np.empty(b.shape)
    module.bias_act_backward(g.reshape(-1, g.shape[-1]), db, r.reshape(-1, r.shape[-1]),
                             y.reshape(-1, y.shape[-1]), tanh, 0.0)
    dx, dw = np.full(x.shape, np.nan), np.full(w.shape, np.nan)
    backward_input(dx, g, w, *geom)
    backward_weight(dw, g, x, *geom)
    np.testing.assert_allclose(dx, numerical_grad(loss, x), rtol=RTOL, atol=ATOL, err_msg="dx")
    np.testing.assert_allclose(dw, numerical_grad(loss, w), rtol=RTOL, atol=ATOL, err_msg="dw")
    np.testing.assert_allclose(db, numerical_grad(loss, b), rtol=RTOL, atol=ATOL, err_msg="db")


def test_compiled_weight_groups_match_tuning():
    """The compiled weight gradient's fixed sample groups are the ones :mod:`minicnn.backend.tuning` states."""
    compiled = pytest.importorskip("minicnn.backend._depthwise")
    from minicnn.backend.tuning import DW_GROUPS

    assert compiled.DW_GROUPS == DW_GROUPS


@pytest.mark.parametrize("backend", BACKENDS[1:])
def test_same_signatures_as_the_reference(backend):
    """Every backend's kernels take the reference's parameters, by name and in order."""
    for want, got in zip(_kernels("numpy"), _kernels(backend)):
        assert parameter_names(got) == parameter_names(want), want.__name__
