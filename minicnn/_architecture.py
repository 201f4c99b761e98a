"""Build the engine's layer list from parsed tokens and dropout specs (used by the estimators and io)."""

from . import placement
from .layers import (Activation, AvgPool2D, BatchNorm, Conv2D, Dense, Dropout, Flatten, GlobalAvgPool2D,
                     MaxPool2D, SpatialDropout2D)
from .network import Sequential


def _block(token, *, kernel_size, padding, pool_size, activation, batch_norm):
    """The engine layers of one hidden token (a conv/dense with its BatchNorm and activation)."""
    if token.kind == "conv":
        kernel = token.kernel_size or kernel_size
        if batch_norm:
            return [Conv2D(token.units, kernel, padding=padding, use_bias=False), BatchNorm(),
                    Activation(activation)]
        return [Conv2D(token.units, kernel, padding=padding, activation=activation)]
    if token.kind == "dense":
        if batch_norm:
            return [Dense(token.units, use_bias=False), BatchNorm(), Activation(activation)]
        return [Dense(token.units, activation=activation)]
    if token.kind == "maxpool":
        return [MaxPool2D(pool_size, padding=padding)]
    if token.kind == "avgpool":
        return [AvgPool2D(pool_size, padding=padding)]
    return [GlobalAvgPool2D()]


def build_layers(tokens, specs, *, n_outputs, kernel_size=3, padding="valid", pool_size=2, activation="relu",
                 batch_norm=False, dropout_scaling="inverted"):
    """The full layer list: hidden blocks, dropouts where ``specs`` say, Flattens, the output Dense.

    Parameters
    ----------
    tokens : tuple of LayerToken
        From :func:`minicnn.placement.parse_layers`.
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

    Examples
    --------
    >>> from minicnn.placement import parse_layers, resolve_dropout
    >>> tokens = parse_layers(("conv4", "maxpool", "dense8"))
    >>> layers, origin = build_layers(tokens, resolve_dropout(tokens), n_outputs=3)
    >>> [type(layer).__name__ for layer in layers]
    ['Conv2D', 'MaxPool2D', 'SpatialDropout2D', 'Flatten', 'Dense', 'Dense']
    >>> origin
    [0, 1, 1, None, 2, None]
    """
    by_position = {spec.after: spec for spec in specs}
    layers, origin = [], []
    flat = False
    for token in tokens:
        if token.kind == "dense" and not flat:
            layers.append(Flatten())
            origin.append(None)
        block = _block(token, kernel_size=kernel_size, padding=padding, pool_size=pool_size,
                       activation=activation, batch_norm=batch_norm)
        flat = flat or token.output == "vector"
        spec = by_position.get(token.index)
        if spec is not None:
            kind = SpatialDropout2D if spec.kind == "spatial" else Dropout
            block.append(kind(spec.rate, scaling=dropout_scaling))
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

    Layer-geometry errors (a kernel or pool that does not fit) are re-raised
    as ``ValueError`` naming the input shape and the layer tokens.
    """
    layers, origin = build_layers(tokens, specs, n_outputs=n_outputs, **options)
    network = Sequential(layers, backend=backend)
    try:
        network.build(input_shape, rng=rng)
    except ValueError as exc:
        bad = next((i for i, layer in enumerate(layers) if layer.output_shape is None), None)
        where = ""
        if bad is not None and origin[bad] is not None:
            where = f" at layers[{origin[bad]}]={tokens[origin[bad]].text!r}"
        raise ValueError(f"The network does not fit images of shape (height, width, channels)={tuple(input_shape)}"
                         f"{where}: {exc}. Use padding='same', fewer pooling layers, or set input_shape.") from exc
    return network, origin


def plan(model):
    """Parse ``model.layers`` and place dropout from its ``dropout*`` parameters: ``(tokens, specs)``.

    ``model`` is an estimator or a :class:`~minicnn.predictor.Predictor` (anything with those
    attributes); errors name the bad parameter.
    """
    tokens = placement.parse_layers(model.layers)
    return tokens, placement.resolve_dropout(tokens, model.dropout, model.dropout_rate, model.dropout_kind)


def network_for(model, tokens, specs, n_outputs, rng):
    """The network ``model``'s parameters describe, built for its fitted ``input_shape_``."""
    network, _ = build_network(
        tokens, specs, n_outputs=n_outputs, input_shape=model.input_shape_, rng=rng, backend=model.backend,
        kernel_size=model.kernel_size, padding=model.padding, pool_size=model.pool_size,
        activation=model.activation, batch_norm=model.batch_norm, dropout_scaling=model.dropout_scaling)
    return network
