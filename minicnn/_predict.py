"""Batched inference shared by the estimators and :class:`minicnn.predictor.Predictor` (NumPy only).

Nothing here imports scikit-learn, so a :class:`~minicnn.predictor.Predictor`
loads and predicts in a fresh process without paying for it (~1 s here).
"""

import math
import numbers
import sys

import numpy as np

from .backend import get_backend
from .threads import kernel_thread_limits

_FLOAT64 = np.dtype(np.float64)
_checks = {}

#: Samples per forward pass in predict: bounds the memory of the layer workspaces.
PREDICT_BATCH = 1024


def compiled_checks():
    """The compiled value checks of a call (``kernels/percall.pyx``), or None where they are not built or no compiled
    kernel is loaded yet (looked up once found).

    ``float32_within`` decides an input's range and ``float64_finite`` an output's finiteness in one loop each, where
    NumPy's reductions cost ~0.5 us per call (as much as a layer of a one-sample digits prediction).
    """
    checks = _checks.get("module", False)
    if checks is False:
        if "minicnn.backend.cython_kernels" not in sys.modules:
            return None   # no compiled kernel in use: a NumPy-backend process loads no compiled module for a check
        from .backend.environment import configure_openmp_waiting

        configure_openmp_waiting()   # before a compiled module loads libgomp (minicnn.threads)
        try:
            from .backend import _percall as checks
        except ImportError:
            checks = None
        _checks["module"] = checks
    return checks


def check_mc_samples(mc_samples, allow_none=True):
    """Validate ``mc_samples`` (None or a positive int) and return it."""
    if mc_samples is None and allow_none:
        return None
    if not (isinstance(mc_samples, numbers.Integral) and not isinstance(mc_samples, bool) and mc_samples >= 1):
        choices = "a positive int or None" if allow_none else "a positive int"
        raise ValueError(f"Expected mc_samples to be {choices}. Received: mc_samples={mc_samples!r}")
    return int(mc_samples)


def mc_offset(random_state):
    """First Monte-Carlo pass index of a prediction call: fresh per call unless ``random_state`` is an int.

    ``None`` draws from the operating system's entropy and a RandomState
    instance is drawn from (as scikit-learn does in fit), so repeated calls
    give independent dropout masks; an int gives 0, so every call repeats the
    same masks (deterministic predictions).
    """
    if random_state is None:
        return int(np.random.default_rng().integers(1, 2**38))
    if isinstance(random_state, numbers.Integral):
        return 0
    return int(random_state.randint(1, 2**31)) * 128


def warn_if_no_dropout(network, layers=None):
    """Warn (UserWarning, at the caller's line) when Monte-Carlo passes are asked of a network without dropout.

    ``layers``: the top-level layers the passes run through (default all); a dropout inside a block counts.
    """
    where = "a model" if layers is None else "the layers up to the chosen one, a part of the model"
    if not any(inner.stochastic for layer in (network.layers if layers is None else layers) for inner in layer.walk()):
        from ._caller import warn

        warn(f"Monte-Carlo dropout (mc_samples) on {where} without dropout: every pass is the same "
             "deterministic prediction, so the mean equals the plain prediction and the standard deviation is 0. "
             "Fit with dropout (e.g. dropout='after_each_layer') to measure uncertainty this way.", UserWarning)


def softmax(logits, kernels=None):
    """Row-wise softmax in float64 (a new array): ``exp(z) / sum(exp(z))`` with ``z = logits - max(logits)``.

    Parameters
    ----------
    logits : ndarray (n, k), float32 or float64
    kernels : Backend or None
        Runs the passes around NumPy's ``exp`` (``softmax_shift_rows``,
        ``softmax_normalize_rows``); the NumPy reference when None or lacking
        them. Every backend returns the reference's bits.

    Returns
    -------
    ndarray (n, k), float64
    """
    shift = getattr(kernels, "softmax_shift_rows", None)
    normalize = getattr(kernels, "softmax_normalize_rows", None)
    if shift is None or normalize is None:   # the reference only when needed: it imports every NumPy kernel
        from .backend import reference

        shift, normalize = shift or reference.softmax_shift_rows, normalize or reference.softmax_normalize_rows
    z = np.empty(logits.shape, dtype=np.float64)
    shift(z, logits if logits.flags.c_contiguous else np.ascontiguousarray(logits))
    np.exp(z, out=z)
    normalize(z)
    return z


def log_softmax(logits, kernels=None):
    """Row-wise log-softmax in float64, computed stably from the logits (a new array).

    ``z = logits - max(logits)`` in float64 (by ``kernels.softmax_shift_rows`` where the backend has it: the
    reference's bits in one call instead of three NumPy passes), then ``z - log(sum(exp(z)))``.
    """
    shift = getattr(kernels, "softmax_shift_rows", None)
    if shift is None:
        z = logits.astype(np.float64)
        z -= z.max(axis=1, keepdims=True)
    else:
        z = np.empty(logits.shape, dtype=np.float64)
        shift(z, logits if logits.flags.c_contiguous else np.ascontiguousarray(logits))
    z -= np.log(np.exp(z).sum(axis=1, keepdims=True))
    return z


