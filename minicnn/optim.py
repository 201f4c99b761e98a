"""Optimizers updating ``(param, grad)`` pairs in place: SGD (momentum, Nesterov) and Adam.

Weight decay is *decoupled* (Loshchilov & Hutter): each step shrinks the
parameters by ``lr * weight_decay`` before the gradient update, independently
of the gradient (AdamW; for SGD the same rule).
"""

import numbers

import numpy as np


def _check(value, name, low, high=None, low_inclusive=True):
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and np.isfinite(value)
    ok = ok and (value >= low if low_inclusive else value > low) and (high is None or value < high)
    if not ok:
        bound = f"{'[' if low_inclusive else '('}{low}, {high if high is not None else 'inf'})"
        raise ValueError(f"{name} must be a number in {bound}; received {name}={value!r}")
    return float(value)


class _Optimizer:
    """Per-parameter state created lazily on the first step, in the order of the pairs."""

    def __init__(self, learning_rate, weight_decay):
        self.learning_rate = _check(learning_rate, "learning_rate", 0.0, low_inclusive=False)
        self.weight_decay = _check(weight_decay, "weight_decay", 0.0)
        self.iterations = 0
        self.state = None

    def step(self, pairs, kernels=None):
        """Apply one update to every ``(param, grad)`` pair.

        Parameters
        ----------
        pairs : list of (ndarray, ndarray)
            E.g. ``network.flat_params_and_grads()`` (one flat pair: one fused
            kernel call for the whole network) or ``network.params_and_grads()``.
        kernels : Backend, optional
            Whose fused update kernel to use (Adam); default the ``"auto"`` backend.
        """
        if self.state is None:
            self.state = [self._init_state(p) for p, _ in pairs]
        elif len(self.state) != len(pairs) or any(self._state_size(st) not in (None, p.size)
                                                  for (p, _), st in zip(pairs, self.state)):
            self.state = self._regroup_state(pairs)
        self.iterations += 1
        for (param, grad), state in zip(pairs, self.state):
            self._step_one(param, grad, state, kernels)

    @staticmethod
    def _state_size(state):
        first = state[0] if isinstance(state, tuple) else state
        return None if first is None else first.size

    def _step_one(self, param, grad, state, kernels):
        if self.weight_decay:
            param *= param.dtype.type(1.0 - self.learning_rate * self.weight_decay)
        self._update(param, grad, state)

    def _regroup_state(self, pairs):
        """Re-cut per-array state into the layout of ``pairs`` (e.g. per-array -> one flat buffer).

        The parameters are the same elements in the same order, only grouped
        differently (a network packs its parameters into one flat buffer).
        """
        if all(st is None for st in self.state):
            return [None] * len(pairs)
        sizes = [p.size for p, _ in pairs]
        if sum(s_.size for s_ in self._flat_state_parts(0)) != sum(sizes):
            raise ValueError(f"optimizer state holds {len(self.state)} arrays that do not match the "
                             f"{len(pairs)} parameter arrays it is asked to update")
        n_parts = len(self.state[0]) if isinstance(self.state[0], tuple) else 1
        flats = [np.concatenate([a.ravel() for a in self._flat_state_parts(i)]) for i in range(n_parts)]
        out, offset = [], 0
        for (param, _), size in zip(pairs, sizes):
            parts = tuple(f[offset:offset + size].reshape(param.shape).copy() for f in flats)
            out.append(parts if n_parts > 1 else parts[0])
            offset += size
        return out

    def _flat_state_parts(self, i):
        return [st[i] if isinstance(st, tuple) else st for st in self.state if st is not None]


class SGD(_Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum.

    Follows PyTorch's formulation: ``v = momentum * v + g``; the step is ``v``
    (or ``g + momentum * v`` with Nesterov); ``p -= lr * step``.

    Parameters
    ----------
    learning_rate : float, default=0.01
    momentum : float in [0, 1), default=0.0
    nesterov : bool, default=False
    weight_decay : float, default=0.0

    Examples
    --------
    >>> import numpy as np
    >>> p, g = np.array([1.0]), np.array([0.5])
    >>> SGD(learning_rate=0.1).step([(p, g)])
    >>> p
    array([0.95])
    """

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, weight_decay=0.0):
        super().__init__(learning_rate, weight_decay)
        self.momentum = _check(momentum, "momentum", 0.0, 1.0)
        if nesterov and self.momentum == 0:
            raise ValueError("nesterov=True requires momentum > 0; received momentum=0")
        self.nesterov = bool(nesterov)

    def _init_state(self, param):
        return np.zeros_like(param) if self.momentum else None

    def _update(self, param, grad, velocity):
        lr = param.dtype.type(self.learning_rate)
        if velocity is None:
            param -= lr * grad
            return
        velocity *= param.dtype.type(self.momentum)
        velocity += grad
        if self.nesterov:
            param -= lr * (grad + param.dtype.type(self.momentum) * velocity)
        else:
            param -= lr * velocity


class Adam(_Optimizer):
    """Adam (Kingma & Ba) with bias correction; with ``weight_decay`` it is AdamW.

    Parameters
    ----------
    learning_rate : float, default=1e-3
    beta1, beta2 : float in [0, 1), defaults 0.9 and 0.999
    eps : float, default=1e-8
    weight_decay : float, default=0.0

    Examples
    --------
    >>> import numpy as np
    >>> p, g = np.array([1.0]), np.array([0.5])
    >>> Adam(learning_rate=0.1).step([(p, g)])
    >>> p.round(6)
    array([0.9])
    """

    def __init__(self, learning_rate=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0):
        super().__init__(learning_rate, weight_decay)
        self.beta1 = _check(beta1, "beta1", 0.0, 1.0)
        self.beta2 = _check(beta2, "beta2", 0.0, 1.0)
        self.eps = _check(eps, "eps", 0.0, low_inclusive=False)

    def _init_state(self, param):
        return np.zeros_like(param), np.zeros_like(param)

    def _step_one(self, param, grad, state, kernels):
        """One fused kernel pass when the arrays allow it (C-contiguous float32/float64)."""
        m, v = state
        arrays = (param, grad, m, v)
        if param.dtype not in _FUSED_DTYPES or any(a.dtype != param.dtype or not a.flags.c_contiguous
                                                   for a in arrays):
            return super()._step_one(param, grad, state, kernels)
        if kernels is None:
            kernels = _auto_kernels()
        t = self.iterations
        kernels.adam_update(param.reshape(-1), m.reshape(-1), v.reshape(-1), grad.reshape(-1),
                            self.learning_rate / (1 - self.beta1 ** t), self.beta1, self.beta2,
                            1 - self.beta2 ** t, self.eps, 1.0 - self.learning_rate * self.weight_decay)

    def _update(self, param, grad, state):
        m, v = state
        t = self.iterations
        m *= param.dtype.type(self.beta1)
        m += param.dtype.type(1 - self.beta1) * grad
        v *= param.dtype.type(self.beta2)
        v += param.dtype.type(1 - self.beta2) * (grad * grad)
        step_size = self.learning_rate / (1 - self.beta1 ** t)
        denom = np.sqrt(v / param.dtype.type(1 - self.beta2 ** t))
        denom += param.dtype.type(self.eps)
        param -= param.dtype.type(step_size) * (m / denom)


_FUSED_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _auto_kernels():
    from .backend import get_backend

    return get_backend("auto")
