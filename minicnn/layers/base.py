"""The layer protocol shared by every layer, and the workspace pool they draw from."""

import math

import numpy as np

from ..backend.activation_codes import CODES


#: Bytes a workspace's first element is aligned to: one cache line. NumPy puts a large array 16 bytes past a line,
#: so every 64-byte vector load or store of the kernels straddled two lines, and a per-thread slot boundary that is
#: a multiple of 16 floats (the Winograd conv's rows and its weight gradient's slots, for F a multiple of 4) shared
#: a line between two threads. Measured side by side (``benchmarks/bench_workspace_alignment.py``, minima of 101
#: interleaved rounds, load ~4.7 on 2 cores): on a line, the Winograd conv 3-7% faster at 1 thread and 2-7% at 2,
#: its weight gradient up to 8%, the im2col weight gradient 0.5-5%, on the ResNet-8 and 3-channel-grid shapes;
#: end to end (``--zoo``, 1 thread, batch 64) a training step 5-8% faster on the zoo's ResNet-8 and MobileNet
#: nets, inference within 1-2%. The same bits.
WORKSPACE_ALIGNMENT = 64


def _aligned_empty(size, dtype):
    """An uninitialized 1-D array of ``size`` elements of ``dtype`` starting on a ``WORKSPACE_ALIGNMENT`` boundary."""
    nbytes = size * dtype.itemsize
    raw = np.empty(nbytes + WORKSPACE_ALIGNMENT, dtype=np.uint8)
    start = -raw.ctypes.data % WORKSPACE_ALIGNMENT
    return raw[start:start + nbytes].view(dtype)


#: Attributes a forward pass leaves for its backward pass (never pickled).
FORWARD_CACHE = ("_x", "_y", "_col", "_argmax", "_x_shape", "_inv_std", "_key", "_active", "_inference", "_training",
                 "_act")


