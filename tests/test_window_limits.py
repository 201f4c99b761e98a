"""A conv window larger than its input can take is refused when the layer is built, naming the parameters.

Swept: every conv-like layer (Conv2D, DepthwiseConv2D, and through the token grammar the separable
convolution and the residual block) over kernel sizes, dilations, strides and paddings, from ordinary to
absurd, on small maps. The expected verdict is computed here from TensorFlow's "same" rule, independently of
the layer code: a window whose "same" padding on a side would exceed the input (so most of the kernel reads
only zeros), or whose weights or per-sample columns exceed ``MAX_ELEMENTS``, is a ValueError naming
``kernel_size`` and ``dilation`` with their values, never a MemoryError; everything else builds and runs.
"""

import itertools
import re

import numpy as np
import pytest

from minicnn import CNNClassifier
from minicnn.architecture import build_network, parse_layers
from minicnn.backend import get_backend
from minicnn.layers import Conv2D, DepthwiseConv2D
from minicnn.layers.window_limits import MAX_ELEMENTS

KERNELS = (1, 2, 3, 5, 10 ** 6)
DILATIONS = (1, 2, 7, 10 ** 9)
STRIDES = (1, 2, 3)
PADDINGS = ("valid", "same", 1, (0, 2))
SHAPES = ((1, 1, 2), (3, 5, 2), (8, 8, 2))


