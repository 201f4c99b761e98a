"""The fused depthwise backward (``depthwise_conv2d_bias_act_backward``: bias/activation backward, weight and input
gradients in one pass over ``dy``): every backend against the NumPy reference for every geometry of
``test_depthwise_kernels.CASES`` and every activation, NaN-prefilled outputs and workspace, the unfused kernels'
bits for ``dx`` and ``dw``, 1 vs 2 threads and 1-3 workspace slots bit-identical, finite differences, and the layer
(which runs it) against PyTorch's ``conv2d(groups=C)``.
"""

import itertools

import numpy as np
import pytest

from minicnn.backend import get_backend, tuning
from minicnn.backend.activation_codes import CODES
from minicnn.layers import DepthwiseConv2D
from minicnn.threads import thread_limits

from gradcheck import ATOL, RTOL, numerical_grad
from helpers import importable_backends, kernel_module
from test_depthwise_kernels import CASES, _assert_close, _problem

BACKENDS = ("numpy", *importable_backends(("numba", "cython")))
DTYPES = (np.float32, np.float64)
FUSED = "depthwise_conv2d_bias_act_backward"


def _work_length(x, w, dy, slots):
    return tuning.depthwise_backward_workspace_length(*x.shape, *w.shape[:2], *dy.shape[1:3], slots)


def _fused(module, dy, y, x, w, act, alpha, geom, slots=2, bias=True):
    """``(dx, dw, db)`` from the backend's fused kernel, outputs and workspace pre-filled with NaN (``db`` of
    length 0 without ``bias``)."""
    dx, dw = np.full(x.shape, np.nan, x.dtype), np.full(w.shape, np.nan, x.dtype)
    db = np.full(x.shape[3] if bias else 0, np.nan, x.dtype)
    work = np.full(_work_length(x, w, dy, slots), np.nan, x.dtype)
    getattr(module, FUSED)(dx, dw, db, work, dy, y, x, w, act, alpha, *geom)
    return {"dx": dx, "dw": dw, "db": db}


def _outputs(backend, case, dtype, act, alpha=0.1, seed=0):
    """The layer's forward output ``y`` (reference) and the backend's three gradients for ``case``."""
    x, w, b, dy, geom = _problem(case, dtype, seed)
    y = np.empty(dy.shape, dtype)
    kernel_module("numpy").depthwise_conv2d_bias_act_forward(y, x, w, b, CODES[act], alpha, *geom)
    return x, w, dy, y, geom, _fused(kernel_module(backend), dy, y, x, w, CODES[act], alpha, geom)


@pytest.mark.parametrize("act", sorted(CODES))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("backend", BACKENDS[1:])
def test_fused_backward_matches_reference(backend, case, dtype, act):
    *_, want = _outputs("numpy", case, dtype, act)
    *_, got = _outputs(backend, case, dtype, act)
    for name in want:
        assert got[name].dtype == dtype, name
        assert not np.isnan(got[name]).any(), f"{name} left unwritten"
        _assert_close(got[name], want[name])