class Layer:
    """Base class of every layer: the protocol a :class:`~minicnn.network.Sequential` relies on, declared once.

    Shapes are per sample, channels-last: ``input_shape`` is ``(H, W, C)``
    for image layers and ``(D,)`` for flat ones; every array a method takes
    or returns has a leading batch axis ``N`` and the network's dtype.

    Protocol
    --------
    ``build(input_shape, *, dtype, rng, backend)``
        Once, before any pass: creates ``params`` (and their ``grads``) and
        returns the output shape. Subclasses implement ``_build``.
    ``forward(x, training)``
        ``x (N, *input_shape)`` C-contiguous -> ``y (N, *output_shape)``.
        ``training=True`` keeps what ``backward`` needs.
    ``backward(dy)``
        ``dy (N, *output_shape)`` -> ``dx (N, *input_shape)``, after a
        ``forward(x, training=True)`` of the same batch; fills ``grads``
        (overwritten, not accumulated). Returns None when
        ``needs_input_grad`` is False.
    ``sample(x, pass_index)``
        Monte-Carlo forward: stochastic layers (dropout) draw the masks of
        pass ``pass_index``; every other layer runs ``forward(x, False)``.
    ``sublayers()`` / ``walk()``
        The tree: a composite (:mod:`minicnn.layers.composite`) returns the
        layers it is made of, a leaf none; ``walk()`` visits them all.

    Buffer ownership: ``forward``, ``backward`` and ``sample`` return arrays
    the layer owns (workspaces reused by its next call of the same method)
    or, for identity-like passes, ``x`` itself. Callers copy what they keep
    and never write into a returned array; layers never write into their
    inputs.

    Attributes
    ----------
    params, grads : dict of str -> ndarray
        Parameters and their gradients, same keys, updated in place.
    needs_input_grad : bool
        False for the first layer of a network: its backward may skip ``dx``
        and return None.
    stochastic : bool
        True for layers whose training forward draws random numbers (dropout).
    kernels : Backend
        The kernels the layer runs (set by ``build`` from ``backend``, and by
        :meth:`minicnn.network.Sequential.set_backend`).
    input_shape, output_shape : tuple of int or None
        Per-sample shapes (None before ``build``).
    """

    stochastic = False

    def __init__(self):
        self.params, self.grads = {}, {}
        self.input_shape = self.output_shape = None
        self.needs_input_grad = True
        self._buffers = {}
        self._views = {}

    def build(self, input_shape, *, dtype, rng, backend):
        """Create parameters for per-sample ``input_shape`` and return the output shape.

        Parameters
        ----------
        input_shape : tuple of int
            Per-sample shape, ``(H, W, C)`` or ``(D,)``.
        dtype : numpy dtype
            Of parameters, workspaces and outputs.
        rng : numpy.random.Generator
            Initializes the weights.
        backend : Backend
            The kernels (see :func:`minicnn.backend.get_backend`), stored as ``kernels``.

        Returns
        -------
        tuple of int
            The per-sample output shape.

        Raises
        ------
        ValueError
            If the layer does not fit ``input_shape`` (e.g. a kernel larger
            than the padded input, or an image layer given flat vectors).
        """
        self.input_shape = tuple(int(d) for d in input_shape)
        self.dtype = np.dtype(dtype)
        self.kernels = backend
        self.output_shape = tuple(self._build(self.input_shape, rng))
        return self.output_shape

    def _build(self, input_shape, rng):
        return input_shape

    def forward(self, x, training=False):
        """Output of the layer for the batch ``x`` (see the protocol in the class docstring).

        Parameters
        ----------
        x : ndarray of shape (N, *input_shape)
            C-contiguous, of the layer's dtype.
        training : bool, default=False
            Training mode: keep what :meth:`backward` needs, dropout active,
            batch statistics in BatchNorm.

        Returns
        -------
        ndarray of shape (N, *output_shape)
            A buffer the layer owns (or ``x`` itself): valid until its next call.
        """
        raise NotImplementedError(f"{type(self).__name__} does not implement forward")

    def backward(self, dy):
        """Gradient with respect to the input of the last training forward; fills ``grads``.

        Parameters
        ----------
        dy : ndarray of shape (N, *output_shape)
            Gradient of the loss with respect to this layer's output.

        Returns
        -------
        ndarray of shape (N, *input_shape) or None
            A buffer the layer owns; None when ``needs_input_grad`` is False.

        Raises
        ------
        RuntimeError
            Where a layer can tell that no training forward of this batch
            preceded the call.
        """
        raise NotImplementedError(f"{type(self).__name__} does not implement backward")

    def sample(self, x, pass_index):
        """Monte-Carlo forward for pass ``pass_index``: inference everywhere but in stochastic layers.

        Parameters
        ----------
        x : ndarray of shape (N, *input_shape)
        pass_index : int
            Keys the dropout masks of the pass (the same index gives the same masks).

        Returns
        -------
        ndarray of shape (N, *output_shape)
        """
        return self.forward(x, False)

    def _buffer(self, name, shape, dtype=None):
        """A C-contiguous array of ``shape`` reused across calls (grown, never shrunk), on a cache line.

        Keeping workspaces alive avoids the first-touch cost of fresh pages on
        every batch; a smaller last batch gets a view of the same memory. The
        view of the last shape is cached too: a repeated request costs a dict
        lookup and a tuple compare (``np.prod`` alone took ~4 us).
        """
        dtype = self.dtype if dtype is None else np.dtype(dtype)
        view = self._views.get(name)
        if view is not None and view.shape == shape and view.dtype == dtype:
            return view
        size = math.prod(shape)
        store = self._buffers.get(name)
        if store is None or store.dtype != dtype or store.size < size:
            store = _aligned_empty(size, dtype)
            self._buffers[name] = store
        view = store[:size].reshape(shape)
        self._views[name] = view
        return view

    def release_buffers(self):
        """Drop cached workspaces of this layer and every layer inside it (they are recreated on the next call)."""
        for layer in self.walk():
            layer._buffers = {}
            layer._views = {}

    def __getstate__(self):
        """Pickle parameters and settings only: no workspaces, forward caches or gradients.

        A fitted network otherwise carries its last batch's activations and
        im2col workspace (85 MB for 4.8 MB of weights on the default 28x28
        model), which is what gets shipped to every Dask worker.
        """
        state = self.__dict__.copy()
        state["_buffers"] = {}
        state["_views"] = {}
        state.pop("kernels", None)   # functions of a backend: rebound by the network
        for name in FORWARD_CACHE:
            state.pop(name, None)
        state["grads"] = {key: None for key in self.grads}
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.grads = {key: np.zeros_like(self.params[key]) for key in self.grads}

    def sublayers(self):
        """The layers this one is made of, in order (none for a leaf layer; see :mod:`minicnn.layers.composite`)."""
        return ()

    def walk(self):
        """This layer, then every layer inside it, depth first in order: THE traversal of a network.

        Parameters and gradients, the optimizer's buffers, backend binding,
        workspaces, work estimates, dropout seeds, persistence, ``summary()``
        and placement all visit layers through it, so a layer nested in a
        block is seen exactly like a top-level one.

        Yields
        ------
        Layer
        """
        yield self
        for layer in self.sublayers():
            yield from layer.walk()

    @property
    def n_params(self):
        """Number of parameters of this layer and every layer inside it."""
        return int(sum(p.size for layer in self.walk() for p in layer.params.values()))

    def describe(self):
        """Short text for ``summary()``: the layer's settings."""
        return ""

    def __repr__(self):
        return f"{type(self).__name__}({self.describe()})"


def activation_code(activation, alpha):
    """Translate an activation name to its kernel code, validating once."""
    if activation not in CODES:
        raise ValueError(f"activation must be one of {sorted(CODES)}; received activation={activation!r}")
    if activation == "leaky_relu" and not (isinstance(alpha, (int, float)) and alpha > 0):
        raise ValueError(f"alpha must be a positive number for leaky_relu; received alpha={alpha!r}")
    return CODES[activation]


class Uninitialized:
    """The ``rng`` of a build whose every parameter is overwritten next (a saved model being loaded).

    Weights are allocated unfilled (``np.empty``) and nothing random is drawn: no ``numpy.random`` import and no
    uniform draw of every weight (~8 ms for the MNIST model) on the way to values read from a file. The one
    integer a build draws (the dropout seed, see :meth:`minicnn.network.Sequential.build`) is 0; the file's
    seeds replace it.
    """

    def integers(self, low, high=None):
        return 0


#: The :class:`Uninitialized` ``rng``.
UNINITIALIZED = Uninitialized()


def glorot_or_he_uniform(rng, shape, fan_in, fan_out, activation, dtype):
    """He-uniform for (leaky) ReLU, Glorot-uniform otherwise (unfilled for the :data:`UNINITIALIZED` ``rng``)."""
    if isinstance(rng, Uninitialized):
        return np.empty(shape, dtype=dtype)
    if activation in ("relu", "leaky_relu"):
        limit = np.sqrt(6.0 / fan_in)
    else:
        limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape).astype(dtype)
