"""Composite layers: a chain of sublayers, and a residual block (``act(main(x) + shortcut(x))``).

A composite holds no parameters of its own: its sublayers do, and everything
that visits layers reaches them through :meth:`~minicnn.layers.Layer.walk`
(thinc's ``chain`` / ``residual`` combinators, Keras's functional blocks).
"""

import numpy as np

from .base import Layer, activation_code
from .folding import FoldedBatchNorm, fold_batchnorm
from .separable import fuse_separable


class Composite(Layer):
    """A layer made of sublayers; ``needs_input_grad`` passes on to the sublayers that see its input.

    Subclasses implement ``forward``, ``backward`` and ``_build`` (which builds
    the sublayers with :meth:`_build_sublayer`), and say which sublayers read
    the composite's input (:meth:`_entries`).

    Parameters
    ----------
    layers : list of Layer
    """

    def __init__(self, layers):
        self.layers = list(layers)
        super().__init__()
        for layer in self.layers:
            if not isinstance(layer, Layer):
                raise TypeError(f"{type(self).__name__} holds Layer instances; received {type(layer).__name__}")

    def sublayers(self):
        return tuple(self.layers)

    def _entries(self):
        """The sublayers that receive the composite's own input."""
        return self.layers[:1]

    @property
    def needs_input_grad(self):
        return self._needs_input_grad

    @needs_input_grad.setter
    def needs_input_grad(self, value):
        self._needs_input_grad = bool(value)
        for layer in self._entries() if "layers" in self.__dict__ else ():
            layer.needs_input_grad = value

    def _build_sublayer(self, layer, shape, rng):
        return layer.build(shape, dtype=self.dtype, rng=rng, backend=self.kernels)

    def describe(self):
        return f"{len(self.layers)} layers"


class Chain(Composite):
    """Sublayers applied in order: the simplest composite (a :class:`~minicnn.network.Sequential` is one).

    Input shape
    -----------
    ``(N, *input_shape)``: what the first sublayer accepts.

    Output shape
    ------------
    ``(N, *output_shape)``: what the last sublayer returns.

    Parameters
    ----------
    layers : list of Layer
    name : str, optional
        Shown by ``summary()`` (e.g. the layer token the chain was built from).

    Examples
    --------
    >>> import numpy as np
    >>> from minicnn.layers import Chain, Conv2D
    >>> from minicnn.backend import get_backend
    >>> chain = Chain([Conv2D(4, 3, padding="same"), Conv2D(2, 1)])
    >>> chain.build((5, 5, 3), dtype=np.float32, rng=np.random.default_rng(0), backend=get_backend("numpy"))
    (5, 5, 2)
    >>> chain.n_params, [type(layer).__name__ for layer in chain.walk()]
    (122, ['Chain', 'Conv2D', 'Conv2D'])
    """

    def __init__(self, layers, name=None):
        super().__init__(layers)
        self.name = name

    def _build(self, input_shape, rng):
        shape = input_shape
        self._inference = self._training = None
        for i, layer in enumerate(self.layers):
            shape = self._build_sublayer(layer, shape, rng)
            layer.needs_input_grad = self.needs_input_grad if i == 0 else True
        return shape

    def forward(self, x, training=False):
        for layer in self._pass_layers(training):
            x = layer.forward(x, training)
        return x

    def _pass_layers(self, training):
        """The layers of a pass, BatchNorm folded (inference) and fused with its activation (:mod:`.folding`); at
        inference a depthwise conv and the pointwise conv after it run as one step (:mod:`.separable`)."""
        name = "_training" if training else "_inference"
        plan = self.__dict__.get(name)
        if plan is None:
            plan = fold_batchnorm(self.layers, training)
            if not training and type(self) is Chain:
                # a depthwise-separable block's two convs in one pass (:mod:`.separable`); not in the network
                # itself (a Sequential), whose steps the reduced-precision lowering reads one by one
                plan = fuse_separable(plan)
            setattr(self, name, plan)
        return plan

    def _inference_layers(self):
        return self._pass_layers(False)

    def sample(self, x, pass_index):
        for layer in self.layers:
            x = layer.sample(x, pass_index)
        return x

    def backward(self, dy):
        for layer in reversed(self._pass_layers(True)):
            dy = layer.backward(dy)
        return dy

    def describe(self):
        name = getattr(self, "name", None)
        return name if name else super().describe()