@pytest.mark.parametrize("act", ["identity", "leaky_relu"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("backend", BACKENDS)
def test_dx_and_dw_are_the_unfused_kernels_on_dz(backend, case, dtype, act):
    """``dx`` and ``dw`` have the bits of ``depthwise_conv2d_backward_input`` / ``_weight`` on the backend's own
    ``dz = bias_act_backward(dy, y)``: the fusion reorders passes, not sums."""
    module = kernel_module(backend)
    x, w, dy, y, geom, got = _outputs(backend, case, dtype, act)
    C = x.shape[3]
    dz, db = np.empty_like(dy), np.empty(C, dtype)
    module.bias_act_backward(dz.reshape(-1, C), db, dy.reshape(-1, C), y.reshape(-1, C), CODES[act], 0.1)
    dx, dw = np.full(x.shape, np.nan, dtype), np.full(w.shape, np.nan, dtype)
    module.depthwise_conv2d_backward_input(dx, dz, w, *geom)
    module.depthwise_conv2d_backward_weight(dw, dz, x, *geom)
    np.testing.assert_array_equal(got["dx"], dx)
    np.testing.assert_array_equal(got["dw"], dw)
    _assert_close(got["db"], db)


@pytest.mark.parametrize("act", ["identity", "relu"])
@pytest.mark.parametrize("case", [CASES[1], CASES[4], CASES[-1]], ids=["same", "dilation2", "empty"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_without_bias_the_other_gradients_are_unchanged(backend, case, act):
    """``db`` of length 0 (a layer without bias) skips the bias gradient and nothing else."""
    module = kernel_module(backend)
    x, w, dy, y, geom, want = _outputs(backend, case, np.float32, act)
    got = _fused(module, dy, y, x, w, CODES[act], 0.1, geom, bias=False)
    assert got["db"].shape == (0,)
    np.testing.assert_array_equal(got["dx"], want["dx"])
    np.testing.assert_array_equal(got["dw"], want["dw"])


@pytest.mark.parametrize("backend", BACKENDS[1:])
def test_bit_identical_for_1_and_2_threads_and_any_slot_count(backend):
    """Large enough to run parallel (Cython's threshold is 2**18 operations); stride 1 and 2, both dtypes."""
    module = kernel_module(backend)
    for case in ((16, 13, 12, 40, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1), (13, 17, 16, 24, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1)):
        for dtype in DTYPES:
            x, w, b, dy, geom = _problem(case, dtype, seed=7)
            y = np.empty(dy.shape, dtype)
            module.depthwise_conv2d_bias_act_forward(y, x, w, b, CODES["relu"], 0.0, *geom)
            for act in ("relu", "identity"):   # at stride 2 the identity's input gradient is a pass of its own
                results = []
                for threads, slots in itertools.product((1, 2), (1, 2, 3)):
                    with thread_limits(threads):
                        results.append(_fused(module, dy, y, x, w, CODES[act], 0.0, geom, slots))
                for result in results[1:]:
                    for name in result:
                        np.testing.assert_array_equal(results[0][name], result[name], err_msg=f"{act} {name}")


@pytest.mark.parametrize("case", [CASES[1], CASES[2], CASES[4], CASES[9]],
                         ids=["same", "stride2", "dilation2", "stride3x2"])
@pytest.mark.parametrize("act", ["tanh", "sigmoid", "identity"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_gradients_match_finite_differences(backend, act, case):
    """``dx``, ``dw``, ``db`` of ``loss = sum(f(conv(x, w) + b) * r)`` against central differences, float64."""
    module = kernel_module(backend)
    x, w, b, r, geom = _problem(case, np.float64, seed=11)
    y = np.empty(r.shape)

    def loss():
        module.depthwise_conv2d_bias_act_forward(y, x, w, b, CODES[act], 0.0, *geom)
        return float(np.sum(y * r))

    loss()
    got = _fused(module, r, y.copy(), x, w, CODES[act], 0.0, geom)
    for name, param in (("dx", x), ("dw", w), ("db", b)):
        np.testing.assert_allclose(got[name], numerical_grad(loss, param), rtol=RTOL, atol=ATOL, err_msg=name)


@pytest.mark.parametrize("backend", BACKENDS)
def test_too_short_a_workspace_is_refused(backend):
    module = kernel_module(backend)
    x, w, b, dy, geom = _problem(CASES[1], np.float32)
    need = _work_length(x, w, dy, 1)
    with pytest.raises(ValueError, match=f"work.*{need}"):
        getattr(module, FUSED)(np.empty_like(x), np.empty_like(w), np.empty_like(b), np.empty(need - 1, np.float32),
                               dy, dy, x, w, 0, 0.0, *geom)


def test_workspace_length_equals_the_compiled_one():
    compiled = pytest.importorskip("minicnn.backend._depthwise")
    for args in ((64, 32, 32, 32, 3, 3, 32, 32, 2), (1, 1, 1, 1, 1, 1, 1, 1, 1), (3, 9, 17, 130, 5, 5, 7, 9, 3),
                 (9, 8, 8, 8, 3, 2, 4, 4, 16), (0, 5, 5, 4, 3, 3, 5, 5, 1)):
        assert tuning.depthwise_backward_workspace_length(*args) == compiled.depthwise_backward_workspace_length(*args)
    for module in (tuning, compiled):
        with pytest.raises(ValueError, match="C=-1"):
            module.depthwise_backward_workspace_length(2, 5, 5, -1, 3, 3, 4, 4, 1)
        with pytest.raises(ValueError, match="slots=0"):
            module.depthwise_backward_workspace_length(2, 5, 5, 1, 3, 3, 4, 4, 0)


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "tanh", "sigmoid", "identity"])
@pytest.mark.parametrize("use_bias", [True, False])
@pytest.mark.parametrize("strides, padding, dilation", [(1, 1, 1), (2, (1, 0), 1), (1, 2, 2)])
@pytest.mark.parametrize("backend", BACKENDS)
def test_layer_matches_torch_grouped_conv(backend, strides, padding, dilation, use_bias, activation):
    """The layer's training forward and fused backward against ``conv2d(groups=C)`` + activation, float64, with
    the layer's buffers reused by a second, different batch (workspaces kept between batches)."""
    torch = pytest.importorskip("torch")
    layer = DepthwiseConv2D(3, strides=strides, padding=padding, dilation=dilation, use_bias=use_bias,
                            activation=activation, alpha=0.2)
    C = 20
    layer.build((9, 8, C), dtype=np.float64, rng=np.random.default_rng(0), backend=get_backend(backend))
    if use_bias:
        layer.params["b"][...] = np.random.default_rng(3).standard_normal(C)
    acts = {"relu": torch.relu, "leaky_relu": lambda t: torch.nn.functional.leaky_relu(t, 0.2), "tanh": torch.tanh,
            "sigmoid": torch.sigmoid, "identity": lambda t: t}
    pad = (padding, padding) if isinstance(padding, int) else padding
    for seed, N in ((4, 3), (5, 2)):
        rng = np.random.default_rng(seed)
        x = rng.standard_normal((N, 9, 8, C))
        r = rng.standard_normal((N, *layer.output_shape))
        y = layer.forward(x, training=True).copy()
        dx = layer.backward(r.copy()).copy()
        tx = torch.tensor(x.transpose(0, 3, 1, 2), requires_grad=True)
        tw = torch.tensor(layer.params["w"].transpose(2, 0, 1)[:, None].copy(), requires_grad=True)
        tb = torch.tensor(layer.params["b"].copy(), requires_grad=True) if use_bias else None
        ty = acts[activation](torch.nn.functional.conv2d(tx, tw, tb, stride=strides, padding=pad, dilation=dilation,
                                                         groups=C))
        (ty * torch.tensor(r.transpose(0, 3, 1, 2))).sum().backward()
        np.testing.assert_allclose(y, ty.detach().numpy().transpose(0, 2, 3, 1), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(dx, tx.grad.numpy().transpose(0, 2, 3, 1), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(layer.grads["w"], tw.grad.numpy()[:, 0].transpose(1, 2, 0), rtol=1e-10,
                                   atol=1e-12)
        if use_bias:
            np.testing.assert_allclose(layer.grads["b"], tb.grad.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("shape, stride, dtype", [((64, 32, 32, 64), 1, np.float32), ((33, 45, 45, 36), 2, np.float64),
                                                  ((200, 45, 45, 13), 1, np.float32)],
                         ids=["aligned_rows", "float64_stride2", "unaligned_rows"])
@pytest.mark.parametrize("act", ["relu", "identity"])
@pytest.mark.parametrize("backend", BACKENDS[1:])
def test_large_input_gradients_are_the_same(backend, act, shape, stride, dtype):
    """Input gradients past the Cython kernel's streaming-store size (at stride 1 rows written from the slot
    with non-temporal stores; rows of 2340 bytes are not all 16-byte aligned; strided with the identity, a pass
    of its own): the unfused kernels' bits, at 1 and 2 threads."""
    compiled = pytest.importorskip("minicnn.backend._depthwise")
    assert np.prod(shape) * np.dtype(dtype).itemsize >= compiled.DW_STREAM_BYTES
    module = kernel_module(backend)
    N, H, W, C = shape
    case = (N, H, W, C, 3, 3, stride, stride, 1, 1, 1, 1, 1, 1)
    x, w, b, dy, geom = _problem(case, dtype, seed=5)
    y = np.empty(dy.shape, dtype)
    module.depthwise_conv2d_bias_act_forward(y, x, w, b, CODES[act], 0.0, *geom)
    dz, db = np.empty_like(dy), np.empty(C, dtype)
    module.bias_act_backward(dz.reshape(-1, C), db, dy.reshape(-1, C), y.reshape(-1, C), CODES[act], 0.0)
    dx, dw = np.empty_like(x), np.empty_like(w)
    module.depthwise_conv2d_backward_input(dx, dz, w, *geom)
    module.depthwise_conv2d_backward_weight(dw, dz, x, *geom)
    for threads in (1, 2):
        with thread_limits(threads):
            got = _fused(module, dy, y, x, w, CODES[act], 0.0, geom)
        np.testing.assert_array_equal(got["dx"], dx)
        np.testing.assert_array_equal(got["dw"], dw)
        _assert_close(got["db"], db)
