"""Embeddings: the output of one layer of a fitted network, flattened to 2-D (``transform`` of every face).

The default layer is the penultimate one: the layer feeding the output layer
(the features a downstream model sees, as in skorch's or Keras' feature
extractors). A layer is chosen by its index in the network (as
``summary()`` numbers them; negative counts from the end) or by its name:
Keras' convention, the snake-case class name, suffixed ``_1``, ``_2``, ...
for the second, third ... layer of that class (``"conv2d"``, ``"conv2d_1"``,
``"max_pool2d"``, ``"flatten"``, ``"dense"``, ``"dense_1"``).
NumPy only (the :class:`~minicnn.predictor.Predictor` uses it without scikit-learn).
"""

import numbers
import re

import numpy as np

from .backend import get_backend
from ._predict import PREDICT_BATCH, _finite, warn_if_no_dropout
from .threads import kernel_thread_limits


def layer_names(network):
    """Keras-style names of ``network.layers``, in order.

    Examples
    --------
    >>> from minicnn.network import Sequential
    >>> from minicnn.layers import Dense, Flatten
    >>> layer_names(Sequential([Flatten(), Dense(4), Dense(2)]))
    ['flatten', 'dense', 'dense_1']
    """
    seen, names = {}, []
    for layer in network.layers:
        base = re.sub(r"(?<!^)(?=[A-Z][a-z])", "_", type(layer).__name__).lower()
        count = seen.get(base, 0)
        seen[base] = count + 1
        names.append(base if count == 0 else f"{base}_{count}")
    return names


def resolve_layer(network, layer):
    """The index in ``network.layers`` of ``layer`` (None: the penultimate layer, an int index or a name).

    Raises
    ------
    ValueError
        Naming the ``layer`` parameter, the value received and the valid
        indices and names, for a layer that does not exist (the output layer
        is allowed: its raw outputs, logits for a classifier).
    """
    n = len(network.layers)
    names = layer_names(network)
    if layer is None:
        return n - 2 if n >= 2 else n - 1
    if isinstance(layer, numbers.Integral) and not isinstance(layer, bool):
        if -n <= layer < n:
            return int(layer) % n
    elif isinstance(layer, str) and layer in names:
        return names.index(layer)
    raise ValueError(f"Expected layer to be None (the penultimate layer), an int in [{-n}, {n - 1}] or one of the "
                     f"layer names {names}. Received: layer={layer!r}")


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
    if mc_samples is not None:
        warn_if_no_dropout(network)
    layers = network.layers[:index + 1]
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
    return _finite(out, images)


def _prefix(layers, x, mc_pass):
    for layer in layers:
        x = layer.sample(x, mc_pass) if (mc_pass is not None and layer.stochastic) else layer.forward(x, False)
    return x