def as_float64(raw, kernels=None):
    """The raw network output as a new float64 array (``kernels`` unused)."""
    return raw.astype(np.float64)


def batched_outputs(network, images, transform, *, n_outputs, backend, n_threads, mc_samples=None,
                    with_std=False, batch_size=PREDICT_BATCH, mc_offset=0):
    """Forward ``images`` in batches; ``transform`` maps each batch's raw output to the returned values.

    Parameters
    ----------
    network : Sequential
    images : ndarray (n, h, w, c), C-contiguous, of the network's dtype
    transform : callable
        ``transform(raw, kernels)`` returns a new float64 array (e.g. :func:`softmax`); ``kernels`` is the
        :class:`~minicnn.backend.Backend` of ``backend``.
    n_outputs : int
    backend : str
        The kernels to run (the network is switched to them under its lock).
    n_threads : int or None
    mc_samples : int or None
        With ``k``, Monte-Carlo dropout: ``k`` passes per batch with dropout
        active, values averaged.
    with_std : bool
        Also return the standard deviation over the MC passes (zeros without).
    batch_size : int
    mc_offset : int
        Index of the first Monte-Carlo pass (:func:`mc_offset`): passes
        ``mc_offset + batch * mc_samples + k`` key the dropout masks.

    Returns
    -------
    mean : ndarray (n, n_outputs), float64
    std : ndarray (n, n_outputs) or None
    """
    n = len(images)
    if mc_samples is not None:
        warn_if_no_dropout(network)
    work = min(n, batch_size) * network.forward_work_per_sample()
    kernels = get_backend(backend)
    limits = kernel_thread_limits(n_threads, work, kernels)
    if n <= batch_size and mc_samples is None and not with_std:
        with limits, network.lock:   # one batch: transform's result is the output, no copy
            if network.backend != backend:
                network.set_backend(backend)
            return _finite(transform(network.forward(images, training=False), kernels), images, network), None
    mean = np.empty((n, n_outputs), dtype=np.float64)
    std = np.empty_like(mean) if with_std else None
    with limits:
        for batch, start in enumerate(range(0, n, batch_size)):
            xb = images[start:start + batch_size]
            stop = start + len(xb)
            with network.lock:
                if network.backend != backend:
                    network.set_backend(backend)
                if mc_samples is None:
                    mean[start:stop] = transform(network.forward(xb, training=False), kernels)
                    continue
                total = np.zeros((len(xb), n_outputs))
                shifted = np.zeros_like(total) if with_std else None   # sums of (pass - first pass): no cancellation,
                squares = np.zeros_like(total) if with_std else None   # so equal passes give a std of exactly 0
                for k in range(mc_samples):
                    values = transform(network.forward(xb, training=False,
                                                       mc_pass=mc_offset + batch * mc_samples + k), kernels)
                    total += values
                    if with_std:
                        if k == 0:
                            first = values
                        shifted += values - first
                        squares += (values - first) ** 2
            mean[start:stop] = total / mc_samples
            if with_std:
                std[start:stop] = np.sqrt(np.maximum(squares / mc_samples - (shifted / mc_samples) ** 2, 0.0))
    if with_std and mc_samples is None:
        std[...] = 0.0
    return _finite(mean, images, network), std


def _finite(values, images, network=None):
    """``values``, or a ValueError if the forward pass overflowed float32 (never NaN probabilities).

    One reduction decides for the usual finite output: the float64 sum of the values is finite exactly when every
    value is, for values of float32 range; a float32 network's outputs (``images`` float32) are, and for up to
    8192 of them the sum of squares (one BLAS dot, ~3x cheaper than ``np.add.reduce`` on a one-sample output, at
    most ~1e81) decides as well. A non-finite reduction is confirmed value by value, so outputs beyond float32
    range (a float64 network) are never refused for an overflowing sum alone.
    """
    if values.size <= 8192 and images.dtype.itemsize == 4 and values.dtype is _FLOAT64:
        checks = compiled_checks()
        if checks is not None and checks.float64_finite(values):   # one loop (None: not a plain array; False: below)
            return values
        # no floating-point warning to silence: float64 squares of float32-range values never overflow, and a
        # NaN or infinity raises no flag in a product (np.errstate costs as much as the dot, ~1-3 us); np.vdot
        # reads any shape as flat (no reshape)
        total = np.vdot(values, values)
    else:
        flat = values.reshape(-1)
        with np.errstate(over="ignore", invalid="ignore"):   # an overflowing sum is the signal, confirmed below
            total = np.add.reduce(flat) if flat.size > 8192 or images.dtype.itemsize != 4 else flat.dot(flat)
    if math.isfinite(total):
        return values
    bad = (~np.isfinite(values)).any(axis=1)
    if not bad.any():
        return values
    from ._overflow import overflow_message   # names the layer (``network``) where activations became non-finite

    raise ValueError(overflow_message(network, images, bad, len(values)))
