"""The layer-token grammar and every shape rule, in one table: token kind -> grammar, builder, output, shape.

The estimators describe their hidden layers with tokens (``"conv32"``,
``"conv64x5"``, ``"maxpool"``, ``"avgpool"``, ``"gap"``, ``"dense128"``).
:data:`LAYER_KINDS` holds, per kind, everything the package knows about it:

* the grammar (a regular expression whose groups are the units and the
  kernel size written in the token) and its help text for error messages;
* the output kind (``"map"``: (height, width, channels); ``"vector"``: flat);
* whether it is *weighted* (conv and dense: the layers BatchNorm follows) and
  whether it *pools* (the anchor of ``dropout="after_last_pool"``);
* the builder: the engine layers of one token;
* the shape rule: the output shape and the number of weights of those layers
  for a given input shape, computed without building them (a model file is
  checked against it before anything is allocated).

:func:`parse_layers` turns tokens into :class:`LayerToken` records;
:func:`build_layers` / :func:`build_network` turn them (and the dropout specs
of :mod:`minicnn.placement`) into a :class:`~minicnn.network.Sequential`;
:func:`weight_count` applies the shape rules. Adding a layer kind means one
row here, its layer file and its kernels.
"""

import re
from dataclasses import dataclass

from .layers import (Activation, AvgPool2D, BatchNorm, Chain, Conv2D, Dense, DepthwiseConv2D, Dropout, Flatten,
                     GlobalAvgPool2D, GlobalMaxPool2D, MaxPool2D, Residual, SpatialDropout2D)
from .layers.geometry import window_geometry
from .layers.window_limits import WindowLimitError
from .network import Sequential


@dataclass(frozen=True)
class LayerKind:
    """One row of :data:`LAYER_KINDS`.

    Attributes
    ----------
    pattern : str
        Regular expression the whole token matches; optional groups are
        ``units``, ``kernel``, ``stride`` and ``dilation``.
    help : str
        How the token is written (for error messages).
    doc : str
        What the token means, in a few words (for help texts and docstrings).
    input : {"map", "vector"}
        What the layer consumes (a Flatten is inserted before a ``"vector"``
        consumer fed maps).
    output : {"map", "vector"}
        What the layer outputs.
    weighted : bool
        Holds convolution or dense weights (followed by BatchNorm when
        ``batch_norm=True``; what ``dropout="after_each_layer"`` follows).
    pooling : bool
        A pooling layer (``dropout="after_last_pool"`` anchors on the last one).
    build : callable
        ``build(token, options, dropout) -> list of Layer``: the engine layers
        of one token; ``options`` holds ``kernel_size``, ``padding``,
        ``pool_size``, ``activation`` and ``batch_norm``; ``dropout`` is the
        dropout layer placed after the token, or None.
    shape : callable
        ``shape(token, (h, w, c), options) -> ((h, w, c), weights)``: output
        shape (a vector of ``n`` units is ``(1, 1, n)``) and the number of
        conv/dense weights, exact for every network that builds.
    inner_dropout : bool
        A block whose dropout goes inside it, before its last convolution
        (and that convolution's BatchNorm), never on its skip path.
    """

    pattern: str
    help: str
    doc: str
    input: str
    output: str
    weighted: bool
    pooling: bool
    build: object
    shape: object
    inner_dropout: bool = False


def _conv_kernel(token, options):
    return token.kernel_size or options["kernel_size"]


def _then(layers, dropout):
    """``layers`` followed by ``dropout`` (when one is placed after the token)."""
    return layers if dropout is None else [*layers, dropout]


def _conv_stack(conv, options, activation=True):
    """``conv`` with its activation, or ``conv`` (no bias), BatchNorm and activation when ``batch_norm``."""
    if options["batch_norm"]:
        return [conv, BatchNorm(), Activation(options["activation"])] if activation else [conv, BatchNorm()]
    return [conv]


def _conv_options(options, activation=True):
    """Bias and activation keyword arguments of a conv layer (none fused when BatchNorm follows)."""
    if options["batch_norm"]:
        return {"use_bias": False}
    return {"activation": options["activation"] if activation else "identity"}


def _build_conv(token, options, dropout):
    conv = Conv2D(token.units, _conv_kernel(token, options), strides=token.stride, dilation=token.dilation,
                  padding=options["padding"], **_conv_options(options))
    return _then(_conv_stack(conv, options), dropout)


def _build_dense(token, options, dropout):
    if options["batch_norm"]:
        return _then([Dense(token.units, use_bias=False), BatchNorm(), Activation(options["activation"])], dropout)
    return _then([Dense(token.units, activation=options["activation"])], dropout)


