"""Regression targets are standardized inside the regressor, and the scaling is folded into the output layer.

A network trained on raw targets far from 0 (``y`` in [1000, 1001]) spends its
steps moving the output bias and learns nothing else in the epochs it has. So
the regressor trains on ``(y - mean) / scale`` (per output: the mean and
standard deviation of the targets of the first ``fit`` or ``partial_fit``;
a constant output keeps scale 1), as scikit-learn's
``TransformedTargetRegressor(transformer=StandardScaler())`` would.

Between calls the output layer holds the *folded* weights ``w * scale`` and
``b * scale + mean``, so the network itself predicts in the units of ``y``:
``predict``, the Predictor, the model file and the ONNX graph need to know
nothing of the scaling. A fit continuing the model (``warm_start``,
``partial_fit``) unfolds them first; the standardized weights of the last fit
are kept (``_standardized_output``) so that an unchanged model continues from
exactly them (a divide by ``scale`` would round).

Fitted state: ``_y_mean`` and ``_y_scale`` (float64 arrays of shape
``(n_outputs,)``), saved in the model file's fitted fields.
"""

import contextlib

import numpy as np


def statistics(y, weights=None):
    """Per-column mean and scale (standard deviation, 1 where it is 0 or not finite) of 2-D float ``y``.

    Weighted by the per-sample ``weights`` (None or equal weights: unweighted), so a sample of weight 0 has no
    influence on the scaling either.
    """
    values = np.asarray(y, dtype=np.float64)
    if weights is not None and np.ptp(weights) > 0:
        mean = np.average(values, axis=0, weights=weights)
        scale = np.sqrt(np.average((values - mean) ** 2, axis=0, weights=weights))
    else:
        mean = values.mean(axis=0)
        scale = values.std(axis=0)
    scale[~(np.isfinite(scale) & (scale > 0))] = 1.0
    return mean, scale


def standardize(est, y, first, weights=None):
    """``y`` (2-D) in standardized units; ``first`` records the (``weights``-weighted) statistics of ``y``."""
    if first:
        est._y_mean, est._y_scale = statistics(y, weights)
        est.__dict__.pop("_standardized_output", None)
    mean, scale = _stats(est, y.shape[1])
    return np.ascontiguousarray(((y - mean) / scale).astype(y.dtype))


def _stats(est, n_outputs):
    mean = est.__dict__.get("_y_mean")
    if mean is None:   # a model file written before targets were standardized: the identity
        return np.zeros(n_outputs), np.ones(n_outputs)
    return mean, est._y_scale


def output_layer(est):
    """The output layer of ``est``'s network (the layer whose weights the scaling folds into)."""
    return est.network_.layers[-1]


@contextlib.contextmanager
def standardized_output(est, fresh):
    """Inside: the output layer in standardized units (for training); after: folded back into ``y``'s units.

    ``fresh``: the network was just initialized (a first fit), so it is in standardized units already.
    """
    if "_y_mean" not in est.__dict__ or "network_" not in est.__dict__:
        yield
        return
    layer = output_layer(est)
    w, b = layer.params["w"], layer.params["b"]
    mean, scale = est._y_mean, est._y_scale
    kept = est.__dict__.get("_standardized_output")
    folded = est.__dict__.get("_folded_output")
    unchanged = (kept is not None and folded is not None and np.array_equal(folded[0], w)
                 and np.array_equal(folded[1], b))
    if unchanged and not fresh:
        w[...], b[...] = kept              # the exact standardized weights of the last fit
    elif not fresh:
        w[...] = w / scale
        b[...] = (b - mean) / scale
    try:
        yield
    finally:
        est._standardized_output = (w.copy(), b.copy())
        w[...] = w * scale
        b[...] = b * scale + mean
        est._folded_output = (w.copy(), b.copy())


@contextlib.contextmanager
def in_target_units(est):
    """Inside a fit: the output layer folded into ``y``'s units for a while (a callback that predicts or scores
    sees the model as ``predict`` will), then exactly the standardized weights again."""
    if "_y_mean" not in est.__dict__ or "network_" not in est.__dict__:
        yield
        return
    layer = output_layer(est)
    w, b = layer.params["w"], layer.params["b"]
    kept = (w.copy(), b.copy())
    w[...] = w * est._y_scale
    b[...] = b * est._y_scale + est._y_mean
    try:
        yield
    finally:
        w[...], b[...] = kept


def fitted_fields(est):
    """The model file's fitted fields of the scaling (``{}`` for a classifier or an unscaled regressor)."""
    if "_y_mean" not in est.__dict__:
        return {}
    return {"y_mean": [float(v) for v in est._y_mean], "y_scale": [float(v) for v in est._y_scale]}


def restore_fitted(est, fields, n_outputs):
    """Set the scaling from a model file's fitted ``fields``; returns None, or what is wrong with them.

    A file without them (written before targets were standardized) loads with none (the identity).
    """
    mean, scale = fields.get("y_mean"), fields.get("y_scale")
    if mean is None and scale is None:
        return None

    def floats(values, positive):
        return (isinstance(values, list) and len(values) == n_outputs
                and all(isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v)
                        and (v > 0 or not positive) for v in values))

    if not (floats(mean, False) and floats(scale, True)):
        return f"y_mean or y_scale is invalid (expected {n_outputs} finite floats, scales > 0)"
    est._y_mean, est._y_scale = np.array(mean, dtype=np.float64), np.array(scale, dtype=np.float64)
    return None
