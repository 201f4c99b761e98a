"""A NaN in the input (or an overflow inside the network) reaches the output on every backend, as in the reference.

The NumPy reference propagates NaN through every layer (``np.maximum`` keeps
it, the max-pool lets it win); a compiled kernel that turned it into a number
(``z if z > 0 else 0`` makes a NaN 0) would hand out finite, wrong outputs
that no check of the output can see. The kind is "a layer route that drops a
NaN": every route of the layer tokens (direct conv + pool, the RGB stem,
Winograd with and without pool, strided and dilated convs, depthwise and
separable, residual blocks fused or not, dense, global pools), with and
without BatchNorm, every fused activation, at inference and in training, on
every backend.
"""

import numpy as np
import pytest

from minicnn.architecture import build_network, parse_layers
from minicnn.threads import thread_limits

from helpers import importable_backends

BACKENDS = importable_backends(("numpy", "numba", "cython", "auto"))
NETS = {
    "direct-pool": (("conv8", "maxpool"), (12, 12, 1)),
    "stem-winograd-pool": (("conv8", "maxpool", "conv16", "maxpool"), (16, 16, 3)),
    "winograd": (("conv16", "conv16"), (10, 10, 4)),
    "strided-dilated": (("conv8s2", "conv8d2"), (14, 14, 3)),
    "gmp": (("conv8", "gmp"), (9, 9, 3)),
    "separable": (("conv8s2", "sep8", "sep16s2", "dw3", "gap"), (16, 16, 3)),
    "residual": (("conv8", "res8", "res16s2", "gap"), (12, 12, 3)),
    "dense": (("dense16", "dense8"), (6, 6, 1)),
}


def _outputs(tokens, shape, backend, batch_norm, padding, x, training, activation="relu"):
    network, _ = build_network(parse_layers(tokens), [], n_outputs=3, input_shape=shape,
                               rng=np.random.default_rng(0), backend=backend, padding=padding,
                               batch_norm=batch_norm, activation=activation)
    with thread_limits(1):
        return np.array(network.forward(x, training), dtype=np.float64)


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "tanh", "sigmoid"])
@pytest.mark.parametrize("training", [False, True], ids=["inference", "training"])
@pytest.mark.parametrize("batch_norm", [False, True], ids=["plain", "batchnorm"])
@pytest.mark.parametrize("net", sorted(NETS))
def test_a_nan_in_the_input_reaches_the_output_as_in_the_reference(net, batch_norm, training, activation):
    tokens, shape = NETS[net]
    padding = "same"
    x = np.random.default_rng(1).random((3, *shape), dtype=np.float32)
    x[0, shape[0] // 2, shape[1] // 2, 0] = np.nan
    reference = _outputs(tokens, shape, "numpy", batch_norm, padding, x, training, activation)
    assert np.isnan(reference[0]).any(), "the reference propagates the NaN (else this test checks nothing)"
    for backend in BACKENDS:
        got = _outputs(tokens, shape, backend, batch_norm, padding, x, training, activation)
        np.testing.assert_array_equal(np.isnan(got), np.isnan(reference), err_msg=f"backend={backend}")


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_overflow_inside_the_network_reaches_the_output(backend):
    """Finite but huge weights: inf - inf inside a layer is a NaN, which the later layers must keep."""
    tokens, shape = NETS["stem-winograd-pool"]
    network, _ = build_network(parse_layers(tokens), [], n_outputs=3, input_shape=shape,
                               rng=np.random.default_rng(0), backend=backend, padding="same")
    for layer in network.walk() if hasattr(network, "walk") else network.layers:
        for value in getattr(layer, "params", {}).values():
            value *= np.float32(1e30)
    x = np.random.default_rng(1).random((2, *shape), dtype=np.float32)
    with thread_limits(1), np.errstate(all="ignore"):
        out = np.asarray(network.forward(x, False))
    assert not np.isfinite(out).all()