def _build_depthwise(token, options, dropout):
    layer = DepthwiseConv2D(token.kernel_size, strides=token.stride, dilation=token.dilation,
                            padding=options["padding"], **_conv_options(options))
    return _then(_conv_stack(layer, options), dropout)


def _build_separable(token, options, dropout):
    """Depthwise KxK then pointwise 1x1 (Keras ``SeparableConv2D``; MobileNet's BN and activation after each
    with ``batch_norm``)."""
    depthwise = DepthwiseConv2D(_conv_kernel(token, options), strides=token.stride, dilation=token.dilation,
                                padding=options["padding"], use_bias=False)
    if options["batch_norm"]:
        inner = [depthwise, BatchNorm(), Activation(options["activation"])]
    else:
        inner = [depthwise]
    pointwise = Conv2D(token.units, 1, **_conv_options(options))
    return _then([Chain([*inner, *_conv_stack(pointwise, options)], name=token.text)], dropout)


def _build_residual(token, options, dropout):
    """He et al. (2016) basic block: conv3x3(stride)-(BN)-act-[dropout]-conv3x3-(BN), plus the identity or a 1x1
    projection (with BN) when channels or stride change, then the activation after the add.

    A dropout placed after the token goes between the two convolutions (Wide ResNet), never on the skip path.
    The block always pads "same" (both paths must keep the same size).
    """
    def conv(kernel, stride, activation=True):
        layer = Conv2D(token.units, kernel, strides=stride, padding="same", **_conv_options(options, activation))
        return _conv_stack(layer, options, activation)

    main = [*conv(3, token.stride), *([] if dropout is None else [dropout]), *conv(3, 1, activation=False)]
    return [Residual(Chain(main, name="main"), Chain(conv(1, token.stride, activation=False), name="projection"),
                     activation=options["activation"])]


def _window(size, kernel, stride, padding, dilation=1):
    return max(window_geometry(size, kernel, stride, dilation, padding)[0], 1)


def _conv_shape(token, shape, options):
    h, w, c = shape
    k, s, d, padding = _conv_kernel(token, options), token.stride, token.dilation, options["padding"]
    return (_window(h, k, s, padding, d), _window(w, k, s, padding, d), token.units), k * k * c * token.units


def _depthwise_shape(token, shape, options):
    h, w, c = shape
    k, s, d, padding = _conv_kernel(token, options), token.stride, token.dilation, options["padding"]
    return (_window(h, k, s, padding, d), _window(w, k, s, padding, d), c), k * k * c


def _separable_shape(token, shape, options):
    (h, w, c), depthwise = _depthwise_shape(token, shape, options)
    return (h, w, token.units), depthwise + c * token.units


def _residual_shape(token, shape, options):
    h, w, c = shape
    n, s = token.units, token.stride
    out = (_window(h, 1, s, "same"), _window(w, 1, s, "same"), n)
    projection = c * n if out != (h, w, c) else 0   # as Residual: a projection only where the shape changes
    return out, 9 * c * n + 9 * n * n + projection


def _pool_shape(token, shape, options):
    h, w, c = shape
    p = options["pool_size"]
    return (_window(h, p, p, options["padding"]), _window(w, p, p, options["padding"]), c), 0


def _dense_shape(token, shape, options):
    h, w, c = shape
    return (1, 1, token.units), h * w * c * token.units


def _global_shape(token, shape, options):
    return (1, 1, shape[2]), 0


_N, _K, _S, _D = (r"(?P<units>[1-9][0-9]*)", r"(?P<kernel>[1-9][0-9]*)", r"(?:s(?P<stride>[1-9][0-9]*))?",
                  r"(?:d(?P<dilation>[1-9][0-9]*))?")

