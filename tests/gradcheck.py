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
