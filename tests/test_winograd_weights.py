"""Winograd weights transformed once: ``winograd_weight_transform`` and the forwards that accept its output.

The kernel ``u (4, 4, C, F) = G g G^T`` on every backend against its NumPy twin (outputs pre-filled with NaN,
channel and filter counts that are not multiples of the vector width, float32 and float64); each of the three
Winograd forwards (plain, residual add, max-pool) given ``u`` in place of ``w`` with the same bits as given ``w``,
on maps of 2 to 9 pixels (odd ones), batch 1, 3 and 8, every activation, on 1 and 2 threads; and the layer
route: a BatchNorm-folded conv (read-only weights) transforms its weights once, refreshes the transform when
the fold changes, and predicts as the unfolded layers do.
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
#        N  H  W   C   F  pt pl
CASES = [(1, 2, 2, 1, 1, 1, 1), (3, 3, 5, 13, 21, 1, 1), (8, 8, 8, 16, 16, 1, 1), (1, 9, 7, 17, 33, 1, 0),
         (3, 4, 4, 64, 64, 1, 1), (8, 6, 9, 9, 5, 0, 0), (1, 5, 5, 30, 3, 2, 2)]


def _transform(module, w):
    u = np.full((4, 4, *w.shape[2:]), np.nan, w.dtype)
    module.winograd_weight_transform(u, w)
    return u


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("C, F", [(1, 1), (3, 33), (13, 21), (16, 16), (64, 64)])
def test_weight_transform_matches_reference(backend, dtype, C, F):
    module = kernel_module(backend)
    w = np.random.default_rng(C * F).standard_normal((3, 3, C, F)).astype(dtype)
    want = np.full((4, 4, C, F), np.nan, dtype)
    ref.winograd_weight_transform(want, w)
    got = _transform(module, w)
    assert not np.isnan(got).any()
    tol = 1e-6 if dtype == np.float32 else 1e-14
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * np.abs(want).max())
    # U[0, 0] = g[0, 0], U[3, 3] = g[2, 2] exactly (rows and columns of G that copy a tap)
    np.testing.assert_array_equal(got[0, 0], w[0, 0])
    np.testing.assert_array_equal(got[3, 3], w[2, 2])


@pytest.mark.parametrize("backend", BACKENDS)
def test_weight_transform_refuses_other_shapes(backend):
    module = kernel_module(backend)
    w = np.zeros((3, 3, 4, 5), np.float32)
    for u in (np.zeros((4, 4, 5, 4), np.float32), np.zeros((3, 3, 4, 5), np.float32)):
        with pytest.raises(ValueError, match=r"u \(4, 4, C, F\) and w \(3, 3, C, F\)"):
            module.winograd_weight_transform(u, w)


def _forwards(module, x, v, b, s, act, alpha, pt, pl, slots=2):
    """The outputs of the three Winograd forwards given the weights or their transform ``v``."""
    N, H, W, C = x.shape
    _, Ho, Wo, F = s.shape
    work = np.full((slots, tuning.winograd_workspace_length(H, W, C, F, Ho, Wo)), np.nan, x.dtype)
    y = np.full(s.shape, np.nan, x.dtype)
    module.conv2d_winograd_bias_act_forward(y, x, v, b, work, act, alpha, pt, pl)
    ya = np.full(s.shape, np.nan, x.dtype)
    module.conv2d_winograd_bias_add_act_forward(ya, x, v, b, s, work, act, alpha, pt, pl)
    outs = [y, ya]
    if Ho >= 2 and Wo >= 2 and act in (CODES["identity"], CODES["relu"]):
        yp = np.full((N, Ho // 2, Wo // 2, F), np.nan, x.dtype)
        module.conv2d_winograd_bias_act_maxpool2_forward(yp, x, v, b, work, act, alpha, pt, pl, Ho, Wo)
        outs.append(yp)
    return outs


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES)
def test_forwards_take_the_transform_with_the_same_bits(backend, dtype, case):
    from minicnn.threads import thread_limits

    module = kernel_module(backend)
    N, H, W, C, F, pt, pl = case
    rng = np.random.default_rng(sum(case))
    x = rng.standard_normal((N, H, W, C)).astype(dtype)
    w = rng.standard_normal((3, 3, C, F)).astype(dtype)
    b = rng.standard_normal(F).astype(dtype)
    Ho, Wo = H + 2 * pt - 2, W + 2 * pl - 2
    s = rng.standard_normal((N, Ho, Wo, F)).astype(dtype)
    u = _transform(module, w)
    for act, alpha in ACTS:
        want = _forwards(module, x, w, b, s, act, alpha, pt, pl)
        for n_threads in (1, 2):
            with thread_limits(n_threads):
                got = _forwards(module, x, u, b, s, act, alpha, pt, pl)
            for g, e in zip(got, want, strict=True):
                assert not np.isnan(g).any()
                np.testing.assert_array_equal(g.view(np.uint8), e.view(np.uint8), err_msg=f"act {act}, {n_threads}t")


@pytest.mark.parametrize("backend", BACKENDS)
def test_folded_conv_transforms_its_weights_once_and_refreshes_them(backend):
    from minicnn.backend import get_backend
    from minicnn.layers import Activation, BatchNorm, Chain, Conv2D, Residual

    rng = np.random.default_rng(0)
    main = Chain([Conv2D(12, 3, padding="same", use_bias=False), BatchNorm(), Activation("relu"),
                  Conv2D(12, 3, padding="same", use_bias=False), BatchNorm()])   # a zoo block's main path
    block = Residual(main)
    block.build((7, 5, 12), dtype=np.float32, rng=rng, backend=get_backend(backend))
    for norm in (main.layers[1], main.layers[4]):
        norm.running_mean[:] = rng.standard_normal(12)
        norm.running_var[:] = rng.random(12) + 0.5
    x = rng.standard_normal((3, 7, 5, 12)).astype(np.float32)

    def unfolded():   # the four layers and the merge one by one, no fold
        h = x
        for layer in main.layers:
            h = layer.forward(h, False)
        return np.maximum(h + x, 0)

    first = block.forward(x).copy()
    np.testing.assert_allclose(first, unfolded(), rtol=1e-4, atol=1e-4)
    folded = [step.folded() for step in main._inference_layers()]
    assert all(not f.params["w"].flags.writeable for f in folded)
    if hasattr(get_backend(backend), "winograd_weight_transform"):
        transforms = [f._winograd_u for f in folded]
        np.testing.assert_array_equal(block.forward(x), first)
        assert all(f._winograd_u is u for f, u in zip(folded, transforms))   # not transformed again
    main.layers[3].params["w"] *= -1   # the second conv's weights change in place: refold, new transform
    np.testing.assert_allclose(block.forward(x), unfolded(), rtol=1e-4, atol=1e-4)
    assert not np.allclose(block.forward(x), first)