#: THE table of hidden-layer kinds (see the module docstring). Ordered as in error messages and help texts.
LAYER_KINDS = {
    "conv": LayerKind(rf"conv{_N}(?:x{_K})?{_S}{_D}", "'conv<N>[x<K>][s<S>][d<D>]'",
                      "convolution: N filters, KxK kernel (default kernel_size), stride S, dilation D "
                      "(default 1), e.g. conv32, conv32x5, conv32s2, conv32d2",
                      "map", "map", weighted=True, pooling=False, build=_build_conv, shape=_conv_shape),
    "res": LayerKind(rf"res{_N}{_S}", "'res<N>[s<S>]'",
                     "residual block (He et al. 2016): two 3x3 convolutions of N filters, the first of stride S, "
                     "plus the identity or a 1x1 projection, always padded 'same', e.g. res32, res64s2",
                     "map", "map", weighted=True, pooling=False, build=_build_residual, shape=_residual_shape,
                     inner_dropout=True),
    "dw": LayerKind(rf"dw{_K}{_S}{_D}", "'dw<K>[s<S>][d<D>]'",
                    "depthwise convolution: one KxK filter per channel, stride S, e.g. dw3, dw3s2",
                    "map", "map", weighted=True, pooling=False, build=_build_depthwise, shape=_depthwise_shape),
    "sep": LayerKind(rf"sep{_N}(?:x{_K})?{_S}{_D}", "'sep<N>[x<K>][s<S>][d<D>]'",
                     "depthwise-separable convolution: depthwise KxK (stride S) then pointwise 1x1 to N "
                     "channels, e.g. sep64, sep64s2",
                     "map", "map", weighted=True, pooling=False, build=_build_separable, shape=_separable_shape),
    "maxpool": LayerKind(r"maxpool", "'maxpool'", "max pooling, window and stride pool_size",
                         "map", "map", weighted=False, pooling=True, shape=_pool_shape,
                         build=lambda token, o, d: _then([MaxPool2D(o["pool_size"], padding=o["padding"])], d)),
    "avgpool": LayerKind(r"avgpool", "'avgpool'", "average pooling, window and stride pool_size",
                         "map", "map", weighted=False, pooling=True, shape=_pool_shape,
                         build=lambda token, o, d: _then([AvgPool2D(o["pool_size"], padding=o["padding"])], d)),
    "gap": LayerKind(r"gap", "'gap'", "global average pooling (maps to vectors)", "map", "vector",
                     weighted=False, pooling=True, shape=_global_shape,
                     build=lambda token, o, d: _then([GlobalAvgPool2D()], d)),
    "gmp": LayerKind(r"gmp", "'gmp'", "global max pooling (maps to vectors)", "map", "vector",
                     weighted=False, pooling=True, shape=_global_shape,
                     build=lambda token, o, d: _then([GlobalMaxPool2D()], d)),
    "dense": LayerKind(rf"dense{_N}", "'dense<N>'", "fully connected layer of N units", "vector", "vector",
                       weighted=True, pooling=False, build=_build_dense, shape=_dense_shape),
}
_HELPS = [kind.help for kind in LAYER_KINDS.values()]
#: How the tokens are written, for error messages: generated from :data:`LAYER_KINDS`.
TOKEN_HELP = ", ".join(_HELPS[:-1]) + " or " + _HELPS[-1]
#: One line per kind (``token: meaning``), for help texts and docstrings: generated from :data:`LAYER_KINDS`.
TOKEN_DOCS = tuple(f"{kind.help.strip(chr(39))}: {kind.doc}" for kind in LAYER_KINDS.values())
#: The token forms only, comma-separated (``conv<N>[x<K>][s<S>][d<D>], res<N>[s<S>], ...``).
TOKEN_FORMS = ", ".join(kind.help.strip("'") for kind in LAYER_KINDS.values())
#: The pooling kinds (``dropout="after_last_pool"`` anchors on the last one), for messages.
POOLING_TOKENS = tuple(name for name, kind in LAYER_KINDS.items() if kind.pooling)
_PATTERNS = {name: re.compile(kind.pattern) for name, kind in LAYER_KINDS.items()}


@dataclass(frozen=True)
class LayerToken:
    """One parsed hidden-layer token.

    Attributes
    ----------
    index : int
        Position in ``layers``.
    text : str
        The token as written.
    kind : str
        A key of :data:`LAYER_KINDS`.
    units : int or None
        Filters of a conv, residual or separable block, units of a dense layer.
    kernel_size : int or None
        Kernel written in the token (``conv32x5`` -> 5, ``dw3`` -> 3); None
        means the estimator's ``kernel_size``.
    stride, dilation : int
        Written as ``s<S>`` and ``d<D>`` (``conv32s2``); 1 when absent.
    """

    index: int
    text: str
    kind: str
    units: int = None
    kernel_size: int = None
    stride: int = 1
    dilation: int = 1

    @property
    def output(self):
        """``"map"`` for (height, width, channels) outputs, ``"vector"`` for flat ones."""
        return LAYER_KINDS[self.kind].output

    @property
    def weighted(self):
        """True for kinds holding conv or dense weights (followed by BatchNorm when ``batch_norm=True``)."""
        return LAYER_KINDS[self.kind].weighted

    @property
    def pooling(self):
        """True for pooling layers (``maxpool``, ``avgpool``, ``gap``, ``gmp``)."""
        return LAYER_KINDS[self.kind].pooling


