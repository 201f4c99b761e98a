"""BatchNorm kernels: every backend against the NumPy reference (NaN-prefilled outputs), 1 vs 2 threads
bit-identical, the reference against finite differences, and the layer against PyTorch's BatchNorm2d/1d.

Every case sweeps the three kernels (training forward, inference forward, backward) for every activation code.
"""

import numpy as np
import pytest

from minicnn.backend import reference as ref
from minicnn.backend.activation_codes import CODES
from minicnn.threads import thread_limits

from gradcheck import ATOL, RTOL, numerical_grad
from helpers import build_layer, kernel_module, parameter_names

BACKENDS = ("numpy", "numba", "cython")
DTYPES = (np.float32, np.float64)
NAMES = ("batchnorm_forward", "batchnorm_inference_forward", "batchnorm_backward")

#        M    C   B
CASES = [
    (2, 1, 1),        # two rows, one channel
    (7, 3, 2),        # odd rows, blocks of unequal length
    (64, 16, 1),      # one block
    (300, 19, 8),     # channels not a multiple of the SIMD width
    (5, 4, 8),        # more blocks than rows: empty blocks
    (1024, 40, 16),
    (0, 4, 1),        # empty batch: statistics and parameter gradients 0
]


def _problem(case, dtype, seed=0):
    M, C, B = case
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((M, C)) * 3 + rng.standard_normal(C) * 5).astype(dtype)
    gamma = rng.uniform(0.5, 1.5, C).astype(dtype)
    beta = rng.standard_normal(C).astype(dtype)
    dy = rng.standard_normal((M, C)).astype(dtype)
    mean = rng.standard_normal(C).astype(dtype)
    var = rng.uniform(0.5, 2, C).astype(dtype)
    return x, gamma, beta, dy, (mean, var), B


def _kernels(backend):
    module = kernel_module(backend)
    missing = [name for name in NAMES if not hasattr(module, name)]
    assert not missing, f"backend {backend!r} lacks {missing}"
    return [getattr(module, name) for name in NAMES]


def _run(kernels, x, gamma, beta, dy, running, B, act, alpha=0.1, eps=1e-5):
    forward, inference, backward = kernels
    M, C = x.shape

    def nan(*shape):
        return np.full(shape, np.nan, x.dtype)

    out = {"y": nan(M, C), "mean": nan(C), "var": nan(C), "y_inference": nan(M, C),
           "dx": nan(M, C), "dgamma": nan(C), "dbeta": nan(C)}
    partial = np.full((B, 2, C), np.nan)
    forward(out["y"], out["mean"], out["var"], partial, x, gamma, beta, eps, act, alpha)
    inference(out["y_inference"], x, *running, gamma, beta, eps, act, alpha)
    backward(out["dx"], out["dgamma"], out["dbeta"], partial, dy, out["y"], x, out["mean"], out["var"], gamma,
             eps, act, alpha)
    return out


def _assert_close(got, want, name):
    """Only the summation order may differ: tolerance relative to the largest reference magnitude."""
    tol = 5e-5 if want.dtype == np.float32 else 1e-11
    scale = max(float(np.abs(want).max(initial=0.0)), 1.0)
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * scale, err_msg=name)


@pytest.mark.parametrize("act", sorted(CODES))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("backend", BACKENDS[1:])
def test_matches_reference(backend, case, dtype, act):
    problem = _problem(case, dtype)
    want = _run([getattr(ref, name) for name in NAMES], *problem, act=CODES[act])
    got = _run(_kernels(backend), *problem, act=CODES[act])
    for name in want:
        assert got[name].dtype == dtype, name
        assert not np.isnan(got[name]).any(), f"{name} left unwritten"
        _assert_close(got[name], want[name], name)


@pytest.mark.parametrize("backend", BACKENDS[1:])
def test_bit_identical_for_1_and_2_threads(backend):
    """Large enough to run parallel (Cython's threshold is 2**18 operations); both dtypes, two block counts."""
    kernels = _kernels(backend)
    for case in ((64 * 16 * 16, 24, 64), (5000, 60, 7)):
        for dtype in DTYPES:
            problem = _problem(case, dtype, seed=7)
            results = []
            for threads in (1, 2):
                with thread_limits(threads):
                    results.append(_run(kernels, *problem, act=CODES["relu"]))
            for name in results[0]:
                np.testing.assert_array_equal(results[0][name], results[1][name], err_msg=name)


