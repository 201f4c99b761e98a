"""BatchNorm folded into the layer before it (inference), and fused with the Activation after it (every pass).

At inference a :class:`~minicnn.layers.BatchNorm` is a per-channel affine map,
``y = z * s + t`` with ``s = gamma / sqrt(running_var + eps)`` and
``t = beta - running_mean * s``. After a :class:`~minicnn.layers.Conv2D`,
:class:`~minicnn.layers.DepthwiseConv2D` or :class:`~minicnn.layers.Dense`
(whose weights' last axis is the output channel) and without an activation of its own, it folds into that layer:
``w' = w * s``, ``b' = b * s + t``; an :class:`~minicnn.layers.Activation` right
after folds into the layer's fused bias + activation. Three passes over the
feature map become one (ONNX Runtime's Conv + BatchNormalization fusion does the
same when it loads a graph). The folded weights are computed in float64 and
cast, so the outputs differ from the unfolded pass by rounding only.

A BatchNorm followed by an :class:`~minicnn.layers.Activation` that is not
folded (every training pass) runs the activation inside its own kernels
(:class:`NormActivation`): one pass over the map less forward, and backward.

The folded copy is refreshed whenever one of its sources (weights, bias,
``gamma``, ``beta``, running statistics) differs from the values it was folded
from: the check compares the parameters (a few thousand numbers), never the data.
"""

import numpy as np

from .activation import Activation
from .conv import Conv2D
from .dense import Dense
from .depthwise import DepthwiseConv2D
from .normalization import BatchNorm

#: Layers a following BatchNorm folds into (their weights' last axis is the output channel), when their own
#: activation is the identity: ``BatchNorm(f(conv(x)))`` for another ``f`` is no affine map of ``conv(x)``.
FOLDABLE = (Conv2D, DepthwiseConv2D, Dense)


def _foldable(layer):
    return isinstance(layer, FOLDABLE) and layer.activation == "identity"


class FoldedBatchNorm:
    """Inference stand-in for ``layer``, ``norm`` (and ``activation``): ``layer`` with folded weights.

    Not a layer of the tree (training, gradients and persistence see the
    three original layers); composites run it in their inference passes.

    Parameters
    ----------
    layer : Conv2D, DepthwiseConv2D or Dense
    norm : BatchNorm
        The layer right after ``layer``.
    activation : Activation or None
        The layer right after ``norm``, fused into the folded layer.
    """

    def __init__(self, layer, norm, activation=None):
        self.layer, self.norm, self.activation = layer, norm, activation
        self._snapshot = self._folded = None

    def _sources(self):
        layer, norm = self.layer, self.norm
        return (layer.params["w"], layer.params.get("b"), norm.params["gamma"], norm.params["beta"],
                norm.running_mean, norm.running_var)

    @staticmethod
    def _key(sources):
        # the shape and bytes of each source, compared with those folded from as one tuple: a byte compare of
        # a few kB costs ~1 us where np.array_equal costs ~5-14 us, and one tuple compare in C replaces a
        # generator of per-source tests (measured on a MobileNet-style fold, 6 sources: 24 -> 13 us per call
        # on a loaded machine); stricter than a value compare (-0.0 vs 0.0 refolds), never staler
        return tuple([None if a is None else (a.shape, a.tobytes()) for a in sources])

    def folded(self):
        """``layer`` with the folded weights of the current sources (refolded when one changed)."""
        sources = self._sources()
        activation = self.activation
        # the settings read at each fold too: a changed eps or fused activation refolds
        key = (self._key(sources), self.norm.eps, None if activation is None else (activation.act, activation.alpha))
        if key != self._snapshot:
            self._folded = self._fold(*sources)
            self._snapshot = key
        self._folded.kernels = self.layer.kernels
        return self._folded

    def _fold(self, w, b, gamma, beta, mean, var):
        layer, dtype = self.layer, self.layer.dtype
        s = gamma.astype(np.float64) / np.sqrt(var.astype(np.float64) + self.norm.eps)
        shift = (0.0 if b is None else b.astype(np.float64)) - mean
        folded = object.__new__(type(layer))
        folded.__dict__.update(layer.__dict__)
        folded._buffers, folded._views, folded.grads = {}, {}, {}
        folded.params = {"w": (w * s).astype(dtype), "b": (shift * s + beta).astype(dtype)}
        for value in folded.params.values():   # new arrays that nothing changes: a layer may cache what it derives
            value.flags.writeable = False
        if self.activation is not None:
            folded.activation, folded.alpha, folded.act = (self.activation.activation, self.activation.alpha,
                                                           self.activation.act)
        return folded

    def forward(self, x, training=False):
        """``activation(norm(layer(x)))`` at inference (``training`` must be False)."""
        if training:
            raise ValueError("FoldedBatchNorm runs inference passes only; received training=True")
        return self.folded().forward(x, False)

    def fuses_with(self, following):
        """Whether the folded layer and ``following`` run as one kernel (see ``Conv2D.fuses_with``)."""
        return getattr(self.layer, "fuses_with", lambda _: False)(following)

    def forward_pooled(self, x):
        """The folded layer's fused forward + 2x2 max-pool (when :meth:`fuses_with` said so)."""
        return self.folded().forward_pooled(x)


class NormActivation:
    """Stand-in for ``norm`` then ``activation``: the BatchNorm kernels with the activation fused.

    Parameters
    ----------
    norm : BatchNorm
    activation : Activation
        The layer right after ``norm``.
    """

    def __init__(self, norm, activation):
        self.norm, self.activation = norm, activation

    def forward(self, x, training=False):
        """``activation(norm(x))`` in one pass."""
        return self.norm.forward(x, training, act=self.activation.act, alpha=self.activation.alpha)

    def backward(self, dy):
        """Gradient of both through the BatchNorm's backward (the activation's derivative from its output)."""
        return self.norm.backward(dy)


def fold_batchnorm(layers, training=False):
    """``layers`` with BatchNorm folded and fused: the layers a pass runs, in order.

    At inference each foldable layer, its BatchNorm (and an Activation after it) become one
    :class:`FoldedBatchNorm`; in either pass a BatchNorm followed by an Activation (not folded)
    becomes one :class:`NormActivation`.

    Parameters
    ----------
    layers : list of Layer
        Consecutive layers of a chain.
    training : bool, default=False
        Plan a training pass (no folding: batch statistics and gradients need the layers).

    Returns
    -------
    list
        Layers and stand-ins with the ``forward`` (and, for training, ``backward``) of the layers they replace.
    """
    out, i = [], 0

    def at(k, kind):
        return k < len(layers) and isinstance(layers[k], kind)

    while i < len(layers):
        layer = layers[i]
        if not training and _foldable(layer) and at(i + 1, BatchNorm) and layer.dtype == layers[i + 1].dtype:
            activation = layers[i + 2] if at(i + 2, Activation) else None
            out.append(FoldedBatchNorm(layer, layers[i + 1], activation))
            i += 2 if activation is None else 3
        elif isinstance(layer, BatchNorm) and at(i + 1, Activation):
            out.append(NormActivation(layer, layers[i + 1]))
            i += 2
        else:
            out.append(layer)
            i += 1
    return out