def _parse_token(index, text):
    if not isinstance(text, str):
        raise ValueError(f"Expected each entry of layers to be a string token ({TOKEN_HELP}). "
                         f"Received: layers[{index}]={text!r}")
    for name, pattern in _PATTERNS.items():
        match = pattern.fullmatch(text)
        if match:
            numbers = {key: int(value) for key, value in match.groupdict().items() if value is not None}
            return LayerToken(index, text, name, numbers.get("units"), numbers.get("kernel"),
                              numbers.get("stride", 1), numbers.get("dilation", 1))
    raise ValueError(f"Expected each entry of layers to be one of {TOKEN_HELP}. Received: layers[{index}]={text!r}")


def parse_layers(layers):
    """Parse hidden-layer tokens and check their order.

    Parameters
    ----------
    layers : sequence of str
        Tokens (see :data:`TOKEN_DOCS`).

    Returns
    -------
    tuple of LayerToken

    Raises
    ------
    ValueError
        For an unknown token, or a layer that needs maps (conv, block or
        pooling, global pooling included) after a layer that outputs flat
        vectors (``dense``, ``gap`` or ``gmp``).

    Examples
    --------
    >>> [(t.kind, t.units, t.kernel_size) for t in parse_layers(("conv8x5", "maxpool", "dense16"))]
    [('conv', 8, 5), ('maxpool', None, None), ('dense', 16, None)]
    >>> parse_layers(("dense16", "conv8"))
    Traceback (most recent call last):
    ...
    ValueError: layers[1]='conv8' needs (height, width, channels) maps, but layers[0]='dense16' outputs flat vectors. Received: layers=('dense16', 'conv8')
    """
    if isinstance(layers, str) or not isinstance(layers, (tuple, list)):
        raise ValueError(f"Expected layers to be a tuple of string tokens ({TOKEN_HELP}). Received: layers={layers!r}")
    tokens = tuple(_parse_token(i, text) for i, text in enumerate(layers))
    flat_from = None
    for token in tokens:
        if LAYER_KINDS[token.kind].input == "map" and flat_from is not None:
            raise ValueError(f"layers[{token.index}]={token.text!r} needs (height, width, channels) maps, but "
                             f"layers[{flat_from.index}]={flat_from.text!r} outputs flat vectors. "
                             f"Received: layers={tuple(layers)!r}")
        if token.output == "vector" and flat_from is None:
            flat_from = token
    return tokens


def _options(kernel_size, padding, pool_size, activation, batch_norm):
    return {"kernel_size": kernel_size, "padding": padding, "pool_size": pool_size, "activation": activation,
            "batch_norm": batch_norm}


def weight_count(tokens, input_shape, n_outputs, *, kernel_size=3, padding="valid", pool_size=2, **_):
    """Number of conv and dense weights of the network :func:`build_layers` makes, computed without building it.

    Exact for every network that builds (biases and BatchNorm vectors come on
    top); used to refuse model files whose parameters would allocate more
    than they store.

    Parameters
    ----------
    tokens : tuple of LayerToken
    input_shape : tuple of int
        Per-sample NHWC ``(height, width, channels)``.
    n_outputs : int
        Units of the output layer.
    kernel_size, padding, pool_size
        As the estimator parameters (other estimator parameters are ignored).

    Returns
    -------
    int

    Examples
    --------
    >>> weight_count(parse_layers(("conv4", "maxpool", "dense8")), (8, 8, 1), n_outputs=3)
    348
    """
    options = _options(kernel_size, padding, pool_size, None, False)
    shape, total = tuple(input_shape), 0
    for token in tokens:
        shape, weights = LAYER_KINDS[token.kind].shape(token, shape, options)
        total += weights
    h, w, c = shape
    return total + h * w * c * n_outputs