def _axis_verdict(size, k, s, d, pad):
    """``(output size, "ok" | "no fit" | "too large")`` of one axis, from first principles."""
    span = (k - 1) * d + 1
    if pad == "same":
        out = -(-size // s)
        total = max((out - 1) * s + span - size, 0)
        return out, ("too large" if total - total // 2 > size else "ok")
    before = after = 0 if pad == "valid" else pad
    out = (size + before + after - span) // s + 1
    return out, ("no fit" if out < 1 else "ok")


def _expected(shape, k, s, d, padding, filters):
    H, W, C = shape
    pads = (padding, padding) if isinstance(padding, str) or np.isscalar(padding) else padding
    (Ho, vh), (Wo, vw) = _axis_verdict(H, k, s, d, pads[0]), _axis_verdict(W, k, s, d, pads[1])
    if "no fit" in (vh, vw):
        return "no fit"
    if "too large" in (vh, vw):
        return "too large"
    if max(k * k * C * filters, Ho * Wo * k * k * C) > MAX_ELEMENTS:
        return "too many elements"
    return "ok"


@pytest.mark.parametrize("cls", [Conv2D, DepthwiseConv2D])
@pytest.mark.parametrize("shape", SHAPES)
def test_every_kernel_dilation_stride_padding_is_built_or_refused_by_name(cls, shape):
    backend = get_backend("numpy")
    verdicts = set()
    for k, d, s, padding in itertools.product(KERNELS, DILATIONS, STRIDES, PADDINGS):
        layer = cls(3, kernel_size=k, strides=s, padding=padding, dilation=d) if cls is Conv2D else \
            cls(kernel_size=k, strides=s, padding=padding, dilation=d)
        filters = 3 if cls is Conv2D else shape[2]
        want = _expected(shape, k, s, d, padding, filters)
        verdicts.add(want)
        case = (cls.__name__, shape, k, d, s, padding)
        if want == "ok":
            out = layer.build(shape, dtype=np.float64, rng=np.random.default_rng(0), backend=backend)
            x = np.random.default_rng(1).standard_normal((2, *shape))
            y = layer.forward(x, training=True)
            assert y.shape == (2, *out) and np.isfinite(y).all(), case
            dx = layer.backward(np.ones_like(y))
            assert dx.shape == x.shape and np.isfinite(dx).all(), case
            continue
        with pytest.raises(ValueError) as info:
            layer.build(shape, dtype=np.float64, rng=np.random.default_rng(0), backend=backend)
        message = str(info.value)
        assert f"kernel_size={(k, k)}" in message and f"dilation={(d, d)}" in message, (case, message)
        if want == "too large":
            assert "padding='same'" in message and f"spans {(k - 1) * d + 1} pixels" in message, (case, message)
        elif want == "too many elements":
            assert f"{MAX_ELEMENTS:,}" in message, (case, message)
        else:
            assert "does not fit" in message, (case, message)
    assert {"ok", "too large", "no fit"} <= verdicts


@pytest.mark.parametrize("cls", [Conv2D, DepthwiseConv2D])
def test_a_layer_whose_arrays_exceed_the_bound_is_refused_before_allocating(cls):
    """Shapes that fit the window rule but would need terabytes: refused at build, naming the settings."""
    cases = [((4096, 4096, 1), dict(kernel_size=200, padding="same"))]
    if cls is Conv2D:
        cases.append(((128, 128, 1), dict(kernel_size=64, filters=2 ** 20)))
    for shape, settings in cases:
        settings = dict(settings)
        filters = settings.pop("filters", 1)
        layer = cls(filters, **settings) if cls is Conv2D else cls(**settings)
        with pytest.raises(ValueError, match=re.escape(f"kernel_size={(settings['kernel_size'],) * 2}")) as info:
            layer.build(shape, dtype=np.float32, rng=np.random.default_rng(0), backend=get_backend("numpy"))
        assert f"more than the {MAX_ELEMENTS:,}" in str(info.value)


def _token_cases():
    """Tokens of every conv-like kind with ordinary and absurd kernels and dilations (strides too)."""
    for k, d, s in itertools.product((1, 3, 5, 1000000), (1, 2, 9, 1000000000), (1, 2)):
        stride = f"s{s}" if s > 1 else ""
        yield f"conv2x{k}{stride}d{d}", k, d, s
        yield f"dw{k}{stride}d{d}", k, d, s
        yield f"sep2x{k}{stride}d{d}", k, d, s
    for s in (1, 2, 3):   # the residual block: always 3x3, "same", undilated: it fits every map
        yield f"res2{'s' + str(s) if s > 1 else ''}", 3, 1, s


@pytest.mark.parametrize("padding", ["valid", "same"])
def test_every_conv_token_on_a_small_map_builds_or_is_refused_naming_the_token_and_parameters(padding):
    shape = (6, 6, 2)
    for token, k, d, s in _token_cases():
        want = _expected(shape, k, s, d, padding, 2)
        if token.startswith("res"):
            want = "ok"
        build = dict(n_outputs=2, input_shape=shape, rng=np.random.default_rng(0), backend="numpy", padding=padding)
        if want == "ok":
            network, _ = build_network(parse_layers((token,)), [], **build)
            assert network.forward(np.zeros((1, *shape)), training=False).shape == (1, 2), token
            continue
        with pytest.raises(ValueError, match=re.escape(f"at layers[0]={token!r}")) as info:
            build_network(parse_layers((token,)), [], **build)
        if want == "too large":
            assert f"kernel_size={(k, k)} with dilation={(d, d)}" in str(info.value), token


@pytest.mark.parametrize("layers, kernel_size", [(("conv4",), 10 ** 6), (("sep4",), 10 ** 6), (("dw3d500",), 3),
                                                 (("conv4d100000", "dense4"), 3)])
def test_the_estimator_refuses_a_huge_window_with_a_value_error_naming_the_token(layers, kernel_size):
    X, y = np.zeros((4, 8, 8, 1), np.float32), [0, 1, 0, 1]
    clf = CNNClassifier(layers=layers, kernel_size=kernel_size, padding="same", dropout="none", backend="numpy",
                        max_iter=1)
    with pytest.raises(ValueError, match=re.escape(f"at layers[0]={layers[0]!r}")) as info:
        clf.fit(X, y)
    assert "kernel_size=" in str(info.value) and "dilation=" in str(info.value)


@pytest.mark.parametrize("token", ["conv8s{v}", "conv8x1d{v}", "conv8x{v}", "dw3s{v}", "dw3d{v}", "sep8s{v}",
                                   "res8s{v}"])
@pytest.mark.parametrize("value", [2 ** 31, 3 * 10 ** 9, 10 ** 21])
@pytest.mark.parametrize("padding", ["same", "valid"])
def test_window_parameters_beyond_the_kernels_integer_range_are_refused_by_name(token, value, padding):
    # they passed the grammar and reached the compiled kernels as an OverflowError at the first forward
    X, y = np.zeros((6, 8, 8, 1), np.float32), np.arange(6) % 2
    with pytest.raises(ValueError, match=r"(strides|dilation|kernel_size)=\(\d+, \d+\)") as caught:
        CNNClassifier(layers=(token.format(v=value),), dropout="none", padding=padding, max_iter=1).fit(X, y)
    assert "Overflow" not in str(caught.value)
