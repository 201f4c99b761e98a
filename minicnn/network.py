"""Sequential network: the root of a layer tree, with parameters, backend, dropout seeds and a summary.

A network is a tree: :class:`Sequential` is a :class:`~minicnn.layers.Chain`
(the simplest composite) whose sublayers may be composites themselves
(residual blocks, separable convolutions). Every method here that visits
layers does it through :meth:`~minicnn.layers.Layer.walk`.
"""

import math
import threading

import numpy as np

from .backend import get_backend
from .backend.levels import describe as describe_isa
from .layers.base import Uninitialized
from .layers.composite import Chain
from ._replay import forward as replayed_forward


class Sequential(Chain):
    """A stack of layers applied in order (the root of the layer tree).

    Parameters
    ----------
    layers : list of Layer
    backend : str or Backend, default="auto"
        Kernel backend (see :func:`minicnn.backend.get_backend`).
    dtype : numpy dtype, default=np.float32

    Attributes
    ----------
    lock : threading.Lock
        Held by callers that run the network from several threads (layers
        reuse their workspaces, so one network runs one batch at a time).

    Examples
    --------
    >>> import numpy as np
    >>> from minicnn.layers import Conv2D, MaxPool2D, Flatten, Dense
    >>> net = Sequential([Conv2D(4, 3, activation="relu"), MaxPool2D(2), Flatten(), Dense(10)],
    ...                  backend="numpy")
    >>> net.build((8, 8, 1), rng=np.random.default_rng(0))
    (10,)
    >>> net.forward(np.zeros((2, 8, 8, 1), dtype=np.float32)).shape
    (2, 10)
    """

    def __init__(self, layers, backend="auto", dtype=np.float32):
        super().__init__(layers)
        self.needs_input_grad = False   # the network input is data: its first layers skip dx
        self.backend = backend
        self.dtype = np.dtype(dtype)
        self.lock = threading.Lock()

    def descendants(self):
        """Every layer of the tree below the network, depth first (:meth:`walk` without the network itself).

        The position of a layer in this list is its network layer index (dropout
        masks are keyed by it, model files number their arrays by it).
        """
        walk = self.walk()
        next(walk)
        return list(walk)

    @property
    def kernels(self):
        """The :class:`~minicnn.backend.Backend` every kernel call of this network goes to.

        ``backend`` is what was asked for (a name or a Backend); ``kernels`` is
        what it resolves to. Layers, the loss and the optimizer all run on it.

        Raises
        ------
        ValueError
            If ``backend`` is not a known backend name.
        ImportError
            If the named backend cannot be imported (e.g. the Cython kernels
            are not built).
        """
        return self.backend if not isinstance(self.backend, str) else get_backend(self.backend)

    def build(self, input_shape, rng):
        """Create every layer's parameters for per-sample ``input_shape``.

        Parameters
        ----------
        input_shape : tuple of int
            Per-sample NHWC ``(height, width, channels)`` or ``(features,)``.
        rng : numpy.random.Generator
            Initializes the weights and draws the seed that keys every dropout mask.

        Returns
        -------
        tuple of int
            The per-sample output shape.

        Raises
        ------
        ValueError
            If a layer does not fit the shape it receives (the layer says which).
        ImportError
            If the network's backend cannot be imported.
        """
        kernels = self.kernels
        seed = int(rng.integers(0, 2**63 - 1))
        self.input_shape = tuple(input_shape)
        self._forward_work = self._plan = None
        self._layer_kernels = kernels
        self.output_shape = self._build(self.input_shape, rng)
        for index, layer in enumerate(self.descendants()):
            if layer.stochastic:
                layer.seed, layer.layer_id = seed, index
        self._pack_parameters(fill=not isinstance(rng, Uninitialized))
        return self.output_shape

    def _build_sublayer(self, layer, shape, rng):
        return layer.build(shape, dtype=self.dtype, rng=rng, backend=self._layer_kernels)

    def _pack_parameters(self, fill=True):
        """Move every parameter and gradient into one flat buffer each; layers keep views.

        The optimizer then updates the whole network with one fused kernel
        call (:meth:`flat_params_and_grads`) instead of ~10 NumPy passes per
        array. Values are copied in, so this is safe to repeat (e.g. after
        unpickling, when the views became separate arrays). ``fill=False``
        (a build with the ``Uninitialized`` rng, whose parameters are read
        from a file next and whose gradients are zeros): nothing is copied.
        """
        entries = [(layer, key) for layer in self.walk() for key in sorted(layer.params)]
        total = sum(layer.params[key].size for layer, key in entries)
        flat_p = np.empty(total, dtype=self.dtype)
        flat_g = np.zeros(total, dtype=self.dtype)
        views, offset = [], 0
        for layer, key in entries:
            param, grad = layer.params[key], layer.grads[key]
            size = param.size
            p_view = flat_p[offset:offset + size].reshape(param.shape)
            g_view = flat_g[offset:offset + size].reshape(param.shape)
            if fill:
                p_view[...] = param
                g_view[...] = grad
            layer.params[key], layer.grads[key] = p_view, g_view
            views.append((layer.params, layer.grads, key, p_view, g_view))
            offset += size
        self._flat = (flat_p, flat_g, views)

    def flat_params_and_grads(self):
        """``[(all_params, all_grads)]``: one flat pair viewing every parameter (see ``_pack_parameters``).

        If a layer's parameter array was replaced since packing, the buffers
        are rebuilt from the current values first.
        """
        flat = getattr(self, "_flat", None)
        if flat is None or any(params.get(key) is not p or grads.get(key) is not g
                               for params, grads, key, p, g in flat[2]):
            self._pack_parameters()
            flat = self._flat
        return [(flat[0], flat[1])]

    def set_backend(self, backend):
        """Switch kernels without touching parameters (e.g. after unpickling).

        Parameters
        ----------
        backend : {"auto", "numpy", "numba", "cython"} or Backend

        Raises
        ------
        ValueError
            If ``backend`` is not a known backend name.
        ImportError
            If the backend cannot be imported.
        """
        self.backend = backend
        self._plan = None
        kernels = self.kernels
        for layer in self.descendants():
            layer.kernels = kernels

    def forward(self, x, training=False, mc_pass=None):
        """Run the layers in order.

        Parameters
        ----------
        x : ndarray (N, *input_shape), C-contiguous, of the network's dtype
        training : bool
            Training mode: dropout active, batch statistics in BatchNorm.
        mc_pass : int or None
            Monte-Carlo dropout: with ``training=False``, keep dropout active
            with the masks of pass ``mc_pass`` (inference everywhere else).

        Returns
        -------
        ndarray (N, *output_shape)
            The last layer's output buffer: copy it to keep it past the next call.

        Raises
        ------
        RuntimeError
            Where a layer detects a misuse (e.g. a pass before :meth:`build`).
        """
        if training:
            self._training_pass = True
            return super().forward(x, True)
        # a replayed pass runs no layer method, so no layer can tell backward that an inference pass came last
        self._training_pass = False
        if mc_pass is None:   # the layers' kernel calls, recorded per input shape (:mod:`minicnn._replay`)
            return replayed_forward(self, x)
        return self.sample(x, mc_pass)

    def _inference_plan(self):
        """``[(layer, fused)]`` for an inference pass: ``fused`` runs ``layer`` and the next one as one kernel.

        A conv followed by a 2x2 max-pool fuses when the conv says so
        (``Conv2D.fuses_with``: the Winograd route with the fused kernel in
        the backend); the pool is then skipped. A BatchNorm (and the
        Activation after it) is folded into the conv or dense layer before it
        first (:func:`minicnn.layers.folding.fold_batchnorm`). Planned once per
        build and backend.
        """
        plan = self.__dict__.get("_plan")
        if plan is None:
            plan, i, layers = [], 0, self._inference_layers()
            while i < len(layers):
                layer = layers[i]
                following = layers[i + 1] if i + 1 < len(layers) else None
                fused = following is not None and getattr(layer, "fuses_with", lambda _: False)(following)
                plan.append((layer, fused))
                i += 2 if fused else 1
            self._plan = plan
        return plan

    def forward_work_per_sample(self):
        """Upper bound of the elementary operations one kernel of :meth:`forward` does per sample.

        The sum over layers of input size + output size * (fan-in of a weight,
        or pooling window): every kernel's own measure of its work (the one its
        OpenMP team size is chosen by, see ``kernels/_parallel.pxi``) is below it.
        :func:`minicnn.threads.kernel_thread_limits` uses it to skip setting
        thread counts for a batch too small for any kernel to go parallel.
        """
        work = self.__dict__.get("_forward_work")
        if work is not None:
            return work
        work = 0
        for layer in self.descendants():
            if layer.sublayers():   # a composite's work is its sublayers' (plus its merge, counted here)
                work += math.prod(layer.output_shape) * (len(layer.sublayers()) + 1)
                continue
            weights = layer.params.get("w")
            fan_in = weights.size // weights.shape[-1] if weights is not None and weights.size else 0
            window = math.prod(getattr(layer, "pool_size", (1,)))
            work += math.prod(layer.input_shape) + math.prod(layer.output_shape) * (fan_in + window)
        self._forward_work = work
        return work

    def training_work(self, batch_size):
        """Elementary operations of one training step on ``batch_size`` samples (for the thread team's size).

        The forward pass plus the backward pass, which computes an input and a
        weight gradient of each layer's size: ``3 * batch_size *``
        :meth:`forward_work_per_sample`.
        """
        return 3 * batch_size * self.forward_work_per_sample()

    def backward(self, dy):
        """Back-propagate ``dy`` (gradient of the loss wrt the output); fills every layer's grads.

        Parameters
        ----------
        dy : ndarray (N, *output_shape)
            After :meth:`forward` of the same batch with ``training=True``.

        Returns
        -------
        ndarray or None
            The gradient with respect to the network input (None: the first
            layer skips it).

        Raises
        ------
        RuntimeError
            If the last :meth:`forward` was not a training pass, or where a layer can tell that no training
            forward preceded the call.
        """
        if not self.__dict__.get("_training_pass"):
            raise RuntimeError("Sequential.backward needs a forward pass of the same batch with training=True; "
                               "the last pass was an inference pass or there was none")
        return super().backward(dy)

    def release_buffers(self):
        """Drop the cached workspaces of every layer and the recorded inference passes holding them."""
        self.__dict__.pop("_replays", None)
        super().release_buffers()

    def params_and_grads(self):
        """List of ``(param, grad)`` array pairs of every layer of the tree, in a fixed order."""
        return [(layer.params[k], layer.grads[k]) for layer in self.walk() for k in sorted(layer.params)]

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("lock")
        state.pop("_flat", None)   # the layers pickle their own (view) arrays
        state.pop("_plan", None)   # re-planned on first use
        state.pop("_replays", None)   # recorded again on first use
        state.pop("_inference", None)   # BatchNorm folds and fusions: replanned on first use
        state.pop("_training", None)
        state.pop("_layer_kernels", None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        for key, value in (("_needs_input_grad", False), ("params", {}), ("grads", {}), ("_buffers", {}),
                           ("_views", {})):   # pickled before the network was a Chain
            self.__dict__.setdefault(key, value)
        self.lock = threading.Lock()
        if self.input_shape is not None:
            self.set_backend(self.backend)
            self._pack_parameters()

    def summary(self):
        """A text table: layer, output shape, parameter count; dropout rows marked ``<-- dropout``.

        One row per layer of the tree (:meth:`descendants`, numbered by network
        layer index); a block's inner layers follow it, indented, and the
        block's row counts the parameters of all of them.
        """
        rows = [("#", "layer", "output shape", "params")]
        depth = {id(layer): 0 for layer in self.layers}
        for index, layer in enumerate(self.descendants()):
            for inner in layer.sublayers():
                depth[id(inner)] = depth[id(layer)] + 1
            name = "  " * depth[id(layer)] + f"{type(layer).__name__}({layer.describe()})"
            if layer.stochastic:
                name += "  <-- dropout"
            shape = "(None, " + ", ".join(str(d) for d in (layer.output_shape or ())) + ")"
            rows.append((str(index), name, shape, f"{layer.n_params:,}"))
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
        rule = "-" * max(len(line) for line in lines)
        kernels = self.kernels
        return "\n".join([rule, lines[0], rule, *lines[1:], rule,
                          f"Total params: {self.n_params:,}   input: {self.input_shape}   "
                          f"dtype: {self.dtype}   backend: {kernels.name}",
                          describe_isa(set(kernels.sources.values())), rule])