def build_layers(tokens, specs, *, n_outputs, kernel_size=3, padding="valid", pool_size=2, activation="relu",
                 batch_norm=False, dropout_scaling="inverted"):
    """The full layer list: hidden blocks, dropouts where ``specs`` say, Flattens, the output Dense.

    Parameters
    ----------
    tokens : tuple of LayerToken
        From :func:`parse_layers`.
    specs : list of DropoutSpec
        From :func:`minicnn.placement.resolve_dropout`.
    n_outputs : int
        Units of the output layer (identity activation: logits or values).
    kernel_size, padding, pool_size, activation, batch_norm, dropout_scaling
        As the estimator parameters; ``padding`` applies to conv and pooling
        layers.

    Returns
    -------
    layers : list of Layer
    origin : list of int or None
        For every layer, the index into ``tokens`` it comes from (None for
        inserted Flatten layers and the output layer).

    Raises
    ------
    ValueError
        If a layer refuses its settings (e.g. an unknown ``activation``).

    Examples
    --------
    >>> from minicnn.placement import resolve_dropout
    >>> tokens = parse_layers(("conv4", "maxpool", "dense8"))
    >>> layers, origin = build_layers(tokens, resolve_dropout(tokens), n_outputs=3)
    >>> [type(layer).__name__ for layer in layers]
    ['Conv2D', 'MaxPool2D', 'Dropout', 'Flatten', 'Dense', 'Dense']
    >>> origin
    [0, 1, 1, None, 2, None]
    """
    options = _options(kernel_size, padding, pool_size, activation, batch_norm)
    by_position = {spec.after: spec for spec in specs}
    layers, origin = [], []
    flat = False
    for token in tokens:
        if LAYER_KINDS[token.kind].input == "vector" and not flat:
            layers.append(Flatten())
            origin.append(None)
        spec = by_position.get(token.index)
        dropout = None
        if spec is not None:
            dropout = (SpatialDropout2D if spec.kind == "spatial" else Dropout)(spec.rate, scaling=dropout_scaling)
        block = LAYER_KINDS[token.kind].build(token, options, dropout)
        flat = flat or token.output == "vector"
        layers.extend(block)
        origin.extend([token.index] * len(block))
    if not flat:
        layers.append(Flatten())
        origin.append(None)
    layers.append(Dense(n_outputs))
    origin.append(None)
    return layers, origin


def build_network(tokens, specs, *, n_outputs, input_shape, rng, backend, **options):
    """Create and build a :class:`~minicnn.network.Sequential` for per-sample NHWC ``input_shape``.

    Parameters
    ----------
    tokens, specs, n_outputs, **options
        As for :func:`build_layers`.
    input_shape : tuple of int
        Per-sample ``(height, width, channels)``.
    rng : numpy.random.Generator
        Initializes the weights and keys the dropout masks.
    backend : str or Backend
        See :func:`minicnn.backend.get_backend`.

    Returns
    -------
    network : Sequential
    origin : list of int or None
        As for :func:`build_layers`.

    Raises
    ------
    ValueError
        Layer-geometry errors (a kernel or pool that does not fit), re-raised
        naming the input shape and the layer token.
    """
    layers, origin = build_layers(tokens, specs, n_outputs=n_outputs, **options)
    network = Sequential(layers, backend=backend)
    try:
        network.build(input_shape, rng=rng)
    except (ValueError, MemoryError) as exc:
        bad = next((i for i, layer in enumerate(layers) if layer.output_shape is None), None)
        where = ""
        if bad is not None and origin[bad] is not None:
            where = f" at layers[{origin[bad]}]={tokens[origin[bad]].text!r}"
        if isinstance(exc, MemoryError):   # e.g. a token with a huge number of units
            weights = weight_count(tokens, input_shape, n_outputs, **options)
            raise MemoryError(f"The network does not fit in memory{where} ({weights:,} weights for images of "
                              f"shape {tuple(input_shape)}): {exc}. Use fewer units or smaller kernels.") from exc
        if isinstance(exc, WindowLimitError):   # the layer's message already says what to change
            raise ValueError(f"The network does not fit images of shape (height, width, channels)="
                             f"{tuple(input_shape)}{where}: {exc}.") from exc
        raise ValueError(f"The network does not fit images of shape (height, width, channels)={tuple(input_shape)}"
                         f"{where}: {exc}. Use padding='same', fewer pooling layers, or set input_shape.") from exc
    return network, origin


def network_options(model):
    """The layer options (keyword arguments of :func:`build_layers`) held by ``model``'s parameters."""
    return {"kernel_size": model.kernel_size, "padding": model.padding, "pool_size": model.pool_size,
            "activation": model.activation, "batch_norm": model.batch_norm,
            "dropout_scaling": model.dropout_scaling}


def network_for(model, tokens, specs, n_outputs, rng):
    """The network ``model``'s parameters describe, built for its fitted ``input_shape_``.

    ``model`` is an estimator or a :class:`~minicnn.predictor.Predictor` (anything with
    those attributes).
    """
    network, _ = build_network(tokens, specs, n_outputs=n_outputs, input_shape=model.input_shape_, rng=rng,
                               backend=model.backend, **network_options(model))
    return network