@pytest.mark.parametrize("act", ["identity", "tanh"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_gradients_match_finite_differences(backend, act):
    """``dx, dgamma, dbeta`` of ``loss = sum(batchnorm_forward(x) * r)`` against central differences, float64."""
    forward, _, backward = _kernels(backend)
    x, gamma, beta, r, _, B = _problem((13, 5, 3), np.float64, seed=11)
    code = CODES[act]
    y, mean, var, partial = np.empty(x.shape), np.empty(5), np.empty(5), np.empty((B, 2, 5))

    def loss():
        forward(y, mean, var, partial, x, gamma, beta, 1e-5, code, 0.0)
        return float(np.sum(y * r))

    loss()
    dx, dgamma, dbeta = np.full(x.shape, np.nan), np.full(5, np.nan), np.full(5, np.nan)
    backward(dx, dgamma, dbeta, partial, r, y, x, mean, var, gamma, 1e-5, code, 0.0)
    np.testing.assert_allclose(dx, numerical_grad(loss, x), rtol=RTOL, atol=ATOL, err_msg="dx")
    np.testing.assert_allclose(dgamma, numerical_grad(loss, gamma), rtol=RTOL, atol=ATOL, err_msg="dgamma")
    np.testing.assert_allclose(dbeta, numerical_grad(loss, beta), rtol=RTOL, atol=ATOL, err_msg="dbeta")


@pytest.mark.parametrize("backend", BACKENDS[1:])
def test_same_signatures_as_the_reference(backend):
    """Every backend's kernels take the reference's parameters, by name and in order."""
    for want, got in zip(_kernels("numpy"), _kernels(backend)):
        assert parameter_names(got) == parameter_names(want), want.__name__


@pytest.mark.parametrize("shape", [(6, 5, 4, 3), (9, 7)], ids=["BatchNorm2d", "BatchNorm1d"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend", BACKENDS)
def test_layer_matches_torch(backend, dtype, shape):
    """Two training steps then inference: outputs, gradients and running statistics equal PyTorch's."""
    torch = pytest.importorskip("torch")
    from minicnn.layers import BatchNorm

    C = shape[-1]
    layer = build_layer(BatchNorm(momentum=0.2, eps=1e-3), shape[1:], backend, dtype=dtype)
    tlayer = (torch.nn.BatchNorm2d if len(shape) == 4 else torch.nn.BatchNorm1d)(C, eps=1e-3, momentum=0.2)
    tlayer = tlayer.to(torch.float64)
    rng = np.random.default_rng(5)
    layer.params["gamma"][...] = rng.uniform(0.5, 1.5, C)
    layer.params["beta"][...] = rng.standard_normal(C)
    with torch.no_grad():
        tlayer.weight.copy_(torch.tensor(layer.params["gamma"], dtype=torch.float64))
        tlayer.bias.copy_(torch.tensor(layer.params["beta"], dtype=torch.float64))
    to_torch = (lambda a: a.transpose(0, 3, 1, 2)) if len(shape) == 4 else (lambda a: a)
    tol = dict(rtol=2e-4, atol=2e-4) if dtype == np.float32 else dict(rtol=1e-9, atol=1e-10)
    for step in range(2):
        x = (rng.standard_normal(shape) * 2 + 3).astype(dtype)
        dy = rng.standard_normal(shape).astype(dtype)
        xt = torch.tensor(to_torch(x), dtype=torch.float64, requires_grad=True)
        tlayer.train()
        tlayer.zero_grad()
        yt = tlayer(xt)
        yt.backward(torch.tensor(to_torch(dy), dtype=torch.float64))
        y = layer.forward(x, training=True).copy()
        dx = layer.backward(dy)
        np.testing.assert_allclose(to_torch(y), yt.detach().numpy(), **tol, err_msg=f"y step {step}")
        np.testing.assert_allclose(to_torch(dx), xt.grad.numpy(), **tol, err_msg=f"dx step {step}")
        np.testing.assert_allclose(layer.grads["gamma"], tlayer.weight.grad.numpy(), **tol)
        np.testing.assert_allclose(layer.grads["beta"], tlayer.bias.grad.numpy(), **tol)
        np.testing.assert_allclose(layer.running_mean, tlayer.running_mean.numpy(), **tol)
        np.testing.assert_allclose(layer.running_var, tlayer.running_var.numpy(), **tol)
    tlayer.eval()
    with torch.no_grad():
        want = tlayer(torch.tensor(to_torch(x), dtype=torch.float64)).numpy()
    np.testing.assert_allclose(to_torch(layer.forward(x, training=False)), want, **tol, err_msg="inference")


@pytest.mark.parametrize("backend", BACKENDS)
def test_layer_gradients_match_finite_differences(backend):
    """The layer on every backend (float64, NHWC maps): dx, dgamma, dbeta against central differences."""
    from minicnn.layers import BatchNorm

    from gradcheck import check_layer_gradients

    layer = build_layer(BatchNorm(), (3, 4, 5), backend)
    rng = np.random.default_rng(2)
    layer.params["gamma"][...] = rng.uniform(0.5, 1.5, 5)
    layer.params["beta"][...] = rng.standard_normal(5)
    check_layer_gradients(layer, rng.standard_normal((4, 3, 4, 5)) * 2 + 1)
