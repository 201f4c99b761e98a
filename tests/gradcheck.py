"""Finite-difference gradient checking shared by the layer and network tests."""

import numpy as np

RTOL = 1e-5   # float64 central differences with eps=1e-6: relative error of good gradients is ~1e-8
ATOL = 1e-7


def numerical_grad(f, a, eps=1e-6):
    """Central-difference gradient of the scalar ``f()`` with respect to array ``a`` (perturbed in place)."""
    grad = np.zeros_like(a)
    flat, gflat = a.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        plus = f()
        flat[i] = old - eps
        minus = f()
        flat[i] = old
        gflat[i] = (plus - minus) / (2 * eps)
    return grad


def check_layer_gradients(layer, x, training=True, before_forward=lambda: None, seed=0):
    """Compare a layer's analytic dx and parameter grads with finite differences of ``sum(y * r)``."""
    r = np.random.default_rng(seed).standard_normal((x.shape[0], *layer.output_shape))

    def loss():
        before_forward()
        return float(np.sum(layer.forward(x, training) * r))

    before_forward()
    layer.forward(x, training)
    dx = layer.backward(r.copy())
    dx = None if dx is None else dx.copy()
    grads = {k: g.copy() for k, g in layer.grads.items()}
    if layer.needs_input_grad:
        np.testing.assert_allclose(dx, numerical_grad(loss, x), rtol=RTOL, atol=ATOL, err_msg="dx")
    for name, param in layer.params.items():
        np.testing.assert_allclose(grads[name], numerical_grad(loss, param), rtol=RTOL, atol=ATOL,
                                   err_msg=f"d{name}")


#: Compiled kernels in float64 against the NumPy reference: only the summation order differs.
BACKEND_RTOL = 1e-9
BACKEND_ATOL = 1e-12


def layer_pass(layer, x, training=True, before_forward=lambda: None, seed=0):
    """``{"y": ..., "dx": ..., "d<param>": ..., "y_inference": ...}`` of one training forward/backward with
    ``dy = standard_normal`` (seeded), then one inference forward: what a gradient check checks, as copies."""
    r = np.random.default_rng(seed).standard_normal((x.shape[0], *layer.output_shape))
    before_forward()
    result = {"y": layer.forward(x, training).copy()}
    dx = layer.backward(r.copy())
    result["dx"] = None if dx is None else dx.copy()
    result.update({f"d{name}": grad.copy() for name, grad in layer.grads.items()})
    result["y_inference"] = layer.forward(x, False).copy()
    return result


def check_against_numpy(make_layer, x, backend, **kwargs):
    """The layer on ``backend`` gives the NumPy reference's outputs and gradients (float64).

    ``make_layer(backend)`` returns the layer built on that backend, with the
    same parameters for every backend; ``kwargs`` go to :func:`layer_pass`
    (``before_forward`` receives the layer).
    """
    got_layer, want_layer = make_layer(backend), make_layer("numpy")
    hook = kwargs.pop("before_forward", lambda layer: None)
    got = layer_pass(got_layer, x, before_forward=lambda: hook(got_layer), **kwargs)
    want = layer_pass(want_layer, x, before_forward=lambda: hook(want_layer), **kwargs)
    assert got.keys() == want.keys()
    for key in want:
        if want[key] is None:
            assert got[key] is None, key
        else:
            np.testing.assert_allclose(got[key], want[key], rtol=BACKEND_RTOL, atol=BACKEND_ATOL, err_msg=key)
