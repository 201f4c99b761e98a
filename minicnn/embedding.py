"""Embeddings: the output of one layer of a fitted network, flattened to 2-D (``transform`` of every face).

The default layer is the penultimate one: the layer feeding the output layer
(the features a downstream model sees, as in skorch's or Keras' feature
extractors). A layer is chosen by its network layer index (the row number of
``summary()``, which counts the layers inside blocks too; negative counts
from the end) or by its name: Keras' convention, the snake-case class name,
suffixed ``_1``, ``_2``, ... for the second, third ... layer of that class
(``"conv2d"``, ``"conv2d_1"``, ``"max_pool2d"``, ``"flatten"``, ``"dense"``,
``"dense_1"``, ``"residual"``). Only top-level layers can be chosen: a
layer inside a block has no output of its own.
NumPy only (the :class:`~minicnn.predictor.Predictor` uses it without scikit-learn).
"""

import numbers
import re

import numpy as np

from .backend import get_backend
from ._predict import PREDICT_BATCH, _finite, warn_if_no_dropout
from .threads import kernel_thread_limits


def _name(layer):
    return re.sub(r"(?<!^)(?=[A-Z][a-z])", "_", type(layer).__name__).lower()


def layer_names(network):
    """Keras-style names of every layer of ``network``, numbered as ``summary()`` numbers them.

    One name per layer of :meth:`~minicnn.network.Sequential.descendants`
    (the layers inside a block included, so index ``i`` of this list is
    network layer ``i`` of ``summary()``): the snake-case class name,
    suffixed ``_1``, ``_2`` ... for the second, third ... layer of that class.

    Examples
    --------
    >>> from minicnn.network import Sequential
    >>> from minicnn.layers import Dense, Flatten
    >>> layer_names(Sequential([Flatten(), Dense(4), Dense(2)]))
    ['flatten', 'dense', 'dense_1']
    """
    seen, names = {}, []
    for layer in network.descendants():
        base = _name(layer)
        count = seen.get(base, 0)
        seen[base] = count + 1
        names.append(base if count == 0 else f"{base}_{count}")
    return names


def _stages(network):
    """``{network layer index: position in network.layers}`` of the top-level layers (the ones a prefix ends at)."""
    top = {id(layer): position for position, layer in enumerate(network.layers)}
    return {i: top[id(layer)] for i, layer in enumerate(network.descendants()) if id(layer) in top}


def resolve_layer(network, layer):
    """The position in ``network.layers`` of ``layer`` (None: the penultimate top-level layer, an int or a name).

    An int is a network layer index as ``summary()`` numbers the rows
    (negative counts from the end), a str one of :func:`layer_names`. Only
    a top-level layer can be chosen: a layer inside a block (a residual
    block's convolutions, a separable convolution's depthwise part) has no
    output of its own in the network's forward pass.

    Raises
    ------
    ValueError
        Naming the ``layer`` parameter, the value received and the valid
        indices and names, for a layer that does not exist, a layer inside
        a block, or a value that is neither None, an int nor a str (the
        output layer is allowed: its raw outputs, logits for a classifier).
    """
    names = layer_names(network)
    stages = _stages(network)
    n, positions = len(names), len(network.layers)
    if layer is None:
        return positions - 2 if positions >= 2 else positions - 1
    index = None
    if isinstance(layer, numbers.Integral) and not isinstance(layer, (bool, np.bool_)):
        if -n <= layer < n:
            index = int(layer) % n
    elif isinstance(layer, str) and layer in names:
        index = names.index(layer)
    choices = ", ".join(f"{i}={names[i]!r}" for i in stages)
    if index is None:
        raise ValueError(f"Expected layer to be None (the penultimate layer), an int in [{-n}, {n - 1}] (a network "
                         f"layer index of summary()) or a layer name; the layers whose outputs can be taken are "
                         f"{choices}. Received: layer={layer!r}")
    if index not in stages:
        block = max(i for i in stages if i < index)
        raise ValueError(f"Network layer {index} ({names[index]!r}) is inside the block "
                         f"{block} ({names[block]!r}): a layer inside a block has no output of its own in the "
                         f"network; choose a top-level layer: {choices}. Received: layer={layer!r}")
    return stages[index]


def check_output_container(estimator, network, index, layer):
    """Refuse a non-default ``layer`` when scikit-learn's ``set_output`` asks for a DataFrame (estimator only).

    ``set_output(transform="pandas")`` (or the global ``transform_output``
    config) labels ``transform``'s columns with ``get_feature_names_out()``,
    which names the default layer's features; another layer's columns would
    be mislabelled or fail inside pandas with a length mismatch.

    Raises
    ------
    ValueError
        Naming ``layer``, the value received and the output container.
    """
    if index == resolve_layer(network, None):
        return
    from sklearn.utils._set_output import _get_output_config

    container = _get_output_config("transform", estimator)["dense"]
    if container != "default":
        raise ValueError(f"transform(layer={layer!r}) gives the features of another layer than the default one, but "
                         f"set_output(transform={container!r}) labels the columns with get_feature_names_out(), the "
                         f"names of the default layer's features. Call set_output(transform='default') (or "
                         f"sklearn.set_config(transform_output='default')) to take another layer. Received: "
                         f"layer={layer!r}")


def embed(network, images, index, *, backend, n_threads, mc_samples=None, mc_offset=0, batch_size=PREDICT_BATCH):
    """Outputs of ``network.layers[index]`` for ``images``, flattened per sample (channels-last order).

    Parameters
    ----------
    network : Sequential
    images : ndarray (n, h, w, c), C-contiguous, of the network's dtype
    index : int
        From :func:`resolve_layer`.
    backend : str
    n_threads : int or None
    mc_samples : int or None
        With ``k``, the mean of ``k`` Monte-Carlo dropout passes (dropout
        active in the layers up to ``index``; masks keyed as in
        :func:`minicnn._predict.batched_outputs`).
    mc_offset : int
    batch_size : int

    Returns
    -------
    ndarray (n, n_features), float64
        ``n_features`` is the product of the layer's output shape.
    """
    layers = network.layers[:index + 1]
    if mc_samples is not None:
        warn_if_no_dropout(network, layers)
    width = int(np.prod(layers[-1].output_shape))
    out = np.empty((len(images), width), dtype=np.float64)
    kernels = get_backend(backend)
    work = min(len(images), batch_size) * network.forward_work_per_sample()
    with kernel_thread_limits(n_threads, work, kernels):
        for batch, start in enumerate(range(0, len(images), batch_size)):
            xb = images[start:start + batch_size]
            with network.lock:
                if network.backend != backend:
                    network.set_backend(backend)
                if mc_samples is None:
                    out[start:start + len(xb)] = _prefix(layers, xb, None).reshape(len(xb), -1)
                    continue
                total = np.zeros((len(xb), width))
                for k in range(mc_samples):
                    total += _prefix(layers, xb, mc_offset + batch * mc_samples + k).reshape(len(xb), -1)
            out[start:start + len(xb)] = total / mc_samples
    return _finite(out, images, network)


def _prefix(layers, x, mc_pass):
    for layer in layers:
        x = layer.forward(x, False) if mc_pass is None else layer.sample(x, mc_pass)   # a block samples its inner dropout
    return x