class Residual(Composite):
    """``y = activation(main(x) + shortcut(x))``: a residual block (He et al. 2016), the activation after the add.

    The shortcut is the identity where ``main`` keeps the input shape, and
    the ``projection`` layer (a 1x1 convolution) where it changes channels or
    size (He et al.'s option B: projections only where dimensions change; a
    projection given for a block that keeps the shape is dropped at build).
    The gradient reaches the input through both paths and is summed. At
    inference, when the main path ends in a conv on the Winograd route (BatchNorm
    folded in, no activation of its own), the add and the activation run in that
    conv's epilogue (:meth:`~minicnn.layers.Conv2D.forward_add`): no separate pass.

    Input shape
    -----------
    ``(N, H, W, C)`` (any shape ``main`` accepts).

    Output shape
    ------------
    ``(N, *main.output_shape)``.

    Parameters
    ----------
    main : Layer
        The residual branch (e.g. a :class:`Chain` conv-(BN)-act-conv-(BN)).
    projection : Layer or None, default=None
        The shortcut where ``main`` changes the shape.
    activation : str, default="relu"
        Applied after the add.
    alpha : float, default=0.01
        Negative slope of leaky_relu.

    Raises
    ------
    ValueError
        At build, if ``main`` changes the shape and no ``projection`` (or one
        of another output shape) is given.

    Examples
    --------
    >>> import numpy as np
    >>> from minicnn.layers import Chain, Conv2D, Residual
    >>> from minicnn.backend import get_backend
    >>> block = Residual(Chain([Conv2D(3, 3, padding="same", activation="relu"), Conv2D(3, 3, padding="same")]))
    >>> block.build((6, 6, 3), dtype=np.float32, rng=np.random.default_rng(0), backend=get_backend("numpy"))
    (6, 6, 3)
    >>> block.forward(np.ones((2, 6, 6, 3), dtype=np.float32)).shape
    (2, 6, 6, 3)
    """

    def __init__(self, main, projection=None, activation="relu", alpha=0.01):
        super().__init__([main] if projection is None else [main, projection])
        self.activation, self.alpha = activation, alpha
        self.act = activation_code(activation, alpha)

    @property
    def main(self):
        """The residual branch."""
        return self.layers[0]

    @property
    def shortcut(self):
        """The projection of the skip path, or None (identity)."""
        return self.layers[1] if len(self.layers) > 1 else None

    def _entries(self):
        return self.layers

    def _build(self, input_shape, rng):
        main = tuple(self._build_sublayer(self.main, input_shape, rng))
        if main == tuple(input_shape):
            del self.layers[1:]   # identity shortcut
        elif self.shortcut is None:
            raise ValueError(f"Residual: the main path maps {tuple(input_shape)} to {main}; a block that changes "
                             f"the shape needs a projection shortcut")
        elif tuple(self._build_sublayer(self.shortcut, input_shape, rng)) != main:
            raise ValueError(f"Residual: the main path outputs {main} but the projection "
                             f"{self.shortcut.output_shape}")
        for layer in self._entries():
            layer.needs_input_grad = self.needs_input_grad
        self._zero_bias = np.zeros(main[-1], dtype=self.dtype)
        return main

    def _merge(self, x, a):
        """``activation(a + shortcut-path output)`` into the layer's output buffer."""
        C = a.shape[-1]
        z = self._buffer("z", a.shape)
        np.add(a, x, out=z)
        y = self._buffer("y", a.shape)
        self.kernels.bias_act_forward(y.reshape(-1, C), z.reshape(-1, C), self._zero_bias, self.act, self.alpha)
        self._y = y
        return y

    def forward(self, x, training=False):
        if not training:
            fused = self._fused_inference()
            if fused is not None:
                head, last = fused
                h = x
                for layer in head:
                    h = layer.forward(h, False)
                s = x if self.shortcut is None else self.shortcut.forward(x, False)
                self._y = None   # nothing kept for a backward pass
                return last.forward_add(h, s, self.act, self.alpha)
        a = self.main.forward(x, training)
        s = x if self.shortcut is None else self.shortcut.forward(x, training)
        return self._merge(s, a)

    def _fused_inference(self):
        """``(head, conv)`` when the inference pass may fuse the merge into the main path's last conv, else None.

        ``head`` is the main path's inference steps before its last one (BatchNorm folded,
        :mod:`.folding`); the last must be a conv (or one with its BatchNorm folded in) that
        :meth:`~minicnn.layers.Conv2D.adds_skip`: the add and the activation then run in that
        conv's epilogue (ONNX Runtime fuses the same Add + Relu into its Conv), one pass over
        the block's output less and no sum buffer. Decided per call (the backend may change).
        """
        main = self.main
        steps = main._inference_layers() if isinstance(main, Chain) else [main]
        if not steps:
            return None
        last = steps[-1]
        if isinstance(last, FoldedBatchNorm):
            if last.activation is not None:
                return None
            last = last.folded()
        adds = getattr(last, "adds_skip", None)
        if adds is None or not adds() or last.dtype != self.dtype:
            return None
        return list(steps[:-1]), last

    def sample(self, x, pass_index):
        a = self.main.sample(x, pass_index)
        s = x if self.shortcut is None else self.shortcut.sample(x, pass_index)
        return self._merge(s, a)

    def backward(self, dy):
        if getattr(self, "_y", None) is None:
            raise RuntimeError("Residual.backward needs a forward pass of the same batch with training=True first")
        C = dy.shape[-1]
        dz = self._buffer("dz", dy.shape)
        db = self._buffer("db", (C,))
        self.kernels.bias_act_backward(dz.reshape(-1, C), db, dy.reshape(-1, C), self._y.reshape(-1, C),
                                       self.act, self.alpha)
        d_main = self.main.backward(dz)
        d_skip = dz if self.shortcut is None else self.shortcut.backward(dz)
        if not self.needs_input_grad:
            return None
        dx = self._buffer("dx", d_main.shape)
        np.add(d_main, d_skip, out=dx)
        return dx

    def describe(self):
        skip = "identity" if self.shortcut is None else "projection"
        return f"{skip} shortcut, activation={self.activation!r}"
