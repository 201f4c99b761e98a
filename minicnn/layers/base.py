"""The layer protocol shared by every layer, and the workspace pool they draw from."""

import math

import numpy as np

from ..backend.activation_codes import CODES


#: Attributes a forward pass leaves for its backward pass (never pickled).
FORWARD_CACHE = ("_x", "_y", "_col", "_argmax", "_x_shape", "_inv_std", "_key", "_active")


class Layer:
    """Base class: a forward/backward pair with parameters, gradients and reused buffers.

    Subclasses implement ``_build(input_shape, rng)`` (returns the output shape,
    creates parameters), ``forward(x, training)`` and ``backward(dy)``.

    Attributes
    ----------
    params, grads : dict of str -> ndarray
        Parameters and their gradients, same keys, updated in place.
    needs_input_grad : bool
        False for the first layer of a network: its backward may skip ``dx``
        and return None.
    stochastic : bool
        True for layers whose training forward draws random numbers (dropout).
    """

    stochastic = False
    kind = "layer"

    def __init__(self):
        self.params, self.grads = {}, {}
        self.input_shape = self.output_shape = None
        self.needs_input_grad = True
        self._buffers = {}
        self._views = {}

    def build(self, input_shape, *, dtype, rng, backend):
        """Create parameters for per-sample ``input_shape`` and return the output shape."""
        self.input_shape = tuple(int(d) for d in input_shape)
        self.dtype = np.dtype(dtype)
        self.kernels = backend
        self.output_shape = tuple(self._build(self.input_shape, rng))
        return self.output_shape

    def _build(self, input_shape, rng):
        return input_shape

    def _buffer(self, name, shape, dtype=None):
        """A C-contiguous array of ``shape`` reused across calls (grown, never shrunk).

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
            store = np.empty(size, dtype=dtype)
            self._buffers[name] = store
        view = store[:size].reshape(shape)
        self._views[name] = view
        return view

    def release_buffers(self):
        """Drop cached workspaces (they are recreated on the next call)."""
        self._buffers = {}
        self._views = {}

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

    @property
    def n_params(self):
        return int(sum(p.size for p in self.params.values()))

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


def glorot_or_he_uniform(rng, shape, fan_in, fan_out, activation, dtype):
    """He-uniform for (leaky) ReLU, Glorot-uniform otherwise."""
    if activation in ("relu", "leaky_relu"):
        limit = np.sqrt(6.0 / fan_in)
    else:
        limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape).astype(dtype)
